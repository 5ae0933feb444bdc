"""The contract between the tasks of one run: what ``plan`` decided, typed, serialised one way for XCom.

``plan`` builds a :class:`RunPlan`; XCom carries :meth:`RunPlan.to_xcom` (plain JSON); every task
turns it back with :meth:`RunPlan.from_xcom`. Nothing downstream looks keys up in a dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from hubspot_finance.windows import Window


@dataclass(frozen=True)
class Estimate:
    """One object's expected work, from one search call: what its budget share is based on."""

    records: int = 0
    general_calls: float = 0.0
    search_calls: float = 0.0


@dataclass(frozen=True)
class Budget:
    """The fractions of HubSpot's two budgets (general, search) one extract task may use."""

    general: float = 1.0
    search: float = 1.0


@dataclass(frozen=True)
class RunPlan:
    objects: tuple[str, ...]
    windows: dict[str, Window]
    planned_at: datetime
    dry_run: bool = False
    sweep: bool = False  # run the id sweep (permanent deletes) in this run
    reconcile_associations: bool = False  # re-read the associations of every live record
    estimates: dict[str, Estimate] = field(default_factory=dict)
    budgets: dict[str, Budget] = field(default_factory=dict)

    def window(self, object_type: str) -> Window:
        return self.windows[object_type]

    def budget(self, object_type: str) -> Budget:
        return self.budgets.get(object_type, Budget())

    def estimate(self, object_type: str) -> Estimate | None:
        return self.estimates.get(object_type)

    def with_budgets(self, estimates: dict[str, Estimate], budgets: dict[str, Budget]) -> RunPlan:
        return replace(self, estimates=dict(estimates), budgets=dict(budgets))

    def to_xcom(self) -> dict[str, Any]:
        return {
            "objects": list(self.objects),
            "windows": {name: window.as_dict() for name, window in self.windows.items()},
            "planned_at": self.planned_at.isoformat(),
            "dry_run": self.dry_run,
            "sweep": self.sweep,
            "reconcile_associations": self.reconcile_associations,
            "estimates": {name: vars(e) | {} for name, e in self.estimates.items()},
            "budget": {name: {"general": b.general, "search": b.search} for name, b in self.budgets.items()},
        }

    @classmethod
    def from_xcom(cls, data: RunPlan | dict[str, Any]) -> RunPlan:
        if isinstance(data, RunPlan):
            return data
        return cls(
            objects=tuple(data["objects"]),
            windows={name: Window.from_dict(window) for name, window in data["windows"].items()},
            planned_at=datetime.fromisoformat(data["planned_at"]),
            dry_run=bool(data.get("dry_run", False)),
            sweep=bool(data.get("sweep", False)),
            reconcile_associations=bool(data.get("reconcile_associations", False)),
            estimates={name: Estimate(int(e.get("records", 0)), float(e.get("general_calls", 0)), float(e.get("search_calls", 0)))
                       for name, e in (data.get("estimates") or {}).items()},
            budgets={name: Budget(float(b.get("general", 1.0)), float(b.get("search", 1.0)))
                     for name, b in (data.get("budget") or {}).items()},
        )
