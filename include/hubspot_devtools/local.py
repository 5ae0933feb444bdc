"""Shared plumbing for the local tools: a sandbox subprocess, an Airflow environment, connections."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def say(text: str = "") -> None:
    """One line for the person at the terminal, shown at once (output may be piped)."""
    print(text, flush=True)


def interrupt(signum, frame):
    """A signal handler: SIGTERM stops a local tool the way Ctrl-C does."""
    raise KeyboardInterrupt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def sandbox_process(workdir: Path, *, port: int | None = None, args: list[str] = ()) -> Iterator[tuple[str, str]]:
    """Run ``python -m hubspot_sandbox`` until the block ends; yields (url, token)."""
    port = port or free_port()
    token_file = workdir / "sandbox-token"
    token_file.unlink(missing_ok=True)
    log = (workdir / "sandbox.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubspot_sandbox", "--host", "127.0.0.1", "--port", str(port),
         "--token-file", str(token_file), *args],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {proc.returncode}; see {workdir / 'sandbox.log'}")
            try:
                if requests.get(f"{url}/_sandbox/health", timeout=2).ok and token_file.exists():
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start within 60 s; see {workdir / 'sandbox.log'}")
            time.sleep(0.2)
        yield url, token_file.read_text().strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


def connection_env(conn_id: str, definition: dict) -> tuple[str, str]:
    return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(definition)


def airflow(env: dict[str, str], *args: str, log: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    exe = shutil.which("airflow", path=env["PATH"]) or str(BIN / "airflow")
    result = subprocess.run([exe, *args], env=env, capture_output=True, text=True)
    if log is not None:
        with log.open("a") as fh:
            fh.write(f"$ airflow {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"airflow {' '.join(args[:3])} failed ({result.returncode}):\n{tail}")
    return result
