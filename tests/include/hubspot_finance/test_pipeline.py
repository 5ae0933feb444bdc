"""The task bodies as Airflow calls them: runs without a logical date, backfills, fail-fast errors,
the finance database's failures, rejects, asset extras, and two overlapping loads."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest

from finance_testdata import rec, write_run
from hubspot_finance import pipeline
from hubspot_finance.config import ConfigError, SyncConfig
from hubspot_finance.mapping import MappingError
from hubspot_finance.params import ParamsError
from hubspot_finance.windows import WindowError

UTC = timezone.utc
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WATERMARK = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def deal(rid, updated, **p):
    base = {"dealname": f"Deal {rid}", "amount": "100.50", "dealstage": "appointmentscheduled", "pipeline": "default",
            "closedate": "2024-06-30T22:00:00.000Z", "deal_currency_code": "NOK"}
    base.update(p)
    return rec(rid, updated, **base)


def cfg(**kw) -> SyncConfig:
    return SyncConfig(raw_root="file:///nonexistent", **kw)


@pytest.fixture
def no_io(monkeypatch):
    """plan_for_context without HubSpot or a database: fixed watermarks, no budget sharing."""
    monkeypatch.setattr(pipeline, "read_watermarks", lambda c: {"contacts": WATERMARK, "deals": WATERMARK, "companies": None})
    monkeypatch.setattr(pipeline, "hubspot_hook", lambda c, **kw: object())
    monkeypatch.setattr(pipeline, "share_budget", lambda c, plan, hook: plan)


def dag_run(run_type: str):
    from airflow.utils.types import DagRunType

    return SimpleNamespace(run_type=DagRunType(run_type), run_after=NOW)


def test_plan_for_context_without_logical_date(no_io):
    # A manual run with the logical date cleared: no logical_date, ds or data_interval_* in the context.
    context = {"run_id": "manual__x", "dag_run": dag_run("manual"), "params": {}}
    plan = pipeline.plan_for_context(cfg(), {}, context["dag_run"], context)
    assert plan["objects"] == ["contacts", "deals", "companies"]
    assert plan["windows"]["contacts"]["mode"] == "incremental"
    assert plan["windows"]["contacts"]["window_start"] == (WATERMARK - timedelta(minutes=30)).isoformat()
    assert plan["windows"]["companies"]["mode"] == "full"  # no watermark yet


def test_plan_for_context_with_a_range_and_no_logical_date(no_io):
    context = {"run_id": "manual__y", "dag_run": dag_run("manual")}
    plan = pipeline.plan_for_context(cfg(), {"start": "2026-11-01", "end": "2026-11-02", "objects": ["deals"]}, context["dag_run"], context)
    assert plan["objects"] == ["deals"]
    window = plan["windows"]["deals"]
    assert window["mode"] == "range" and window["advances_to"] is None
    assert window["window_start"] == "2026-10-31T23:00:00+00:00"  # midnight Oslo


def test_backfill_resyncs_its_interval_and_never_moves_the_watermark_back(no_io):
    start, end = datetime(2026, 10, 1, 0, 0, tzinfo=UTC), datetime(2026, 10, 2, 0, 0, tzinfo=UTC)
    context = {"run_id": "backfill__2026-10-01", "dag_run": dag_run("backfill"), "data_interval_start": start,
               "data_interval_end": end, "logical_date": start}
    plan = pipeline.plan_for_context(cfg(), {}, context["dag_run"], context)
    for name in ("contacts", "deals", "companies"):
        window = plan["windows"][name]
        assert window["mode"] == "range"
        assert (window["window_start"], window["window_end"]) == (start.isoformat(), end.isoformat())
        assert window["advances_to"] is None  # behind the watermark (or none yet): it stays where it is


def test_backfill_interval_that_reaches_the_watermark_moves_it_forward_only():
    plan = pipeline.plan_run(
        cfg(lag_margin=timedelta(0)), {}, run_type="backfill",
        data_interval=(WATERMARK - timedelta(days=1), WATERMARK + timedelta(hours=3)),
        watermarks={"contacts": WATERMARK}, now=NOW,
    )
    assert plan.window("contacts").advances_to == WATERMARK + timedelta(hours=3)


def test_scheduled_run_is_incremental_from_the_watermark_not_its_interval():
    plan = pipeline.plan_run(
        cfg(), {}, run_type="scheduled", data_interval=(NOW - timedelta(days=1), NOW),
        watermarks={"contacts": WATERMARK, "deals": WATERMARK, "companies": WATERMARK}, now=NOW,
    )
    assert {w.mode for w in plan.windows.values()} == {"incremental"}


def test_invalid_parameters_are_one_clear_error_line(no_io, caplog):
    context = {"run_id": "manual__z", "dag_run": dag_run("manual")}
    with caplog.at_level(logging.INFO, logger="hubspot_finance.pipeline"), pytest.raises(ParamsError):
        pipeline.plan_for_context(cfg(), {"start": "2026-11-02", "end": "2026-11-01"}, context["dag_run"], context)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "Invalid trigger parameters: end (2026-11-01) must be after start (2026-11-02). "
        "Trigger a new run with corrected parameters."
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert messages.index("::endgroup::") < messages.index(errors[0])  # at the top level, not inside a closed group


@pytest.mark.parametrize(
    "exc",
    [
        ParamsError("x"), WindowError("x"), ConfigError("x"), MappingError("x"),
        pipeline.TooManyRejectsError("x"),
    ],
)
def test_retry_policy_fails_fast_on_errors_retrying_cannot_fix(exc):
    from airflow.sdk import RetryAction

    decision = pipeline.retry_policy().evaluate(exc, try_number=1, max_tries=4)
    assert decision.action is RetryAction.FAIL and decision.reason


def test_retry_policy_fails_fast_on_hubspot_auth_scope_and_daily_limit():
    from airflow.sdk import RetryAction
    from hubspot_provider.errors import (
        HubSpotAuthError, HubSpotDailyLimitError, HubSpotError, HubSpotScopeError,
    )

    policy = pipeline.retry_policy()
    for exc in (HubSpotAuthError("401"), HubSpotScopeError("403", scopes=["crm.objects.deals.read"]),
                HubSpotDailyLimitError("429 daily")):
        assert policy.evaluate(exc, 1, 4).action is RetryAction.FAIL, exc
    for exc in (HubSpotError("502 after 7 attempts"), ConnectionError("reset"), pipeline.FinanceDatabaseError("down")):
        assert policy.evaluate(exc, 1, 4).action is RetryAction.DEFAULT, exc  # retried with backoff


def test_retry_policy_survives_dag_serialization():
    from airflow.sdk import ExceptionRetryPolicy

    policy = pipeline.retry_policy()
    again = ExceptionRetryPolicy.deserialize(json.loads(json.dumps(policy.serialize())))
    assert again.serialize() == policy.serialize()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_postgres_names_the_connection_and_host_never_the_password(monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DOWN", json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "finance", "password": "s3cr3t-Pa55", "schema": "erp"}))
    with pytest.raises(pipeline.FinanceDatabaseError) as err:
        pipeline.read_watermarks(cfg(finance_conn_id="finance_down"))
    message = str(err.value)
    assert f"connection 'finance_down', host 127.0.0.1:{port}/erp" in message
    assert "s3cr3t-Pa55" not in message and "\n" not in message


def test_unreachable_sqlite_names_the_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DOWN", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "no" / "such" / "dir.db")}))
    with pytest.raises(pipeline.FinanceDatabaseError, match=r"connection 'finance_down', host .*dir\.db"):
        pipeline.read_watermarks(cfg(finance_conn_id="finance_down"))


def test_undefined_connection_is_named(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_FINANCE_MISSING", raising=False)
    with pytest.raises(pipeline.FinanceDatabaseError, match="connection 'finance_missing'"):
        pipeline.read_watermarks(cfg(finance_conn_id="finance_missing"))


def _summary(rejected: int = 0) -> dict:
    objects = {
        "contacts": {"table": "customers", "extracted": 100, "distinct": 100, "inserted": 90 - rejected, "updated": 5,
                     "unchanged": 5, "rejected": rejected, "deleted": 0, "watermark": "2026-11-28T11:50:00Z"},
        "deals": {"table": "contracts", "extracted": 10, "distinct": 10, "inserted": 10, "updated": 0,
                  "unchanged": 0, "rejected": 0, "deleted": 1, "watermark": "2026-11-28T11:50:00Z"},
    }
    return {"run_id": "r", "status": "success", "mode": "incremental", "objects": objects, "text": "run r: success (mode incremental)"}


def _plan(dry_run: bool = False) -> dict:
    window = {"mode": "incremental", "window_start": "2026-11-27T00:30:00+00:00", "window_end": "2026-11-28T11:50:00+00:00",
              "advances_to": "2026-11-28T11:50:00+00:00"}
    return {"objects": ["contacts", "deals"], "windows": {"contacts": window, "deals": window}, "dry_run": dry_run,
            "planned_at": "2026-11-28T12:00:00+00:00"}


def _context():
    return {"run_id": "r", "outlet_events": OutletEvents()}


class OutletEvents(dict):
    """What the task SDK hands a task as ``outlet_events``: alias accessors that collect added events."""

    def __missing__(self, alias):
        accessor = self[alias] = SimpleNamespace(added=[])
        accessor.add = lambda asset, extra=None: accessor.added.append((asset.uri, extra))
        return accessor


def test_load_publishes_an_event_per_loaded_table_with_its_counts(monkeypatch, caplog):
    monkeypatch.setattr(pipeline, "load_manifests", lambda *a, **k: _summary())
    monkeypatch.setattr(pipeline, "finance_hook", lambda cfg: object())
    context = {"run_id": "r", "outlet_events": OutletEvents()}
    with caplog.at_level(logging.INFO, logger="hubspot_finance.pipeline"):
        summary = pipeline.load_for_context(cfg(), _plan(), {"portal_id": 1}, {"contacts": {}, "deals": {}}, context)
    (alias, accessor), = context["outlet_events"].items()
    assert alias.name == "hubspot_to_finance:loaded_tables"
    assert dict(accessor.added) == {  # companies was not in this run: no event for it
        "finance://finance_db/customers": {"run_id": "r", "mode": "incremental", "object": "contacts", "inserted": 90,
                                           "updated": 5, "unchanged": 5, "rejected": 0, "deleted": 0},
        "finance://finance_db/contracts": {"run_id": "r", "mode": "incremental", "object": "deals", "inserted": 10,
                                           "updated": 0, "unchanged": 0, "rejected": 0, "deleted": 1},
    }
    assert summary["asset_events"] == ["finance://finance_db/customers", "finance://finance_db/contracts"]
    assert summary["windows"]["contacts"]["mode"] == "incremental" and summary["reject_warnings"] == []
    # The summary is one table at the top level of the log (times in the account's zone), printed once.
    messages = [r.getMessage() for r in caplog.records]
    assert not any(m.startswith("::group::Run summary") for m in messages)
    header = messages.index("HubSpot sync r: success, incremental run, loaded in one transaction")
    table = messages[header + 1:header + 4]
    assert table[0].split() == ["object", "extracted", "inserted", "updated", "unchanged", "rejected", "deleted", "API", "calls"]
    assert table[1].split() == ["contacts", "100", "90", "5", "5", "0", "0", "-"]
    assert max(len(line) for line in table) <= 90  # fits the log view without scrolling
    assert "contacts   window 2026-11-27 01:30 → 2026-11-28 12:50 Europe/Oslo, watermark now 2026-11-28 12:50" in messages
    assert sum("HubSpot sync r:" in m for m in messages) == 1


def test_dry_run_publishes_no_asset_events(monkeypatch, caplog):
    monkeypatch.setattr(pipeline, "load_manifests", lambda *a, **k: _summary())
    context = {"run_id": "r", "outlet_events": OutletEvents()}
    with caplog.at_level(logging.INFO, logger="hubspot_finance.pipeline"):
        summary = pipeline.load_for_context(cfg(), _plan(dry_run=True), {}, {"contacts": {}, "deals": {}}, context)
    assert dict(context["outlet_events"]) == {} and summary["asset_events"] == []
    assert "HubSpot sync r: success, incremental run, dry run: nothing was loaded" in caplog.text


def test_rejects_above_the_threshold_warn(monkeypatch, caplog):
    monkeypatch.setattr(pipeline, "load_manifests", lambda *a, **k: _summary(rejected=10))
    with caplog.at_level(logging.WARNING, logger="hubspot_finance.pipeline"):
        summary = pipeline.load_for_context(cfg(reject_threshold=0.05), _plan(), {}, {"contacts": {}, "deals": {}}, _context())
    assert summary["reject_warnings"] == [
        "contacts: 10 of 100 records rejected (10.0% > 5.0%); see the rejected_records table for the reasons"]
    assert "10 of 100 records rejected" in caplog.text


def test_rejects_above_the_threshold_fail_after_logging_the_summary(monkeypatch, caplog):
    monkeypatch.setattr(pipeline, "load_manifests", lambda *a, **k: _summary(rejected=10))
    context = _context()
    with caplog.at_level(logging.INFO, logger="hubspot_finance.pipeline"), pytest.raises(pipeline.TooManyRejectsError):
        pipeline.load_for_context(cfg(reject_threshold=0.05, reject_action="fail"), _plan(), {}, {"contacts": {}, "deals": {}}, context)
    assert "HubSpot sync r: success" in caplog.text and "Too many rejected records" in caplog.text
    assert dict(context["outlet_events"]) == {}  # no asset event for a failed load task
    # Below the threshold nothing happens.
    monkeypatch.setattr(pipeline, "load_manifests", lambda *a, **k: _summary(rejected=3))
    pipeline.load_for_context(cfg(reject_threshold=0.05, reject_action="fail"), _plan(), {}, {"contacts": {}, "deals": {}}, _context())


def _finance_conn_env(db) -> str:
    if db.kind == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": db.target})
    url = urlparse(db.target)
    return json.dumps({"conn_type": "postgres", "host": url.hostname, "port": url.port or 5432,
                       "login": url.username, "password": url.password, "schema": url.path.lstrip("/")})


def test_two_overlapping_runs_never_move_the_watermark_backwards(db, zone, tmp_path, monkeypatch):
    """Two runs' loads at the same moment, the older window committing last: the watermark keeps the
    newer end (loads are serialized by an advisory lock / BEGIN IMMEDIATE, and the upsert uses GREATEST)."""
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_OVERLAP", _finance_conn_env(db))
    c = SyncConfig(raw_root=f"file://{tmp_path}/raw", schema=db.schema, finance_conn_id="finance_overlap")
    from hubspot_finance.run_plan import RunPlan

    plan = RunPlan(("contacts", "deals", "companies"), {}, datetime.now(timezone.utc))
    manifests = {o: {"calls": {"total_calls": 1}} for o in plan.objects}
    write_run(zone, "r0", deals=[deal("100", "2024-01-02T00:00:00.000Z", amount="1")])
    pipeline.transform_and_load(c, plan, manifests, "r0")  # tables and migrations in place
    write_run(zone, "new", deals=[deal("100", "2024-01-04T00:00:00.000Z", amount="3")], window_end="2024-03-01T00:00:00Z")
    write_run(zone, "old", deals=[deal("100", "2024-01-03T00:00:00.000Z", amount="2")], window_end="2024-02-15T00:00:00Z")
    for run_id in ("new", "old"):  # the transform tasks; the loads below race
        for o in plan.objects:
            pipeline.transform_object(c, manifests[o], o, run_id)

    for order in (("new", "old"), ("old", "new")):
        barrier, errors = threading.Barrier(2), []

        def load(run_id):
            try:
                barrier.wait()
                pipeline.load_manifests(c, plan, manifests, run_id)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(r,)) for r in order]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not errors, errors
        assert db.rows("sync_state", "object_type, watermark") == [
            {"object_type": o, "watermark": "2024-03-01T00:00:00.000Z"} for o in ("companies", "contacts", "deals")]
        assert db.rows("contracts", "amount") == [{"amount": "3"}]  # the newer version wins, in either order
    # And the loads read back through plan's own path.
    assert pipeline.read_watermarks(c)["deals"] == datetime(2024, 3, 1, tzinfo=UTC)
