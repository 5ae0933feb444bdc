"""The "HubSpot sync" page in the Airflow UI: sync freshness, recent runs, rejects and contract changes,
read-only from the finance tables. Registered by ``plugins/hubspot_sync_page_plugin.py``.

Kept import-light: Airflow imports plugins in every task process, so the web app (FastAPI, Airflow's
security module) is only built on the first request, in the API server (see :mod:`.lazy`).
"""

URL_PREFIX = "/hubspot-sync"
NAV_NAME = "HubSpot sync"
NAV_ROUTE = "hubspot-sync"
