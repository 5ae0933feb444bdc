"""HubSpotHook against the local sandbox: paths, auth, paging, the search cap, limits, retries, errors."""

from __future__ import annotations

import logging
import time

import requests

import pytest

from hubspot_provider.errors import (
    HubSpotAuthError,
    HubSpotBadRequestError,
    HubSpotConfigError,
    HubSpotDailyLimitError,
    HubSpotNotFoundError,
    HubSpotRedirectError,
    HubSpotRetriesExhaustedError,
    HubSpotScopeError,
    HubSpotSearchCapError,
    HubSpotUriTooLongError,
)
from hubspot_provider.hooks.hubspot import HubSpotHook, build_base_url, missing_scopes
from hubspot_sandbox.testing import run_sandbox

pytestmark = pytest.mark.usefixtures("no_token_leak")


def make_hook(hubspot_connection, sb, **extra):
    conn_id = hubspot_connection(sb, **extra)
    return HubSpotHook(conn_id, backoff_base=0.01, backoff_max=0.05)


@pytest.mark.parametrize("version", ["2026-09", "v3"])
def test_list_pages_to_the_end_with_both_versions(hubspot_connection, sb, version, live_ids):
    hook = make_hook(hubspot_connection, sb, api_version=version)
    pages = list(hook.iter_list_pages("contacts", ["email", "firstname"]))
    ids = [r["id"] for page in pages for r in page.results]
    assert len(ids) == len(set(ids))
    assert set(ids) == live_ids(sb, "contacts")
    assert len(pages) == -(-len(ids) // 100) and pages[-1].after is None
    assert hook.stats.calls["list"] == len(pages)
    assert all(set(r["properties"]) >= {"email", "firstname", "hs_object_id"} for r in pages[0].results)
    prefix = "/crm/v3/objects/contacts" if version == "v3" else "/crm/objects/2026-09/contacts"
    assert hook._path("list", object_type="contacts") == prefix


def test_versions_really_use_their_paths(hubspot_connection, sb):
    # A fault only on the dated path: the v3 hook never meets it, the dated hook does.
    sb.control.add_fault(path=r"^/crm/objects/2026-09/deals", status=404, body={"message": "dated path hit"})
    legacy = make_hook(hubspot_connection, sb, api_version="v3")
    assert len(next(legacy.iter_list_pages("deals")).results) == 100
    dated = make_hook(hubspot_connection, sb)
    with pytest.raises(HubSpotNotFoundError, match="dated path hit"):
        next(dated.iter_list_pages("deals"))


def test_archived_listing_returns_only_archived(hubspot_connection, sb):
    sb.control.archive("contacts", "105")
    hook = make_hook(hubspot_connection, sb)
    archived = [r for page in hook.iter_list_pages("contacts", archived=True) for r in page.results]
    assert "105" in {r["id"] for r in archived}
    assert all(r["archived"] and r.get("archivedAt") for r in archived)


def test_search_pages_and_cap_is_surfaced(hubspot_connection, sb, live_ids):
    hook = make_hook(hubspot_connection, sb)
    everything = [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "0"}]}]
    pages = list(hook.iter_search_pages("contacts", filter_groups=everything, properties=["email"], limit=200))
    assert {r["id"] for p in pages for r in p.results} == live_ids(sb, "contacts")
    assert pages[0].total == len(live_ids(sb, "contacts"))
    with pytest.raises(HubSpotSearchCapError, match="past HubSpot.s cap of 10,000"):
        hook.search_page("contacts", filter_groups=everything, after=10_000)
    assert hook.stats.calls["search"] == len(pages)  # the refused page never reached HubSpot


def test_search_over_the_cap_raises_instead_of_truncating(hubspot_connection):
    with run_sandbox(seed=5, contacts=10_200, companies=5, deals=5) as sb:
        sb.control.bulk_touch("contacts", 10_050, at_ms=1_700_000_000_000)
        _search_over_cap(make_hook(hubspot_connection, sb))


def _search_over_cap(hook):
    same_ms = [{"filters": [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": "1700000000000"}]}]
    seen = 0
    with pytest.raises(HubSpotSearchCapError, match=r"matched 10,0\d\d records"):
        for page in hook.iter_search_pages("contacts", filter_groups=same_ms, properties=[]):
            seen += len(page.results)
    assert seen == 10_000


def test_batch_read_reports_missing_and_resolves_merged(hubspot_connection, sb):
    sb.control.merge("contacts", "110", "111")
    hook = make_hook(hubspot_connection, sb)
    ids = [str(i) for i in range(101, 251)] + ["99999999"]
    batches = list(hook.iter_batch_read("contacts", ids, ["email", "hs_merged_object_ids"]))
    assert [len(b.requested_ids) for b in batches] == [100, 51]
    assert "99999999" in batches[1].missing_ids
    survivor = next(r for b in batches for r in b.results if r["id"] == "110")
    assert "111" in survivor["properties"]["hs_merged_object_ids"].split(";")
    assert "111" not in {r["id"] for b in batches for r in b.results}


def test_associations_follow_per_id_paging(hubspot_connection, sb, live_ids):
    sb.control.configure(association_page_size=2)
    hook = make_hook(hubspot_connection, sb)
    deal_ids = sorted(live_ids(sb, "deals"))
    pairs = {}
    pages = list(hook.iter_associations("deals", "contacts", deal_ids))
    for page in pages:
        for result in page.results:
            for to in result["to"]:
                pairs.setdefault(result["from"]["id"], set()).add(str(to["toObjectId"]))
    sb.control.configure(association_page_size=500)
    full = make_hook(hubspot_connection, sb)
    expected = {}
    for page in full.iter_associations("deals", "contacts", deal_ids):
        for result in page.results:
            expected.setdefault(result["from"]["id"], set()).update(str(t["toObjectId"]) for t in result["to"])
    assert pairs == expected and any(len(v) > 2 for v in expected.values())
    assert len(pages) > 1  # the paged ids were asked for again with their cursors


def test_reference_endpoints(hubspot_connection, sb):
    hook = make_hook(hubspot_connection, sb)
    names = {p["name"] for p in hook.get_properties("deals")}
    assert {"amount", "dealstage", "pipeline", "deal_currency_code", "hs_lastmodifieddate"} <= names
    pipelines = hook.get_pipelines()
    assert len(pipelines) == 2 and any(s.get("archived") for p in pipelines for s in p["stages"])
    account = hook.get_account_details()
    assert account["timeZone"] == "Europe/Oslo" and account["companyCurrency"] == "NOK"
    assert hook.get_record("contacts", "101", ["email"])["id"] == "101"


def test_uri_too_long_is_not_retried(hubspot_connection, sb):
    hook = make_hook(hubspot_connection, sb)
    props = [f"egendefinert_felt_{i:03d}_with_a_long_name" for i in range(400)]
    with pytest.raises(HubSpotUriTooLongError, match="batch-read the properties"):
        next(hook.iter_list_pages("contacts", props))
    assert hook.stats.calls["list"] == 1 and not hook.stats.retries


@pytest.mark.parametrize(
    ("fault", "name"),
    [
        ({"status": 503}, "503"),
        ({"status": 502, "body_kind": "text", "body": "<html>Bad gateway</html>"}, "502 text body"),
        ({"status": 524}, "524"),
        ({"status": 423, "retry_after": "0"}, "423"),
        ({"status": 477, "retry_after": "0"}, "477"),
        ({"action": "reset"}, "connection reset"),
        ({"status": 200, "body_kind": "truncated", "body": {"results": []}}, "truncated 200"),
        ({"action": "short_body", "status": 200, "body": {"results": []}}, "short body"),
    ],
)
def test_passing_faults_are_retried_then_succeed(hubspot_connection, sb, fault, name):
    sb.control.add_fault(path=r"/crm/objects/2026-09/contacts(\?|$)", times=2, **fault)
    hook = make_hook(hubspot_connection, sb)
    page = next(hook.iter_list_pages("contacts"))
    assert len(page.results) == 100, name
    assert hook.stats.retries["list"] == 2 and hook.stats.calls["list"] == 3


def test_423_waits_at_least_two_seconds(hubspot_connection, sb):
    sb.control.add_fault(path=r"/contacts(\?|$)", status=423, times=1)
    waits = []
    hook = HubSpotHook(hubspot_connection(sb), sleep=waits.append)
    next(hook.iter_list_pages("contacts"))
    assert waits and waits[0] >= 2.0


def test_timeout_is_retried(hubspot_connection, sb):
    sb.control.add_fault(path=r"/contacts(\?|$)", action="delay", delay_s=2.0, times=1)
    hook = make_hook(hubspot_connection, sb, timeout=1)
    assert len(next(hook.iter_list_pages("contacts")).results) == 100
    assert hook.stats.retries["list"] == 1


def test_retries_are_bounded(hubspot_connection, sb):
    sb.control.add_fault(path=r"/contacts(\?|$)", status=500)
    hook = make_hook(hubspot_connection, sb, max_retries=3)
    with pytest.raises(HubSpotRetriesExhaustedError, match="failed after 4 attempts"):
        next(hook.iter_list_pages("contacts"))
    assert hook.stats.calls["list"] == 4


@pytest.mark.parametrize(("status", "error"), [(400, HubSpotBadRequestError), (404, HubSpotNotFoundError), (414, HubSpotUriTooLongError)])
def test_client_errors_are_never_retried(hubspot_connection, sb, status, error):
    sb.control.add_fault(path=r"/contacts(\?|$)", status=status, times=1, body={"status": "error", "message": "nope", "correlationId": "c-1"})
    hook = make_hook(hubspot_connection, sb)
    with pytest.raises(error) as raised:
        next(hook.iter_list_pages("contacts"))
    assert hook.stats.calls["list"] == 1 and not hook.stats.retries
    if status != 414:
        assert "c-1" in str(raised.value)


def test_redirects_are_refused(hubspot_connection, sb):
    sb.control.add_fault(path=r"/contacts(\?|$)", status=302, headers={"Location": "https://elsewhere.example/steal"}, times=1)
    hook = make_hook(hubspot_connection, sb)
    with pytest.raises(HubSpotRedirectError, match="only sent to the configured host"):
        next(hook.iter_list_pages("contacts"))


def test_ten_secondly_429_waits_out_the_window(hubspot_connection, sb):
    sb.control.set_limits(enabled=True, ten_secondly=4, interval_ms=1000, reset_counters=True)
    # Another integration on the same app spends the whole window first.
    for _ in range(4):
        requests.get(f"{sb.url}/crm/v3/properties/contacts", headers=sb.auth_headers(), timeout=10)
    hook = make_hook(hubspot_connection, sb, requests_per_ten_seconds=1000, budget_share=1)
    started = time.monotonic()
    assert hook.get_properties("contacts")
    assert hook.stats.rate_limited["TEN_SECONDLY_ROLLING"] == 1 and hook.stats.retries["properties"] == 1
    assert 0.5 < time.monotonic() - started < 5  # waited out the 1 s window announced in the headers


def test_limiter_adapts_to_headers_and_prevents_429s(hubspot_connection, sb):
    sb.control.set_limits(enabled=True, ten_secondly=6, interval_ms=1000, reset_counters=True)
    hook = make_hook(hubspot_connection, sb, requests_per_ten_seconds=6, budget_share=1)
    hook.get_properties("contacts")  # learns the 1 s interval from the headers
    for _ in range(12):
        hook.get_properties("contacts")
    assert not hook.stats.rate_limited and hook.stats.limiter_wait_seconds > 0.5
    assert sb.control.stats()["rate_limited"] == {}


def test_search_secondly_429_is_retried(hubspot_connection, sb):
    sb.control.set_limits(enabled=True, search_per_second=2, reset_counters=True)
    hook = make_hook(hubspot_connection, sb, search_requests_per_second=50)
    body = [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "0"}]}]
    for _ in range(5):
        hook.search_page("contacts", filter_groups=body, limit=1)
    assert hook.stats.rate_limited["SECONDLY"] >= 1 and not hook.stats.errors


def test_search_limiter_keeps_under_five_per_second(hubspot_connection, sb):
    sb.control.set_limits(enabled=True, search_per_second=5, reset_counters=True)
    hook = make_hook(hubspot_connection, sb)
    body = [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "0"}]}]
    for _ in range(12):
        hook.search_page("contacts", filter_groups=body, limit=1)
    assert not hook.stats.rate_limited


def test_daily_limit_stops_at_once(hubspot_connection, sb):
    sb.control.set_limits(enabled=True, daily=3, reset_counters=True)
    hook = make_hook(hubspot_connection, sb)
    for _ in range(3):
        hook.get_properties("contacts")
    with pytest.raises(HubSpotDailyLimitError, match="resets at midnight") as raised:
        hook.get_properties("contacts")
    assert raised.value.resets_at.tzinfo is not None and raised.value.resets_at.hour == 0
    assert hook.stats.calls["properties"] == 4 and not hook.stats.retries


def test_revoked_token_names_connection_and_fix(hubspot_connection, caplog):
    with run_sandbox(seed=3, contacts=5, companies=2, deals=2) as sb:
        conn_id = hubspot_connection(sb, conn_id="hubspot_finance_prod")
        hook = HubSpotHook(conn_id)
        sb.control.revoke_token()
        with pytest.raises(HubSpotAuthError) as raised:
            hook.get_properties("contacts")
        message = str(raised.value)
        assert "connection 'hubspot_finance_prod'" in message and "rotate" in message
        assert "correlationId" in message and sb.token not in message
        assert hook.stats.calls["properties"] == 1
        assert sb.token not in caplog.text


def test_missing_scope_names_the_scope(hubspot_connection):
    with run_sandbox(seed=3, contacts=5, companies=2, deals=2) as sb:
        sb.control.set_scopes(["crm.objects.contacts.read"])
        hook = HubSpotHook(hubspot_connection(sb, conn_id="hubspot_scoped"))
        hook.get_properties  # noqa: B018 - properties need crm.schemas.*
        with pytest.raises(HubSpotScopeError) as raised:
            list(hook.iter_list_pages("deals"))
        assert "crm.objects.deals.read" in raised.value.scopes
        assert "grant one of crm.objects.deals.read" in str(raised.value)
        assert "hubspot_scoped" in str(raised.value)


def test_missing_scopes_reads_every_place():
    body = {
        "category": "MISSING_SCOPES",
        "context": {"missingScopes": ["a"]},
        "errors": [{"context": {"requiredGranularScopes": ["b", "a"]}}, {"context": {"requiredScopes": "c"}}, "junk"],
    }
    assert missing_scopes(body) == ["a", "b", "c"]


def test_test_connection_both_ways(hubspot_connection):
    with run_sandbox(seed=3, contacts=5, companies=2, deals=2) as sb:
        ok, message = HubSpotHook(hubspot_connection(sb)).test_connection()
        assert ok and "portal" in message and "Europe/Oslo" in message
        bad = HubSpotHook(hubspot_connection(sb, token="pat-na1-00000000-0000-0000-0000-000000000000"))
        ok, message = bad.test_connection()
        assert not ok and "rejected the token" in message
        sb.control.add_fault(path=".*", status=503)
        down = HubSpotHook(hubspot_connection(sb, max_retries=0))
        ok, message = down.test_connection()
        assert not ok and "503" in message


def test_token_is_never_in_logs_or_errors(hubspot_connection, caplog):
    caplog.set_level(logging.DEBUG)
    with run_sandbox(seed=3, contacts=5, companies=2, deals=2) as sb:
        sb.control.add_fault(path=".*", status=500, body={"message": f"echo {sb.token}"})
        hook = HubSpotHook(hubspot_connection(sb, max_retries=1), backoff_base=0.01)
        with pytest.raises(HubSpotRetriesExhaustedError) as raised:
            hook.get_account_details()
        assert sb.token not in str(raised.value) and "***" in str(raised.value)
        assert sb.token not in repr(raised.value.__cause__)
        assert sb.token not in caplog.text
        assert sb.token not in repr(hook.settings.__class__)


def test_base_url_rules():
    assert build_base_url(None) == "https://api.hubapi.com"
    assert build_base_url("api.hubapi.com") == "https://api.hubapi.com"
    assert build_base_url("http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    assert build_base_url("localhost", "http", 9000) == "http://localhost:9000"
    assert build_base_url("https://proxy.example.no/hubspot") == "https://proxy.example.no/hubspot"
    with pytest.raises(HubSpotConfigError, match="Refusing plain http"):
        build_base_url("http://api.hubapi.com")
    with pytest.raises(HubSpotConfigError, match="password field"):
        build_base_url("https://user:secret@api.hubapi.com")


def test_connection_settings_validated(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HS_BAD", '{"conn_type": "hubspot", "host": "https://api.hubapi.com", "password": "x", "extra": {"api_version": "v9"}}')
    with pytest.raises(HubSpotConfigError, match="Unsupported HubSpot API version 'v9'"):
        HubSpotHook("hs_bad").settings
    monkeypatch.setenv("AIRFLOW_CONN_HS_EMPTY", '{"conn_type": "hubspot", "host": "https://api.hubapi.com"}')
    with pytest.raises(HubSpotConfigError, match="has no token"):
        HubSpotHook("hs_empty").settings
    monkeypatch.setenv("AIRFLOW_CONN_HS_TYPES", '{"conn_type": "hubspot", "password": "x", "extra": {"max_retries": "many"}}')
    with pytest.raises(HubSpotConfigError, match="'max_retries' must be a int"):
        HubSpotHook("hs_types").settings


def test_settings_never_sent_as_headers(hubspot_connection, sb):
    hook = make_hook(hubspot_connection, sb, max_retries=2, timeout=30, api_version="v3")
    session = hook.get_conn()
    assert set(session.headers) == {"Authorization", "Accept", "User-Agent", "Accept-Encoding", "Connection"}
    assert session.headers["Authorization"] == f"Bearer {sb.token}" and session.verify is True


def test_parallel_hooks_on_one_host_share_the_limits(hubspot_connection, sb, tmp_path):
    import threading

    sb.control.set_limits(enabled=True, ten_secondly=8, interval_ms=1000, search_per_second=3, reset_counters=True)
    conn_id = hubspot_connection(sb, requests_per_ten_seconds=8, budget_share=1, search_requests_per_second=3,
                                 shared_limits_dir=str(tmp_path))
    body = [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "0"}]}]
    hooks = [HubSpotHook(conn_id) for _ in range(3)]  # three tasks, one budget

    def work(hook):
        for _ in range(6):
            hook.get_properties("contacts")
            hook.search_page("contacts", filter_groups=body, limit=1)

    threads = [threading.Thread(target=work, args=(h,)) for h in hooks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sb.control.stats()["rate_limited"] == {}
    assert all(not h.stats.rate_limited and not h.stats.errors for h in hooks)
    files = list(tmp_path.iterdir())
    assert len(files) == 2 and all(sb.token not in f.name and sb.token not in f.read_text() for f in files)
