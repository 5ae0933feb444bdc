"""One load: the transaction, the order of its steps, and its record in ``sync_runs``.

Everything of one run (all objects, links, contract changes, rejects, the retry list, ``sync_runs``
and the watermarks) commits in ONE transaction; a crash anywhere leaves the tables as before. Loads
are serialized with ``pg_advisory_xact_lock`` (PostgreSQL) or ``BEGIN IMMEDIATE`` (SQLite).

The rows come from the transform tasks' staged datasets (one row per id, typed); the raw manifests give
the windows, watermarks and the id sweep's findings.

Order: per object (companies, contacts, deals) stage → upsert → merges → permanent deletes →
rejects and retry list → watermark; then merged links moved to survivors, the link sets read in
this run, links of deleted records dropped, primary companies recomputed; then ``sync_runs``.

Test hook: if env ``HUBSPOT_FINANCE_TEST_BLOCK_AFTER_STAGING`` names a file, the load creates it after
staging the first object and then blocks (tests kill the process there to prove atomicity).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from typing import Any

from hubspot_finance.load import entities, links
from hubspot_finance.load.context import LoadContext, iso
from hubspot_finance.load.plan import LoadPlan
from hubspot_finance.load.staging import stage, staged_columns
from hubspot_finance.mapping import load_mapping
from hubspot_finance.objects import LOAD_ORDER, get_object
from hubspot_finance.rawzone import Manifest, parse_hubspot_time
from hubspot_finance.schema import EXTRA_LOGICAL, begin, ensure_extra_columns, migrate
from hubspot_finance.summary import ObjectSummary, RunSummary
from hubspot_finance.transform import table_columns

log = logging.getLogger(__name__)

BLOCK_ENV = "HUBSPOT_FINANCE_TEST_BLOCK_AFTER_STAGING"
RUN_COLUMNS = ("run_id", "object_type", "window_start", "window_end", "mode", "extracted", "loaded", "inserted",
               "updated", "unchanged", "stale", "rejected", "deleted", "merged", "purged", "warnings", "api_calls",
               "daily_budget_left", "portal_id", "started_at", "finished_at", "status", "error")


def _connection(db: Any) -> tuple[Any, bool]:
    if hasattr(db, "get_conn") and not hasattr(db, "cursor"):
        return db.get_conn(), True
    return db, False


def load_run(db: Any, plan: LoadPlan) -> RunSummary:
    """Load ``plan`` atomically; returns the run summary (also written to ``sync_runs``).

    ``db`` is an Airflow ``DbApiHook`` (``PostgresHook``/``SqliteHook``) or a DB-API connection (psycopg 3 or sqlite3).
    """
    conn, owned = _connection(db)
    try:
        return RunLoader(LoadContext(conn, plan)).run()
    finally:
        if owned:
            conn.close()


class RunLoader:
    def __init__(self, ctx: LoadContext):
        self.ctx = ctx
        self.plan = ctx.plan
        self.mapping = self.plan.config.mapping or load_mapping()
        self.mode = self.plan.mode or self._mode_from_manifests()
        ctx.summary.mode = self.mode

    def _mode_from_manifests(self) -> str | None:
        for manifest in self.plan.records.values():
            mode = manifest.extra.get("mode")
            if mode:
                return str(mode)  # the window's mode: incremental, range or full (windows.Mode)
        return None

    def run(self) -> RunSummary:
        ctx, cfg = self.ctx, self.plan.config
        ctx.ops.session_setup(ctx.conn)
        if cfg.migrate:
            ctx.summary.migrations_applied = migrate(ctx.conn, ctx.d)
        try:
            begin(ctx.conn, ctx.d)
            order = [o for o in LOAD_ORDER if o in self.plan.records] + [o for o in self.plan.records if o not in LOAD_ORDER]
            for position, object_type in enumerate(order):
                self._load_object(object_type, self.plan.records[object_type], self.plan.staged[object_type])
                if position == 0:
                    self._test_block()
            links.start(ctx)
            links.repoint_merged(ctx)  # first: a link set read in this run then replaces the moved links
            for manifest in self.plan.associations:
                links.load_links(ctx, manifest)
            links.drop_links_of_deleted(ctx)
            links.recompute_primary_companies(ctx)
            self._write_runs()
            ctx.summary.finished_at = iso(datetime.now(timezone.utc))
            if cfg.dry_run:
                # What would change is counted; nothing of it is kept (watermarks included).
                ctx.conn.rollback()
                ctx.summary.status = "dry_run"
            else:
                ctx.conn.commit()
        except BaseException as exc:
            ctx.conn.rollback()
            ctx.summary.status = "failed"
            self._record_failure(exc)
            raise
        log.debug("%s", ctx.summary.format())  # the task logs the report once (summary.report_lines)
        return ctx.summary

    def _test_block(self) -> None:
        path = os.environ.get(BLOCK_ENV)
        if not path:
            return
        with open(path, "w") as fh:
            fh.write(str(os.getpid()))
        while True:  # pragma: no cover - killed by the test
            time.sleep(0.2)

    def _load_object(self, object_type: str, manifest: Manifest, staged_manifest: Manifest) -> None:
        ctx = self.ctx
        decl = get_object(object_type)
        s = ObjectSummary(object_type, decl.table, extracted=manifest.rows)
        ctx.summary.objects[object_type] = s
        columns = staged_columns(staged_manifest, table_columns(decl, self.mapping))
        extras = [(e.name, EXTRA_LOGICAL[e.type]) for e in self.mapping.table(decl.table).extra_columns.values()]
        ensure_extra_columns(ctx.conn, ctx.d, decl.table, extras)
        staged = stage(ctx, decl, columns, staged_manifest)
        s.warnings = dict(sorted(staged.warnings.items()))
        if staged.direct:
            s.distinct = s.inserted = staged.written
            s.deleted = staged.deleted
        else:
            entities.upsert(ctx, decl, columns, staged.source, s)
            # rows the key pass settled without shipping them (stale; unchanged by their content hash)
            s.stale, s.unchanged = s.stale + staged.settled.get("s", 0), s.unchanged + staged.settled.get("u", 0)
            s.distinct += sum(staged.settled.values())
        entities.apply_merges(ctx, decl, staged.merges, s)
        entities.apply_purges(ctx, decl, self.plan.zone.read_dataset_json(manifest, "purged.json", default=[]), s)
        entities.record_rejects(ctx, decl, staged.rejects, staged.keys_source or staged.source, s,
                                manifest.extra.get("retry_gone") or [])
        entities.move_watermark(ctx, object_type, manifest, staged.max_updated, s)

    # ------------------------------------------------------------ sync_runs
    def _run_rows(self, status: str, error: str | None) -> list[tuple]:
        ctx = self.ctx
        rows = []
        finished = datetime.now(timezone.utc)
        for object_type, manifest in self.plan.records.items():
            s = ctx.summary.objects.get(object_type) or ObjectSummary(object_type, get_object(object_type).table,
                                                                       extracted=manifest.rows)
            extra = manifest.extra
            rows.append((
                ctx.run_id, object_type, ctx.param(parse_hubspot_time(extra.get("window_start")), "ts"),
                ctx.param(parse_hubspot_time(extra.get("window_end")), "ts"), self.mode, s.extracted, s.loaded,
                s.inserted, s.updated, s.unchanged, s.stale, s.rejected, s.deleted, s.merged, s.purged,
                sum(s.warnings.values()), api_calls(extra), daily_budget_left(extra), self.plan.portal_id,
                ctx.param(ctx.now, "ts"), ctx.param(finished, "ts"), status, error,
            ))
        return rows

    def _write_runs(self, status: str = "success", error: str | None = None) -> None:
        d = self.ctx.d
        sets = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[2:])
        # a failed attempt never overwrites the record of a successful load of the same run
        guard = "" if status == "success" else " WHERE r.status <> 'success'"
        self.ctx.conn.cursor().executemany(
            f"INSERT INTO {d.t('sync_runs')} AS r ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join([d.param] * len(RUN_COLUMNS))}) "
            f"ON CONFLICT (run_id, object_type) DO UPDATE SET {sets}{guard}",
            self._run_rows(status, error),
        )

    def _record_failure(self, exc: BaseException) -> None:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return
        conn = self.ctx.conn
        try:
            begin(conn, self.ctx.d)
            self._write_runs("failed", f"{type(exc).__name__}: {exc}"[:2000])
            conn.commit()
        except Exception:  # best effort: the tables may not even exist
            try:
                conn.rollback()
            except Exception:
                pass
            log.warning("could not record the failed run in sync_runs", exc_info=True)


def api_calls(extra: dict[str, Any]) -> int | None:
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


def daily_budget_left(extra: dict[str, Any]) -> int | None:
    """HubSpot's daily budget left when the extraction ended (the extractor's ``calls.daily_remaining``)."""
    calls = extra.get("calls")
    value = calls.get("daily_remaining") if isinstance(calls, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
