"""Reading associations (v4 batch read, 1,000 ids a call) into the raw zone, never mistaking an error for "no links".

An id HubSpot answers without associations (omitted, or an error saying so) gets an empty set; an id
answered with any other per-id error is read again with backoff and, if it still fails, is left out
of the dataset entirely, so the loader keeps its stored links. Each dataset records when its reads
began (``read_at``): the loader never replaces a link set with one read earlier.

The reads run on a thread of their own: ``add`` only queues full batches, so the caller (the two ends
of a full read, the search slicing of an incremental one) never waits for an association call. A
failed read stops the reader; its error is raised by the next ``add``, ``drain``, ``flush`` or ``commit``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from hubspot_finance.objects import ObjectDecl, associations_from
from hubspot_finance.rawzone import RawZone
from hubspot_finance.windows import Window

log = logging.getLogger(__name__)

ASSOCIATION_BATCH = 1_000
RETRIES = 3


class AssociationReader:
    """Reads the associations of ids as they stream by, 1,000 at a time, per declared association.

    Thread-safe: ``add`` may be called from several threads. Each id is read once per run. Call
    ``commit`` (or ``close`` on failure) to stop the reading thread.
    """

    def __init__(self, hook: Any, zone: RawZone, decl: ObjectDecl, run_id: str):
        self.hook = hook
        self.object_type = decl.name
        self.read_at = datetime.now(timezone.utc)
        self.writers = {a.to_type: zone.association_writer(decl.name, a.to_type, run_id) for a in associations_from(decl.name)}
        self.pending: list[str] = []
        self.seen: set[str] = set()  # ids whose associations were asked for in this run
        self.failed: dict[str, list[str]] = {to_type: [] for to_type in self.writers}
        self.pause = float(getattr(hook, "backoff_base", 0.5) or 0.5)
        self._lock = threading.Lock()  # guards pending, seen and the worker's start
        self._batches: queue.Queue[list[str] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stopping = False

    def add(self, ids: Iterable[str]) -> None:
        """Queue ``ids`` not asked for yet; every full batch of 1,000 goes to the reading thread."""
        if not self.writers:
            return
        self._raise_failure()
        with self._lock:
            for record_id in ids:
                if record_id not in self.seen:
                    self.seen.add(record_id)
                    self.pending.append(record_id)
            while len(self.pending) >= ASSOCIATION_BATCH:
                batch, self.pending = self.pending[:ASSOCIATION_BATCH], self.pending[ASSOCIATION_BATCH:]
                self._submit(batch)

    def drain(self) -> None:
        """Wait until every queued batch is read (ids still pending stay pending)."""
        if self._worker is not None:
            self._batches.join()
        self._raise_failure()

    def flush(self) -> None:
        """Read everything added so far, the last partial batch too, and wait for it."""
        with self._lock:
            if self.pending:
                batch, self.pending = self.pending, []
                self._submit(batch)
        self.drain()

    def close(self) -> None:
        """Stop the reading thread; batches not read yet are dropped (call ``flush`` first to keep them)."""
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is None:
                return
            self._stopping = True
            self._batches.put(None)
        worker.join()

    def _submit(self, batch: list[str]) -> None:
        """Queue one batch (under ``_lock``), starting the reading thread on first use."""
        if self._worker is None:
            self._stopping = False
            self._worker = threading.Thread(target=self._work, name=f"associations-{self.object_type}", daemon=True)
            self._worker.start()
        self._batches.put(batch)

    def _work(self) -> None:
        while True:
            batch = self._batches.get()
            try:
                if batch is None:
                    return
                if self._error is None and not self._stopping:
                    self._read(batch)
            except BaseException as err:  # raised to the caller by its next add/drain/flush/commit
                self._error = err
            finally:
                self._batches.task_done()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _read(self, ids: list[str]) -> None:
        for to_type, writer in self.writers.items():
            todo = ids
            for attempt in range(RETRIES + 1):
                if attempt:
                    time.sleep(self.pause * 2 ** (attempt - 1))
                results, failed = self._read_once(to_type, todo)
                ok = [i for i in todo if i not in failed]
                writer.write([r for r in results if str((r.get("from") or {}).get("id")) not in failed])
                writer.add_covered(ok)
                todo = sorted(failed)
                if not todo:
                    break
            if todo:
                log.warning("%s→%s: associations of %d ids could not be read (%s); their stored links are kept",
                            self.object_type, to_type, len(todo), ", ".join(todo[:10]))
                self.failed[to_type].extend(todo)

    def _read_once(self, to_type: str, ids: list[str]) -> tuple[list[dict[str, Any]], set[str]]:
        """All result pages of ``ids`` (per-id paging followed), and the ids answered with a real error."""
        results: list[dict[str, Any]] = []
        failed: set[str] = set()
        for page in self.hook.iter_associations(self.object_type, to_type, ids):
            results.extend(page.results)
            failed.update(page.failed_ids)
        return results, failed

    def commit(self, window: Window) -> dict[str, int]:
        self.flush()
        self.close()
        counts = {}
        extra = {**window.as_dict(), "read_at": self.read_at.isoformat()}
        for to_type, writer in self.writers.items():
            extra_for = {**extra, "failed_ids": self.failed[to_type][:1000], "failed_count": len(self.failed[to_type])}
            counts[f"{self.object_type}_to_{to_type}"] = writer.commit(extra_for).rows
        return counts
