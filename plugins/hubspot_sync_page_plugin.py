"""The "HubSpot sync" page: a FastAPI app mounted at /hubspot-sync and an entry in the UI's navigation.

Thin on purpose: the app lives in ``hubspot_sync_page`` (installed with the pipeline library). The
file is not named ``hubspot_sync_page.py``: Airflow registers a plugin file under its own name in
``sys.modules``, which would hide the package of that name.
"""

from airflow.plugins_manager import AirflowPlugin

from hubspot_sync_page import NAV_NAME, NAV_ROUTE, URL_PREFIX
from hubspot_sync_page.lazy import page_app


class HubSpotSyncPagePlugin(AirflowPlugin):
    name = "hubspot_sync_page"
    fastapi_apps = [{"app": page_app, "url_prefix": URL_PREFIX, "name": NAV_NAME}]
    # url_route: the UI shows the page in a frame at /plugin/hubspot-sync; href is relative to the UI's base URL.
    external_views = [{"name": NAV_NAME, "href": f"{NAV_ROUTE}/", "url_route": NAV_ROUTE, "destination": "nav",
                       "nav_top_level": True}]
