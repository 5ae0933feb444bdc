"""HubSpot semantics: routing, auth and scopes, rate limits, and the CRM endpoints.

Transport-free: ``HubSpotApi.handle`` takes method, path, query, headers and body and returns a
``Response``, so the HTTP server (and fault injection around it) stays thin.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qs

import numpy as np

from . import schema
from .clock import parse_ms
from .data import NotFound, ObjectStore
from .limits import Limited
from .state import SandboxState

MAX_RESULTS = 10_000
JSON_CT = "application/json;charset=utf-8"


@dataclass
class Response:
    status: int
    body: object = None
    headers: dict = field(default_factory=dict)
    kind: str = "other"
    policy: str | None = None
    object_type: str | None = None  # the path's object type (the from type for associations)

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        text = json.dumps(self.body, ensure_ascii=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (e.g. stored from a "\ud800" escape): send it escaped, as JSON allows
            return json.dumps(self.body, separators=(",", ":")).encode("ascii")


class ApiError(Exception):
    def __init__(self, status: int, message: str, category: str, **extra):
        super().__init__(message)
        self.status, self.message, self.category, self.extra = status, message, category, extra

    def response(self) -> Response:
        return Response(self.status, error_body(self.message, self.category, **self.extra))


def error_body(message: str, category: str, **extra) -> dict:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update(extra)
    return body


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _validation(message: str, **extra) -> ApiError:
    return ApiError(400, message, "VALIDATION_ERROR", **extra)


def _enc(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _dec(cursor) -> int:
    if cursor in (None, ""):
        return 0
    try:
        s = str(cursor)
        raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode()
        if not raw.startswith("o"):
            raise ValueError
        return max(0, int(raw[1:]))
    except Exception:
        raise _validation(f"Invalid paging cursor: {cursor!r}") from None


_T = r"(?P<type>[^/]+)"
ROUTES = [
    (re.compile(rf"^/crm/(?:v3/objects|objects/2026-09)/{_T}/?$"), "GET", "list"),
    (re.compile(rf"^/crm/(?:v3/objects|objects/2026-09)/{_T}/search/?$"), "POST", "search"),
    (re.compile(rf"^/crm/(?:v3/objects|objects/2026-09)/{_T}/batch/read/?$"), "POST", "batch_read"),
    (re.compile(rf"^/crm/(?:v3/objects|objects/2026-09)/{_T}/(?P<id>[^/]+)/?$"), "GET", "get"),
    (re.compile(rf"^/crm/(?:v3/properties|properties/2026-09)/{_T}/?$"), "GET", "properties"),
    (re.compile(r"^/crm/(?:v3/pipelines|pipelines/2026-09)/(?P<type>deals|0-3)(?:/(?P<pid>[^/]+))?/?$"), "GET", "pipelines"),
    (re.compile(r"^/crm/(?:v4/associations|associations/2026-09)/(?P<from>[^/]+)/(?P<to>[^/]+)/batch/read/?$"), "POST", "associations"),
    (re.compile(r"^/account-info/(?:v3|2026-09)/details/?$"), "GET", "account"),
    (re.compile(r"^/crm/(?:v3/owners|owners/2026-09)/?$"), "GET", "owners"),
]


class HubSpotApi:
    def __init__(self, state: SandboxState):
        self.state = state

    # ------------------------------------------------------------ entry point
    def handle(self, method: str, path: str, query: str, headers, body: bytes, drop_ids=None,
               assoc_error_ids=None) -> Response:
        """Answer one call. ``drop_ids`` (batch read) and ``assoc_error_ids`` (associations) come from faults."""
        kind, otype = "unknown", None
        try:
            if len(path) + len(query) + 1 > self.state.portal.config.max_url_length:
                resp = Response(414, b"<html><body><h1>414 Request-URI Too Large</h1></body></html>",
                                {"Content-Type": "text/html"})
                resp.kind = "url_too_long"
                return resp
            route, m = self._route(method, path)
            kind = route
            gd = m.groupdict()
            otype = schema.TYPE_ALIASES.get(str(gd.get("type") or gd.get("from") or "").lower())
            token = self._auth(headers)
            self._scopes(token, route, m)
            search = route == "search"
            try:
                if search:
                    self.state.limiter.check_search()
                    rl_headers = {}
                else:
                    rl_headers = self.state.limiter.check(token.value)
            except Limited as e:
                return self._limited(e, kind)
            q = {k: v for k, v in parse_qs(query, keep_blank_values=True).items()}
            data = self._json(body) if method == "POST" else None
            injected = assoc_error_ids if route == "associations" else drop_ids
            resp = getattr(self, "_" + route)(m, q, data, injected)
            resp.headers.update(rl_headers)
            resp.kind, resp.object_type = kind, otype
            return resp
        except ApiError as e:
            r = e.response()
            r.kind, r.object_type = kind, otype
            return r

    def _route(self, method, path):
        matched_path = False
        for rx, meth, name in ROUTES:
            m = rx.match(path)
            if m:
                matched_path = True
                if meth == method:
                    return name, m
        if matched_path:
            raise ApiError(405, f"HTTP method {method} is not supported by this resource", "METHOD_NOT_ALLOWED")
        raise ApiError(404, f"Unable to route {method} request to {path}", "OBJECT_NOT_FOUND")

    def _auth(self, headers):
        value = headers.get("Authorization") or ""
        tok = None
        if value[:7].lower() == "bearer ":
            tok = self.state.tokens.get(value[7:].strip())
        if tok is None:
            raise ApiError(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                                "and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                           "INVALID_AUTHENTICATION")
        return tok

    def _scopes(self, token, route, m):
        needed: list[tuple[str, ...]] = []
        if route in ("list", "get", "search", "batch_read"):
            needed.append(schema.OBJECT_SCOPES[self._type(m.group("type"))])
        elif route == "properties":
            needed.append(schema.SCHEMA_SCOPES[self._type(m.group("type"))])
        elif route == "pipelines":
            needed.append(schema.SCHEMA_SCOPES["deals"])
        elif route == "associations":
            needed.append(schema.OBJECT_SCOPES[self._type(m.group("from"))])
            needed.append(schema.OBJECT_SCOPES[self._type(m.group("to"))])
        elif route == "owners":
            needed.append(schema.OWNER_SCOPES)
        for anyof in needed:
            if not token.scopes.intersection(anyof):
                raise ApiError(
                    403, "This app hasn't been granted all required scopes to make this call. "
                         "Read more about required scopes here: https://developers.hubspot.com/scopes.",
                    "MISSING_SCOPES",
                    errors=[{"message": "One or more of the following scopes are required.",
                             "context": {"requiredGranularScopes": list(anyof)}}],
                    links={"scopes": "https://developers.hubspot.com/scopes"})

    def _limited(self, e: Limited, kind: str) -> Response:
        if e.policy == "SECONDLY":
            body = {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
                    "correlationId": str(uuid.uuid4()), "policyName": "SECONDLY",
                    "groupName": "publicsearch:search-api-ratelimiter"}
        else:
            word = "daily" if e.policy == "DAILY" else "ten_secondly_rolling"
            body = {"status": "error", "message": f"You have reached your {word} limit.", "errorType": "RATE_LIMIT",
                    "correlationId": str(uuid.uuid4()), "policyName": e.policy,
                    "groupName": f"api-calls-{'daily' if e.policy == 'DAILY' else 'ten-secondly'}:{schema.ACCOUNT['portalId']}"}
        return Response(429, body, dict(e.headers), kind=kind, policy=e.policy)

    @staticmethod
    def _json(body: bytes):
        if not body:
            return {}
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Invalid input JSON on line 1: could not parse the request body", "VALIDATION_ERROR") from None
        if not isinstance(data, dict):
            raise _validation("Request body must be a JSON object")
        return data

    def _type(self, name: str) -> str:
        t = schema.TYPE_ALIASES.get(name.lower())
        if t is None:
            raise ApiError(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR")
        return t

    def _store(self, m) -> ObjectStore:
        return self.state.portal.store(self._type(m.group("type")))

    @staticmethod
    def _props_from_query(q) -> list[str]:
        out = []
        for v in q.get("properties", []):
            out.extend(p.strip() for p in v.split(",") if p.strip())
        return out

    # ------------------------------------------------------------ objects
    def _list(self, m, q, _data, _drop):
        store = self._store(m)
        try:
            limit = int((q.get("limit") or ["10"])[0])
        except ValueError:
            raise _validation("limit must be an integer") from None
        if limit < 1:
            raise _validation("limit must be at least 1")
        limit = min(limit, 100)
        archived = (q.get("archived") or ["false"])[0].lower() == "true"
        props = self._props_from_query(q) or list(schema.DEFAULT_PROPERTIES[store.otype])
        after = (q.get("after") or [""])[0]
        with self.state.portal.lock:
            start = 0
            if after:
                try:
                    start = max(0, int(after) - store.base)
                except ValueError:
                    raise _validation(f"Invalid after cursor: {after}") from None
            n = store.n
            picked = []
            chunk = max(256, limit * 4)
            s = start
            while s < n and len(picked) < limit + 1:
                e = min(n, s + chunk)
                kept = (store.merged[s:e] == 0) & (store.purged[s:e] == 0)
                arch = store.archived[s:e] != 0
                mask = (arch if archived else ~arch) & kept
                picked.extend((np.flatnonzero(mask) + s).tolist()[: limit + 1 - len(picked)])
                s, chunk = e, chunk * 4
            page = picked[:limit]
            results = store.records(np.array(page, dtype=np.int64), props)
        body = {"results": results}
        if len(picked) > limit:
            nxt = str(store.base + picked[limit])
            body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return Response(200, body)

    def _get(self, m, q, _data, _drop):
        store = self._store(m)
        archived = (q.get("archived") or ["false"])[0].lower() == "true"
        props = self._props_from_query(q) or list(schema.DEFAULT_PROPERTIES[store.otype])
        with self.state.portal.lock:
            try:
                i = store.resolve(m.group("id"), archived=archived)
            except NotFound:
                return Response(404, error_body("resource not found", "OBJECT_NOT_FOUND"))
            return Response(200, store.records(np.array([i]), props)[0])

    def _batch_read(self, m, _q, data, drop_ids):
        store = self._store(m)
        inputs = data.get("inputs")
        if not isinstance(inputs, list):
            raise _validation("inputs must be a list of {\"id\": …}")
        if len(inputs) > 100:
            raise _validation(f"Batch input size {len(inputs)} exceeds the limit of 100",
                              context={"inputs": [str(len(inputs))]})
        props = [p for p in (data.get("properties") or []) if isinstance(p, str)] or list(schema.DEFAULT_PROPERTIES[store.otype])
        archived = bool(data.get("archived", False))
        started = _now_iso()
        found, missing, seen = [], [], set()
        drop = set(str(x) for x in (drop_ids or ()))
        with self.state.portal.lock:
            for inp in inputs:
                rid = str(inp.get("id") if isinstance(inp, dict) else inp).strip()
                if rid in drop:
                    missing.append(rid)
                    continue
                try:
                    i = store.resolve(rid, archived=archived)
                except NotFound:
                    missing.append(rid)
                    continue
                if i not in seen:
                    seen.add(i)
                    found.append(i)
            results = store.records(np.array(found, dtype=np.int64), props)
        body = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}
        if missing:
            label = schema.SINGULAR[store.otype].upper()
            body["numErrors"] = 1
            body["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                               "message": f"Could not get some {label} objects, they may be deleted or not exist. "
                                          "Check that ids are valid.",
                               "context": {"ids": missing}}]
            return Response(207, body)
        return Response(200, body)

    # ------------------------------------------------------------ search
    def _search(self, m, _q, data, _drop):
        store = self._store(m)
        cfg = self.state.portal.config
        raw_len = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
        if cfg.search_body_limit and raw_len > cfg.search_body_limit:
            raise _validation(f"Search request body is {raw_len} characters; the limit is {cfg.search_body_limit}.")
        groups = data.get("filterGroups") or []
        if not isinstance(groups, list):
            raise _validation("filterGroups must be a list")
        if len(groups) > 5:
            raise _validation(f"Too many filter groups: {len(groups)}; at most 5 are allowed.",
                              subCategory="PublicSearchValidationError.TOO_MANY_FILTER_GROUPS")
        total_filters = 0
        for g in groups:
            fs = (g or {}).get("filters") or []
            if len(fs) > 6:
                raise _validation(f"Too many filters in a group: {len(fs)}; at most 6 are allowed.",
                                  subCategory="PublicSearchValidationError.TOO_MANY_FILTERS_IN_GROUP")
            total_filters += len(fs)
        if total_filters > 18:
            raise _validation(f"Too many filters: {total_filters}; at most 18 are allowed in total.",
                              subCategory="PublicSearchValidationError.TOO_MANY_FILTERS")
        sorts = data.get("sorts") or []
        if len(sorts) > 1:
            raise _validation("Only one sort is supported.")
        try:
            limit = int(data.get("limit", 10))
            after = int(data.get("after") or 0)
        except (TypeError, ValueError):
            raise _validation("limit and after must be integers") from None
        if limit < 0 or limit > 200:
            raise _validation(f"limit must be between 0 and 200 (was {limit})")
        if after < 0:
            raise _validation("after must not be negative")
        if after + limit > MAX_RESULTS:
            raise ApiError(400, "There was a problem with the request.", "VALIDATION_ERROR",
                           errors=[{"message": f"The sum of 'after' ({after}) and 'limit' ({limit}) must be at most {MAX_RESULTS}: "
                                               "search returns at most 10,000 results per query.",
                                    "code": "INVALID_PAGING"}])
        props = [p for p in (data.get("properties") or []) if isinstance(p, str)] or list(schema.DEFAULT_PROPERTIES[store.otype])
        with self.state.portal.lock:
            n = store.n
            mask = store.active_mask()
            horizon = self.state.portal.now_ms() - int(cfg.search_lag_ms or 0)
            mask &= store.lastmod[:n] <= horizon
            if groups:
                any_m = np.zeros(n, dtype=bool)
                for g in groups:
                    gm = mask.copy()
                    for f in (g or {}).get("filters") or []:
                        gm &= self._filter(store, f)
                    any_m |= gm
                mask = any_m
            matched = np.flatnonzero(mask)
            total = int(len(matched))
            need = after + limit
            if sorts:
                s = sorts[0] or {}
                page = self._sorted(store, matched, s.get("propertyName") or "hs_object_id",
                                    str(s.get("direction", "ASCENDING")).upper().startswith("DESC"), need)
            else:
                page = matched[:need]
            page = page[after:need]
            results = store.records(page, props)
        body = {"total": total, "results": results}
        if after + len(page) < total and limit > 0:
            body["paging"] = {"next": {"after": str(after + len(page))}}
        return Response(200, body)

    def _ptype(self, store, prop):
        if prop == "hs_object_id":
            return "number"
        return store.props.get(prop, {}).get("type", "string")

    def _sorted(self, store, matched, prop, desc, need):
        numeric = self._ptype(store, prop) in ("number", "datetime", "date")
        if numeric:
            keys = store.column(prop, "num")[matched].astype(np.float64)
        else:
            col = store.column(prop, "str")[matched]
            filled = np.array(["\uffff" if v is None else v for v in col], dtype=object)
            _u, keys = np.unique(filled.astype(str), return_inverse=True)
            keys = keys.astype(np.float64)
        if desc:
            keys = -keys
        if len(keys) > need > 0:
            kth = np.partition(keys, need - 1)[need - 1]
            if not np.isnan(kth):
                sel = np.flatnonzero(keys <= kth)
                order = sel[np.argsort(keys[sel], kind="stable")]
                return matched[order]
        return matched[np.argsort(keys, kind="stable")]

    def _filter(self, store: ObjectStore, f: dict) -> np.ndarray:
        prop, op = f.get("propertyName"), str(f.get("operator", "EQ")).upper()
        if not prop:
            raise _validation("Each filter needs a propertyName")
        ptype = self._ptype(store, prop)
        numeric = ptype in ("number", "datetime", "date")
        n = store.n
        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            if numeric:
                has = ~np.isnan(store.column(prop, "num").astype(np.float64))
            else:
                col = store.column(prop, "str")
                has = np.fromiter((v is not None and v != "" for v in col), dtype=bool, count=n)
            return has if op == "HAS_PROPERTY" else ~has
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(f.get("value", "")).lower()
            rx = re.compile(r"(^|[\s@.,;:_\-/])" + re.escape(token).replace(r"\*", r"\S*") + r"($|[\s@.,;:_\-/])")
            col = store.column(prop, "str")
            has = np.fromiter((v is not None and rx.search(v) is not None for v in col), dtype=bool, count=n)
            return has if op == "CONTAINS_TOKEN" else ~has

        def conv(v):
            if numeric:
                x = parse_ms(v) if ptype in ("datetime", "date") else _float(v)
                if x is None:
                    raise _validation(f"Invalid value {v!r} for {ptype} property {prop} with operator {op}")
                return float(x)
            return None if v is None else str(v).lower()

        if op in ("IN", "NOT_IN"):
            values = f.get("values")
            if not isinstance(values, list):
                raise _validation(f"Operator {op} needs a 'values' list")
            vals = [conv(v) for v in values]
            if numeric:
                hit = np.isin(store.column(prop, "num"), np.array(vals, dtype=np.float64))
            else:
                s = set(vals)
                hit = np.fromiter((v in s for v in store.column(prop, "str")), dtype=bool, count=n)
            return hit if op == "IN" else ~hit
        if "value" not in f:
            raise _validation(f"Operator {op} needs a value")
        v = conv(f.get("value"))
        if numeric:
            col = store.column(prop, "num")
            if op == "EQ":
                return col == v
            if op == "NEQ":
                return col != v
            if op == "LT":
                return col < v
            if op == "LTE":
                return col <= v
            if op == "GT":
                return col > v
            if op == "GTE":
                return col >= v
            if op == "BETWEEN":
                hv = conv(f.get("highValue"))
                return (col >= v) & (col <= hv)
        else:
            col = store.column(prop, "str")
            if op == "EQ":
                return np.fromiter((x == v for x in col), dtype=bool, count=n)
            if op == "NEQ":
                return np.fromiter((x != v for x in col), dtype=bool, count=n)
            cmp = {"LT": lambda x: x < v, "LTE": lambda x: x <= v, "GT": lambda x: x > v, "GTE": lambda x: x >= v}
            if op in cmp:
                fn = cmp[op]
                return np.fromiter((x is not None and fn(x) for x in col), dtype=bool, count=n)
            if op == "BETWEEN":
                hv = conv(f.get("highValue"))
                return np.fromiter((x is not None and v <= x <= hv for x in col), dtype=bool, count=n)
        raise _validation(f"Unsupported operator {op}")

    # ------------------------------------------------------------ metadata
    def _properties(self, m, _q, _data, _drop):
        store = self._store(m)
        return Response(200, {"results": list(store.props.values())})

    def _pipelines(self, m, _q, _data, _drop):
        pipes = schema.pipelines_payload()
        pid = m.group("pid")
        if pid:
            for p in pipes:
                if p["id"] == pid:
                    return Response(200, p)
            return Response(404, error_body(f"Unable to find pipeline {pid}", "OBJECT_NOT_FOUND"))
        return Response(200, {"results": pipes})

    def _account(self, _m, _q, _data, _drop):
        return Response(200, dict(schema.ACCOUNT))

    def _owners(self, _m, _q, _data, _drop):
        return Response(200, {"results": schema.owners_payload()})

    # ------------------------------------------------------------ associations
    def _associations(self, m, _q, data, error_ids):
        from_t, to_t = self._type(m.group("from")), self._type(m.group("to"))
        if (from_t, to_t) not in schema.ASSOCIATION_TYPES:
            raise _validation(f"No associations are defined from {from_t} to {to_t}")
        inputs = data.get("inputs")
        if not isinstance(inputs, list):
            raise _validation("inputs must be a list of {\"id\": …}")
        if len(inputs) > 1000:
            raise _validation(f"Batch input size {len(inputs)} exceeds the limit of 1000")
        type_id, primary_id = schema.ASSOCIATION_TYPES[(from_t, to_t)]
        portal = self.state.portal
        page_size = max(1, int(portal.config.association_page_size))
        failing = set(str(x) for x in (error_ids or ()))
        started = _now_iso()
        results, errors = [], []
        with portal.lock:
            fs, ts = portal.stores[from_t], portal.stores[to_t]
            for inp in inputs:
                if not isinstance(inp, dict):
                    inp = {"id": inp}
                rid = str(inp.get("id", "")).strip()
                if rid in failing:
                    errors.append(_assoc_error("INTERNAL_ERROR", f"Unable to read associations for {rid}; try again.", rid))
                    continue
                try:
                    i = fs.resolve(rid)
                except NotFound:
                    continue
                offset = _dec(inp.get("after"))
                items = portal.assoc.answer(from_t, to_t, i)
                if not items:
                    if portal.config.association_empty_as_error:
                        errors.append(_assoc_error(
                            "OBJECT_NOT_FOUND", f"No {schema.SINGULAR[to_t]} is associated with {schema.SINGULAR[from_t]} {rid}.",
                            rid, subCategory="crm.associations.NO_ASSOCIATIONS_FOUND"))
                    continue
                chunk = items[offset: offset + page_size]
                to = []
                for j, p in chunk:
                    types = []
                    if p and primary_id is not None:
                        types.append({"category": "HUBSPOT_DEFINED", "typeId": primary_id, "label": "Primary"})
                    types.append({"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None})
                    to.append({"toObjectId": int(ts.base + j), "associationTypes": types})
                res = {"from": {"id": rid}, "to": to}
                if offset + page_size < len(items):
                    res["paging"] = {"next": {"after": _enc(offset + page_size), "link": None}}
                results.append(res)
        body = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return Response(207, body)
        return Response(200, body)


def _assoc_error(category: str, message: str, rid: str, **extra) -> dict:
    """One per-id entry of an associations 207 ``errors`` list."""
    return {"status": "error", "category": category, **extra, "message": message, "context": {"fromObjectId": [rid]}}


def _float(v):
    try:
        return float(str(v).strip())
    except (TypeError, ValueError):
        return None
