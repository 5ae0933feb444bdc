"""Bulk, idempotent, atomic load of one run's raw-zone datasets into the finance tables.

Entry point: :func:`load_run` ``(db, plan) -> RunSummary``. ``db`` is an Airflow ``DbApiHook``
(``PostgresHook``/``SqliteHook``, e.g. ``BaseHook.get_connection(conn_id).get_hook()``) or a raw DB-API
connection (psycopg 3 or sqlite3).

Semantics:
- Everything of one run (all objects, associations, contract changes, rejects, ``sync_runs``,
  ``sync_state`` watermarks) commits in ONE transaction; a crash anywhere leaves the tables as before.
  Loads are serialized with ``pg_advisory_xact_lock`` (PostgreSQL) or ``BEGIN IMMEDIATE`` (SQLite).
- Rows are streamed chunk by chunk through ONE bulk writer per table (one ``COPY … FROM STDIN`` fed
  with pyarrow CSV on PostgreSQL, ``executemany`` on SQLite). Duplicate ids are found by a first pass
  over the ``id`` column and resolved in memory (newest ``updated_at``; ties → last read; beyond
  ``HOLD_LIMIT`` duplicated ids: in SQL). Into an empty table the rows are written straight into it;
  otherwise into a TEMP staging table, then set-based statements per table (PostgreSQL: one
  ``UPDATE … FROM`` for newer rows that differ, one ``INSERT`` of the new ids; SQLite: one
  ``INSERT … ON CONFLICT … DO UPDATE … WHERE excluded.updated_at >= t.updated_at``). Rows identical to
  the stored ones are *unchanged* (their ``synced_at`` stays).
  Older incoming rows are *stale* and ignored: replaying old Parquet never overwrites newer data.
- Archived → ``is_deleted``/``deleted_at``; merged-away ids (from survivors' ``hs_merged_object_ids``) →
  deleted, ``merged_into_*`` = survivor, ``updated_at`` raised to the survivor's; a merged row is only
  overwritten by strictly newer data. Rows are never physically deleted; restores revive them.
- Associations: for every from-id covered in the run, the stored set is replaced (removed pairs are
  deleted from the association table). ``contracts.primary_company_id`` follows the primary deal→company.
- ``contract_changes`` gets one row per changed ``amount``/``currency``/``stage_id``/``close_date`` of an
  existing deal (never on first insert).
- Test hook: if env ``HUBSPOT_FINANCE_TEST_BLOCK_AFTER_STAGING`` names a file, the load creates it after
  staging the first object and then blocks (tests kill the process there to prove atomicity).
"""

from __future__ import annotations

import json
import logging
import os
import multiprocessing as mp
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from hubspot_finance.mapping import Mapping, load_mapping
from hubspot_finance.objects import ASSOCIATIONS, LOAD_ORDER, OBJECTS, AssociationDecl, get_association, get_object
from hubspot_finance.rawzone import IncompleteDatasetError, Manifest, RawZone, parse_hubspot_time
from hubspot_finance.schema import CHANGE_TRACKED, EXTRA_LOGICAL, LOADER_COLUMNS, Dialect, begin, dialect_of, ensure_extra_columns, migrate, quote
from hubspot_finance.summary import AssociationSummary, ObjectSummary, RunSummary
from hubspot_finance.transform import Reference, table_columns, transform_chunk

from . import postgres as _pg
from . import sqlite as _sqlite

log = logging.getLogger(__name__)

BLOCK_ENV = "HUBSPOT_FINANCE_TEST_BLOCK_AFTER_STAGING"
HOLD_LIMIT = 50_000  # duplicated ids resolved in memory; more → staged and deduplicated in SQL
MERGE_COLUMNS = [("absorbed", "text"), ("survivor", "text"), ("survivor_updated_at", "ts")]
MODE_NAMES = {"incremental": "scheduled", "scheduled": "scheduled", "range": "manual_range",
              "manual_range": "manual_range", "full": "full"}


@dataclass
class LoadConfig:
    schema: str = "finance"  # PostgreSQL schema (ignored by SQLite)
    table_prefix: str = ""  # prefix for every table name (SQLite's stand-in for a schema)
    mapping: Mapping | None = None  # default: load_mapping()
    time_zone: str | None = None  # default: account.json timeZone, else Europe/Oslo
    phone_region: str = "NO"
    migrate: bool = True  # apply pending migrations before loading
    dry_run: bool = False  # do all the work in the transaction, report, then roll it back

    def dialect(self, name: str) -> Dialect:
        return Dialect(name, schema=self.schema, prefix=self.table_prefix)


@dataclass
class LoadPlan:
    """What to load: the run id, the committed manifests, the reference dataset and the config."""

    run_id: str
    zone: RawZone
    records: dict[str, Manifest]  # object type -> committed records manifest
    associations: list[Manifest] = field(default_factory=list)
    reference_run_id: str | None = None
    mode: str | None = None  # default: from the manifests' "mode"
    config: LoadConfig = field(default_factory=LoadConfig)

    @classmethod
    def from_zone(
        cls,
        zone: RawZone,
        run_id: str,
        *,
        object_types: list[str] | None = None,
        associations: list[tuple[str, str]] | None = None,
        raw_run_id: str | None = None,
        mode: str | None = None,
        config: LoadConfig | None = None,
    ) -> LoadPlan:
        """Read the committed manifests of ``raw_run_id`` (default ``run_id``); a missing one raises."""
        raw = raw_run_id or run_id
        types = object_types if object_types is not None else list(OBJECTS)
        records = {ot: zone.records_manifest(ot, raw) for ot in types}
        pairs = associations if associations is not None else [(a.from_type, a.to_type) for a in ASSOCIATIONS if a.from_type in types]
        assoc = [zone.associations_manifest(f, t, raw) for f, t in pairs]
        return cls(run_id, zone, records, assoc, raw, mode, config or LoadConfig())


def _connection(db: Any) -> tuple[Any, bool]:
    if hasattr(db, "get_conn") and not hasattr(db, "cursor"):
        return db.get_conn(), True
    return db, False


def load_run(db: Any, plan: LoadPlan) -> RunSummary:
    """Load ``plan`` atomically; returns the run summary (also written to ``sync_runs``)."""
    conn, owned = _connection(db)
    loader = None
    try:
        loader = _Loader(conn, plan)
        return loader.run()
    finally:
        if loader is not None and loader._executor is not None:
            loader._executor.shutdown(wait=True, cancel_futures=True)
        if owned:
            conn.close()


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


PARALLEL_MIN_ROWS = 100_000  # PostgreSQL datasets at least this big may be transformed in worker processes
# Transform worker processes (0 = in this process). Off by default: on 2 cores the PostgreSQL backend
# (COPY parsing, index builds) already uses the second core and a worker made loads ~15 % slower.
PARALLEL_WORKERS = int(os.environ.get("HUBSPOT_FINANCE_LOAD_WORKERS", "0") or 0)


@dataclass
class _ChunkJob:
    """What a chunk's transform needs (picklable: runs in a worker process for big datasets)."""

    object_type: str
    mapping: Mapping
    reference: Reference
    run_id: str
    phone_region: str
    key: str
    dups: set[str]
    sql_dedup: bool
    direct: bool
    synced_at: pd.Timestamp
    csv_columns: list[tuple[str, str]] | None  # PostgreSQL: the rows come back as COPY CSV bytes


@dataclass
class _ChunkOut:
    rows: pd.DataFrame | None
    csv: bytes | None
    n_written: int
    held: pd.DataFrame | None
    deleted: int
    merges: list[tuple[str, str, datetime]]
    rejects: list[dict[str, Any]]
    warnings: dict[str, int]
    max_updated: datetime | None


def _process_chunk(job: _ChunkJob, table: pa.Table, offset: int) -> _ChunkOut:
    """Raw-zone part → transformed rows ready for the bulk writer (+ held duplicates, rejects, merges, counts).

    ``offset`` (the raw rows of the parts before this one) orders duplicate ids across chunks."""
    res = transform_chunk(table.to_pandas(), job.object_type, mapping=job.mapping, reference=job.reference,
                          run_id=job.run_id, phone_region=job.phone_region)
    rows = res.rows
    held = None
    if job.sql_dedup:
        rows = rows.assign(_ord=range(offset, offset + len(rows)))
    elif job.dups and len(rows):
        hold = rows[job.key].isin(job.dups).to_numpy()
        if hold.any():
            held = rows[hold].assign(_ord=np.arange(offset, offset + len(rows))[hold])
            rows = rows[~hold]
    if job.direct:
        rows = rows.assign(synced_at=job.synced_at, sync_run_id=job.run_id)
    deleted = int(rows["is_deleted"].sum()) if job.direct and len(rows) else 0
    max_updated = None
    if len(res.rows):
        m = res.rows["updated_at"].max()
        if pd.notna(m):
            max_updated = m.to_pydatetime()
    csv = None
    if job.csv_columns is not None:
        csv = _pg.csv_bytes(rows, job.csv_columns) if len(rows) else b""
    return _ChunkOut(rows if csv is None else None, csv, len(rows), held, deleted, res.merges, res.rejects,
                     dict(res.warnings), max_updated)


class _Loader:
    def __init__(self, conn: Any, plan: LoadPlan):
        self.conn, self.plan = conn, plan
        self.cfg = plan.config
        dname = dialect_of(conn)
        self.d = self.cfg.dialect(dname)
        self.ops: ModuleType = _pg if dname == "postgres" else _sqlite
        self.mapping = self.cfg.mapping or load_mapping()
        self.now = datetime.now(timezone.utc)
        self.summary = RunSummary(plan.run_id, started_at=_iso(self.now))
        self.mode = plan.mode or self._mode_from_manifests()
        self.summary.mode = self.mode
        self._executor: ProcessPoolExecutor | None = None

    # --------------------------------------------------------------- helpers
    def _mode_from_manifests(self) -> str | None:
        for m in self.plan.records.values():
            mode = m.extra.get("mode")
            if mode:
                return MODE_NAMES.get(str(mode), str(mode))
        return None

    def p(self, value: Any, logical: str = "text") -> Any:
        return self.ops.to_param(value, logical)

    def x(self, sql: str, params: tuple | list = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql, tuple(params))
        return cur

    def one(self, sql: str, params: tuple | list = ()) -> Any:
        return self.x(sql, params).fetchone()

    # --------------------------------------------------------------- main
    def run(self) -> RunSummary:
        if self.cfg.migrate:
            self.summary.migrations_applied = migrate(self.conn, self.d)
        reference = Reference.from_zone(self.plan.zone, self.plan.reference_run_id or self.plan.run_id, self.cfg.time_zone) \
            if self._has_reference() else Reference.from_objects(time_zone=self.cfg.time_zone)
        try:
            begin(self.conn, self.d)
            blocked = False
            for ot in [o for o in LOAD_ORDER if o in self.plan.records] + [o for o in self.plan.records if o not in LOAD_ORDER]:
                self._load_object(ot, self.plan.records[ot], reference)
                if not blocked:
                    blocked = True
                    self._test_block()
            for manifest in self.plan.associations:
                self._load_associations(manifest)
            self._repoint_merged_associations()
            self._write_runs()
            self.summary.finished_at = _iso(datetime.now(timezone.utc))
            if self.cfg.dry_run:
                # What would change is counted; nothing of it is kept (watermarks included).
                self.conn.rollback()
                self.summary.status = "dry_run"
            else:
                self.conn.commit()
        except BaseException as exc:
            self.conn.rollback()
            self.summary.status = "failed"
            self._record_failure(exc)
            raise
        log.info("%s", self.summary.format())
        return self.summary

    def _has_reference(self) -> bool:
        try:
            self.plan.zone.reference_manifest(self.plan.reference_run_id or self.plan.run_id)
            return True
        except IncompleteDatasetError:
            return False

    def _test_block(self) -> None:
        path = os.environ.get(BLOCK_ENV)
        if not path:
            return
        with open(path, "w") as fh:
            fh.write(str(os.getpid()))
        while True:  # pragma: no cover - killed by the test
            time.sleep(0.2)

    # --------------------------------------------------------------- objects
    def _duplicate_ids(self, manifest: Manifest) -> set[str]:
        """Ids that occur more than once in the dataset (a cheap first pass over the ``id`` column only)."""
        ids = [t.column("id") for t in self.plan.zone.iter_tables(manifest, columns=["id"])]
        if not ids:
            return set()
        s = pd.Series(pa.chunked_array(ids, type=pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        s = s[s.notna()]
        return set(s[s.duplicated(keep=False)].tolist())

    def _chunks(self, job: _ChunkJob, manifest: Manifest) -> Iterator[_ChunkOut]:
        """Every part of ``manifest`` through :func:`_process_chunk`, in order.

        Big PostgreSQL datasets use a worker process (the second core): it transforms chunk n+1 and
        renders its CSV while this process streams chunk n into COPY. At most ``PARALLEL_WORKERS + 1``
        chunks are in flight, so memory stays bounded by the chunk size.
        """
        offset = 0
        tables = self.plan.zone.iter_tables(manifest)
        if job.csv_columns is None or PARALLEL_WORKERS < 1 or manifest.rows < PARALLEL_MIN_ROWS:
            for table in tables:
                n = table.num_rows
                yield _process_chunk(job, table, offset)
                offset += n
            return
        pool = self._pool()
        pending: deque[Any] = deque()
        try:
            for table in tables:
                pending.append(pool.submit(_process_chunk, job, table, offset))
                offset += table.num_rows
                del table
                if len(pending) > PARALLEL_WORKERS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["hubspot_finance.load"])  # not __main__: workers need only this package
            self._executor = ProcessPoolExecutor(max_workers=PARALLEL_WORKERS, mp_context=ctx)
        return self._executor

    def _load_object(self, object_type: str, manifest: Manifest, reference: Reference) -> None:
        """Transform every chunk and stream it into the database with ONE bulk writer per table.

        Duplicate ids (rare: HubSpot paging overlap) are found in a first pass over the ``id`` column;
        their rows are held back and resolved after the stream (newest ``updated_at``, ties → last read;
        rejected versions never win), so what is streamed has one row per id. Into an EMPTY table the
        rows are then copied straight into it (nothing can be stale, changed or unchanged); otherwise
        into a TEMP staging table followed by the set-based upsert. More than ``HOLD_LIMIT`` duplicated
        ids fall back to staging everything and deduplicating in SQL (memory stays bounded).
        """
        decl = get_object(object_type)
        d, ops = self.d, self.ops
        s = ObjectSummary(object_type, decl.table, extracted=manifest.rows)
        self.summary.objects[object_type] = s
        cols = table_columns(decl, self.mapping)
        extras = [(e.name, EXTRA_LOGICAL[e.type]) for e in self.mapping.table(decl.table).extra_columns.values()]
        ensure_extra_columns(self.conn, d, decl.table, extras)
        stage, src = f"stg_{decl.table}", f"src_{decl.table}"
        key = decl.key_column
        cur = self.conn.cursor()
        dups = self._duplicate_ids(manifest)
        sql_dedup = len(dups) > HOLD_LIMIT
        direct = not sql_dedup and self.one(f"SELECT NOT EXISTS (SELECT 1 FROM {d.t(decl.table)})")[0] in (True, 1)
        if direct:
            target, wcols = d.t(decl.table), cols + list(LOADER_COLUMNS)
        else:
            wcols = cols + ([("_ord", "int")] if sql_dedup else [])
            ops.create_stage(cur, d, stage, wcols)
            target = ops.stage_ref(stage)
        merges: list[tuple[str, str, datetime]] = []
        held: list[pd.DataFrame] = []
        rejects: list[dict[str, Any]] = []
        warnings: dict[str, int] = {}
        deleted = 0
        max_updated: datetime | None = None
        job = _ChunkJob(object_type, self.mapping, reference, self.plan.run_id, self.cfg.phone_region, key, dups,
                        sql_dedup, direct, pd.Timestamp(self.now).as_unit("ms"),
                        wcols if d.name == "postgres" else None)

        def prepare(rows: pd.DataFrame) -> pd.DataFrame:
            if direct:
                rows = rows.assign(synced_at=pd.Timestamp(self.now).as_unit("ms"), sync_run_id=self.plan.run_id)
            return rows

        with ops.open_writer(cur, target, wcols) as writer:
            for out in self._chunks(job, manifest):
                writer.write(out.rows) if out.csv is None else writer.write_csv(out.csv, out.n_written)
                deleted += out.deleted
                if out.held is not None:
                    held.append(out.held)
                merges.extend(out.merges)
                rejects.extend(out.rejects)
                for k, n in out.warnings.items():
                    warnings[k] = warnings.get(k, 0) + n
                if out.max_updated is not None:
                    max_updated = out.max_updated if max_updated is None or out.max_updated > max_updated else max_updated
            if held:
                h = pd.concat(held, ignore_index=True).sort_values(["updated_at", "_ord"], kind="stable")
                h = h.drop_duplicates(key, keep="last").sort_values("_ord").drop(columns="_ord")
                writer.write(prepare(h))
                if direct:
                    deleted += int(h["is_deleted"].sum())
            written = writer.rows
        ops.create_stage(cur, d, "stg_merges", MERGE_COLUMNS)
        if merges:
            ops.write_stage(cur, d, "stg_merges", MERGE_COLUMNS,
                            pd.DataFrame(merges, columns=[c for c, _ in MERGE_COLUMNS]))
        s.warnings = dict(sorted(warnings.items()))
        if direct:
            s.distinct = s.inserted = written
            s.deleted = deleted
        else:
            if sql_dedup:
                self.x(f"DROP TABLE IF EXISTS {ops.stage_ref(src)}")
                self.x(ops.dedup_sql(stage, src, key))
            else:
                src = stage
            self._upsert(decl, cols, src, s)
        self._merges(decl, s)
        self._rejects(object_type, rejects, s)
        self._watermark(object_type, manifest, max_updated, s)

    def _upsert(self, decl: Any, cols: list[tuple[str, str]], src: str, s: ObjectSummary) -> None:
        d, ops = self.d, self.ops
        T, key = d.t(decl.table), quote(decl.key_column)
        S = ops.stage_ref(src)
        if d.name == "postgres":
            self.x(f"ANALYZE {S} ({key})")  # temp tables are never auto-analyzed: row count and key stats for the planner
            self.x("SET LOCAL work_mem = '256MB'")  # hash joins of staging × table in memory (this transaction only)
        merged_col = quote(decl.merged_into_column)

        def newer_than(a: str) -> str:
            return f"({a}.updated_at >= t.updated_at AND (t.{merged_col} IS NULL OR {a}.updated_at > t.updated_at))"

        data_cols = [c for c, _ in cols]

        def distinct_from(a: str) -> str:
            return f"({', '.join('t.' + quote(c) for c in data_cols)}) {ops.DISTINCT} ({', '.join(a + '.' + quote(c) for c in data_cols)})"

        newer, distinct = newer_than("s"), distinct_from("s")
        # one pass over staging ⟕ table for the counts
        s.distinct, s.stale, s.deleted = (int(x or 0) for x in self.one(
            f"SELECT count(*), "
            f"COALESCE(SUM(CASE WHEN t.{key} IS NOT NULL AND NOT {newer} THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN s.is_deleted = {ops.TRUE} AND (t.{key} IS NULL OR ({newer} AND t.is_deleted = {ops.FALSE})) "
            f"THEN 1 ELSE 0 END), 0) FROM {S} s LEFT JOIN {T} t ON t.{key} = s.{key}"
        ))
        # contract changes, before the upsert overwrites the old values
        tracked = CHANGE_TRACKED.get(decl.table, ())
        if tracked and d.name == "postgres":
            values = ", ".join(f"({i}, '{f}', CAST(t.{quote(f)} AS TEXT), CAST(s.{quote(f)} AS TEXT), "
                               f"t.{quote(f)} IS DISTINCT FROM s.{quote(f)})" for i, f in enumerate(tracked))
            cur = self.x(
                f"INSERT INTO {d.t('contract_changes')} (hubspot_deal_id, field, old_value, new_value, changed_at, sync_run_id, recorded_at) "
                f"SELECT s.{key}, v.field, v.old_value, v.new_value, s.updated_at, %s, %s "
                f"FROM {S} s JOIN {T} t ON t.{key} = s.{key} "
                f"CROSS JOIN LATERAL (VALUES {values}) AS v(n, field, old_value, new_value, changed) "
                f"WHERE {newer} AND v.changed ORDER BY v.n, s.{key}",
                (self.plan.run_id, self.p(self.now, "ts")),
            )
            self.summary.contract_changes += max(cur.rowcount, 0)
        else:
            for fld in tracked:
                q = quote(fld)
                cur = self.x(
                    f"INSERT INTO {d.t('contract_changes')} (hubspot_deal_id, field, old_value, new_value, changed_at, sync_run_id, recorded_at) "
                    f"SELECT s.{key}, {d.param}, CAST(t.{q} AS TEXT), CAST(s.{q} AS TEXT), s.updated_at, {d.param}, {d.param} "
                    f"FROM {S} s JOIN {T} t ON t.{key} = s.{key} WHERE {newer} AND t.{q} {ops.DISTINCT} s.{q}",
                    (fld, self.plan.run_id, self.p(self.now, "ts")),
                )
                self.summary.contract_changes += max(cur.rowcount, 0)
        all_cols = data_cols + ["synced_at", "sync_run_id"]
        ins_cols = ", ".join(quote(c) for c in all_cols)
        sel = ", ".join([f"s.{quote(c)}" for c in data_cols] + [d.param, d.param])
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in all_cols if c != decl.key_column)
        where_newer, where_distinct = newer_than("excluded"), distinct_from("excluded")
        conflict = f"ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {where_newer} AND {where_distinct}"
        params = (self.p(self.now, "ts"), self.plan.run_id)
        if d.name == "postgres":
            # Changed rows: one UPDATE … FROM (a hash join; rows that did not change are not even locked,
            # unlike ON CONFLICT DO UPDATE … WHERE). New rows: INSERT of the anti-join.
            upd = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in data_cols if c != decl.key_column)
            cur = self.x(
                f"UPDATE {T} AS t SET {upd}, synced_at = %s, sync_run_id = %s FROM {S} s "
                f"WHERE t.{key} = s.{key} AND {newer} AND {distinct}",
                params,
            )
            s.updated = max(cur.rowcount, 0)
            cur = self.x(
                f"INSERT INTO {T} AS t ({ins_cols}) SELECT {sel} FROM {S} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {T} x WHERE x.{key} = s.{key}) {conflict}",
                params,
            )
            s.inserted = max(cur.rowcount, 0)
        else:
            s.inserted = self.one(f"SELECT count(*) FROM {S} s LEFT JOIN {T} t ON t.{key} = s.{key} WHERE t.{key} IS NULL")[0]
            s.updated = self.one(f"SELECT count(*) FROM {S} s JOIN {T} t ON t.{key} = s.{key} WHERE {newer} AND {distinct}")[0]
            self.x(f"INSERT INTO {T} AS t ({ins_cols}) SELECT {sel} FROM {S} s WHERE true {conflict}", params)
        s.unchanged = s.distinct - s.inserted - s.updated - s.stale

    def _merges(self, decl: Any, s: ObjectSummary) -> None:
        d, ops = self.d, self.ops
        T, key, mcol = d.t(decl.table), quote(decl.key_column), quote(decl.merged_into_column)
        M = ops.stage_ref("stg_merges")
        # one survivor per absorbed id: the newest merge wins
        self.x(f"DELETE FROM {M} WHERE EXISTS (SELECT 1 FROM {M} m2 WHERE m2.absorbed = {M}.absorbed "
               f"AND (m2.survivor_updated_at > {M}.survivor_updated_at OR (m2.survivor_updated_at = {M}.survivor_updated_at AND m2.survivor > {M}.survivor)))")
        cur = self.x(
            f"UPDATE {T} SET is_deleted = {ops.TRUE}, deleted_at = COALESCE({T}.deleted_at, m.survivor_updated_at), "
            f"{mcol} = m.survivor, updated_at = {ops.GREATEST}({T}.updated_at, m.survivor_updated_at), "
            f"synced_at = {d.param}, sync_run_id = {d.param} "
            f"FROM {M} m WHERE {T}.{key} = m.absorbed AND m.survivor_updated_at >= {T}.updated_at "
            f"AND ({T}.{mcol} {ops.DISTINCT} m.survivor OR {T}.is_deleted = {ops.FALSE})",
            (self.p(self.now, "ts"), self.plan.run_id),
        )
        s.merged = max(cur.rowcount, 0)
        s.deleted += s.merged

    def _rejects(self, object_type: str, rejects: list[dict[str, Any]], s: ObjectSummary) -> None:
        d = self.d
        R = d.t("rejected_records")
        self.x(f"DELETE FROM {R} WHERE run_id = {d.param} AND object_type = {d.param}", (self.plan.run_id, object_type))
        s.rejected = len(rejects)
        if not rejects:
            return
        rows = [
            (r["object_type"], r["hubspot_id"], r["run_id"],
             self.p(json.dumps(r["reasons"], ensure_ascii=False, default=str), "json"),
             self.p(json.dumps(r["raw_record"], ensure_ascii=False, default=str), "json"), self.p(self.now, "ts"))
            for r in rejects
        ]
        marks = ", ".join([d.param] * 6)
        self.conn.cursor().executemany(
            f"INSERT INTO {R} (object_type, hubspot_id, run_id, reasons, raw_record, rejected_at) VALUES ({marks})", rows
        )

    def _watermark(self, object_type: str, manifest: Manifest, max_updated: datetime | None, s: ObjectSummary) -> None:
        if "advances_to" in manifest.extra:
            # The extractor's window says where the watermark may go; None (e.g. a manual range that
            # does not join up with the watermark) leaves it where it is.
            wm = parse_hubspot_time(manifest.extra["advances_to"])
        else:
            wm = parse_hubspot_time(manifest.extra.get("window_end")) or max_updated
        if wm is None:
            return
        s.watermark = _iso(wm)
        d, ops = self.d, self.ops
        W = d.t("sync_state")
        self.x(
            f"INSERT INTO {W} AS w (object_type, watermark, updated_at, run_id) VALUES ({d.param}, {d.param}, {d.param}, {d.param}) "
            f"ON CONFLICT (object_type) DO UPDATE SET watermark = {ops.GREATEST}(COALESCE(w.watermark, excluded.watermark), excluded.watermark), "
            "updated_at = excluded.updated_at, run_id = excluded.run_id",
            (object_type, self.p(wm, "ts"), self.p(self.now, "ts"), self.plan.run_id),
        )

    # --------------------------------------------------------------- associations
    def _load_associations(self, manifest: Manifest) -> None:
        from_type, to_type = manifest.name.split("_to_", 1)
        decl: AssociationDecl = get_association(from_type, to_type)
        d, ops = self.d, self.ops
        s = AssociationSummary(decl.name, decl.table)
        self.summary.associations[decl.name] = s
        f, t = decl.from_column, decl.to_column
        acols = [(f, "text"), (t, "text"), ("is_primary", "bool"), ("labels", "json")]
        cur = self.conn.cursor()
        ops.create_stage(cur, d, "stg_assoc", acols)
        ops.create_stage(cur, d, "stg_cov", [("from_id", "text")])
        for table in self.plan.zone.iter_tables(manifest):
            frame = pd.DataFrame({
                f: table.column("from_id").to_pylist(), t: table.column("to_id").to_pylist(),
                "is_primary": table.column("is_primary").to_pylist(),
                "labels": [json.dumps(x or [], ensure_ascii=False) for x in table.column("labels").to_pylist()],
            })
            ops.write_stage(cur, d, "stg_assoc", acols, frame)
        for table in self.plan.zone.iter_from_ids(manifest):
            ops.write_stage(cur, d, "stg_cov", [("from_id", "text")], pd.DataFrame({"from_id": table.column("from_id").to_pylist()}))
        # every from-id present in the pairs counts as covered too
        self.x(f"INSERT INTO {ops.stage_ref('stg_cov')} (from_id) SELECT DISTINCT {quote(f)} FROM {ops.stage_ref('stg_assoc')}")
        self.x(f"DROP TABLE IF EXISTS {ops.stage_ref('src_assoc')}")
        self.x(ops.assoc_merge_sql("stg_assoc", "src_assoc", f, t))
        A, S, C = d.t(decl.table), ops.stage_ref("src_assoc"), ops.stage_ref("stg_cov")
        s.rows = self.one(f"SELECT count(*) FROM {S}")[0]
        s.covered_from_ids = self.one(f"SELECT count(DISTINCT from_id) FROM {C}")[0]
        qf, qt = quote(f), quote(t)
        cur = self.x(
            f"DELETE FROM {A} WHERE {qf} IN (SELECT from_id FROM {C}) AND NOT EXISTS "
            f"(SELECT 1 FROM {S} s WHERE s.{qf} = {A}.{qf} AND s.{qt} = {A}.{qt})"
        )
        s.removed = max(cur.rowcount, 0)
        cur = self.x(
            f"INSERT INTO {A} AS a ({qf}, {qt}, is_primary, labels, synced_at, sync_run_id) "
            f"SELECT s.{qf}, s.{qt}, s.is_primary, s.labels, {d.param}, {d.param} FROM {S} s WHERE true "
            f"ON CONFLICT ({qf}, {qt}) DO UPDATE SET is_primary = excluded.is_primary, labels = excluded.labels, "
            f"synced_at = excluded.synced_at, sync_run_id = excluded.sync_run_id "
            f"WHERE (a.is_primary, a.labels) {ops.DISTINCT} (excluded.is_primary, excluded.labels)",
            (self.p(self.now, "ts"), self.plan.run_id),
        )
        s.upserted = max(cur.rowcount, 0)
        if decl.table == "contract_companies":
            K = d.t("contracts")
            primary = (f"(SELECT MIN(cc.{qt}) FROM {A} cc WHERE cc.{qf} = {K}.hubspot_deal_id AND cc.is_primary = {ops.TRUE})")
            self.x(
                f"UPDATE {K} SET primary_company_id = {primary} WHERE hubspot_deal_id IN (SELECT from_id FROM {C}) "
                f"AND primary_company_id {ops.DISTINCT} {primary}"
            )

    def _repoint_merged_associations(self) -> None:
        """HubSpot moves a merged-away record's associations to the survivor; do the same.

        The other side of such a link (e.g. the deal of a merged contact) was not modified, so its
        associations are not re-read in this run: without this, they would still point at the
        absorbed id.
        """
        d, ops = self.d, self.ops
        for object_type in self.plan.records:
            decl = get_object(object_type)
            T, key, mcol = d.t(decl.table), quote(decl.key_column), quote(decl.merged_into_column)
            merged = f"SELECT {key} AS absorbed, {mcol} AS survivor FROM {T} WHERE {mcol} IS NOT NULL AND sync_run_id = {d.param}"
            for assoc in ASSOCIATIONS:
                for side, col, other in ((assoc.from_type, assoc.from_column, assoc.to_column),
                                         (assoc.to_type, assoc.to_column, assoc.from_column)):
                    if side != object_type:
                        continue
                    A, qc, qo = d.t(assoc.table), quote(col), quote(other)
                    self.x(
                        f"INSERT INTO {A} ({qc}, {qo}, is_primary, labels, synced_at, sync_run_id) "
                        f"SELECT m.survivor, x.{qo}, x.is_primary, x.labels, {d.param}, {d.param} "
                        f"FROM {A} x JOIN ({merged}) m ON x.{qc} = m.absorbed WHERE true "
                        f"ON CONFLICT ({quote(assoc.from_column)}, {quote(assoc.to_column)}) DO NOTHING",
                        (self.p(self.now, "ts"), self.plan.run_id, self.plan.run_id),
                    )
                    self.x(f"DELETE FROM {A} WHERE {qc} IN (SELECT absorbed FROM ({merged}) m)", (self.plan.run_id,))

    # --------------------------------------------------------------- bookkeeping
    def _run_rows(self, status: str, error: str | None) -> list[tuple]:
        rows = []
        fin = datetime.now(timezone.utc)
        for ot, m in self.plan.records.items():
            s = self.summary.objects.get(ot) or ObjectSummary(ot, get_object(ot).table, extracted=m.rows)
            ex = m.extra
            rows.append((
                self.plan.run_id, ot, self.p(parse_hubspot_time(ex.get("window_start")), "ts"),
                self.p(parse_hubspot_time(ex.get("window_end")), "ts"), self.mode, s.extracted, s.loaded, s.inserted,
                s.updated, s.unchanged, s.stale, s.rejected, s.deleted, s.merged, sum(s.warnings.values()),
                _api_calls(ex), self.p(self.now, "ts"), self.p(fin, "ts"), status, error,
            ))
        return rows

    def _write_runs(self, status: str = "success", error: str | None = None) -> None:
        d = self.d
        cols = ("run_id, object_type, window_start, window_end, mode, extracted, loaded, inserted, updated, unchanged, "
                "stale, rejected, deleted, merged, warnings, api_calls, started_at, finished_at, status, error")
        n = len(cols.split(","))
        sets = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in cols.split(",")[2:])
        # a failed attempt never overwrites the record of a successful load of the same run
        guard = "" if status == "success" else " WHERE r.status <> 'success'"
        self.conn.cursor().executemany(
            f"INSERT INTO {d.t('sync_runs')} AS r ({cols}) VALUES ({', '.join([d.param] * n)}) "
            f"ON CONFLICT (run_id, object_type) DO UPDATE SET {sets}{guard}",
            self._run_rows(status, error),
        )

    def _record_failure(self, exc: BaseException) -> None:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return
        try:
            begin(self.conn, self.d)
            self._write_runs("failed", f"{type(exc).__name__}: {exc}"[:2000])
            self.conn.commit()
        except Exception:  # best effort: the tables may not even exist
            try:
                self.conn.rollback()
            except Exception:
                pass
            log.warning("could not record the failed run in sync_runs", exc_info=True)


def _api_calls(extra: dict[str, Any]) -> int | None:
    """HubSpot calls the extraction made (the extractor's ``calls.total_calls``)."""
    value = extra.get("api_calls")
    if isinstance(value, int):
        return value
    calls = extra.get("calls")
    if isinstance(calls, dict):
        total = calls.get("total_calls")
        if isinstance(total, int):
            return total
        per_operation = calls.get("calls")
        if isinstance(per_operation, dict):
            return sum(v for v in per_operation.values() if isinstance(v, int))
    return None


__all__ = ["LoadConfig", "LoadPlan", "load_run", "BLOCK_ENV"]
