from datetime import datetime, timezone

import pytest

from hubspot_finance.params import ParamsError, parse_run_request

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def parse(**params):
    return parse_run_request(params, account_zone="Europe/Oslo", now=NOW)


def test_defaults_are_an_incremental_sync_of_everything():
    request = parse()
    assert request.start is None and request.end is None
    assert request.objects == ("contacts", "deals", "companies")
    assert not request.full_refresh and not request.dry_run


def test_dates_are_read_in_the_account_time_zone():
    request = parse(start="2026-11-01", end="2026-11-02")
    # Midnight in Oslo (UTC+1 in November) is 23:00 UTC the day before.
    assert request.start == datetime(2026, 10, 31, 23, 0, tzinfo=timezone.utc)
    assert request.end == datetime(2026, 11, 1, 23, 0, tzinfo=timezone.utc)


def test_summer_time_and_explicit_offsets():
    assert parse(start="2026-07-01T06:00").start == datetime(2026, 7, 1, 4, 0, tzinfo=timezone.utc)
    assert parse(start="2026-07-01T06:00Z").start == datetime(2026, 7, 1, 6, 0, tzinfo=timezone.utc)
    assert parse(start="2026-07-01T06:00+05:00").start == datetime(2026, 7, 1, 1, 0, tzinfo=timezone.utc)


def test_objects_subset_keeps_canonical_order():
    assert parse(objects=["companies", "contacts"]).objects == ("contacts", "companies")
    assert parse(objects="deals").objects == ("deals",)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-11-02", "end": "2026-11-01"}, "must be after start"),
        ({"start": "2026-12-24"}, "in the future"),
        ({"objects": ["contacts", "tickets"]}, r"unknown \['tickets'\]"),
        ({"full_refresh": True, "start": "2026-11-01"}, "full_refresh re-reads everything"),
        ({"end": "2026-11-01"}, "end without start"),
        ({"start": "01.11.2026"}, "is not a date"),
    ],
)
def test_invalid_requests_name_the_problem(params, message):
    with pytest.raises(ParamsError, match=message):
        parse(**params)
