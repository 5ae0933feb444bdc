"""The control API under ``/_sandbox/…``: how tests and demos steer the sandbox over HTTP.

No HubSpot auth (it is a loopback test tool); every call returns JSON. The Python client for it
is ``hubspot_sandbox.control.SandboxControl``.
"""

from __future__ import annotations

import json
import re

import numpy as np

from . import schema
from .api import Response
from .clock import iso_ms
from .data import NotFound
from .state import SandboxState


class ControlError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _ok(body=None, status=200) -> Response:
    return Response(status, body if body is not None else {"ok": True}, kind="control")


class ControlApi:
    def __init__(self, state: SandboxState, server=None):
        self.state = state
        self.server = server
        self.routes = [
            ("GET", r"/health", self.health),
            ("GET", r"/state", self.describe),
            ("POST", r"/reset", self.reset),
            ("POST", r"/records/(?P<type>[^/]+)", self.create),
            ("GET", r"/records/(?P<type>[^/]+)/(?P<id>\d+)", self.get_raw),
            ("PATCH", r"/records/(?P<type>[^/]+)/(?P<id>\d+)", self.modify),
            ("POST", r"/records/(?P<type>[^/]+)/(?P<id>\d+)/archive", self.archive),
            ("POST", r"/records/(?P<type>[^/]+)/(?P<id>\d+)/restore", self.restore),
            ("POST", r"/records/(?P<type>[^/]+)/(?P<id>\d+)/purge", self.purge),
            ("POST", r"/records/(?P<type>[^/]+)/merge", self.merge),
            ("POST", r"/records/(?P<type>[^/]+)/bulk_touch", self.bulk_touch),
            ("POST", r"/associations", self.associate),
            ("DELETE", r"/associations", self.dissociate),
            ("GET", r"/clock", self.clock),
            ("POST", r"/clock", self.set_clock),
            ("POST", r"/config", self.config),
            ("GET", r"/limits", self.limits),
            ("POST", r"/limits", self.set_limits),
            ("GET", r"/faults", self.faults),
            ("POST", r"/faults", self.add_fault),
            ("DELETE", r"/faults", self.clear_faults),
            ("DELETE", r"/faults/(?P<id>[^/]+)", self.remove_fault),
            ("GET", r"/triggers", self.triggers),
            ("POST", r"/triggers", self.add_trigger),
            ("DELETE", r"/triggers", self.clear_triggers),
            ("GET", r"/stats", self.stats),
            ("POST", r"/stats/reset", self.reset_stats),
            ("GET", r"/tokens", self.tokens),
            ("POST", r"/tokens", self.add_token),
            ("POST", r"/tokens/revoke", self.revoke),
            ("POST", r"/tokens/rotate", self.rotate),
            ("POST", r"/tokens/scopes", self.scopes),
        ]
        self.routes = [(m, re.compile(r"^/_sandbox" + p + r"/?$"), fn) for m, p, fn in self.routes]

    def handle(self, method: str, path: str, body: bytes) -> Response:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return _ok({"error": "body is not JSON"}, 400)
        for meth, rx, fn in self.routes:
            mt = rx.match(path)
            if mt and meth == method:
                try:
                    return fn(data or {}, **mt.groupdict())
                except ControlError as e:
                    return _ok({"error": str(e)}, e.status)
                except NotFound as e:
                    return _ok({"error": f"record not found: {e}"}, 404)
                except (KeyError, ValueError, TypeError) as e:
                    return _ok({"error": f"{type(e).__name__}: {e}"}, 400)
        return _ok({"error": f"no control route {method} {path}"}, 404)

    # ------------------------------------------------------------ helpers
    def _store(self, t):
        if t not in schema.TYPE_ALIASES:
            raise ControlError(400, f"unknown object type {t}")
        return self.state.portal.store(t)

    def _record(self, store, i):
        return store.records(np.array([i]), list(store.props), archived=bool(store.archived[i]))[0]

    def _raw(self, store, i):
        """The stored record whatever its state, with ``mergedInto`` and ``purged`` for inspection."""
        rec = self._record(store, i)
        rec["mergedInto"] = str(store.merged[i]) if store.merged[i] else None
        rec["purged"] = bool(store.purged[i])
        if store.purged[i]:
            rec["purgedAt"] = iso_ms(int(store.purged[i]))
        return rec

    # ------------------------------------------------------------ endpoints
    def health(self, _d):
        return _ok({"ok": True})

    def describe(self, _d):
        p = self.state.portal
        from dataclasses import asdict

        with p.lock:
            counts = {t: {"total": s.n, "live": int(s.active_mask().sum()),
                          "archived": int(s.archived_mask().sum()),
                          "merged_away": int((s.merged[: s.n] != 0).sum()),
                          "purged": int((s.purged[: s.n] != 0).sum()),
                          "first_id": str(s.base), "last_id": str(s.base + s.n - 1)}
                      for t, s in p.stores.items()}
        return _ok({"config": asdict(p.config), "counts": counts, "recent_activity": p.recent_activity,
                    "clock_ms": p.now_ms(),
                    "clock_frozen": self.state.clock.frozen, "limits": self.state.limiter.snapshot()})

    def reset(self, d):
        cfg = self.state.reset(**d)
        return _ok({"config": cfg})

    def create(self, d, type):
        p = self.state.portal
        store = self._store(type)
        with p.lock:
            i = store.create(d.get("properties") or {}, int(d.get("at_ms") or p.now_ms()))
            return _ok(self._record(store, i), 201)

    def get_raw(self, _d, type, id):
        store = self._store(type)
        with self.state.portal.lock:
            return _ok(self._raw(store, store.index(id)))

    def modify(self, d, type, id):
        p = self.state.portal
        store = self._store(type)
        with p.lock:
            i = store.resolve(id, archived=bool(store.archived[store.index(id)]))
            store.modify(i, d.get("properties") or {}, int(d.get("at_ms") or p.now_ms()))
            return _ok(self._record(store, i))

    def archive(self, d, type, id):
        p = self.state.portal
        store = self._store(type)
        with p.lock:
            i = store.resolve(id)
            store.archive(i, int(d.get("at_ms") or p.now_ms()))
            return _ok(self._record(store, i))

    def restore(self, d, type, id):
        p = self.state.portal
        store = self._store(type)
        with p.lock:
            i = store.resolve(id, archived=True)
            store.restore(i, int(d.get("at_ms") or p.now_ms()))
            return _ok(self._record(store, i))

    def purge(self, d, type, id):
        """Permanent (GDPR) delete of a live or archived record; a merged-away id is refused (400)."""
        p = self.state.portal
        store = self._store(type)
        with p.lock:
            i = store.index(id)
            store.purge(i, int(d.get("at_ms") or p.now_ms()))
            return _ok(self._raw(store, i))

    def merge(self, d, type):
        p = self.state.portal
        store = self._store(type)
        with p.lock:
            keep = store.resolve(d["primary"])
            gone = store.resolve(d["absorbed"])
            store.merge(keep, gone, int(d.get("at_ms") or p.now_ms()))
            return _ok(self._record(store, keep))

    def bulk_touch(self, d, type):
        return _ok(self.state.portal.bulk_touch(type, int(d["count"]), d.get("at_ms"), d.get("properties"),
                                                int(d.get("start", 0))))

    def _edge(self, d, present):
        p = self.state.portal
        ft, tt = schema.TYPE_ALIASES[d["from_type"]], schema.TYPE_ALIASES[d["to_type"]]
        with p.lock:
            fs, ts = p.stores[ft], p.stores[tt]
            fi, ti = fs.resolve(d["from_id"]), ts.resolve(d["to_id"])
            p.assoc.set_edge(ft, fi, tt, ti, bool(d.get("primary", False)), present)
            if p.config.touch_on_associate:
                fs.lastmod[fi] = p.now_ms()
        return _ok()

    def associate(self, d):
        return self._edge(d, True)

    def dissociate(self, d):
        return self._edge(d, False)

    def clock(self, _d):
        return _ok({"now_ms": self.state.clock.now_ms(), "frozen": self.state.clock.frozen})

    def set_clock(self, d):
        c = self.state.clock
        if d.get("freeze"):
            c.freeze(d.get("at_ms"))
        elif d.get("at_ms") is not None:
            c.set(int(d["at_ms"]))
        if d.get("advance_ms"):
            c.advance(int(d["advance_ms"]))
        if d.get("freeze") is False:
            c.unfreeze()
        return self.clock(d)

    def config(self, d):
        cfg = self.state.portal.config
        allowed = ("search_lag_ms", "search_body_limit", "association_page_size", "max_url_length", "touch_on_associate",
                   "association_empty_as_error")
        for k, v in d.items():
            if k not in allowed:
                raise ControlError(400, f"option {k!r} is not live-configurable; one of {allowed} (others need reset)")
            setattr(cfg, k, v)
        return _ok({k: getattr(cfg, k) for k in allowed})

    def limits(self, _d):
        return _ok(self.state.limiter.snapshot())

    def set_limits(self, d):
        d = dict(d)
        reset = d.pop("reset_counters", False)
        daily_used = d.pop("daily_used", None)
        self.state.limiter.configure(**d)
        if reset:
            self.state.limiter.reset()
        if daily_used is not None:
            self.state.limiter.set_daily_used(daily_used)
        return _ok(self.state.limiter.snapshot())

    def faults(self, _d):
        return _ok({"rules": self.state.faults.list()})

    def add_fault(self, d):
        return _ok(self.state.faults.add(**d).to_dict(), 201)

    def clear_faults(self, _d):
        self.state.faults.clear()
        return _ok()

    def remove_fault(self, _d, id):
        if not self.state.faults.remove(id):
            raise ControlError(404, f"no fault rule {id}")
        return _ok()

    def triggers(self, _d):
        return _ok({"triggers": self.state.triggers.list()})

    def add_trigger(self, d):
        t = self.state.triggers.add(d.get("kind", "any"), d.get("n", 1), d.get("actions"), d.get("object_type"))
        return _ok(t.to_dict(), 201)

    def clear_triggers(self, _d):
        self.state.triggers.clear()
        return _ok()

    def fire(self, trigger) -> None:
        """Apply a due trigger's actions through the control routes, atomically under the portal lock."""
        portal = self.state.portal
        results = []
        with portal.lock:
            trigger.fired_at_ms = portal.now_ms()
            for a in trigger.actions:
                path = "/" + str(a["path"]).lstrip("/")
                if not path.startswith("/_sandbox/"):
                    path = "/_sandbox" + path
                method = str(a.get("method") or "POST").upper()
                body = a.get("body")
                resp = self.handle(method, path, json.dumps(body).encode() if body is not None else b"")
                results.append({"method": method, "path": path, "status": resp.status, "body": resp.body})
        trigger.results = results

    def stats(self, _d):
        return _ok(self.state.stats.snapshot())

    def reset_stats(self, _d):
        self.state.stats.reset()
        return _ok()

    def tokens(self, _d):
        return _ok({"tokens": self.state.tokens.describe()})

    def add_token(self, d):
        return _ok({"token": self.state.tokens.add(d.get("token"), d.get("scopes"))}, 201)

    def revoke(self, d):
        self.state.tokens.revoke(d.get("token"))
        return _ok()

    def rotate(self, d):
        new = self.state.tokens.rotate(d.get("token"), float(d.get("grace_seconds") or 0))
        if self.server is not None and d.get("token") in (None, ""):
            self.server._token_rotated(new)
        return _ok({"token": new})

    def scopes(self, d):
        return _ok({"scopes": self.state.tokens.set_scopes(d.get("scopes") or [], d.get("token"))})
