"""
### HubSpot → finance tables

Keeps the finance system's `customers`, `companies` and `contracts` (and their links) in step with
HubSpot. Runs nightly (02:00 Europe/Oslo by default) and whenever someone triggers it.

| task | reads | writes | when it fails |
|---|---|---|---|
| `plan` | trigger parameters, watermarks in `sync_state` | the windows to read (XCom) | a parameter is wrong: the message says which; fix and trigger again |
| `extract_reference` | HubSpot properties, pipelines, account | raw zone `reference/` | token or scope problem: the message names the fix |
| `extract_contacts` / `_deals` / `_companies` | HubSpot records changed in the window, archived records, the associations of every live deal and contact, rejected records again; on sweep runs every id | raw zone Parquet + manifest | retried with backoff; a daily-limit stop says when the budget resets |
| `transform_contacts` / `_deals` / `_companies` | the object's raw Parquet and the reference data | raw zone `staged/`: typed, validated rows (one per id, money exact, times UTC), rejects, merges + manifest (XCom: paths and counts) | a re-run rewrites the staged data; nothing was loaded |
| `load` | the run's staged manifests (and the raw ones: windows, watermarks) | finance tables, `sync_runs`, `sync_state` in **one** transaction; the run summary (a table in the log, XCom `return_value`) and an asset event per table it loaded (`finance://finance_db/customers`, `…/companies`, `…/contracts`; none on a dry run) | nothing is half-loaded; the watermark did not move; re-run |

**Retries**: network and HubSpot hiccups are retried with exponential backoff (2 → 20 min). Errors a
retry cannot fix fail at once: a rejected token (rotate it, update the connection `hubspot_default`),
a missing scope (the message names it), HubSpot's daily limit (the message says when it resets),
invalid trigger parameters or settings.

**Logs**: each phase is a collapsible group; extraction logs progress, rate and ETA every 15 s and the
HubSpot budget left; `load` ends with the run summary as a table outside any group (rows
extracted/inserted/updated/unchanged/rejected/deleted per object, windows in the account's time zone,
watermarks, budget). A failed task's log ends with a `HUBSPOT SYNC FAILED` block: the cause and the fix.

**Alerts**: failures are logged and, if configured, e-mailed (`HUBSPOT_SYNC_ALERT_EMAIL`) or sent to
any notifier (`HUBSPOT_SYNC_ALERT_NOTIFIER`); a deadline alert fires when a run is not finished
`HUBSPOT_SYNC_DEADLINE_MINUTES` (240) after it was queued — 06:00 Oslo for the nightly run.

Manual runs: leave everything empty for a normal incremental sync; give `start` (and `end`) to
re-sync a range without moving the watermark backwards; tick `full_refresh` to re-read everything;
tick `dry_run` to see what would change without loading; tick `reconcile` to look for permanent
deletes now (the id sweep). See the README's "Operating" section.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from zoneinfo import ZoneInfo

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from hubspot_finance import assets, notify, pipeline
from hubspot_finance.config import OBJECT_TYPES, SyncConfig

CFG = SyncConfig.from_env()
RUNNING_DAGS_TEST = sys.argv[1:3] == ["dags", "test"]

DEFAULT_ARGS = {
    "owner": "finance-data",
    "retries": 3,
    "retry_delay": CFG.retry_delay,
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    # Auth, scope, daily-limit, parameter and configuration errors fail at once (retrying cannot fix them).
    "retry_policy": pipeline.retry_policy(),
    # Runs in the worker when a task fails for good: the log summary, then e-mail / custom notifier.
    "on_failure_callback": notify.failure_notifiers(CFG),
}
# Every task returns one JSON document: one XCom row (a `-> dict` task would otherwise be unpacked into
# one row per key), and no one-line dict in the log (the tasks log readable lines themselves).
ONE_XCOM = {"multiple_outputs": False, "show_return_value_in_logs": False}

# One section, so every field is in view at once (the trigger form opens one section at a time).
# The date fields carry their format in the description the form shows; `plan` checks them and says
# in one line what is wrong (a JSON-Schema `pattern` would answer with the raw regular expression).
# Booleans admit null so the form does not mark a field that has a default as "required".
PARAMS = {
    "start": Param(
        None,
        type=["null", "string"],
        title="Start (optional)",
        description=f"Format 2026-11-01 or 2026-11-01T06:00 ({CFG.timezone} unless you add an offset such as "
        "+01:00 or Z). Re-syncs the changes made from then on. Empty: continue from the last successful sync.",
    ),
    "end": Param(
        None,
        type=["null", "string"],
        title="End (optional)",
        description="Same format as Start. Re-syncs the changes made before then. Empty: up to now.",
    ),
    "objects": Param(
        list(OBJECT_TYPES),
        type="array",
        items={"type": "string", "enum": list(OBJECT_TYPES)},
        examples=list(OBJECT_TYPES),  # the form renders a multi-select of these
        minItems=1,
        uniqueItems=True,
        title="Objects",
        description="Which HubSpot objects to sync (contacts → customers, deals → contracts, companies → companies).",
    ),
    "full_refresh": Param(
        False,
        type=["boolean", "null"],
        title="Full refresh",
        description="Re-read every record from HubSpot (slower, uses more API budget). Not with a date range.",
    ),
    "dry_run": Param(
        False,
        type=["boolean", "null"],
        title="Dry run",
        description="Extract and transform, report what would change, load nothing.",
    ),
    "reconcile": Param(
        False,
        type=["boolean", "null"],
        title="Find permanent deletes",
        description="Also run the id sweep now: compare every id with HubSpot and mark records HubSpot deleted "
        f"permanently (GDPR deletes). Runs by itself on the nightly run of {CFG.sweep_weekday} "
        "(HUBSPOT_SYNC_SWEEP_WEEKDAY) and with full_refresh.",
    ),
}


@dag(
    dag_id="hubspot_to_finance",
    schedule=CronDataIntervalTimetable(CFG.schedule, timezone=CFG.timezone),
    start_date=CFG.start_date.replace(tzinfo=ZoneInfo(CFG.timezone)),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    # `airflow dags test` (3.3.2) crashes on any DAG-level deadline (DagRun.update_state looks the
    # in-memory DeadlineAlert up as a database id), so local test runs go without it.
    deadline=None if RUNNING_DAGS_TEST else notify.deadline_alert(CFG),
    doc_md=__doc__,
    description=f"HubSpot contacts, companies and deals into the finance tables; nightly at {CFG.schedule!r} "
    f"in {CFG.timezone} (the UI shows times in the zone picked at its bottom left).",
    tags=["hubspot", "finance"],
)
def hubspot_to_finance():
    @task(
        **ONE_XCOM,
        retries=1,
        doc_md="Validates the trigger parameters (again: the API and CLI bypass the form), reads the "
        "watermarks from `sync_state` in `finance_db`, derives each object's window and shares HubSpot's "
        "budget between the extract tasks by estimated work. Log: the windows and estimates. Fails at once "
        "on an invalid parameter (the ERROR line says which and why); a database it cannot reach is named "
        "with its connection id and host.",
    )
    def plan() -> dict:
        context = get_current_context()
        dag_run = context["dag_run"]
        return pipeline.plan_for_context(CFG, context["params"], dag_run, context)

    @task(
        **ONE_XCOM,
        doc_md="Reads property definitions, deal pipelines and account details (time zone, currency) into "
        "the raw zone. The first task to call HubSpot: a rejected token or missing scope fails here at once, "
        "with the fix in the message."
    )
    def extract_reference() -> dict:
        return pipeline.extract_reference(CFG, get_current_context()["run_id"])

    planned = plan()
    reference = extract_reference()
    planned >> reference

    manifests, staged = {}, {}
    for object_type in OBJECT_TYPES:

        @task(
            **ONE_XCOM,
            task_id=f"extract_{object_type}",
            pool=CFG.pool or "default_pool",
            inlets=[assets.hubspot_object_asset(CFG.hubspot_conn_id, object_type)],
            doc_md=f"Extracts {object_type} changed in the planned window, and their associations, to Parquet "
            "in the raw zone (a manifest lists the files). Log: progress with rate and ETA every 15 s, then the "
            "calls made and HubSpot's daily budget left. Skipped work when the run did not select "
            f"{object_type}. Transient HubSpot errors are retried; the daily limit fails with its reset time.",
        )
        def extract(plan: dict, reference: dict, object_type: str = object_type) -> dict | None:
            return pipeline.extract_object(CFG, plan, object_type, get_current_context()["run_id"], reference)

        manifests[object_type] = extract(planned, reference)

        @task(
            **ONE_XCOM,
            task_id=f"transform_{object_type}",
            doc_md=f"Turns the run's raw {object_type} Parquet into typed, validated rows with pandas and Arrow "
            "(one row per id: the newest version wins; money as exact decimals, times in UTC) under `staged/` in the "
            "raw zone, with the rejected records and their reasons, the merges and the warnings; its manifest is "
            "written last. Log: rows in and out, rejects, warnings. Runs on any worker; a retry rewrites the "
            "staged data, and nothing is loaded until `load` runs.",
        )
        def transform(manifest: dict | None, object_type: str = object_type) -> dict | None:
            return pipeline.transform_object(CFG, manifest, object_type, get_current_context()["run_id"])

        staged[object_type] = transform(manifests[object_type])

    @task(
        **ONE_XCOM,
        outlets=[assets.tables_alias()],
        doc_md="Loads the transform tasks' staged rows (Arrow → COPY on PostgreSQL) into every table, the run log (`sync_runs`) "
        "and the watermarks in one transaction (serialized against any other load; a watermark never "
        "moves backwards). Returns the run summary (XCom `return_value`: counts per object, windows, "
        "watermarks, reject warnings), logs it as a table, and publishes an asset event (with that table's counts) for each table it loaded; none on a dry run. Rejects above "
        "`HUBSPOT_SYNC_REJECT_THRESHOLD` warn or fail (`HUBSPOT_SYNC_REJECT_ACTION`).",
    )
    def load(plan: dict, reference: dict, manifests: dict, staged: dict) -> dict:
        return pipeline.load_for_context(CFG, plan, reference, manifests, get_current_context(), staged)

    load(planned, reference, manifests, staged)


hubspot_to_finance()
