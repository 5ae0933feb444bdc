"""Airflow UI fixes this package ships: the Connections page's Test button for port-less connections.

Thin on purpose: the middleware lives in ``hubspot_provider.ui_compat`` (installed with the provider).
"""

from airflow.plugins_manager import AirflowPlugin

from hubspot_provider.ui_compat import PortZeroIsNoPort


class HubSpotUiCompatPlugin(AirflowPlugin):
    name = "hubspot_ui_compat"
    fastapi_root_middlewares = [
        {"name": "connection test: port 0 means the stored port", "middleware": PortZeroIsNoPort, "args": [], "kwargs": {}},
    ]
