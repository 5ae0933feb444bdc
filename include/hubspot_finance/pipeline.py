"""The task bodies of ``hubspot_to_finance``: plain functions the DAG file wires together.

Each takes the settings and what Airflow hands the task (params, run id, interval) and returns
small JSON-able dicts (windows, manifests, summaries) for XCom: paths and counts, never data,
never the token.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from hubspot_finance import assets
from hubspot_finance.config import SyncConfig
from hubspot_finance.params import ParamsError, parse_run_request
from hubspot_finance.run_plan import Budget, Estimate, RunPlan
from hubspot_finance.summary import report_lines
from hubspot_finance.windows import Window, WindowError, plan_window

log = logging.getLogger(__name__)

# Errors another attempt cannot fix: the task fails at once, without retries (see retry_policy()).
FAIL_FAST = {
    "hubspot_provider.errors.HubSpotAuthError": "HubSpot rejected the token: rotate it and update the connection",
    "hubspot_provider.errors.HubSpotScopeError": "the token lacks a scope: grant it to the app",
    "hubspot_provider.errors.HubSpotDailyLimitError": "HubSpot's daily limit is spent: run after it resets",
    "hubspot_provider.errors.HubSpotConfigError": "the HubSpot connection is misconfigured",
    "hubspot_finance.params.ParamsError": "invalid trigger parameters",
    "hubspot_finance.windows.WindowError": "invalid date range",
    "hubspot_finance.config.ConfigError": "invalid HUBSPOT_SYNC_* setting",
    "hubspot_finance.mapping.MappingError": "invalid mapping file",
    "hubspot_finance.pipeline.TooManyRejectsError": "too many rejected records: the data needs fixing in HubSpot",
}


def retry_policy():
    """Airflow 3.3 retry policy: fail fast on :data:`FAIL_FAST`, retry everything else with backoff."""
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    return ExceptionRetryPolicy(
        rules=[RetryRule(exception=path, action=RetryAction.FAIL, reason=reason) for path, reason in FAIL_FAST.items()]
    )


@contextmanager
def phase(title: str) -> Iterator[None]:
    """A collapsible group in the Airflow task log (``::group::`` / ``::endgroup::``)."""
    log.info("::group::%s", title)
    try:
        yield
    finally:
        log.info("::endgroup::")


class FinanceDatabaseError(RuntimeError):
    """The finance database could not be reached; the message names the connection and host."""


def _describe_conn(cfg: SyncConfig) -> tuple[str, str | None]:
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(cfg.finance_conn_id)
        where = conn.host or "?"
        if conn.port:
            where += f":{conn.port}"
        if conn.schema:
            where += f"/{conn.schema}"
        return where, conn.password
    except Exception:
        return "?", None


@contextmanager
def finance_connection(cfg: SyncConfig) -> Iterator[Any]:
    """An open DB-API connection to ``finance_db``; failing to get one raises :class:`FinanceDatabaseError`."""
    try:
        conn = finance_hook(cfg).get_conn()
    except Exception as err:
        where, password = _describe_conn(cfg)
        detail = " ".join(str(err).split())
        if password:
            detail = detail.replace(password, "***")
        raise FinanceDatabaseError(
            f"Cannot connect to the finance database (connection '{cfg.finance_conn_id}', host {where}): "
            f"{type(err).__name__}: {detail}. Check that the database is up and the connection's host, "
            f"port, login and password (Admin > Connections > {cfg.finance_conn_id}); nothing was loaded, re-run."
        ) from None
    try:
        yield conn
    finally:
        try:
            conn.close()
        except Exception:  # pragma: no cover
            pass


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
) -> RunPlan:
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
        windows[object_type] = window
        log.info(
            "%s: %s window [%s, %s), watermark %s -> %s",
            object_type, window.mode, window.start.isoformat() if window.start else "beginning",
            window.end.isoformat(), watermarks.get(object_type), window.advances_to,
        )
    local_now = now.astimezone(ZoneInfo(cfg.timezone))
    run_sweep = request.reconcile or request.full_refresh or (
        run_type == "scheduled" and start is None and cfg.sweeps_on(local_now.weekday()))
    reconcile = cfg.reconcile_associations == "every_run" or (cfg.reconcile_associations == "sweep" and run_sweep)
    log.info("id sweep (permanent deletes): %s; association reconciliation: %s",
             "yes" if run_sweep else f"no (runs {cfg.sweep_weekday}, on full_refresh or with reconcile)",
             "yes" if reconcile else f"no ({cfg.reconcile_associations})")
    return RunPlan(request.objects, windows, now, dry_run=request.dry_run, sweep=run_sweep,
                   reconcile_associations=reconcile)


def share_budget(cfg: SyncConfig, plan: RunPlan, hook: Any) -> RunPlan:
    """Estimate each object's work (one search call each) and split HubSpot's budgets accordingly.

    With ``parallel_extracts == 1`` the extract tasks run one after another and each takes the
    whole budget; otherwise each gets a share in proportion to its estimated calls.
    """
    from hubspot_finance import extract
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object

    mapping = load_mapping(cfg.mapping_file)
    estimates = {}
    for object_type in plan.objects:
        decl = get_object(object_type)
        estimates[object_type] = extract.estimate_work(hook, decl, plan.window(object_type), decl.properties(mapping))
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
    return plan.with_budgets({name: Estimate(int(e["records"]), e["general_calls"], e["search_calls"]) for name, e in estimates.items()},
                             {name: Budget(f["general"], f["search"]) for name, f in fractions.items()})


def _log_budget(label: str, stats: dict[str, Any]) -> None:
    log.info(
        "%s: %s HubSpot calls, %s retries, 429s %s, waited %.1f s for the rate limiter, daily budget left %s",
        label, stats.get("total_calls"), sum((stats.get("retries") or {}).values()), stats.get("rate_limited") or "none",
        stats.get("limiter_wait_seconds") or 0.0,
        stats.get("daily_remaining") if stats.get("daily_remaining") is not None else "unknown",
    )


def extract_reference(cfg: SyncConfig, run_id: str) -> dict[str, Any]:
    from hubspot_finance import extract

    hook = hubspot_hook(cfg)
    with phase("Extract reference data: properties, pipelines, account"):
        result = extract.extract_reference(hook, raw_zone(cfg), run_id)
    result["calls"] = hook.stats.as_dict()
    _log_budget("reference", result["calls"])
    return result


def extract_object(
    cfg: SyncConfig, plan: RunPlan | dict[str, Any], object_type: str, run_id: str, reference: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Extract one object type for the planned window; None when the run did not ask for it."""
    from hubspot_finance import extract
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object

    plan = RunPlan.from_xcom(plan)
    if object_type not in plan.objects:
        log.info("%s: not selected for this run", object_type)
        return None
    window = plan.window(object_type)
    zone = raw_zone(cfg)
    decl = get_object(object_type)
    properties, dropped = extract.properties_for_run(
        zone, run_id, decl, load_mapping(cfg.mapping_file), extra=cfg.extra_properties
    )
    budget = plan.budget(object_type)
    hook = hubspot_hook(cfg, budget_fraction=budget.general, search_fraction=budget.search)
    estimate = plan.estimate(object_type)
    run_sweep, reconcile = plan.sweep, plan.reconcile_associations
    finance = read_finance_ids(cfg, decl, live=reconcile, known=run_sweep or window.mode == "full")
    with phase(f"Extract {object_type}: {window.mode} window {_window_text(window)}"):
        manifest = extract.extract_object(
            hook, zone, decl, window, run_id, properties, dropped_properties=dropped, expected_records=estimate.records if estimate else None,
            finance=finance, reconcile_associations=reconcile, run_sweep=run_sweep,
        )
    _log_budget(object_type, hook.stats.as_dict())
    assets.report_read(hook, (reference or {}).get("portal_id"), object_type)
    return manifest


RETRY_LIST_LIMIT = 10_000  # rejected records read again per object and run (the oldest attempts first)


def read_finance_ids(cfg: SyncConfig, decl: Any, *, live: bool, known: bool):
    """The ids the extraction repairs from: live rows (association reconciliation), live or archived rows
    (the id sweep) and the retry list of rejected records. Empty before the first load."""
    from hubspot_finance.state import read_finance_ids as read

    with finance_connection(cfg) as conn:
        return read(conn, decl, schema=cfg.schema, live=live, known=known, retry_limit=RETRY_LIST_LIMIT)


def _window_text(window: Window) -> str:
    return f"[{window.start.isoformat() if window.start else 'beginning'}, {window.end.isoformat()})"


def read_watermarks(cfg: SyncConfig) -> dict[str, datetime | None]:
    from hubspot_finance.config import OBJECT_TYPES
    from hubspot_finance.state import read_watermarks as read

    with finance_connection(cfg) as conn:
        return read(conn, list(OBJECT_TYPES), schema=cfg.schema)


def plan_for_context(cfg: SyncConfig, params: dict[str, Any], dag_run: Any, context: dict[str, Any]) -> dict[str, Any]:
    """``plan_run`` with what Airflow gives the task; works when ``logical_date`` is None.

    An invalid request fails with one clear ERROR line (and without retries: see :func:`retry_policy`).
    """
    interval = (context.get("data_interval_start"), context.get("data_interval_end"))
    run_type = getattr(dag_run, "run_type", None)
    run_type = getattr(run_type, "value", run_type)
    log.info(
        "run %s: %s run, logical date %s, data interval %s",
        context.get("run_id"), run_type or "unknown", context.get("logical_date") or "none (cleared)",
        f"[{interval[0].isoformat()}, {interval[1].isoformat()})" if interval[0] and interval[1] else "none",
    )
    try:
        with phase("Plan: parameters and watermarks"):
            watermarks = read_watermarks(cfg)
            plan = plan_run(cfg, params, run_type=run_type, data_interval=interval, watermarks=watermarks)
    except (ParamsError, WindowError) as err:
        # After the group is closed, so the reason is on a line of its own at the top level of the log.
        log.error("Invalid trigger parameters: %s. Trigger a new run with corrected parameters.", err)
        raise
    with phase("Plan: estimate work and share HubSpot's budget"):
        return share_budget(cfg, plan, hubspot_hook(cfg)).to_xcom()


def load_config(cfg: SyncConfig, *, dry_run: bool = False):
    """The transform and load settings from the sync's settings (one place for both tasks)."""
    from hubspot_finance.load import LoadConfig
    from hubspot_finance.mapping import load_mapping

    return LoadConfig(schema=cfg.schema, mapping=load_mapping(cfg.mapping_file), dry_run=dry_run,
                      erase_personal_data=cfg.erase_personal_data)


def transform_object(cfg: SyncConfig, manifest: dict[str, Any] | None, object_type: str, run_id: str) -> dict[str, Any] | None:
    """The transform task: the run's raw ``object_type`` Parquet → typed, validated, one-row-per-id Parquet
    under ``staged/`` in the raw zone; None when the run did not extract it. Returns paths and counts."""
    from hubspot_finance import transform_step

    if manifest is None:
        log.info("%s: not selected for this run", object_type)
        return None
    with phase(f"Transform {object_type}: raw Parquet -> typed, validated rows"):
        staged = transform_step.transform_object(raw_zone(cfg), run_id, object_type, load_config(cfg))
    extra = staged.extra
    log.info("%s: %d raw records -> %d rows (one per id), %d rejected, %d merges, warnings %s; staged in %s",
             object_type, extra["raw_rows"], staged.rows, extra["rejected"], extra["merges"],
             extra["warnings"] or "none", staged.dataset)
    return {"dataset": staged.dataset, "rows": staged.rows, "raw_rows": extra["raw_rows"], "rejected": extra["rejected"],
            "merges": extra["merges"], "warnings": extra["warnings"]}


def load_manifests(
    cfg: SyncConfig,
    plan: RunPlan | dict[str, Any],
    manifests: dict[str, dict[str, Any] | None],
    run_id: str,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Load the run's staged data (the transform tasks' output) in one transaction; returns the summary.

    A run whose staged dataset is missing is refused (StagedDatasetMissingError names the transform task)."""
    from hubspot_finance.load import LoadPlan, load_run

    plan = RunPlan.from_xcom(plan)
    object_types = [o for o in plan.objects if manifests.get(o) is not None]
    load_plan = LoadPlan.from_zone(raw_zone(cfg), run_id, object_types=object_types,
                                   config=load_config(cfg, dry_run=dry_run))
    with finance_connection(cfg) as conn:
        result = load_run(conn, load_plan)
    summary = result.to_dict()
    summary["api_calls"] = {o: (manifests[o] or {}).get("calls", {}).get("total_calls") for o in object_types}
    summary["reconciliation"] = {o: (manifests[o] or {}).get("reconciliation") or {} for o in object_types}
    summary["sweep"] = {o: (manifests[o] or {}).get("sweep") or {} for o in object_types}
    summary["warnings"] = [w for o in object_types for w in (manifests[o] or {}).get("warnings") or []]
    return summary


def transform_and_load(
    cfg: SyncConfig, plan: RunPlan | dict[str, Any], manifests: dict[str, dict[str, Any] | None], run_id: str,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """The transform tasks then the load task, one after another (harnesses that run a whole sync)."""
    for object_type, manifest in manifests.items():
        transform_object(cfg, manifest, object_type, run_id)
    return load_manifests(cfg, plan, manifests, run_id, dry_run=dry_run)


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
    cfg: SyncConfig, plan: RunPlan | dict[str, Any], reference: dict[str, Any], manifests: dict[str, Any],
    context: dict[str, Any], staged: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The load task. ``staged`` (the transform tasks' XComs) only orders the tasks: the load reads the
    staged manifests from the raw zone and refuses a run whose transform did not finish."""
    plan = RunPlan.from_xcom(plan)
    with phase("Load the staged rows (one transaction)" + (" — dry run, rolled back" if plan.dry_run else "")):
        summary = load_manifests(cfg, plan, manifests, context["run_id"], dry_run=plan.dry_run)
    summary["windows"] = {o: plan.window(o).as_dict() for o in plan.objects}
    summary["reference"] = {k: reference.get(k) for k in ("portal_id", "time_zone", "company_currency")}
    budgets = [(m or {}).get("calls", {}).get("daily_remaining") for m in manifests.values()]
    budgets = [b for b in budgets if b is not None]
    summary["daily_budget_left"] = min(budgets) if budgets else None
    too_many: TooManyRejectsError | None = None
    try:
        summary["reject_warnings"] = check_rejects(cfg, summary)
    except TooManyRejectsError as err:  # raised after the summary is logged
        summary["reject_warnings"], too_many = str(err).split("; "), err
    summary["dry_run"] = plan.dry_run
    if too_many is None:
        outlet_events = context.get("outlet_events")
        summary["asset_events"] = assets.publish(outlet_events, cfg.finance_conn_id, summary) if outlet_events is not None else []
        assets.report_written(lambda: finance_hook(cfg), cfg.finance_conn_id, list(assets.loaded_table_extras(summary)))
    # One table at the top level of the log (not in a group): what a person opens the log for.
    for line in report_lines(summary, cfg.timezone):
        log.info("%s", line)
    if too_many is not None:
        log.error("Too many rejected records (HUBSPOT_SYNC_REJECT_ACTION=fail): %s", too_many)
        raise too_many
    return summary
