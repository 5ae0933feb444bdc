"""Reading records by id (batch read) without losing any: HubSpot's 207s are retried with backoff.

A batch read may answer 207 with some ids missing — for a record deleted meanwhile, but also
transiently for records that exist. Missing ids are read again with growing pauses; an id still
missing is *unread*: the extractor keeps its modification time so the object's watermark stops
before it (the next run reads it again), unless the archived listing of the same run shows it was
deleted. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

RETRIES = 3  # re-reads of missing ids, with pauses backoff_base × 1, 2, 4


class Hydrator:
    """Batch-reads ids into a record writer; tracks what could not be read."""

    def __init__(self, hook: Any, object_type: str, properties: list[str], on_records, *, archived: bool = False,
                 retries: int = RETRIES):
        self.hook, self.object_type, self.properties = hook, object_type, properties
        self.on_records = on_records  # callback(list of records) for what was read
        self.archived = archived
        self.retries = retries
        self.unread: dict[str, int | None] = {}  # id → modification ms (None if unknown)
        self.pause = float(getattr(hook, "backoff_base", 0.5) or 0.5)

    def read(self, ids: Iterable[str], modified_ms: dict[str, int] | None = None) -> None:
        missing = self._read_once(list(dict.fromkeys(ids)))
        for attempt in range(self.retries):
            if not missing:
                return
            log.info("%s: %d ids missing from a batch read (207); reading them again in %.2f s",
                     self.object_type, len(missing), self.pause * 2 ** attempt)
            time.sleep(self.pause * 2 ** attempt)
            missing = self._read_once(missing)
        for record_id in missing:
            self.unread[record_id] = (modified_ms or {}).get(record_id)

    def _read_once(self, ids: list[str]) -> list[str]:
        missing: list[str] = []
        for batch in self.hook.iter_batch_read(self.object_type, ids, self.properties, archived=self.archived):
            if batch.results:
                self.on_records(batch.results)
            missing.extend(unaccounted(batch))
        return missing


def unaccounted(batch: Any) -> list[str]:
    """Requested ids neither returned nor absorbed by a returned survivor (merge), plus those HubSpot
    reported missing: a 207 that forgets to list an id must not lose it either."""
    accounted = set()
    for record in batch.results:
        accounted.add(str(record.get("id")))
        merged = (record.get("properties") or {}).get("hs_merged_object_ids") or ""
        accounted.update(i for i in merged.split(";") if i)
    reported = [i for i in dict.fromkeys(batch.missing_ids) if i not in accounted]
    silent = [i for i in batch.requested_ids if i not in accounted and i not in reported]
    return reported + silent
