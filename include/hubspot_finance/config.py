"""The sync's settings, from environment variables, so operators change them without editing code.

Read at DAG parse time: environment only (no database, no network). Every value is validated
here, and a bad one raises :class:`ConfigError` naming the variable and what it accepts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

OBJECT_TYPES = ("contacts", "deals", "companies")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SWEEP_CHOICES = (*WEEKDAYS, "daily", "never")
RECONCILE_CHOICES = ("every_run", "sweep", "never")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PREFIX = "HUBSPOT_SYNC_"
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+$")
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


class ConfigError(ValueError):
    """A setting is invalid; the message names the environment variable."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(PREFIX + name)
    return default if value is None or value.strip() == "" else value.strip()


def _minutes(name: str, default: int) -> timedelta:
    raw = _env(name, str(default))
    try:
        value = float(raw)  # minutes, possibly fractional
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r}: give a number of minutes") from None
    if value < 0:
        raise ConfigError(f"{PREFIX}{name}={raw!r}: must not be negative")
    return timedelta(minutes=value)


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (_env(name, default) or default).lower()
    if value not in choices:
        raise ConfigError(f"{PREFIX}{name}={value!r}: one of {', '.join(choices)}")
    return value


def default_raw_root() -> str:
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home, "hubspot_raw").resolve().as_uri()


@dataclass(frozen=True)
class SyncConfig:
    hubspot_conn_id: str = "hubspot_default"
    finance_conn_id: str = "finance_db"
    schema: str = "finance"
    raw_root: str = field(default_factory=default_raw_root)
    schedule: str = "0 2 * * *"
    timezone: str = "Europe/Oslo"
    # The DAG's start date (account time zone). With catchup off, Airflow runs the latest complete
    # interval as soon as the DAG is unpaused unless this is later; `make airflow` sets it to the
    # day of the local install, so the first manual trigger is the first run.
    start_date: datetime = datetime(2026, 1, 1)
    overlap: timedelta = timedelta(minutes=30)
    lag_margin: timedelta = timedelta(minutes=10)
    extra_properties: tuple[str, ...] | str = ()
    mapping_file: str | None = None
    pool: str | None = None
    parallel_extracts: int = 3
    reject_threshold: float = 0.05
    reject_action: str = "warn"  # warn | fail
    alert_emails: tuple[str, ...] = ()
    alert_from: str | None = None
    alert_smtp_conn_id: str = "smtp_default"
    alert_notifier: str | None = None  # dotted path to a BaseNotifier subclass, instance or factory
    # The first retry of a failed task waits this long, doubling up to 20 minutes.
    retry_delay: timedelta = timedelta(minutes=2)
    # The run should be done this long after it was queued (02:00 + 4 h = 06:00 Oslo); None: no alert.
    deadline: timedelta | None = timedelta(hours=4)
    # The id sweep (permanent deletes): on the scheduled run of this weekday (account time zone), daily or never.
    sweep_weekday: str = "sunday"
    # Association reconciliation of every live deal and contact: every_run, only with the sweep, or never.
    reconcile_associations: str = "every_run"
    # Permanently deleted contacts lose names, e-mail, phone, address and properties in the finance tables.
    erase_personal_data: bool = False

    def sweeps_on(self, weekday: int) -> bool:
        """Whether a scheduled run on ``weekday`` (Monday = 0, in the account's time zone) runs the id sweep."""
        return self.sweep_weekday == "daily" or (self.sweep_weekday in WEEKDAYS and WEEKDAYS.index(self.sweep_weekday) == weekday)

    @classmethod
    def from_env(cls) -> SyncConfig:
        timezone = _env("TIMEZONE", "Europe/Oslo")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{PREFIX}TIMEZONE={timezone!r}: not an IANA time zone such as Europe/Oslo") from None
        schema = _env("SCHEMA", "finance")
        if not _IDENT.match(schema):
            raise ConfigError(f"{PREFIX}SCHEMA={schema!r}: use lower-case letters, digits and underscores")
        extra = _env("EXTRA_PROPERTIES", "")
        extra_properties: tuple[str, ...] | str
        if extra.lower() == "all":
            extra_properties = "all"
        else:
            extra_properties = tuple(p.strip() for p in extra.split(",") if p.strip())
        try:
            parallel = int(_env("PARALLEL_EXTRACTS", "3"))
            threshold = float(_env("REJECT_THRESHOLD", "0.05"))
        except ValueError as err:
            raise ConfigError(f"{PREFIX}PARALLEL_EXTRACTS / REJECT_THRESHOLD: {err}") from None
        if not 1 <= parallel <= 3:
            raise ConfigError(f"{PREFIX}PARALLEL_EXTRACTS={parallel}: must be 1, 2 or 3")
        if not 0 <= threshold <= 1:
            raise ConfigError(f"{PREFIX}REJECT_THRESHOLD={threshold}: a fraction between 0 and 1")
        action = _env("REJECT_ACTION", "warn").lower()
        if action not in ("warn", "fail"):
            raise ConfigError(f"{PREFIX}REJECT_ACTION={action!r}: warn or fail")
        emails = tuple(e.strip() for e in (_env("ALERT_EMAIL", "") or "").split(",") if e.strip())
        for email in emails:
            if not _EMAIL.match(email):
                raise ConfigError(f"{PREFIX}ALERT_EMAIL: {email!r} is not an e-mail address (comma-separate several)")
        notifier = _env("ALERT_NOTIFIER")
        if notifier is not None and not _DOTTED.match(notifier):
            raise ConfigError(
                f"{PREFIX}ALERT_NOTIFIER={notifier!r}: give the dotted path of a notifier, "
                "e.g. airflow.providers.slack.notifications.slack.SlackNotifier or mypackage.alerts.make_notifier"
            )
        deadline = _minutes("DEADLINE_MINUTES", 240)
        start_text = _env("START_DATE", cls.start_date.isoformat())
        try:
            start_date = datetime.fromisoformat(start_text)
        except ValueError:
            raise ConfigError(f"{PREFIX}START_DATE={start_text!r}: give a date (2026-01-01) or date-time (2026-12-01T17:30)") from None
        sweep = _choice("SWEEP_WEEKDAY", "sunday", SWEEP_CHOICES)
        reconcile = _choice("RECONCILE_ASSOCIATIONS", "every_run", RECONCILE_CHOICES)
        erase = _choice("ERASE_PERSONAL_DATA", "false", ("true", "false")) == "true"
        return cls(
            hubspot_conn_id=_env("HUBSPOT_CONN_ID", "hubspot_default"),
            finance_conn_id=_env("FINANCE_CONN_ID", "finance_db"),
            schema=schema,
            raw_root=_env("RAW_ROOT") or default_raw_root(),
            schedule=_env("SCHEDULE", "0 2 * * *"),
            timezone=timezone,
            start_date=start_date.replace(tzinfo=None) if start_date.tzinfo is None else start_date.astimezone(ZoneInfo(timezone)).replace(tzinfo=None),
            overlap=_minutes("OVERLAP_MINUTES", 30),
            lag_margin=_minutes("LAG_MARGIN_MINUTES", 10),
            extra_properties=extra_properties,
            mapping_file=_env("MAPPING_FILE"),
            pool=_env("POOL"),
            parallel_extracts=parallel,
            reject_threshold=threshold,
            reject_action=action,
            alert_emails=emails,
            alert_from=_env("ALERT_FROM"),
            alert_smtp_conn_id=_env("ALERT_SMTP_CONN_ID", "smtp_default"),
            alert_notifier=notifier,
            deadline=deadline if deadline > timedelta(0) else None,
            retry_delay=_minutes("RETRY_DELAY_MINUTES", 2),
            sweep_weekday=sweep,
            reconcile_associations=reconcile,
            erase_personal_data=erase,
        )
