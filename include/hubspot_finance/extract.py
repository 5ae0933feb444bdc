"""Extraction: from HubSpot (through HubSpotHook) to the Parquet raw zone, one object type per call.

A run reads the window :mod:`hubspot_finance.windows` planned:
- ``full``: every live record from both ends of the id space at once (:mod:`hubspot_finance.two_ended`):
  ascending through the list endpoint on the general budget, descending through search by
  ``hs_object_id`` on the search budget, each id written once; properties in the URL / search body
  while they fit, otherwise ids first and a batch read with the properties in the body; plus every
  archived record;
- ``incremental``/``range``: the records whose last-modified time lies in the window, through search
  sliced by :mod:`hubspot_finance.search_slicing` (any number of changes, each id once), hydrated by
  batch read when the property list is too long for a search body; plus archived records whose
  ``archivedAt`` falls after the window start.
Archived records are read with their properties (a deletion keeps the values HubSpot shows).
Batch reads retry 207s (:mod:`hubspot_finance.hydration`); a change still unread holds the watermark
back. Associations of every extracted record, and — to catch association-only edits, which do not
touch modification times — of every live record the finance tables hold, are read 1,000 ids a call
(:mod:`hubspot_finance.association_reads`). Rejected records on the retry list are read again. On a
sweep run, :mod:`hubspot_finance.id_sweep` finds permanent deletes.
The returned manifest is small (paths, counts, window, calls): it is what the task puts in XCom.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

from hubspot_finance.association_reads import ASSOCIATION_BATCH, AssociationReader
from hubspot_finance.hydration import Hydrator
from hubspot_finance.id_sweep import sweep
from hubspot_finance.objects import ObjectDecl, associations_from
from hubspot_finance.rawzone import RawZone
from hubspot_finance.search_slicing import SliceStats, iter_changed
from hubspot_finance.state import FinanceIds
from hubspot_finance.timeparse import parse_hubspot_datetime, to_ms
from hubspot_finance.two_ended import SEARCH_PAGE, id_number, read_both_ends
from hubspot_finance.windows import Window

log = logging.getLogger(__name__)

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
    retried: int = 0  # rejected records on the retry list read again
    retry_gone: list[str] = field(default_factory=list)  # ids on the retry list HubSpot no longer has live
    unread: dict[str, int | None] = field(default_factory=dict)  # id → modification ms, after all retries
    associations: dict[str, int] = field(default_factory=dict)
    reconciliation: dict[str, int] = field(default_factory=dict)  # {"ids", "calls"} of the association reconciliation
    sweep: dict[str, int] = field(default_factory=dict)  # {"live", "candidates", "found", "purged", "calls"}
    calls: dict[str, Any] = field(default_factory=dict)
    slices: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    properties: list[str] = field(default_factory=list)
    dropped_properties: list[str] = field(default_factory=list)
    advances_to: datetime | None = None
    warnings: list[str] = field(default_factory=list)

    def as_manifest_extra(self) -> dict[str, Any]:
        calls = self.calls.get("total_calls", 0)
        unread = sorted(self.unread, key=int)
        return {
            **self.window.as_dict(),
            "advances_to": self.advances_to.isoformat() if self.advances_to else None,
            "records": self.records,
            "archived": self.archived,
            "hydrated": self.hydrated,
            "retried": self.retried,
            "retry_gone": self.retry_gone,
            "unread_ids": unread[:1000],
            "unread_count": len(unread),
            "associations": self.associations,
            "reconciliation": self.reconciliation,
            "sweep": self.sweep,
            "calls": self.calls,
            "calls_per_1000_records": round(1000 * calls / self.records, 2) if self.records else None,
            "search_slices": self.slices,
            "seconds": round(self.seconds, 3),
            "dropped_properties": self.dropped_properties,
            "warnings": self.warnings,
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
    finance: FinanceIds = FinanceIds(),
    reconcile_associations: bool = False,
    run_sweep: bool = False,
    full_from_both_ends: bool = True,
) -> dict[str, Any]:
    """Extract one object type for one window into the raw zone; returns the committed manifest.

    ``full_from_both_ends=False`` reads a full window through the list endpoint only: the old path,
    kept so the benchmark can show both side by side."""
    started = time.monotonic()
    before = hook.stats.as_dict()
    result = ExtractResult(decl.name, window, properties=list(properties), dropped_properties=list(dropped_properties),
                           advances_to=window.advances_to)
    if dropped_properties:
        log.warning(
            "%s: HubSpot no longer defines %s; they are not requested (check the mapping)",
            decl.name, ", ".join(dropped_properties),
        )
    writer = zone.record_writer(decl.name, run_id, properties)
    links = AssociationReader(hook, zone, decl, run_id)
    try:
        log.info("%s: %s extraction, window %s", decl.name, window.mode, _describe(window))

        def take(records: list[dict[str, Any]]) -> None:
            writer.write(records)
            result.records += len(records)
            links.add(str(r["id"]) for r in records if not r.get("archived"))

        def take_hydrated(records: list[dict[str, Any]]) -> None:
            result.hydrated += len(records)
            take(records)

        hydrator = Hydrator(hook, decl.name, properties, take_hydrated)
        listed_live: set[str] | None = None
        if window.mode == "full":
            listed_live = _extract_full(hook, decl, properties, take, hydrator, expected_records, both_ends=full_from_both_ends)
        elif not window.is_empty:
            _extract_changes(hook, decl, window, properties, take, hydrator, result, search_page_size, expected_records)
        if finance.retry:
            log.info("%s: reading %d rejected records again (retry list)", decl.name, len(finance.retry))
            retry = Hydrator(hook, decl.name, properties, take_hydrated, retries=0)  # gone: off the list, no waiting
            retry.read(finance.retry)
            result.retried = len(finance.retry) - len(retry.unread)
            result.retry_gone = sorted(retry.unread, key=int)
        archived_ids = _extract_archived(hook, decl, window, properties, take, result)
        for record_id in [i for i in hydrator.unread if i in archived_ids]:
            del hydrator.unread[record_id]  # deleted meanwhile: its archived copy was read
        result.unread = dict(hydrator.unread)
        if (run_sweep or window.mode == "full") and finance.known:
            # a full listing has just seen every live id: the sweep need not list them again
            swept = sweep(hook, decl, finance.known, archived_ids, properties, take_hydrated, live_ids=listed_live)
            writer.write_json("purged.json", swept.purged)
            result.sweep = {"live": swept.live, "candidates": swept.candidates, "found": swept.found,
                            "purged": len(swept.purged), "calls": swept.calls}
        if reconcile_associations and links.writers:
            links.drain()  # the read's own association batches, so the calls below are the reconciliation's
            calls_before = hook.stats.total_calls
            todo = [i for i in finance.live if i not in links.seen]
            links.add(todo)
            links.flush()
            result.reconciliation = {"ids": len(todo), "calls": hook.stats.total_calls - calls_before}
            log.info("%s: associations of %d unchanged records reconciled in %d calls", decl.name, len(todo),
                     result.reconciliation["calls"])
        _hold_watermark(result)
        result.associations = links.commit(window)
    finally:
        links.close()  # its reading thread stops whatever happened (commit has flushed it)
    result.calls = _calls_delta(before, hook.stats.as_dict())
    result.seconds = time.monotonic() - started
    manifest = writer.commit(result.as_manifest_extra())
    log.info(
        "%s: %d records (%d archived, %d hydrated), associations %s, %d calls (%s per 1,000 records) in %.1f s",
        decl.name, result.records, result.archived, result.hydrated, result.associations,
        result.calls.get("total_calls", 0), result.as_manifest_extra()["calls_per_1000_records"], result.seconds,
    )
    return {"dataset": manifest.dataset, "rows": manifest.rows, "parts": len(manifest.parts), **manifest.extra}


def _hold_watermark(result: ExtractResult) -> None:
    """Changes HubSpot would not hand over (207 after every retry) stop the watermark before the earliest one."""
    if not result.unread:
        return
    ids = sorted(result.unread, key=int)
    known = [ms for ms in result.unread.values() if ms is not None]
    window = result.window
    if len(known) < len(result.unread):
        hold = window.start  # a change of unknown time: the watermark stays where this window began
    else:
        hold = datetime.fromtimestamp(min(known) / 1000, timezone.utc)
    if result.advances_to is not None:
        result.advances_to = min(result.advances_to, hold) if hold is not None else None
    message = (f"{result.object_type}: {len(ids)} changed records could not be read from HubSpot after retries "
               f"(207): {', '.join(ids[:20])}; the watermark stops at "
               f"{result.advances_to.isoformat() if result.advances_to else 'its old value'} so the next run reads them again")
    log.warning("%s", message)
    result.warnings.append(message)


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
        general, search = _full_read_costs(hook, decl, properties, pairs)
        return {"records": records, "general_calls": records * general, "search_calls": records * search + 1}
    hydrate = 0 if _search_fits(properties, decl.cursor_property) else 1 / 100
    return {
        "records": records,
        "general_calls": records * (hydrate + pairs / ASSOCIATION_BATCH) + 1,
        "search_calls": records / 200 + 1,
    }


def _full_read_costs(hook: Any, decl: ObjectDecl, properties: Sequence[str], pairs: int) -> tuple[float, float]:
    """General and search calls per record of a full read from both ends, split where the two ends meet.

    The list end costs ``a`` general calls a record (a page of 100, a batch read if the URL cannot carry
    the properties, associations); the search end ``b`` (a batch read if the search body cannot carry
    them, associations) plus 1/200 of a search. The ends meet where both budgets run out together:
    a share ``f`` listed with ``f·a + (1-f)·b = (1-f)·r``, ``r`` the general calls the budget allows per
    record searched (general rate ÷ 200 × search rate).
    """
    settings = getattr(hook, "settings", None)
    general_rate = getattr(settings, "requests_per_ten_seconds", 100) / 10
    search_rate = getattr(settings, "search_requests_per_second", 5.0)
    associations = pairs / ASSOCIATION_BATCH
    a = (1 if _url_fits(properties) else 2) / 100 + associations
    b = (0 if _search_fits(properties, decl.cursor_property) else 1 / 100) + associations
    r = general_rate / (SEARCH_PAGE * search_rate)
    listed = min(1.0, max(0.0, (r - b) / (a - b + r)))
    return listed * a + (1 - listed) * b, (1 - listed) / SEARCH_PAGE


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



def _extract_full(hook, decl, properties, take, hydrator, expected=None, *, both_ends=True) -> set[str]:
    """Every live record (from both ends at once, or through the list endpoint only); returns the live ids seen."""
    progress = _Progress(f"{decl.name} full", expected if expected is not None else _total(hook, decl), hook=hook)
    if both_ends:
        return _read_from_both_ends(hook, decl, properties, take, hydrator, progress)
    listed: set[str] = set()
    if _url_fits(properties):
        for page in hook.iter_list_pages(decl.name, properties):
            listed.update(str(r["id"]) for r in page.results)
            take(page.results)
            progress.add(len(page.results))
        return listed
    ids: list[str] = []
    modified: dict[str, int] = {}
    for page in hook.iter_list_pages(decl.name, [decl.cursor_property]):
        for record in page.results:
            listed.add(str(record["id"]))
            ids.append(str(record["id"]))
            modified[str(record["id"])] = _modified_ms(record, decl.cursor_property)
        if len(ids) >= 1_000:
            hydrator.read(ids, modified)
            progress.add(len(ids))
            ids, modified = [], {}
    if ids:
        hydrator.read(ids, modified)
        progress.add(len(ids))
    return listed


def _read_from_both_ends(hook, decl, properties, take, hydrator, progress) -> set[str]:
    """The full read of :mod:`hubspot_finance.two_ended`, each id written once.

    An id both ends reach (near the meeting point) is claimed by the first; a batch read that answers a
    merged-away id with its survivor writes the survivor only if no end has written it yet. Properties
    travel in the list URL / search body while they fit, else each end reads ids and batch-reads them
    (outside the lock, so one end's reads never hold up the other).
    """
    lock = threading.Lock()
    seen: set[str] = set()  # live ids either end saw
    claimed: set[str] = set()  # ids written or handed to a batch read
    written: set[str] = set()

    def write(records: list[dict[str, Any]], sink) -> None:
        with lock:
            fresh = [r for r in records if str(r["id"]) not in written]
            written.update(str(r["id"]) for r in fresh)
            if fresh:
                sink(fresh)
                progress.add(len(fresh))

    def end(direct: bool):
        """One end's page handler, and its flush for what is left to batch-read."""
        reader = Hydrator(hook, decl.name, properties, lambda records: write(records, hydrator.on_records))
        pending: dict[str, int | None] = {}

        def flush() -> None:
            if pending:
                reader.read(list(pending), dict(pending))
                pending.clear()

        def on_page(records: list[dict[str, Any]]) -> None:
            malformed = [r for r in records if id_number(r) is None]
            if malformed:  # written as read, for the transform to reject with its reason; never deduplicated
                with lock:
                    take(malformed)
                    progress.add(len(malformed))
                records = [r for r in records if id_number(r) is not None]
            with lock:
                seen.update(str(r["id"]) for r in records)
                fresh = [r for r in records if str(r["id"]) not in claimed]
                claimed.update(str(r["id"]) for r in fresh)
            if direct:
                write(fresh, take)
                return
            pending.update((str(r["id"]), _modified_ms(r, decl.cursor_property)) for r in fresh)
            if len(pending) >= 1_000:
                flush()

        return on_page, flush, reader

    list_fits, search_fits = _url_fits(properties), _search_fits(properties, decl.cursor_property)
    on_listed, flush_listed, list_reader = end(list_fits)
    on_searched, flush_searched, search_reader = end(search_fits)
    meeting = read_both_ends(
        hook, decl.name,
        list_properties=properties if list_fits else [decl.cursor_property],
        search_properties=properties if search_fits else [decl.cursor_property],
        on_listed=on_listed,
        on_searched=on_searched,
        thread_name="full",
    )
    flush_listed()
    flush_searched()
    hydrator.unread.update(list_reader.unread)
    hydrator.unread.update(search_reader.unread)
    log.info("%s full: listed ascending to id %s, searched descending to id %s%s; %d live records",
             decl.name, meeting.list_max, meeting.search_min,
             "" if meeting.ordered else " (the list was not in id order: it read everything)", len(written))
    return seen


def _modified_ms(record: dict[str, Any], cursor_property: str) -> int | None:
    value = (record.get("properties") or {}).get(cursor_property) or record.get("updatedAt")
    moment = parse_hubspot_datetime(value)
    return to_ms(moment) if moment else None


def _extract_changes(hook, decl, window, properties, take, hydrator, result, page_size, expected=None) -> None:
    assert window.start is not None
    direct = _search_fits(properties, decl.cursor_property)
    stats = SliceStats()
    search = partial(hook.search_page, decl.name)
    progress = _Progress(f"{decl.name} changes", expected, hook=hook)
    pending: dict[str, int | None] = {}
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
            take(page)
        else:
            pending.update((str(r["id"]), _modified_ms(r, decl.cursor_property)) for r in page)
            if len(pending) >= 1_000:
                hydrator.read(list(pending), pending)
                pending = {}
        progress.add(len(page))
    if pending:
        hydrator.read(list(pending), pending)
    result.slices = {"pages": stats.pages, "records": stats.records}


def _extract_archived(hook, decl, window, properties, take, result) -> set[str]:
    """Archived (deleted) records with the values HubSpot still shows for them; in incremental runs
    only those archived since the window start. Returns every archived id HubSpot listed."""
    since = window.start if window.mode != "full" else None
    listed: set[str] = set()
    wide = not _url_fits(properties)
    fetch = Hydrator(hook, decl.name, properties, take, archived=True) if wide else None
    for page in hook.iter_list_pages(decl.name, [decl.cursor_property, "hs_object_id"] if wide else properties, archived=True):
        keep = []
        for record in page.results:
            listed.add(str(record.get("id")))
            archived_at = parse_hubspot_datetime(record.get("archivedAt"))
            if since is None or archived_at is None or archived_at >= since:
                keep.append(record)
        result.archived += len(keep)
        if fetch is None:
            take(keep)
        elif keep:
            fetch.read([str(r["id"]) for r in keep])
    if fetch is not None and fetch.unread:
        log.info("%s: %d archived records no longer readable (deleted for good meanwhile)", decl.name, len(fetch.unread))
    return listed


def _search_fits(properties: Sequence[str], cursor_property: str) -> bool:
    probe = {
        "filterGroups": [{"filters": [
            {"propertyName": cursor_property, "operator": "GTE", "value": "1" * 13},
            {"propertyName": cursor_property, "operator": "LT", "value": "1" * 13},
            {"propertyName": "hs_object_id", "operator": "GT", "value": "1" * 15},
        ]}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "properties": list(dict.fromkeys(["hs_object_id", cursor_property, *properties])),
        "limit": 200,
        "after": "10000",
    }
    return len(json.dumps(probe, separators=(",", ":"))) <= SEARCH_BODY_CHARS
