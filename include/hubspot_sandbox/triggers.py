"""Mutation triggers: apply control actions after the Nth matching HubSpot API call, mid-scan.

A trigger counts successful (2xx) HubSpot API answers of one kind (``search``, ``batch_read``,
``list``, ``associations``, … or ``any``), optionally of one object type, from the moment it is
added. When the Nth one has been answered, and before it is sent, the server applies the
trigger's actions through the control API (``ControlApi.fire``) under the portal lock. A trigger
fires once; it keeps the results of its actions for inspection.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass, field

from .schema import TYPE_ALIASES

KINDS = ("any", "search", "batch_read", "list", "associations", "get", "properties", "pipelines", "account", "owners")
_ids = itertools.count(1)


@dataclass
class Trigger:
    kind: str
    n: int
    actions: list
    object_type: str | None = None
    id: str = ""
    seen: int = 0
    fired: bool = False
    fired_at_ms: int | None = None
    results: list = field(default_factory=list)

    def __post_init__(self):
        self.id = self.id or f"t{next(_ids)}"
        if self.kind not in KINDS:
            raise ValueError(f"unknown trigger kind {self.kind!r}; one of {KINDS}")
        if self.object_type is not None:
            if self.object_type not in TYPE_ALIASES:
                raise ValueError(f"unknown object type {self.object_type!r}")
            self.object_type = TYPE_ALIASES[self.object_type]
        self.n = int(self.n)
        if self.n < 1:
            raise ValueError("n must be at least 1")
        if not isinstance(self.actions, list) or not all(isinstance(a, dict) and a.get("path") for a in self.actions):
            raise ValueError('actions must be a list of {"method", "path", "body"}')

    def matches(self, kind: str, object_type: str | None) -> bool:
        return (self.kind in ("any", kind)) and (self.object_type is None or self.object_type == object_type)

    def to_dict(self) -> dict:
        return asdict(self)


class TriggerBook:
    def __init__(self):
        self._lock = threading.Lock()
        self._triggers: list[Trigger] = []

    def add(self, kind: str, n: int, actions: list, object_type: str | None = None) -> Trigger:
        t = Trigger(kind=kind, n=n, actions=actions, object_type=object_type)
        with self._lock:
            self._triggers.append(t)
        return t

    def clear(self) -> None:
        with self._lock:
            self._triggers.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [t.to_dict() for t in self._triggers]

    def count(self, kind: str, object_type: str | None, status: int) -> list[Trigger]:
        """Count one answered call; return the triggers it makes due (marked fired, to be applied now)."""
        if not 200 <= status < 300:
            return []
        due = []
        with self._lock:
            for t in self._triggers:
                if t.fired or not t.matches(kind, object_type):
                    continue
                t.seen += 1
                if t.seen >= t.n:
                    t.fired = True
                    due.append(t)
        return due
