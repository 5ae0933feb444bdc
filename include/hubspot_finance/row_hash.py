"""A per-row content hash of the staged rows, so the load can skip rows whose stored copy is identical.

The transform stores it in the staged Parquet (column :data:`HASH_COLUMN`) and the load keeps it next to the
row in the finance table. A load first ships only (id, ``updated_at``, ``is_deleted``, hash) of every row and
fetches full rows only for new ids and for rows whose stored hash differs (or is NULL: stored before the hash
existed, or changed since by a merge or a permanent delete, which clear it).

Canonical form, per column in table order: ``<byte length>:<text>``, or ``~`` for NULL — self-delimiting, so
no two different rows give the same bytes. Text of each type: exact decimals as trimmed decimal text
(``money_text``), timestamps as epoch milliseconds, dates as epoch days, booleans as ``1``/``0``. The bytes
go through BLAKE2b (stdlib: the same in every process and version; a mapping change that adds a column adds a
value, so it never matches a stored hash). Its 8-byte digest, as a signed 64-bit integer, is the hash (a
``bigint`` in PostgreSQL; a collision of two different rows has odds of 2⁻⁶⁴).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HASH_COLUMN = "content_hash"
HASH_LOGICAL = "int"
# Written to the staged manifest: the load compares hashes only of the same version.
HASH_VERSION = "blake2b64-v1"


def _canonical(arr: pa.Array, logical: str) -> pa.Array:
    """``arr`` as canonical text (see the module docstring), NULL kept."""
    from hubspot_finance.load.arrow_cols import money_text  # here: the load package imports this module

    if logical == "money":
        arr = money_text(arr)
    elif logical == "ts":
        arr = pc.cast(arr, pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    elif logical == "date":
        arr = pc.cast(arr, pa.date32()).cast(pa.int32())
    elif logical == "bool":
        arr = pc.cast(arr, pa.int8())
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    framed = pc.binary_join_element_wise(pc.cast(pc.binary_length(arr), pa.string()), arr, ":")
    return pc.fill_null(framed, "~")


def row_hashes(table: pa.Table, columns: list[tuple[str, str]]) -> pa.Array:
    """One int64 hash per row of ``table`` over ``columns`` (name, logical type)."""
    if table.num_rows == 0:
        return pa.array([], pa.int64())
    parts = []
    for name, logical in columns:
        col = table.column(name)
        parts.append(_canonical(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col, logical))
    rows = pc.binary_join_element_wise(*parts, "").cast(pa.binary())
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(r, digest_size=8).digest() for r in rows.to_pylist()])
    return pa.array(np.frombuffer(digests, dtype="<i8"), pa.int64())


def with_hash(table: pa.Table, columns: list[tuple[str, str]]) -> pa.Table:
    """``table`` with its :data:`HASH_COLUMN` appended."""
    return table.append_column(HASH_COLUMN, row_hashes(table, columns))
