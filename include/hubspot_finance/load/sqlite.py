"""SQLite specifics of the load: TEMP staging tables filled by ``executemany``; text timestamps and money.

SQLite stores money as exact decimal TEXT, times as ISO-8601 UTC text (``…T…​.mmmZ``) and booleans as 0/1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hubspot_finance.load.arrow_cols import column, money_text
from hubspot_finance.schema import Dialect, quote, ts_text

ARROW_TYPES = {"text": pa.string(), "money": pa.string(), "json": pa.string(), "bool": pa.bool_(),
               "ts": pa.timestamp("ms", tz="UTC"), "date": pa.date32(), "int": pa.int64()}

DISTINCT = "IS NOT"
GREATEST = "MAX"
TRUE, FALSE = "1", "0"


def create_stage(cur: Any, d: Dialect, name: str, columns: list[tuple[str, str]]) -> None:
    cols = ", ".join(f"{quote(c)} {d.type(t)}" for c, t in columns)
    cur.execute(f"DROP TABLE IF EXISTS temp.{quote(name)}")
    cur.execute(f"CREATE TEMP TABLE {quote(name)} ({cols})")


def _col_values(s: pd.Series, logical: str) -> list[Any]:
    if logical == "ts":
        s = s.astype("datetime64[ms, UTC]")
        txt = s.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
        return txt.astype(object).where(s.notna(), None).tolist()
    vals = s.astype(object).where(s.notna(), None).tolist()
    if logical == "bool":
        return [None if x is None else int(bool(x)) for x in vals]
    if logical == "date":
        return [None if x is None else (x.isoformat() if isinstance(x, date) else str(x)) for x in vals]
    return vals


def _arrow_values(arr: pa.Array, logical: str) -> list[Any]:
    """A staged Arrow column as SQLite values: ISO-8601 UTC text with ms and Z, decimal text, 0/1, date text."""
    if logical == "ts":
        arr = pc.strftime(arr, "%Y-%m-%dT%H:%M:%SZ")  # %S of a millisecond timestamp carries ".mmm"
    elif logical == "money":
        arr = money_text(arr)
    elif logical == "bool":
        arr = pc.cast(arr, pa.int64())
    elif logical == "date":
        arr = pc.cast(arr, pa.string())
    return arr.to_pylist()


def write_stage(cur: Any, d: Dialect, name: str, columns: list[tuple[str, str]], frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    cols = [_col_values(frame[c], t) for c, t in columns]
    names = ", ".join(quote(c) for c, _ in columns)
    marks = ", ".join("?" for _ in columns)
    cur.executemany(f"INSERT INTO temp.{quote(name)} ({names}) VALUES ({marks})", list(zip(*cols)))


class _InsertWriter:
    def __init__(self, cur: Any, table_sql: str, columns: list[tuple[str, str]]):
        self.cur, self.columns, self.rows = cur, columns, 0
        names = ", ".join(quote(c) for c, _ in columns)
        self.sql = f"INSERT INTO {table_sql} ({names}) VALUES ({', '.join('?' for _ in columns)})"

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.cur.executemany(self.sql, zip(*[_col_values(frame[c], t) for c, t in self.columns]))
            self.rows += len(frame)

    def write_arrow(self, table: pa.Table, constants: dict[str, Any]) -> None:
        if table.num_rows:
            consts = {k: to_param(v, "ts" if k == "synced_at" else "text") for k, v in constants.items()}
            cols = [_arrow_values(column(table, c, ARROW_TYPES[t], {}), t) if c not in consts else [consts[c]] * table.num_rows
                    for c, t in self.columns]
            self.cur.executemany(self.sql, zip(*cols))
            self.rows += table.num_rows


@contextmanager
def open_writer(cur: Any, table_sql: str, columns: list[tuple[str, str]]) -> Iterator[_InsertWriter]:
    """Append many frames to ``table_sql`` (already quoted) with ``executemany``."""
    yield _InsertWriter(cur, table_sql, columns)


def stage_ref(name: str) -> str:
    return f"temp.{quote(name)}"


def assoc_merge_sql(stage: str, out: str, f: str, t: str) -> str:
    return (
        f"CREATE TEMP TABLE {quote(out)} AS SELECT a.{quote(f)} AS {quote(f)}, a.{quote(t)} AS {quote(t)}, "
        "MAX(a.is_primary) AS is_primary, "
        "json_group_array(DISTINCT l.value) FILTER (WHERE l.value IS NOT NULL) AS labels "
        f"FROM (SELECT * FROM temp.{quote(stage)} ORDER BY 1, 2) a LEFT JOIN json_each(a.labels) l "
        f"GROUP BY a.{quote(f)}, a.{quote(t)}"
    )


def session_setup(conn: Any) -> None:
    """Nothing to set up: SQLite keeps temp tables in its page cache."""


def to_param(value: Any, logical: str) -> Any:
    if value is None:
        return None
    if logical == "ts" and isinstance(value, datetime):
        return ts_text(value)
    if logical == "bool":
        return int(bool(value))
    return value


def text_of(expr: str, logical: str) -> str:
    """``expr`` as the canonical text both dialects write into ``contract_changes``."""
    if logical == "bool":
        return f"CASE {expr} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END"
    return f"CAST({expr} AS TEXT)"


def bool_or(left: str, right: str) -> str:
    return f"MAX({left}, {right})"


def analyze(cur: Any, table_sql: str, columns: list[str] | None = None) -> None:
    """SQLite plans temp-table joins well without statistics."""


def any_true(expr: str) -> str:
    """Aggregate: true when any row's boolean is."""
    return f"MAX({expr})"


def any_value(expr: str) -> str:
    """Aggregate: one of the rows' values (they are alike)."""
    return f"MAX({expr})"
