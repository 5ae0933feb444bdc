"""The trigger form's parameters, validated again in code (the form can be bypassed by the API/CLI).

Dates a person types are read in the HubSpot account's time zone (Europe/Oslo by default) unless
they carry an offset; everything after this module is UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

from hubspot_finance.config import OBJECT_TYPES


class ParamsError(ValueError):
    """A trigger parameter is invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class RunRequest:
    start: datetime | None
    end: datetime | None
    objects: tuple[str, ...]
    full_refresh: bool
    dry_run: bool
    reconcile: bool = False  # also run the id sweep (permanent deletes) in this run


def parse_flag(params: dict[str, Any], name: str) -> bool:
    """A boolean parameter: a real boolean, or the strings ``true``/``false`` in any case (CLI, REST API).

    ``bool("false")`` is True, so strings are never passed through ``bool``; anything else is an error.
    """
    value = params.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ParamsError(f"{name}={value!r} is not a boolean: give true or false")


def parse_moment(value: Any, name: str, zone: ZoneInfo) -> datetime | None:
    """``YYYY-MM-DD`` (midnight in ``zone``) or an ISO date-time (``zone`` unless it has an offset)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time.min)
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                parsed = datetime.combine(date.fromisoformat(text), time.min)
            else:
                parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise ParamsError(
                f"{name}={text!r} is not a date (2026-11-01) or date-time (2026-11-01T06:00, optionally with an offset)"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(timezone.utc)


def parse_run_request(params: dict[str, Any], *, account_zone: str, now: datetime) -> RunRequest:
    zone = ZoneInfo(account_zone)
    start = parse_moment(params.get("start"), "start", zone)
    end = parse_moment(params.get("end"), "end", zone)
    raw_objects = params.get("objects") or list(OBJECT_TYPES)
    if isinstance(raw_objects, str):
        raw_objects = [o.strip() for o in raw_objects.split(",") if o.strip()]
    unknown = sorted(set(raw_objects) - set(OBJECT_TYPES))
    if unknown:
        raise ParamsError(f"objects: unknown {unknown}; choose from {list(OBJECT_TYPES)}")
    if not raw_objects:
        raise ParamsError("objects: choose at least one of contacts, deals, companies")
    full_refresh = parse_flag(params, "full_refresh")
    dry_run = parse_flag(params, "dry_run")
    reconcile = parse_flag(params, "reconcile")
    if full_refresh and (start or end):
        raise ParamsError("full_refresh re-reads everything: clear start and end, or untick full_refresh")
    if end is not None and start is None:
        raise ParamsError("end without start: give a start too (or clear end)")
    if start is not None and end is not None and end <= start:
        raise ParamsError(f"end ({params.get('end')}) must be after start ({params.get('start')})")
    if start is not None and start >= now:
        raise ParamsError(f"start ({params.get('start')}) is in the future")
    ordered = tuple(o for o in OBJECT_TYPES if o in raw_objects)
    return RunRequest(start, end, ordered, full_refresh, dry_run, reconcile)
