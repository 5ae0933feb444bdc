"""What the extraction reads back from the finance tables: watermarks (written by the loader in the same
transaction as the data), and the ids it repairs from (live rows, live or archived rows, the retry list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hubspot_finance.schema import Dialect, dialect_of, quote


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


def _has_table(conn: Any, d: Dialect, table: str) -> bool:
    """Whether the pipeline has created ``table`` yet (a first run has no watermark, no retry list).

    Asked of the catalog, so that any other failure (database down, no permission) is raised,
    never mistaken for "no watermark" (which would start a full extraction).
    """
    cur = conn.cursor()
    if d.name == "postgres":
        cur.execute("SELECT to_regclass(%s)", (f'"{d.schema}"."{d.raw_table_name(table)}"',))
        return cur.fetchone()[0] is not None
    cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (d.raw_table_name(table),))
    return cur.fetchone() is not None


def read_watermarks(db: Any, object_types: list[str] | None = None, *, schema: str = "finance", table_prefix: str = "") -> dict[str, datetime | None]:
    """Committed watermark per object type (UTC); None where no committed load exists (or no tables yet).

    ``db`` is a DbApiHook (``PostgresHook``/``SqliteHook``) or a DB-API connection (psycopg 3 / sqlite3).
    """
    conn, owned = _conn_of(db)
    try:
        d = Dialect(dialect_of(conn), schema=schema, prefix=table_prefix)
        if not _has_table(conn, d, "sync_state"):
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


@dataclass(frozen=True)
class FinanceIds:
    """What the finance tables hold for one object, for the extraction's repairs (all ids as text)."""

    live: tuple[str, ...] = ()  # not deleted: their associations are reconciled
    known: tuple[str, ...] = ()  # live or archived (not merged, not permanently deleted): the sweep checks them
    retry: tuple[str, ...] = ()  # rejected records to read again


def read_finance_ids(conn: Any, decl: Any, *, schema: str, live: bool, known: bool, retry_limit: int) -> FinanceIds:
    """The ids the extraction repairs from; empty before the first load (no tables yet)."""
    d = Dialect(dialect_of(conn), schema=schema)
    try:
        if not _has_table(conn, d, "record_retries"):
            return FinanceIds()
        cur = conn.cursor()

        def ids(sql: str, params: tuple = ()) -> tuple[str, ...]:
            cur.execute(sql, params)
            return tuple(str(r[0]) for r in cur.fetchall())

        key, table = quote(decl.key_column), d.t(decl.table)
        return FinanceIds(
            live=ids(f"SELECT {key} FROM {table} WHERE NOT is_deleted") if live else (),
            known=ids(f"SELECT {key} FROM {table} WHERE deletion_kind IS NULL OR deletion_kind = 'archived'") if known else (),
            retry=ids(f"SELECT hubspot_id FROM {d.t('record_retries')} WHERE object_type = {d.param} "
                      f"ORDER BY first_rejected_at LIMIT {int(retry_limit)}", (decl.name,)),
        )
    finally:
        conn.rollback()
