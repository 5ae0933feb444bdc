"""What one load is asked to do: the run's committed raw-zone datasets and the load settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubspot_finance.mapping import Mapping
from hubspot_finance.objects import ASSOCIATIONS, OBJECTS
from hubspot_finance.rawzone import IncompleteDatasetError, Manifest, RawZone
from hubspot_finance.schema import Dialect

@dataclass
class LoadConfig:
    schema: str = "finance"  # PostgreSQL schema (ignored by SQLite)
    table_prefix: str = ""  # prefix for every table name (SQLite's stand-in for a schema)
    mapping: Mapping | None = None  # default: load_mapping()
    time_zone: str | None = None  # default: account.json timeZone, else Europe/Oslo
    phone_region: str = "NO"
    migrate: bool = True  # apply pending migrations before loading
    dry_run: bool = False  # do all the work in the transaction, report, then roll it back
    erase_personal_data: bool = False  # permanently deleted contacts lose names, e-mail, phone, address, properties

    def dialect(self, name: str) -> Dialect:
        return Dialect(name, schema=self.schema, prefix=self.table_prefix)


@dataclass
class LoadPlan:
    """What to load: the run id, the committed raw and staged manifests, the reference dataset and the config.

    The rows come from the transform task's staged datasets (``staged``); the raw records manifests give
    the window, the watermark, the id sweep's side files and the extraction's counts.

    Each ``sync_runs`` row also records, from these datasets, the object's HubSpot calls and daily budget
    left (its records manifest's ``calls``) and the account's ``portal_id`` (the reference dataset's
    account details, read by :meth:`from_zone`).
    """

    run_id: str
    zone: RawZone
    records: dict[str, Manifest]  # object type -> committed records manifest
    associations: list[Manifest] = field(default_factory=list)
    reference_run_id: str | None = None
    mode: str | None = None  # default: from the manifests' "mode"
    config: LoadConfig = field(default_factory=LoadConfig)
    portal_id: int | None = None  # the HubSpot account's portal id; None when the reference was not extracted
    staged: dict[str, Manifest] = field(default_factory=dict)  # object type -> the transform task's manifest

    @classmethod
    def from_zone(
        cls,
        zone: RawZone,
        run_id: str,
        *,
        object_types: list[str] | None = None,
        associations: list[tuple[str, str]] | None = None,
        raw_run_id: str | None = None,
        mode: str | None = None,
        config: LoadConfig | None = None,
    ) -> LoadPlan:
        """Read the committed manifests of ``raw_run_id`` (default ``run_id``); a missing one raises
        (:class:`~hubspot_finance.rawzone.StagedDatasetMissingError`, naming the transform task, for staged data)."""
        raw = raw_run_id or run_id
        types = object_types if object_types is not None else list(OBJECTS)
        records = {ot: zone.records_manifest(ot, raw) for ot in types}
        staged = {ot: zone.staged_manifest(ot, raw) for ot in types}
        pairs = associations if associations is not None else [(a.from_type, a.to_type) for a in ASSOCIATIONS if a.from_type in types]
        assoc = [zone.associations_manifest(f, t, raw) for f, t in pairs]
        return cls(run_id, zone, records, assoc, raw, mode, config or LoadConfig(), portal_id=read_portal_id(zone, raw),
                   staged=staged)


def read_portal_id(zone: RawZone, run_id: str) -> int | None:
    """The portal id in the account details of run ``run_id``'s reference dataset; None when it has none."""
    try:
        account = zone.read_reference(run_id, "account", default={})
    except IncompleteDatasetError:
        return None
    return as_portal_id(account.get("portalId") if isinstance(account, dict) else None)


def as_portal_id(value: Any) -> int | None:
    """HubSpot's ``portalId`` (a positive number, also accepted as digits) as an int; anything else None."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
