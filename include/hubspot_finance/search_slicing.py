"""Read every record changed in a time window through HubSpot search: by id keyset, never by offset.

HubSpot's ``after`` is an offset into the *current* result set: when a record already read is edited
during the scan, it leaves the window and every later record moves up one place, so the next offset
page would skip one record, which the watermark then moves past for good. So every page here is a
fresh query on a key that never changes and never ties: modification time within ``[start, end)``
and ``hs_object_id`` greater than the last id read, sorted by ``hs_object_id``. Whatever is edited
meanwhile (an edit stamps a time past the window's end, so it only ever *leaves* the window, to be
read by the next run), nothing that stays in the window can be skipped, nothing is read twice, and
it costs exactly one call per 200 records however many of them share a millisecond (a bulk job) —
no 10,000-results cap is ever met, since no query is paged past its first page. Every page must
move the last id forward or :class:`SearchStalledError` stops the run, so the scan always terminates.
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
    pages: int = 0  # search calls; each is its own keyset query
    records: int = 0


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

    ``search(filter_groups=..., sorts=..., properties=..., limit=..., after=0)`` performs one search
    call (the hook's ``search_page`` bound to an object type).
    """
    stats = stats if stats is not None else SliceStats()
    props = list(dict.fromkeys(["hs_object_id", cursor_property, *properties]))
    sorts = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    last_id = 0
    while True:
        filters = [
            {"propertyName": cursor_property, "operator": "GTE", "value": str(start_ms)},
            {"propertyName": cursor_property, "operator": "LT", "value": str(end_ms)},
            {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
        ]
        page = search(filter_groups=[{"filters": filters}], sorts=sorts, properties=props,
                      limit=min(page_size, PAGE), after=0)
        stats.pages += 1
        if not page.results:
            if page.after is not None:
                raise SearchStalledError(f"search past id {last_id} claimed more results but returned none; "
                                         "stopping instead of looping")
            return
        ids = [int(r.get("id")) for r in page.results]
        if min(ids) <= last_id or any(not start_ms <= modified_ms(r, cursor_property) < end_ms for r in page.results):
            raise SearchStalledError(
                f"search for ids past {last_id} in [{start_ms}, {end_ms}) made no progress or answered records "
                "outside its filter; HubSpot's search answers are inconsistent, so the run stops instead of looping"
            )
        stats.records += len(ids)
        yield page.results
        last_id = max(ids)
        if page.after is None:
            return
