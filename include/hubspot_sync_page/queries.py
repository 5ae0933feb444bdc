"""Read-only queries over the finance tables (SQLite or PostgreSQL), returning small dataclasses.

Only SELECTs. Table names go through :class:`hubspot_finance.schema.Dialect`, so the PostgreSQL schema
(``HUBSPOT_SYNC_SCHEMA``) is honoured exactly as the loader honours it. Times come back as aware
UTC datetimes whatever the dialect stored (``TIMESTAMPTZ`` or ISO text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from hubspot_finance.rawzone import parse_hubspot_time
from hubspot_finance.schema import Dialect, dialect_of, existing_columns

TABLES = ("sync_runs", "sync_state", "rejected_records", "contract_changes", "record_retries")
COUNT_FIELDS = ("inserted", "updated", "deleted", "rejected")
# sync_runs columns of schema v4: absent until the first load of a newer package migrates the database
BUDGET_COLUMN = "daily_budget_left"
PORTAL_COLUMN = "portal_id"
RUNS_SHOWN = 30
REJECTS_SCANNED = 5_000  # newest rejected rows of the shown runs that the grouping reads
CHANGES_SHOWN = 50


class MissingTables(LookupError):
    """The pipeline has not created the finance tables yet (no load has run)."""


def utc(value: Any) -> datetime | None:
    moment = parse_hubspot_time(value)
    return None if moment is None else moment.astimezone(timezone.utc)


def _json(value: Any) -> Any:
    """JSONB arrives parsed (psycopg), JSON text from SQLite."""
    if value is None or not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Watermark:
    object_type: str
    watermark: datetime | None
    run_id: str | None


@dataclass(frozen=True)
class LastRun:
    """An object's newest row in ``sync_runs`` with a given outcome."""

    object_type: str
    run_id: str
    finished_at: datetime | None
    status: str
    error: str | None


@dataclass(frozen=True)
class ObjectCounts:
    """One ``sync_runs`` row: what a run did to one object."""

    object_type: str
    mode: str | None
    status: str
    inserted: int
    updated: int
    deleted: int
    rejected: int
    merged: int
    extracted: int
    unchanged: int
    api_calls: int | None
    daily_budget_left: int | None
    error: str | None


@dataclass(frozen=True)
class RunRecord:
    """One run (all its objects), newest first in :func:`recent_runs`."""

    run_id: str
    started_at: datetime | None
    finished_at: datetime | None
    status: str  # failed if any object failed
    mode: str | None
    objects: tuple[ObjectCounts, ...]

    @property
    def api_calls(self) -> int | None:
        calls = [o.api_calls for o in self.objects if o.api_calls is not None]
        return sum(calls) if calls else None

    @property
    def daily_budget_left(self) -> int | None:
        left = [o.daily_budget_left for o in self.objects if o.daily_budget_left is not None]
        return min(left) if left else None

    def total(self, field: str) -> int:
        return sum(getattr(o, field) for o in self.objects)


@dataclass(frozen=True)
class RejectRow:
    """The newest rejection of one record within the shown runs."""

    reject_id: int
    object_type: str
    hubspot_id: str | None
    run_id: str
    reasons: tuple[dict[str, Any], ...]
    rejected_at: datetime | None
    attempt: int
    still_open: bool  # still on the retry list: not loaded since


@dataclass(frozen=True)
class ChangeRow:
    change_id: int
    deal_id: str
    deal_name: str | None
    currency: str | None  # the deal's currency now (an amount change is in it)
    field: str
    old_value: str | None
    new_value: str | None
    changed_at: datetime | None
    recorded_at: datetime | None
    run_id: str


class FinanceReader:
    """The page's queries over one open DB-API connection (psycopg 3 or sqlite3)."""

    def __init__(self, conn: Any, schema: str = "finance"):
        self.conn = conn
        self.d = Dialect(dialect_of(conn), schema=schema)
        self.present = self._present_tables()
        missing = {"sync_runs", "sync_state"} - self.present
        if missing:
            raise MissingTables(f"finance tables not created yet: {', '.join(sorted(missing))}")

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall()

    def _marks(self, n: int) -> str:
        return ", ".join([self.d.param] * n)

    def _present_tables(self) -> set[str]:
        names = tuple(self.d.raw_table_name(t) for t in TABLES)
        if self.d.name == "sqlite":
            rows = self._rows(f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({self._marks(len(names))})", names)
        else:
            rows = self._rows("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                              f"AND table_name IN ({self._marks(len(names))})", (self.d.schema, *names))
        return {t for t in TABLES if self.d.raw_table_name(t) in {r[0] for r in rows}}

    @cached_property
    def run_columns(self) -> set[str]:
        return existing_columns(self.conn, self.d, "sync_runs")

    @property
    def budget_recorded(self) -> bool:
        """Whether ``sync_runs`` records HubSpot's daily budget left (schema v4)."""
        return BUDGET_COLUMN in self.run_columns

    def portal_id(self) -> int | None:
        """The HubSpot portal id the newest run that recorded one saw (None before schema v4 or any such run)."""
        if PORTAL_COLUMN not in self.run_columns:
            return None
        rows = self._rows(
            f"SELECT {PORTAL_COLUMN} FROM {self.d.t('sync_runs')} WHERE {PORTAL_COLUMN} IS NOT NULL "
            "ORDER BY (started_at IS NULL), started_at DESC, run_id DESC LIMIT 1")
        return int(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ freshness
    def watermarks(self) -> dict[str, Watermark]:
        rows = self._rows(f"SELECT object_type, watermark, run_id FROM {self.d.t('sync_state')}")
        return {r[0]: Watermark(r[0], utc(r[1]), r[2]) for r in rows}

    def last_runs(self, *, successful: bool) -> dict[str, LastRun]:
        """Per object, its newest successful run (``successful``) or its newest run of any outcome."""
        where = "WHERE status = 'success'" if successful else ""
        rows = self._rows(
            f"SELECT object_type, run_id, finished_at, status, error FROM {self.d.t('sync_runs')} {where} "
            "ORDER BY (finished_at IS NULL), finished_at DESC, run_id DESC")
        newest: dict[str, LastRun] = {}
        for r in rows:
            newest.setdefault(r[0], LastRun(r[0], r[1], utc(r[2]), r[3], r[4]))
        return newest

    # ------------------------------------------------------------------ runs
    def recent_runs(self, limit: int = RUNS_SHOWN) -> list[RunRecord]:
        """The newest ``limit`` runs (by start), each with its per-object counts."""
        T = self.d.t("sync_runs")
        ids = [r[0] for r in self._rows(
            f"SELECT run_id, MIN(started_at) AS started FROM {T} GROUP BY run_id ORDER BY started DESC, run_id DESC "
            f"LIMIT {int(limit)}")]
        if not ids:
            return []
        budget = BUDGET_COLUMN if self.budget_recorded else "NULL"
        rows = self._rows(
            f"SELECT run_id, object_type, mode, status, inserted, updated, deleted, rejected, merged, extracted, "
            f"unchanged, api_calls, {budget}, error, started_at, finished_at FROM {T} "
            f"WHERE run_id IN ({self._marks(len(ids))}) ORDER BY object_type", tuple(ids))
        by_run: dict[str, list[tuple]] = {}
        for r in rows:
            by_run.setdefault(r[0], []).append(r)
        return [self._run(run_id, by_run[run_id]) for run_id in ids]

    @staticmethod
    def _run(run_id: str, rows: list[tuple]) -> RunRecord:
        objects = tuple(ObjectCounts(r[1], r[2], r[3], *(int(v or 0) for v in r[4:11]),
                                     None if r[11] is None else int(r[11]), None if r[12] is None else int(r[12]), r[13])
                        for r in rows)
        starts = [t for t in (utc(r[14]) for r in rows) if t]
        ends = [t for t in (utc(r[15]) for r in rows) if t]
        status = "failed" if any(o.status == "failed" for o in objects) else objects[0].status
        return RunRecord(run_id, min(starts) if starts else None, max(ends) if ends else None, status,
                         next((o.mode for o in objects if o.mode), None), objects)

    # ------------------------------------------------------------------ rejects
    def rejects(self, run_ids: list[str], limit: int = REJECTS_SCANNED) -> list[RejectRow]:
        """The newest rejection of each record rejected in ``run_ids`` (records without an id each count)."""
        if not run_ids or "rejected_records" not in self.present:
            return []
        R = self.d.t("rejected_records")
        rows = self._rows(
            f"SELECT id, object_type, hubspot_id, run_id, reasons, rejected_at, attempt FROM {R} "
            f"WHERE run_id IN ({self._marks(len(run_ids))}) ORDER BY id DESC LIMIT {int(limit)}", tuple(run_ids))
        open_ids = self._retry_list()
        seen: set[tuple[str, str]] = set()
        out = []
        for r in rows:
            key = (r[1], r[2])
            if r[2]:
                if key in seen:
                    continue
                seen.add(key)
            reasons = _json(r[4])
            out.append(RejectRow(int(r[0]), r[1], r[2], r[3], tuple(x for x in reasons or () if isinstance(x, dict)),
                                 utc(r[5]), int(r[6] or 1), key in open_ids))
        return out

    def _retry_list(self) -> set[tuple[str, str]]:
        if "record_retries" not in self.present:
            return set()
        return {(r[0], r[1]) for r in self._rows(f"SELECT object_type, hubspot_id FROM {self.d.t('record_retries')}")}

    def raw_reject(self, reject_id: int) -> dict[str, Any] | None:
        """One stored rejection with its raw HubSpot record (None if there is no such row)."""
        if "rejected_records" not in self.present:
            return None
        rows = self._rows(
            f"SELECT id, object_type, hubspot_id, run_id, reasons, raw_record, rejected_at, attempt "
            f"FROM {self.d.t('rejected_records')} WHERE id = {self.d.param}", (int(reject_id),))
        if not rows:
            return None
        r = rows[0]
        return {"reject_id": int(r[0]), "object_type": r[1], "hubspot_id": r[2], "run_id": r[3],
                "reasons": _json(r[4]), "raw_record": _json(r[5]), "rejected_at": utc(r[6]), "attempt": int(r[7] or 1)}

    # ------------------------------------------------------------------ contract changes
    def contract_changes(self, limit: int = CHANGES_SHOWN) -> list[ChangeRow]:
        """The newest recorded changes of deal amount, currency, stage, close date and deletion."""
        if "contract_changes" not in self.present:
            return []
        C, K = self.d.t("contract_changes"), self.d.t("contracts")
        rows = self._rows(
            f"SELECT c.id, c.hubspot_deal_id, k.deal_name, k.currency, c.field, c.old_value, c.new_value, c.changed_at, "
            f"c.recorded_at, c.sync_run_id FROM {C} c LEFT JOIN {K} k ON k.hubspot_deal_id = c.hubspot_deal_id "
            f"ORDER BY c.id DESC LIMIT {int(limit)}")
        return [ChangeRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], utc(r[7]), utc(r[8]), r[9]) for r in rows]
