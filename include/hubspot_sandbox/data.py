"""The portal store: seeded records as numpy arrays plus a mutation overlay, and associations.

Design for scale: a record's base property values are never stored (see ``generate``); the store
keeps only per-record timestamps and lifecycle flags in int64 arrays (created, last-modified,
archived-at, merged-into, purged-at) and a dict overlay of properties changed after seeding. List,
search and batch read work on those arrays with numpy, then materialise only the page they return.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from . import generate as gen
from . import schema
from .clock import Clock, iso_ms, parse_ms


class NotFound(KeyError):
    """The id does not name a live record."""


@dataclass
class PortalConfig:
    """Sizes and knobs that shape the seeded portal and its HubSpot semantics."""

    seed: int = 42
    contacts: int = 200
    companies: int = 50
    deals: int = 150
    extra_properties: int = 5
    search_lag_ms: int = 0
    search_body_limit: int | None = 3000
    association_page_size: int = 500
    max_url_length: int = 8192
    touch_on_associate: bool = False
    association_empty_as_error: bool = False
    frozen_clock_ms: int | None = None
    recent_activity_days: int = 0  # > 0: people's edits over the last N days before the clock (see ``recent``)

    def sizes(self) -> dict[str, int]:
        return {"contacts": int(self.contacts), "companies": int(self.companies), "deals": int(self.deals)}


class ObjectStore:
    """Records of one object type."""

    def __init__(self, portal: "Portal", otype: str, n: int):
        self.portal, self.otype = portal, otype
        self.gen = gen.Generator(portal.config.seed, otype, portal.config.sizes())
        self.base = gen.ID_BASE[otype] + 1
        self.n_seeded = self.n = n
        arrays = gen.seed_arrays(self.gen, n)
        cap = max(16, n + n // 8 + 16)
        self.created = self._grow(arrays["created"], cap)
        self.lastmod = self._grow(arrays["lastmod"], cap)
        self.archived = self._grow(arrays["archived"], cap)
        self.merged = self._grow(arrays["merged"], cap)
        self.purged = self._grow(np.zeros(n, dtype=np.int64), cap)  # ms of a permanent (GDPR) delete, 0 = kept
        self.overlay: dict[int, dict[str, str | None]] = {}
        self._colcache: dict[tuple, np.ndarray] = {}
        absorbed = np.flatnonzero(self.merged[:n])
        for a in absorbed:
            self._add_merged_id(self.index(int(self.merged[a])), str(self.base + a))
        self.props = {p["name"]: p for p in schema.property_definitions(otype, portal.config.extra_properties)}

    @staticmethod
    def _grow(arr: np.ndarray, cap: int) -> np.ndarray:
        out = np.zeros(cap, dtype=np.int64)
        out[: len(arr)] = arr
        return out

    # ------------------------------------------------------------ ids
    def ids(self, idx) -> np.ndarray:
        return np.asarray(idx, dtype=np.int64) + self.base

    def index(self, rid) -> int:
        """Index of an id that exists (live, archived or merged); raises NotFound."""
        try:
            i = int(str(rid).strip()) - self.base
        except ValueError:
            raise NotFound(rid) from None
        if not 0 <= i < self.n:
            raise NotFound(rid)
        return i

    def resolve(self, rid, archived: bool = False) -> int:
        """Index of the record an id names now: merged-away ids follow to the survivor.

        Purged records never resolve; merged-away ids are not archived records, so ``archived=True``
        never follows a merge.
        """
        i = self.index(rid)
        if archived and self.merged[i]:
            raise NotFound(rid)
        i = self.final_id(i) - self.base
        if self.purged[i] or bool(self.archived[i]) != archived:
            raise NotFound(rid)
        return i

    def final_id(self, i: int) -> int:
        """Id at the end of record i's merge chain (its own id when it was not merged away)."""
        for _ in range(64):
            m = self.merged[i]
            if not m:
                break
            i = int(m) - self.base
        return self.base + i

    def active_mask(self) -> np.ndarray:
        n = self.n
        return (self.archived[:n] == 0) & (self.merged[:n] == 0) & (self.purged[:n] == 0)

    def archived_mask(self) -> np.ndarray:
        """Records an ``archived=true`` read returns: archived, not merged away, not purged."""
        n = self.n
        return (self.archived[:n] != 0) & (self.merged[:n] == 0) & (self.purged[:n] == 0)

    # ------------------------------------------------------------ values
    def values(self, prop: str, idx: np.ndarray) -> np.ndarray:
        """Effective values (object array) of ``prop`` for ``idx``: arrays, base, then overlay."""
        idx = np.asarray(idx, dtype=np.int64)
        if prop == "hs_object_id":
            return self.ids(idx).astype(str).astype(object)
        if prop == "createdate":
            return gen.iso_array(self.created[idx]).astype(object)
        if prop in ("hs_lastmodifieddate", "lastmodifieddate"):
            return gen.iso_array(self.lastmod[idx]).astype(object)
        seeded = idx < self.n_seeded
        if seeded.all():
            out = gen.base_values(self.gen, prop, idx, self)
        else:
            out = np.full(len(idx), None, dtype=object)
            if seeded.any():
                out[seeded] = gen.base_values(self.gen, prop, idx[seeded], self)
        if self.overlay:
            for k, i in enumerate(idx.tolist()):
                ov = self.overlay.get(i)
                if ov is not None and prop in ov:
                    out[k] = ov[prop]
        return out

    def records(self, idx, props, archived: bool = False) -> list[dict]:
        """HubSpot record objects for ``idx`` with the requested properties plus the always-on ones."""
        idx = np.asarray(idx, dtype=np.int64)
        wanted = list(dict.fromkeys(list(schema.ALWAYS_PROPERTIES[self.otype]) + [p for p in props if p]))
        known = [p for p in wanted if p in self.props or any(p in (self.overlay.get(i) or ()) for i in idx.tolist())]
        cols = {p: self.values(p, idx) for p in known}
        created = gen.iso_array(self.created[idx])
        lastmod = gen.iso_array(self.lastmod[idx])
        arch = self.archived[idx]
        out = []
        for k, i in enumerate(idx.tolist()):
            rec = {"id": str(self.base + i), "properties": {p: cols[p][k] for p in known},
                   "createdAt": str(created[k]), "updatedAt": str(lastmod[k]), "archived": bool(arch[k])}
            if arch[k]:
                rec["archivedAt"] = iso_ms(int(arch[k]))
            out.append(rec)
        return out

    def column(self, prop: str, kind: str) -> np.ndarray:
        """All n values of a property for search: ``kind`` 'num' (float, NaN = unset) or 'str'."""
        n = self.n
        if prop == "hs_object_id":
            return self.ids(np.arange(n)).astype(np.float64) if kind == "num" else self.ids(np.arange(n)).astype(str).astype(object)
        if prop == "createdate" and kind == "num":
            return self.created[:n]
        if prop in ("hs_lastmodifieddate", "lastmodifieddate") and kind == "num":
            return self.lastmod[:n]
        key = (prop, kind)
        base = self._colcache.get(key)
        if base is None:
            raw = self.values_base_all(prop)
            base = self._colcache[key] = _typed(raw, kind, self.props.get(prop, {}).get("type"))
        if len(base) < n:
            ext = np.full(n - len(base), np.nan if kind == "num" else None, dtype=base.dtype)
            base = np.concatenate([base, ext])
        patch = [(i, ov[prop]) for i, ov in self.overlay.items() if prop in ov and i < n]
        if patch:
            base = base.copy()
            ptype = self.props.get(prop, {}).get("type")
            for i, v in patch:
                base[i] = _typed(np.array([v], dtype=object), kind, ptype)[0]
        return base

    def values_base_all(self, prop: str) -> np.ndarray:
        if prop in ("createdate", "hs_lastmodifieddate", "lastmodifieddate"):
            return self.values(prop, np.arange(self.n_seeded))
        chunks = [gen.base_values(self.gen, prop, np.arange(s, min(s + 65536, self.n_seeded)), self)
                  for s in range(0, self.n_seeded, 65536)]
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=object)

    # ------------------------------------------------------------ mutations (caller holds the portal lock)
    def _ensure_cap(self, n: int) -> None:
        if n <= len(self.created):
            return
        cap = max(n, len(self.created) * 2)
        for name in ("created", "lastmod", "archived", "merged", "purged"):
            setattr(self, name, self._grow(getattr(self, name)[: self.n], cap))

    def create(self, properties: dict, now: int) -> int:
        self._ensure_cap(self.n + 1)
        i = self.n
        self.created[i] = self.lastmod[i] = now
        self.archived[i] = self.merged[i] = self.purged[i] = 0
        self.n += 1
        self.overlay[i] = {k: _str(v) for k, v in (properties or {}).items()}
        self._derive(i)
        return i

    def modify(self, i: int, properties: dict, now: int) -> None:
        ov = self.overlay.setdefault(i, {})
        for k, v in (properties or {}).items():
            if k in ("hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"):
                continue
            ov[k] = _str(v)
        self._derive(i)
        self.lastmod[i] = now

    def archive(self, i: int, now: int) -> None:
        """Delete record i as HubSpot's UI does: restorable, listed with ``archived=true``."""
        self.archived[i] = now

    def restore(self, i: int, now: int) -> None:
        """Bring an archived record back; HubSpot stamps the restore as a modification."""
        self.archived[i] = 0
        self.lastmod[i] = now

    def purge(self, i: int, now: int) -> None:
        """Permanently delete record i (GDPR): it vanishes from every read; its arrays stay for inspection."""
        if self.merged[i]:
            raise ValueError(f"{self.base + i} was merged into {int(self.merged[i])}; purge the survivor instead")
        if self.purged[i]:
            raise NotFound(str(self.base + i))
        self.purged[i] = now

    def _derive(self, i: int) -> None:
        """Recompute calculated deal properties after a change."""
        if self.otype != "deals":
            return
        ix = np.array([i])
        amt, cur = self.values("amount", ix)[0], self.values("deal_currency_code", ix)[0]
        stage = self.values("dealstage", ix)[0]
        ov = self.overlay.setdefault(i, {})
        ov["amount_in_home_currency"] = gen.home_amount(amt, cur)
        info = schema.STAGE_INFO.get(stage)
        ov["hs_is_closed_won"] = "true" if info and info[1][2] == "true" and info[1][3] == "1.0" else "false"

    def _add_merged_id(self, survivor: int, absorbed_id: str) -> None:
        ov = self.overlay.setdefault(survivor, {})
        cur = ov.get("hs_merged_object_ids")
        ids = [x for x in (cur or "").split(";") if x]
        if absorbed_id not in ids:
            ids.append(absorbed_id)
        ov["hs_merged_object_ids"] = ";".join(ids)

    def merge(self, primary: int, absorbed: int, now: int) -> None:
        if primary == absorbed:
            raise ValueError("cannot merge a record into itself")
        self._add_merged_id(primary, str(self.base + absorbed))
        for x in (self.overlay.get(absorbed, {}).get("hs_merged_object_ids") or "").split(";"):
            if x:
                self._add_merged_id(primary, x)
        self.merged[absorbed] = self.base + primary
        self.lastmod[primary] = now

    def absorbed_into(self, i: int) -> list[int]:
        """Indices merged (directly or transitively) into record i."""
        ids = (self.overlay.get(i, {}).get("hs_merged_object_ids") or "").split(";")
        out = []
        for x in ids:
            try:
                out.append(self.index(x))
            except NotFound:
                pass
        return out


def _str(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _typed(raw: np.ndarray, kind: str, ptype: str | None) -> np.ndarray:
    if kind == "str":
        return np.array([None if v is None else str(v).lower() for v in raw], dtype=object) if len(raw) else np.empty(0, dtype=object)
    out = np.full(len(raw), np.nan)
    for k, v in enumerate(raw):
        if v is None or v == "":
            continue
        if ptype in ("datetime", "date"):
            ms = parse_ms(v)
            if ms is not None:
                out[k] = ms
        else:
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


class AssociationStore:
    """Seeded association edges (sorted numpy arrays) plus an override overlay per edge."""

    def __init__(self, portal: "Portal"):
        self.portal = portal
        gens = {t: s.gen for t, s in portal.stores.items()}
        self.edges = gen.seed_edges(gens, portal.config.sizes())
        self._rev: dict[tuple, tuple] = {}
        # pair -> {(from_idx, to_idx) in canonical direction: None (removed) | primary flag}
        self.overrides: dict[tuple, dict[tuple[int, int], bool | None]] = {p: {} for p in schema.CANONICAL_PAIRS}
        self._by_end: dict[tuple, dict[int, set]] = {}

    def _canon(self, from_t, to_t):
        if (from_t, to_t) in self.edges:
            return (from_t, to_t), False
        if (to_t, from_t) in self.edges:
            return (to_t, from_t), True
        raise KeyError((from_t, to_t))

    def _reverse(self, pair):
        r = self._rev.get(pair)
        if r is None:
            f, t, pr = self.edges[pair]
            order = np.argsort(t, kind="stable")
            r = self._rev[pair] = (t[order], f[order], pr[order])
        return r

    def targets(self, from_t: str, to_t: str, i: int) -> list[tuple[int, bool]]:
        """(to index, primary) edges of from-record i: live targets only, merged targets resolved."""
        pair, rev = self._canon(from_t, to_t)
        keys, vals, prim = self._reverse(pair) if rev else self.edges[pair]
        lo, hi = np.searchsorted(keys, [i, i + 1])
        found: dict[int, bool] = {}
        for v, p in zip(vals[lo:hi].tolist(), prim[lo:hi].tolist()):
            found[v] = found.get(v, False) or p
        ov = self.overrides[pair]
        if ov:
            for e in self._by_end.get((pair, rev), {}).get(i, ()):
                v = e[0] if rev else e[1]
                p = ov[e]
                if p is None:
                    found.pop(v, None)
                elif rev:
                    found[v] = p  # reverse direction shows the edge; primary is the from side's notion
                else:
                    found[v] = p
        if not found:
            return []
        to_store = self.portal.stores[to_t]
        v = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
        p = np.fromiter(found.values(), dtype=bool, count=len(found))
        inside = v < to_store.n
        v, p = v[inside], p[inside]
        merged = to_store.merged[v]
        if merged.any():  # follow merges to the survivor (rare: loop per merged target)
            for k in np.flatnonzero(merged):
                try:
                    v[k] = to_store.resolve(str(to_store.base + v[k]))
                except NotFound:
                    v[k] = -1
        ok = v >= 0
        v, p = v[ok], p[ok]
        live = (to_store.archived[v] == 0) & (to_store.purged[v] == 0)
        v, p = v[live], p[live]
        out: dict[int, bool] = {}
        for j, pr in zip(v.tolist(), p.tolist()):
            out[j] = out.get(j, False) or pr
        return sorted(out.items())

    def answer(self, from_t: str, to_t: str, i: int) -> list[tuple[int, bool]]:
        """What the associations endpoint answers for resolved from-record i: sorted (to index, primary).

        Its own edges plus those of records merged into it; a merged-in record's edges move over,
        but not its primary flag. Targets are live, with merged targets followed to their survivor.
        """
        fs = self.portal.stores[from_t]
        out: dict[int, bool] = {}
        for src in [i] + fs.absorbed_into(i):
            own = src == i
            for j, p in self.targets(from_t, to_t, src):
                out[j] = out.get(j, False) or (p and own)
        return sorted(out.items())

    def set_edge(self, from_t, from_i, to_t, to_i, primary: bool, present: bool) -> None:
        pair, rev = self._canon(from_t, to_t)
        e = (to_i, from_i) if rev else (from_i, to_i)
        if present and primary and schema.ASSOCIATION_TYPES[pair][1] is not None:
            for other, was_primary in self.targets(pair[0], pair[1], e[0]):
                if other != e[1] and was_primary:
                    self._put(pair, (e[0], other), False)
        self._put(pair, e, (bool(primary) if present else None))

    def _put(self, pair, e, value) -> None:
        self.overrides[pair][e] = value
        self._by_end.setdefault((pair, False), {}).setdefault(e[0], set()).add(e)
        self._by_end.setdefault((pair, True), {}).setdefault(e[1], set()).add(e)


class Portal:
    """One HubSpot account: three object stores, associations, clock and config, behind one lock."""

    def __init__(self, config: PortalConfig | None = None, clock: Clock | None = None):
        self.config = config or PortalConfig()
        self.clock = clock or Clock(self.config.frozen_clock_ms)
        self.lock = threading.RLock()
        self._primary_cache = None
        self.stores: dict[str, ObjectStore] = {}
        sizes = self.config.sizes()
        for t in schema.OBJECT_TYPES:
            self.stores[t] = ObjectStore(self, t, sizes[t])
        self.assoc = AssociationStore(self)
        self.recent_activity: dict | None = None  # what ``recent.seed_recent_activity`` did, for /_sandbox/state
        if self.config.recent_activity_days:
            from .recent import seed_recent_activity

            self.recent_activity = seed_recent_activity(self, int(self.config.recent_activity_days))

    def store(self, otype: str) -> ObjectStore:
        return self.stores[schema.TYPE_ALIASES[otype]]

    def primary_company_of_contacts(self, idx: np.ndarray) -> np.ndarray:
        """Seeded primary company index per contact index (-1 when none): for the ``company`` name."""
        if self._primary_cache is None:
            f, t, pr = self.assoc.edges[("contacts", "companies")]
            n = self.stores["contacts"].n_seeded
            arr = np.full(n, -1, dtype=np.int64)
            arr[f[pr]] = t[pr]
            self._primary_cache = arr
        out = np.full(len(idx), -1, dtype=np.int64)
        ok = idx < len(self._primary_cache)
        out[ok] = self._primary_cache[idx[ok]]
        return out

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def bulk_touch(self, otype: str, count: int, at_ms: int | None = None, properties: dict | None = None,
                   start: int = 0) -> dict:
        """Stamp ``count`` live records with one modification millisecond (a HubSpot bulk job)."""
        with self.lock:
            s = self.store(otype)
            at = self.now_ms() if at_ms is None else int(at_ms)
            live = np.flatnonzero(s.active_mask())[int(start): int(start) + int(count)]
            s.lastmod[live] = at
            if properties:
                for i in live.tolist():
                    ov = s.overlay.setdefault(i, {})
                    ov.update({k: _str(v) for k, v in properties.items()})
            ids = s.ids(live)
            return {"count": int(len(live)), "at_ms": at,
                    "first_id": str(ids[0]) if len(ids) else None, "last_id": str(ids[-1]) if len(ids) else None}
