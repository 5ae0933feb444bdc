"""Which slice of HubSpot's modification history a run reads, derived from the committed watermark.

Scheduled runs read ``[watermark - overlap, now - lag margin)``: the overlap re-reads the edge of
the last window (duplicates are removed by id downstream) and the lag margin keeps the window's
end behind HubSpot's search index, so a change is never skipped because it was not yet searchable.
The watermark itself only moves when the load that covers the window commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

Mode = Literal["full", "incremental", "range"]

DEFAULT_OVERLAP = timedelta(minutes=30)
DEFAULT_LAG_MARGIN = timedelta(minutes=10)


class WindowError(ValueError):
    """A requested window that cannot be run; the message says how to fix the request."""


@dataclass(frozen=True)
class Window:
    """A run's slice of history, in UTC. ``start is None`` means everything (full extraction)."""

    mode: Mode
    start: datetime | None
    end: datetime
    # The watermark the load may commit once this window's data is in: None leaves it unchanged.
    advances_to: datetime | None

    @property
    def is_empty(self) -> bool:
        return self.start is not None and self.start >= self.end

    @classmethod
    def from_dict(cls, data: dict[str, str | None]) -> Window:
        def moment(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if value else None

        end = moment("window_end")
        assert end is not None, "a window always has an end"
        return cls(data["mode"], moment("window_start"), end, moment("advances_to"))  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, str | None]:
        return {
            "mode": self.mode,
            "window_start": self.start.isoformat() if self.start else None,
            "window_end": self.end.isoformat(),
            "advances_to": self.advances_to.isoformat() if self.advances_to else None,
        }


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise WindowError(f"{value.isoformat()} has no time zone; give an offset or use UTC")
    return value.astimezone(timezone.utc)


def plan_window(
    *,
    watermark: datetime | None,
    now: datetime,
    overlap: timedelta = DEFAULT_OVERLAP,
    lag_margin: timedelta = DEFAULT_LAG_MARGIN,
    start: datetime | None = None,
    end: datetime | None = None,
    full_refresh: bool = False,
) -> Window:
    """Derive the window of one object for one run.

    - ``full_refresh`` or no watermark yet: a full extraction; afterwards the watermark is the
      moment the listing began minus the lag margin (changes made while listing are re-read).
    - ``start``/``end`` given: a manual re-sync of that range. It moves the watermark only where the
      range joins up with it (starts at or before it), and never backwards.
    - otherwise: ``[watermark - overlap, now - lag margin)``.
    """
    if overlap < timedelta(0) or lag_margin < timedelta(0):
        raise WindowError("overlap and lag margin must not be negative")
    now = utc(now)
    ceiling = now - lag_margin
    watermark = utc(watermark) if watermark else None
    if full_refresh and (start or end):
        raise WindowError("full_refresh re-reads everything: leave start and end empty, or turn full_refresh off")
    if full_refresh or (watermark is None and start is None and end is None):
        return Window("full", None, ceiling, ceiling if watermark is None else max(watermark, ceiling))
    if start is not None or end is not None:
        if start is None:
            raise WindowError("a manual range needs a start; give start (and optionally end)")
        start = utc(start)
        if start >= now:
            raise WindowError(f"start {start.isoformat()} is in the future")
        if end is not None and utc(end) <= start:
            raise WindowError(f"end {utc(end).isoformat()} is not after start {start.isoformat()}")
        end = min(utc(end), ceiling) if end is not None else ceiling
        if end <= start:
            raise WindowError(
                f"the range ends within the search lag margin ({lag_margin}); wait until "
                f"{(start + lag_margin).isoformat()} or pick an earlier start"
            )
        moves = watermark is not None and start <= watermark < end
        return Window("range", start, end, end if moves else None)
    assert watermark is not None
    window_start = watermark - overlap
    if ceiling <= window_start:
        return Window("incremental", window_start, window_start, None)
    return Window("incremental", window_start, ceiling, max(watermark, ceiling))
