"""The task bodies of ``hubspot_to_finance``: plain functions the DAG file wires together.

Each takes the settings and what Airflow hands the task (params, run id, interval) and returns
small JSON-able dicts (windows, manifests, summaries) for XCom: paths and counts, never data,
never the token.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from hubspot_finance.config import SyncConfig
from hubspot_finance.params import parse_run_request
from hubspot_finance.windows import Window, plan_window

log = logging.getLogger(__name__)


def raw_zone(cfg: SyncConfig):
    from airflow.sdk import ObjectStoragePath

    from hubspot_finance.rawzone import RawZone

    return RawZone(ObjectStoragePath(cfg.raw_root))


def hubspot_hook(cfg: SyncConfig, *, budget_fraction: float = 1.0, search_fraction: float | None = None):
    from hubspot_provider.hooks.hubspot import HubSpotHook

    return HubSpotHook(cfg.hubspot_conn_id, budget_fraction=budget_fraction, search_fraction=search_fraction)


def finance_hook(cfg: SyncConfig):
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(cfg.finance_conn_id).get_hook()


def plan_run(
    cfg: SyncConfig,
    params: dict[str, Any],
    *,
    run_type: str | None,
    data_interval: tuple[datetime | None, datetime | None],
    watermarks: dict[str, datetime | None],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Validate the trigger parameters and derive each object's window from its watermark."""
    now = now or datetime.now(timezone.utc)
    request = parse_run_request(params, account_zone=cfg.timezone, now=now)
    start, end = request.start, request.end
    interval_start, interval_end = data_interval
    if run_type == "backfill" and start is None and not request.full_refresh and interval_start and interval_end:
        # A backfill re-syncs its own data interval and never moves a watermark backwards.
        start, end = interval_start, interval_end
    windows = {}
    for object_type in request.objects:
        window = plan_window(
            watermark=watermarks.get(object_type),
            now=now,
            overlap=cfg.overlap,
            lag_margin=cfg.lag_margin,
            start=start,
            end=end,
            full_refresh=request.full_refresh,
        )
        windows[object_type] = window.as_dict()
        log.info(
            "%s: %s window [%s, %s), watermark %s -> %s",
            object_type, window.mode, window.start.isoformat() if window.start else "beginning",
            window.end.isoformat(), watermarks.get(object_type), window.advances_to,
        )
    return {"objects": list(request.objects), "windows": windows, "dry_run": request.dry_run, "planned_at": now.isoformat()}


def share_budget(cfg: SyncConfig, plan: dict[str, Any], hook: Any) -> dict[str, Any]:
    """Estimate each object's work (one search call each) and split HubSpot's budgets accordingly.

    With ``parallel_extracts == 1`` the extract tasks run one after another and each takes the
    whole budget; otherwise each gets a share in proportion to its estimated calls.
    """
    from hubspot_finance import extract
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object

    mapping = load_mapping(cfg.mapping_file)
    estimates = {}
    for object_type in plan["objects"]:
        decl = get_object(object_type)
        window = Window.from_dict(plan["windows"][object_type])
        estimates[object_type] = extract.estimate_work(hook, decl, window, decl.properties(mapping))
    if cfg.parallel_extracts > 1:
        fractions = extract.budget_fractions(estimates)
    else:
        fractions = {name: {"general": 1.0, "search": 1.0} for name in estimates}
    for name, estimate in estimates.items():
        log.info(
            "%s: about %d records, %.0f calls and %.0f searches; budget share %.0f%% / search %.0f%%",
            name, estimate["records"], estimate["general_calls"], estimate["search_calls"],
            100 * fractions[name]["general"], 100 * fractions[name]["search"],
        )
    return {**plan, "estimates": estimates, "budget": fractions}


def extract_reference(cfg: SyncConfig, run_id: str) -> dict[str, Any]:
    from hubspot_finance import extract

    hook = hubspot_hook(cfg)
    result = extract.extract_reference(hook, raw_zone(cfg), run_id)
    result["calls"] = hook.stats.as_dict()
    return result


def extract_object(cfg: SyncConfig, plan: dict[str, Any], object_type: str, run_id: str) -> dict[str, Any] | None:
    """Extract one object type for the planned window; None when the run did not ask for it."""
    from hubspot_finance import extract
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object

    if object_type not in plan["objects"]:
        log.info("%s: not selected for this run", object_type)
        return None
    window = Window.from_dict(plan["windows"][object_type])
    zone = raw_zone(cfg)
    decl = get_object(object_type)
    definitions = zone.read_reference(run_id, f"properties_{object_type}", default=[])
    properties, dropped = extract.resolve_properties(
        decl, decl.properties(load_mapping(cfg.mapping_file)), definitions, extra=cfg.extra_properties
    )
    budget = plan.get("budget", {}).get(object_type, {"general": 1.0, "search": 1.0})
    hook = hubspot_hook(cfg, budget_fraction=budget["general"], search_fraction=budget["search"])
    estimate = plan.get("estimates", {}).get(object_type, {})
    return extract.extract_object(
        hook, zone, decl, window, run_id, properties, dropped_properties=dropped, expected_records=estimate.get("records")
    )


def read_watermarks(cfg: SyncConfig) -> dict[str, datetime | None]:
    from hubspot_finance.config import OBJECT_TYPES
    from hubspot_finance.state import read_watermarks as read

    return read(finance_hook(cfg), list(OBJECT_TYPES), schema=cfg.schema)


def plan_for_context(cfg: SyncConfig, params: dict[str, Any], dag_run: Any, context: dict[str, Any]) -> dict[str, Any]:
    """``plan_run`` with what Airflow gives the task; works when ``logical_date`` is None."""
    interval = (context.get("data_interval_start"), context.get("data_interval_end"))
    run_type = getattr(dag_run, "run_type", None)
    run_type = getattr(run_type, "value", run_type)
    plan = plan_run(cfg, params, run_type=run_type, data_interval=interval, watermarks=read_watermarks(cfg))
    return share_budget(cfg, plan, hubspot_hook(cfg))


def load_manifests(
    cfg: SyncConfig,
    plan: dict[str, Any],
    manifests: dict[str, dict[str, Any] | None],
    run_id: str,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Transform and load every extracted object of the run in one transaction; returns the summary."""
    from hubspot_finance.load import LoadConfig, LoadPlan, load_run
    from hubspot_finance.mapping import load_mapping

    object_types = [o for o in plan["objects"] if manifests.get(o) is not None]
    zone = raw_zone(cfg)
    load_plan = LoadPlan.from_zone(
        zone,
        run_id,
        object_types=object_types,
        config=LoadConfig(schema=cfg.schema, mapping=load_mapping(cfg.mapping_file), dry_run=dry_run),
    )
    summary = load_run(finance_hook(cfg), load_plan).to_dict()
    summary["api_calls"] = {o: (manifests[o] or {}).get("calls", {}).get("total_calls") for o in object_types}
    return summary


class TooManyRejectsError(RuntimeError):
    """More rows were rejected than the configured threshold allows (the load itself committed)."""


def check_rejects(cfg: SyncConfig, summary: dict[str, Any]) -> list[str]:
    """Compare each object's reject rate with the threshold; warn or fail as configured."""
    problems = []
    for name, obj in summary.get("objects", {}).items():
        seen = obj.get("distinct") or obj.get("extracted") or 0
        rejected = obj.get("rejected") or 0
        if seen and rejected / seen > cfg.reject_threshold:
            problems.append(
                f"{name}: {rejected} of {seen} records rejected ({rejected / seen:.1%} > {cfg.reject_threshold:.1%}); "
                "see the rejected_records table for the reasons"
            )
    for problem in problems:
        log.warning("%s", problem)
    if problems and cfg.reject_action == "fail":
        raise TooManyRejectsError("; ".join(problems))
    return problems


def load_for_context(
    cfg: SyncConfig, plan: dict[str, Any], reference: dict[str, Any], manifests: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    summary = load_manifests(cfg, plan, manifests, context["run_id"], dry_run=plan.get("dry_run", False))
    summary["reference"] = {k: reference.get(k) for k in ("portal_id", "time_zone", "company_currency")}
    summary["reject_warnings"] = check_rejects(cfg, summary)
    if not plan.get("dry_run"):
        outlet_events = context.get("outlet_events")
        for asset in ASSETS:
            table = asset.uri.split("://", 1)[1]
            extra = {"run_id": context["run_id"], "mode": summary.get("mode")}
            for obj in summary.get("objects", {}).values():
                if obj.get("table") == table:
                    extra.update({k: obj.get(k) for k in ("inserted", "updated", "unchanged", "rejected", "deleted")})
            if outlet_events is not None:
                outlet_events[asset].extra = extra
    return summary


def _assets():
    from airflow.sdk import Asset

    return [Asset(f"finance://{table}", extra={"description": f"finance table {table}"}) for table in FINANCE_TABLES]


FINANCE_TABLES = ("customers", "companies", "contracts")
ASSETS = _assets()
