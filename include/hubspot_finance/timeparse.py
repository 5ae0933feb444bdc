"""Parsing HubSpot's time values: ISO-8601 (``…Z`` or with offset) or epoch milliseconds as digits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_hubspot_datetime(value: object) -> datetime | None:
    """A UTC datetime, or None for null/empty. Raises ValueError on anything else unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return _EPOCH + timedelta(milliseconds=int(text))
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_hubspot_datetime_ms(value: object) -> int | None:
    """Epoch milliseconds (exact for ISO values with millisecond precision)."""
    parsed = parse_hubspot_datetime(value)
    if parsed is None:
        return None
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def to_ms(value: datetime) -> int:
    delta = value.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)
