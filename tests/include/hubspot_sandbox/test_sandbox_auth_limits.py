"""Auth (401/403 bodies, revoke, rotate, scopes) and each kind of 429 with its headers."""

from __future__ import annotations

import time

import requests

from hubspot_sandbox.testing import run_sandbox

LIST = "/crm/v3/objects/contacts"
SEARCH = "/crm/v3/objects/contacts/search"


def test_token_is_random_and_401_bodies(sb):
    assert sb.token.startswith("pat-na1-") and len(sb.token) == len("pat-na1-") + 36
    for headers in ({}, {"Authorization": "Bearer pat-na1-wrong"}, {"Authorization": sb.token}):
        r = requests.get(sb.url + LIST, headers=headers)
        assert r.status_code == 401
        body = r.json()
        assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"].startswith("Authentication credentials not found.") and body["correlationId"]


def test_given_token_and_revoke_rotate(sb):
    with run_sandbox(token="pat-eu1-11111111-2222-3333-4444-555555555555", contacts=5, companies=2, deals=2) as s2:
        assert s2.token == "pat-eu1-11111111-2222-3333-4444-555555555555"
        old = s2.token
        new = s2.control.rotate_token()
        assert new != old and s2.token == new
        assert requests.get(s2.url + LIST, headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert requests.get(s2.url + LIST, headers={"Authorization": f"Bearer {new}"}).status_code == 200
        graced = s2.control.rotate_token(grace_seconds=30)
        assert requests.get(s2.url + LIST, headers={"Authorization": f"Bearer {new}"}).status_code == 200
        s2.control.revoke_token(new)
        assert requests.get(s2.url + LIST, headers={"Authorization": f"Bearer {new}"}).status_code == 401
        s2.control.revoke_token()
        assert requests.get(s2.url + LIST, headers={"Authorization": f"Bearer {graced}"}).status_code == 401


def test_missing_scope_403(sb):
    tok = sb.control.add_token(scopes=["crm.objects.contacts.read"])
    h = {"Authorization": f"Bearer {tok}"}
    assert requests.get(sb.url + LIST, headers=h).status_code == 200
    r = requests.get(sb.url + "/crm/v3/objects/deals", headers=h)
    assert r.status_code == 403
    body = r.json()
    assert body["category"] == "MISSING_SCOPES" and body["correlationId"]
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.deals.read"]
    r = requests.post(sb.url + "/crm/v4/associations/contacts/companies/batch/read", json={"inputs": []}, headers=h)
    assert r.status_code == 403
    assert r.json()["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.companies.read"]
    sb.control.set_scopes(["crm.objects.contacts.read", "crm.objects.companies.read"], token=tok)
    r = requests.post(sb.url + "/crm/v4/associations/contacts/companies/batch/read", json={"inputs": []}, headers=h)
    assert r.status_code == 200


def test_ten_secondly_429_with_headers(sb):
    sb.control.set_limits(enabled=True, tier="professional", reset_counters=True)
    r = requests.get(sb.url + LIST, headers=sb.auth_headers())
    assert r.headers["X-HubSpot-RateLimit-Max"] == "190"
    assert r.headers["X-HubSpot-RateLimit-Remaining"] == "189"
    assert r.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert r.headers["X-HubSpot-RateLimit-Daily"] == "625000"
    assert r.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "624999"
    sb.control.set_limits(ten_secondly=3, reset_counters=True)
    s = requests.Session()
    codes = [s.get(sb.url + LIST, headers=sb.auth_headers()).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = s.get(sb.url + LIST, headers=sb.auth_headers())
    assert r.status_code == 429
    body = r.json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["correlationId"] and body["groupName"]
    assert r.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    stats = sb.control.stats()
    assert stats["rate_limited"]["TEN_SECONDLY_ROLLING"] >= 1


def test_rolling_window_recovers(sb):
    sb.control.set_limits(enabled=True, ten_secondly=2, interval_ms=300, reset_counters=True)
    h = sb.auth_headers()
    assert [requests.get(sb.url + LIST, headers=h).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.35)
    assert requests.get(sb.url + LIST, headers=h).status_code == 200
    sb.control.set_limits(interval_ms=10_000)


def test_daily_429_and_midnight_reset(sb):
    c = sb.control
    c.freeze_clock(1_795_900_000_000)  # 2026-11-28 ~21:00 Oslo
    c.set_limits(enabled=True, daily=2, reset_counters=True)
    h = sb.auth_headers()
    assert [requests.get(sb.url + LIST, headers=h).status_code for _ in range(2)] == [200, 200]
    r = requests.get(sb.url + LIST, headers=h)
    assert r.status_code == 429
    assert r.json()["policyName"] == "DAILY" and r.json()["message"] == "You have reached your daily limit."
    assert r.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    c.advance_clock(4 * 3600 * 1000)  # past midnight in Europe/Oslo
    assert requests.get(sb.url + LIST, headers=h).status_code == 200
    c.set_limits(daily=None)


def test_search_secondly_429_without_headers(sb):
    sb.control.set_limits(enabled=True, search_per_second=2, reset_counters=True)
    h = sb.auth_headers()
    rs = [requests.post(sb.url + SEARCH, json={"limit": 1}, headers=h) for _ in range(3)]
    assert [r.status_code for r in rs] == [200, 200, 429]
    assert not any(k.lower().startswith("x-hubspot-ratelimit") for r in rs for k in r.headers)
    body = rs[2].json()
    assert body["message"] == "You have reached your secondly limit." and body["errorType"] == "RATE_LIMIT"
    # search has its own bucket: normal calls still pass
    assert requests.get(sb.url + LIST, headers=h).status_code == 200
    time.sleep(1.05)
    assert requests.post(sb.url + SEARCH, json={"limit": 1}, headers=h).status_code == 200


def test_tiers(sb):
    sb.control.set_limits(enabled=True, tier="starter", reset_counters=True)
    r = requests.get(sb.url + LIST, headers=sb.auth_headers())
    assert r.headers["X-HubSpot-RateLimit-Max"] == "100" and r.headers["X-HubSpot-RateLimit-Daily"] == "250000"
    sb.control.set_limits(tier="enterprise")
    r = requests.get(sb.url + LIST, headers=sb.auth_headers())
    assert r.headers["X-HubSpot-RateLimit-Max"] == "190" and r.headers["X-HubSpot-RateLimit-Daily"] == "1000000"
