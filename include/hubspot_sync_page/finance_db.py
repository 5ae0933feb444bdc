"""A read-only connection to ``finance_db`` for one request, opened the way the pipeline opens it.

The page runs inside Airflow's API server, so the connection comes from Airflow (its metadata
database, environment or secrets backend) through ``BaseHook.get_connection(...).get_hook()``.
It is opened read-only on both dialects — SQLite with ``mode=ro`` (so a missing file is not
created), PostgreSQL with ``READ ONLY`` transactions — so nothing on the page can write, and
it is closed at the end of the request.

Failures become typed errors whose messages never contain the connection's password.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, unquote

from hubspot_finance.config import SyncConfig

STATEMENT_TIMEOUT = "15s"  # a page view must never hold an API server worker for long


class PageDataError(Exception):
    """The page cannot show sync data; ``str(err)`` is safe to show (no password)."""


class NoSyncYet(PageDataError):
    """Nothing to show yet: no finance_db connection, no database file, or no tables or rows."""


class FinanceDbUnavailable(PageDataError):
    """finance_db is defined but could not be read (server down, wrong credentials, permissions)."""


MIN_SECRET_LENGTH = 5  # as Airflow's secrets masker: shorter ones would blank ordinary words


def mask(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by ``***`` (also in its URL-encoded form)."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return text
    for form in {secret, quote(secret, safe=""), quote(secret)}:
        text = text.replace(form, "***")
    return text


def _describe(conn: Any) -> str:
    where = conn.host or "?"
    if conn.port:
        where += f":{conn.port}"
    if conn.schema:
        where += f"/{conn.schema}"
    return where


def _get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise NoSyncYet(f"the Airflow connection '{conn_id}' is not defined (Admin > Connections)") from None


def _sqlite_path(hook: Any) -> str | None:
    """The database file of a SQLite hook (``None`` for an in-memory or unreadable URI)."""
    uri = unquote(hook.get_uri())
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return path or None


def _open_sqlite(hook: Any, conn_id: str) -> Any:
    import sqlite3

    path = _sqlite_path(hook)
    if not path or path == ":memory:":
        raise FinanceDbUnavailable(f"connection '{conn_id}' names no SQLite database file")
    if not Path(path).is_file():
        raise NoSyncYet(f"the finance database {path} does not exist yet (connection '{conn_id}')")
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    return conn


def _open_other(hook: Any) -> Any:
    conn = hook.get_conn()
    if type(conn).__module__.startswith("psycopg"):
        if hasattr(conn, "read_only"):
            conn.read_only = True  # psycopg 3: every transaction BEGINs READ ONLY
        else:
            conn.set_session(readonly=True)  # psycopg2
        conn.cursor().execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
    return conn


@contextmanager
def open_finance_db(cfg: SyncConfig) -> Iterator[Any]:
    """A read-only DB-API connection to ``cfg.finance_conn_id``, rolled back and closed afterwards.

    Raises :class:`NoSyncYet` when there is nothing to read and :class:`FinanceDbUnavailable`
    when the database cannot be reached; both messages name the connection, never its password.
    """
    airflow_conn = _get_connection(cfg.finance_conn_id)
    password = airflow_conn.password
    try:
        hook = airflow_conn.get_hook()
        if getattr(hook, "conn_type", None) == "sqlite" or airflow_conn.conn_type == "sqlite":
            conn = _open_sqlite(hook, cfg.finance_conn_id)
        else:
            conn = _open_other(hook)
    except PageDataError:
        raise
    except Exception as err:
        detail = mask(" ".join(str(err).split()), password)
        raise FinanceDbUnavailable(
            f"cannot read the finance database (connection '{cfg.finance_conn_id}', host "
            f"{mask(_describe(airflow_conn), password)}): {type(err).__name__}: {detail}"
        ) from None
    try:
        yield conn
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()


def finance_password(cfg: SyncConfig) -> str | None:
    """finance_db's password, only so that it can be masked wherever text leaves the page."""
    try:
        return _get_connection(cfg.finance_conn_id).password
    except Exception:
        return None


def safe_message(err: BaseException, cfg: SyncConfig) -> str:
    """A one-line description of a query error for the page, with finance_db's password masked."""
    return mask(f"{type(err).__name__}: {' '.join(str(err).split())}", finance_password(cfg))
