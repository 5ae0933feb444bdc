"""The one place that maps logical HubSpot operations to URL paths, for both API versions.

HubSpot moved to date-based versions (``2026-09``) in 2026; the ``v3``/``v4`` paths keep working
until 2027. Parameters and response shapes are the same, so only the path differs.
"""

from __future__ import annotations

import re
from urllib.parse import quote

DEFAULT_API_VERSION = "2026-09"
LEGACY_API_VERSION = "v3"
_DATED = re.compile(r"^\d{4}-\d{2}$")

# operation -> (legacy template, dated template)
_TEMPLATES: dict[str, tuple[str, str]] = {
    "list": ("/crm/v3/objects/{object_type}", "/crm/objects/{version}/{object_type}"),
    "get": ("/crm/v3/objects/{object_type}/{object_id}", "/crm/objects/{version}/{object_type}/{object_id}"),
    "search": ("/crm/v3/objects/{object_type}/search", "/crm/objects/{version}/{object_type}/search"),
    "batch_read": ("/crm/v3/objects/{object_type}/batch/read", "/crm/objects/{version}/{object_type}/batch/read"),
    "properties": ("/crm/v3/properties/{object_type}", "/crm/properties/{version}/{object_type}"),
    "pipelines": ("/crm/v3/pipelines/{object_type}", "/crm/pipelines/{version}/{object_type}"),
    "associations": (
        "/crm/v4/associations/{from_type}/{to_type}/batch/read",
        "/crm/associations/{version}/{from_type}/{to_type}/batch/read",
    ),
    "account": ("/account-info/v3/details", "/account-info/{version}/details"),
}

OPERATIONS = frozenset(_TEMPLATES)


def validate_api_version(version: str | None) -> str:
    """Return the version to use, or raise ValueError naming the accepted forms."""
    version = (version or DEFAULT_API_VERSION).strip()
    if version == LEGACY_API_VERSION or _DATED.match(version):
        return version
    raise ValueError(
        f"Unsupported HubSpot API version {version!r}: use a date-based version such as "
        f"{DEFAULT_API_VERSION!r} or {LEGACY_API_VERSION!r} for the legacy v3/v4 paths."
    )


def api_path(operation: str, version: str, **params: str) -> str:
    """Build the path of ``operation`` for ``version``; path parameters are URL-quoted."""
    try:
        legacy, dated = _TEMPLATES[operation]
    except KeyError:
        raise ValueError(f"Unknown HubSpot operation {operation!r}; known: {sorted(OPERATIONS)}") from None
    template = legacy if version == LEGACY_API_VERSION else dated
    quoted = {key: quote(str(value), safe="") for key, value in params.items()}
    return template.format(version=version, **quoted)
