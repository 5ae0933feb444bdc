"""Extraction: from HubSpot (through HubSpotHook) to the Parquet raw zone, one object type per call.

A run reads the window :mod:`hubspot_finance.windows` planned:
- ``full``: every live record through the list endpoint (properties in the URL while they fit,
  otherwise ids first and a batch read with the properties in the body), plus every archived record;
- ``incremental``/``range``: the records whose last-modified time lies in the window, through search
  sliced by :mod:`hubspot_finance.search_slicing` (any number of changes, each id once), hydrated by
  batch read when the property list is too long for a search body; plus archived records whose
  ``archivedAt`` falls after the window start.
Associations of every extracted live record are read in batches of 1,000 as records stream by, so
memory stays bounded by the raw zone's chunk size whatever the portal's size.
The returned manifest is small (paths, counts, window, calls): it is what the task puts in XCom.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hubspot_finance.objects import ObjectDecl, associations_from
from hubspot_finance.rawzone import RawZone
from hubspot_finance.search_slicing import SliceStats, iter_changed
from hubspot_finance.timeparse import parse_hubspot_datetime, to_ms
from hubspot_finance.windows import Window

log = logging.getLogger(__name__)

ASSOCIATION_BATCH = 1_000
# HubSpot documents no URL limit; 414s are seen with long property lists. Stay well below.
LIST_URL_PROPERTY_CHARS = 2_000
# A search body may be limited to 3,000 characters (HubSpot's docs are ambiguous).
SEARCH_BODY_CHARS = 3_000
REFERENCE_OBJECTS = ("contacts", "deals", "companies")


class ExtractError(RuntimeError):
    """The extraction cannot go on; the message says why and what to do."""


@dataclass
class ExtractResult:
    """What one object's extraction did; ``as_manifest_extra`` goes into the raw-zone manifest."""

    object_type: str
    window: Window
    records: int = 0
    archived: int = 0
    hydrated: int = 0
    missing_ids: list[str] = field(default_factory=list)
    associations: dict[str, int] = field(default_factory=dict)
    calls: dict[str, Any] = field(default_factory=dict)
    slices: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    properties: list[str] = field(default_factory=list)
    dropped_properties: list[str] = field(default_factory=list)

    def as_manifest_extra(self) -> dict[str, Any]:
        calls = self.calls.get("total_calls", 0)
        return {
            **self.window.as_dict(),
            "records": self.records,
            "archived": self.archived,
            "hydrated": self.hydrated,
            "missing_ids": self.missing_ids[:1000],
            "missing_ids_count": len(self.missing_ids),
            "associations": self.associations,
            "calls": self.calls,
            "calls_per_1000_records": round(1000 * calls / self.records, 2) if self.records else None,
            "search_slices": self.slices,
            "seconds": round(self.seconds, 3),
            "dropped_properties": self.dropped_properties,
        }


def resolve_properties(
    decl: ObjectDecl,
    wanted: Sequence[str],
    definitions: list[dict[str, Any]],
    *,
    extra: Sequence[str] | str = (),
) -> tuple[list[str], list[str]]:
    """The property list to request: what the mapping needs plus ``extra`` (or ``"all"``).

    Names HubSpot does not define (a custom property removed since the mapping was written) are
    dropped and returned separately, so the caller can warn; the always-returned identity and
    timestamp properties are kept regardless.
    """
    defined = [d.get("name") for d in definitions if d.get("name")]
    known = set(defined)
    names = list(dict.fromkeys([*decl.base_properties, *wanted]))
    if extra == "all":
        names = list(dict.fromkeys([*names, *defined]))
    else:
        names = list(dict.fromkeys([*names, *extra]))
    keep = {"hs_object_id", "createdate", decl.cursor_property}
    if not known:
        return names, []
    chosen = [n for n in names if n in known or n in keep]
    dropped = [n for n in names if n not in known and n not in keep]
    return chosen, dropped


def properties_for_run(
    zone: RawZone, run_id: str, decl: ObjectDecl, mapping: Any = None, extra: Sequence[str] | str = ()
) -> tuple[list[str], list[str]]:
    """The run's property list for ``decl``, checked against the definitions this run read."""
    from hubspot_finance.mapping import load_mapping

    definitions = zone.read_reference(run_id, f"properties_{decl.name}")
    mapping = mapping if mapping is not None else load_mapping()
    return resolve_properties(decl, decl.properties(mapping), definitions, extra=extra)


def extract_reference(hook: Any, zone: RawZone, run_id: str, objects: Iterable[str] = REFERENCE_OBJECTS) -> dict[str, Any]:
    """Property definitions, deal pipelines (archived stages too) and account details, each run."""
    account = hook.get_account_details()
    zone.write_reference(run_id, "account", account)
    for object_type in objects:
        zone.write_reference(run_id, f"properties_{object_type}", hook.get_properties(object_type))
    pipelines = hook.get_pipelines("deals")
    manifest = zone.write_reference(run_id, "pipelines_deals", pipelines)
    return {
        "dataset": manifest.dataset,
        "files": manifest.files,
        "time_zone": account.get("timeZone"),
        "company_currency": account.get("companyCurrency"),
        "portal_id": account.get("portalId"),
    }


class _Progress:
    """Logs progress every ``every`` seconds with the rate, and an ETA when the total is known."""

    def __init__(self, label: str, total: int | None = None, every: float = 15.0, hook: Any = None):
        self.label, self.total, self.every, self.hook = label, total, every, hook
        self.started = self.last = time.monotonic()
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = self.count / max(now - self.started, 1e-9)
        eta = ""
        if self.total and rate > 0 and self.total > self.count:
            eta = f", ETA {int((self.total - self.count) / rate)} s"
        budget = ""
        stats = getattr(self.hook, "stats", None)
        if stats is not None and stats.daily_remaining is not None:
            budget = f", daily budget left {stats.daily_remaining}"
        of = f"/{self.total}" if self.total else ""
        log.info("%s: %d%s records, %.0f records/s%s%s", self.label, self.count, of, rate, eta, budget)


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class _AssociationCollector:
    """Reads associations for ids as they stream by, 1,000 at a time, into the raw zone."""

    def __init__(self, hook: Any, zone: RawZone, decl: ObjectDecl, run_id: str):
        self.hook = hook
        self.pending: list[str] = []
        self.writers = {
            a.to_type: zone.association_writer(decl.name, a.to_type, run_id) for a in associations_from(decl.name)
        }
        self.object_type = decl.name

    def add(self, ids: Iterable[str]) -> None:
        if not self.writers:
            return
        self.pending.extend(ids)
        while len(self.pending) >= ASSOCIATION_BATCH:
            batch, self.pending = self.pending[:ASSOCIATION_BATCH], self.pending[ASSOCIATION_BATCH:]
            self._read(batch)

    def _read(self, ids: list[str]) -> None:
        for to_type, writer in self.writers.items():
            for page in self.hook.iter_associations(self.object_type, to_type, ids):
                writer.write(page.results)
            writer.add_covered(ids)

    def commit(self, window: Window) -> dict[str, int]:
        if self.pending:
            self._read(self.pending)
            self.pending = []
        counts = {}
        for to_type, writer in self.writers.items():
            manifest = writer.commit(window.as_dict())
            counts[f"{self.object_type}_to_{to_type}"] = manifest.rows
        return counts


def extract_object(
    hook: Any,
    zone: RawZone,
    decl: ObjectDecl,
    window: Window,
    run_id: str,
    properties: list[str],
    *,
    dropped_properties: Sequence[str] = (),
    search_page_size: int = 200,
    expected_records: int | None = None,
) -> dict[str, Any]:
    """Extract one object type for one window into the raw zone; returns the committed manifest."""
    started = time.monotonic()
    before = hook.stats.as_dict()
    result = ExtractResult(decl.name, window, properties=list(properties), dropped_properties=list(dropped_properties))
    if dropped_properties:
        log.warning(
            "%s: HubSpot no longer defines %s; they are not requested (check the mapping)",
            decl.name, ", ".join(dropped_properties),
        )
    writer = zone.record_writer(decl.name, run_id, properties)
    associations = _AssociationCollector(hook, zone, decl, run_id)
    log.info("%s: %s extraction, window %s", decl.name, window.mode, _describe(window))

    if window.mode == "full":
        _extract_full(hook, decl, properties, writer, associations, result, expected_records)
    elif not window.is_empty:
        _extract_changes(hook, decl, window, properties, writer, associations, result, search_page_size, expected_records)
    _extract_archived(hook, decl, window, properties, writer, result)

    result.associations = associations.commit(window)
    after = hook.stats.as_dict()
    result.calls = _calls_delta(before, after)
    result.seconds = time.monotonic() - started
    manifest = writer.commit(result.as_manifest_extra())
    log.info(
        "%s: %d records (%d archived, %d hydrated), associations %s, %d calls (%s per 1,000 records) in %.1f s",
        decl.name, result.records, result.archived, result.hydrated, result.associations,
        result.calls.get("total_calls", 0), result.as_manifest_extra()["calls_per_1000_records"], result.seconds,
    )
    if result.missing_ids:
        log.warning("%s: %d ids were gone when read (deleted meanwhile): %s", decl.name, len(result.missing_ids), result.missing_ids[:20])
    return {"dataset": manifest.dataset, "rows": manifest.rows, "parts": len(manifest.parts), **manifest.extra}


def estimate_work(hook: Any, decl: ObjectDecl, window: Window, properties: Sequence[str]) -> dict[str, float]:
    """How many records and calls a window will take (one search call), to share the budget fairly.

    Extract tasks that run at the same time each get a fraction of HubSpot's budgets in proportion
    to their work, so they finish together instead of the largest one crawling alone at the end.
    """
    if window.mode != "full" and window.is_empty:
        return {"records": 0, "general_calls": 0.0, "search_calls": 0.0}
    if window.mode == "full":
        filter_groups: list[dict[str, Any]] = []
    else:
        assert window.start is not None
        filter_groups = [{"filters": [
            {"propertyName": decl.cursor_property, "operator": "GTE", "value": str(to_ms(window.start))},
            {"propertyName": decl.cursor_property, "operator": "LT", "value": str(to_ms(window.end))},
        ]}]
    records = hook.search_page(decl.name, filter_groups=filter_groups, properties=["hs_object_id"], limit=1).total
    pairs = len(associations_from(decl.name))
    if window.mode == "full":
        per_record = (1 / 100) * (1 if _url_fits(properties) else 2) + pairs / ASSOCIATION_BATCH
        return {"records": records, "general_calls": records * per_record, "search_calls": 1.0}
    hydrate = 0 if _search_fits(properties, decl.cursor_property) else 1 / 100
    return {
        "records": records,
        "general_calls": records * (hydrate + pairs / ASSOCIATION_BATCH) + 1,
        "search_calls": records / 200 + 1,
    }


def budget_fractions(estimates: dict[str, dict[str, float]], *, floor: float = 0.05) -> dict[str, dict[str, float]]:
    """Split both budgets between concurrently running objects in proportion to their estimated calls."""

    def split(key: str) -> dict[str, float]:
        total = sum(e[key] for e in estimates.values())
        raw = {name: (e[key] / total if total else 1 / len(estimates)) for name, e in estimates.items()}
        floored = {name: max(floor, share) for name, share in raw.items()}
        scale = sum(floored.values())
        return {name: share / scale for name, share in floored.items()}

    if not estimates:
        return {}
    general, search = split("general_calls"), split("search_calls")
    return {name: {"general": general[name], "search": search[name]} for name in estimates}


def _describe(window: Window) -> str:
    start = window.start.isoformat() if window.start else "the beginning"
    return f"[{start}, {window.end.isoformat()})"


def _calls_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    def diff(key: str) -> dict[str, int]:
        b, a = before.get(key, {}), after.get(key, {})
        return {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0)}

    return {
        "total_calls": after["total_calls"] - before["total_calls"],
        "calls": diff("calls"),
        "retries": diff("retries"),
        "rate_limited": diff("rate_limited"),
        "limiter_wait_seconds": round(after["limiter_wait_seconds"] - before["limiter_wait_seconds"], 3),
        "daily_remaining": after.get("daily_remaining"),
    }


def _url_fits(properties: Sequence[str]) -> bool:
    return len(",".join(properties)) <= LIST_URL_PROPERTY_CHARS


def _total(hook: Any, decl: ObjectDecl) -> int | None:
    """How many live records exist (one search call), for the ETA; None if HubSpot won't say."""
    try:
        return hook.search_page(decl.name, filter_groups=[], properties=["hs_object_id"], limit=1).total
    except Exception as err:  # an ETA is a nicety: never fail the run for it
        log.info("%s: no total for the ETA (%s)", decl.name, type(err).__name__)
        return None


def _extract_full(hook, decl, properties, writer, associations, result, expected=None) -> None:
    progress = _Progress(f"{decl.name} full", expected if expected is not None else _total(hook, decl), hook=hook)
    if _url_fits(properties):
        for page in hook.iter_list_pages(decl.name, properties):
            writer.write(page.results)
            result.records += len(page.results)
            associations.add(str(r["id"]) for r in page.results)
            progress.add(len(page.results))
        return
    ids: list[str] = []
    for page in hook.iter_list_pages(decl.name, [decl.cursor_property]):
        ids.extend(str(r["id"]) for r in page.results)
        if len(ids) >= 1_000:
            _hydrate(hook, decl, ids, properties, writer, associations, result)
            progress.add(len(ids))
            ids = []
    if ids:
        _hydrate(hook, decl, ids, properties, writer, associations, result)
        progress.add(len(ids))


def _hydrate(hook, decl, ids, properties, writer, associations, result) -> None:
    """Batch-read ``ids``; ids HubSpot reports missing (207) are read once more before they count as gone.

    A 207 can be passing (an id not yet readable, a replica behind): the second read recovers those.
    Ids still missing were deleted meanwhile (their archived copy is read by the archived listing) or
    are unreadable: they are logged and listed in the manifest (``missing_ids``), never dropped silently.
    """
    missing: list[str] = []
    for batch in hook.iter_batch_read(decl.name, ids, properties):
        _take_batch(batch, writer, associations, result)
        missing.extend(_unaccounted(batch))
    if missing:
        log.info("%s: %d ids missing from a batch read (207); reading them again", decl.name, len(missing))
        for batch in hook.iter_batch_read(decl.name, missing, properties):
            _take_batch(batch, writer, associations, result)
            result.missing_ids.extend(_unaccounted(batch))


def _unaccounted(batch) -> list[str]:
    """Requested ids neither returned nor absorbed by a returned survivor (merge), plus those HubSpot
    reported missing: a 207 that forgets to list an id must not lose it either."""
    accounted = set()
    for record in batch.results:
        accounted.add(str(record.get("id")))
        merged = (record.get("properties") or {}).get("hs_merged_object_ids") or ""
        accounted.update(i for i in merged.split(";") if i)
    reported = list(dict.fromkeys(batch.missing_ids))
    silent = [i for i in batch.requested_ids if i not in accounted and i not in reported]
    return reported + silent


def _take_batch(batch, writer, associations, result) -> None:
    writer.write(batch.results)
    result.records += len(batch.results)
    result.hydrated += len(batch.results)
    associations.add(str(r["id"]) for r in batch.results)


def _search_fits(properties: Sequence[str], cursor_property: str) -> bool:
    probe = {
        "filterGroups": [{"filters": [
            {"propertyName": cursor_property, "operator": "GTE", "value": "1" * 13},
            {"propertyName": cursor_property, "operator": "LT", "value": "1" * 13},
        ]}],
        "sorts": [{"propertyName": cursor_property, "direction": "ASCENDING"}],
        "properties": list(dict.fromkeys(["hs_object_id", cursor_property, *properties])),
        "limit": 200,
        "after": "10000",
    }
    return len(json.dumps(probe, separators=(",", ":"))) <= SEARCH_BODY_CHARS


def _extract_changes(hook, decl, window, properties, writer, associations, result, page_size, expected=None) -> None:
    assert window.start is not None
    direct = _search_fits(properties, decl.cursor_property)
    stats = SliceStats()
    search = partial(hook.search_page, decl.name)
    progress = _Progress(f"{decl.name} changes", expected, hook=hook)
    pending: list[str] = []
    for page in iter_changed(
        search,
        cursor_property=decl.cursor_property,
        start_ms=to_ms(window.start),
        end_ms=to_ms(window.end),
        properties=properties if direct else [],
        stats=stats,
        page_size=page_size,
    ):
        if direct:
            writer.write(page)
            result.records += len(page)
            associations.add(str(r["id"]) for r in page)
        else:
            pending.extend(str(r["id"]) for r in page)
            if len(pending) >= 1_000:
                _hydrate(hook, decl, pending, properties, writer, associations, result)
                pending = []
        progress.add(len(page))
    if pending:
        _hydrate(hook, decl, pending, properties, writer, associations, result)
    result.slices = {
        "queries": stats.queries, "pages": stats.pages, "keyset_drains": stats.keyset_drains,
        "duplicates_skipped": stats.duplicates_skipped,
    }


def _extract_archived(hook, decl, window, properties, writer, result) -> None:
    """Archived (deleted) records; in incremental runs only those archived since the window start."""
    since = window.start if window.mode != "full" else None
    for page in hook.iter_list_pages(decl.name, [decl.cursor_property, "hs_object_id"], archived=True):
        keep = []
        for record in page.results:
            archived_at = parse_hubspot_datetime(record.get("archivedAt"))
            if since is None or archived_at is None or archived_at >= since:
                keep.append(record)
        writer.write(keep)
        result.records += len(keep)
        result.archived += len(keep)
