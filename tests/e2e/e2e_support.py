"""Helpers the end-to-end tests import (a uniquely named module, unlike conftest)."""

from __future__ import annotations

import json


def connection_env(sb, finance: dict, **extra) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_HUBSPOT_DEFAULT": json.dumps({"conn_type": "hubspot", "host": sb.url, "password": sb.token}),
        "AIRFLOW_CONN_FINANCE_DB": json.dumps(finance),
        **extra,
    }
