"""`make demo`: the whole sync against the local HubSpot sandbox into SQLite, twice, and what landed.

1. starts the sandbox (a seeded Norwegian accounting office's CRM, HubSpot's Professional limits);
2. runs ``hubspot_to_finance`` with ``airflow dags test`` into ``var/demo/finance.db`` (a full sync);
3. changes data in the sandbox as people would (new customer, edits, a deal won, an archive, a merge);
4. runs the DAG again (incremental) and prints the tables, rejects and the run summary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from hubspot_devtools.local import REPO, airflow, airflow_env, connection_env, sandbox_process, say

WORK = REPO / "var" / "demo"



def table(rows: list[tuple], headers: list[str]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    widths = [min(w, 60) for w in widths]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    say("  " + line)
    say("  " + "  ".join("-" * w for w in widths))
    for row in cells:
        say("  " + "  ".join(v[:w].ljust(w) for v, w in zip(row, widths)))


def run_dag(env: dict, label: str) -> float:
    started = time.monotonic()
    log = WORK / f"{label}.log"
    log.unlink(missing_ok=True)
    airflow(env, "dags", "test", "hubspot_to_finance", log=log)
    elapsed = time.monotonic() - started
    say(f"   done in {elapsed:.0f} s (Airflow's log: {log.relative_to(REPO)})")
    return elapsed


def change_crm(control) -> None:
    contact = control.create(
        "contacts",
        {"email": "  Ingrid.Haugen@Fjordregnskap.NO ", "firstname": "Ingrid", "lastname": "Haugen",
         "phone": "+47 912 34 567", "city": "Tromsø", "lifecyclestage": "customer"},
    )
    say(f"   + new contact {contact['id']} Ingrid Haugen (Tromsø)")
    control.modify("contacts", "105", {"lastname": "Ødegård-Berg", "city": "Bodø"})
    say("   ~ contact 105 moved to Bodø and changed surname")
    control.modify("contacts", "107", {"email": "not-an-email"})
    say("   ~ contact 107 got an invalid e-mail (loaded with the e-mail nulled and a warning)")
    control.archive("contacts", "108")
    say("   - contact 108 deleted in HubSpot (kept, marked is_deleted)")
    deals = control.state()["counts"]["deals"]
    first = int(deals["first_id"])
    control.modify("deals", str(first), {"amount": "125000.50", "dealstage": "closedwon"})
    say(f"   ~ deal {first} won at 125 000.50 (a contract change is recorded)")
    control.modify("deals", str(first + 1), {"amount": "12 000"})
    say(f"   ~ deal {first + 1} got a malformed amount '12 000' (rejected with its reason)")
    companies = control.state()["counts"]["companies"]
    survivor, absorbed = companies["first_id"], str(int(companies["first_id"]) + 1)
    control.merge("companies", survivor, absorbed)
    say(f"   ⇢ company {absorbed} merged into {survivor}")


def _reasons(raw: str) -> str:
    try:
        reasons = json.loads(raw)
    except ValueError:
        return raw
    return "; ".join(
        f"{r.get('rule')}: {r.get('field')}={r.get('value')!r}" if isinstance(r, dict) else str(r) for r in reasons
    )


def show(db_path: Path) -> None:
    con = sqlite3.connect(db_path)
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    say("\nRows per table")
    names = ["customers", "companies", "contracts", "contract_contacts", "contract_companies",
             "customer_companies", "contract_changes", "rejected_records", "sync_runs"]
    table([(n, q(f"SELECT count(*) FROM {n}")[0][0]) for n in names], ["table", "rows"])
    say("\nA few customers (newest first)")
    table(q("SELECT hubspot_contact_id, first_name, last_name, email, phone, city, is_deleted FROM customers "
            "ORDER BY updated_at DESC LIMIT 6"), ["id", "first", "last", "email", "phone", "city", "deleted"])
    say("\nA few contracts (amounts are exact decimals, stored as text in SQLite)")
    table(q("SELECT hubspot_deal_id, deal_name, amount, currency, pipeline_label, stage_label, is_won, close_date "
            "FROM contracts ORDER BY updated_at DESC LIMIT 6"),
          ["id", "deal", "amount", "cur", "pipeline", "stage", "won", "close date"])
    say("\nContract changes seen between the two runs")
    table(q("SELECT hubspot_deal_id, field, old_value, new_value FROM contract_changes ORDER BY hubspot_deal_id, field"),
          ["deal", "field", "old", "new"])
    say("\nRejected records and why (newest first)")
    rejected = q("SELECT object_type, hubspot_id, reasons FROM rejected_records ORDER BY rejected_at DESC, hubspot_id LIMIT 8")
    table([(o, i, _reasons(r)) for o, i, r in rejected], ["object", "id", "reasons"])
    say("\nMerged and deleted")
    table(q("SELECT 'company', hubspot_company_id, deletion_kind, merged_into_company_id, deleted_at FROM companies "
            "WHERE is_deleted = 1 UNION ALL SELECT 'contact', hubspot_contact_id, deletion_kind, merged_into_contact_id, "
            "deleted_at FROM customers WHERE is_deleted = 1 ORDER BY 5 DESC LIMIT 6"),
          ["object", "id", "kind", "merged into", "deleted at"])
    say("\nRun summary (sync_runs)")
    table(q("SELECT run_id, object_type, mode, extracted, loaded, unchanged, rejected, deleted, api_calls, status "
            "FROM sync_runs ORDER BY started_at, object_type"),
          ["run", "object", "mode", "extracted", "loaded", "unchanged", "rejected", "deleted", "calls", "status"])
    con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--deals", type=int, default=800)
    parser.add_argument("--companies", type=int, default=300)
    args = parser.parse_args(argv)

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    db_path, raw = WORK / "finance.db", WORK / "raw"
    started = time.monotonic()
    say(f"HubSpot → finance demo (files under {WORK.relative_to(REPO)}/)")
    say(f"1. starting the HubSpot sandbox: {args.contacts} contacts, {args.deals} deals, {args.companies} companies")
    sizes = ["--contacts", str(args.contacts), "--deals", str(args.deals), "--companies", str(args.companies)]
    with sandbox_process(WORK, args=sizes) as (url, token):
        from hubspot_sandbox.control import SandboxControl

        env = airflow_env(
            WORK / "airflow",
            HUBSPOT_SYNC_RAW_ROOT=raw.as_uri(),
            # The sandbox's search index has no lag, so the demo needs no lag margin.
            HUBSPOT_SYNC_LAG_MARGIN_MINUTES="0",
        )
        env.update([connection_env("hubspot_default", {"conn_type": "hubspot", "host": url, "password": token})])
        env.update([connection_env("finance_db", {"conn_type": "sqlite", "host": str(db_path)})])
        say(f"   sandbox at {url} (token in {(WORK / 'sandbox-token').relative_to(REPO)})")
        say("2. preparing Airflow's metadata database")
        airflow(env, "db", "migrate", log=WORK / "airflow-setup.log")
        say("3. first run: full sync into SQLite")
        run_dag(env, "run1")
        say("4. people change things in HubSpot:")
        change_crm(SandboxControl(url))
        say("5. second run: incremental sync")
        run_dag(env, "run2")
    show(db_path)
    say(f"\nFinance database: {db_path}  (sqlite3 {db_path.relative_to(REPO)})")
    say(f"Raw Parquet zone: {raw}")
    say(f"Airflow home:     {WORK / 'airflow'}")
    say(f"Demo finished in {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
