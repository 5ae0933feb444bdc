"""Suite-wide set-up: an isolated AIRFLOW_HOME, the PostgreSQL switch, and a report CI checks."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Airflow reads its configuration at import time: isolate it before any test imports airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="hubspot-sync-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

# Airflow configures logging (dictConfig on the root logger) the first time it is imported. Do it now,
# once, so a test that imports it first (lazily, deep in the code) does not detach its own caplog.
import airflow  # noqa: E402, F401

PG_DSN_ENV = "HUBSPOT_SYNC_TEST_PG_DSN"
REQUIRE_PG_ENV = "HUBSPOT_SYNC_REQUIRE_PG"

_outcomes: dict[str, dict[str, int]] = {}


def pytest_collection_modifyitems(config, items):
    if os.environ.get(PG_DSN_ENV):
        return
    if os.environ.get(REQUIRE_PG_ENV) == "1":
        raise pytest.UsageError(f"{REQUIRE_PG_ENV}=1 but {PG_DSN_ENV} is not set")
    skip = pytest.mark.skip(reason=f"set {PG_DSN_ENV} to run the PostgreSQL tests")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        marker = "postgres" if "postgres" in report.keywords else "other"
        bucket = _outcomes.setdefault(marker, {})
        bucket[report.outcome] = bucket.get(report.outcome, 0) + 1


def pytest_sessionfinish(session, exitstatus):
    # `make test` runs two sessions side by side (hubspot_devtools.testsuite), each with its own report.
    out = Path(os.environ.get("HUBSPOT_SYNC_TEST_REPORT") or REPO / "var" / "test-report.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"exitstatus": int(exitstatus), "outcomes": _outcomes}, indent=2))


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """DSN of a real PostgreSQL server; tests that use it carry the ``postgres`` marker."""
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        pytest.skip(f"set {PG_DSN_ENV} to run the PostgreSQL tests")
    return dsn


def hubspot_conn_env(conn_id: str, url: str, token: str, **extra) -> tuple[str, str]:
    """The environment variable that defines a ``hubspot`` connection (Airflow's JSON form)."""
    value = json.dumps({"conn_type": "hubspot", "host": url, "password": token, "extra": extra})
    return f"AIRFLOW_CONN_{conn_id.upper()}", value


@pytest.fixture()
def hubspot_connection(monkeypatch):
    """Define a hubspot connection for a sandbox: ``hubspot_connection(sb, **extra) -> conn_id``."""
    counter = iter(range(10**6))

    def make(sb, conn_id: str | None = None, token: str | None = None, **extra) -> str:
        conn_id = conn_id or f"hubspot_test_{next(counter)}"
        name, value = hubspot_conn_env(conn_id, sb.url, token or sb.token, **extra)
        monkeypatch.setenv(name, value)
        return conn_id

    return make
