"""The finance tables, their versioned migrations, and the SQL dialect details (PostgreSQL, SQLite).

Tables (PostgreSQL schema configurable, default ``finance``; SQLite: plain names with an optional prefix):

- ``customers`` (key ``hubspot_contact_id``), ``companies`` (key ``hubspot_company_id``), ``contracts``
  (key ``hubspot_deal_id``): mapped columns, HubSpot ``created_at``/``updated_at``, ``is_deleted``,
  ``deleted_at``, ``merged_into_*``, ``properties`` (raw HubSpot strings as JSON), ``validation_warnings``
  (JSON list, v2), ``synced_at`` (when the sync last *changed* the row), ``sync_run_id``.
- ``contract_contacts``, ``contract_companies``, ``customer_companies``: current associations
  (``is_primary``, ``labels`` JSON list).
- ``contract_changes``: observed changes of amount/currency/stage_id/close_date between syncs.
- ``rejected_records``, ``sync_runs``, ``sync_state``, ``schema_migrations``. ``sync_runs`` also records
  HubSpot's daily budget left after each object's extraction and the account's portal id (v4).

Types: PostgreSQL uses TIMESTAMPTZ, DATE, NUMERIC (money), JSONB, BOOLEAN. SQLite stores money as exact
decimal TEXT (declared ``TEXT`` so no numeric affinity ever rounds it), times as ISO-8601 UTC text with
milliseconds (``2024-05-01T12:00:00.000Z``, which sorts and compares correctly as text), dates as
``YYYY-MM-DD``, booleans as 0/1 and JSON as TEXT.

Migrations are applied in order, each in the same transaction as its ``schema_migrations`` row, under
a lock (``pg_advisory_xact_lock`` / ``BEGIN IMMEDIATE``), so concurrent upgrades are safe and a failed
migration leaves the previous version intact.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")

TYPES = {
    "postgres": {"text": "TEXT", "bool": "BOOLEAN", "ts": "TIMESTAMPTZ", "date": "DATE", "money": "NUMERIC",
                 "json": "JSONB", "int": "BIGINT", "serial": "BIGSERIAL PRIMARY KEY"},
    "sqlite": {"text": "TEXT", "bool": "INTEGER", "ts": "TEXT", "date": "TEXT", "money": "TEXT",
               "json": "TEXT", "int": "INTEGER", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
}
# Extra mapped column types (mapping.EXTRA_TYPES) → logical types.
EXTRA_LOGICAL = {"text": "text", "number": "money", "date": "date", "datetime": "ts", "bool": "bool", "list": "json"}


def check_ident(name: str) -> str:
    if not isinstance(name, str) or not IDENT_RE.match(name):
        raise ValueError(f"invalid SQL identifier {name!r} (must match {IDENT_RE.pattern})")
    return name


def quote(name: str) -> str:
    return '"' + check_ident(name) + '"'


@dataclass(frozen=True)
class Dialect:
    name: str  # postgres | sqlite
    schema: str = "finance"
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.name not in TYPES:
            raise ValueError(f"unsupported dialect {self.name!r}")
        check_ident(self.schema)
        if self.prefix:
            check_ident(self.prefix)

    @property
    def param(self) -> str:
        return "%s" if self.name == "postgres" else "?"

    def t(self, table: str) -> str:
        """Quoted, qualified table name."""
        name = quote(self.prefix + table)
        return f"{quote(self.schema)}.{name}" if self.name == "postgres" else name

    def raw_table_name(self, table: str) -> str:
        return self.prefix + table

    def type(self, logical: str) -> str:
        return TYPES[self.name][logical]

    def lock_key(self) -> int:
        """A stable 63-bit advisory lock key per (schema, prefix)."""
        return zlib.crc32(f"hubspot_finance:{self.schema}:{self.prefix}".encode()) & 0x7FFFFFFF


# ------------------------------------------------------------------ table column contracts
# (column, logical type). Order is the table order; the transform produces the data columns.
ENTITY_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "customers": [
        ("hubspot_contact_id", "text"), ("email", "text"), ("first_name", "text"), ("last_name", "text"),
        ("phone", "text"), ("company_name", "text"), ("address", "text"), ("postal_code", "text"),
        ("city", "text"), ("country", "text"), ("lifecycle_stage", "text"), ("hubspot_owner_id", "text"),
        ("created_at", "ts"), ("updated_at", "ts"), ("is_deleted", "bool"), ("deleted_at", "ts"), ("deletion_kind", "text"),
        ("merged_into_contact_id", "text"), ("properties", "json"), ("validation_warnings", "json"),
    ],
    "companies": [
        ("hubspot_company_id", "text"), ("name", "text"), ("domain", "text"), ("organization_number", "text"),
        ("address", "text"), ("postal_code", "text"), ("city", "text"), ("country", "text"),
        ("created_at", "ts"), ("updated_at", "ts"), ("is_deleted", "bool"), ("deleted_at", "ts"), ("deletion_kind", "text"),
        ("merged_into_company_id", "text"), ("properties", "json"), ("validation_warnings", "json"),
    ],
    "contracts": [
        ("hubspot_deal_id", "text"), ("deal_name", "text"), ("amount", "money"), ("currency", "text"),
        ("amount_home_currency", "money"), ("pipeline_id", "text"), ("pipeline_label", "text"),
        ("stage_id", "text"), ("stage_label", "text"), ("is_closed", "bool"), ("is_won", "bool"),
        ("close_date", "date"), ("primary_company_id", "text"), ("hubspot_owner_id", "text"),
        ("created_at", "ts"), ("updated_at", "ts"), ("is_deleted", "bool"), ("deleted_at", "ts"), ("deletion_kind", "text"),
        ("merged_into_deal_id", "text"), ("properties", "json"), ("validation_warnings", "json"),
    ],
}
# Columns of entity tables that the loader maintains itself (not produced by the transform).
LOADER_COLUMNS = [("synced_at", "ts"), ("sync_run_id", "text")]
# Columns the transform does not set for contracts (filled from associations by the loader).
NOT_FROM_TRANSFORM = {"primary_company_id"}
# Fields whose every observed change becomes a ``contract_changes`` row (``is_deleted``: deleted, restored).
CHANGE_TRACKED = {"contracts": ("amount", "currency", "stage_id", "close_date", "is_deleted")}
# Why a row is deleted: archived in HubSpot (restorable), merged into another record, or permanently deleted.
DELETION_KINDS = ("archived", "merged", "permanent")


# ------------------------------------------------------------------ migrations
POSTGRES_ONLY = "postgres:"  # a statement with this prefix runs on PostgreSQL only (recorded as applied on both)
# Templates: {T:name} is a qualified table name, {text}/{ts}/... dialect types.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "initial finance tables",
        [
            """CREATE TABLE {T:customers} (
                hubspot_contact_id {text} PRIMARY KEY, email {text}, first_name {text}, last_name {text},
                phone {text}, company_name {text}, address {text}, postal_code {text}, city {text},
                country {text}, lifecycle_stage {text}, hubspot_owner_id {text}, created_at {ts},
                updated_at {ts} NOT NULL, is_deleted {bool} NOT NULL DEFAULT {false}, deleted_at {ts},
                merged_into_contact_id {text}, properties {json}, synced_at {ts}, sync_run_id {text})""",
            """CREATE TABLE {T:companies} (
                hubspot_company_id {text} PRIMARY KEY, name {text}, domain {text}, organization_number {text},
                address {text}, postal_code {text}, city {text}, country {text}, created_at {ts},
                updated_at {ts} NOT NULL, is_deleted {bool} NOT NULL DEFAULT {false}, deleted_at {ts},
                merged_into_company_id {text}, properties {json}, synced_at {ts}, sync_run_id {text})""",
            """CREATE TABLE {T:contracts} (
                hubspot_deal_id {text} PRIMARY KEY, deal_name {text}, amount {money}, currency {text},
                amount_home_currency {money}, pipeline_id {text}, pipeline_label {text}, stage_id {text},
                stage_label {text}, is_closed {bool}, is_won {bool}, close_date {date},
                primary_company_id {text}, hubspot_owner_id {text}, created_at {ts}, updated_at {ts} NOT NULL,
                is_deleted {bool} NOT NULL DEFAULT {false}, deleted_at {ts}, merged_into_deal_id {text},
                properties {json}, synced_at {ts}, sync_run_id {text})""",
            """CREATE TABLE {T:contract_contacts} (
                hubspot_deal_id {text} NOT NULL, hubspot_contact_id {text} NOT NULL, is_primary {bool} NOT NULL,
                labels {json}, synced_at {ts}, sync_run_id {text}, PRIMARY KEY (hubspot_deal_id, hubspot_contact_id))""",
            """CREATE TABLE {T:contract_companies} (
                hubspot_deal_id {text} NOT NULL, hubspot_company_id {text} NOT NULL, is_primary {bool} NOT NULL,
                labels {json}, synced_at {ts}, sync_run_id {text}, PRIMARY KEY (hubspot_deal_id, hubspot_company_id))""",
            """CREATE TABLE {T:customer_companies} (
                hubspot_contact_id {text} NOT NULL, hubspot_company_id {text} NOT NULL, is_primary {bool} NOT NULL,
                labels {json}, synced_at {ts}, sync_run_id {text}, PRIMARY KEY (hubspot_contact_id, hubspot_company_id))""",
            """CREATE TABLE {T:contract_changes} (
                id {serial}, hubspot_deal_id {text} NOT NULL, field {text} NOT NULL, old_value {text},
                new_value {text}, changed_at {ts}, sync_run_id {text} NOT NULL, recorded_at {ts} NOT NULL)""",
            """CREATE TABLE {T:rejected_records} (
                id {serial}, object_type {text} NOT NULL, hubspot_id {text}, run_id {text} NOT NULL,
                reasons {json} NOT NULL, raw_record {json}, rejected_at {ts} NOT NULL)""",
            """CREATE TABLE {T:sync_runs} (
                run_id {text} NOT NULL, object_type {text} NOT NULL, window_start {ts}, window_end {ts},
                mode {text}, extracted {int} NOT NULL DEFAULT 0, loaded {int} NOT NULL DEFAULT 0,
                inserted {int} NOT NULL DEFAULT 0, updated {int} NOT NULL DEFAULT 0,
                unchanged {int} NOT NULL DEFAULT 0, stale {int} NOT NULL DEFAULT 0,
                rejected {int} NOT NULL DEFAULT 0, deleted {int} NOT NULL DEFAULT 0,
                api_calls {int}, started_at {ts}, finished_at {ts}, status {text} NOT NULL, error {text},
                PRIMARY KEY (run_id, object_type))""",
            """CREATE TABLE {T:sync_state} (
                object_type {text} PRIMARY KEY, watermark {ts}, updated_at {ts} NOT NULL, run_id {text})""",
        ],
    ),
    (
        2,
        "validation warnings per row, merge counts, indexes for changes and rejects",
        [
            "ALTER TABLE {T:customers} ADD COLUMN validation_warnings {json}",
            "ALTER TABLE {T:companies} ADD COLUMN validation_warnings {json}",
            "ALTER TABLE {T:contracts} ADD COLUMN validation_warnings {json}",
            "ALTER TABLE {T:sync_runs} ADD COLUMN merged {int} NOT NULL DEFAULT 0",
            "ALTER TABLE {T:sync_runs} ADD COLUMN warnings {int} NOT NULL DEFAULT 0",
            "CREATE INDEX {I:contract_changes_deal} ON {T:contract_changes} (hubspot_deal_id, changed_at)",
            "CREATE INDEX {I:rejected_records_run} ON {T:rejected_records} (run_id, object_type)",
        ],
    ),
    (
        3,
        "deletion kinds, versioned link sets, the retry list of rejected records, canonical decimals",
        [
            *[f"ALTER TABLE {{T:{t}}} ADD COLUMN deletion_kind {{text}}" for t in ("customers", "companies", "contracts")],
            *[f"UPDATE {{T:{t}}} SET deletion_kind = CASE WHEN {m} IS NOT NULL THEN 'merged' ELSE 'archived' END "
              "WHERE is_deleted = {true}" for t, m in (("customers", "merged_into_contact_id"),
                                                      ("companies", "merged_into_company_id"),
                                                      ("contracts", "merged_into_deal_id"))],
            """CREATE TABLE {T:link_versions} (
                association {text} NOT NULL, from_id {text} NOT NULL, read_at {ts} NOT NULL, run_id {text},
                PRIMARY KEY (association, from_id))""",
            """CREATE TABLE {T:record_retries} (
                object_type {text} NOT NULL, hubspot_id {text} NOT NULL, attempts {int} NOT NULL,
                first_rejected_at {ts} NOT NULL, last_run_id {text}, PRIMARY KEY (object_type, hubspot_id))""",
            "ALTER TABLE {T:rejected_records} ADD COLUMN attempt {int} NOT NULL DEFAULT 1",
            "ALTER TABLE {T:sync_runs} ADD COLUMN purged {int} NOT NULL DEFAULT 0",
            "UPDATE {T:contracts} SET amount = {canonical:amount}, amount_home_currency = {canonical:amount_home_currency}",
            # one vocabulary for run modes, the windows' (windows.Mode)
            "UPDATE {T:sync_runs} SET mode = CASE mode WHEN 'scheduled' THEN 'incremental' WHEN 'manual_range' THEN 'range' "
            "ELSE mode END",
        ],
    ),
    (
        4,
        "HubSpot's daily budget left and the portal id per run",
        [
            "ALTER TABLE {T:sync_runs} ADD COLUMN daily_budget_left {int}",
            "ALTER TABLE {T:sync_runs} ADD COLUMN portal_id {int}",
        ],
    ),
    (
        5,
        "free space on each page of the entity tables, so a nightly update stays on its page (HOT)",
        # fillfactor 80: a run that changes ~20 % of the rows finds room for the new versions on the same page,
        # so no index entry is written and no page is dirtied twice. Pages written from now on; SQLite has none.
        [f"{POSTGRES_ONLY}ALTER TABLE {{T:{t}}} SET (fillfactor = 80)" for t in ("customers", "companies", "contracts")],
    ),
    (
        6,
        "a content hash per entity row, so a load ships full rows only for new and changed ids",
        # row_hash.row_hashes of the row as last loaded; NULL (rows from before, or changed by a merge or a
        # permanent delete since) always counts as possibly changed
        [f"ALTER TABLE {{T:{t}}} ADD COLUMN content_hash {{int}}" for t in ("customers", "companies", "contracts")],
    ),
]
LATEST_VERSION = MIGRATIONS[-1][0]

_PLACEHOLDER = re.compile(r"\{(T|I|canonical):([A-Za-z_][A-Za-z0-9_]*)\}|\{([a-z]+)\}")


def canonical_decimal_sql(d: Dialect, column: str) -> str:
    """SQL giving the canonical text of a stored decimal (see ``validation.format_decimal``)."""
    c = quote(column)
    if d.name == "postgres":
        return f"trim_scale({c})"
    return f"CASE WHEN {c} LIKE '%.%' THEN rtrim(rtrim({c}, '0'), '.') ELSE {c} END"


def render(sql: str, d: Dialect) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "T":
            return d.t(m.group(2))
        if m.group(1) == "I":
            return quote(d.prefix + m.group(2))
        if m.group(1) == "canonical":
            return canonical_decimal_sql(d, m.group(2))
        word = m.group(3)
        if word in ("false", "true"):
            return word.upper() if d.name == "postgres" else str(int(word == "true"))
        return d.type(word)

    return _PLACEHOLDER.sub(sub, sql)


def dialect_of(conn: Any) -> str:
    mod = type(conn).__module__
    if mod.startswith("sqlite3"):
        return "sqlite"
    if mod.startswith("psycopg"):
        return "postgres"
    raise TypeError(f"unsupported DB-API connection {type(conn)!r} (PostgreSQL via psycopg 3, or sqlite3)")


def begin(conn: Any, d: Dialect) -> None:
    """Start the one transaction and take the sync's lock (serializes loads and migrations)."""
    cur = conn.cursor()
    if d.name == "sqlite":
        conn.isolation_level = None  # explicit transaction control
        cur.execute("BEGIN IMMEDIATE")
    else:
        conn.autocommit = False
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (d.lock_key(),))


def applied_versions(conn: Any, d: Dialect) -> list[int]:
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT version FROM {d.t('schema_migrations')} ORDER BY version")
    except Exception:
        conn.rollback()
        return []
    out = [int(r[0]) for r in cur.fetchall()]
    conn.rollback()  # end the read transaction: never leave the connection idle in transaction
    return out


def migrate(conn: Any, d: Dialect, target: int | None = None) -> list[int]:
    """Apply missing migrations up to ``target`` (default: latest) in one locked transaction.

    Returns the versions applied now. Idempotent: a second call applies nothing.
    """
    target = LATEST_VERSION if target is None else target
    begin(conn, d)
    cur = conn.cursor()
    try:
        if d.name == "postgres":
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(d.schema)}")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {d.t('schema_migrations')} (version {d.type('int')} PRIMARY KEY, "
            f"description {d.type('text')} NOT NULL, applied_at {d.type('ts')} NOT NULL)"
        )
        cur.execute(f"SELECT version FROM {d.t('schema_migrations')}")
        done = {int(r[0]) for r in cur.fetchall()}
        applied = []
        for version, description, statements in MIGRATIONS:
            if version in done or version > target:
                continue
            for stmt in statements:
                if stmt.startswith(POSTGRES_ONLY):
                    if d.name != "postgres":
                        continue
                    stmt = stmt[len(POSTGRES_ONLY):]
                cur.execute(render(stmt, d))
            now = datetime.now(timezone.utc)
            cur.execute(
                f"INSERT INTO {d.t('schema_migrations')} (version, description, applied_at) VALUES ({d.param}, {d.param}, {d.param})",
                (version, description, now if d.name == "postgres" else ts_text(now)),
            )
            applied.append(version)
        conn.commit()
        return applied
    except BaseException:
        conn.rollback()
        raise


def ts_text(dt: datetime) -> str:
    """SQLite timestamp text: ISO-8601 UTC with milliseconds and ``Z``."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def existing_columns(conn: Any, d: Dialect, table: str) -> set[str]:
    cur = conn.cursor()
    if d.name == "sqlite":
        cur.execute(f"PRAGMA table_info({d.t(table)})")
        return {r[1] for r in cur.fetchall()}
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (d.schema, d.raw_table_name(table)),
    )
    return {r[0] for r in cur.fetchall()}


def ensure_extra_columns(conn: Any, d: Dialect, table: str, extras: list[tuple[str, str]]) -> list[str]:
    """Add missing extra mapped columns (name, logical type); runs inside the caller's transaction."""
    if not extras:
        return []
    have = existing_columns(conn, d, table)
    added = []
    cur = conn.cursor()
    for name, logical in extras:
        if name not in have:
            cur.execute(f"ALTER TABLE {d.t(table)} ADD COLUMN {quote(name)} {d.type(logical)}")
            added.append(name)
    return added
