"""The state one load shares between its steps: the connection, the dialect, the run, the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from hubspot_finance.load.plan import LoadPlan
from hubspot_finance.schema import Dialect, dialect_of
from hubspot_finance.summary import RunSummary

from . import postgres, sqlite


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class LoadContext:
    conn: Any
    plan: LoadPlan
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __post_init__(self) -> None:
        name = dialect_of(self.conn)
        self.d: Dialect = self.plan.config.dialect(name)
        self.ops: ModuleType = postgres if name == "postgres" else sqlite
        self.summary = RunSummary(self.plan.run_id, started_at=iso(self.now))

    @property
    def run_id(self) -> str:
        return self.plan.run_id

    def param(self, value: Any, logical: str = "text") -> Any:
        """A bind value in the dialect's representation (SQLite: text times, 0/1 booleans)."""
        return self.ops.to_param(value, logical)

    def execute(self, sql: str, params: tuple | list = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql, tuple(params))
        return cur

    def fetch_one(self, sql: str, params: tuple | list = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def stamp(self) -> tuple[Any, str]:
        """(``synced_at``, ``sync_run_id``) bind values for rows this load changes."""
        return self.param(self.now, "ts"), self.run_id
