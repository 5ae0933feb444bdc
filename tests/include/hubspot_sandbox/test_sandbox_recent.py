"""Recent activity: people's edits over the last days before the clock, seen through the real HubSpot API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from hubspot_sandbox import generate as gen
from hubspot_sandbox.clock import parse_ms
from hubspot_sandbox.data import Portal, PortalConfig
from hubspot_sandbox.schema import LASTMOD_PROPERTY, OBJECT_TYPES
from hubspot_sandbox.server import wait_until_up
from hubspot_sandbox.testing import run_sandbox
from hubspot_sandbox.truth import portal_truth

DAY = 86_400_000
NOW = 1_796_979_600_000  # Friday 2026-12-11 10:00 Oslo
SIZES = {"seed": 7, "contacts": 300, "companies": 60, "deals": 200}


@pytest.fixture(scope="module")
def recent():
    with run_sandbox(**SIZES, recent_activity_days=14, frozen_clock_ms=NOW) as sb:
        yield sb


def _all(sb, path, body=None, params=None):
    """Every page of a list (GET) or search (POST) call."""
    out, after = [], None
    while True:
        if body is not None:
            r = requests.post(sb.url + path, json={**body, "limit": 200, "after": after or 0},
                              headers=sb.auth_headers(), timeout=30)
        else:
            r = requests.get(sb.url + path, params={**(params or {}), "limit": 100, **({"after": after} if after else {})},
                             headers=sb.auth_headers(), timeout=30)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["results"]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            return out


def _changed_since(sb, otype, since_ms):
    body = {"filterGroups": [{"filters": [{"propertyName": LASTMOD_PROPERTY[otype], "operator": "GTE",
                                           "value": str(since_ms)}]}],
            "properties": [LASTMOD_PROPERTY[otype]], "sorts": [{"propertyName": "hs_object_id"}]}
    return _all(sb, f"/crm/v3/objects/{otype}/search", body=body)


@pytest.mark.parametrize("otype", OBJECT_TYPES)
def test_a_last_7_days_search_finds_changes_and_matches_the_truth(recent, otype):
    since = NOW - 7 * DAY
    found = _changed_since(recent, otype, since)
    truth = portal_truth(recent.portal, {})[otype]
    expected = {rid for rid, t in truth.items() if t["status"] == "live" and t["updated_at_ms"] >= since}
    assert len(found) >= 2
    assert {r["id"] for r in found} == expected
    for r in found:
        assert r["updatedAt"] == r["properties"][LASTMOD_PROPERTY[otype]]
        assert since <= parse_ms(r["updatedAt"]) == truth[r["id"]]["updated_at_ms"] < NOW


def test_every_kind_of_change_happened_for_every_type(recent):
    changes = recent.control.state()["recent_activity"]["changes"]
    for otype in OBJECT_TYPES:
        assert all(changes[otype][kind] >= 1 for kind in ("modify", "create", "archive", "merge")), changes[otype]
    assert sum(c["restore"] for c in changes.values()) >= 1


@pytest.mark.parametrize("otype", OBJECT_TYPES)
def test_archived_listing_merges_and_restores_agree_with_the_truth(recent, otype):
    truth = portal_truth(recent.portal, {})[otype]
    listed = _all(recent, f"/crm/v3/objects/{otype}", params={"archived": "true"})
    assert {r["id"] for r in listed} == {rid for rid, t in truth.items() if t["status"] == "archived"}
    window = [r for r in listed if gen.T1_MS + DAY < truth[r["id"]]["archived_at_ms"] < NOW]
    assert window, "a record archived in the last 14 days is in the archived listing"
    assert all(r["archived"] and r["archivedAt"] for r in window)
    merged = [rid for rid, t in truth.items() if t["status"] == "merged" and truth[t["merged_into"]]["updated_at_ms"] > NOW - 14 * DAY]
    assert merged, "a merge in the window"
    for rid in merged:
        survivor = truth[rid]["merged_into"]
        got = requests.get(f"{recent.url}/crm/v3/objects/{otype}/{rid}", params={"properties": "hs_merged_object_ids"},
                           headers=recent.auth_headers(), timeout=10).json()
        assert got["id"] == survivor and rid in got["properties"]["hs_merged_object_ids"].split(";")


def test_restored_records_were_archived_by_the_seed_and_are_live_again(recent):
    restored = 0
    for otype in OBJECT_TYPES:
        store = recent.portal.stores[otype]
        seeded = gen.seed_arrays(store.gen, store.n_seeded)["archived"]
        truth = portal_truth(recent.portal, {})[otype]
        for i in seeded.nonzero()[0].tolist():
            t = truth[str(store.base + i)]
            if t["status"] == "live":
                assert NOW - 15 * DAY < t["updated_at_ms"] < NOW
                restored += 1
    assert restored >= 1


def test_created_deals_come_with_their_company_and_contact(recent):
    store = recent.portal.stores["deals"]
    new = [str(store.base + i) for i in range(store.n_seeded, store.n)]
    assert new
    r = requests.post(f"{recent.url}/crm/v4/associations/deals/companies/batch/read",
                      json={"inputs": [{"id": d} for d in new]}, headers=recent.auth_headers(), timeout=10)
    links = {x["from"]["id"]: x["to"] for x in r.json()["results"]}
    truth = portal_truth(recent.portal, {})[("deals", "companies")]
    for d in new:
        assert truth[d] and list(truth[d].values()) == [True]  # one primary company
        assert {str(t["toObjectId"]) for t in links[d]} == set(truth[d])
    deal = requests.get(f"{recent.url}/crm/v3/objects/deals/{new[0]}", params={"properties": "amount,dealstage"},
                        headers=recent.auth_headers(), timeout=10).json()
    assert deal["properties"]["dealstage"] == "appointmentscheduled" and deal["properties"]["amount"].isdigit()


def test_changes_fall_in_office_hours_on_working_days_before_the_clock():
    p = Portal(PortalConfig(**SIZES, recent_activity_days=14, frozen_clock_ms=NOW))
    oslo = ZoneInfo("Europe/Oslo")
    stamps = [int(ms) for s in p.stores.values() for ms in s.lastmod[: s.n] if ms > gen.T1_MS + DAY]
    stamps += [int(ms) for s in p.stores.values() for ms in s.archived[: s.n] if ms > gen.T1_MS + DAY]
    assert len(stamps) > 25
    for ms in stamps:
        local = datetime.fromtimestamp(ms / 1000, oslo)
        assert NOW - 15 * DAY < ms < NOW and local.weekday() < 5 and (7, 30) <= (local.hour, local.minute) < (17, 0)


def test_the_demo_and_readme_records_stay_as_seeded(recent):
    truth = portal_truth(recent.portal, {})
    for otype in OBJECT_TYPES:
        store = recent.portal.stores[otype]
        base = store.base
        for i in range(min(16, store.n_seeded // 5)):
            t = truth[otype][str(base + i)]
            assert t["updated_at_ms"] <= gen.T1_MS and (t["archived_at_ms"] or 0) <= gen.T1_MS + DAY


def test_deterministic_by_seed_and_different_for_another_seed():
    def picture(seed):
        p = Portal(PortalConfig(**{**SIZES, "seed": seed}, recent_activity_days=14, frozen_clock_ms=NOW))
        return portal_truth(p, {"deals": ["amount", "dealstage"], "contacts": ["city", "email"]})

    assert picture(7) == picture(7)
    assert picture(7)["deals"] != picture(8)["deals"]


def test_off_by_default_for_tests_and_servers():
    with run_sandbox(**SIZES) as sb:
        assert sb.control.state()["recent_activity"] is None
        assert all(int(s.lastmod[: s.n].max()) <= gen.T1_MS for s in sb.portal.stores.values())


def test_a_clock_inside_the_seeded_years_never_stamps_a_change_before_an_older_one():
    at = gen.T1_MS - 3 * DAY
    p = Portal(PortalConfig(**SIZES, recent_activity_days=14, frozen_clock_ms=at))
    seed_only = Portal(PortalConfig(**SIZES, frozen_clock_ms=at))
    assert p.recent_activity["skipped"] > 0
    for t, s in p.stores.items():
        n, before = s.n_seeded, seed_only.stores[t].lastmod
        changed = s.lastmod[:n] != before[:n]
        assert changed.any() and (s.lastmod[:n][changed] > before[:n][changed]).all()
        assert (s.lastmod[:n][changed] < at).all() and (s.created[: s.n] <= s.lastmod[: s.n]).all()


def test_reset_replays_the_option_and_can_switch_it_off(recent):
    control = recent.control
    before = portal_truth(recent.portal, {})
    assert control.reset()["config"]["recent_activity_days"] == 14
    assert portal_truth(recent.portal, {}) == before  # same seed, same frozen clock: the same fortnight
    control.reset(recent_activity_days=0)
    assert control.state()["recent_activity"] is None
    control.reset(recent_activity_days=14)
    assert control.state()["recent_activity"]["days"] == 14


def test_the_cli_seeds_recent_activity_unless_told_not_to(tmp_path):
    def start(*extra):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "hubspot_sandbox", "--port", str(port), "--contacts", "80",
                                 "--deals", "40", "--companies", "20", "--no-rate-limits", *extra],
                                cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, timeout=20)
            return requests.get(url + "/_sandbox/state", timeout=10).json()["recent_activity"]
        finally:
            proc.terminate()
            start.out = proc.communicate(timeout=10)[0]

    recent = start()
    assert recent["days"] == 14 and recent["changes"]["deals"]["modify"] >= 4
    assert "Recent activity:" in start.out
    assert start("--recent-days", "0") is None
    assert "Recent activity" not in start.out
