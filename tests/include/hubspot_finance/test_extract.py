"""Extraction against the sandbox: exact record sets for full and incremental runs, the search cap,
index lag, failed runs, schema drift, wide property sets, association paging and crashes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import numpy as np
import pytest

from hubspot_finance import extract
from hubspot_finance.objects import get_object
from hubspot_finance.rawzone import IncompleteDatasetError, RawZone
from hubspot_finance.timeparse import from_ms
from hubspot_finance.windows import Window, plan_window
from hubspot_provider.hooks.hubspot import HubSpotHook
from hubspot_sandbox.testing import run_sandbox

SIZES = {"seed": 21, "contacts": 600, "companies": 50, "deals": 240}
T0 = 1_790_000_000_000  # the sandbox clock, frozen, in epoch ms (2026-09-21)
LAG = timedelta(minutes=10)
OVERLAP = timedelta(minutes=30)


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox(**SIZES) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox):
    sandbox.control.reset(**SIZES)
    sandbox.control.freeze_clock(T0)
    yield sandbox
    sandbox.control.clear_faults()
    sandbox.control.configure(search_lag_ms=0, association_page_size=500)
    sandbox.control.unfreeze_clock()


@pytest.fixture()
def hook(sb, hubspot_connection):
    # The sandbox enforces no limits here; the limiter's behaviour is tested with the hook.
    conn_id = hubspot_connection(sb, search_requests_per_second=100, requests_per_ten_seconds=10_000)
    return HubSpotHook(conn_id, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture()
def zone(tmp_path):
    return RawZone(tmp_path.as_uri(), chunk_rows=250)


def truth(sb, object_type):
    """Live ids and their last-modified ms, straight from the sandbox store."""
    store = sb.portal.store(object_type)
    idx = np.nonzero(store.active_mask())[0]
    return {str(i): int(ms) for i, ms in zip(store.ids(idx), store.lastmod[idx])}


def run(hook, zone, object_type, window, run_id, extra=()):
    decl = get_object(object_type)
    extract.extract_reference(hook, zone, run_id, [object_type])
    definitions = zone.read_reference(run_id, f"properties_{object_type}")
    wanted = ["email", "firstname", "lastname", "company"] if object_type == "contacts" else ["dealname", "amount", "dealstage"]
    if object_type == "companies":
        wanted = ["name", "domain"]
    props, dropped = extract.resolve_properties(decl, wanted, definitions, extra=extra)
    return extract.extract_object(hook, zone, decl, window, run_id, props, dropped_properties=dropped)


def rows(zone, object_type, run_id):
    manifest = zone.records_manifest(object_type, run_id)
    out = {}
    for table in zone.iter_tables(manifest):
        for record in table.to_pylist():
            assert record["id"] not in out, f"id {record['id']} extracted twice"
            out[record["id"]] = record
    return out


def now():
    return from_ms(T0)


def test_first_run_is_full_and_exact(sb, hook, zone):
    window = plan_window(watermark=None, now=now(), lag_margin=LAG)
    manifest = run(hook, zone, "contacts", window, "r1")
    got = rows(zone, "contacts", "r1")
    live = truth(sb, "contacts")
    archived = {k for k, v in got.items() if v["archived"]}
    assert set(got) - archived == set(live)
    assert archived and all(got[a]["archived_at"] is not None for a in archived)
    assert manifest["mode"] == "full" and manifest["rows"] == len(got)
    # Values exactly as HubSpot has them.
    sample = sorted(live)[:20]
    for rid in sample:
        record = sb.control.get("contacts", rid)
        assert got[rid]["p:email"] == record["properties"].get("email")
        assert got[rid]["p:firstname"] == record["properties"].get("firstname")
    assert manifest["calls_per_1000_records"] <= 12 + 1000 / len(got) * 3  # full with associations, small portal
    assoc = zone.associations_manifest("contacts", "companies", "r1")
    covered = {i for t in zone.iter_from_ids(assoc) for i in t.column("from_id").to_pylist()}
    assert covered == set(live)


def test_incremental_after_creates_updates_archives_merges(sb, hook, zone):
    watermark = now() - LAG
    sb.control.advance_clock(60 * 60 * 1000)
    created = sb.control.create("contacts", {"email": "ny.kunde@example.no", "firstname": "Åse"})["id"]
    sb.control.modify("contacts", "105", {"firstname": "Østen"})
    sb.control.archive("contacts", "106")
    sb.control.merge("contacts", "110", "111")
    sb.control.advance_clock(30 * 60 * 1000)
    current = from_ms(sb.control.clock()["now_ms"])
    window = plan_window(watermark=watermark, now=current, overlap=OVERLAP, lag_margin=LAG)
    manifest = run(hook, zone, "contacts", window, "r2")
    got = rows(zone, "contacts", "r2")
    live_changed = {created, "105", "110"}
    assert {k for k, v in got.items() if not v["archived"]} == live_changed
    assert got["105"]["p:firstname"] == "Østen" and got[created]["p:firstname"] == "Åse"
    assert "111" in got["110"]["p:hs_merged_object_ids"].split(";")
    assert {k for k, v in got.items() if v["archived"]} == {"106"}
    assert manifest["mode"] == "incremental" and manifest["window_start"] == (watermark - OVERLAP).isoformat()


def test_same_millisecond_bulk_over_the_cap(hubspot_connection, tmp_path):
    with run_sandbox(seed=4, contacts=12_500, companies=10, deals=10) as sb:
        sb.control.freeze_clock(T0)
        touched = sb.control.bulk_touch("contacts", 10_300, at_ms=T0 - 3_600_000)
        hook = HubSpotHook(hubspot_connection(sb, search_requests_per_second=50))
        zone = RawZone(tmp_path.as_uri(), chunk_rows=5000)
        window = Window("incremental", from_ms(T0 - 7_200_000), from_ms(T0 - 600_000), from_ms(T0 - 600_000))
        manifest = run(hook, zone, "contacts", window, "bulk")
        got = rows(zone, "contacts", "bulk")
        expected = {rid for rid, ms in truth(sb, "contacts").items() if T0 - 7_200_000 <= ms < T0 - 600_000}
        assert touched["count"] == 10_300 and len(expected) == 10_300
        assert {k for k, v in got.items() if not v["archived"]} == expected
        assert manifest["search_slices"]["pages"] == 10_300 // 200 + 1  # one call per 200 records, however many share a millisecond
        assert manifest["records"] - manifest["archived"] == 10_300  # each id once


def test_window_straddling_index_lag_loses_nothing(sb, hook, zone):
    sb.control.set_search_lag(5 * 60 * 1000)  # HubSpot's index trails by five minutes
    first_watermark = now() - LAG
    sb.control.modify("contacts", "120", {"firstname": "Lagget"})  # stamped T0: not searchable until T0+5min
    run1 = plan_window(watermark=first_watermark - timedelta(hours=1), now=now(), overlap=OVERLAP, lag_margin=LAG)
    run(hook, zone, "contacts", run1, "lag1")
    assert "120" not in rows(zone, "contacts", "lag1")  # beyond the window's end (now - margin)
    sb.control.advance_clock(20 * 60 * 1000)
    run2 = plan_window(watermark=run1.advances_to, now=from_ms(sb.control.clock()["now_ms"]), overlap=OVERLAP, lag_margin=LAG)
    run(hook, zone, "contacts", run2, "lag2")
    assert rows(zone, "contacts", "lag2")["120"]["p:firstname"] == "Lagget"


def test_failed_run_then_next_scheduled_run_has_no_gap(sb, hook, zone):
    watermark = now() - LAG
    sb.control.advance_clock(3_600_000)
    sb.control.modify("deals", "9000000003", {"amount": "1500.50"})
    sb.control.advance_clock(3_600_000)
    # Night 2 fails mid-extraction: HubSpot keeps answering 503.
    sb.control.add_fault(path="/search", status=503)
    failing = HubSpotHook(hook.hubspot_conn_id, max_retries=1, backoff_base=0.01)
    night2 = plan_window(watermark=watermark, now=from_ms(sb.control.clock()["now_ms"]), overlap=OVERLAP, lag_margin=LAG)
    with pytest.raises(Exception, match="503"):
        run(failing, zone, "deals", night2, "night2")
    with pytest.raises(IncompleteDatasetError):
        zone.records_manifest("deals", "night2")
    sb.control.clear_faults()
    sb.control.advance_clock(3_600_000)
    sb.control.modify("deals", "9000000004", {"amount": "99.95"})
    sb.control.advance_clock(22 * 3_600_000)
    # Night 3: the watermark never moved, so its window covers both nights' changes.
    night3 = plan_window(watermark=watermark, now=from_ms(sb.control.clock()["now_ms"]), overlap=OVERLAP, lag_margin=LAG)
    run(hook, zone, "deals", night3, "night3")
    got = rows(zone, "deals", "night3")
    assert got["9000000003"]["p:amount"] == "1500.50" and got["9000000004"]["p:amount"] == "99.95"
    assert set(got) == {"9000000003", "9000000004"}


def test_schema_drift_between_runs(sb, hook, zone):
    window = plan_window(watermark=None, now=now(), lag_margin=LAG)
    run(hook, zone, "companies", window, "drift1", extra=["egendefinert_felt_001"])
    first = rows(zone, "companies", "drift1")
    # The custom property disappears from HubSpot; the mapping still asks for it.
    sb.control.reset(**SIZES, extra_properties=0)
    sb.control.freeze_clock(T0)
    manifest = run(hook, zone, "companies", window, "drift2", extra=["egendefinert_felt_001"])
    second = rows(zone, "companies", "drift2")
    assert "p:egendefinert_felt_001" in next(iter(first.values()))
    assert "p:egendefinert_felt_001" not in next(iter(second.values()))
    assert manifest["dropped_properties"] == ["egendefinert_felt_001"]
    assert set(first) == set(second)


def test_hundreds_of_properties_use_batch_read(hubspot_connection, tmp_path):
    with run_sandbox(seed=8, contacts=300, companies=10, deals=10, extra_properties=400) as sb:
        sb.control.freeze_clock(T0)
        hook = HubSpotHook(hubspot_connection(sb))
        zone = RawZone(tmp_path.as_uri())
        full = plan_window(watermark=None, now=now(), lag_margin=LAG)
        manifest = run(hook, zone, "contacts", full, "wide", extra="all")
        got = rows(zone, "contacts", "wide")
        assert len(manifest["dropped_properties"]) == 0
        assert sum(1 for c in next(iter(got.values())) if c.startswith("p:")) > 400
        assert hook.stats.calls["batch_read"] >= 3 and "414" not in str(hook.stats.errors)
        assert {k for k, v in got.items() if not v["archived"]} == set(truth(sb, "contacts"))
        sb.control.advance_clock(3_600_000)
        sb.control.modify("contacts", "150", {"egendefinert_felt_399": "verdi"})
        sb.control.advance_clock(3_600_000)
        incr = plan_window(watermark=full.advances_to, now=from_ms(sb.control.clock()["now_ms"]), lag_margin=LAG)
        run(hook, zone, "contacts", incr, "wide2", extra="all")
        assert rows(zone, "contacts", "wide2")["150"]["p:egendefinert_felt_399"] == "verdi"


def test_associations_with_more_than_one_page(sb, hook, zone):
    sb.control.configure(association_page_size=1)
    window = plan_window(watermark=None, now=now(), lag_margin=LAG)
    run(hook, zone, "deals", window, "assoc")
    manifest = zone.associations_manifest("deals", "contacts", "assoc")
    import pandas as pd

    pairs = pd.concat(list(zone.iter_frames(manifest)))
    sb.control.configure(association_page_size=500)
    expected = set()
    for page in hook.iter_associations("deals", "contacts", sorted(truth(sb, "deals"))):
        for result in page.results:
            expected |= {(result["from"]["id"], str(t["toObjectId"])) for t in result["to"]}
    assert set(zip(pairs["from_id"], pairs["to_id"])) == expected
    assert pairs.groupby("from_id").size().max() > 1
    companies = pd.concat(list(zone.iter_frames(zone.associations_manifest("deals", "companies", "assoc"))))
    assert companies["is_primary"].any()


def test_crash_mid_extract_leaves_nothing_readable(sb, hubspot_connection, tmp_path):
    conn_id = hubspot_connection(sb)
    # Slow pages so the child is mid-extraction when it is killed.
    sb.control.add_fault(path="/crm/objects/2026-09/contacts", action="delay", delay_s=0.2)
    code = textwrap.dedent(f"""
        import os
        from datetime import datetime, timezone
        from hubspot_finance import extract
        from hubspot_finance.objects import get_object
        from hubspot_finance.rawzone import RawZone
        from hubspot_finance.windows import plan_window
        from hubspot_provider.hooks.hubspot import HubSpotHook
        zone = RawZone({tmp_path.as_uri()!r}, chunk_rows=100)
        hook = HubSpotHook({conn_id!r})
        decl = get_object("contacts")
        window = plan_window(watermark=None, now=datetime.fromtimestamp({T0 / 1000}, timezone.utc))
        extract.extract_object(hook, zone, decl, window, "crash", ["email", "firstname", "hs_object_id", "lastmodifieddate"])
    """)
    import os
    import time

    child = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
    deadline = time.monotonic() + 60
    part_dir = tmp_path / "contacts" / "run=crash"
    while time.monotonic() < deadline and not list(part_dir.glob("part-*.parquet")):
        time.sleep(0.05)
    child.kill()
    child.wait()
    assert list(part_dir.glob("part-*.parquet")), "the child never wrote a part"
    zone = RawZone(tmp_path.as_uri())
    with pytest.raises(IncompleteDatasetError, match="incomplete"):
        zone.records_manifest("contacts", "crash")
    # A rerun of the same run id replaces the leftovers and commits a complete dataset.
    sb.control.clear_faults()
    hook = HubSpotHook(conn_id)
    window = plan_window(watermark=None, now=now(), lag_margin=LAG)
    extract.extract_object(hook, zone, get_object("contacts"), window, "crash", ["email", "firstname", "hs_object_id", "lastmodifieddate"])
    got = rows(zone, "contacts", "crash")
    assert {k for k, v in got.items() if not v["archived"]} == set(truth(sb, "contacts"))


def test_budget_is_shared_in_proportion_to_the_work(sb, hook):
    from hubspot_finance.extract import budget_fractions, estimate_work

    full = plan_window(watermark=None, now=now(), lag_margin=LAG)
    estimates = {name: estimate_work(hook, get_object(name), full, ["email"]) for name in ("contacts", "deals", "companies")}
    assert estimates["contacts"]["records"] == len(truth(sb, "contacts"))
    fractions = budget_fractions(estimates)
    assert sum(f["general"] for f in fractions.values()) == pytest.approx(1.0)
    assert fractions["contacts"]["general"] > fractions["deals"]["general"] > fractions["companies"]["general"] >= 0.04
    empty = budget_fractions({"contacts": {"general_calls": 0, "search_calls": 0}, "deals": {"general_calls": 0, "search_calls": 0}})
    assert empty["contacts"]["general"] == pytest.approx(0.5)


@pytest.mark.parametrize("persistent", [False, True])
def test_batch_read_207_ids_are_read_again_never_lost(hubspot_connection, tmp_path, persistent):
    # Hundreds of properties: extraction lists ids, then batch-reads them (where 207s happen).
    with run_sandbox(seed=9, contacts=350, companies=10, deals=10, extra_properties=400) as sb:
        sb.control.freeze_clock(T0)
        dropped = ["120", "121", "250"]
        sb.control.add_fault(path="contacts/batch/read", action="drop_ids", drop_ids=dropped,
                             times=None if persistent else 1)
        hook = HubSpotHook(hubspot_connection(sb), backoff_base=0.01)
        zone = RawZone(tmp_path.as_uri())
        full = plan_window(watermark=None, now=now(), lag_margin=LAG)
        manifest = run(hook, zone, "contacts", full, "drop", extra="all")
        got = {k for k, v in rows(zone, "contacts", "drop").items() if not v["archived"]}
        live = set(truth(sb, "contacts"))
        if persistent:
            # Still unreadable after every retry: reported, and the watermark stops before the earliest of them.
            assert got == live - set(dropped)
            assert sorted(manifest["unread_ids"]) == sorted(dropped) and manifest["unread_count"] == 3
            assert datetime.fromisoformat(manifest["advances_to"]) < full.advances_to
            assert any("120" in w for w in manifest["warnings"])
        else:
            assert got == live and manifest["unread_ids"] == []
            assert datetime.fromisoformat(manifest["advances_to"]) == full.advances_to
