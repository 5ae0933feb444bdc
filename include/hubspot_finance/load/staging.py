"""Raw-zone parts → transformed rows → ONE bulk writer per table (COPY on PostgreSQL, executemany on SQLite).

Duplicate ids (HubSpot paging overlap) are found in a first pass over the ``id`` column; their rows are
held back and resolved after the stream (newest ``updated_at``, ties → last read; rejected versions
never win), so what is streamed has one row per id. Into an EMPTY table the rows go straight into it;
otherwise into a TEMP staging table for the set-based statements of :mod:`.entities`. More than
``HOLD_LIMIT`` duplicated ids are staged as they are and deduplicated in SQL (memory stays bounded).
Big PostgreSQL datasets may be transformed in a worker process (``HUBSPOT_FINANCE_LOAD_WORKERS``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from hubspot_finance.load.context import LoadContext
from hubspot_finance.mapping import Mapping
from hubspot_finance.objects import ObjectDecl
from hubspot_finance.rawzone import Manifest
from hubspot_finance.schema import LOADER_COLUMNS
from hubspot_finance.transform import Reference, transform_chunk

from . import postgres

HOLD_LIMIT = 50_000  # duplicated ids resolved in memory; more → staged and deduplicated in SQL
PARALLEL_MIN_ROWS = 100_000  # PostgreSQL datasets at least this big may be transformed in worker processes
# Transform worker processes (0 = in this process). Off by default: on 2 cores the PostgreSQL backend
# (COPY parsing, index builds) already uses the second core and a worker made loads ~15 % slower.
PARALLEL_WORKERS = int(os.environ.get("HUBSPOT_FINANCE_LOAD_WORKERS", "0") or 0)


@dataclass
class ChunkJob:
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
class ChunkOut:
    rows: pd.DataFrame | None
    csv: bytes | None
    n_written: int
    held: pd.DataFrame | None
    deleted: int
    merges: list[tuple[str, str, datetime]]
    rejects: list[dict[str, Any]]
    warnings: dict[str, int]
    max_updated: datetime | None


@dataclass
class Staged:
    """What streaming one object's dataset produced."""

    direct: bool  # written straight into the (empty) finance table
    source: str | None  # the staging table holding one row per id (None when direct)
    written: int = 0
    deleted: int = 0  # direct only: archived rows written
    merges: list[tuple[str, str, datetime]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)
    max_updated: datetime | None = None


def process_chunk(job: ChunkJob, table: pa.Table, offset: int) -> ChunkOut:
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
        latest = res.rows["updated_at"].max()
        if pd.notna(latest):
            max_updated = latest.to_pydatetime()
    csv = None
    if job.csv_columns is not None:
        csv = postgres.csv_bytes(rows, job.csv_columns) if len(rows) else b""
    return ChunkOut(rows if csv is None else None, csv, len(rows), held, deleted, res.merges, res.rejects,
                    dict(res.warnings), max_updated)


class ObjectStager:
    """Streams one object's dataset through the transform into its table or a staging table."""

    def __init__(self, ctx: LoadContext, decl: ObjectDecl, columns: list[tuple[str, str]], mapping: Mapping,
                 reference: Reference):
        self.ctx, self.decl, self.columns, self.mapping, self.reference = ctx, decl, columns, mapping, reference
        self._executor: ProcessPoolExecutor | None = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def duplicate_ids(self, manifest: Manifest) -> set[str]:
        """Ids that occur more than once in the dataset (a cheap first pass over the ``id`` column only)."""
        ids = [t.column("id") for t in self.ctx.plan.zone.iter_tables(manifest, columns=["id"])]
        if not ids:
            return set()
        series = pd.Series(pa.chunked_array(ids, type=pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        series = series[series.notna()]
        return set(series[series.duplicated(keep=False)].tolist())

    def stage(self, manifest: Manifest) -> Staged:
        ctx, decl = self.ctx, self.decl
        d, ops = ctx.d, ctx.ops
        key = decl.key_column
        dups = self.duplicate_ids(manifest)
        sql_dedup = len(dups) > HOLD_LIMIT
        direct = not sql_dedup and ctx.fetch_one(f"SELECT NOT EXISTS (SELECT 1 FROM {d.t(decl.table)})")[0] in (True, 1)
        stage_name = f"stg_{decl.table}"
        cur = ctx.conn.cursor()
        if direct:
            target, write_columns = d.t(decl.table), self.columns + list(LOADER_COLUMNS)
        else:
            write_columns = self.columns + ([("_ord", "int")] if sql_dedup else [])
            ops.create_stage(cur, d, stage_name, write_columns)
            target = ops.stage_ref(stage_name)
        synced_at = pd.Timestamp(ctx.now).as_unit("ms")
        job = ChunkJob(decl.name, self.mapping, self.reference, ctx.run_id, ctx.plan.config.phone_region, key, dups,
                       sql_dedup, direct, synced_at, write_columns if d.name == "postgres" else None)
        out = Staged(direct, None if direct else stage_name)
        held: list[pd.DataFrame] = []
        with ops.open_writer(cur, target, write_columns) as writer:
            for chunk in self._chunks(job, manifest):
                writer.write(chunk.rows) if chunk.csv is None else writer.write_csv(chunk.csv, chunk.n_written)
                out.deleted += chunk.deleted
                if chunk.held is not None:
                    held.append(chunk.held)
                out.merges.extend(chunk.merges)
                out.rejects.extend(chunk.rejects)
                for rule, n in chunk.warnings.items():
                    out.warnings[rule] = out.warnings.get(rule, 0) + n
                if chunk.max_updated is not None and (out.max_updated is None or chunk.max_updated > out.max_updated):
                    out.max_updated = chunk.max_updated
            if held:
                newest = pd.concat(held, ignore_index=True).sort_values(["updated_at", "_ord"], kind="stable")
                newest = newest.drop_duplicates(key, keep="last").sort_values("_ord").drop(columns="_ord")
                if direct:
                    newest = newest.assign(synced_at=synced_at, sync_run_id=ctx.run_id)
                    out.deleted += int(newest["is_deleted"].sum())
                writer.write(newest)
            out.written = writer.rows
        if sql_dedup:
            deduplicated = f"src_{decl.table}"
            ctx.execute(f"DROP TABLE IF EXISTS {ops.stage_ref(deduplicated)}")
            ctx.execute(ops.dedup_sql(stage_name, deduplicated, key))
            out.source = deduplicated
        return out

    def _chunks(self, job: ChunkJob, manifest: Manifest) -> Iterator[ChunkOut]:
        """Every part of ``manifest`` through :func:`process_chunk`, in order.

        Big PostgreSQL datasets use a worker process (the second core): it transforms chunk n+1 and
        renders its CSV while this process streams chunk n into COPY. At most ``PARALLEL_WORKERS + 1``
        chunks are in flight, so memory stays bounded by the chunk size.
        """
        offset = 0
        tables = self.ctx.plan.zone.iter_tables(manifest)
        if job.csv_columns is None or PARALLEL_WORKERS < 1 or manifest.rows < PARALLEL_MIN_ROWS:
            for table in tables:
                n = table.num_rows
                yield process_chunk(job, table, offset)
                offset += n
            return
        pool = self._pool()
        pending: deque[Any] = deque()
        try:
            for table in tables:
                pending.append(pool.submit(process_chunk, job, table, offset))
                offset += table.num_rows
                del table
                if len(pending) > PARALLEL_WORKERS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["hubspot_finance.load"])  # not __main__: workers need only this package
            self._executor = ProcessPoolExecutor(max_workers=PARALLEL_WORKERS, mp_context=ctx)
        return self._executor
