"""End-to-end fixtures: an isolated Airflow home (migrated once) and a runner for `airflow dags test`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


class AirflowHome:
    def __init__(self, root: Path):
        self.root = root
        self.home = root / "airflow"
        self.env = dict(os.environ)
        self.env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )

    def run(self, *args: str, env: dict | None = None, check: bool = True, timeout: int = 300):
        result = subprocess.run(
            [AIRFLOW, *args], env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-5000:]}")
        return result


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    home = AirflowHome(tmp_path_factory.mktemp("e2e"))
    home.run("db", "migrate")
    return home
