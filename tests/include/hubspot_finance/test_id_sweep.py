"""The id sweep's listing of live ids: both ends at once, each on its own budget, nothing missed."""

from __future__ import annotations

import numpy as np
import pytest

from hubspot_finance.id_sweep import list_live_ids, sweep
from hubspot_finance.objects import get_object
from hubspot_provider.hooks.hubspot import HubSpotHook
from hubspot_sandbox.testing import run_sandbox


def live(sb, object_type: str) -> set[str]:
    store = sb.portal.store(object_type)
    return {str(i) for i in store.ids(np.flatnonzero(store.active_mask()))}


@pytest.fixture(scope="module")
def sb():
    with run_sandbox(seed=5, contacts=2_345, companies=20, deals=10) as sandbox:
        yield sandbox


def test_live_ids_are_listed_from_both_ends_on_both_budgets(sb, hubspot_connection):
    hook = HubSpotHook(hubspot_connection(sb), backoff_base=0.01)
    listed = list_live_ids(hook, get_object("contacts"))
    assert listed == live(sb, "contacts")
    calls = hook.stats.calls
    assert calls.get("list", 0) >= 2 and calls.get("search", 0) >= 2, calls
    # together they cost about what the faster budget alone would: never a full listing plus a full search
    assert calls["list"] * 100 + calls["search"] * 200 <= len(listed) + 300, calls


def test_a_portal_within_one_page_is_listed_whole(hubspot_connection):
    with run_sandbox(seed=5, contacts=10, companies=3, deals=3) as small:
        hook = HubSpotHook(hubspot_connection(small), backoff_base=0.01)
        assert list_live_ids(hook, get_object("companies")) == live(small, "companies")


def test_the_sweep_reports_only_ids_missing_everywhere(sb, hubspot_connection):
    hook = HubSpotHook(hubspot_connection(sb), backoff_base=0.01)
    ids = sorted(live(sb, "companies"), key=int)
    sb.control.purge("companies", ids[3])
    sb.control.archive("companies", ids[4])
    sb.control.merge("companies", ids[5], ids[6])
    found: list[dict] = []
    result = sweep(hook, get_object("companies"), ids, set(), ["name", "hs_merged_object_ids"], found.extend)
    assert [p["id"] for p in result.purged] == [ids[3]]
    # the archived one is read with its values; the merged-away one resolves to its survivor
    assert {r["id"] for r in found} == {ids[4], ids[5]} and result.candidates == 3
