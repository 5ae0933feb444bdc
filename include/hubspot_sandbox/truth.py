"""What HubSpot holds right now, for a test to compare the finance tables with.

``portal_truth(portal, {"deals": ["amount", …], …})`` reads the in-process portal under its lock:

- ``truth["contacts" | "companies" | "deals"]``: id → ``{"status": "live"|"archived"|"merged"|"purged",
  "merged_into": final surviving id (merge chains followed) or None, "properties": {requested + always-returned
  names: value} for live and archived records (None otherwise), "updated_at_ms": int,
  "archived_at_ms": int | None}``.
- ``truth[("deals", "contacts") | ("deals", "companies") | ("contacts", "companies")]``: for every live
  from-record, to-id → is_primary, exactly what the associations endpoint answers (the same
  ``AssociationStore.answer``); an empty dict when it answers nothing.

All ids are strings.
"""

from __future__ import annotations

import numpy as np

from .data import ObjectStore, Portal
from .schema import OBJECT_TYPES

ASSOCIATION_PAIRS = (("deals", "contacts"), ("deals", "companies"), ("contacts", "companies"))
_CHUNK = 4096


def portal_truth(portal: Portal, properties: dict[str, list[str]]) -> dict:
    with portal.lock:
        out: dict = {t: _records(portal.stores[t], list(properties.get(t) or ())) for t in OBJECT_TYPES}
        for from_t, to_t in ASSOCIATION_PAIRS:
            fs, ts = portal.stores[from_t], portal.stores[to_t]
            out[(from_t, to_t)] = {
                str(fs.base + i): {str(ts.base + j): p for j, p in portal.assoc.answer(from_t, to_t, i)}
                for i in np.flatnonzero(fs.active_mask()).tolist()}
        return out


def _status(store: ObjectStore, i: int) -> str:
    if store.purged[i]:
        return "purged"
    if store.merged[i]:
        return "merged"
    return "archived" if store.archived[i] else "live"


def _records(store: ObjectStore, props: list[str]) -> dict[str, dict]:
    n = store.n
    out: dict[str, dict] = {}
    for i in range(n):
        status = _status(store, i)
        out[str(store.base + i)] = {
            "status": status,
            "merged_into": str(store.final_id(i)) if status == "merged" else None,
            "properties": None,
            "updated_at_ms": int(store.lastmod[i]),
            "archived_at_ms": int(store.archived[i]) or None,
        }
    kept = np.flatnonzero((store.merged[:n] == 0) & (store.purged[:n] == 0))
    for s in range(0, len(kept), _CHUNK):
        for rec in store.records(kept[s: s + _CHUNK], props):
            out[rec["id"]]["properties"] = rec["properties"]
    return out
