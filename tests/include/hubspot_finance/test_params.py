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


def _form_param(name):
    """The DAG's Param as the trigger form / REST API validates it (JSON Schema)."""
    import runpy
    from pathlib import Path

    dag_file = Path(__file__).resolve().parents[3] / "dags" / "hubspot_to_finance.py"
    return runpy.run_path(str(dag_file))["PARAMS"][name]


@pytest.mark.parametrize("value", [None, "2026-11-01", "2026-11-01T06:00", "2026-11-01T06:00:30", "2026-11-01T06:00Z",
                                   "2026-11-01T06:00:00.123+01:00", "2026-11-01 06:00"])
def test_form_accepts_dates_and_date_times(value):
    from airflow.sdk import Param

    p = _form_param("start")
    Param(value, **p.schema).resolve()  # raises ParamValidationError if refused
    if value is not None:
        assert parse(start=value).start is not None  # and the code reads what the form lets through


@pytest.mark.parametrize("value", ["01.11.2026", "2026-11", "yesterday", "2026-11-01T6"])
def test_what_is_not_a_date_fails_plan_in_one_line_naming_the_format(value):
    # The form has no pattern to check (it would answer with the raw regular expression): its field
    # hint gives the format, and `plan` refuses anything else in words.
    from airflow.sdk import Param

    p = _form_param("end")
    assert Param(value, **p.schema).resolve() == value
    with pytest.raises(ParamsError, match=r"is not a date \(2026-11-01\) or date-time \(2026-11-01T06:00"):
        parse(start=value)


def test_form_refuses_an_empty_object_list():
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamValidationError

    p = _form_param("objects")
    with pytest.raises(ParamValidationError):
        Param([], **p.schema).resolve()
    with pytest.raises(ParamValidationError):
        Param(["contacts", "tickets"], **p.schema).resolve()


def test_what_the_form_cannot_check_the_code_does():
    # Shape-valid but wrong: the form lets it through, params.py refuses it with a reason.
    from airflow.sdk import Param

    Param("2026-02-30", **_form_param("start").schema).resolve()
    with pytest.raises(ParamsError, match="is not a date"):
        parse(start="2026-02-30")


@pytest.mark.parametrize("name", ["full_refresh", "dry_run", "reconcile"])
@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("false", False), ("TRUE", True), ("False", False),
    (" true ", True), (None, False),
])
def test_booleans_accept_real_booleans_and_true_false_strings(name, value, expected):
    assert getattr(parse(**{name: value}), name) is expected


@pytest.mark.parametrize("value", ["yes", "0", "1", "", "falsch", 1, 0, [], {}])
def test_anything_else_as_a_boolean_is_the_one_line_parameter_error(value):
    with pytest.raises(ParamsError, match="full_refresh.*true or false"):
        parse(full_refresh=value)
