"""Reading every live record of an object type from both ends of the id space at once, each end on its own budget.

A list-only read is bound by the general budget (100 records a call) while the search budget (200 a
call, 5 calls a second) sits idle. So one thread lists ascending through the list endpoint and another
searches descending by ``hs_object_id`` keyset — each page a fresh query ``hs_object_id < lowest id
read so far``, so the 10,000-result cap never applies and an edit cannot shift a page. They stop where
they meet: every id at or below the list's highest id was listed, every id at or above the search's
lowest id was searched, and the two overlap. Ids are read from both sides at most one page each; the
callers deduplicate. If the list turns out not to be ascending, the list reads everything (correct,
just slower) and the search stops.

Used by the id sweep (:mod:`hubspot_finance.id_sweep`, ids only) and the full extraction
(:mod:`hubspot_finance.extract`, records with their properties).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hubspot_finance.search_slicing import SearchStalledError

SEARCH_PAGE = 200
DESCENDING = [{"propertyName": "hs_object_id", "direction": "DESCENDING"}]

Records = list[dict[str, Any]]


@dataclass
class Meeting:
    """Where the two ends have got to; an end stops once it reaches the other's position (or the other failed)."""

    list_max: float = -1  # highest id the ascending list has reached
    search_min: float = math.inf  # lowest id the descending search has reached
    ordered: bool = True  # the list endpoint really returns ids in ascending order (else it lists everything)
    failed: bool = False  # one end raised: the other stops at its next page

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def listed(self, ids: Sequence[int]) -> None:
        with self.lock:
            if any(b <= a for a, b in zip([self.list_max, *ids], ids)):
                self.ordered = False
            self.list_max = max([self.list_max, *ids])

    def searched(self, lowest: int) -> None:
        with self.lock:
            self.search_min = lowest

    def list_done(self) -> bool:
        with self.lock:
            return self.failed or (self.ordered and self.list_max >= self.search_min)

    def search_done(self) -> bool:
        with self.lock:
            return self.failed or not self.ordered or self.list_max >= self.search_min


def id_number(record: dict[str, Any]) -> int | None:
    """A record's id as a number; None for a malformed one (no id, not digits), which the transform rejects."""
    value = str(record.get("id") or "")
    return int(value) if value.isascii() and value.isdigit() else None


def _positions(records: Records) -> list[int]:
    """The ids that place a page in the id space (malformed ones say nothing about where an end is)."""
    return [n for n in map(id_number, records) if n is not None]


def read_both_ends(
    hook: Any,
    object_type: str,
    *,
    list_properties: Sequence[str],
    search_properties: Sequence[str],
    on_listed: Callable[[Records], None],
    on_searched: Callable[[Records], None],
    thread_name: str = "two-ended",
) -> Meeting:
    """Every live record of ``object_type``, pages handed to ``on_listed`` / ``on_searched`` from two threads.

    The callbacks run in their end's thread and must be thread-safe; a record near the meeting point
    may reach both. Ids the search index does not hold yet are not seen above the meeting point:
    callers rely on the next incremental window (a record created or changed during the read is
    stamped after the full window's end) or read unlisted ids by id (the sweep).
    """
    hook.general_budget, hook.search_limiter, hook.get_conn()  # create the shared limiters and session first
    meeting = Meeting()

    def ascending() -> None:
        for page in hook.iter_list_pages(object_type, list(list_properties)):
            ids = _positions(page.results)
            meeting.listed(ids)
            on_listed(page.results)
            if meeting.list_done():
                return

    def descending() -> None:
        below: int | None = None
        while not meeting.search_done():
            filters = [{"propertyName": "hs_object_id", "operator": "LT", "value": str(below)}] if below is not None else []
            page = hook.search_page(object_type, filter_groups=[{"filters": filters}] if filters else [],
                                    sorts=DESCENDING, properties=list(search_properties), limit=SEARCH_PAGE)
            ids = _positions(page.results)
            if not ids:
                return
            if below is not None and max(ids) >= below:
                raise SearchStalledError(f"{object_type}: search by hs_object_id < {below} returned id {max(ids)}; "
                                         "HubSpot's search is not honouring the filter — rerun; if it persists, report it")
            below = min(ids)
            meeting.searched(below)
            on_searched(page.results)
            if page.after is None:
                return

    def guarded(end: Callable[[], None]) -> None:
        try:
            end()
        except BaseException:
            with meeting.lock:
                meeting.failed = True
            raise

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"{thread_name}-{object_type}") as pool:
        jobs = [pool.submit(guarded, ascending), pool.submit(guarded, descending)]
        for job in jobs:
            job.result()
    return meeting
