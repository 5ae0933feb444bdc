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

import pandas as pd

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
    out = s.map(lambda x: None if x is None else (x.strip() or None), na_action="ignore")
    return out.astype(object).where(out.notna(), None)


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
    for idx, rid in zip(ids.index, ids.tolist()):
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
            out[col] = _apply(raw, v.normalize_email, issues, rule="invalid_email", field_=col, reject=False)
        elif kind == "phone":
            out[col] = _apply(raw, lambda x: v.normalize_phone(x, phone_region), issues, rule="invalid_phone", field_=col, reject=False)
        elif kind == "orgnr":
            out[col] = _apply(raw, v.parse_orgnr, issues, rule="invalid_orgnr", field_=col, reject=False)
        elif kind in ("money", "money_lenient"):
            rule = "invalid_amount" if kind == "money" else "invalid_amount_home_currency"
            parsed = _apply(raw, v.parse_decimal, issues, rule=rule, field_=col, reject=kind == "money")
            out[col] = parsed.map(v.format_decimal, na_action="ignore").astype(object)
            out[col] = out[col].where(out[col].notna(), None)
        elif kind == "currency":
            out[col] = _currency(raw, reference, issues, col)
        elif kind == "close_date":
            ptype = reference.property_types.get(object_type, {}).get(prop or "")
            out[col] = _apply(raw, _close_date_parser(ptype, tz), issues, rule="invalid_close_date", field_=col, reject=True)
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
    for idx, value in merged_raw.items():
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
    pcols = sorted(c for c in frame.columns if c.startswith(PROPERTY_PREFIX))
    if not pcols:
        return pd.Series(["{}"] * len(frame), index=frame.index, dtype=object)
    sub = frame[pcols].astype(object)
    sub = sub.where(sub.notna(), None)
    sub.columns = [c[len(PROPERTY_PREFIX):] for c in pcols]
    text = sub.to_json(orient="records", lines=True, force_ascii=False)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # pandas escapes "/" as "\/": valid JSON, but keep the text canonical for comparisons
    return pd.Series([ln.replace("\\/", "/") for ln in lines], index=frame.index, dtype=object)


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
