"""Arrow column helpers both dialects' writers share: staged columns as the text the databases store."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def money_text(arr: pa.Array) -> pa.Array:
    """Exact decimals as canonical text (``validation.format_decimal``): no trailing fraction zeros, no bare point.

    Every decimal with a scale renders with a point, so trimming ``0`` then ``.`` from the right is exact."""
    if not pa.types.is_decimal(arr.type):
        return arr
    return pc.utf8_rtrim(pc.utf8_rtrim(pc.cast(arr, pa.string()), characters="0"), characters=".")


def column(table: pa.Table, name: str, typ: pa.DataType, constants: dict[str, Any]) -> pa.Array:
    """``table``'s column ``name``, or ``constants[name]`` repeated (the loader's ``synced_at``/``sync_run_id``)."""
    if name in constants:
        return pc.fill_null(pa.nulls(table.num_rows, typ), pa.scalar(constants[name], typ))
    arr = table.column(name)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
