"""The id sweep: find records HubSpot deleted permanently (GDPR deletes), which no listing shows.

HubSpot's archived listing shows deleted records for 90 days; a permanent delete shows up nowhere,
so only a full id diff finds it: every id the finance tables hold as live or archived, minus every
id HubSpot lists as live or archived (the extractor lists those each run anyway). Live ids are
listed from both ends at once, each on its own budget (:mod:`hubspot_finance.two_ended`; a full
extraction hands over the ids it has just read that way). The few candidates left are read by id,
live and archived, with retries — a record found is written like any other (a restore that did not touch its modification time comes back this way;
a merged-away id resolves to its survivor) — and only ids missing from both are reported permanent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hubspot_finance.hydration import Hydrator
from hubspot_finance.objects import ObjectDecl
from hubspot_finance.two_ended import read_both_ends

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    live: int = 0  # ids HubSpot lists as live
    candidates: int = 0  # finance ids HubSpot listed neither live nor archived
    found: int = 0  # candidates a read by id still found (live, archived or merged)
    purged: list[dict[str, str]] = field(default_factory=list)  # [{"id", "detected_at"}]
    calls: int = 0


def sweep(hook: Any, decl: ObjectDecl, known_ids: Iterable[str], archived_ids: set[str], properties: list[str],
          on_records, *, live_ids: set[str] | None = None) -> SweepResult:
    """Ids of ``known_ids`` HubSpot no longer has at all; records still found go to ``on_records``.

    ``live_ids``: every live id, when the caller has just listed them (a full extraction)."""
    started = datetime.now(timezone.utc)
    before = hook.stats.total_calls
    result = SweepResult()
    live = set(live_ids) if live_ids is not None else list_live_ids(hook, decl)
    result.live = len(live)
    candidates = [i for i in known_ids if i not in live and i not in archived_ids]
    result.candidates = len(candidates)
    if candidates:
        found: list[dict[str, Any]] = []

        def take(records: list[dict[str, Any]]) -> None:
            found.extend(records)
            on_records(records)

        # one re-read each: a transient 207 would have to hit the same id four times in a row to pass for a delete
        live_read = Hydrator(hook, decl.name, properties, take, retries=1)
        live_read.read(candidates)
        archived_read = Hydrator(hook, decl.name, properties, take, archived=True, retries=1)
        archived_read.read(list(live_read.unread))
        result.found = result.candidates - len(archived_read.unread)
        detected = started.isoformat()
        result.purged = [{"id": i, "detected_at": detected} for i in sorted(archived_read.unread, key=int)]
    result.calls = hook.stats.total_calls - before
    log.info("%s id sweep: %d live in HubSpot, %d finance ids not listed, %d of them still found, %d permanently deleted, %d calls",
             decl.name, result.live, result.candidates, result.found, len(result.purged), result.calls)
    return result


def list_live_ids(hook: Any, decl: ObjectDecl) -> set[str]:
    """Every live id of ``decl``, listed from both ends at once on the two budgets (see the module docstring).

    Correct whatever the order or the search index does: ids search has not indexed yet are simply
    not listed, and the caller reads every unlisted id by id before calling it deleted.
    """
    listed: set[str] = set()
    lock = threading.Lock()

    def take(records: list[dict[str, Any]]) -> None:
        with lock:
            listed.update(str(r["id"]) for r in records)

    read_both_ends(hook, decl.name, list_properties=["hs_object_id"], search_properties=["hs_object_id"],
                   on_listed=take, on_searched=take, thread_name="sweep")
    return listed
