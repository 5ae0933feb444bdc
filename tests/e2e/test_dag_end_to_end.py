"""The whole DAG (`airflow dags test`) against the sandbox, into SQLite and PostgreSQL, compared row by
row with the sandbox's own data; then an incremental run after people change things in HubSpot."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from hubspot_sandbox.testing import run_sandbox

from e2e_support import connection_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
OSLO = ZoneInfo("Europe/Oslo")
SIZES = {"seed": 31, "contacts": 400, "companies": 60, "deals": 180}


class Finance:
    """Reads the finance tables of either database as plain Python values."""

    def __init__(self, kind: str, target: str, schema: str):
        self.kind, self.target, self.schema = kind, target, schema

    def query(self, sql: str) -> list[dict]:
        if self.kind == "sqlite":
            con = sqlite3.connect(self.target)
        else:
            import psycopg

            con = psycopg.connect(self.target)
        try:
            cur = con.cursor()
            cur.execute(sql.replace("{s}", f'"{self.schema}".' if self.kind == "postgres" else ""))
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        finally:
            con.close()

    def by_id(self, table: str, key: str) -> dict[str, dict]:
        return {r[key]: r for r in self.query(f"SELECT * FROM {{s}}{table}")}


def hubspot_all(sb, object_type: str, properties: list[str], archived: bool = False) -> dict[str, dict]:
    """Ground truth through the sandbox's HTTP API with plain requests (not the code under test)."""
    out, after = {}, None
    while True:
        params = {"limit": 100, "properties": ",".join(properties), "archived": str(archived).lower()}
        if after:
            params["after"] = after
        body = requests.get(f"{sb.url}/crm/v3/objects/{object_type}", params=params, headers=sb.auth_headers(), timeout=30).json()
        out.update({r["id"]: r for r in body["results"]})
        after = body.get("paging", {}).get("next", {}).get("after")
        if not after:
            return out


def associations(sb, from_type: str, to_type: str, ids: list[str]) -> set[tuple[str, str]]:
    pairs = set()
    for start in range(0, len(ids), 1000):
        body = requests.post(f"{sb.url}/crm/v4/associations/{from_type}/{to_type}/batch/read",
                             json={"inputs": [{"id": i} for i in ids[start:start + 1000]]}, headers=sb.auth_headers(), timeout=30).json()
        for result in body.get("results", []):
            pairs |= {(result["from"]["id"], str(t["toObjectId"])) for t in result["to"]}
    return pairs


def as_bool(value) -> bool:
    return bool(value) if not isinstance(value, str) else value in ("1", "true", "t")


def as_utc(value) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso_to_dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def rejected_ids(finance: Finance, object_type: str) -> dict[str, list]:
    rows = finance.query(f"SELECT hubspot_id, reasons FROM {{s}}rejected_records WHERE object_type = '{object_type}'")
    return {r["hubspot_id"]: (json.loads(r["reasons"]) if isinstance(r["reasons"], str) else r["reasons"]) for r in rows}


def compare(sb, finance: Finance) -> None:
    contacts = hubspot_all(sb, "contacts", ["email", "firstname", "lastname", "city", "zip", "lifecyclestage", "hs_merged_object_ids"])
    archived_contacts = hubspot_all(sb, "contacts", [], archived=True)
    customers = finance.by_id("customers", "hubspot_contact_id")
    rejected = rejected_ids(finance, "contacts")
    for rid, record in contacts.items():
        assert rid in customers or rid in rejected, f"contact {rid} was lost"
        if rid not in customers:
            continue
        row, props = customers[rid], record["properties"]
        assert (row["first_name"], row["last_name"], row["city"], row["postal_code"], row["lifecycle_stage"]) == (
            props.get("firstname"), props.get("lastname"), props.get("city"), props.get("zip"), props.get("lifecyclestage")), rid
        warnings = json.dumps(row.get("validation_warnings") or [])
        if props.get("email") and "invalid_email" not in warnings:
            assert row["email"] == props["email"].strip().lower(), rid
        else:
            assert row["email"] is None, rid
        assert as_utc(row["updated_at"]) == iso_to_dt(record["updatedAt"]) and not as_bool(row["is_deleted"]), rid
        stored = row["properties"] if isinstance(row["properties"], dict) else json.loads(row["properties"])
        assert stored["firstname"] == props.get("firstname") and stored["email"] == props.get("email")
        for absorbed in (props.get("hs_merged_object_ids") or "").split(";"):
            if absorbed and absorbed in customers:
                assert customers[absorbed]["merged_into_contact_id"] == rid and as_bool(customers[absorbed]["is_deleted"])
    for rid in archived_contacts:
        if rid in customers:
            assert as_bool(customers[rid]["is_deleted"]) and customers[rid]["deleted_at"] is not None, rid

    pipelines = requests.get(f"{sb.url}/crm/v3/pipelines/deals", headers=sb.auth_headers(), timeout=30).json()["results"]
    stages = {s["id"]: s for p in pipelines for s in p["stages"]}
    deals = hubspot_all(sb, "deals", ["dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "closedate"])
    contracts = finance.by_id("contracts", "hubspot_deal_id")
    rejected = rejected_ids(finance, "deals")
    assert rejected, "the seeded malformed amounts must be rejected, not dropped"
    for rid, record in deals.items():
        props = record["properties"]
        if rid in rejected:
            assert rid not in contracts or as_utc(contracts[rid]["updated_at"]) < iso_to_dt(record["updatedAt"])
            assert all(reason["rule"] for reason in rejected[rid])
            continue
        row = contracts[rid]
        assert row["deal_name"] == props.get("dealname"), rid
        if props.get("amount"):
            assert Decimal(str(row["amount"])) == Decimal(props["amount"]), rid
        assert row["currency"] == (props.get("deal_currency_code") or "NOK"), rid
        stage = stages.get(props.get("dealstage"))
        if stage:
            assert row["stage_label"] == stage["label"], rid
            closed = stage["metadata"]["isClosed"] == "true"
            assert as_bool(row["is_closed"]) == closed
            assert as_bool(row["is_won"]) == (closed and float(stage["metadata"]["probability"]) == 1.0)
        if props.get("closedate"):
            expected = iso_to_dt(props["closedate"]).astimezone(OSLO).date().isoformat()
            assert str(row["close_date"]) == expected, rid
    live_deals = sorted(deals)
    stored_pairs = {(r["hubspot_deal_id"], r["hubspot_contact_id"]) for r in finance.query("SELECT * FROM {s}contract_contacts")}
    expected_pairs = associations(sb, "deals", "contacts", live_deals)
    assert {p for p in stored_pairs if p[0] in set(live_deals)} == expected_pairs

    companies = hubspot_all(sb, "companies", ["name", "domain"])
    stored = finance.by_id("companies", "hubspot_company_id")
    for rid, record in companies.items():
        assert stored[rid]["name"] == record["properties"].get("name"), rid


def change_things(control) -> dict:
    created = control.create("contacts", {"email": "Ny.Kunde@Eksempel.NO", "firstname": "Åsne", "lastname": "Ødegård"})["id"]
    control.modify("contacts", "105", {"city": "Kristiansand"})
    control.archive("contacts", "106")
    control.merge("contacts", "110", "111")
    control.modify("deals", "9000000003", {"amount": "0.30", "dealstage": "closedwon"})
    return {"created": created}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def finance(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "finance.db"
        yield {"conn_type": "sqlite", "host": str(path)}, Finance("sqlite", str(path), "finance")
        return
    dsn = request.getfixturevalue("pg_dsn")
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    schema = f"e2e_{uuid.uuid4().hex[:8]}"
    conn = {"conn_type": "postgres", "host": info.get("host", "127.0.0.1"), "port": int(info.get("port", 5432)),
            "login": info.get("user", "postgres"), "password": info.get("password"), "schema": info["dbname"]}
    yield conn, Finance("postgres", dsn, schema)
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_full_then_incremental_matches_hubspot(airflow_home, finance, tmp_path):
    conn, db = finance
    raw = tmp_path / "raw"
    with run_sandbox(rate_limits={"tier": "professional"}, **SIZES) as sb:
        env = connection_env(sb, conn, HUBSPOT_SYNC_RAW_ROOT=raw.as_uri(), HUBSPOT_SYNC_LAG_MARGIN_MINUTES="0",
                             HUBSPOT_SYNC_SCHEMA=db.schema)
        airflow_home.run("dags", "test", "hubspot_to_finance", env=env)
        compare(sb, db)
        first = {r["object_type"]: r for r in db.query("SELECT * FROM {s}sync_runs")}
        assert {r["mode"] for r in first.values()} == {"full"}
        changed = change_things(sb.control)
        airflow_home.run("dags", "test", "hubspot_to_finance", env=env)
        compare(sb, db)
        runs = db.query("SELECT * FROM {s}sync_runs WHERE mode = 'incremental'")
        assert {r["object_type"] for r in runs} == {"contacts", "deals", "companies"}
        assert changed["created"] in db.by_id("customers", "hubspot_contact_id")
        changes = db.query("SELECT field, old_value, new_value FROM {s}contract_changes WHERE hubspot_deal_id = '9000000003'")
        assert {c["field"] for c in changes} >= {"amount", "stage_id"}
        assert [c["new_value"] for c in changes if c["field"] == "amount"] == ["0.3"]  # canonical decimal text
        token = sb.token
    # The token is nowhere in what the runs left behind: logs, metadata DB (XCom), Parquet, finance data.
    leaks = [str(p) for base in (airflow_home.home, raw, tmp_path) for p in Path(base).rglob("*")
             if p.is_file() and token.encode() in p.read_bytes()]
    assert leaks == []
    if db.kind == "postgres":
        dump = json.dumps([db.query(f"SELECT * FROM {{s}}{t}") for t in ("customers", "contracts", "sync_runs", "rejected_records")], default=str)
        assert token not in dump
