"""Before the first sync, with finance_db missing or down, with a bad setting: a friendly page, never a
500 or a stack trace, never the password; and the page cannot write."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from sync_page_support import h

from hubspot_finance.config import SyncConfig
from hubspot_finance.schema import Dialect, migrate
from hubspot_sync_page.finance_db import open_finance_db

PASSWORD = "Zq9-page-Secret"
NO_SYNC = "No sync has run yet — trigger hubspot_to_finance."


def use_sqlite(monkeypatch, path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DB", h.Target("sqlite", str(path)).conn_json())


def assert_friendly(client, status: int, *texts: str) -> str:
    page = client.get("/")
    assert page.status_code == status and page.headers["content-type"].startswith("text/html")
    for text in texts:
        assert text in page.text
    assert "Traceback" not in page.text and PASSWORD not in page.text
    data = client.get("/api/summary")
    assert data.status_code == status and PASSWORD not in data.text
    return data.json()["state"]


def test_no_finance_db_connection(page_client, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_FINANCE_DB", raising=False)
    state = assert_friendly(page_client(), 200, NO_SYNC, "connection &#39;finance_db&#39; is not defined")
    assert state == "no_sync_yet"


def test_no_database_file_yet_and_the_page_does_not_create_it(page_client, monkeypatch, tmp_path):
    missing = tmp_path / "finance.db"
    use_sqlite(monkeypatch, missing)
    assert assert_friendly(page_client(), 200, NO_SYNC, "does not exist yet") == "no_sync_yet"
    assert not missing.exists()


@pytest.mark.parametrize("with_tables", [False, True], ids=["empty-file", "tables-no-runs"])
def test_an_empty_database(page_client, monkeypatch, tmp_path, with_tables):
    path = tmp_path / "finance.db"
    conn = sqlite3.connect(path)
    if with_tables:
        migrate(conn, Dialect("sqlite"))  # what the first load does before anything is loaded
    conn.close()
    use_sqlite(monkeypatch, path)
    detail = "no run has been recorded yet" if with_tables else "finance tables not created yet"
    assert assert_friendly(page_client(), 200, NO_SYNC, detail) == "no_sync_yet"
    assert page_client().get("/rejects/1").status_code == 404


def test_a_database_that_is_down_never_shows_the_password(page_client, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DB", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "sync_user", "password": PASSWORD,
        "schema": "finance"}))
    state = assert_friendly(page_client(), 503, "The finance database cannot be read.", "finance_db", "127.0.0.1:1/finance")
    assert state == "finance_db_unavailable"


def test_tables_the_page_cannot_read_give_a_message_not_a_500(page_client, monkeypatch, tmp_path):
    path = tmp_path / "finance.db"
    with sqlite3.connect(path) as conn:  # tables of the right names but not the pipeline's columns
        conn.execute("CREATE TABLE sync_runs (run_id TEXT, started_at TEXT)")
        conn.execute("CREATE TABLE sync_state (object_type TEXT, watermark TEXT, run_id TEXT)")
        conn.execute("INSERT INTO sync_runs VALUES ('r1', '2026-09-21T00:00:00.000Z')")
    use_sqlite(monkeypatch, path)
    assert assert_friendly(page_client(), 503, "Reading the finance tables failed.", "OperationalError") == "query_failed"


@pytest.mark.parametrize("name, value", [("SCHEDULE", "every night"), ("TIMEZONE", "Mars/Olympus")])
def test_an_invalid_setting(synced, page_client, monkeypatch, name, value):
    monkeypatch.setenv(f"HUBSPOT_SYNC_{name}", value)
    assert assert_friendly(page_client(), 503, "setting is invalid", f"HUBSPOT_SYNC_{name}") == "invalid_setting"


def test_the_finance_connection_is_read_only(synced, page_client):
    before = hashlib.sha256(open(synced.target.target, "rb").read()).digest() if synced.target.kind == "sqlite" else None
    for path in ("/", "/api/summary", "/rejects/1"):
        assert page_client().get(path).status_code == 200
    with open_finance_db(SyncConfig.from_env()) as conn, pytest.raises(Exception, match="(?i)read.?only"):
        conn.cursor().execute('CREATE TABLE "written_by_the_page" (x INTEGER)')
    if before is not None:
        assert hashlib.sha256(open(synced.target.target, "rb").read()).digest() == before


@pytest.mark.postgres
def test_a_stored_error_quoting_the_password_is_masked(pg_dsn, page_client, monkeypatch):
    """A failed run's error could quote a connection string; the page masks finance_db's password anywhere."""
    import uuid

    import psycopg

    target = h.Target("postgres", pg_dsn, f"page_{uuid.uuid4().hex[:10]}")
    info = json.loads(target.conn_json())
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DB", json.dumps({**info, "password": PASSWORD}))  # trust auth ignores it
    monkeypatch.setenv("HUBSPOT_SYNC_SCHEMA", target.schema)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn, Dialect("postgres", schema=target.schema))
        conn.execute(f'INSERT INTO "{target.schema}".sync_runs (run_id, object_type, status, error, started_at, finished_at) '
                     "VALUES ('r1', 'deals', 'failed', %s, now(), now())", (f"OperationalError: postgresql://u:{PASSWORD}@db/x",))
    try:
        client = page_client()
        page, data = client.get("/"), client.get("/api/summary")
        assert page.status_code == 200 and "postgresql://u:***@db/x" in page.text and PASSWORD not in page.text
        assert data.status_code == 200 and PASSWORD not in data.text and "failed" in data.text
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{target.schema}" CASCADE')
