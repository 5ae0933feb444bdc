"""A whole sync through the real task bodies (hubspot_finance.pipeline) against the sandbox, and exact
snapshots of the finance tables, for the fault-injection tests. Also runnable as a child process
(``python reliability_harness.py '<json>'``) so tests can ``kill -9`` it at a chosen point."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

OBJECT_TYPES = ("contacts", "deals", "companies")
T0 = 1_790_000_000_000  # the sandbox clock, frozen (2026-09-21)
NOW1 = datetime.fromtimestamp(T0 / 1000, timezone.utc) + timedelta(hours=1)
NOW2 = NOW1 + timedelta(hours=2)
DATA_TABLES = ["customers", "companies", "contracts", "contract_contacts", "contract_companies",
               "customer_companies", "contract_changes", "rejected_records", "sync_state"]
VOLATILE = {"synced_at", "sync_run_id", "run_id", "rejected_at", "recorded_at", "updated_at_state"}


def fast_hooks() -> None:
    """Task bodies build their hooks with production back-off (seconds); tests use milliseconds."""
    from hubspot_finance import pipeline
    from hubspot_provider.hooks.hubspot import HubSpotHook

    def hubspot_hook(cfg, *, budget_fraction=1.0, search_fraction=None):
        return HubSpotHook(cfg.hubspot_conn_id, budget_fraction=budget_fraction, search_fraction=search_fraction,
                           backoff_base=0.01, backoff_max=0.05)

    pipeline.hubspot_hook = hubspot_hook


@dataclass
class Target:
    kind: str  # sqlite | postgres
    target: str  # file path or DSN
    schema: str = "finance"

    def conn_json(self) -> str:
        if self.kind == "sqlite":
            return json.dumps({"conn_type": "sqlite", "host": self.target})
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(self.target)
        return json.dumps({"conn_type": "postgres", "host": info.get("host", "127.0.0.1"), "port": int(info.get("port", 5432)),
                           "login": info.get("user", "postgres"), "password": info.get("password"), "schema": info["dbname"]})

    def connect(self):
        if self.kind == "sqlite":
            return sqlite3.connect(self.target, timeout=30)
        import psycopg

        return psycopg.connect(self.target)

    def t(self, table: str) -> str:
        return f'"{self.schema}"."{table}"' if self.kind == "postgres" else f'"{table}"'

    def query(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql.replace("{s}", f'"{self.schema}".' if self.kind == "postgres" else ""), params)
            names = [c[0] for c in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            conn.close()

    def exists(self) -> bool:
        if self.kind == "sqlite":
            return os.path.exists(self.target) and bool(
                self.query("SELECT name FROM sqlite_master WHERE name = 'sync_state'"))
        return bool(self.query("SELECT to_regclass(%s) AS r", (f'"{self.schema}".sync_state',))[0]["r"])

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every finance table, normalized (UTC ISO times, decimal text, parsed JSON), minus run bookkeeping."""
        if not self.exists():
            return {}
        out = {}
        for table in DATA_TABLES:
            rows = self.query(f"SELECT * FROM {{s}}{table}")
            drop = VOLATILE | ({"updated_at", "id"} if table in ("sync_state", "contract_changes", "rejected_records") else set())
            norm = [{k: _norm(k, v) for k, v in r.items() if k not in drop} for r in rows]
            out[table] = sorted(norm, key=lambda r: json.dumps(r, sort_keys=True, default=str))
        return out

    def watermarks(self) -> dict[str, str]:
        if not self.exists():
            return {}
        return {r["object_type"]: _norm("watermark", r["watermark"]) for r in self.query("SELECT * FROM {s}sync_state")}


def _norm(name: str, v: Any) -> Any:
    if v is None:
        return None
    if name in {"properties", "labels", "validation_warnings", "reasons", "raw_record"} and isinstance(v, str):
        return json.loads(v)
    if name in {"is_deleted", "is_closed", "is_won", "is_primary"}:
        return bool(v)
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v


def env_for(url: str, token: str, target: Target, raw_root: str, **hubspot_extra: Any) -> dict[str, str]:
    extra = {"requests_per_ten_seconds": 10_000, "search_requests_per_second": 100, **hubspot_extra}
    return {
        "AIRFLOW_CONN_HUBSPOT_DEFAULT": json.dumps({"conn_type": "hubspot", "host": url, "password": token, "extra": extra}),
        "AIRFLOW_CONN_FINANCE_DB": target.conn_json(),
        "HUBSPOT_SYNC_RAW_ROOT": raw_root,
        "HUBSPOT_SYNC_SCHEMA": target.schema,
        "HUBSPOT_SYNC_LAG_MARGIN_MINUTES": "0",
    }


def config():
    from hubspot_finance.config import SyncConfig

    return SyncConfig.from_env()


def plan(run_id: str, now: datetime, params: dict | None = None) -> dict[str, Any]:
    from hubspot_finance import pipeline

    cfg = config()
    planned = pipeline.plan_run(cfg, params or {}, run_type="scheduled", data_interval=(None, None),
                                watermarks=pipeline.read_watermarks(cfg), now=now)
    return pipeline.share_budget(cfg, planned, pipeline.hubspot_hook(cfg))


def extract(planned: dict, run_id: str, objects=OBJECT_TYPES) -> dict[str, Any]:
    from hubspot_finance import pipeline

    cfg = config()
    pipeline.extract_reference(cfg, run_id)
    return {o: pipeline.extract_object(cfg, planned, o, run_id) for o in objects}


def load(planned: dict, manifests: dict, run_id: str) -> dict[str, Any]:
    from hubspot_finance import pipeline

    return pipeline.transform_and_load(config(), planned, manifests, run_id)


def sync(run_id: str, now: datetime, params: dict | None = None) -> dict[str, Any]:
    """plan → extract_reference → extract_* → transform_* → load, as the DAG runs them."""
    planned = plan(run_id, now, params)
    return load(planned, extract(planned, run_id), run_id)


def _child(spec: dict[str, Any]) -> None:
    os.environ.update(spec["env"])
    fast_hooks()
    now = datetime.fromisoformat(spec["now"])
    if spec.get("load_only"):
        planned = plan(spec["run_id"] + "-plan", now)
        manifests = {o: {"calls": {}} for o in OBJECT_TYPES}
        load(planned, manifests, spec["run_id"])
    else:
        sync(spec["run_id"], now)
    print("CHILD-DONE")



SIZES = {"seed": 17, "contacts": 150, "companies": 30, "deals": 80}


def live_ids(sb, object_type: str) -> list[str]:
    import numpy as np

    store = sb.portal.store(object_type)
    return sorted(str(i) for i in store.ids(np.nonzero(store.active_mask())[0]))


def change_things(sb) -> None:
    """What people do in HubSpot between two nightly runs (stamped at the frozen sandbox clock)."""
    control = sb.control
    control.freeze_clock(T0 + 90 * 60_000)  # after run 1 (NOW1 = T0 + 1 h), before run 2 (NOW2)
    contacts, deals = live_ids(sb, "contacts"), live_ids(sb, "deals")
    control.create("contacts", {"email": "Ny.Kunde@Eksempel.NO", "firstname": "Åsne", "lastname": "Ødegård"})
    control.modify("contacts", contacts[3], {"city": "Kristiansand"})
    control.archive("contacts", contacts[4])
    control.merge("contacts", contacts[8], contacts[9])
    control.modify("deals", deals[2], {"amount": "0.30", "dealstage": "closedwon"})
    control.create("deals", {"dealname": "Ny avtale", "amount": "1500.00", "deal_currency_code": "NOK"})

if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))


# ---------------------------------------------------------------- the DAG's task bodies, step by step
# (used by the state-machine proof, tests/reliability/test_state_machine.py)

def extract_all(planned: dict, run_id: str, objects=OBJECT_TYPES) -> tuple[dict[str, Any], dict[str, Any]]:
    """``extract_reference``, ``extract_*`` and ``transform_*`` as the DAG runs them: ``(reference, manifests)``."""
    from hubspot_finance import pipeline

    cfg = config()
    reference = pipeline.extract_reference(cfg, run_id)
    manifests = {o: pipeline.extract_object(cfg, planned, o, run_id) for o in objects}
    for o, manifest in manifests.items():
        pipeline.transform_object(cfg, manifest, o, run_id)
    return reference, manifests


def load_task(planned: dict, reference: dict, manifests: dict, run_id: str) -> dict[str, Any]:
    """The DAG's load task body (``load_for_context``): honours the plan's ``dry_run``, checks rejects.

    Calling it again with an earlier run's arguments is what clearing that run's load task does."""
    from hubspot_finance import pipeline

    return pipeline.load_for_context(config(), planned, reference, manifests, {"run_id": run_id})
