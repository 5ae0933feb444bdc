"""Raw-zone frames → finance rows: typing, validation, labels. Pure functions of frames.

Input: one raw-zone record chunk as a pandas frame (``id``, ``created_at``, ``updated_at``, ``archived``,
``archived_at``, ``p:<property>`` strings). Output: a :class:`TransformResult` with the table's rows
(load-ready: text, UTC timestamps, dates, exact decimals as plain decimal text, JSON as text), the
rejected records with all their reasons, the merges (absorbed id → survivor) and warning counts.

The rules and their outcomes are documented in :mod:`hubspot_finance.validation`. Memory is bounded
by the chunk: nothing here accumulates across chunks (the loader deduplicates across chunks in SQL).
Never imports the HubSpot hook.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hubspot_finance import validation as v
from hubspot_finance.mapping import FIXED_COLUMNS, Mapping
from hubspot_finance.objects import ObjectDecl, get_object
from hubspot_finance.rawzone import PROPERTY_PREFIX
from hubspot_finance.schema import ENTITY_COLUMNS, EXTRA_LOGICAL, NOT_FROM_TRANSFORM

DEFAULT_TIME_ZONE = "Europe/Oslo"


@dataclass(frozen=True)
class Stage:
    pipeline_id: str
    stage_id: str
    label: str | None
    is_closed: bool | None
    is_won: bool | None
    archived: bool = False


@dataclass(frozen=True)
class Reference:
    """Reference data of one run: property definitions, deal pipelines, account currency and zone."""

    property_types: dict[str, dict[str, str]]  # object type -> property -> HubSpot type
    pipelines: dict[str, str]  # pipeline id -> label
    stages: dict[tuple[str, str], Stage]  # (pipeline id, stage id) -> stage
    stages_by_id: dict[str, Stage]  # stage id -> stage (when unique across pipelines)
    company_currency: str | None
    currencies: frozenset[str]
    time_zone: str = DEFAULT_TIME_ZONE

    @classmethod
    def from_objects(
        cls,
        properties: dict[str, list[dict[str, Any]]] | None = None,
        pipelines: list[dict[str, Any]] | None = None,
        account: dict[str, Any] | None = None,
        time_zone: str | None = None,
    ) -> Reference:
        ptypes = {ot: {p["name"]: str(p.get("type") or "string") for p in props if p.get("name")} for ot, props in (properties or {}).items()}
        plabels: dict[str, str] = {}
        stages: dict[tuple[str, str], Stage] = {}
        by_id: dict[str, list[Stage]] = {}
        for pl in pipelines or []:
            pid = str(pl.get("id"))
            plabels[pid] = pl.get("label")
            for st in pl.get("stages") or []:
                meta = st.get("metadata") or {}
                closed = _meta_bool(meta.get("isClosed"))
                try:
                    prob = Decimal(str(meta.get("probability"))) if meta.get("probability") not in (None, "") else None
                except Exception:
                    prob = None
                won = None if closed is None else bool(closed and prob is not None and prob == 1)
                s = Stage(pid, str(st.get("id")), st.get("label"), closed, won, bool(st.get("archived", False)))
                stages[(pid, s.stage_id)] = s
                by_id.setdefault(s.stage_id, []).append(s)
        account = account or {}
        company = (account.get("companyCurrency") or "").strip().upper() or None
        extra = set()
        for c in account.get("additionalCurrencies") or []:
            code = c.get("currencyCode") if isinstance(c, dict) else c
            if code:
                extra.add(str(code).strip().upper())
        tz = time_zone or account.get("timeZone") or DEFAULT_TIME_ZONE
        ZoneInfo(tz)  # fail early on a bad zone
        return cls(
            ptypes, plabels, stages, {k: vs[0] for k, vs in by_id.items() if len(vs) == 1},
            company, frozenset(extra | ({company} if company else set())), tz,
        )

    @classmethod
    def from_zone(cls, zone: Any, run_id: str, time_zone: str | None = None) -> Reference:
        props = {}
        for ot in ("contacts", "companies", "deals"):
            props[ot] = zone.read_reference(run_id, f"properties_{ot}", default=[])
        return cls.from_objects(
            props, zone.read_reference(run_id, "pipelines_deals", default=[]),
            zone.read_reference(run_id, "account", default={}), time_zone,
        )


def _meta_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    try:
        return v.parse_bool(value)
    except ValueError:
        return None


@dataclass
class TransformResult:
    rows: pd.DataFrame
    rejects: list[dict[str, Any]] = field(default_factory=list)
    merges: list[tuple[str, str, datetime]] = field(default_factory=list)  # (absorbed, survivor, survivor updated_at)
    warnings: Counter = field(default_factory=Counter)
    extracted: int = 0


def table_columns(decl: ObjectDecl, mapping: Mapping) -> list[tuple[str, str]]:
    """(column, logical type) the transform produces for ``decl``'s table, extra columns last."""
    cols = [(c, t) for c, t in ENTITY_COLUMNS[decl.table] if c not in NOT_FROM_TRANSFORM]
    for extra in mapping.table(decl.table).extra_columns.values():
        cols.append((extra.name, EXTRA_LOGICAL[extra.type]))
    return cols


class _Issues:
    """Per-row reasons (reject) and warnings (null the field)."""

    def __init__(self, index: pd.Index):
        self.index = index
        self.reasons: dict[Any, list[dict[str, Any]]] = {}
        self.warns: dict[Any, list[dict[str, Any]]] = {}
        self.counts: Counter = Counter()

    def reject(self, idx: Any, rule: str, field_: str | None, value: Any, message: str) -> None:
        self.reasons.setdefault(idx, []).append({"rule": rule, "field": field_, "value": value, "message": message})

    def warn(self, idx: Any, rule: str, field_: str, value: Any, message: str) -> None:
        self.warns.setdefault(idx, []).append({"rule": rule, "field": field_, "value": value, "message": message})
        self.counts[rule] += 1


def _prop(frame: pd.DataFrame, prop: str | None) -> pd.Series:
    col = PROPERTY_PREFIX + prop if prop else None
    if col and col in frame.columns:
        s = frame[col].astype(object)
        return s.where(s.notna(), None)
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _clean_text(s: pd.Series) -> pd.Series:
    """Trimmed text (exactly ``str.strip()``), empty → None; vectorised."""
    arr, _ = _stripped(s)
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    return _obj(arr, s.index)


def _apply(
    s: pd.Series, fn: Callable[[Any], Any], issues: _Issues, *, rule: str, field_: str, reject: bool
) -> pd.Series:
    out: list[Any] = []
    for idx, value in zip(s.index, s.tolist()):
        if value is None:
            out.append(None)
            continue
        try:
            out.append(fn(value))
        except ValueError as exc:
            out.append(None)
            (issues.reject if reject else issues.warn)(idx, rule, field_, value, str(exc))
    return pd.Series(out, index=s.index, dtype=object)


def _extra_parser(ctype: str) -> Callable[[Any], Any]:
    if ctype == "number":
        return lambda x: (lambda d: None if d is None else v.format_decimal(d))(v.parse_decimal(x))
    if ctype == "date":
        return v.parse_date
    if ctype == "datetime":
        return v.parse_datetime
    if ctype == "bool":
        return v.parse_bool
    if ctype == "list":
        return lambda x: json.dumps(v.split_multi(x), ensure_ascii=False)
    return lambda x: x.strip() or None


def _close_date_parser(prop_type: str | None, tz: ZoneInfo) -> Callable[[Any], date | None]:
    def parse(value: Any) -> date | None:
        s = str(value).strip()
        if prop_type == "date" or (len(s) == 10 and s[4:5] == "-"):
            return v.parse_date(s)
        dt = v.parse_datetime(s)
        return None if dt is None else dt.astimezone(tz).date()

    return parse


def _ts_series(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True).astype("datetime64[ms, UTC]")


def transform_chunk(
    frame: pd.DataFrame,
    object_type: str,
    *,
    mapping: Mapping,
    reference: Reference,
    run_id: str,
    phone_region: str = "NO",
) -> TransformResult:
    """Transform one raw-zone chunk of ``object_type`` into finance rows, rejects, merges and warnings."""
    decl = get_object(object_type)
    tmap = mapping.table(decl.table)
    kinds = FIXED_COLUMNS[decl.table]
    tz = ZoneInfo(reference.time_zone)
    n_in = len(frame)
    frame = frame.reset_index(drop=True)
    issues = _Issues(frame.index)

    # ---- identity and times
    ids = frame["id"].astype(object).where(frame["id"].notna(), None)
    ok_id = _mask(pc.match_substring_regex(_arr(frame["id"]), r"^[0-9]{1,15}$"))
    for idx, rid in zip(ids.index[~ok_id], ids[~ok_id].tolist()):
        if rid is None or (isinstance(rid, str) and not rid.strip()):
            issues.reject(idx, "missing_id", "id", rid, "record has no id")
        elif not v.is_hubspot_id(rid):
            issues.reject(idx, "invalid_id", "id", rid, f"{rid!r} is not a HubSpot id")
    updated = _ts_series(frame["updated_at"])
    created = _ts_series(frame["created_at"])
    for idx in updated.index[updated.isna()]:
        issues.reject(idx, "missing_updated_at", "updated_at", None, "record has no parseable updatedAt")
    for idx in created.index[created.isna()]:
        issues.warn(idx, "invalid_created_at", "created_at", None, "record has no parseable createdAt")
    archived = frame["archived"].fillna(False).astype(bool)
    archived_at = _ts_series(frame["archived_at"])

    out: dict[str, Any] = {decl.key_column: ids}

    # ---- mapped fixed columns
    for col, kind in kinds.items():
        prop = tmap.columns.get(col)
        raw = _prop(frame, prop)
        if kind == "text":
            out[col] = _clean_text(raw)
        elif kind == "email":
            out[col] = _emails(raw, issues, col)
        elif kind == "phone":
            out[col] = _phones(raw, phone_region, issues, col)
        elif kind == "orgnr":
            out[col] = _apply(raw, v.parse_orgnr, issues, rule="invalid_orgnr", field_=col, reject=False)
        elif kind in ("money", "money_lenient"):
            rule = "invalid_amount" if kind == "money" else "invalid_amount_home_currency"
            out[col] = _money(raw, issues, col, rule, kind == "money")
        elif kind == "currency":
            out[col] = _currency(raw, reference, issues, col)
        elif kind == "close_date":
            ptype = reference.property_types.get(object_type, {}).get(prop or "")
            out[col] = _close_dates(raw, ptype, tz, issues, col)
        else:  # pragma: no cover - FIXED_COLUMNS and this switch are kept in step
            raise AssertionError(kind)

    if decl.table == "contracts":
        _labels(out, reference, issues)

    # ---- extra mapped columns
    for extra in tmap.extra_columns.values():
        out[extra.name] = _apply(_prop(frame, extra.property), _extra_parser(extra.type), issues, rule="invalid_value", field_=extra.name, reject=False)

    # ---- lifecycle
    out["created_at"] = created
    out["updated_at"] = updated
    out["is_deleted"] = archived
    out["deleted_at"] = archived_at.where(archived, pd.NaT).fillna(updated.where(archived, pd.NaT))
    out["deletion_kind"] = pd.Series(np.where(archived.to_numpy(), "archived", None), index=frame.index, dtype=object)
    out[decl.merged_into_column] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    out["properties"] = _properties_json(frame)
    warns_json = [None] * len(frame)
    for idx, ws in issues.warns.items():
        warns_json[idx] = json.dumps(ws, ensure_ascii=False, default=str)
    out["validation_warnings"] = pd.Series(warns_json, index=frame.index, dtype=object)

    cols = [c for c, _ in table_columns(decl, mapping)]
    rows = pd.DataFrame({c: out[c] for c in cols}, index=frame.index)

    # ---- rejects (never silently dropped)
    rejects = []
    if issues.reasons:
        bad = sorted(issues.reasons)
        for idx in bad:
            rid = ids.iloc[idx]
            rejects.append(
                {
                    "object_type": object_type,
                    "hubspot_id": rid if isinstance(rid, str) and rid.strip() else None,
                    "run_id": run_id,
                    "reasons": issues.reasons[idx],
                    "raw_record": _raw_record(frame.iloc[idx]),
                }
            )
        rows = rows.drop(index=bad)
    # ---- merges: survivors list absorbed ids in hs_merged_object_ids
    merges = []
    merged_raw = _prop(frame, "hs_merged_object_ids")
    for idx, value in merged_raw.dropna().items():
        if value is None or idx in issues.reasons:
            continue
        for absorbed in v.split_multi(value) or []:
            if v.is_hubspot_id(absorbed) and absorbed != ids.iloc[idx]:
                merges.append((absorbed, ids.iloc[idx], updated.iloc[idx].to_pydatetime()))
    # ---- deduplicate by id within the chunk: newest updated_at wins, ties → last read
    if rows[decl.key_column].duplicated().any():
        rows = rows.assign(_pos=range(len(rows))).sort_values(["updated_at", "_pos"], kind="stable")
        rows = rows.drop_duplicates(decl.key_column, keep="last").sort_values("_pos").drop(columns="_pos")
    return TransformResult(rows.reset_index(drop=True), rejects, merges, issues.counts, n_in)


def _currency(raw: pd.Series, ref: Reference, issues: _Issues, col: str) -> pd.Series:
    arr, _ = _stripped(raw)
    if pc.all(pc.string_is_ascii(arr)).as_py() is not False:  # ASCII: upper() is the same in Arrow
        up = pc.ascii_upper(arr)
        default = pa.scalar(ref.company_currency, pa.string())
        code = pc.if_else(pc.fill_null(pc.equal(up, ""), True), default, up)
        out = _obj(code, raw.index)
        if ref.currencies:
            bad = _mask(pc.invert(pc.is_in(code, pa.array(sorted(ref.currencies), pa.string())))) & out.notna().to_numpy()
            for idx, value, c in zip(raw.index[bad], raw[bad].tolist(), out[bad].tolist()):
                issues.reject(idx, "unknown_currency", col, value, f"currency {c!r} is not one of the account's currencies {sorted(ref.currencies)}")
        return out
    out = []
    for idx, value in raw.items():
        code = (value or "").strip().upper() or ref.company_currency
        if code is None:
            out.append(None)
            continue
        if ref.currencies and code not in ref.currencies:
            issues.reject(idx, "unknown_currency", col, value, f"currency {code!r} is not one of the account's currencies {sorted(ref.currencies)}")
        out.append(code)
    return pd.Series(out, index=raw.index, dtype=object)


def _labels(out: dict[str, Any], ref: Reference, issues: _Issues) -> None:
    """Pipeline/stage labels: resolved once per distinct (pipeline, stage) pair, then mapped."""
    index = out["pipeline_id"].index
    # factorize each column (None → -1), then the pair of integer codes: no per-row Python
    cp, up = pd.factorize(out["pipeline_id"].to_numpy(dtype=object))
    cs, us = pd.factorize(out["stage_id"].to_numpy(dtype=object))
    width = len(us) + 1
    codes, uc = pd.factorize((cp.astype(np.int64) + 1) * width + (cs + 1))
    resolved = []
    for c in uc.tolist():
        pid = None if c // width == 0 else up[c // width - 1]
        sid = None if c % width == 0 else us[c % width - 1]
        stage = None
        if sid:
            stage = ref.stages.get((pid, sid)) if pid else None
            stage = stage or ref.stages_by_id.get(sid)
        resolved.append((ref.pipelines.get(pid) if pid else None, stage, bool(pid and pid not in ref.pipelines),
                         bool(sid and stage is None), pid, sid))
    if resolved:
        for name, pos in (("pipeline_label", 0),):
            out[name] = pd.Series(np.array([r[0] for r in resolved], dtype=object)[codes], index=index, dtype=object)
        for name, attr in (("stage_label", "label"), ("is_closed", "is_closed"), ("is_won", "is_won")):
            per = np.empty(len(resolved), dtype=object)
            per[:] = [getattr(r[1], attr) if r[1] else None for r in resolved]
            out[name] = pd.Series(per[codes], index=index, dtype=object)
        warn_p = np.array([r[2] for r in resolved])[codes]
        warn_s = np.array([r[3] for r in resolved])[codes]
        for i in np.flatnonzero(warn_p | warn_s):
            _, _, wp, ws, pid, sid = resolved[codes[i]]
            idx = index[i]
            if wp:
                issues.warn(idx, "unknown_pipeline", "pipeline_id", pid, f"pipeline {pid!r} is not in the account's deal pipelines")
            if ws:
                issues.warn(idx, "unknown_stage", "stage_id", sid, f"stage {sid!r} is not in pipeline {pid!r}")
        return
    pl_labels, st_labels, closed, won = [], [], [], []
    for idx, pid, sid in zip(out["pipeline_id"].index, out["pipeline_id"].tolist(), out["stage_id"].tolist()):
        pl_label = ref.pipelines.get(pid) if pid else None
        if pid and pid not in ref.pipelines:
            issues.warn(idx, "unknown_pipeline", "pipeline_id", pid, f"pipeline {pid!r} is not in the account's deal pipelines")
        stage = None
        if sid:
            stage = ref.stages.get((pid, sid)) if pid else None
            stage = stage or ref.stages_by_id.get(sid)
            if stage is None:
                issues.warn(idx, "unknown_stage", "stage_id", sid, f"stage {sid!r} is not in pipeline {pid!r}")
        pl_labels.append(pl_label)
        st_labels.append(stage.label if stage else None)
        closed.append(stage.is_closed if stage else None)
        won.append(stage.is_won if stage else None)
    index = out["pipeline_id"].index
    out["pipeline_label"] = pd.Series(pl_labels, index=index, dtype=object)
    out["stage_label"] = pd.Series(st_labels, index=index, dtype=object)
    out["is_closed"] = pd.Series(closed, index=index, dtype=object)
    out["is_won"] = pd.Series(won, index=index, dtype=object)


def _properties_json(frame: pd.DataFrame) -> pd.Series:
    """``{"prop": "raw value" | null, …}`` per row (keys sorted), built column-wise with Arrow."""
    pcols = sorted(c for c in frame.columns if c.startswith(PROPERTY_PREFIX))
    if not pcols:
        return pd.Series(["{}"] * len(frame), index=frame.index, dtype=object)
    if len(frame):
        parts = []
        for i, c in enumerate(pcols):
            name = json.dumps(c[len(PROPERTY_PREFIX):], ensure_ascii=False)
            head = ("{" if i == 0 else ",") + name + ":"
            parts.append(pc.fill_null(pc.binary_join_element_wise(head + '"', _json_escape_inner(_arr(frame[c])), '"', ""),
                                      head + "null"))
        # kept as Arrow (never null): the loader hands it to the CSV writer without a Python-object round trip
        return pd.Series(pd.arrays.ArrowExtensionArray(pc.binary_join_element_wise(*parts, "}", "")), index=frame.index)
    sub = frame[pcols].astype(object)
    sub = sub.where(sub.notna(), None)
    sub.columns = [c[len(PROPERTY_PREFIX):] for c in pcols]
    text = sub.to_json(orient="records", lines=True, force_ascii=False)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # pandas escapes "/" as "\/": valid JSON, but keep the text canonical for comparisons
    return pd.Series([ln.replace("\\/", "/") for ln in lines], index=frame.index, dtype=object)


# ---------------------------------------------------------------- vectorised fast paths
# Each returns the exact result of the scalar parser for the values it accepts; the rest (rare) go
# through the scalar parser (``_apply``), so outcomes and messages are unchanged.
# Python's str.strip() whitespace (str.isspace), as an RE2 class: values starting/ending with one need a strip.
_PY_WS = "[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_NEEDS_STRIP = f"^{_PY_WS}|{_PY_WS}$"
_EMAIL_RE2 = (r"^[a-z0-9](?:[a-z0-9_+\-]|\.){0,62}[a-z0-9_\-]?@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$")
_NO_PHONE_RE2 = r"^(?:\+47|0047)?(?P<n>[1-9][0-9]{7})$"
_PLAIN_DECIMAL_RE2 = r"^-?(?:0|[1-9][0-9]{0,29})(?:\.[0-9]{1,30})?$"
_ISO_UTC_RE2 = r"^(?:19|20|21)[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3}|\.[0-9]{6})?Z$"
_ISO_DATE_RE2 = r"^(?:19|20|21)[0-9]{2}-[0-9]{2}-[0-9]{2}$"


def _arr(s: pd.Series) -> pa.Array:
    """The series as a pyarrow string array (zero-copy for pandas' Arrow-backed strings)."""
    arr = pa.array(s.to_numpy(dtype=object) if s.dtype == object else s, type=pa.string(), from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _obj(arr: pa.Array, index: pd.Index) -> pd.Series:
    """pyarrow array → object Series with None for null."""
    return pd.Series(arr.to_numpy(zero_copy_only=False), index=index, dtype=object)


def _mask(arr: pa.Array) -> np.ndarray:
    return arr.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


def _stripped(s: pd.Series) -> tuple[pa.Array, pd.Series]:
    """(``str.strip()`` of every value, exactly as Python does it, as Arrow; same as an object Series)."""
    arr = _arr(s)
    need = _mask(pc.match_substring_regex(arr, _NEEDS_STRIP))
    if need.any():
        vals = arr.to_numpy(zero_copy_only=False).copy()
        for i in np.flatnonzero(need):
            vals[i] = vals[i].strip()
        arr = pa.array(vals, type=pa.string())
    return arr, _obj(arr, s.index)


def _fast_apply(s: pd.Series, fast: np.ndarray, fast_values: pd.Series, fn: Callable[[Any], Any], issues: _Issues,
                **kw: Any) -> pd.Series:
    """``fast_values`` where ``fast``; the scalar ``fn`` (via :func:`_apply`) for the other non-null values."""
    out = fast_values.where(fast, None).astype(object)
    slow = ~fast & s.notna().to_numpy()
    if slow.any():
        out[slow] = _apply(s[slow], fn, issues, **kw)
    return out.where(out.notna(), None)


def _emails(raw: pd.Series, issues: _Issues, col: str) -> pd.Series:
    arr, _ = _stripped(raw)
    ascii_ = _mask(pc.string_is_ascii(arr))
    low = pc.ascii_lower(arr)
    fast = ascii_ & _mask(pc.match_substring_regex(low, _EMAIL_RE2)) & ~_mask(pc.match_substring(low, "..")) \
        & _mask(pc.less_equal(pc.utf8_length(low), 254))
    return _fast_apply(raw, fast, _obj(low, raw.index), v.normalize_email, issues, rule="invalid_email", field_=col, reject=False)


def _phones(raw: pd.Series, region: str, issues: _Issues, col: str) -> pd.Series:
    fn = lambda x: v.normalize_phone(x, region)  # noqa: E731
    if region != "NO":
        return _apply(raw, fn, issues, rule="invalid_phone", field_=col, reject=False)
    nospace = pc.replace_substring(_arr(raw), " ", "")
    digits = pc.extract_regex(nospace, _NO_PHONE_RE2)
    fast = _mask(pc.is_valid(digits))
    vals = _obj(pc.binary_join_element_wise("+47", pc.struct_field(digits, [0]), ""), raw.index)
    return _fast_apply(raw, fast, vals, fn, issues, rule="invalid_phone", field_=col, reject=False)


def _money(raw: pd.Series, issues: _Issues, col: str, rule: str, reject: bool) -> pd.Series:
    arr = _arr(raw)
    fast = _mask(pc.match_substring_regex(arr, _PLAIN_DECIMAL_RE2)) & ~_mask(pc.starts_with(arr, "-0"))
    fn = lambda x: (lambda d: None if d is None else v.format_decimal(d))(v.parse_decimal(x))  # noqa: E731
    # canonical text as format_decimal gives it: trailing fraction zeros (and a bare point) dropped
    canonical = pc.replace_substring_regex(pc.replace_substring_regex(arr, r"(\.[0-9]*?)0+$", r"\1"), r"\.$", "")
    return _fast_apply(raw, fast, _obj(canonical, raw.index), fn, issues, rule=rule, field_=col, reject=reject)


def _close_dates(raw: pd.Series, prop_type: str | None, tz: ZoneInfo, issues: _Issues, col: str) -> pd.Series:
    arr = _arr(raw)
    out = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    fast = np.zeros(len(raw), dtype=bool)
    is_date = _mask(pc.match_substring_regex(arr, _ISO_DATE_RE2))
    if is_date.any():
        d = pd.to_datetime(raw[is_date].astype(object), format="%Y-%m-%d", errors="coerce")
        ok = d.notna().to_numpy()
        idx = np.flatnonzero(is_date)[ok]
        out.iloc[idx] = d[ok].dt.date.to_numpy()
        fast[idx] = True
    is_ts = _mask(pc.match_substring_regex(arr, _ISO_UTC_RE2)) if prop_type != "date" else np.zeros(len(raw), bool)
    if is_ts.any():
        t = pd.to_datetime(raw[is_ts].astype(object), format="ISO8601", utc=True, errors="coerce")
        ok = t.notna().to_numpy()
        idx = np.flatnonzero(is_ts)[ok]
        out.iloc[idx] = t[ok].dt.tz_convert(str(tz)).dt.date.to_numpy()
        fast[idx] = True
    return _fast_apply(raw, fast, out, _close_date_parser(prop_type, tz), issues, rule="invalid_close_date",
                       field_=col, reject=True)


_JSON_SPECIAL = '[\\\\"\x00-\x1f\u2028\u2029]'


def _json_escape_inner(arr: pa.Array) -> pa.Array:
    """What goes between the quotes of each value's JSON string literal (null stays null).

    One regex pass finds the rare values that need escaping; clean columns are returned as they are."""
    special = _mask(pc.match_substring_regex(arr, _JSON_SPECIAL))
    if not special.any():
        return arr
    vals = arr.to_numpy(zero_copy_only=False).copy()
    for i in np.flatnonzero(special):
        vals[i] = json.dumps(vals[i], ensure_ascii=False)[1:-1]
    return pa.array(vals, type=pa.string())


def _json_escape(arr: pa.Array) -> pa.Array:
    """JSON string literal of every value (``null`` for null); control characters via :func:`json.dumps`."""
    ctrl = _mask(pc.match_substring_regex(arr, "[\x00-\x1f\u2028\u2029]"))
    esc = pc.replace_substring(pc.replace_substring(arr, "\\", "\\\\"), '"', '\\"')
    lit = pc.binary_join_element_wise('"', esc, '"', "")
    if ctrl.any():
        vals = lit.to_numpy(zero_copy_only=False).copy()
        raw = arr.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(ctrl):
            vals[i] = json.dumps(raw[i], ensure_ascii=False)
        lit = pa.array(vals, type=pa.string())
    return pc.fill_null(lit, "null")


def _iso(ts: Any) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _raw_record(row: pd.Series) -> dict[str, Any]:
    props = {}
    for c, value in row.items():
        if isinstance(c, str) and c.startswith(PROPERTY_PREFIX):
            props[c[len(PROPERTY_PREFIX):]] = None if value is None or (isinstance(value, float) and pd.isna(value)) else value
    rid = row.get("id")
    return {
        "id": None if rid is None or (isinstance(rid, float) and pd.isna(rid)) else rid,
        "properties": props,
        "createdAt": _iso(row.get("created_at")),
        "updatedAt": _iso(row.get("updated_at")),
        "archived": bool(row.get("archived")) if row.get("archived") is not None else False,
        "archivedAt": _iso(row.get("archived_at")),
    }


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
