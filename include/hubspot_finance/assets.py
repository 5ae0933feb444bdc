"""The finance tables as Airflow assets, and the events a load publishes on them.

A table gets an event only when this run loaded it: a dry run publishes nothing, and a deals-only
run publishes on ``contracts`` alone, so an invoicing DAG scheduled on ``customers`` does not start
after it. A static ``outlets=[Asset(...)]`` list cannot do that (Airflow emits an event on every
declared outlet when the task succeeds), so the load task declares one :data:`TABLES_ALIAS` and
adds an event per loaded table to it; Airflow resolves the alias to the table assets.

URIs are ``finance://<connection id>/<table>``, e.g. ``finance://finance_db/contracts``: with a
path Airflow keeps the URI as written (``finance://contracts`` would be stored as
``finance://contracts/``), and the connection id says which database the table lives in.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

# The finance tables a downstream DAG can be scheduled on, by the HubSpot object that fills them.
TABLE_OF_OBJECT = {"contacts": "customers", "companies": "companies", "deals": "contracts"}
FINANCE_TABLES = tuple(TABLE_OF_OBJECT.values())
TABLES_ALIAS_NAME = "hubspot_to_finance:loaded_tables"
EVENT_COUNTS = ("inserted", "updated", "unchanged", "rejected", "deleted")


def table_uri(finance_conn_id: str, table: str) -> str:
    return f"finance://{finance_conn_id}/{table}"


def table_asset(finance_conn_id: str, table: str):
    from airflow.sdk import Asset

    return Asset(table_uri(finance_conn_id, table), extra={"description": f"finance table {table} ({finance_conn_id})"})


def tables_alias():
    """The load task's only outlet: resolved per run to the tables it loaded."""
    from airflow.sdk import AssetAlias

    return AssetAlias(TABLES_ALIAS_NAME)


def loaded_table_extras(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Table → event extra for every table the summary says was loaded (none for a dry run)."""
    if summary.get("dry_run"):
        return {}
    extras = {}
    for name, obj in (summary.get("objects") or {}).items():
        table = obj.get("table") or TABLE_OF_OBJECT.get(name)
        if table not in FINANCE_TABLES:
            continue
        extras[table] = {"run_id": summary.get("run_id"), "mode": summary.get("mode"), "object": name,
                         **{k: obj.get(k) for k in EVENT_COUNTS}}
    return extras


def publish(outlet_events: Any, finance_conn_id: str, summary: Mapping[str, Any]) -> list[str]:
    """Add one asset event per loaded table to the alias; returns the URIs published."""
    alias = tables_alias()
    published = []
    for table, extra in loaded_table_extras(summary).items():
        asset = table_asset(finance_conn_id, table)
        outlet_events[alias].add(asset, extra=extra)
        published.append(asset.uri)
    return published


# -- Lineage: where each table comes from ------------------------------------------------------------
# The extract tasks declare their HubSpot object as an inlet, so Airflow's asset graph shows
# HubSpot → extract → load → finance tables. The connection id names the source at parse time (no
# I/O then); at run time the hook-level lineage (read by the OpenLineage provider when installed)
# names the portal itself.


def hubspot_object_asset(hubspot_conn_id: str, object_type: str):
    from airflow.sdk import Asset

    return Asset(f"hubspot://{hubspot_conn_id}/{object_type}",
                 extra={"description": f"HubSpot {object_type} read through connection {hubspot_conn_id}"})


def portal_object_uri(portal_id: Any, object_type: str) -> str:
    return f"hubspot://portal-{portal_id}/{object_type}"


def report_read(hook: Any, portal_id: Any, object_type: str) -> None:
    """Hook-level lineage: this task read ``object_type`` from the portal through ``hook``."""
    if portal_id is None:
        return
    from airflow.sdk.lineage import get_hook_lineage_collector

    get_hook_lineage_collector().add_input_asset(context=hook, uri=portal_object_uri(portal_id, object_type))


def report_written(make_hook: Callable[[], Any], finance_conn_id: str, tables: list[str]) -> None:
    """Hook-level lineage: this task wrote ``tables`` of the finance database through the hook ``make_hook`` gives.

    The hook is only built when a lineage reader (the OpenLineage provider) listens.
    """
    from airflow.sdk.lineage import NoOpCollector, get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    if isinstance(collector, NoOpCollector) or not tables:
        return
    hook = make_hook()
    for table in tables:
        collector.add_output_asset(context=hook, uri=table_uri(finance_conn_id, table))
