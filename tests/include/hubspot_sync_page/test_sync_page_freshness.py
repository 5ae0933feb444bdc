"""The freshness rule against the schedule's own fire times: no fixed 24 hours, daylight saving and
week-day-only schedules judged right."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hubspot_finance.config import SyncConfig
from hubspot_sync_page.freshness import ScheduleError, describe_rule, human_duration, judge, schedule_at


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def config(schedule: str = "0 2 * * *", deadline: timedelta | None = timedelta(hours=4),
           lag: timedelta = timedelta(minutes=10)) -> SyncConfig:
    return SyncConfig(schedule=schedule, timezone="Europe/Oslo", deadline=deadline, lag_margin=lag, raw_root="file:///tmp/raw")


def test_nightly_run_green_until_the_deadline_then_amber_then_red():
    cfg = config()
    watermark = utc(2026, 9, 21, 23, 50)  # the run of 22 Sept 02:00 Oslo (00:00 UTC), less the 10 min lag margin
    assert judge(watermark, schedule_at(cfg, utc(2026, 9, 22, 3, 59))).status == "green"
    assert judge(watermark, schedule_at(cfg, utc(2026, 9, 23, 3, 59))).status == "green"  # 23 Sept run not due yet
    assert judge(watermark, schedule_at(cfg, utc(2026, 9, 23, 4, 1))).status == "amber"  # 06:01 Oslo: it is due
    assert judge(watermark, schedule_at(cfg, utc(2026, 9, 24, 4, 1))).status == "red"
    assert judge(None, schedule_at(cfg, utc(2026, 9, 23, 4, 1))).reason == "never synced"


def test_the_interval_is_the_schedules_not_a_fixed_day():
    assert schedule_at(config("0 * * * *", timedelta(minutes=30)), utc(2026, 9, 22, 12, 40)).interval == timedelta(hours=1)
    assert schedule_at(config("30 */6 * * *"), utc(2026, 9, 22, 12, 0)).interval == timedelta(hours=6)


def test_daylight_saving_day_has_a_23_hour_interval():
    # 29 March 2026: Oslo moves from CET to CEST; the 04:00 run comes 23 hours after the previous one
    schedule = schedule_at(config("0 4 * * *"), utc(2026, 3, 29, 12, 0))
    assert schedule.due == utc(2026, 3, 29, 2, 0) and schedule.interval == timedelta(hours=23)


def test_weekday_schedule_is_not_late_at_the_weekend():
    cfg = config("0 2 * * 1-5")
    friday_run = utc(2026, 9, 24, 23, 50)  # Friday 25 Sept 02:00 Oslo, less the lag margin
    assert judge(friday_run, schedule_at(cfg, utc(2026, 9, 26, 12, 0))).status == "green"  # Saturday, 36 h later
    monday = schedule_at(cfg, utc(2026, 9, 28, 5, 0))  # Monday 07:00 Oslo: Monday's run is due
    assert monday.interval == timedelta(days=3) and judge(friday_run, monday).status == "amber"


def test_without_a_deadline_alert_four_hours_of_grace_still_apply():
    schedule = schedule_at(config(deadline=None), utc(2026, 9, 22, 3, 59))
    assert schedule.grace == timedelta(hours=4) and schedule.due == utc(2026, 9, 21, 0, 0)


def test_the_rule_is_explained_with_this_deployments_numbers():
    text = describe_rule(schedule_at(config("0 */6 * * *", timedelta(hours=1)), utc(2026, 9, 22, 12, 0)))
    assert "0 */6 * * *" in text and "6 h" in text and "1 h" in text and "Amber" in text


def test_an_invalid_schedule_is_a_typed_error():
    with pytest.raises(ScheduleError, match="HUBSPOT_SYNC_SCHEDULE"):
        schedule_at(config("every night"), utc(2026, 9, 22))


@pytest.mark.parametrize("span, text", [
    (timedelta(seconds=30), "less than a minute"), (timedelta(minutes=40), "40 min"),
    (timedelta(hours=5, minutes=12), "5 h 12 min"), (timedelta(days=2, hours=3), "2 d 3 h"), (timedelta(days=1), "1 d"),
])
def test_human_durations(span, text):
    assert human_duration(span) == text
