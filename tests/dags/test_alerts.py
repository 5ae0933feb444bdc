"""Alerts: failure notifiers from settings, the failure summary, the deadline alert, and the DAG wiring."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from hubspot_finance import notify
from hubspot_finance.config import ConfigError, SyncConfig

DAGS = Path(__file__).resolve().parents[2] / "dags"


class Recording(notify.BaseNotifier):
    calls: list = []

    def notify(self, context):
        Recording.calls.append(context["run_id"])


def make_recording():
    return Recording()


RECORDING_INSTANCE = Recording()


def test_default_is_the_log_summary_only():
    notifiers = notify.failure_notifiers(SyncConfig())
    assert [type(n).__name__ for n in notifiers] == ["FailureSummaryNotifier"]


def test_email_and_custom_notifiers_from_settings():
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    for path in (f"{__name__}.Recording", f"{__name__}.make_recording", f"{__name__}.RECORDING_INSTANCE"):
        cfg = SyncConfig(alert_emails=("ops@example.com", "cfo@example.com"), alert_smtp_conn_id="smtp_ops", alert_notifier=path)
        first, email, custom = notify.failure_notifiers(cfg)
        assert isinstance(email, SmtpNotifier) and email.to == ["ops@example.com", "cfo@example.com"]
        assert email.smtp_conn_id == "smtp_ops"
        assert isinstance(custom, Recording)


def test_a_notifier_that_cannot_be_imported_names_the_setting():
    with pytest.raises(ConfigError, match="HUBSPOT_SYNC_ALERT_NOTIFIER='no_such_pkg.Notifier': cannot import"):
        notify.failure_notifiers(SyncConfig(alert_notifier="no_such_pkg.Notifier"))
    with pytest.raises(ConfigError, match="not a notifier"):
        notify.failure_notifiers(SyncConfig(alert_notifier="hubspot_finance.notify.DAG_ID"))


def test_failure_summary_names_task_run_cause_and_log(caplog):
    from hubspot_provider.errors import HubSpotAuthError

    ti = SimpleNamespace(task_id="plan", run_id="manual__1", try_number=1, max_tries=1, log_url="http://localhost:8080/log")
    context = {"ti": ti, "run_id": "manual__1",
               "exception": HubSpotAuthError("HubSpot rejected the token of connection 'hubspot_default' (401): rotate it")}
    with caplog.at_level(logging.ERROR, logger="hubspot_finance.notify"):
        notify.FailureSummaryNotifier().notify(context)
    text = caplog.text
    assert "HUBSPOT SYNC FAILED: task plan of run manual__1 (not retried: another attempt cannot fix this)" in text
    assert "cause: HubSpotAuthError: HubSpot rejected the token of connection 'hubspot_default' (401): rotate it" in text
    assert "fix:   rotate the token in HubSpot" in text and "then clear this task" in text
    assert "log:   http://localhost:8080/log" in text
    assert "no exception recorded" in notify.failure_summary({"ti": ti, "run_id": "manual__1"})


def test_the_fix_fits_the_cause():
    from hubspot_finance.params import ParamsError

    ti = SimpleNamespace(task_id="plan", run_id="manual__2", try_number=1, max_tries=3, log_url=None)
    bad_param = notify.failure_summary({"ti": ti, "run_id": "manual__2", "exception": ParamsError("end must be after start")})
    assert "(not retried" in bad_param and "try 1 of" not in bad_param
    assert "fix:   trigger a new run with corrected parameters" in bad_param and "clear this task" not in bad_param.split("fix:")[1].split("(")[0]
    ti.try_number = 4
    network = notify.failure_summary({"ti": ti, "run_id": "manual__2", "exception": ConnectionError("reset by peer")})
    assert "(after 4 tries)" in network and "fix:   look at the error above; once its cause is gone, clear this task" in network


def test_deadline_alert_is_relative_to_the_queued_time():
    from airflow.sdk import AsyncCallback
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline

    alert = notify.deadline_alert(SyncConfig(alert_emails=("ops@example.com",)))
    assert isinstance(alert.reference, DagRunQueuedAtDeadline)  # manual runs may have no logical date
    assert alert.interval == timedelta(hours=4)
    assert isinstance(alert.callback, AsyncCallback) and alert.callback.path == "hubspot_finance.notify.deadline_missed"
    assert alert.callback.kwargs["emails"] == ["ops@example.com"]
    assert notify.deadline_alert(SyncConfig(deadline=None)) is None


def test_deadline_callback_logs_and_mails(monkeypatch, caplog):
    sent = []
    monkeypatch.setattr(notify, "_send_email", lambda *args: sent.append(args))
    context = {"dag_run": {"dag_id": "hubspot_to_finance", "dag_run_id": "scheduled__x", "queued_at": "2026-11-28T01:00:00Z",
                           "state": "running"}, "deadline": {"deadline_time": "2026-11-28T05:00:00Z"}}
    with caplog.at_level(logging.WARNING, logger="hubspot_finance.notify"):
        asyncio.run(notify.deadline_missed(context=context, emails=["ops@example.com"], smtp_conn_id="smtp_default"))
    assert "HUBSPOT SYNC LATE: run scheduled__x of hubspot_to_finance" in caplog.text
    assert "has not finished by 2026-11-28T05:00:00Z" in caplog.text
    assert sent and sent[0][0] == ["ops@example.com"]


@pytest.mark.parametrize("state", ["failed", "success"])
def test_deadline_callback_stays_silent_for_a_run_that_already_ended(monkeypatch, caplog, state):
    # Airflow 3.3.2 prunes a run's deadline only on success: a run that failed at 02:05 still "misses"
    # its 06:00 deadline. It has had its failure alert; a second, "late" one would only mislead.
    sent = []
    monkeypatch.setattr(notify, "_send_email", lambda *args: sent.append(args))
    context = {"dag_run": {"dag_id": "hubspot_to_finance", "dag_run_id": "scheduled__x", "queued_at": "2026-11-28T01:00:00Z",
                           "state": state, "end_date": "2026-11-28T01:05:00Z"},
               "deadline": {"deadline_time": "2026-11-28T05:00:00Z"}}
    with caplog.at_level(logging.INFO, logger="hubspot_finance.notify"):
        asyncio.run(notify.deadline_missed(context=context, emails=["ops@example.com"], smtp_conn_id="smtp_default"))
    assert "HUBSPOT SYNC LATE" not in caplog.text and not sent
    assert f"run scheduled__x already ended ({state})" in caplog.text


def test_dag_wires_retry_policy_notifiers_and_deadline():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import ExceptionRetryPolicy

    dag = DagBag(dag_folder=str(DAGS)).dags["hubspot_to_finance"]
    for task in dag.tasks:
        assert isinstance(task.retry_policy, ExceptionRetryPolicy), task.task_id
        assert {r.exception_path for r in task.retry_policy.rules} >= {
            "hubspot_provider.errors.HubSpotAuthError", "hubspot_provider.errors.HubSpotScopeError",
            "hubspot_provider.errors.HubSpotDailyLimitError", "hubspot_finance.params.ParamsError",
            "hubspot_finance.windows.WindowError", "hubspot_finance.config.ConfigError",
            "hubspot_finance.mapping.MappingError",
        }
        assert task.retries >= 1 and task.retry_exponential_backoff
        callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
        assert any(isinstance(c, notify.FailureSummaryNotifier) for c in callbacks), task.task_id
    assert len(dag.deadline) == 1 and dag.deadline[0].interval == timedelta(hours=4)
    start = dag.params.get_param("start")
    assert "pattern" not in start.schema and start.description.startswith("Format 2026-11-01 or 2026-11-01T06:00")


def test_dag_with_every_alert_setting_imports_cleanly():
    env = {**os.environ, "HUBSPOT_SYNC_ALERT_EMAIL": "ops@example.com", "HUBSPOT_SYNC_ALERT_FROM": "airflow@example.com",
           "HUBSPOT_SYNC_ALERT_NOTIFIER": "hubspot_finance.notify.FailureSummaryNotifier",
           "HUBSPOT_SYNC_DEADLINE_MINUTES": "0", "HUBSPOT_SYNC_SCHEDULE": "30 5 * * 1-5", "HUBSPOT_SYNC_TIMEZONE": "UTC"}
    code = (
        "import warnings, runpy\n"
        "warnings.simplefilter('error')\n"
        f"g = runpy.run_path({str(DAGS / 'hubspot_to_finance.py')!r})\n"
        "d = g['hubspot_to_finance']\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"dag = DagBag(dag_folder={str(DAGS)!r}).dags['hubspot_to_finance']\n"
        "assert not dag.deadline, dag.deadline\n"
        "assert (dag.timetable.expression, str(dag.timetable.timezone)) == ('30 5 * * 1-5', 'UTC'), dag.timetable\n"
        "assert len(dag.get_task('load').on_failure_callback) == 3\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
