"""Watermarks: read by the extractor, written by the loader in the same transaction as the data."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hubspot_finance.schema import Dialect, dialect_of


def _conn_of(db: Any) -> tuple[Any, bool]:
    if hasattr(db, "get_conn") and not hasattr(db, "cursor"):
        return db.get_conn(), True
    return db, False


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    dt = datetime.fromisoformat(str(value))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _has_state_table(conn: Any, d: Dialect, schema: str, prefix: str) -> bool:
    """Whether the pipeline has created its tables yet (a first run has no watermark).

    Asked of the catalog, so that any other failure (database down, no permission) is raised,
    never mistaken for "no watermark" (which would start a full extraction).
    """
    cur = conn.cursor()
    if d.name == "postgres":
        cur.execute("SELECT to_regclass(%s)", (f'"{schema}"."{prefix}sync_state"',))
        return cur.fetchone()[0] is not None
    cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (f"{prefix}sync_state",))
    return cur.fetchone() is not None


def read_watermarks(db: Any, object_types: list[str] | None = None, *, schema: str = "finance", table_prefix: str = "") -> dict[str, datetime | None]:
    """Committed watermark per object type (UTC); None where no committed load exists (or no tables yet).

    ``db`` is a DbApiHook (``PostgresHook``/``SqliteHook``) or a DB-API connection (psycopg 3 / sqlite3).
    """
    conn, owned = _conn_of(db)
    try:
        d = Dialect(dialect_of(conn), schema=schema, prefix=table_prefix)
        if not _has_state_table(conn, d, schema, table_prefix):
            conn.rollback()
            rows: dict[str, datetime | None] = {}
        else:
            cur = conn.cursor()
            cur.execute(f"SELECT object_type, watermark FROM {d.t('sync_state')}")
            rows = {r[0]: _parse(r[1]) for r in cur.fetchall()}
            conn.rollback()
        if object_types is None:
            return rows
        return {ot: rows.get(ot) for ot in object_types}
    finally:
        if owned:
            conn.close()


def read_watermark(db: Any, object_type: str, *, schema: str = "finance", table_prefix: str = "") -> datetime | None:
    return read_watermarks(db, [object_type], schema=schema, table_prefix=table_prefix)[object_type]
