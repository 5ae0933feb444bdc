"""Read every record changed in a time window through HubSpot search, despite its 10,000 cap.

HubSpot serves at most 10,000 results per search query, and a bulk job can stamp more than that
with one millisecond. So the window is read in slices sorted by modification time: when a slice
hits the cap, the next slice starts at the last millisecond seen (re-reading that millisecond;
duplicates are skipped by id). When one millisecond alone holds 10,000+ records, it is drained by
``hs_object_id`` keyset (``EQ`` that millisecond, ``GT`` the last id, sorted by id). Each step
must advance the position strictly; if it does not, :class:`SearchStalledError` stops the run.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

CAP = 10_000
PAGE = 200


class SearchStalledError(RuntimeError):
    """The search made no progress; continuing could loop forever."""


class SearchPageLike(Protocol):
    results: list[dict[str, Any]]
    total: int
    after: int | None


SearchFn = Callable[..., SearchPageLike]


@dataclass
class SliceStats:
    queries: int = 0  # distinct filter bodies (slices)
    pages: int = 0
    keyset_drains: int = 0  # milliseconds drained by id
    duplicates_skipped: int = 0


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
    """Yield pages of records whose ``cursor_property`` lies in ``[start_ms, end_ms)``, each id once.

    ``search(filter_groups=..., sorts=..., properties=..., limit=..., after=...)`` performs one
    search call (the hook's ``search_page`` bound to an object type).
    """
    stats = stats if stats is not None else SliceStats()
    props = list(dict.fromkeys(["hs_object_id", cursor_property, *properties]))
    lo = start_ms
    seen_at_lo: set[str] = set()  # ids already emitted whose time is exactly ``lo``
    while lo < end_ms:
        filters = [
            {"propertyName": cursor_property, "operator": "GTE", "value": str(lo)},
            {"propertyName": cursor_property, "operator": "LT", "value": str(end_ms)},
        ]
        last_ms: int | None = None
        emitted_at_last: set[str] = set()
        query = _query(search, filters, cursor_property, props, page_size, stats)
        while True:
            try:
                results = next(query)
            except StopIteration as done:
                capped = done.value
                break
            fresh = []
            for record in results:
                rid = str(record.get("id"))
                ms = modified_ms(record, cursor_property)
                if ms != last_ms:
                    last_ms, emitted_at_last = ms, set()
                emitted_at_last.add(rid)
                if ms == lo and rid in seen_at_lo:
                    stats.duplicates_skipped += 1
                    continue
                fresh.append(record)
            if fresh:
                yield fresh
        if not capped:
            return
        if last_ms is None:
            raise SearchStalledError(
                f"search for {cursor_property} >= {lo} claimed more results but returned none; stopping instead of looping"
            )
        if last_ms > lo:
            # Everything before last_ms is complete; re-read last_ms itself in the next slice.
            lo, seen_at_lo = last_ms, emitted_at_last
            continue
        # 10,000 results all at millisecond ``lo``: drain it by id, then move past it.
        stats.keyset_drains += 1
        yield from _drain_millisecond(search, cursor_property, lo, props, seen_at_lo | emitted_at_last, stats, page_size)
        lo, seen_at_lo = lo + 1, set()


def _query(
    search: SearchFn, filters: list[dict[str, str]], sort_property: str, props: list[str], page_size: int,
    stats: SliceStats,
) -> Generator[list[dict[str, Any]], None, bool]:
    """Page through one search query up to the cap; yields each page's results, returns whether capped."""
    stats.queries += 1
    sorts = [{"propertyName": sort_property, "direction": "ASCENDING"}]
    after = 0
    while True:
        limit = min(page_size, CAP - after)
        page = search(filter_groups=[{"filters": filters}], sorts=sorts, properties=props, limit=limit, after=after)
        stats.pages += 1
        yield page.results
        if page.after is None or not page.results:
            return False
        if page.after >= CAP:
            return True
        after = page.after


def _drain_millisecond(
    search: SearchFn,
    cursor_property: str,
    ms: int,
    props: list[str],
    already: set[str],
    stats: SliceStats,
    page_size: int,
) -> Iterator[list[dict[str, Any]]]:
    last_id = 0
    while True:
        filters = [
            {"propertyName": cursor_property, "operator": "EQ", "value": str(ms)},
            {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
        ]
        start_id = last_id
        query = _query(search, filters, "hs_object_id", props, page_size, stats)
        while True:
            try:
                results = next(query)
            except StopIteration as done:
                capped = done.value
                break
            fresh = []
            for record in results:
                rid = str(record.get("id"))
                last_id = max(last_id, int(rid))
                if rid in already:
                    stats.duplicates_skipped += 1
                    continue
                fresh.append(record)
            if fresh:
                yield fresh
        if not capped:
            return
        if last_id <= start_id:
            raise SearchStalledError(
                f"draining {cursor_property}={ms} by hs_object_id made no progress past id {start_id}; "
                "HubSpot's search answers are inconsistent, so the run stops instead of looping"
            )
