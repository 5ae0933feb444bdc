"""Fault injection rules: make chosen calls fail the way real networks and HubSpot do.

A rule matches on method and path regexes and then, N times or on every Nth match, responds with
a chosen status/body (JSON, plain text or truncated JSON, optional Retry-After), delays first,
resets the connection, sends a short body, makes batch reads drop some ids (HTTP 207), or makes an
associations batch read answer some from-ids with a transient per-id error (HTTP 207).
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

ACTIONS = ("respond", "reset", "short_body", "delay", "drop_ids", "assoc_errors")
_ids = itertools.count(1)


@dataclass
class FaultRule:
    path: str = ".*"
    method: str | None = None
    action: str | None = None  # default: respond if status given, else delay
    status: int | None = None
    body: Any = None
    body_kind: str = "json"  # json | text | truncated
    headers: dict = field(default_factory=dict)
    retry_after: str | None = None
    delay_s: float = 0.0
    times: int | None = None
    every: int | None = None
    drop_ids: list | None = None  # for drop_ids / assoc_errors: these ids…
    drop_every: int | None = None  # …or every Nth input id (default 2)
    id: str = ""
    seen: int = 0
    applied: int = 0

    def __post_init__(self):
        self.id = self.id or f"f{next(_ids)}"
        if self.action is None:
            self.action = "respond" if self.status is not None else ("drop_ids" if (self.drop_ids or self.drop_every) else "delay")
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; one of {ACTIONS}")
        if self.body_kind not in ("json", "text", "truncated"):
            raise ValueError("body_kind must be json, text or truncated")
        if self.action == "respond" and self.status is None:
            raise ValueError("a respond rule needs a status")
        self._path = re.compile(self.path)
        self._method = re.compile(self.method, re.I) if self.method else None
        if self.retry_after is not None:
            self.headers = {**self.headers, "Retry-After": str(self.retry_after)}

    def matches(self, method: str, path: str) -> bool:
        if self._method and not self._method.fullmatch(method):
            return False
        return bool(self._path.search(path))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def render_body(self) -> tuple[bytes, str]:
        """Body bytes and content type for a respond rule."""
        import json

        body = self.body
        if body is None and self.body_kind != "text":
            body = {"status": "error", "message": f"Injected fault {self.id}", "category": "INTERNAL_ERROR"}
        if self.body_kind == "text":
            return (str(body if body is not None else "Service Unavailable")).encode(), "text/plain; charset=utf-8"
        raw = json.dumps(body) if not isinstance(body, str) else body
        if self.body_kind == "truncated":
            raw = raw[: max(1, len(raw) // 2)]
        return raw.encode(), "application/json;charset=utf-8"


class FaultBook:
    def __init__(self):
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, **spec) -> FaultRule:
        rule = FaultRule(**{k: v for k, v in spec.items() if k not in ("seen", "applied")})
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def match(self, method: str, path: str) -> FaultRule | None:
        """The first rule that applies to this call (counting it), or None."""
        with self._lock:
            for r in self._rules:
                if not r.matches(method, path):
                    continue
                if r.times is not None and r.applied >= r.times:
                    continue
                r.seen += 1
                if r.every and r.seen % r.every != 0:
                    continue
                r.applied += 1
                return r
        return None
