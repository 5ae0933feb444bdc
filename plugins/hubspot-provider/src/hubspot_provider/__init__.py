"""Airflow provider for HubSpot: the ``hubspot`` connection type and :class:`HubSpotHook`."""

__version__ = "0.1.0"
