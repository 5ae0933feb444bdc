"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

The connection form is declarative (Airflow 3.2+): which fields are hidden, relabelled and
typed lives here, so the UI needs no Python widgets from us.
"""

from __future__ import annotations

from typing import Any

from hubspot_provider import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "hubspot-airflow-provider",
        "name": "HubSpot",
        "description": "Read-only access to the HubSpot CRM with a private-app token or service key.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "hubspot",
                "hook-class-name": "hubspot_provider.hooks.hubspot.HubSpotHook",
                "hook-name": "HubSpot",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {
                        "host": "API base URL",
                        "password": "Private-app token or service key",
                    },
                    "placeholders": {
                        "host": "https://api.hubapi.com",
                        "password": "pat-eu1-… (read scopes only)",
                    },
                },
                "conn-fields": {
                    "api_version": {
                        "label": "API version",
                        "description": "Date-based version such as 2026-09 (default), or v3 for the legacy paths.",
                        "schema": {"type": ["string", "null"], "default": "2026-09"},
                    },
                    "search_requests_per_second": {
                        "label": "Search requests per second",
                        "description": "HubSpot allows 5 search requests per second per account.",
                        "schema": {"type": ["number", "null"], "minimum": 0.1, "default": 5},
                    },
                    "requests_per_ten_seconds": {
                        "label": "Requests per 10 seconds",
                        "description": "Client-side ceiling for the general budget before HubSpot's headers are seen "
                        "(100 Free/Starter, 190 Professional/Enterprise, 250 with the capacity pack).",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 100},
                    },
                    "budget_share": {
                        "label": "Share of the budget to use",
                        "description": "Fraction (0-1] of the ten-secondly budget this connection may use, leaving "
                        "room for other integrations on the same account.",
                        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1, "default": 0.9},
                    },
                    "max_retries": {
                        "label": "Retries per call",
                        "description": "Retries for 429 (not daily), 423, 477, 5xx, time-outs and connection errors.",
                        "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 20, "default": 6},
                    },
                    "shared_limits": {
                        "label": "Share limits between tasks on a host",
                        "description": "Tasks on the same machine count their HubSpot calls in one shared window "
                        "(a small state file, no secrets), so parallel tasks never exceed the limits together.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "account_time_zone": {
                        "label": "Account time zone",
                        "description": "Used until the account details are read (e.g. to say when the daily limit resets).",
                        "schema": {"type": ["string", "null"], "default": "Europe/Oslo"},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Per-request read timeout.",
                        "schema": {"type": ["number", "null"], "minimum": 1, "default": 60},
                    },
                },
            }
        ],
    }
