"""The sandbox clock: every modification is stamped with it, and search index lag is measured on it.

Tests move or freeze it to make time-window logic deterministic; it never affects the rate-limit
windows, which run on the real monotonic clock so that a frozen sandbox still throttles.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


def iso_ms(ms: int) -> str:
    """Epoch milliseconds → ``YYYY-MM-DDThh:mm:ss.sssZ`` (HubSpot's datetime format)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def parse_ms(value) -> int | None:
    """Epoch milliseconds from digits or an ISO string; None when unparseable."""
    if value is None:
        return None
    s = str(value).strip()
    if not s:
        return None
    try:
        return int(float(s)) if s.lstrip("-").replace(".", "", 1).isdigit() else _iso(s)
    except ValueError:
        return None


def _iso(s: str) -> int:
    if len(s) == 10:
        s += "T00:00:00"
    s = s.replace("Z", "+00:00")
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


class Clock:
    """Wall clock with an offset, or frozen at one millisecond."""

    def __init__(self, frozen_at_ms: int | None = None):
        self._lock = threading.Lock()
        self._offset_ms = 0
        self._frozen: int | None = frozen_at_ms

    def now_ms(self) -> int:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return int(time.time() * 1000) + self._offset_ms

    def freeze(self, at_ms: int | None = None) -> int:
        now = self.now_ms() if at_ms is None else int(at_ms)
        with self._lock:
            self._frozen = now
        return now

    def unfreeze(self) -> int:
        with self._lock:
            if self._frozen is not None:
                self._offset_ms = self._frozen - int(time.time() * 1000)
                self._frozen = None
        return self.now_ms()

    def set(self, at_ms: int) -> int:
        with self._lock:
            if self._frozen is not None:
                self._frozen = int(at_ms)
            else:
                self._offset_ms = int(at_ms) - int(time.time() * 1000)
        return self.now_ms()

    def advance(self, ms: int) -> int:
        with self._lock:
            if self._frozen is not None:
                self._frozen += int(ms)
            else:
                self._offset_ms += int(ms)
        return self.now_ms()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None
