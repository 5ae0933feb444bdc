"""How fresh each object's watermark is, judged against the DAG's own schedule.

The rule (also shown on the page):

- The schedule is ``HUBSPOT_SYNC_SCHEDULE`` in ``HUBSPOT_SYNC_TIMEZONE``; each scheduled run should be
  finished ``HUBSPOT_SYNC_DEADLINE_MINUTES`` after it starts (4 h by default; when the deadline alert is
  off, 4 h still serves as the grace period here).
- The *due* run is the latest scheduled start whose grace period has passed. A run that starts at
  ``t`` commits the watermark ``t − lag margin`` (its window's end), so:
- **green**: the watermark has reached the due run (``≥ due − lag margin``): at most one schedule
  interval plus the deadline old;
- **amber**: it has reached only the run before (one scheduled run missing or late): at most two
  intervals plus the deadline old;
- **red**: older than that, or the object has never been synced.

Working from the schedule's fire times instead of a fixed age makes irregular schedules (week-days
only, several times a day) and daylight-saving days come out right; nothing assumes 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from hubspot_finance.config import SyncConfig

Status = Literal["green", "amber", "red"]
DEFAULT_GRACE = timedelta(hours=4)  # when the deadline alert is switched off


class ScheduleError(ValueError):
    """``HUBSPOT_SYNC_SCHEDULE`` is not a cron expression croniter can read."""


@dataclass(frozen=True)
class Schedule:
    """The due run and the one before it, for one moment ``now``."""

    cron: str
    time_zone: str
    grace: timedelta
    lag_margin: timedelta
    due: datetime  # latest scheduled start whose grace period has passed (UTC)
    before_due: datetime  # the scheduled start before it (UTC)

    @property
    def interval(self) -> timedelta:
        """The schedule interval around the due run (e.g. 24 h for a nightly run, 23 or 25 h on DST days)."""
        return self.due - self.before_due


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str


def schedule_at(cfg: SyncConfig, now: datetime) -> Schedule:
    """The due run and the run before it, from the cron in the account's time zone."""
    from croniter import croniter

    if not croniter.is_valid(cfg.schedule):
        raise ScheduleError(f"HUBSPOT_SYNC_SCHEDULE={cfg.schedule!r} is not a cron expression")
    zone = ZoneInfo(cfg.timezone)
    grace = cfg.deadline or DEFAULT_GRACE
    it = croniter(cfg.schedule, (now - grace).astimezone(zone))
    due = it.get_prev(datetime)
    before_due = it.get_prev(datetime)
    return Schedule(cfg.schedule, cfg.timezone, grace, cfg.lag_margin,
                    due.astimezone(timezone.utc), before_due.astimezone(timezone.utc))


def judge(watermark: datetime | None, schedule: Schedule) -> Verdict:
    """green / amber / red for one watermark (see the module docstring)."""
    if watermark is None:
        return Verdict("red", "never synced")
    if watermark >= schedule.due - schedule.lag_margin:
        return Verdict("green", "the last scheduled run is in")
    if watermark >= schedule.before_due - schedule.lag_margin:
        return Verdict("amber", "one scheduled run is missing or late")
    return Verdict("red", "more than one scheduled run is missing")


def describe_rule(schedule: Schedule) -> str:
    """The rule in one paragraph, with this deployment's numbers, for the page."""
    return (
        f"Schedule {schedule.cron} ({schedule.time_zone}); each run should be done {human_duration(schedule.grace)} "
        f"after it starts. Green: the watermark has reached the latest run that should be finished by now "
        f"(at most one schedule interval, now {human_duration(schedule.interval)}, plus {human_duration(schedule.grace)} old). "
        "Amber: it has reached only the run before (one run missing or late). "
        "Red: older than that, or never synced."
    )


def human_duration(span: timedelta) -> str:
    """``2 d 3 h``, ``5 h 12 min``, ``40 min``, ``less than a minute``."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"
