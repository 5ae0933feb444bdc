"""HubSpot misbehaving during a real sync (task bodies: plan → extract → load) against the sandbox:
passing faults leave the finance tables exactly as a fault-free run; exhausted retries, the daily
limit, a revoked token and a removed scope fail cleanly, move no watermark, half-load nothing, and
the next run converges."""

from __future__ import annotations


import pytest

import reliability_harness as h
from hubspot_provider.errors import (
    HubSpotAuthError,
    HubSpotDailyLimitError,
    HubSpotRetriesExhaustedError,
)

TEN_SECONDLY = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT",
                "policyName": "TEN_SECONDLY_ROLLING", "correlationId": "c-429"}
SECONDLY = {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
            "policyName": "SECONDLY", "correlationId": "c-429s"}
PASSING_FAULTS = {
    "502-burst": dict(path="/crm/", status=502, times=3),
    "503-every-third-call": dict(path="/crm/", status=503, every=3, times=6),
    "504-html-body": dict(path="search", status=504, body="<html>Gateway Time-out</html>", body_kind="text", times=3),
    "connection-reset": dict(path="/crm/", action="reset", times=3),
    "short-body": dict(path="/crm/", action="short_body", times=2),
    "truncated-json-200": dict(path="/crm/", status=200, body={"results": [{"id": "1"}], "paging": {}}, body_kind="truncated", times=2),
    "non-json-200": dict(path="/crm/", status=200, body="<html>proxy says hi</html>", body_kind="text", times=2),
    "429-ten-secondly-storm": dict(path="/crm/", status=429, body=TEN_SECONDLY, retry_after="0.05", times=5),
    "429-search-secondly": dict(path="search", status=429, body=SECONDLY, times=1),
    "associations-503": dict(path="associations", status=503, times=4),
}


def _with_fault(sb, rule: dict) -> None:
    sb.control.clear_faults()
    sb.control.add_fault(**rule)


@pytest.mark.parametrize("name", list(PASSING_FAULTS))
def test_passing_fault_gives_exactly_the_fault_free_tables(sb, use, target, reference, name):
    use(sb)
    _with_fault(sb, PASSING_FAULTS[name])  # full run
    h.sync("run-1", h.NOW1)
    assert target.snapshot() == reference["run1"]
    h.change_things(sb)
    _with_fault(sb, PASSING_FAULTS[name])  # incremental run
    h.sync("run-2", h.NOW2)
    assert target.snapshot() == reference["run2"]
    faults = sb.control.stats().get("faults", {})
    assert sum(faults.values()) >= 2, f"the fault never fired: {faults}"


def test_slow_responses_beyond_the_timeout_are_retried(sb, use, target, reference):
    use(sb, timeout=0.6)
    _with_fault(sb, dict(path="/crm/", action="delay", delay_s=1.2, times=2))
    h.sync("run-1", h.NOW1)
    assert target.snapshot() == reference["run1"]
    assert sum(sb.control.stats().get("faults", {}).values()) == 2


def test_real_limits_far_below_the_clients_ceiling(sb, use, target, reference):
    """The connection claims 10,000 calls per 10 s and 100 searches a second; HubSpot allows 15 per
    second and 4 searches a second: the limiter adapts to the headers, any 429 is waited out, nothing is lost."""
    use(sb)
    sb.control.set_limits(enabled=True, ten_secondly=15, interval_ms=1000, search_per_second=4, daily=1_000_000,
                          reset_counters=True)
    h.sync("run-1", h.NOW1)
    assert target.snapshot() == reference["run1"]
    h.change_things(sb)
    h.sync("run-2", h.NOW2)
    assert target.snapshot() == reference["run2"]


def _first_run_then_changes(sb, target):
    h.sync("run-1", h.NOW1)
    h.change_things(sb)
    return target.snapshot(), target.watermarks()


@pytest.mark.parametrize("target", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_exhausted_retries_fail_clearly_then_next_run_converges(sb, use, target, reference, caplog):
    use(sb, max_retries=2)
    before, watermarks = _first_run_then_changes(sb, target)
    planned = h.plan("run-2", h.NOW2)
    sb.control.add_fault(path="deals/search", status=503)  # HubSpot keeps failing for deals
    with pytest.raises(HubSpotRetriesExhaustedError) as failed:
        h.extract(planned, "run-2")
    assert str(failed.value).startswith("HubSpot search failed after 3 attempts; last error: HubSpot search answered 503")
    # extract_deals failed, so the DAG never runs load: nothing moved
    assert target.snapshot() == before and target.watermarks() == watermarks
    sb.control.clear_faults()
    h.sync("run-3", h.NOW2)  # the next run (its window reaches back to the unchanged watermark)
    assert target.snapshot() == reference["run2"]


def test_exhausted_retries_then_task_retry_of_the_same_run_converges(sb, use, target, reference):
    use(sb, max_retries=1)
    _first_run_then_changes(sb, target)
    sb.control.add_fault(path="associations", action="reset")
    planned = h.plan("run-2", h.NOW2)
    with pytest.raises(HubSpotRetriesExhaustedError, match="failed after 2 attempts; last error: HubSpot associations could not reach"):
        h.extract(planned, "run-2")
    sb.control.clear_faults()
    h.load(planned, h.extract(planned, "run-2"), "run-2")  # Airflow retries the task with the same run id
    assert target.snapshot() == reference["run2"]


def test_daily_limit_mid_run_stops_at_once_and_next_run_has_no_gap(sb, use, target, reference):
    use(sb)
    before, watermarks = _first_run_then_changes(sb, target)
    sb.control.set_limits(enabled=True, tier="professional", daily=1000, reset_counters=True)
    sb.control.set_limits(daily_used=1000 - 9)  # the budget runs out in the middle of run 2
    sb.control.reset_stats()
    planned = h.plan("run-2", h.NOW2)
    with pytest.raises(HubSpotDailyLimitError) as stopped:
        h.extract(planned, "run-2")
    message = str(stopped.value)
    assert "daily API limit" in message and "resets at midnight in the account's time zone" in message
    assert f"({stopped.value.resets_at:%Y-%m-%d %H:%M %Z})" in message and "Stopped without retrying" in message
    stats = sb.control.stats()
    assert stats["rate_limited"] == {"DAILY": 1}, stats  # stopped at the first DAILY 429, no retries
    assert target.snapshot() == before and target.watermarks() == watermarks
    sb.control.set_limits(enabled=False, reset_counters=True)  # midnight came
    h.sync("run-3", h.NOW2)
    assert target.snapshot() == reference["run2"]


def test_token_revoked_mid_run_fails_naming_the_fix(use, target, tmp_path):
    from hubspot_sandbox.testing import run_sandbox
    SIZES = h.SIZES

    with run_sandbox(frozen_clock_ms=h.T0, **SIZES) as sb:
        use(sb)
        before, watermarks = _first_run_then_changes(sb, target)
        planned = h.plan("run-2", h.NOW2)
        from hubspot_finance import pipeline

        pipeline.extract_reference(h.config(), "run-2")
        sb.control.revoke_token()
        with pytest.raises(HubSpotAuthError) as failed:
            pipeline.extract_object(h.config(), planned, "contacts", "run-2")
        assert str(failed.value).startswith("HubSpot rejected the token of connection 'hubspot_default' (401 INVALID_AUTHENTICATION)")
        assert "update the password of connection 'hubspot_default'" in str(failed.value)
        assert sb.token not in str(failed.value)
        assert target.snapshot() == before and target.watermarks() == watermarks
