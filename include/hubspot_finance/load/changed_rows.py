"""PostgreSQL: which staged rows the load must ship in full — a key-only pass against the table.

Shipping every staged row to a TEMP table costs most of an upsert, while a nightly run changes a fraction of
them. So first only (id, ``updated_at``, ``is_deleted``, content hash, read position) of EVERY row goes
through COPY; one join with the table classifies each id the way :func:`.entities._classify` would, as far as
these columns can tell:

- ``n`` new id, ``f`` newer with a different or NULL stored hash → shipped in full and classified there;
- ``s`` stale (:func:`.entities.newer_condition` fails: it needs only these columns) → counted, not shipped;
- ``u`` newer with the same stored hash: every loaded value equal (:mod:`hubspot_finance.row_hash`) → counted
  as unchanged, not shipped (neither would be a deletion: a stale row never is, an equal one has the same
  ``is_deleted``).

The read positions of the ``n``/``f`` rows come back sorted, so the second pass over the same Parquet parts
picks its rows with a binary search per part (no hash set of ids in memory).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from hubspot_finance.load.context import LoadContext
from hubspot_finance.objects import ObjectDecl
from hubspot_finance.rawzone import Manifest
from hubspot_finance.row_hash import HASH_COLUMN, HASH_LOGICAL
from hubspot_finance.schema import quote

READ_POSITION = "read_position"


def key_columns(decl: ObjectDecl) -> list[tuple[str, str]]:
    """What the key pass stages per row: all that ``newer_condition`` and the hash comparison read."""
    return [(decl.key_column, "text"), ("updated_at", "ts"), ("is_deleted", "bool"), (HASH_COLUMN, HASH_LOGICAL),
            (READ_POSITION, "int")]


@dataclass
class KeyPass:
    """The key pass's outcome: the staging table of every row's keys, its counts, the positions to ship."""

    keys_source: str
    counts: dict[str, int] = field(default_factory=dict)
    to_ship: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted read positions
    total: int = 0


def key_pass(ctx: LoadContext, decl: ObjectDecl, manifest: Manifest) -> KeyPass:
    """Stage every row's keys, classify them against the table, return the read positions of rows to ship."""
    from hubspot_finance.load.entities import newer_condition

    d, ops = ctx.d, ctx.ops
    cur = ctx.conn.cursor()
    name, columns = f"stg_keys_{decl.table}", key_columns(decl)
    ops.create_stage(cur, d, name, columns)
    K = ops.stage_ref(name)
    read = [c for c, _ in columns if c != READ_POSITION]
    offset = 0
    with ops.open_writer(cur, K, columns) as writer:
        for table in ctx.plan.zone.iter_tables(manifest, columns=read):
            positions = pa.array(np.arange(offset, offset + table.num_rows, dtype=np.int64))
            writer.write_arrow(table.append_column(READ_POSITION, positions), {})
            offset += table.num_rows
    ops.analyze(cur, K, [decl.key_column])
    T, key = d.t(decl.table), quote(decl.key_column)
    cls = f"stg_keyclass_{decl.table}"
    ctx.execute(f"DROP TABLE IF EXISTS {ops.stage_ref(cls)}")
    ctx.execute(
        f"CREATE TEMP TABLE {quote(cls)} ON COMMIT DROP AS SELECT s.{quote(READ_POSITION)} AS pos, "
        f"CASE WHEN t.{key} IS NULL THEN 'n' WHEN NOT {newer_condition(ctx, decl, 's')} THEN 's' "
        f"WHEN t.{HASH_COLUMN} = s.{HASH_COLUMN} THEN 'u' ELSE 'f' END AS k FROM {K} s LEFT JOIN {T} t ON t.{key} = s.{key}"
    )
    C = ops.stage_ref(cls)
    counts = {k: int(n) for k, n in ctx.execute(f"SELECT k, count(*) FROM {C} GROUP BY k").fetchall()}
    return KeyPass(name, counts, _positions(cur, f"SELECT pos FROM {C} WHERE k IN ('n', 'f') ORDER BY pos"), offset)


def _positions(cur: Any, select: str) -> np.ndarray:
    """The int64 column ``select`` returns, through COPY TO (text → Arrow; no Python object per row)."""
    buf = io.BytesIO()
    with cur.copy(f"COPY ({select}) TO STDOUT (FORMAT csv)") as cp:
        for block in cp:
            buf.write(block)
    if not buf.tell():
        return np.zeros(0, np.int64)
    buf.seek(0)
    table = pacsv.read_csv(buf, read_options=pacsv.ReadOptions(column_names=["pos"]),
                           convert_options=pacsv.ConvertOptions(column_types={"pos": pa.int64()}))
    return table.column("pos").to_numpy()


def pick(table: pa.Table, offset: int, to_ship: np.ndarray) -> pa.Table:
    """The rows of ``table`` (read positions ``offset …``) listed in the sorted ``to_ship``."""
    lo, hi = np.searchsorted(to_ship, [offset, offset + table.num_rows])
    if hi - lo == table.num_rows:
        return table
    return table.take(pa.array(to_ship[lo:hi] - offset))
