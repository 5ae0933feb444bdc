"""Fixtures for the hubspot_finance library tests: raw-zone builders and SQLite/PostgreSQL databases."""

from __future__ import annotations

import uuid

import pytest

from finance_testdata import Db
from hubspot_finance.rawzone import RawZone


@pytest.fixture
def zone(tmp_path) -> RawZone:
    return RawZone(f"file://{tmp_path}/raw", chunk_rows=3)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    if request.param == "sqlite":
        yield Db("sqlite", str(tmp_path / "finance.db"))
        return
    dsn = request.getfixturevalue("pg_dsn")
    import psycopg

    schema = f"hf_test_{uuid.uuid4().hex[:10]}"
    yield Db("postgres", dsn, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
