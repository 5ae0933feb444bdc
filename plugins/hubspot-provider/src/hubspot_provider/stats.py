"""Counters of what the hook did, so runs can report calls, retries, 429s and limiter waits."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallStats:
    calls: Counter = field(default_factory=Counter)  # successful + failed HTTP requests, per operation
    retries: Counter = field(default_factory=Counter)  # per operation
    rate_limited: Counter = field(default_factory=Counter)  # 429s per policy name
    errors: Counter = field(default_factory=Counter)  # final failures per status (or "transport")
    limiter_wait_seconds: float = 0.0
    daily_remaining: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_call(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1

    def record_retry(self, operation: str) -> None:
        with self._lock:
            self.retries[operation] += 1

    def record_429(self, policy: str) -> None:
        with self._lock:
            self.rate_limited[policy] += 1

    def record_error(self, status: int | str) -> None:
        with self._lock:
            self.errors[str(status)] += 1

    def record_wait(self, seconds: float) -> None:
        if seconds:
            with self._lock:
                self.limiter_wait_seconds += seconds

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly snapshot (for manifests, XCom and logs)."""
        with self._lock:
            return {
                "total_calls": sum(self.calls.values()),
                "calls": dict(self.calls),
                "retries": dict(self.retries),
                "rate_limited": dict(self.rate_limited),
                "errors": dict(self.errors),
                "limiter_wait_seconds": round(self.limiter_wait_seconds, 3),
                "daily_remaining": self.daily_remaining,
            }

    def snapshot(self) -> dict[str, Any]:
        return self.as_dict()
