"""PostgreSQL specifics of the load: TEMP staging tables filled by COPY (pyarrow CSV → ``COPY FROM STDIN``).

:func:`open_writer` keeps ONE ``COPY … FROM STDIN (FORMAT csv)`` open for a whole dataset: each chunk's rows
become CSV bytes (pyarrow, no per-row Python) and are handed to psycopg's queued writer, which sends them
from a worker thread while the next chunk is transformed (the server parses in parallel).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from hubspot_finance.load.arrow_cols import column, money_text
from hubspot_finance.schema import Dialect, quote

# Memory of the COPY stream: CSV is made per slice of this many rows (~7 MB of contacts), and at most
# QUEUED_BUFFERS pieces of psycopg's 128 kB (16 MB) wait for the sending thread — its default queue holds
# 1024 (128 MB) and, while the server is the slower side, fills up.
CSV_SLICE_ROWS = 10_000
QUEUED_BUFFERS = 128

ARROW_TYPES = {"text": pa.string(), "money": pa.string(), "json": pa.string(), "bool": pa.bool_(),
               "ts": pa.timestamp("ms", tz="UTC"), "date": pa.date32(), "int": pa.int64()}
DISTINCT = "IS DISTINCT FROM"
GREATEST = "GREATEST"
TRUE, FALSE = "TRUE", "FALSE"


log = logging.getLogger(__name__)


def create_stage(cur: Any, d: Dialect, name: str, columns: list[tuple[str, str]]) -> None:
    cols = ", ".join(f"{quote(c)} {d.type(t)}" for c, t in columns)
    cur.execute(f"DROP TABLE IF EXISTS pg_temp.{quote(name)}")
    cur.execute(f"CREATE TEMP TABLE {quote(name)} ({cols}) ON COMMIT DROP")


def _arrow(s: pd.Series, logical: str) -> pa.Array:
    typ = ARROW_TYPES[logical]
    if logical == "ts":
        return _ts_text(pa.array(s.astype("datetime64[ms, UTC]"), type=typ, from_pandas=True))
    if s.dtype == object:
        return pa.array(s.to_numpy(dtype=object), type=typ, from_pandas=True)
    return pa.array(s, type=typ, from_pandas=True)


# JSON's escape for NUL, when not itself escaped (an even number of backslashes before it).
_JSON_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def strip_nul(data: bytes) -> bytes:
    """PostgreSQL text and jsonb cannot hold NUL (HubSpot's JSON can): drop it, and say so.

    Checked on the whole CSV buffer with a byte search, so clean data costs almost nothing.
    """
    raw = data.count(b"\x00")
    escaped = len(_JSON_NUL.findall(data)) if b"\\u0000" in data else 0
    if not raw and not escaped:
        return data
    log.warning(
        "removed %d NUL characters from values: PostgreSQL cannot store them (the raw zone keeps them)", raw + escaped
    )
    if raw:
        data = data.replace(b"\x00", b"")
    if escaped:
        data = _JSON_NUL.sub(rb"\1", data)
    return data


def _csv(table: pa.Table) -> bytes:
    """PostgreSQL CSV (NULL unquoted-empty, empty string ``""``), NULs stripped."""
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return strip_nul(buf.getvalue())


def _ts_text(arr: pa.Array) -> pa.Array:
    """ISO text with a Z, rendered by a tz-naive cast (≈30× faster than the CSV writer's zoned formatting)."""
    return pc.binary_join_element_wise(pc.cast(arr.cast(pa.timestamp("ms")), pa.string()), "Z", "")


def csv_bytes(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> bytes:
    """``frame``'s ``columns`` as PostgreSQL CSV (small side tables: merges, purges, links)."""
    return _csv(pa.Table.from_arrays([_arrow(frame[c], t) for c, t in columns], names=[c for c, _ in columns]))


def arrow_csv(table: pa.Table, columns: list[tuple[str, str]], constants: dict[str, Any]) -> bytes:
    """Staged Arrow columns (plus constant ones) as PostgreSQL CSV: times as UTC text, money as exact decimal text."""
    arrays = []
    for name, logical in columns:
        arr = column(table, name, ARROW_TYPES[logical], constants)
        if logical == "ts":
            arr = _ts_text(arr)
        elif logical == "money":
            arr = money_text(arr)
        arrays.append(arr)
    return _csv(pa.Table.from_arrays(arrays, names=[c for c, _ in columns]))


def write_stage(cur: Any, d: Dialect, name: str, columns: list[tuple[str, str]], frame: pd.DataFrame) -> None:
    """Bulk-append ``frame`` (columns in order) to the staging table with one COPY."""
    if frame.empty:
        return
    cols = ", ".join(quote(c) for c, _ in columns)
    with cur.copy(f"COPY {quote(name)} ({cols}) FROM STDIN (FORMAT csv)") as cp:
        cp.write(csv_bytes(frame, columns))


class _CopyWriter:
    def __init__(self, cp: Any, columns: list[tuple[str, str]]):
        self.cp, self.columns, self.rows = cp, columns, 0

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.cp.write(csv_bytes(frame, self.columns))
            self.rows += len(frame)

    def write_arrow(self, table: pa.Table, constants: dict[str, Any]) -> None:
        for at in range(0, table.num_rows, CSV_SLICE_ROWS):
            part = table.slice(at, CSV_SLICE_ROWS)
            self.cp.write(memoryview(arrow_csv(part, self.columns, constants)))  # sliced for sending without copies
            self.rows += part.num_rows


def _bounded_writer(cur: Any) -> Any:
    """psycopg's queued writer (sends from a worker thread) with its queue bounded by :data:`QUEUED_BUFFERS`."""
    from queue import Queue

    from psycopg.copy import QueuedLibpqWriter

    writer = QueuedLibpqWriter(cur)
    writer._queue = Queue(maxsize=QUEUED_BUFFERS)  # psycopg (pinned) reads it only in write/worker/finish
    return writer


@contextmanager
def open_writer(cur: Any, table_sql: str, columns: list[tuple[str, str]]) -> Iterator[_CopyWriter]:
    """One COPY into ``table_sql`` (already quoted) for many frames; sent from a worker thread."""
    cols = ", ".join(quote(c) for c, _ in columns)
    with cur.copy(f"COPY {table_sql} ({cols}) FROM STDIN (FORMAT csv)", writer=_bounded_writer(cur)) as cp:
        yield _CopyWriter(cp, columns)


def stage_ref(name: str) -> str:
    return f"pg_temp.{quote(name)}"


def assoc_merge_sql(stage: str, out: str, f: str, t: str) -> str:
    return (
        f"CREATE TEMP TABLE {quote(out)} ON COMMIT DROP AS SELECT a.{quote(f)}, a.{quote(t)}, bool_or(a.is_primary) AS is_primary, "
        "COALESCE(jsonb_agg(DISTINCT l.value ORDER BY l.value) FILTER (WHERE l.value IS NOT NULL), '[]'::jsonb) AS labels "
        f"FROM {quote(stage)} a LEFT JOIN LATERAL jsonb_array_elements_text(a.labels) AS l(value) ON TRUE "
        f"GROUP BY a.{quote(f)}, a.{quote(t)}"
    )


def to_param(value: Any, logical: str) -> Any:
    if isinstance(value, str) and ("\x00" in value or "\\u0000" in value):
        return strip_nul(value.encode()).decode()
    return value


def text_of(expr: str, logical: str) -> str:
    """``expr`` as the canonical text both dialects write into ``contract_changes``."""
    if logical == "bool":
        return f"CASE WHEN {expr} THEN 'true' WHEN NOT {expr} THEN 'false' END"
    if logical == "money":
        return f"CAST(trim_scale({expr}) AS TEXT)"
    return f"CAST({expr} AS TEXT)"


def bool_or(left: str, right: str) -> str:
    return f"({left} OR {right})"


def analyze(cur: Any, table_sql: str, columns: list[str] | None = None) -> None:
    """Temp tables are never auto-analyzed: give the planner their row counts before joining them.

    Only the join ``columns`` when given: statistics of wide JSON columns cost seconds and plan nothing."""
    cur.execute(f"ANALYZE {table_sql}" + (f" ({', '.join(quote(c) for c in columns)})" if columns else ""))


def session_setup(conn: Any) -> None:
    """Room for the load's TEMP staging tables in the backend's memory (PostgreSQL's default is 8 MB, so a
    staging table of a million rows would be written out and read back). Only possible before the session's
    first temp table; a reused connection keeps what it has."""
    try:
        conn.execute("SET temp_buffers = '256MB'")
        conn.commit()  # a session setting: kept after this (empty) transaction
    except Exception:  # pragma: no cover - temp tables already used in this session
        conn.rollback()


def any_true(expr: str) -> str:
    """Aggregate: true when any row's boolean is."""
    return f"bool_or({expr})"


def any_value(expr: str) -> str:
    """Aggregate: one of the rows' values (they are alike)."""
    return f"(array_agg({expr}))[1]"
