"""Versioned migrations: idempotent, and an upgrade from v1 keeps the data in place."""

from __future__ import annotations

from finance_testdata import iso, rec, write_run
from hubspot_finance.schema import LATEST_VERSION, Dialect, applied_versions, migrate


def test_upgrade_from_v1_with_data(db, zone):
    d = Dialect(db.kind, schema=db.schema)
    conn = db.connect()
    assert migrate(conn, d, target=1) == [1]
    cur = conn.cursor()
    p = d.param
    cur.execute(f"INSERT INTO {d.t('contracts')} (hubspot_deal_id, amount, currency, updated_at, is_deleted) VALUES ({p}, {p}, {p}, {p}, {p})",
                ("100", "10.10", "NOK", iso(1) if db.kind == "sqlite" else "2024-01-01T00:00:00Z", False if db.kind == "postgres" else 0))
    conn.commit()
    assert applied_versions(conn, d) == [1]
    conn.close()
    # the package upgrade: the next load migrates first, then loads on top of the old rows
    write_run(zone, "r1", deals=[rec("101", iso(2), amount="5", dealname="new")])
    s = db.load(zone, "r1")
    assert s.migrations_applied == list(range(2, LATEST_VERSION + 1))
    assert db.rows("contracts", "hubspot_deal_id, amount, currency, validation_warnings") == [
        {"hubspot_deal_id": "100", "amount": "10.1", "currency": "NOK", "validation_warnings": None},
        {"hubspot_deal_id": "101", "amount": "5", "currency": "NOK", "validation_warnings": None}]
    conn = db.connect()
    assert applied_versions(conn, d) == list(range(1, LATEST_VERSION + 1))
    assert migrate(conn, d) == []
    conn.close()


RUN_V4_COLUMNS = {"daily_budget_left", "portal_id"}


def _column_types(conn, d: Dialect, table: str) -> dict[str, tuple[str, bool]]:
    """column -> (declared type, nullable)"""
    cur = conn.cursor()
    if d.name == "sqlite":
        cur.execute(f"PRAGMA table_info({d.t(table)})")
        return {r[1]: (r[2].upper(), not r[3]) for r in cur.fetchall()}
    cur.execute("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s", (d.schema, table))
    return {r[0]: (r[1].upper(), r[2] == "YES") for r in cur.fetchall()}


def test_a_new_database_gets_the_budget_and_portal_of_each_run(db):
    d = Dialect(db.kind, schema=db.schema)
    conn = db.connect()
    assert migrate(conn, d) == list(range(1, LATEST_VERSION + 1))
    types = _column_types(conn, d, "sync_runs")
    conn.close()
    integer = "INTEGER" if db.kind == "sqlite" else "BIGINT"
    assert {c: types[c] for c in RUN_V4_COLUMNS} == {"daily_budget_left": (integer, True), "portal_id": (integer, True)}


def test_upgrade_from_v3_keeps_the_runs_and_records_budget_and_portal_from_then_on(db, zone):
    d = Dialect(db.kind, schema=db.schema)
    conn = db.connect()
    assert migrate(conn, d, target=3) == [1, 2, 3]
    assert not RUN_V4_COLUMNS & set(_column_types(conn, d, "sync_runs"))
    p = d.param
    conn.cursor().execute(
        f"INSERT INTO {d.t('sync_runs')} (run_id, object_type, mode, inserted, api_calls, started_at, status) "
        f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
        ("r0", "deals", "incremental", 4, 12, iso(1) if db.kind == "sqlite" else "2024-01-01T00:00:00Z", "success"))
    conn.commit()
    assert applied_versions(conn, d) == [1, 2, 3]
    conn.close()
    # the package upgrade: the next load migrates first, then records both for its own rows
    write_run(zone, "r1", deals=[rec("101", iso(2), amount="5", dealname="new")])
    s = db.load(zone, "r1")
    assert s.migrations_applied == list(range(4, LATEST_VERSION + 1))
    assert db.rows("sync_runs", "run_id, mode, inserted, api_calls, daily_budget_left, portal_id, status",
                   where="object_type = 'deals'", order="run_id") == [
        {"run_id": "r0", "mode": "incremental", "inserted": 4, "api_calls": 12, "daily_budget_left": None,
         "portal_id": None, "status": "success"},
        {"run_id": "r1", "mode": "incremental", "inserted": 1, "api_calls": 3, "daily_budget_left": None,
         "portal_id": 1, "status": "success"}]
    conn = db.connect()
    assert applied_versions(conn, d) == list(range(1, LATEST_VERSION + 1))
    assert migrate(conn, d) == []
    conn.close()


def test_entity_tables_leave_room_for_updates_on_their_page(db):
    """PostgreSQL: fillfactor 80 on the entity tables, so a nightly update stays on its page (HOT)."""
    d = Dialect(db.kind, schema=db.schema)
    conn = db.connect()
    migrate(conn, d)
    if db.kind == "postgres":
        rows = conn.execute("SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = %s AND c.relname IN ('customers', 'companies', 'contracts') ORDER BY 1",
                            (db.schema,)).fetchall()
        assert rows == [(t, ["fillfactor=80"]) for t in ("companies", "contracts", "customers")]
    assert applied_versions(conn, d) == list(range(1, LATEST_VERSION + 1))
    conn.close()
