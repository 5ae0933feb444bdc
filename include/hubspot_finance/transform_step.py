"""The transform task: one object's raw Parquet → typed, validated Parquet in the raw zone's ``staged/`` area.

A task of its own so the graph, logs, durations and retries show whether transforming or loading is slow
or failing, and so objects transform in parallel on any worker (the raw zone is the only hand-over).

Output ``staged/{object}/run={run}/``: parts with ONE row per id and Arrow types (money
``decimal256(60, 30)``, exact for every value validation accepts; times ``timestamp[ms, UTC]``; dates
``date32``; booleans; text and JSON as strings) plus each row's content hash (:mod:`.row_hash`), the side files ``rejects.json`` and ``merges.json``, then
``_manifest.json`` LAST (counts, warnings, max ``updated_at``, columns). A retry first deletes the stale
manifest and rewrites the parts under the same names: an interrupted transform leaves no manifest (the
load refuses the run) and a retry converges.

Duplicate ids (HubSpot paging overlap) are found in a first pass over ``id``; their versions are spilled to
``dup-*.parquet`` with their read order, and after the stream the winner per id (newest ``updated_at``,
ties → last read; rejected versions never compete) is appended. Memory stays bounded by the chunk.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hubspot_finance.load.plan import LoadConfig, LoadPlan
from hubspot_finance.mapping import load_mapping
from hubspot_finance.objects import OBJECTS, get_object
from hubspot_finance.rawzone import (
    IncompleteDatasetError, Manifest, RawZone, StagedDatasetMissingError, _DatasetWriter,
)
from hubspot_finance.row_hash import HASH_VERSION, with_hash
from hubspot_finance.transform import Reference, table_columns, transform_chunk

__all__ = ["StagedDatasetMissingError", "transform_object", "transform_run", "transform_and_load"]

log = logging.getLogger(__name__)

MONEY = pa.decimal256(60, 30)  # validation.MAX_INTEGER_DIGITS + MAX_FRACTION_DIGITS: every accepted amount, exactly
ARROW_TYPES = {"text": pa.string(), "json": pa.string(), "money": MONEY, "bool": pa.bool_(),
               "ts": pa.timestamp("ms", tz="UTC"), "date": pa.date32(), "int": pa.int64()}
ORD = "_ord"  # read position of a duplicated id's version (ties → last read)
# Raw parts are transformed in slices of this many rows: pandas' object columns take ~6 kB a row while a
# slice is transformed, so this keeps the task's peak RSS under 512 MiB whatever the raw chunk size.
SLICE_ROWS = 20_000


def staged_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema([pa.field(c, ARROW_TYPES[t]) for c, t in columns])


def _column(s: pd.Series, logical: str) -> pa.Array:
    if logical == "money":  # canonical decimal text → exact decimal (Arrow parses; no float on the way)
        return pc.cast(pa.array(s.to_numpy(dtype=object), pa.string(), from_pandas=True), MONEY)
    if logical == "ts":
        s = pd.to_datetime(s, utc=True).astype("datetime64[ms, UTC]")
    arr = pa.array(s.to_numpy(dtype=object) if s.dtype == object else s, type=ARROW_TYPES[logical], from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def to_arrow(rows: pd.DataFrame, columns: list[tuple[str, str]]) -> pa.Table:
    """The transform's rows as a table of :data:`ARROW_TYPES` (the staged schema)."""
    return pa.Table.from_arrays([_column(rows[c], t) for c, t in columns], schema=staged_schema(columns))


class StagedWriter(_DatasetWriter):
    kind = "staged"

    def __init__(self, zone: RawZone, object_type: str, run_id: str):
        super().__init__(zone, RawZone.staged_rel(object_type, run_id), run_id, object_type, zone.chunk_rows)
        self.spill: list[dict[str, Any]] = []
        self.rows = self.archived = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self._write_part("part", len(self.parts), table, self.parts)
            self.rows += table.num_rows
            self.archived += int(pc.sum(table.column("is_deleted")).as_py() or 0)

    def add_spill(self, table: pa.Table) -> None:
        self._write_part("dup", len(self.spill), table, self.spill)

    def read(self, parts: list[dict[str, Any]], columns: list[str] | None) -> Any:
        """Parts this writer wrote (before its commit), as pyarrow tables."""
        return self.zone._iter_parts(Manifest("staged", self.rel, self.run_id, self.name), parts, columns)

    def drop_spill(self) -> None:
        for part in self.spill:  # best effort: unlisted files are never read anyway
            try:
                (self.dir / part["file"]).unlink()
            except Exception:
                pass

    def commit(self, extra: dict[str, Any]) -> Manifest:
        extra = {**extra, "side_files": list(self.side_files)}
        return self._commit(Manifest("staged", self.rel, self.run_id, self.name, parts=self.parts, rows=self.rows,
                                     extra=extra))


def read_reference(zone: RawZone, run_id: str, time_zone: str | None = None) -> Reference:
    """The run's reference data; the defaults when it was not extracted (e.g. a test's bare raw zone)."""
    try:
        zone.reference_manifest(run_id)
    except IncompleteDatasetError:
        return Reference.from_objects(time_zone=time_zone)
    return Reference.from_zone(zone, run_id, time_zone)


def duplicate_ids(zone: RawZone, raw: Manifest) -> pa.Array:
    """Ids that occur more than once in the dataset (a first pass over the ``id`` column only)."""
    ids = [t.column("id") for t in zone.iter_tables(raw, columns=["id"])]
    if not ids:
        return pa.array([], pa.string())
    counts = pc.value_counts(pa.chunked_array(ids, type=pa.string()).combine_chunks())
    return pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)).drop_null()


def _winners(zone: RawZone, writer: StagedWriter, key: str) -> pa.Array:
    """Read positions of the winning version of each duplicated id: newest ``updated_at``, ties → last read."""
    keys = pa.concat_tables(list(writer.read(writer.spill, [key, "updated_at", ORD])))
    order = keys.sort_by([(key, "ascending"), ("updated_at", "ascending"), (ORD, "ascending")])
    k = order.column(key).combine_chunks()
    last = np.ones(len(k), dtype=bool)
    if len(k) > 1:
        last[:-1] = pc.not_equal(k[:-1], k[1:]).to_numpy(zero_copy_only=False)
    return pc.filter(order.column(ORD), pa.array(last))


def transform_object(zone: RawZone, run_id: str, object_type: str, config: LoadConfig | None = None,
                     *, reference: Reference | None = None) -> Manifest:
    """Transform run ``run_id``'s committed ``object_type`` records into its staged dataset; returns its manifest."""
    config = config or LoadConfig()
    mapping = config.mapping or load_mapping()
    reference = reference or read_reference(zone, run_id, config.time_zone)
    raw = zone.records_manifest(object_type, run_id)
    decl = get_object(object_type)
    key, columns = decl.key_column, table_columns(decl, mapping)
    writer = StagedWriter(zone, object_type, run_id)  # deletes a stale manifest first
    dups = duplicate_ids(zone, raw)
    rejects: list[dict[str, Any]] = []
    merges: list[list[Any]] = []
    warnings: Counter = Counter()
    max_updated: datetime | None = None
    offset = 0
    for table in (part.slice(at, SLICE_ROWS) for part in zone.iter_tables(raw) for at in range(0, part.num_rows, SLICE_ROWS)):
        res = transform_chunk(table.to_pandas(), object_type, mapping=mapping, reference=reference, run_id=run_id,
                              phone_region=config.phone_region)
        rejects.extend(res.rejects)
        merges.extend([a, s, at.isoformat()] for a, s, at in res.merges)
        warnings.update(res.warnings)
        out = with_hash(to_arrow(res.rows, columns), columns)
        if out.num_rows:
            latest = pc.max(out.column("updated_at")).as_py()
            if latest is not None and (max_updated is None or latest > max_updated):
                max_updated = latest
        if len(dups) and out.num_rows:
            held = pc.is_in(out.column(key), value_set=dups)
            if pc.any(held).as_py():
                ords = pa.array(np.arange(offset, offset + out.num_rows, dtype=np.int64))
                writer.add_spill(out.append_column(ORD, ords).filter(held))
                out = out.filter(pc.invert(held))
        writer.add(out)
        offset += table.num_rows
    if writer.spill:
        won = _winners(zone, writer, key)
        for part in writer.read(writer.spill, None):
            writer.add(part.filter(pc.is_in(part.column(ORD), value_set=won)).drop_columns([ORD]))
    writer.write_json("rejects.json", rejects)
    writer.write_json("merges.json", merges)
    manifest = writer.commit({
        "raw_dataset": raw.dataset, "raw_rows": raw.rows, "rejected": len(rejects), "merges": len(merges),
        "warnings": dict(sorted(warnings.items())), "archived": writer.archived, "columns": [list(c) for c in columns],
        "max_updated_at": max_updated.isoformat() if max_updated else None, "content_hash": HASH_VERSION,
    })
    writer.drop_spill()
    return manifest


def transform_run(zone: RawZone, run_id: str, *, object_types: list[str] | None = None,
                  config: LoadConfig | None = None) -> dict[str, Manifest]:
    """Every object's transform task, one after another (the DAG runs them in parallel)."""
    config = config or LoadConfig()
    reference = read_reference(zone, run_id, config.time_zone)
    types = object_types if object_types is not None else list(OBJECTS)
    return {ot: transform_object(zone, run_id, ot, config, reference=reference) for ot in types}


def transform_and_load(db: Any, zone: RawZone, run_id: str, *, raw_run_id: str | None = None,
                       object_types: list[str] | None = None, config: LoadConfig | None = None, **plan_kw: Any) -> Any:
    """Transform then load one run (what the DAG's transform_* and load tasks do), for tests, benchmarks and the demo."""
    from hubspot_finance.load import load_run

    config = config or LoadConfig()
    raw = raw_run_id or run_id
    transform_run(zone, raw, object_types=object_types, config=config)
    plan = LoadPlan.from_zone(zone, run_id, object_types=object_types, raw_run_id=raw, config=config, **plan_kw)
    return load_run(db, plan)
