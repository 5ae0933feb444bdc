"""Parsing HubSpot's time values: ISO-8601 (``…Z`` or with offset) or epoch milliseconds as digits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_hubspot_datetime(value: object) -> datetime | None:
    """A UTC datetime, or None for null/empty. Raises ValueError on anything else unreadable."""
    from hubspot_finance.validation import parse_datetime

    return parse_datetime(None if value is None else str(value))


def parse_hubspot_datetime_ms(value: object) -> int | None:
    """Epoch milliseconds (exact for ISO values with millisecond precision)."""
    parsed = parse_hubspot_datetime(value)
    return None if parsed is None else to_ms(parsed)


def to_ms(value: datetime) -> int:
    delta = value.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)
