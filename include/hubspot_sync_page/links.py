"""Where the page's links point: Airflow's run pages and HubSpot's record pages.

Airflow: the 3.3 UI routes a run at ``dags/:dagId/runs/:runId`` under the UI's base. With
``[api] base_url`` set the links are absolute on it; without, they are relative to the page
(``../dags/…`` from ``/hubspot-sync/``), which also holds behind a path prefix.

HubSpot: ``https://app.hubspot.com/contacts/{portal}/record/{objectTypeId}/{id}`` needs the
account's portal id: the one the newest load recorded in ``sync_runs.portal_id``, unless
``HUBSPOT_SYNC_PORTAL_ID`` overrides it; without either the page shows the bare id.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from hubspot_finance.objects import OBJECTS

DAG_ID = "hubspot_to_finance"
PORTAL_ENV = "HUBSPOT_SYNC_PORTAL_ID"
HUBSPOT_APP = "https://app.hubspot.com"


def airflow_base_url() -> str:
    """``[api] base_url`` without its trailing slash; empty when not configured."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


class AirflowLinks:
    """Links into the Airflow UI, from the configured base URL (or relative to the page)."""

    def __init__(self, base_url: str | None, page_depth: int = 1):
        self.base = base_url.rstrip("/") if base_url else "/".join([".."] * page_depth)

    def dag(self, dag_id: str = DAG_ID) -> str:
        return f"{self.base}/dags/{quote(dag_id, safe='')}"

    def run(self, run_id: str, dag_id: str = DAG_ID) -> str:
        return f"{self.dag(dag_id)}/runs/{quote(run_id, safe='')}"


def hubspot_record_url(portal_id: int | None, object_type: str, hubspot_id: str | None) -> str | None:
    """The record's page in HubSpot, or None when the portal, the type or the id is unknown."""
    decl = OBJECTS.get(object_type)
    if portal_id is None or decl is None or not hubspot_id or not str(hubspot_id).isdigit():
        return None
    return f"{HUBSPOT_APP}/contacts/{portal_id}/record/{decl.type_id}/{hubspot_id}"


def portal_id(recorded: int | None) -> int | None:
    """The HubSpot portal id for record links: ``HUBSPOT_SYNC_PORTAL_ID`` if set, else ``recorded`` (``sync_runs``)."""
    configured = (os.environ.get(PORTAL_ENV) or "").strip()
    if configured:
        return int(configured) if configured.isascii() and configured.isdigit() else None
    return recorded
