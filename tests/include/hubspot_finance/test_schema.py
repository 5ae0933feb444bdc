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
