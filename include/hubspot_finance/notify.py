"""Alerts: who hears about a failed or late sync, configured from ``HUBSPOT_SYNC_ALERT_*``.

- Always: :class:`FailureSummaryNotifier` logs one clear block (task, run, cause, fix, log link) at
  the end of the failed task's log, so the log's last lines say what went wrong.
- ``HUBSPOT_SYNC_ALERT_EMAIL`` (comma-separated): an e-mail through the smtp provider's
  ``SmtpNotifier`` and the ``HUBSPOT_SYNC_ALERT_SMTP_CONN_ID`` connection (``smtp_default``).
- ``HUBSPOT_SYNC_ALERT_NOTIFIER``: the dotted path of any ``BaseNotifier`` subclass (instantiated
  without arguments), instance, or factory returning one (Slack, Teams, PagerDuty …).

Notifiers are task-level ``on_failure_callback`` s: they run in the worker when a task fails for
good (not on a retry), and their output lands in that task's log. The deadline alert
(:func:`deadline_missed`) runs in the triggerer when the run is not finished in time.
Nothing here ever renders a connection's password or token.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from airflow.sdk import BaseNotifier

from hubspot_finance.config import PREFIX, ConfigError, SyncConfig

log = logging.getLogger(__name__)

DAG_ID = "hubspot_to_finance"
ALERT_MARKER = "HUBSPOT SYNC FAILED"
ENDED_STATES = ("success", "failed")


def _exception_line(exc: BaseException | str | None) -> str:
    if exc is None:
        return "no exception recorded (killed, timed out or marked failed by hand)"
    if isinstance(exc, str):
        return exc
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# What to do about a failure, by the exception's class: the fix differs with the cause. Clearing the
# task repeats its parameters, so a bad parameter needs a new run instead.
FIXES = {
    "HubSpotAuthError": "rotate the token in HubSpot (Settings > Integrations > Private apps), put the new one in "
                        "the HubSpot connection (Admin > Connections), then clear this task",
    "HubSpotScopeError": "grant the missing read scope named above to the private app, then clear this task",
    "HubSpotDailyLimitError": "wait until HubSpot's daily limit resets (the time is above), then clear this task; "
                              "or leave it to the next scheduled run",
    "HubSpotConfigError": "fix the HubSpot connection as the cause says (Admin > Connections), then clear this task",
    "ParamsError": "trigger a new run with corrected parameters (clearing this task would reuse the same ones)",
    "WindowError": "trigger a new run with a corrected date range (clearing this task would reuse the same one)",
    "ConfigError": "fix the HUBSPOT_SYNC_* setting named above where the deployment sets it, then clear this task",
    "MappingError": "fix the mapping file as the cause says, then clear this task",
    "TooManyRejectsError": "the load committed; fix the rejected records in HubSpot (rejected_records, the HubSpot "
                           "sync page) — the next run reads them again",
    "FinanceDatabaseError": "bring the finance database back or fix the finance connection, then clear this task",
}
RETRIED_FIX = "look at the error above; once its cause is gone, clear this task (the run goes on from here)"


def _never_retried(exc: BaseException | str | None) -> bool:
    from hubspot_finance.pipeline import FAIL_FAST

    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__} if isinstance(exc, BaseException) else set()
    return bool(names & set(FAIL_FAST))


def failure_fix(exc: BaseException | str | None) -> str:
    """The fix for this cause: the first FIXES entry along the exception's class hierarchy."""
    if isinstance(exc, BaseException):
        for cls in type(exc).__mro__:
            if cls.__name__ in FIXES:
                return FIXES[cls.__name__]
    return RETRIED_FIX


def failure_summary(context: dict[str, Any]) -> str:
    """The lines every failure alert carries: what failed, why, what to do, and where to read more."""
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", None) or "?"
    run_id = context.get("run_id") or getattr(ti, "run_id", None) or "?"
    exc = context.get("exception")
    try_number = getattr(ti, "try_number", None)
    if _never_retried(exc):
        tries = " (not retried: another attempt cannot fix this)"
    elif isinstance(try_number, int):
        tries = f" (after {try_number} {'try' if try_number == 1 else 'tries'})"
    else:
        tries = ""
    lines = [
        f"{ALERT_MARKER}: task {task_id} of run {run_id}{tries}",
        f"  cause: {_exception_line(exc)}",
        f"  fix:   {failure_fix(exc)}",
        "  the finance tables and the watermark are as they were before this run"
        if not isinstance(exc, BaseException) or type(exc).__name__ != "TooManyRejectsError"
        else "  the watermark moved: the loaded rows are in the finance tables",
    ]
    try:
        log_url = getattr(ti, "log_url", None)
    except Exception:  # pragma: no cover - the URL is a convenience
        log_url = None
    if log_url:
        lines.append(f"  log:   {log_url}")
    return "\n".join(lines)


class FailureSummaryNotifier(BaseNotifier):
    """The default alert: a clear failure block at the end of the failed task's log."""

    template_fields = ()

    def notify(self, context):
        # Airflow runs failure callbacks inside the log's collapsed "Post Execute" group: close it, so
        # the cause and the fix are at the top level of the log, where a person opening it looks.
        log.info("::endgroup::")
        log.error("%s", failure_summary(context))


def email_notifier(cfg: SyncConfig):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(
        to=list(cfg.alert_emails),
        from_email=cfg.alert_from,
        smtp_conn_id=cfg.alert_smtp_conn_id,
        subject="[Airflow] hubspot_to_finance failed: {{ ti.task_id }} ({{ run_id }})",
        html_content=(
            "<p>The HubSpot → finance sync failed.</p>"
            "<p>Task <b>{{ ti.task_id }}</b> of run <b>{{ run_id }}</b>, try {{ ti.try_number }}.</p>"
            "<p>Cause: <code>{{ exception }}</code></p>"
            '<p>Log: <a href="{{ ti.log_url }}">{{ ti.log_url }}</a></p>'
            "<p>Nothing was half-loaded and the watermark did not move; fix the cause and re-run.</p>"
        ),
    )


def custom_notifier(path: str) -> Callable:
    from airflow.sdk.module_loading import import_string

    try:
        target = import_string(path)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{PREFIX}ALERT_NOTIFIER={path!r}: cannot import it ({err})") from None
    if isinstance(target, type):
        notifier = target()  # a BaseNotifier subclass that needs no arguments
    elif isinstance(target, BaseNotifier):
        notifier = target
    elif callable(target):
        notifier = target()  # a factory
    else:
        raise ConfigError(f"{PREFIX}ALERT_NOTIFIER={path!r}: not a notifier, notifier class or factory")
    if not callable(notifier):
        raise ConfigError(f"{PREFIX}ALERT_NOTIFIER={path!r}: produced {notifier!r}, which is not callable")
    return notifier


def failure_notifiers(cfg: SyncConfig) -> list[Callable]:
    """The ``on_failure_callback`` list for every task: the log summary, then e-mail, then custom."""
    notifiers: list[Callable] = [FailureSummaryNotifier()]
    if cfg.alert_emails:
        notifiers.append(email_notifier(cfg))
    if cfg.alert_notifier:
        notifiers.append(custom_notifier(cfg.alert_notifier))
    return notifiers


async def deadline_missed(context: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Deadline alert callback (runs in the triggerer): the run is not finished in time.

    Airflow 3.3.2 drops a run's deadline only when the run succeeds, so a run that *failed* early
    still "misses" it hours later. The context carries the run's state at the moment of the miss:
    a run that already ended has had its failure alert, and a second, "late" alert would mislead.
    """
    dag_run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    if dag_run.get("state") in ENDED_STATES:
        log.info("deadline passed, but run %s already ended (%s) at %s: no late alert",
                 dag_run.get("dag_run_id", "?"), dag_run.get("state"), dag_run.get("end_date"))
        return
    message = (
        f"HUBSPOT SYNC LATE: run {dag_run.get('dag_run_id', '?')} of {dag_run.get('dag_id', DAG_ID)} "
        f"(queued {dag_run.get('queued_at')}, state {dag_run.get('state')}) has not finished by "
        f"{deadline.get('deadline_time')}; finance data may be stale this morning. Look at the run in the UI."
    )
    log.warning("%s", message)
    emails = kwargs.get("emails") or []
    if emails:
        await asyncio.to_thread(_send_email, emails, kwargs.get("smtp_conn_id") or "smtp_default", kwargs.get("from_email"), message)


def _send_email(to: list[str], conn_id: str, from_email: str | None, message: str) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            hook.send_email_smtp(
                to=to, from_email=from_email or hook.from_email, subject="[Airflow] hubspot_to_finance is late",
                html_content=f"<p>{message}</p>",
            )
    except Exception as err:  # an alert must not crash the triggerer
        log.error("could not send the deadline e-mail via %s: %s", conn_id, err)


def deadline_alert(cfg: SyncConfig):
    """A DAG-level ``DeadlineAlert``: the run should finish within ``cfg.deadline`` of being queued.

    Relative to the queued time (not the logical date, which manual runs may not have): the nightly
    run is queued at 02:00 Oslo, so the default 4 hours means "finished by 06:00".
    """
    if cfg.deadline is None:
        return None
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=cfg.deadline,
        callback=AsyncCallback(
            deadline_missed,
            kwargs={"emails": list(cfg.alert_emails), "smtp_conn_id": cfg.alert_smtp_conn_id, "from_email": cfg.alert_from},
        ),
        name="hubspot_to_finance not finished in time",
    )
