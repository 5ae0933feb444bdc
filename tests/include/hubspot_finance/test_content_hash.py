"""The per-row content hash: deterministic, sensitive to every loaded value, and what lets a load skip
unchanged rows (PostgreSQL: not rewritten at all) without changing what the tables or the summary say."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date, datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finance_testdata import iso, rec, write_run
from hubspot_finance.row_hash import HASH_COLUMN, row_hashes
from hubspot_finance.transform_step import MONEY, ARROW_TYPES

COLUMNS = [("id", "text"), ("amount", "money"), ("updated_at", "ts"), ("close_date", "date"), ("is_deleted", "bool"),
           ("properties", "json"), ("n", "int")]
_text = st.one_of(st.none(), st.text(max_size=12))
_values = {
    "text": _text, "json": _text,
    "money": st.one_of(st.none(), st.decimals(min_value=-10**12, max_value=10**12, places=4, allow_nan=False,
                                                  allow_infinity=False)),
    "ts": st.one_of(st.none(), st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))
                    .map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=timezone.utc))),
    "date": st.one_of(st.none(), st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1))),
    "bool": st.one_of(st.none(), st.booleans()),
    "int": st.one_of(st.none(), st.integers(-2**62, 2**62)),
}
row_strategy = st.fixed_dictionaries({c: _values[t] for c, t in COLUMNS})


def _table(rows: list[dict]) -> pa.Table:
    types = {**ARROW_TYPES, "money": MONEY}
    return pa.table({c: pa.array([r[c] for r in rows], types[t]) for c, t in COLUMNS})


def _same(a, b, logical: str) -> bool:
    if logical == "money" and a is not None and b is not None:
        return Decimal(a) == Decimal(b)  # 1.5 and 1.50 are one value: one hash
    return a == b and type(a) is type(b)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row_strategy, row_strategy, st.sampled_from(COLUMNS))
def test_the_hash_is_deterministic_and_changes_with_any_loaded_value(row, other, column):
    name, logical = column
    changed = {**row, name: other[name]}
    h = row_hashes(_table([row, row, changed]), COLUMNS).to_pylist()
    assert h[0] == h[1] == row_hashes(_table([row]), COLUMNS).to_pylist()[0]
    if _same(row[name], other[name], logical):
        assert h[2] == h[0]
    else:
        assert h[2] != h[0], (name, row[name], other[name])


def test_the_hash_is_the_same_in_every_process():
    """A fixed row's hash is a constant: no per-process seed (Python's hash()) and no library version in it."""
    code = ("from datetime import datetime, timezone; from decimal import Decimal; import pyarrow as pa; "
            "from hubspot_finance.row_hash import row_hashes; "
            "t = pa.table({'id': ['1'], 'amount': pa.array([Decimal('12.50')], pa.decimal256(60, 30)), "
            "'updated_at': pa.array([datetime(2024, 1, 2, tzinfo=timezone.utc)], pa.timestamp('ms', tz='UTC'))}); "
            "print(row_hashes(t, [('id', 'text'), ('amount', 'money'), ('updated_at', 'ts')])[0].as_py())")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.strip()
            for _ in range(2)}
    canonical = b"1:1" + b"4:12.5" + b"13:1704153600000"  # id, trimmed decimal, epoch ms
    assert outs == {str(int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "little", signed=True))}


def _contacts(n: int, day: int = 2, **changes: dict) -> list[dict]:
    return [rec(str(i), iso(changes.get(str(i), {}).get("day", day)), email=f"p{i}@example.no",
                city=changes.get(str(i), {}).get("city", "Oslo")) for i in range(1, n + 1)]


def _pg(db):
    conn = db.connect()
    conn.autocommit = True
    return conn


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgres"], indirect=True)  # xmin is PostgreSQL's row version; no skipped SQLite twin
def test_an_unchanged_row_is_not_rewritten(db, zone):
    write_run(zone, "r1", contacts=_contacts(5))
    db.load(zone, "r1")
    write_run(zone, "r1b", contacts=[rec("99", iso(2), email="x@example.no")])  # the table is not empty any more
    db.load(zone, "r1b")
    with _pg(db) as conn:
        before = dict(conn.execute(f"SELECT hubspot_contact_id, xmin::text FROM {db.t('customers')}").fetchall())
    write_run(zone, "r2", contacts=_contacts(5, **{"3": {"day": 4, "city": "Bergen"}}))
    s = db.load(zone, "r2").objects["contacts"]
    assert (s.distinct, s.inserted, s.updated, s.unchanged, s.stale) == (5, 0, 1, 4, 0)
    with _pg(db) as conn:
        after = dict(conn.execute(f"SELECT hubspot_contact_id, xmin::text FROM {db.t('customers')}").fetchall())
    assert {k for k in before if before[k] != after[k]} == {"3"}
    assert db.rows("customers", "city", where="hubspot_contact_id = '3'") == [{"city": "Bergen"}]


def test_a_row_stored_before_the_hash_is_compared_and_gets_its_hash(db, zone):
    write_run(zone, "r1", contacts=_contacts(4))
    db.load(zone, "r1")
    conn = db.connect()
    try:  # as the migration leaves rows loaded before it
        conn.execute(f"UPDATE {db.t('customers')} SET {HASH_COLUMN} = NULL")
        conn.commit()
    finally:
        conn.close()
    write_run(zone, "r2", contacts=_contacts(4, **{"2": {"day": 4, "city": "Bergen"}}))
    s = db.load(zone, "r2").objects["contacts"]
    assert (s.distinct, s.inserted, s.updated, s.unchanged, s.stale) == (4, 0, 1, 3, 0)
    rows = db.rows("customers", f"hubspot_contact_id, city, sync_run_id, {HASH_COLUMN}")
    assert [(r["city"], r["sync_run_id"]) for r in rows] == [("Oslo", "r1"), ("Bergen", "r2"), ("Oslo", "r1"), ("Oslo", "r1")]
    assert rows[1][HASH_COLUMN] is not None
    if db.kind == "postgres":  # the unchanged rows got their hash too, so the next load skips them
        assert all(r[HASH_COLUMN] is not None for r in rows)


def test_a_merge_clears_the_hash_of_the_row_it_changes(db, zone):
    write_run(zone, "r1", contacts=_contacts(3))
    db.load(zone, "r1")
    write_run(zone, "r2", contacts=[rec("3", iso(5), email="p3@example.no", city="Oslo", hs_merged_object_ids="2")])
    db.load(zone, "r2")
    rows = {r["hubspot_contact_id"]: r for r in db.rows("customers", f"hubspot_contact_id, is_deleted, {HASH_COLUMN}")}
    assert rows["2"]["is_deleted"] and rows["2"][HASH_COLUMN] is None
    # the absorbed contact read again as it was is neither unchanged nor revived: the merge stays
    write_run(zone, "r3", contacts=_contacts(3, day=2))
    s = db.load(zone, "r3").objects["contacts"]
    assert (s.stale, s.unchanged) == (2, 1) and db.rows("customers", "is_deleted", where="hubspot_contact_id = '2'") == [{"is_deleted": True}]


def test_the_direct_copy_into_an_empty_table_gives_what_the_staged_path_gives(db, zone, monkeypatch):
    from hubspot_finance.load import staging

    contacts = _contacts(6) + [rec("7", iso(3), archived=True, archived_at=iso(3, 1), email="a@b.no"),
                               rec("8", iso(4), email="m@example.no", hs_merged_object_ids="2")]
    deals = [rec("100", iso(3), dealname="D", amount="100.50", deal_currency_code="NOK", pipeline="default",
                 dealstage="closedwon", closedate="2024-06-30T22:00:00.000Z")]
    write_run(zone, "r1", contacts=contacts, deals=deals)
    direct = db.load(zone, "r1")
    tables = ("customers", "contracts", "contract_changes")
    def rows(t):  # synced_at: when each load ran
        return [{k: v for k, v in r.items() if k not in ("synced_at", "recorded_at", "id")} for r in db.rows(t)]

    first = {t: rows(t) for t in tables}
    conn = db.connect()
    try:
        for t in tables:
            conn.execute(f"DELETE FROM {db.t(t)}")
        conn.commit()
    finally:
        conn.close()
    monkeypatch.setattr(staging, "table_is_empty", lambda ctx, decl: False)
    staged = db.load(zone, "r1")
    assert {t: rows(t) for t in tables} == first
    for name in ("contacts", "deals"):
        a, b = direct.objects[name], staged.objects[name]
        assert (a.distinct, a.inserted, a.updated, a.deleted, a.merged) == (b.distinct, b.inserted, b.updated, b.deleted, b.merged)
