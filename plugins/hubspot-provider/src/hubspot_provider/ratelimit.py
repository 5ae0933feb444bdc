"""Client-side rate limiting, so the pipeline spends HubSpot's budget without setting off 429s.

Two independent budgets, as HubSpot has them: the general one (per app/key, a rolling window,
announced in ``X-HubSpot-RateLimit-*`` headers) and search (per account, 5 per second, no headers).
Both are sliding-window limiters over our own calls; the general one also shrinks to what the
headers say is left, which covers other integrations (or other tasks) spending the same budget.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimitHeaders:
    """What HubSpot announced on the last response (None where a header was absent)."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateLimitHeaders | None:
        def number(name: str) -> int | None:
            value = headers.get(f"X-HubSpot-RateLimit-{name}")
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        parsed = cls(
            max=number("Max"),
            remaining=number("Remaining"),
            interval_ms=number("Interval-Milliseconds"),
            daily=number("Daily"),
            daily_remaining=number("Daily-Remaining"),
        )
        return None if parsed == cls() else parsed


class SlidingWindowLimiter:
    """At most ``capacity`` acquisitions in any window of ``interval`` seconds.

    A call counts as ours from the moment we send it, but HubSpot stamps it on arrival, so a call
    is only forgotten ``margin`` after its window (2% of the interval, at least 50 ms): without
    that, the call at the edge of the window can reach HubSpot before the old one has left it.
    ``acquire`` blocks (sleeping) until a slot is free and returns the seconds it waited, so the
    hook can report time spent waiting. Thread-safe; ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        capacity: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity < 1 or interval <= 0:
            raise ValueError("capacity must be >= 1 and interval > 0")
        self.capacity = capacity
        self.interval = interval
        self.margin = max(0.05, interval * 0.02)
        self._clock = clock
        self._sleep = sleep
        self._calls: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._calls and self._calls[0] <= now - self.interval - self.margin:
            self._calls.popleft()

    def acquire(self) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._expire(now)
                delay = self._paused_until - now
                if delay <= 0 and len(self._calls) < self.capacity:
                    self._calls.append(now)
                    return waited
                if delay <= 0:
                    delay = self._calls[0] + self.interval + self.margin - now
            delay = max(delay, 0.001)
            self._sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (after a 429, or when the budget is nearly spent)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def resize(self, capacity: int, interval: float) -> None:
        with self._lock:
            self.capacity = max(1, capacity)
            self.interval = interval
            self.margin = max(0.05, interval * 0.02)


class GeneralBudget:
    """The ten-secondly budget, adapting to the headers HubSpot sends.

    ``share`` is the fraction of the announced maximum this client may use. ``pool_share`` (default:
    ``share``) is what all our clients together may use; the rest is a reserve for other
    integrations on the same app. When the headers say no more than that reserve remains, the
    limiter pauses for half a window, whoever spent the budget.
    """

    def __init__(
        self, per_interval: int, interval: float = 10.0, share: float = 0.9, pool_share: float | None = None, **kwargs
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.pool_share = max(share, pool_share or share)
        self.limiter = SlidingWindowLimiter(self._capacity(per_interval), interval, **kwargs)
        self.last_headers: RateLimitHeaders | None = None

    def _capacity(self, maximum: int) -> int:
        return max(1, int(maximum * self.share))

    def acquire(self) -> float:
        return self.limiter.acquire()

    def observe(self, headers: RateLimitHeaders | None) -> None:
        if headers is None:
            return
        self.last_headers = headers
        interval = headers.interval_ms / 1000 if headers.interval_ms else self.limiter.interval
        if headers.max:
            capacity = self._capacity(headers.max)
            if capacity != self.limiter.capacity or interval != self.limiter.interval:
                self.limiter.resize(capacity, interval)
            reserve = headers.max - max(1, int(headers.max * self.pool_share))
            if headers.remaining is not None and headers.remaining <= reserve:
                self.limiter.pause(interval / 2)

    @property
    def interval(self) -> float:
        return self.limiter.interval
