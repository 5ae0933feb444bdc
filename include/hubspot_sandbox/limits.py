"""HubSpot rate limits: a ten-secondly rolling budget per token, a daily budget per account that
resets at the account's local midnight, and a separate per-second bucket for search.

The rolling windows use the real monotonic clock (a frozen sandbox clock must still throttle);
the daily reset uses the sandbox clock so tests can move past midnight.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

TIERS = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
}
TEN_SECONDS_MS = 10_000


@dataclass
class LimitConfig:
    enabled: bool = True
    tier: str = "professional"
    ten_secondly: int | None = None  # None: from tier
    daily: int | None = None  # None: from tier
    search_per_second: int = 5
    interval_ms: int = TEN_SECONDS_MS

    def per_interval(self) -> int:
        return self.ten_secondly if self.ten_secondly is not None else TIERS[self.tier][0]

    def per_day(self) -> int:
        return self.daily if self.daily is not None else TIERS[self.tier][1]


class Limited(Exception):
    """A call over budget: carries the policy name and the headers to send."""

    def __init__(self, policy: str, headers: dict[str, str]):
        super().__init__(policy)
        self.policy, self.headers = policy, headers


class RateLimiter:
    def __init__(self, config: LimitConfig, now_ms, tz: str = "Europe/Oslo"):
        self.config = config
        self._now_ms = now_ms  # sandbox clock
        self._tz = ZoneInfo(tz)
        self._lock = threading.Lock()
        self._windows: dict[str, deque] = {}
        self._search: deque = deque()
        self._day_key: str | None = None
        self._daily_used = 0

    def configure(self, **changes) -> LimitConfig:
        with self._lock:
            for k, v in changes.items():
                if v is None and k not in ("ten_secondly", "daily"):
                    continue
                if not hasattr(self.config, k):
                    raise ValueError(f"unknown limit option {k!r}")
                if k == "tier" and v not in TIERS:
                    raise ValueError(f"unknown tier {v!r}; one of {sorted(TIERS)}")
                setattr(self.config, k, v)
        return self.config

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._search.clear()
            self._daily_used = 0

    def _roll_day(self) -> None:
        key = datetime.fromtimestamp(self._now_ms() / 1000, tz=self._tz).date().isoformat()
        if key != self._day_key:
            self._day_key, self._daily_used = key, 0

    def next_midnight_ms(self) -> int:
        local = datetime.fromtimestamp(self._now_ms() / 1000, tz=self._tz)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=self._tz)
        return int(midnight.timestamp() * 1000)

    def daily_used(self) -> int:
        with self._lock:
            self._roll_day()
            return self._daily_used

    def set_daily_used(self, used: int) -> None:
        with self._lock:
            self._roll_day()
            self._daily_used = int(used)

    def check(self, token: str) -> dict[str, str]:
        """Count a non-search call; return the rate-limit headers or raise Limited."""
        cfg = self.config
        with self._lock:
            self._roll_day()
            per, day = cfg.per_interval(), cfg.per_day()
            now = time.monotonic()
            win = self._windows.setdefault(token, deque())
            horizon = now - cfg.interval_ms / 1000
            while win and win[0] <= horizon:
                win.popleft()
            if not cfg.enabled:
                return {}
            headers = {
                "X-HubSpot-RateLimit-Max": str(per),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(cfg.interval_ms),
                "X-HubSpot-RateLimit-Daily": str(day),
            }
            if self._daily_used >= day:
                headers["X-HubSpot-RateLimit-Remaining"] = str(max(0, per - len(win)))
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = "0"
                raise Limited("DAILY", headers)
            if len(win) >= per:
                headers["X-HubSpot-RateLimit-Remaining"] = "0"
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(day - self._daily_used)
                raise Limited("TEN_SECONDLY_ROLLING", headers)
            win.append(now)
            self._daily_used += 1
            headers["X-HubSpot-RateLimit-Remaining"] = str(per - len(win))
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(day - self._daily_used)
            return headers

    def check_search(self) -> None:
        """Count a search call (own per-second bucket, still part of the daily budget)."""
        cfg = self.config
        with self._lock:
            self._roll_day()
            if not cfg.enabled:
                return
            if self._daily_used >= cfg.per_day():
                raise Limited("DAILY", {})
            now = time.monotonic()
            while self._search and self._search[0] <= now - 1.0:
                self._search.popleft()
            if len(self._search) >= cfg.search_per_second:
                raise Limited("SECONDLY", {})
            self._search.append(now)
            self._daily_used += 1

    def snapshot(self) -> dict:
        with self._lock:
            self._roll_day()
            return {"enabled": self.config.enabled, "tier": self.config.tier,
                    "ten_secondly": self.config.per_interval(), "daily": self.config.per_day(),
                    "search_per_second": self.config.search_per_second,
                    "interval_ms": self.config.interval_ms, "daily_used": self._daily_used,
                    "day": self._day_key}
