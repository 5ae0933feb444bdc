"""Shared by the page's tests: run ids, the base URL, and what the filled finance database holds."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "reliability"))  # the harness that runs the DAG's task bodies in-process

import reliability_harness as h  # noqa: E402

BASE_URL = "http://airflow.test:8080"
# Run ids as Airflow makes them (colons and a plus sign: the links must escape them).
RUN_1 = "scheduled__2026-09-21T00:00:00+00:00"
RUN_2 = "manual__2026-09-21T17:13:20.000000+00:00"
HOSTILE_NAME = "<script>alert('deal')</script> & Co"  # HubSpot text is user input: the page must escape it
SIZES = {"seed": 17, "contacts": 60, "companies": 12, "deals": 40}


@dataclass(frozen=True)
class Synced:
    """Two runs in the finance tables: a full one and an incremental one after edits in HubSpot."""

    target: h.Target
    fixed_deal: str  # rejected by run 1 (malformed amount), fixed in HubSpot and loaded by run 2
    bad_amount_deal: str  # rejected by run 2: invalid_amount, still open
    bad_currency_deal: str  # rejected by run 2: unknown_currency, still open
    now: datetime = h.NOW2  # when run 2 read HubSpot; its watermark
    # run id -> object -> HubSpot's daily budget left that the object's extraction reported (its XCom manifest)
    budget_left: dict[str, dict[str, int | None]] = field(default_factory=dict)


def sync(run_id: str, now: datetime) -> dict[str, int | None]:
    """``h.sync`` (plan → extract → load), returning each object's daily budget left from its extract manifest."""
    planned = h.plan(run_id, now)
    manifests = h.extract(planned, run_id)
    h.load(planned, manifests, run_id)
    return {o: m["calls"]["daily_remaining"] for o, m in manifests.items() if m is not None}


def run_url(run_id: str, base: str = BASE_URL) -> str:
    return f"{base}/dags/hubspot_to_finance/runs/{quote(run_id, safe='')}"


def target_for(request, tmp_path_factory) -> h.Target:
    if request.param == "sqlite":
        return h.Target("sqlite", str(tmp_path_factory.mktemp("finance") / "finance.db"))
    dsn = request.getfixturevalue("pg_dsn")
    target = h.Target("postgres", dsn, f"page_{uuid.uuid4().hex[:10]}")

    def drop() -> None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{target.schema}" CASCADE')

    request.addfinalizer(drop)
    return target


def rejected_ids(target: h.Target, run_id: str) -> list[str]:
    mark = "%s" if target.kind == "postgres" else "?"
    return [r["hubspot_id"] for r in target.query(f"SELECT hubspot_id FROM {{s}}rejected_records WHERE run_id = {mark}", (run_id,))]
