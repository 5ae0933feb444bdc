from datetime import datetime, timedelta, timezone

import pytest

from hubspot_finance.windows import Window, WindowError, plan_window

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)
OVERLAP = timedelta(minutes=30)
LAG = timedelta(minutes=10)


def plan(**kwargs):
    return plan_window(now=NOW, overlap=OVERLAP, lag_margin=LAG, **kwargs)


def test_first_run_is_full_and_sets_watermark_behind_the_lag():
    window = plan(watermark=None)
    assert window == Window("full", None, NOW - LAG, NOW - LAG)


def test_incremental_reads_from_watermark_minus_overlap_to_now_minus_lag():
    watermark = NOW - timedelta(days=1)
    window = plan(watermark=watermark)
    assert window == Window("incremental", watermark - OVERLAP, NOW - LAG, NOW - LAG)


def test_skipped_nights_leave_no_gap():
    # The last committed load was three days ago: the window reaches back to it.
    watermark = NOW - timedelta(days=3)
    window = plan(watermark=watermark)
    assert window.start == watermark - OVERLAP and window.end == NOW - LAG


def test_window_inside_lag_margin_is_empty_and_keeps_watermark():
    watermark = NOW - timedelta(minutes=5)
    window = plan_window(watermark=watermark, now=NOW, overlap=timedelta(0), lag_margin=LAG)
    assert window.is_empty and window.advances_to is None


def test_overlap_rereads_but_never_lowers_the_watermark():
    watermark = NOW - timedelta(minutes=5)  # newer than now - lag (an earlier run with a smaller margin)
    window = plan(watermark=watermark)
    assert window.start == watermark - OVERLAP and window.advances_to == watermark


def test_full_refresh_never_moves_watermark_backwards():
    future_watermark = NOW + timedelta(hours=1)  # clock skew between runs
    window = plan(watermark=future_watermark, full_refresh=True)
    assert window.mode == "full" and window.advances_to == future_watermark


def test_range_before_watermark_does_not_move_it():
    watermark = NOW - timedelta(hours=1)
    window = plan(watermark=watermark, start=NOW - timedelta(days=10), end=NOW - timedelta(days=9))
    assert window.mode == "range"
    assert window.advances_to is None


def test_range_joining_watermark_advances_it():
    watermark = NOW - timedelta(days=2)
    window = plan(watermark=watermark, start=NOW - timedelta(days=3))
    assert window == Window("range", NOW - timedelta(days=3), NOW - LAG, NOW - LAG)


def test_range_with_gap_after_watermark_does_not_advance_it():
    watermark = NOW - timedelta(days=5)
    window = plan(watermark=watermark, start=NOW - timedelta(days=2), end=NOW - timedelta(days=1))
    assert window.advances_to is None


def test_range_is_clipped_at_lag_margin():
    window = plan(watermark=None, start=NOW - timedelta(hours=2), end=NOW + timedelta(hours=5))
    assert window.end == NOW - LAG and window.advances_to is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": NOW - timedelta(days=1), "end": NOW - timedelta(days=2)}, "is not after start"),
        ({"start": NOW + timedelta(days=1)}, "in the future"),
        ({"end": NOW}, "needs a start"),
        ({"full_refresh": True, "start": NOW - timedelta(days=1)}, "full_refresh re-reads everything"),
        ({"start": NOW - timedelta(minutes=5)}, "within the search lag margin"),
        ({"start": datetime(2026, 1, 1)}, "no time zone"),
    ],
)
def test_bad_requests_are_explained(kwargs, message):
    with pytest.raises(WindowError, match=message):
        plan(watermark=None, **kwargs)
