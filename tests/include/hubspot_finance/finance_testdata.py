"""Test data builders and database readers for the hubspot_finance tests (imported by name, unlike conftest)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any


from hubspot_finance.load import LoadConfig
from hubspot_finance.mapping import load_mapping
from hubspot_finance.objects import OBJECTS
from hubspot_finance.rawzone import RawZone

ACCOUNT = {"portalId": 1, "companyCurrency": "NOK", "additionalCurrencies": ["EUR", "USD"], "timeZone": "Europe/Oslo"}
PIPELINES = [
    {
        "id": "default",
        "label": "Sales",
        "stages": [
            {"id": "appointmentscheduled", "label": "Appointment", "archived": False, "metadata": {"isClosed": "false", "probability": "0.2"}},
            {"id": "closedwon", "label": "Closed won", "archived": False, "metadata": {"isClosed": "true", "probability": "1.0"}},
            {"id": "closedlost", "label": "Closed lost", "archived": False, "metadata": {"isClosed": "true", "probability": "0.0"}},
            {"id": "oldstage", "label": "Old stage", "archived": True, "metadata": {"isClosed": "false", "probability": "0.5"}},
        ],
    },
    {"id": "777", "label": "Renewals", "stages": [{"id": "888", "label": "Renewed", "metadata": {"isClosed": "true", "probability": "1.0"}}]},
]
PROPERTIES = {
    "contacts": [{"name": "email", "type": "string"}, {"name": "lastmodifieddate", "type": "datetime"}],
    "companies": [{"name": "name", "type": "string"}],
    "deals": [{"name": "closedate", "type": "datetime"}, {"name": "amount", "type": "number"}],
}


def iso(day: int, hour: int = 0, ms: int = 0) -> str:
    return datetime(2024, 1, day, hour, 0, 0, ms * 1000, tzinfo=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rec(rid: str | None, updated: str, created: str | None = None, archived: bool = False, archived_at: str | None = None, **props: Any) -> dict:
    r = {"id": rid, "properties": props, "createdAt": created or iso(1), "updatedAt": updated, "archived": archived}
    if archived_at:
        r["archivedAt"] = archived_at
    return r


def assoc(from_id: str, *to: tuple[str, list[int], list[str | None]]) -> dict:
    return {"from": {"id": from_id}, "to": [{"toObjectId": int(t), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": tid, "label": lab} for tid, lab in zip(tids, labels)]} for t, tids, labels in to]}


def write_run(
    zone: RawZone,
    run_id: str,
    *,
    contacts: list | None = None,
    companies: list | None = None,
    deals: list | None = None,
    associations: dict | None = None,
    mode: str = "incremental",
    window_end: str | None = None,
    mapping=None,
    extra_props: dict | None = None,
    advances_to: Any = ...,
) -> None:
    """Write a committed raw-zone run with the given records (missing object types → empty datasets)."""
    mapping = mapping or load_mapping()
    for name, recs in (("contacts", contacts), ("companies", companies), ("deals", deals)):
        props = OBJECTS[name].properties(mapping) + list((extra_props or {}).get(name, []))
        w = zone.record_writer(name, run_id, props)
        w.write(recs or [])
        extra = {"mode": mode, "window_start": "2024-01-01T00:00:00Z", "window_end": window_end or "2024-02-01T00:00:00Z",
                 "api_calls": 3}
        if advances_to is not ...:
            extra["advances_to"] = advances_to
        w.commit(extra)
    for (f, t) in (("deals", "contacts"), ("deals", "companies"), ("contacts", "companies")):
        results, covered = (associations or {}).get((f, t), ([], []))
        aw = zone.association_writer(f, t, run_id)
        aw.write(results)
        aw.add_covered(covered)
        aw.commit({"mode": mode})
    for ot, props in PROPERTIES.items():
        zone.write_reference(run_id, f"properties_{ot}", props)
    zone.write_reference(run_id, "pipelines_deals", PIPELINES)
    zone.write_reference(run_id, "account", ACCOUNT)


class Db:
    """One test database (SQLite file or a PostgreSQL schema) with normalized reads."""

    def __init__(self, kind: str, target: str, schema: str = "finance"):
        self.kind, self.target, self.schema = kind, target, schema
        self.config = LoadConfig(schema=schema)

    def connect(self) -> Any:
        if self.kind == "sqlite":
            return sqlite3.connect(self.target, timeout=30)
        import psycopg

        return psycopg.connect(self.target)

    def t(self, table: str) -> str:
        return f'"{self.schema}"."{table}"' if self.kind == "postgres" else f'"{table}"'

    def load(self, zone: RawZone, run_id: str, raw_run_id: str | None = None, **kw: Any):
        from hubspot_finance.transform_step import transform_and_load

        conn = self.connect()
        try:
            return transform_and_load(conn, zone, run_id, raw_run_id=raw_run_id, config=kw.pop("config", self.config), **kw)
        finally:
            conn.close()

    def rows(self, table: str, cols: str = "*", where: str = "", order: str = "1") -> list[dict[str, Any]]:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT {cols} FROM {self.t(table)} {('WHERE ' + where) if where else ''} ORDER BY {order}")
            names = [c[0] for c in cur.description]
            return [{n: _norm(n, v) for n, v in zip(names, r)} for r in cur.fetchall()]
        finally:
            conn.close()

    def scalar(self, sql: str) -> Any:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql.replace("{", "").replace("}", "") if False else sql)
            return cur.fetchone()[0]
        finally:
            conn.close()


_JSON_COLS = {"properties", "labels", "validation_warnings", "reasons", "raw_record"}
_BOOL_COLS = {"is_deleted", "is_closed", "is_won", "is_primary"}


def _norm(name: str, v: Any) -> Any:
    """Make PostgreSQL and SQLite values comparable: ISO-Z text times, decimal text, dates as text."""
    if v is None:
        return None
    if name in _JSON_COLS and isinstance(v, str):
        return json.loads(v)
    if name in _BOOL_COLS:
        return bool(v)
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v
