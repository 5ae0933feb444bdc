"""Fault rules: statuses and bodies, Retry-After, slow responses, resets, truncation, 207 drops, counting."""

from __future__ import annotations

import pytest
import requests

LIST = "/crm/v3/objects/deals"


def get(sb, timeout=5):
    return requests.get(sb.url + LIST, headers=sb.auth_headers(), timeout=timeout)


def test_respond_times_and_retry_after(sb):
    sb.control.add_fault(LIST, method="GET", status=503, body={"status": "error", "message": "busy"}, retry_after="2", times=2)
    r1, r2, r3 = get(sb), get(sb), get(sb)
    assert (r1.status_code, r2.status_code, r3.status_code) == (503, 503, 200)
    assert r1.headers["Retry-After"] == "2" and r1.json()["message"] == "busy"
    assert sb.control.stats()["faults"]


def test_every_nth_and_text_body(sb):
    sb.control.add_fault("/crm/v3/objects/deals", status=502, body_kind="text", body="<html>Bad gateway</html>", every=3)
    codes = [get(sb).status_code for _ in range(6)]
    assert codes == [200, 200, 502, 200, 200, 502]
    sb.control.clear_faults()
    sb.control.add_fault(LIST, status=502, body_kind="text", body="<html>Bad gateway</html>", times=1)
    r = get(sb)
    assert r.text == "<html>Bad gateway</html>" and r.headers["Content-Type"].startswith("text/plain")


def test_truncated_json(sb):
    sb.control.add_fault(LIST, status=200, body_kind="truncated",
                         body={"results": [{"id": "1", "properties": {}}], "paging": {}}, times=1)
    r = get(sb)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


def test_short_body_and_reset(sb):
    sb.control.add_fault(LIST, action="short_body", status=200, body={"results": []}, times=1)
    with pytest.raises(requests.exceptions.RequestException):
        get(sb).json()
    sb.control.add_fault(LIST, action="reset", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        get(sb)
    assert get(sb).status_code == 200


def test_slow_response_beyond_client_timeout(sb):
    sb.control.add_fault(LIST, delay_s=1.0, times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(sb, timeout=0.3)
    assert get(sb).status_code == 200


def test_delay_then_429_rule(sb):
    sb.control.add_fault(LIST, status=429, delay_s=0.1, times=1,
                         body={"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                               "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})
    r = get(sb)
    assert r.status_code == 429 and r.json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_batch_207_drop_ids(sb):
    ids = [r["id"] for r in get(sb).json()["results"][:4]]
    sb.control.add_fault(r"/batch/read", method="POST", drop_every=2, times=1)
    r = requests.post(sb.url + "/crm/v3/objects/deals/batch/read", json={"inputs": [{"id": i} for i in ids]},
                      headers=sb.auth_headers())
    assert r.status_code == 207
    assert r.json()["errors"][0]["context"]["ids"] == [ids[1], ids[3]]
    assert [x["id"] for x in r.json()["results"]] == [ids[0], ids[2]]


def test_fault_listing_and_removal(sb):
    rule = sb.control.add_fault("/nothing", status=500)
    assert [f["id"] for f in sb.control.faults()] == [rule["id"]]
    sb.control.remove_fault(rule["id"])
    assert sb.control.faults() == []
