"""Client-side rate limiting, so the pipeline spends HubSpot's budget without setting off 429s.

Two independent budgets, as HubSpot has them: the general one (per app/key, a rolling window,
announced in ``X-HubSpot-RateLimit-*`` headers) and search (per account, 5 per second, no headers).
Both are sliding-window limiters over our own calls; the general one also shrinks to what the
headers say is left, which covers other integrations (or other tasks) spending the same budget.
"""

from __future__ import annotations

import fcntl
import json
import os
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


def edge_margin(interval: float) -> float:
    """How long after its window a call is still counted: 2% of the interval, at least 100 ms.

    A call leaves our window when we say so, but HubSpot counts it when it arrives; on a loaded
    machine the gap between taking a slot and the request reaching HubSpot has been seen above
    50 ms, enough to put four calls into a one-second window of three.
    """
    return max(0.1, interval * 0.02)


class SlidingWindowLimiter:
    """At most ``capacity`` acquisitions in any window of ``interval`` seconds.

    A call counts as ours from the moment we send it, but HubSpot stamps it on arrival, so a call
    is only forgotten ``margin`` after its window (:func:`edge_margin`): without
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
        self.margin = edge_margin(interval)
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
            self.margin = edge_margin(interval)


class SharedWindowLimiter:
    """The same sliding window, shared by every process on this host through a locked state file.

    Airflow runs the extract tasks as separate processes; each would otherwise keep its own count
    and together they could exceed HubSpot's limits. The file holds only timestamps (never the
    token) and is keyed by the caller. Uses the wall clock, which all processes share.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        capacity: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity < 1 or interval <= 0:
            raise ValueError("capacity must be >= 1 and interval > 0")
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        self.capacity = capacity
        self.interval = interval
        self.margin = edge_margin(interval)
        self._clock = clock
        self._sleep = sleep
        self._thread_lock = threading.Lock()

    def _update(self, change: Callable[[dict], float | None]) -> float | None:
        """Run ``change`` on the state under an exclusive lock; it returns a delay or None."""
        with self._thread_lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = os.read(fd, 1 << 20)
                try:
                    state = json.loads(raw) if raw else {}
                except ValueError:  # a writer died mid-write: start afresh rather than block forever
                    state = {}
                state.setdefault("calls", [])
                state.setdefault("paused_until", 0.0)
                result = change(state)
                payload = json.dumps(state).encode()
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, payload)
                return result
            finally:
                os.close(fd)  # closing releases the lock

    def acquire(self) -> float:
        waited = 0.0
        while True:
            def take(state: dict) -> float | None:
                now = self._clock()
                horizon = now - self.interval - self.margin
                state["calls"] = [t for t in state["calls"] if t > horizon]
                delay = state["paused_until"] - now
                if delay <= 0 and len(state["calls"]) < self.capacity:
                    state["calls"].append(now)
                    return None
                return delay if delay > 0 else min(state["calls"]) + self.interval + self.margin - now

            delay = self._update(take)
            if delay is None:
                return waited
            delay = max(delay, 0.001)
            self._sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> None:
        def hold(state: dict) -> None:
            state["paused_until"] = max(state["paused_until"], self._clock() + seconds)

        self._update(hold)

    def resize(self, capacity: int, interval: float) -> None:
        self.capacity = max(1, capacity)
        self.interval = interval
        self.margin = edge_margin(interval)


class GeneralBudget:
    """The ten-secondly budget, adapting to the headers HubSpot sends.

    ``share`` is the fraction of the announced maximum this client may use. ``pool_share`` (default:
    ``share``) is what all our clients together may use; the rest is a reserve for other
    integrations on the same app. When the headers say less than that reserve remains, others are
    spending it too, and the limiter pauses for half a window.
    """

    def __init__(
        self,
        per_interval: int,
        interval: float = 10.0,
        share: float = 0.9,
        pool_share: float | None = None,
        shared_path: str | os.PathLike | None = None,
        **kwargs,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.pool_share = max(share, pool_share or share)
        if shared_path is not None:
            self.limiter: SlidingWindowLimiter | SharedWindowLimiter = SharedWindowLimiter(
                shared_path, self._capacity(per_interval), interval, **kwargs
            )
        else:
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
            # Below the reserve means someone else spends our share too (our own use stops at it).
            if headers.remaining is not None and headers.remaining < reserve:
                self.limiter.pause(interval / 2)

    @property
    def interval(self) -> float:
        return self.limiter.interval
