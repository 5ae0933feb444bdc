"""Read every record changed in a time window through HubSpot search, despite its 10,000 cap.

Every page is a fresh keyset query; ``after`` (an offset) is never used. HubSpot's ``after`` is an
offset into the *current* result set: when a record already read is edited during the scan, it
leaves the window and every later record moves up one place, so the next offset page would skip one
record, which the watermark then moves past for good. A keyset query cannot skip: it asks for what
lies past the position already read, whatever moved meanwhile. Keyset paging also never nears the
10,000 cap, since no query is paged beyond its first page.

The window is read sorted by modification time: each query asks for ``cursor >= lo`` (and below the
window end), skips the ids it already emitted at millisecond ``lo`` (ties within a millisecond come
back in any order), then moves ``lo`` to the page's last millisecond. When a full page holds only
millisecond ``lo``, moving ``lo`` cannot progress, so that millisecond is drained by ``hs_object_id``
keyset (``EQ`` it, ``GT`` the last id, sorted by id) and the scan resumes at ``lo + 1``. Every step
advances strictly or raises :class:`SearchStalledError`, so the scan always terminates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

CAP = 10_000  # HubSpot's results per query; keyset pages never ask past the first page
PAGE = 200  # HubSpot's largest search page


class SearchStalledError(RuntimeError):
    """The search made no progress or contradicted itself; continuing could loop forever or lose records."""


class SearchPageLike(Protocol):
    results: list[dict[str, Any]]
    total: int
    after: int | None


SearchFn = Callable[..., SearchPageLike]


@dataclass
class SliceStats:
    queries: int = 0  # search requests; each page is its own keyset query, so this equals ``pages``
    pages: int = 0
    keyset_drains: int = 0  # milliseconds drained by id
    duplicates_skipped: int = 0  # records re-read at a keyset boundary and not emitted again


def modified_ms(record: dict[str, Any], cursor_property: str) -> int:
    """The record's modification time in epoch ms, from the cursor property (ISO or digits) or updatedAt."""
    from hubspot_finance.timeparse import parse_hubspot_datetime_ms

    value = (record.get("properties") or {}).get(cursor_property) or record.get("updatedAt")
    parsed = parse_hubspot_datetime_ms(value)
    if parsed is None:
        raise ValueError(f"record {record.get('id')!r} has no readable {cursor_property!r} ({value!r})")
    return parsed


def iter_changed(
    search: SearchFn,
    *,
    cursor_property: str,
    start_ms: int,
    end_ms: int,
    properties: list[str],
    stats: SliceStats | None = None,
    page_size: int = PAGE,
) -> Iterator[list[dict[str, Any]]]:
    """Yield pages of records whose ``cursor_property`` lies in ``[start_ms, end_ms)``.

    Each record that is not edited during the scan comes out exactly once; one edited during the scan
    may come out again (or, if it left the window, in the next window). ``search(filter_groups=...,
    sorts=..., properties=..., limit=..., after=0)`` performs one search call (the hook's
    ``search_page`` bound to an object type). One call per ``page_size`` records, plus one re-read of
    each page's last millisecond, plus a page or two per drained millisecond.
    """
    stats = stats if stats is not None else SliceStats()
    props = list(dict.fromkeys(["hs_object_id", cursor_property, *properties]))
    page_size = min(page_size, PAGE)
    lo = start_ms
    seen_at_lo: set[str] = set()  # ids already emitted whose time is exactly ``lo``
    while lo < end_ms:
        filters = [
            {"propertyName": cursor_property, "operator": "GTE", "value": str(lo)},
            {"propertyName": cursor_property, "operator": "LT", "value": str(end_ms)},
        ]
        results, more = _page(search, filters, cursor_property, props, page_size, stats)
        at_ms = [(str(r.get("id")), modified_ms(r, cursor_property), r) for r in results]
        if any(not lo <= ms < end_ms for _, ms, _ in at_ms):
            raise SearchStalledError(f"search for {cursor_property} in [{lo}, {end_ms}) answered records outside it")
        fresh = [r for rid, ms, r in at_ms if not (ms == lo and rid in seen_at_lo)]
        stats.duplicates_skipped += len(results) - len(fresh)
        if fresh:
            yield fresh
        if not more:
            return
        last_ms = max(ms for _, ms, _ in at_ms)
        at_last = {rid for rid, ms, _ in at_ms if ms == last_ms}
        if last_ms > lo:
            # Everything before last_ms has been read; re-read last_ms itself, skipping these ids.
            lo, seen_at_lo = last_ms, at_last
            continue
        # A full page all at millisecond ``lo``: drain it by id, then move past it.
        stats.keyset_drains += 1
        yield from _drain_millisecond(search, cursor_property, lo, props, seen_at_lo | at_last, stats, page_size)
        lo, seen_at_lo = lo + 1, set()


def _page(
    search: SearchFn, filters: list[dict[str, str]], sort_property: str, props: list[str], page_size: int,
    stats: SliceStats,
) -> tuple[list[dict[str, Any]], bool]:
    """The first page of one query, and whether more results follow it (a full page claiming more)."""
    sorts = [{"propertyName": sort_property, "direction": "ASCENDING"}]
    page = search(filter_groups=[{"filters": filters}], sorts=sorts, properties=props, limit=page_size, after=0)
    stats.queries += 1
    stats.pages += 1
    if not page.results and page.after is not None:
        raise SearchStalledError(f"search {filters} claimed more results but returned none; stopping instead of looping")
    return page.results, page.after is not None and len(page.results) >= page_size


def _drain_millisecond(
    search: SearchFn,
    cursor_property: str,
    ms: int,
    props: list[str],
    already: set[str],
    stats: SliceStats,
    page_size: int,
) -> Iterator[list[dict[str, Any]]]:
    """Every record at millisecond ``ms`` not in ``already``, by ``hs_object_id`` keyset."""
    last_id = 0
    more = True
    while more:
        filters = [
            {"propertyName": cursor_property, "operator": "EQ", "value": str(ms)},
            {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
        ]
        results, more = _page(search, filters, "hs_object_id", props, page_size, stats)
        if not results:
            return
        ids = [int(r.get("id")) for r in results]
        if min(ids) <= last_id or any(modified_ms(r, cursor_property) != ms for r in results):
            raise SearchStalledError(
                f"draining {cursor_property}={ms} by hs_object_id made no progress past id {last_id} (or answered "
                "another millisecond); HubSpot's search answers are inconsistent, so the run stops instead of looping"
            )
        last_id = max(ids)
        fresh = [r for r in results if str(r.get("id")) not in already]
        stats.duplicates_skipped += len(results) - len(fresh)
        if fresh:
            yield fresh
