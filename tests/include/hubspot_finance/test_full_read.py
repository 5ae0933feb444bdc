"""A full read from both ends of the id space: list ascending on the general budget, search descending on the
search budget, meeting in the middle — every live id once, whatever the ids look like or the portal does meanwhile."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_finance import extract
from hubspot_finance.objects import get_object
from hubspot_finance.rawzone import RawZone
from hubspot_finance.timeparse import from_ms
from hubspot_finance.two_ended import Meeting
from hubspot_finance.windows import plan_window
from hubspot_provider.hooks.hubspot import HubSpotHook
from hubspot_sandbox.testing import run_sandbox

T0 = 1_790_000_000_000
WANTED = {"contacts": ["email", "firstname"], "deals": ["dealname", "amount"], "companies": ["name", "domain"]}


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox(seed=31, contacts=1_500, companies=700, deals=40) as sb:
        yield sb


def live(sb, object_type: str) -> dict[str, int]:
    """Live ids and their last-modified ms, straight from the sandbox store."""
    store = sb.portal.store(object_type)
    idx = np.flatnonzero(store.active_mask())
    return {str(i): int(ms) for i, ms in zip(store.ids(idx), store.lastmod[idx])}


def full_read(sb, conn_id, zone, object_type, run_id, *, extra=(), **hook_options):
    hook = HubSpotHook(conn_id, backoff_base=0.01, **hook_options)
    extract.extract_reference(hook, zone, run_id, [object_type])
    decl = get_object(object_type)
    props, _ = extract.resolve_properties(decl, WANTED[object_type], zone.read_reference(run_id, f"properties_{object_type}"),
                                          extra=extra)
    window = plan_window(watermark=None, now=from_ms(sb.control.clock()["now_ms"]))
    calls_before = dict(hook.stats.calls)
    manifest = extract.extract_object(hook, zone, decl, window, run_id, props)
    calls = {k: v - calls_before.get(k, 0) for k, v in hook.stats.calls.items()}
    return manifest, window, calls


def read_back(zone, object_type, run_id) -> tuple[list[str], set[str]]:
    """Live ids in the order written (duplicates kept, to count them) and the archived ids."""
    ids, archived = [], set()
    for table in zone.iter_tables(zone.records_manifest(object_type, run_id)):
        for record in table.select(["id", "archived"]).to_pylist():
            (archived.add if record["archived"] else ids.append)(record["id"])
    return ids, archived


def keep_only(sb, object_type: str, keep: np.ndarray) -> None:
    """Permanently delete (the sandbox's GDPR purge, in bulk) every live record whose position is not in ``keep``."""
    store = sb.portal.store(object_type)
    active = np.flatnonzero(store.active_mask())
    gone = np.setdiff1d(active, active[keep[keep < len(active)]])
    store.purged[gone] = T0 - 3_600_000


def test_full_read_uses_both_endpoints_and_reads_each_id_once(sandbox, hubspot_connection, tmp_path):
    sandbox.control.reset(seed=31, contacts=1_500, companies=700, deals=40)
    sandbox.control.freeze_clock(T0)
    # list pages a little slower than searches, as under HubSpot's budgets: the search end gets several pages
    sandbox.control.add_fault(path="/crm/objects/2026-09/contacts", method="GET", action="delay", delay_s=0.05)
    zone = RawZone(tmp_path.as_uri(), chunk_rows=300)
    try:
        manifest, _, calls = full_read(sandbox, hubspot_connection(sandbox), zone, "contacts", "both")
    finally:
        sandbox.control.clear_faults()
    ids, _ = read_back(zone, "contacts", "both")
    assert len(ids) == len(set(ids)), "an id was read twice"
    assert set(ids) == set(live(sandbox, "contacts"))
    # the ETA's total is one search; the descending read is more
    assert calls.get("list", 0) >= 2 and calls.get("search", 0) >= 3, calls
    listed = 100 * (calls["list"] - 1) + 200 * (calls["search"] - 1)  # minus the archived listing and the total
    assert listed <= len(ids) + 300, f"the two ends overlapped by more than a page each: {calls}"
    assert manifest["records"] - manifest["archived"] == len(ids)


DISTRIBUTIONS = {
    "dense": lambda n, k: np.arange(n),
    "sparse": lambda n, k: np.arange(0, n, k + 2),
    "clustered": lambda n, k: np.concatenate([np.arange(0, 30), np.arange(n // 2, n // 2 + 7 * k), np.arange(n - 40, n)]),
    "single": lambda n, k: np.array([k % n]),
    "none": lambda n, k: np.array([], dtype=int),
    "low end only": lambda n, k: np.arange(0, 20 * k + 1),
    "high end only": lambda n, k: np.arange(n - 20 * k - 1, n),
}


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.sampled_from(sorted(DISTRIBUTIONS)), k=st.integers(1, 30))
def test_every_live_id_exactly_once_whatever_the_ids(sandbox, hubspot_connection, tmp_path_factory, shape, k):
    """Narrow properties (each end carries them); the batch-read path is in the during-the-read test below."""
    sandbox.control.reset(seed=31, contacts=20, companies=700, deals=20)
    sandbox.control.freeze_clock(T0)
    n = int(sandbox.portal.store("companies").active_mask().sum())
    keep_only(sandbox, "companies", np.unique(DISTRIBUTIONS[shape](n, k)))
    zone = RawZone(tmp_path_factory.mktemp("dist").as_uri(), chunk_rows=200)
    _, _, calls = full_read(sandbox, hubspot_connection(sandbox), zone, "companies", "dist")
    ids, _ = read_back(zone, "companies", "dist")
    expected = set(live(sandbox, "companies"))
    assert len(ids) == len(set(ids)), f"{shape}: an id was read twice"
    assert set(ids) == expected, f"{shape}: missed {sorted(expected - set(ids))[:5]}, extra {sorted(set(ids) - expected)[:5]}"
    if expected:
        assert calls.get("search", 0) >= 2, calls  # the ETA's total, then at least one descending page


def test_a_list_not_in_id_order_is_read_whole():
    """The fallback: once the list is seen out of order it reads everything and the search end stops."""
    meeting = Meeting()
    meeting.listed([5, 6, 7])
    meeting.searched(6)
    assert meeting.list_done() and meeting.search_done()
    meeting = Meeting()
    meeting.searched(6)
    meeting.listed([1, 9, 3])
    assert not meeting.list_done() and meeting.search_done()
    meeting.listed([100, 200])
    assert not meeting.list_done(), "a list out of order never stops early"


def _actions(object_type: str, ids: list[str]) -> list[dict]:
    """An edit, a create, an archive and a merge, as control calls a trigger applies between two API calls."""
    base = f"/records/{object_type}"
    return [
        {"method": "PATCH", "path": f"{base}/{ids[0]}", "body": {"properties": {"name": "Endret under lesing"}}},
        {"method": "POST", "path": base, "body": {"properties": {"name": "Ny under lesing"}}},
        {"method": "POST", "path": f"{base}/{ids[1]}/archive", "body": {}},
        {"method": "POST", "path": f"{base}/merge", "body": {"primary": ids[2], "absorbed": ids[3]}},
    ]


@pytest.mark.parametrize("wide", [False, True], ids=["narrow", "wide"])
def test_changes_during_the_read_lose_nothing_and_double_nothing(sandbox, hubspot_connection, tmp_path, wide):
    sandbox.control.reset(seed=31, contacts=20, companies=1_400, deals=20, extra_properties=400 if wide else 3)
    sandbox.control.freeze_clock(T0)
    before = live(sandbox, "companies")
    ordered = sorted(before, key=int)
    low, middle, high = ordered[40:44], ordered[690:694], ordered[-60:-56]
    # the second list page and the second descending search: both ends are mid-read
    sandbox.control.after_calls("list", 2, _actions("companies", low), object_type="companies")
    sandbox.control.after_calls("search", 3, _actions("companies", high) + _actions("companies", middle),
                                object_type="companies")
    zone = RawZone(tmp_path.as_uri(), chunk_rows=250)
    manifest, window, calls = full_read(sandbox, hubspot_connection(sandbox), zone, "companies", "during",
                                        extra="all" if wide else ())
    assert all(t["fired"] for t in sandbox.control.triggers()), sandbox.control.triggers()
    ids, archived = read_back(zone, "companies", "during")
    after = live(sandbox, "companies")
    assert len(ids) == len(set(ids)), "an id was read twice"
    untouched = {i for i in before if i in after and after[i] == before[i]}
    assert untouched <= set(ids), f"missed {sorted(untouched - set(ids))[:5]}"
    assert set(ids) <= set(before) | set(after), "read an id that never existed"
    # what this read did not see is stamped after the window: the next incremental window reads it
    later = window.advances_to.timestamp() * 1000
    assert all(after[i] >= later for i in set(after) - set(ids))
    assert {low[1], middle[1], high[1]} <= archived
    assert manifest["unread_count"] == 0 and calls.get("search", 0) >= 3


def test_three_full_reads_share_both_budgets_without_a_429(hubspot_connection, tmp_path):
    """Professional limits, the sandbox in its own process (as HubSpot is: our threads never delay its clock)."""
    from hubspot_devtools.local import sandbox_process
    from hubspot_sandbox.control import SandboxControl

    args = ["--contacts", "2400", "--companies", "300", "--deals", "1200", "--seed", "32", "--recent-days", "0",
            "--tier", "professional"]
    with sandbox_process(tmp_path, args=args) as (url, token):
        control = SandboxControl(url)
        conn_id = hubspot_connection(SimpleNamespace(url=url, token=token), requests_per_ten_seconds=190,
                                     search_requests_per_second=5)
        planner = HubSpotHook(conn_id)
        zone = RawZone((tmp_path / "raw").as_uri())
        window = plan_window(watermark=None, now=from_ms(control.clock()["now_ms"]))
        extract.extract_reference(planner, zone, "pro")
        props = {o: extract.resolve_properties(get_object(o), WANTED[o], zone.read_reference("pro", f"properties_{o}"))[0]
                 for o in WANTED}
        estimates = {o: extract.estimate_work(planner, get_object(o), window, props[o]) for o in WANTED}
        assert all(e["search_calls"] > 2 for e in estimates.values() if e["records"] > 400), estimates
        fractions = extract.budget_fractions(estimates)
        control.reset_stats()
        manifests: dict[str, dict] = {}

        def one(object_type: str) -> None:
            hook = HubSpotHook(conn_id, budget_fraction=fractions[object_type]["general"],
                               search_fraction=fractions[object_type]["search"])
            manifests[object_type] = extract.extract_object(hook, zone, get_object(object_type), window, "pro",
                                                            props[object_type],
                                                            expected_records=int(estimates[object_type]["records"]))

        threads = [threading.Thread(target=one, args=(o,)) for o in WANTED]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(manifests) == set(WANTED)
        assert not control.stats().get("rate_limited"), control.stats()
        counts = control.state()["counts"]
        for object_type, manifest in manifests.items():
            ids, _ = read_back(zone, object_type, "pro")
            assert len(ids) == len(set(ids)) == counts[object_type]["live"], (object_type, len(ids), counts)
        searched = {o: m["calls"]["calls"].get("search", 0) for o, m in manifests.items()}
        # The search budget was shared too. How far each object's search end got depends on how fast its
        # list end ran on this machine (a small object's ends can meet after one search), not on the design.
        assert searched["contacts"] >= 1 and sum(searched.values()) >= 3, (searched, fractions)


def test_an_association_read_in_flight_never_holds_up_the_search_end(sandbox, hubspot_connection, tmp_path):
    """Associations are read 1,000 ids a call on the general budget; while one is in flight (here made slow),
    the search end goes on searching: the ends never wait for association reads."""
    # enough contacts that the ends cannot meet while the slow read is in flight (3,000 met within it: 2 searches)
    sandbox.control.reset(seed=31, contacts=15_000, companies=700, deals=40)
    sandbox.control.freeze_clock(T0)
    # the list end slower than the search end (as under HubSpot's budgets), the first association read slow
    sandbox.control.add_fault(path="/crm/objects/2026-09/contacts", method="GET", action="delay", delay_s=0.05)
    slow = sandbox.control.add_fault(path="/associations/", method="POST", action="delay", delay_s=3.0, times=1)["id"]
    sandbox.control.reset_stats()
    samples: list[dict] = []
    done = threading.Event()

    def watch() -> None:  # the sandbox's own counters: a fault is counted on arrival, a call when answered
        while not done.is_set():
            samples.append(sandbox.state.stats.snapshot())
            done.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    zone = RawZone(tmp_path.as_uri(), chunk_rows=500)
    try:
        full_read(sandbox, hubspot_connection(sandbox), zone, "contacts", "slow-links")
    finally:
        done.set()
        watcher.join()
        sandbox.control.clear_faults()
    arrived = next(s for s in samples if s["faults"].get(slow))
    answered = next(s for s in samples if s["calls"].get("associations"))
    searched_meanwhile = answered["calls"].get("search", 0) - arrived["calls"].get("search", 0)
    assert searched_meanwhile >= 3, (
        f"the search end stalled while the association read was in flight ({searched_meanwhile} searches; "
        f"{arrived['calls']} when it started, {answered['calls']} when it was answered)")
    ids, _ = read_back(zone, "contacts", "slow-links")
    assert len(ids) == len(set(ids)) and set(ids) == set(live(sandbox, "contacts"))
