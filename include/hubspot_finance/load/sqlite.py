"""SQLite specifics of the load: TEMP staging tables filled by ``executemany``; text timestamps and money.

SQLite stores money as exact decimal TEXT, times as ISO-8601 UTC text (``…T…​.mmmZ``) and booleans as 0/1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import pandas as pd

from hubspot_finance.schema import Dialect, quote, ts_text

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


@contextmanager
def open_writer(cur: Any, table_sql: str, columns: list[tuple[str, str]]) -> Iterator[_InsertWriter]:
    """Append many frames to ``table_sql`` (already quoted) with ``executemany``."""
    yield _InsertWriter(cur, table_sql, columns)


def stage_ref(name: str) -> str:
    return f"temp.{quote(name)}"


def dedup_sql(stage: str, out: str, key: str) -> str:
    return (
        f"CREATE TEMP TABLE {quote(out)} AS SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {quote(key)} "
        f"ORDER BY updated_at DESC, _ord DESC) AS _rn FROM temp.{quote(stage)}) WHERE _rn = 1"
    )


def assoc_merge_sql(stage: str, out: str, f: str, t: str) -> str:
    return (
        f"CREATE TEMP TABLE {quote(out)} AS SELECT a.{quote(f)} AS {quote(f)}, a.{quote(t)} AS {quote(t)}, "
        "MAX(a.is_primary) AS is_primary, "
        "json_group_array(DISTINCT l.value) FILTER (WHERE l.value IS NOT NULL) AS labels "
        f"FROM (SELECT * FROM temp.{quote(stage)} ORDER BY 1, 2) a LEFT JOIN json_each(a.labels) l "
        f"GROUP BY a.{quote(f)}, a.{quote(t)}"
    )


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


def analyze(cur: Any, table_sql: str) -> None:
    """SQLite plans temp-table joins well without statistics."""


def any_true(expr: str) -> str:
    """Aggregate: true when any row's boolean is."""
    return f"MAX({expr})"


def any_value(expr: str) -> str:
    """Aggregate: one of the rows' values (they are alike)."""
    return f"MAX({expr})"
