"""PostgreSQL specifics of the load: TEMP staging tables filled by COPY (pyarrow CSV → ``COPY FROM STDIN``)."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from hubspot_finance.schema import Dialect, quote

ARROW_TYPES = {"text": pa.string(), "money": pa.string(), "json": pa.string(), "bool": pa.bool_(),
               "ts": pa.timestamp("ms", tz="UTC"), "date": pa.date32(), "int": pa.int64()}
DISTINCT = "IS DISTINCT FROM"
GREATEST = "GREATEST"
TRUE, FALSE = "TRUE", "FALSE"


def create_stage(cur: Any, d: Dialect, name: str, columns: list[tuple[str, str]]) -> None:
    cols = ", ".join(f"{quote(c)} {d.type(t)}" for c, t in columns)
    cur.execute(f"DROP TABLE IF EXISTS pg_temp.{quote(name)}")
    cur.execute(f"CREATE TEMP TABLE {quote(name)} ({cols}) ON COMMIT DROP")


def write_stage(cur: Any, d: Dialect, name: str, columns: list[tuple[str, str]], frame: pd.DataFrame) -> None:
    """Bulk-append ``frame`` (columns in order) to the staging table with one COPY."""
    if frame.empty:
        return
    arrays = []
    for col, logical in columns:
        s = frame[col]
        typ = ARROW_TYPES[logical]
        if logical == "ts":
            arrays.append(pa.array(s.astype("datetime64[ms, UTC]"), type=typ, from_pandas=True))
        else:
            arrays.append(pa.array(s.astype(object).where(s.notna(), None).tolist(), type=typ))
    table = pa.Table.from_arrays(arrays, names=[c for c, _ in columns])
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    cols = ", ".join(quote(c) for c, _ in columns)
    with cur.copy(f"COPY {quote(name)} ({cols}) FROM STDIN (FORMAT csv)") as cp:
        cp.write(buf.getvalue())


def stage_ref(name: str) -> str:
    return f"pg_temp.{quote(name)}"


def dedup_sql(stage: str, out: str, key: str) -> str:
    return (
        f"CREATE TEMP TABLE {quote(out)} ON COMMIT DROP AS SELECT DISTINCT ON ({quote(key)}) * FROM {quote(stage)} "
        f"ORDER BY {quote(key)}, updated_at DESC, _ord DESC"
    )


def assoc_merge_sql(stage: str, out: str, f: str, t: str) -> str:
    return (
        f"CREATE TEMP TABLE {quote(out)} ON COMMIT DROP AS SELECT a.{quote(f)}, a.{quote(t)}, bool_or(a.is_primary) AS is_primary, "
        "COALESCE(jsonb_agg(DISTINCT l.value ORDER BY l.value) FILTER (WHERE l.value IS NOT NULL), '[]'::jsonb) AS labels "
        f"FROM {quote(stage)} a LEFT JOIN LATERAL jsonb_array_elements_text(a.labels) AS l(value) ON TRUE "
        f"GROUP BY a.{quote(f)}, a.{quote(t)}"
    )


def to_param(value: Any, logical: str) -> Any:
    return value


def upsert_counts(cur: Any, sql_insert: str, params: tuple) -> tuple[int, int]:
    """Run the INSERT … ON CONFLICT … RETURNING (xmax = 0) and return (inserted, updated)."""
    cur.execute(
        f"WITH up AS ({sql_insert} RETURNING (xmax = 0) AS ins) "
        "SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins) FROM up",
        params,
    )
    ins, upd = cur.fetchone()
    return int(ins), int(upd)
