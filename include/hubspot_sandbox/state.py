"""Everything one running sandbox holds: the portal, tokens, limits, fault rules, triggers and call stats.

Kept separate from the HTTP layer so the HubSpot API (``api``) and the control API (``admin``)
share one object, and so a reset can swap the portal without restarting the server.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, fields

from .auth import TokenStore
from .clock import Clock
from .data import Portal, PortalConfig
from .faults import FaultBook
from .limits import LimitConfig, RateLimiter
from .schema import ACCOUNT
from .triggers import TriggerBook


class Stats:
    """Call counters by endpoint kind, status, 429 policy and injected fault."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.calls: Counter = Counter()
        self.statuses: Counter = Counter()
        self.rate_limited: Counter = Counter()
        self.faults: Counter = Counter()
        self.total = 0

    def record(self, kind: str, status: int, policy: str | None = None) -> None:
        with self._lock:
            self.total += 1
            self.calls[kind] += 1
            self.statuses[str(status)] += 1
            if policy:
                self.rate_limited[policy] += 1

    def fault(self, rule_id: str) -> None:
        with self._lock:
            self.faults[rule_id] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"total": self.total, "calls": dict(self.calls), "statuses": dict(self.statuses),
                    "rate_limited": dict(self.rate_limited), "faults": dict(self.faults)}


PORTAL_KEYS = {f.name for f in fields(PortalConfig)}
LIMIT_KEYS = {f.name for f in fields(LimitConfig)}


class SandboxState:
    def __init__(self, token: str | None = None, scopes=None, rate_limits: bool | dict = True, **portal_options):
        unknown = set(portal_options) - PORTAL_KEYS
        if unknown:
            raise TypeError(f"unknown sandbox options: {sorted(unknown)}")
        self.clock = Clock(portal_options.get("frozen_clock_ms"))
        self.portal = Portal(PortalConfig(**portal_options), self.clock)
        self.tokens = TokenStore(token, scopes)
        lc = LimitConfig()
        if isinstance(rate_limits, dict):
            for k, v in rate_limits.items():
                if k not in LIMIT_KEYS:
                    raise TypeError(f"unknown rate limit option {k!r}")
                setattr(lc, k, v)
        else:
            lc.enabled = bool(rate_limits)
        self.limiter = RateLimiter(lc, self.clock.now_ms, ACCOUNT["timeZone"])
        self.faults = FaultBook()
        self.triggers = TriggerBook()
        self.stats = Stats()

    def reset(self, **portal_options) -> dict:
        """Reseed the portal (options default to the current ones); tokens, limits and clock stay."""
        unknown = set(portal_options) - PORTAL_KEYS
        if unknown:
            raise TypeError(f"unknown sandbox options: {sorted(unknown)}")
        cfg = {**asdict(self.portal.config), **portal_options}
        portal = Portal(PortalConfig(**cfg), self.clock)
        with self.portal.lock:
            self.portal = portal
        return cfg
