"""Load semantics on SQLite and PostgreSQL: upserts, replays, deletes, merges, restores, associations,
contract changes, rejects, watermarks, atomicity under kill -9, serialized concurrent loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from finance_testdata import assoc, iso, rec, write_run
from hubspot_finance.load import BLOCK_ENV, LoadConfig, LoadPlan
from hubspot_finance.mapping import validate_mapping, _default_raw
from hubspot_finance.rawzone import RawZone
from hubspot_finance.state import read_watermark, read_watermarks

SNAPSHOT_TABLES = ["customers", "companies", "contracts", "contract_contacts", "contract_companies",
                   "customer_companies", "contract_changes", "rejected_records", "sync_runs", "sync_state"]


def snapshot(db, drop=("synced_at", "sync_run_id")):
    out = {}
    for t in SNAPSHOT_TABLES:
        out[t] = [{k: v for k, v in r.items() if k not in drop} for r in db.rows(t)]
    return out


def deal(rid, updated, **p):
    base = {"dealname": f"Deal {rid}", "amount": "100.50", "dealstage": "appointmentscheduled", "pipeline": "default",
            "closedate": "2024-06-30T22:00:00.000Z", "deal_currency_code": "NOK"}
    base.update(p)
    return rec(rid, updated, **base)


def test_first_load_exact_rows(db, zone):
    write_run(
        zone, "r1",
        contacts=[rec("1", iso(2), email=" Ola@Example.NO ", firstname="Ola", lastname="Nordmann", phone="22 33 44 55",
                      company="Acme AS", zip="0150", city="Oslo", country="Norway", lifecyclestage="customer", hubspot_owner_id="55")],
        companies=[rec("10", iso(2), name="Acme AS", domain="acme.no", org_number="974 760 673", zip="0150")],
        deals=[deal("100", iso(3), amount="0.1", amount_in_home_currency="1e3", deal_currency_code="", dealstage="closedwon"),
               deal("101", iso(3), amount="1234567890.12", deal_currency_code="eur", dealstage="oldstage", closedate="2024-02-29")],
        associations={
            ("deals", "companies"): ([assoc("100", ("10", [341, 5], [None, None]))], []),
            ("deals", "contacts"): ([assoc("100", ("1", [3], ["Buyer"]))], []),
            ("contacts", "companies"): ([assoc("1", ("10", [279, 1], [None, None]))], []),
        },
    )
    s = db.load(zone, "r1")
    assert s.status == "success"
    assert (s.objects["deals"].inserted, s.objects["contacts"].inserted, s.objects["companies"].inserted) == (2, 1, 1)
    c = db.rows("customers")[0]
    assert {k: c[k] for k in ("hubspot_contact_id", "email", "first_name", "last_name", "phone", "company_name", "postal_code",
                             "city", "country", "lifecycle_stage", "hubspot_owner_id", "created_at", "updated_at",
                             "is_deleted", "deleted_at", "merged_into_contact_id", "sync_run_id", "validation_warnings")} == {
        "hubspot_contact_id": "1", "email": "ola@example.no", "first_name": "Ola", "last_name": "Nordmann",
        "phone": "+4722334455", "company_name": "Acme AS", "postal_code": "0150", "city": "Oslo", "country": "Norway",
        "lifecycle_stage": "customer", "hubspot_owner_id": "55", "created_at": iso(1), "updated_at": iso(2),
        "is_deleted": False, "deleted_at": None, "merged_into_contact_id": None, "sync_run_id": "r1", "validation_warnings": None,
    }
    assert c["properties"]["email"] == " Ola@Example.NO " and c["properties"]["phone"] == "22 33 44 55"
    co = db.rows("companies")[0]
    assert (co["name"], co["domain"], co["organization_number"]) == ("Acme AS", "acme.no", "974760673")
    d100, d101 = db.rows("contracts")
    pick = ("amount", "currency", "amount_home_currency", "pipeline_label", "stage_id", "stage_label", "is_closed", "is_won",
            "close_date", "primary_company_id")
    assert {k: d100[k] for k in pick} == {"amount": "0.1", "currency": "NOK", "amount_home_currency": "1000",
                                          "pipeline_label": "Sales", "stage_id": "closedwon", "stage_label": "Closed won",
                                          "is_closed": True, "is_won": True, "close_date": "2024-07-01", "primary_company_id": "10"}
    assert {k: d101[k] for k in pick} == {"amount": "1234567890.12", "currency": "EUR", "amount_home_currency": None,
                                          "pipeline_label": "Sales", "stage_id": "oldstage", "stage_label": "Old stage",
                                          "is_closed": False, "is_won": False, "close_date": "2024-02-29", "primary_company_id": None}
    assert db.rows("contract_contacts", "hubspot_deal_id, hubspot_contact_id, is_primary, labels") == [
        {"hubspot_deal_id": "100", "hubspot_contact_id": "1", "is_primary": False, "labels": ["Buyer"]}]
    assert db.rows("customer_companies", "hubspot_contact_id, hubspot_company_id, is_primary, labels") == [
        {"hubspot_contact_id": "1", "hubspot_company_id": "10", "is_primary": True, "labels": []}]
    runs = db.rows("sync_runs", "object_type, mode, extracted, loaded, inserted, updated, unchanged, rejected, deleted, api_calls, status, window_end")
    assert runs[2] == {"object_type": "deals", "mode": "incremental", "extracted": 2, "loaded": 2, "inserted": 2, "updated": 0,
                       "unchanged": 0, "rejected": 0, "deleted": 0, "api_calls": 3, "status": "success", "window_end": "2024-02-01T00:00:00.000Z"}
    assert db.rows("contract_changes") == []


def _extractor_calls(tmp_path, run_id: str, **calls: dict) -> None:
    """Give committed records manifests the extractor's call stats (``calls``) in place of write_run's ``api_calls``."""
    for object_type, stats in calls.items():
        path = tmp_path / "raw" / RawZone.records_rel(object_type, run_id) / "_manifest.json"
        manifest = json.loads(path.read_text())
        del manifest["extra"]["api_calls"]
        manifest["extra"]["calls"] = stats
        path.write_text(json.dumps(manifest))


def test_sync_runs_record_each_objects_daily_budget_left_and_the_portal(db, zone, tmp_path):
    write_run(zone, "r1", deals=[deal("100", iso(2))], contacts=[rec("1", iso(2), email="a@b.no")])
    # as the extractor writes them; companies' extraction saw no daily-limit header
    _extractor_calls(tmp_path, "r1", deals={"total_calls": 7, "daily_remaining": 480},
                     contacts={"total_calls": 5, "calls": {"search": 2, "batch_read": 3}, "daily_remaining": 490},
                     companies={"total_calls": 1, "daily_remaining": None})
    db.load(zone, "r1")
    assert LoadPlan.from_zone(zone, "r1").portal_id == 1  # the reference dataset's account.json
    cols = "run_id, object_type, api_calls, daily_budget_left, portal_id, status"
    assert db.rows("sync_runs", cols, order="run_id, object_type") == [
        {"run_id": "r1", "object_type": "companies", "api_calls": 1, "daily_budget_left": None, "portal_id": 1, "status": "success"},
        {"run_id": "r1", "object_type": "contacts", "api_calls": 5, "daily_budget_left": 490, "portal_id": 1, "status": "success"},
        {"run_id": "r1", "object_type": "deals", "api_calls": 7, "daily_budget_left": 480, "portal_id": 1, "status": "success"}]

    # a run without its reference dataset loads with defaults and records no portal
    write_run(zone, "r2", deals=[deal("101", iso(3))])
    (tmp_path / "raw" / RawZone.reference_rel("r2") / "_manifest.json").unlink()
    _extractor_calls(tmp_path, "r2", deals={"total_calls": 4, "daily_remaining": 470})
    db.load(zone, "r2")
    assert db.rows("sync_runs", cols, where="run_id = 'r2' AND object_type = 'deals'") == [
        {"run_id": "r2", "object_type": "deals", "api_calls": 4, "daily_budget_left": 470, "portal_id": None, "status": "success"}]

    # a failed load records both as well
    write_run(zone, "r3", deals=[deal("102", iso(4))])
    _extractor_calls(tmp_path, "r3", deals={"total_calls": 2, "daily_remaining": 460})
    from hubspot_finance.load import load_run
    from hubspot_finance.transform_step import transform_run

    transform_run(zone, "r3", config=db.config)
    for part in (tmp_path / "raw" / RawZone.staged_rel("deals", "r3")).glob("*.parquet"):
        part.unlink()
    conn = db.connect()
    with pytest.raises(Exception, match="missing"):
        load_run(conn, LoadPlan.from_zone(zone, "r3", config=db.config))
    conn.close()
    assert db.rows("sync_runs", cols, where="run_id = 'r3' AND object_type = 'deals'") == [
        {"run_id": "r3", "object_type": "deals", "api_calls": 2, "daily_budget_left": 460, "portal_id": 1, "status": "failed"}]


def test_rerun_is_idempotent_and_replay_never_overwrites(db, zone):
    write_run(zone, "r1", deals=[deal("100", iso(3))], contacts=[rec("1", iso(3), email="a@b.no")])
    db.load(zone, "r1")
    before = snapshot(db, drop=())
    s = db.load(zone, "r1")  # same run again
    assert (s.objects["deals"].unchanged, s.objects["deals"].updated, s.objects["deals"].inserted) == (1, 0, 0)
    after = snapshot(db, drop=())
    for t in SNAPSHOT_TABLES:
        if t != "sync_runs" and t != "sync_state":
            assert after[t] == before[t], t
    # newer data updates and records the changes
    write_run(zone, "r2", deals=[deal("100", iso(5), amount="200", dealstage="closedwon", closedate="2024-07-31T22:00:00Z")])
    s = db.load(zone, "r2")
    assert s.objects["deals"].updated == 1 and s.contract_changes == 3
    assert db.rows("contract_changes", "hubspot_deal_id, field, old_value, new_value, changed_at, sync_run_id", order="field") == [
        {"hubspot_deal_id": "100", "field": "amount", "old_value": "100.5", "new_value": "200", "changed_at": iso(5), "sync_run_id": "r2"},
        {"hubspot_deal_id": "100", "field": "close_date", "old_value": "2024-07-01", "new_value": "2024-08-01", "changed_at": iso(5), "sync_run_id": "r2"},
        {"hubspot_deal_id": "100", "field": "stage_id", "old_value": "appointmentscheduled", "new_value": "closedwon", "changed_at": iso(5), "sync_run_id": "r2"},
    ]
    # replaying the old run changes nothing and is counted as stale
    state = snapshot(db)
    s = db.load(zone, "r1-replay", raw_run_id="r1")
    assert s.objects["deals"].stale == 1 and s.objects["deals"].updated == 0
    now = snapshot(db)
    assert now["contracts"] == state["contracts"] and now["contract_changes"] == state["contract_changes"]
    assert db.rows("contracts", "amount, stage_id")[0] == {"amount": "200", "stage_id": "closedwon"}


def test_duplicates_in_a_run_newest_wins(db, zone):
    write_run(zone, "r1", deals=[deal("100", iso(5), amount="5"), deal("100", iso(3), amount="3"),
                                 deal("100", iso(4), amount="4"), deal("100", iso(2), amount="2")])  # spans 2 chunks
    s = db.load(zone, "r1")
    assert (s.objects["deals"].distinct, s.objects["deals"].inserted) == (1, 1)
    assert db.rows("contracts", "amount, updated_at") == [{"amount": "5", "updated_at": iso(5)}]


def test_delete_restore_and_merge(db, zone):
    write_run(zone, "r1", contacts=[rec("1", iso(2), email="a@b.no"), rec("2", iso(2), email="c@d.no"), rec("3", iso(2))])
    db.load(zone, "r1")
    write_run(zone, "r2", contacts=[
        rec("1", iso(4), archived=True, archived_at=iso(4, 1), email="a@b.no"),
        rec("3", iso(5), hs_merged_object_ids="2"),  # 3 absorbed 2
    ])
    s = db.load(zone, "r2")
    assert (s.objects["contacts"].deleted, s.objects["contacts"].merged) == (2, 1)
    rows = db.rows("customers", "hubspot_contact_id, email, is_deleted, deleted_at, merged_into_contact_id, updated_at")
    assert rows == [
        {"hubspot_contact_id": "1", "email": "a@b.no", "is_deleted": True, "deleted_at": iso(4, 1), "merged_into_contact_id": None, "updated_at": iso(4)},
        {"hubspot_contact_id": "2", "email": "c@d.no", "is_deleted": True, "deleted_at": iso(5), "merged_into_contact_id": "3", "updated_at": iso(5)},
        {"hubspot_contact_id": "3", "email": None, "is_deleted": False, "deleted_at": None, "merged_into_contact_id": None, "updated_at": iso(5)},
    ]
    # replaying r1 neither revives the archived nor un-merges the merged
    db.load(zone, "r1-replay", raw_run_id="r1")
    assert db.rows("customers", "hubspot_contact_id, is_deleted, merged_into_contact_id") == [
        {"hubspot_contact_id": "1", "is_deleted": True, "merged_into_contact_id": None},
        {"hubspot_contact_id": "2", "is_deleted": True, "merged_into_contact_id": "3"},
        {"hubspot_contact_id": "3", "is_deleted": False, "merged_into_contact_id": None},
    ]
    # restore: archived=false with a newer updatedAt revives the row
    write_run(zone, "r3", contacts=[rec("1", iso(6), email="a@b.no")])
    db.load(zone, "r3")
    assert db.rows("customers", "hubspot_contact_id, is_deleted, deleted_at", where="hubspot_contact_id = '1'") == [
        {"hubspot_contact_id": "1", "is_deleted": False, "deleted_at": None}]


def test_association_replacement_and_primary(db, zone):
    write_run(zone, "r1", deals=[deal("100", iso(2)), deal("101", iso(2))], associations={
        ("deals", "companies"): ([assoc("100", ("10", [341, 5], [None, None]), ("11", [341], [None])),
                                  assoc("101", ("12", [341], [None]))], []),
    })
    db.load(zone, "r1")
    assert db.rows("contracts", "hubspot_deal_id, primary_company_id") == [
        {"hubspot_deal_id": "100", "primary_company_id": "10"}, {"hubspot_deal_id": "101", "primary_company_id": None}]
    # r2: deal 100 now only has company 11 (primary); deal 101 was read and has no associations; 102 not covered
    write_run(zone, "r2", associations={
        ("deals", "companies"): ([assoc("100", ("11", [341, 5], [None, "Primary"]))], ["101"]),
    })
    s = db.load(zone, "r2")
    assert (s.associations["deals_to_companies"].removed, s.associations["deals_to_companies"].covered_from_ids) == (2, 2)
    assert db.rows("contract_companies", "hubspot_deal_id, hubspot_company_id, is_primary, labels", order="1, 2") == [
        {"hubspot_deal_id": "100", "hubspot_company_id": "11", "is_primary": True, "labels": ["Primary"]}]
    assert db.rows("contracts", "hubspot_deal_id, primary_company_id") == [
        {"hubspot_deal_id": "100", "primary_company_id": "11"}, {"hubspot_deal_id": "101", "primary_company_id": None}]


def test_merge_moves_associations_to_the_survivor(db, zone):
    write_run(zone, "r1", contacts=[rec("1", iso(2)), rec("2", iso(2))], deals=[deal("100", iso(2)), deal("101", iso(2))],
              associations={("deals", "contacts"): ([assoc("100", ("1", [3], [None])),
                                                     assoc("101", ("1", [3], [None]), ("2", [3], [None]))], [])})
    db.load(zone, "r1")
    # Contact 1 is merged into 2; the deals were not modified, so their associations are not re-read.
    write_run(zone, "r2", contacts=[rec("2", iso(3), hs_merged_object_ids="1")])
    db.load(zone, "r2")
    assert db.rows("contract_contacts", "hubspot_deal_id, hubspot_contact_id", order="1, 2") == [
        {"hubspot_deal_id": "100", "hubspot_contact_id": "2"}, {"hubspot_deal_id": "101", "hubspot_contact_id": "2"}]
    assert db.rows("customers", "hubspot_contact_id, merged_into_contact_id, is_deleted", order="1") == [
        {"hubspot_contact_id": "1", "merged_into_contact_id": "2", "is_deleted": True},
        {"hubspot_contact_id": "2", "merged_into_contact_id": None, "is_deleted": False}]


def test_rejects_recorded_once_per_run_with_all_reasons(db, zone):
    write_run(zone, "r1", deals=[deal("100", iso(2)), deal("101", iso(2), amount="12 000", deal_currency_code="SEK"), deal(None, iso(2))])
    s = db.load(zone, "r1")
    s = db.load(zone, "r1")
    assert s.objects["deals"].rejected == 2
    rej = db.rows("rejected_records", "object_type, hubspot_id, run_id, reasons, raw_record", order="hubspot_id")
    assert len(rej) == 2
    by_id = {r["hubspot_id"]: r for r in rej}
    assert [x["rule"] for x in by_id["101"]["reasons"]] == ["invalid_amount", "unknown_currency"]
    assert by_id["101"]["raw_record"]["properties"]["amount"] == "12 000"
    assert [x["rule"] for x in by_id[None]["reasons"]] == ["missing_id"]
    assert [r["hubspot_deal_id"] for r in db.rows("contracts")] == ["100"]


def test_watermark_greatest_and_read(db, zone):
    conn = db.connect()
    assert read_watermarks(conn, ["deals"], schema=db.schema) == {"deals": None}
    conn.close()
    write_run(zone, "r1", deals=[deal("100", iso(2))], window_end="2024-03-01T00:00:00Z")
    db.load(zone, "r1")
    write_run(zone, "r0", deals=[deal("100", iso(1))], window_end="2024-02-01T00:00:00Z")
    db.load(zone, "r0")
    conn = db.connect()
    wm = read_watermark(conn, "deals", schema=db.schema)
    conn.close()
    assert wm.isoformat() == "2024-03-01T00:00:00+00:00"


def _watermark(db, object_type="deals"):
    conn = db.connect()
    try:
        wm = read_watermark(conn, object_type, schema=db.schema)
    finally:
        conn.close()
    return wm.isoformat() if wm else None


def test_watermark_follows_the_extractors_advances_to(db, zone):
    write_run(zone, "r1", deals=[deal("100", iso(2))], advances_to="2024-03-01T00:00:00+00:00")
    db.load(zone, "r1")
    assert _watermark(db) == "2024-03-01T00:00:00+00:00"
    # A manual range that does not join up with the watermark loads its data but leaves the watermark.
    write_run(zone, "range", deals=[deal("100", iso(3))], mode="range", window_end="2024-06-01T00:00:00Z", advances_to=None)
    db.load(zone, "range")
    assert _watermark(db) == "2024-03-01T00:00:00+00:00"
    assert db.rows("contracts", "updated_at")[0]["updated_at"].startswith("2024-01-03")
    assert [r["mode"] for r in db.rows("sync_runs", "mode", where="object_type = 'deals'", order="started_at")] == [
        "incremental", "range"]


def test_dry_run_reports_but_changes_nothing(db, zone):
    write_run(zone, "r1", deals=[deal("100", iso(2))], advances_to="2024-03-01T00:00:00+00:00")
    db.load(zone, "r1")
    before = snapshot(db, drop=())
    write_run(zone, "r2", deals=[deal("100", iso(3), amount="200.00"), deal("101", iso(3))],
              advances_to="2024-04-01T00:00:00+00:00")
    summary = db.load(zone, "r2", config=LoadConfig(schema=db.schema, dry_run=True))
    assert summary.status == "dry_run"
    assert (summary.objects["deals"].inserted, summary.objects["deals"].updated) == (1, 1)
    assert summary.contract_changes == 1
    assert snapshot(db, drop=()) == before


def test_unreadable_database_is_never_taken_for_a_first_run(db):
    conn = db.connect()
    conn.close()
    with pytest.raises(Exception) as raised:
        read_watermarks(conn, ["deals"], schema=db.schema)
    assert "closed" in str(raised.value).lower()


def test_extra_mapped_columns(db, zone, tmp_path):
    raw = {"tables": {"customers": {"columns": {"email": "invoice_email"},
                                    "extra_columns": {"customer_number": {"property": "kundenr", "type": "number"},
                                                      "tags": {"property": "tags", "type": "list"}}}}}
    mapping = validate_mapping(raw, base=_default_raw())
    write_run(zone, "r1", contacts=[rec("1", iso(2), invoice_email="F@x.no", kundenr="0042", tags="a;b"),
                                   rec("2", iso(2), kundenr="x")], mapping=mapping)
    cfg = LoadConfig(schema=db.schema, mapping=mapping)
    db.load(zone, "r1", config=cfg)
    rows = db.rows("customers", "hubspot_contact_id, email, customer_number, tags")
    assert [(r["email"], str(r["customer_number"]) if r["customer_number"] is not None else None) for r in rows] == [("f@x.no", "42"), (None, None)]
    assert [r["tags"] if not isinstance(r["tags"], str) else __import__("json").loads(r["tags"]) for r in rows] == [["a", "b"], None]


def test_load_through_airflow_hook(db, zone, monkeypatch):
    write_run(zone, "r1", deals=[deal("100", iso(2))])
    if db.kind == "sqlite":
        from airflow.providers.sqlite.hooks.sqlite import SqliteHook

        monkeypatch.setenv("AIRFLOW_CONN_FIN_DB", json.dumps({"conn_type": "sqlite", "host": db.target}))
        hook = SqliteHook(sqlite_conn_id="fin_db")
    else:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        monkeypatch.setenv("AIRFLOW_CONN_FIN_DB", db.target)
        hook = PostgresHook(postgres_conn_id="fin_db")
    from hubspot_finance.transform_step import transform_and_load

    s = transform_and_load(hook, zone, "r1", config=db.config)
    assert s.objects["deals"].inserted == 1
    assert read_watermarks(hook, ["deals"], schema=db.schema)["deals"].isoformat() == "2024-02-01T00:00:00+00:00"


# ------------------------------------------------------------------ atomicity and concurrency
_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {testdir!r})
    from finance_testdata import Db
    from hubspot_finance.rawzone import RawZone
    db = Db({kind!r}, {target!r}, {schema!r})
    db.load(RawZone({root!r}), {run!r})
    """
)


def _start_blocked_load(db, zone, run_id, tmp_path):
    marker = tmp_path / f"blocked-{run_id}"
    code = _CHILD.format(testdir=str(Path(__file__).parent), kind=db.kind, target=db.target, schema=db.schema,
                         root=str(zone.root), run=run_id)
    env = {**os.environ, BLOCK_ENV: str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        assert time.time() < deadline, "child never reached the block point"
        time.sleep(0.05)
    return proc


def test_kill_9_mid_load_leaves_tables_unchanged_and_next_run_converges(db, zone, tmp_path):
    write_run(zone, "r1", deals=[deal("100", iso(2))], companies=[rec("10", iso(2), name="A")], window_end="2024-02-01T00:00:00Z")
    db.load(zone, "r1")
    before = snapshot(db, drop=())
    write_run(zone, "r2", deals=[deal("100", iso(4), amount="999")], companies=[rec("10", iso(4), name="B"), rec("11", iso(4), name="C")],
              window_end="2024-03-01T00:00:00Z")
    proc = _start_blocked_load(db, zone, "r2", tmp_path)  # blocks after companies are upserted (uncommitted)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert snapshot(db, drop=()) == before
    s = db.load(zone, "r2")
    assert s.status == "success"
    assert db.rows("companies", "hubspot_company_id, name") == [{"hubspot_company_id": "10", "name": "B"}, {"hubspot_company_id": "11", "name": "C"}]
    assert db.rows("contracts", "amount")[0] == {"amount": "999"}
    assert db.rows("sync_state", "object_type, watermark") == [
        {"object_type": o, "watermark": "2024-03-01T00:00:00.000Z"} for o in ("companies", "contacts", "deals")]


def test_concurrent_loads_are_serialized(db, zone, tmp_path):
    write_run(zone, "r1", deals=[deal("100", iso(2), amount="1")])
    db.load(zone, "r1")  # migrations done up front
    write_run(zone, "r2", deals=[deal("100", iso(3), amount="2")])
    write_run(zone, "r3", deals=[deal("100", iso(4), amount="3")])
    proc = _start_blocked_load(db, zone, "r2", tmp_path)  # holds the lock
    done = threading.Event()
    errors = []

    def second():
        try:
            db.load(zone, "r3")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        done.set()

    th = threading.Thread(target=second)
    th.start()
    assert not done.wait(1.5), "second load did not wait for the first"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert done.wait(60) and not errors, errors
    th.join()
    assert db.rows("contracts", "amount")[0] == {"amount": "3"}
    assert [r["run_id"] for r in db.rows("sync_runs", "DISTINCT run_id")] == ["r1", "r3"]


def test_duplicates_across_chunks_rejects_and_replay(db, zone):
    """Duplicate ids across raw chunks, a rejected version, then a replay of the same run: one row per id, nothing changes."""
    write_run(zone, "r1", deals=[deal("100", iso(5), amount="5"), deal("100", iso(3), amount="3"), deal("101", iso(4)),
                                 deal("100", iso(4), amount="4"), deal("102", iso(2), amount="x")],
              contacts=[rec("1", iso(3), email="A@b.no"), rec("2", iso(3), archived=True)])
    s = db.load(zone, "r1")
    assert (s.objects["deals"].distinct, s.objects["deals"].inserted, s.objects["deals"].rejected) == (2, 2, 1)
    assert db.rows("contracts", "hubspot_deal_id, amount, updated_at", order="hubspot_deal_id") == [
        {"hubspot_deal_id": "100", "amount": "5", "updated_at": iso(5)},
        {"hubspot_deal_id": "101", "amount": "100.5", "updated_at": iso(4)}]
    before = snapshot(db, drop=())
    s = db.load(zone, "r1")  # staged path: everything unchanged, synced_at kept
    assert (s.objects["deals"].unchanged, s.objects["deals"].updated, s.objects["contacts"].unchanged) == (2, 0, 2)
    after = snapshot(db, drop=())
    assert after["contracts"] == before["contracts"] and after["customers"] == before["customers"]
