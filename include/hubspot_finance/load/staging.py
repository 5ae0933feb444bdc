"""Staged Parquet (the transform task's output) → ONE bulk writer per table, Arrow all the way.

The staged dataset already has one row per id and final Arrow types, so this only streams its parts:
into an EMPTY table straight into it, otherwise into a TEMP staging table for the set-based statements
of :mod:`.entities` — on PostgreSQL only the rows a key-only pass (:mod:`.changed_rows`) says may be new or
changed. PostgreSQL gets ``pyarrow.csv`` bytes through one ``COPY … FROM STDIN``; SQLite gets
``executemany`` of the Arrow columns. No pandas, no per-value Python on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hubspot_finance.load.changed_rows import key_pass, pick
from hubspot_finance.load.context import LoadContext
from hubspot_finance.objects import ObjectDecl
from hubspot_finance.rawzone import Manifest, RawZone, parse_hubspot_time
from hubspot_finance.row_hash import HASH_COLUMN, HASH_LOGICAL, HASH_VERSION
from hubspot_finance.schema import LOADER_COLUMNS


class StagedColumnsError(RuntimeError):
    """The staged dataset was transformed with another mapping than the load uses."""


@dataclass
class Staged:
    """What streaming one object's staged dataset produced."""

    direct: bool  # written straight into the (empty) finance table
    source: str | None  # the staging table holding one row per id (None when direct)
    written: int = 0
    deleted: int = 0  # direct only: archived rows written
    merges: list[tuple[str, str, datetime]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)
    max_updated: datetime | None = None
    keys_source: str | None = None  # PostgreSQL upsert: the staging table with the keys of EVERY staged row
    settled: dict[str, int] = field(default_factory=dict)  # rows the key pass counted and did not ship (s, u)


def staged_columns(manifest: Manifest, expected: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The staged dataset's (column, logical type); it must be what the load's mapping gives."""
    columns = [(c, t) for c, t in manifest.extra.get("columns") or []]
    if columns != list(expected):
        raise StagedColumnsError(
            f"{manifest.dataset} was transformed with other columns ({[c for c, _ in columns]}) than the mapping "
            f"gives now ({[c for c, _ in expected]}): re-run transform_{manifest.name} for this run, then load"
        )
    return columns


def staged_side(zone: RawZone, manifest: Manifest, run_id: str) -> tuple[list[dict[str, Any]], list[tuple[str, str, datetime]]]:
    """(rejects stamped with the loading run's id, merges) of a staged dataset."""
    rejects = [{**r, "run_id": run_id} for r in zone.read_dataset_json(manifest, "rejects.json", default=[])]
    merges = [(a, s, parse_hubspot_time(at)) for a, s, at in zone.read_dataset_json(manifest, "merges.json", default=[])]
    return rejects, merges


def table_is_empty(ctx: LoadContext, decl: ObjectDecl) -> bool:
    """An empty table takes the rows straight from COPY: nothing to compare, merge or purge against first."""
    return ctx.fetch_one(f"SELECT NOT EXISTS (SELECT 1 FROM {ctx.d.t(decl.table)})")[0] in (True, 1)


def stage(ctx: LoadContext, decl: ObjectDecl, columns: list[tuple[str, str]], manifest: Manifest) -> Staged:
    """Stream ``manifest``'s parts into the finance table (when empty) or a TEMP staging table."""
    d, ops = ctx.d, ctx.ops
    direct = table_is_empty(ctx, decl)
    stage_name = f"stg_{decl.table}"
    cur = ctx.conn.cursor()
    extra = manifest.extra
    hashed = extra.get("content_hash") == HASH_VERSION  # else transformed before the hash: NULL, always compared
    constants: dict[str, Any] = {} if hashed else {HASH_COLUMN: None}
    write_columns = columns + [(HASH_COLUMN, HASH_LOGICAL)]
    if direct:
        target, write_columns = d.t(decl.table), write_columns + list(LOADER_COLUMNS)
        constants.update({"synced_at": ctx.now, "sync_run_id": ctx.run_id})
    else:
        ops.create_stage(cur, d, stage_name, write_columns)
        target = ops.stage_ref(stage_name)
    rejects, merges = staged_side(ctx.plan.zone, manifest, ctx.run_id)
    out = Staged(direct, None if direct else stage_name, merges=merges, rejects=rejects,
                 warnings=dict(extra.get("warnings") or {}), max_updated=parse_hubspot_time(extra.get("max_updated_at")),
                 deleted=int(extra.get("archived") or 0) if direct else 0)
    keys = key_pass(ctx, decl, manifest) if hashed and not direct and d.name == "postgres" else None
    if keys is not None:
        out.keys_source, out.settled = keys.keys_source, {k: keys.counts.get(k, 0) for k in ("s", "u")}
    offset = 0
    with ops.open_writer(cur, target, write_columns) as writer:
        for table in ctx.plan.zone.iter_tables(manifest):
            if keys is not None:
                table, offset = pick(table, offset, keys.to_ship), offset + table.num_rows
            writer.write_arrow(table, constants)
        out.written = writer.rows
    if not direct:
        ops.analyze(cur, target, [decl.key_column])  # never auto-analyzed: the planner needs its size
    return out
