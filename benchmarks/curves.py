"""Curves: seconds, peak RSS and HubSpot calls of a sync against portal size, one sandbox per size.

Each size is a sandbox without rate limits (N contacts, N/2 deals, N/100 companies). Every phase runs
in fresh processes, as Airflow runs its tasks, so each peak RSS is what one task sees:

- extract: the reference data and the plan's estimates here, then the three extract tasks at once;
  with the limits off the calls are measured and the seconds that count are the rate floor of those
  calls (general 19/s, search 5/s), beside the two-budget floor of the records alone;
- transform and load (:func:`transform_load`, the one place that knows the pipeline's entry points),
  against a plain ``COPY`` of the same rows into empty unlogged tables, measured in the same run;
- incremental: 20% of the contacts and 10% of the deals change (the extraction benchmark's shares),
  then one incremental extract, its tasks in this process (only its calls are plotted, and three
  interpreter start-ups per size are saved): its calls against the search floor.

Writes ``<name>.json`` beside the PNGs (``benchmarks.plots`` draws them) and returns table rows.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, peak_rss_mib, sandbox
from benchmarks.extract_bench import GENERAL_PER_SECOND, OBJECTS, SEARCH_PER_SECOND

SIZES = (50_000, 250_000, 1_000_000)
SMOKE_SIZES = (1_000, 4_000)
CHANGED_SHARE = {"contacts": 0.2, "deals": 0.1}
LIST_PAGE, SEARCH_PAGE, ASSOCIATION_BATCH = 100, 200, 1_000
RSS_LIMIT_MIB = 1536
# No client-side ceiling and no shared limiter file (at an unlimited ceiling it would hold every call of 10 s).
FREE_CONN_ID = "hubspot_curves"
SCHEMA, COPY_SCHEMA = "bench_curves", "bench_curves_copy"


# ----------------------------------------------------------------------------- child processes


# Smoke runs: every task in this process, one after another (no interpreter start-ups; RSS is then ours).
IN_PROCESS = {"on": False}


def _tasks(fn: Any, jobs: list[tuple]) -> list[Any]:
    """``fn(*job)`` for every job, each in a fresh spawned process and all at once, as Airflow runs
    parallel tasks: each peak RSS is that task's own, not this process's."""
    if IN_PROCESS["on"]:
        return [fn(*job) for job in jobs]
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        return list(pool.map(fn, *zip(*jobs)))


def _in_child(fn: Any, *args: Any) -> Any:
    return _tasks(fn, [args])[0]


def _extract_task(job: dict[str, Any]) -> dict[str, Any]:
    """One extract task (a fresh worker process)."""
    import logging

    from hubspot_finance import extract
    from hubspot_finance.objects import get_object
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.windows import Window
    from hubspot_provider.hooks.hubspot import HubSpotHook

    logging.getLogger("hubspot_finance").setLevel(logging.WARNING)
    zone, decl = RawZone(job["raw_uri"]), get_object(job["object_type"])
    properties, dropped = extract.properties_for_run(zone, job["run_id"], decl)
    started = time.perf_counter()
    m = extract.extract_object(HubSpotHook(FREE_CONN_ID), zone, decl, Window.from_dict(job["window"]), job["run_id"],
                               properties, dropped_properties=dropped, expected_records=job["expected"])
    return {"records": m["records"], "archived": m["archived"], "calls": m["calls"]["total_calls"],
            "search_calls": m["calls"]["calls"].get("search", 0), "seconds": time.perf_counter() - started,
            "peak_rss_mib": peak_rss_mib()}


def _transform_child(raw_uri: str, run_id: str, object_type: str) -> dict[str, Any]:
    """One transform task: the object's raw Parquet to its staged dataset."""
    from hubspot_finance.load import LoadConfig
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.transform_step import transform_object

    started = time.perf_counter()
    transform_object(RawZone(raw_uri), run_id, object_type, LoadConfig(schema=SCHEMA))
    return {"seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib()}


def _load_child(raw_uri: str, run_id: str, dsn: str) -> dict[str, Any]:
    """The load task (the transform tasks' staged datasets) into a fresh schema."""
    import psycopg

    from hubspot_finance.load import LoadConfig, LoadPlan, load_run
    from hubspot_finance.rawzone import RawZone

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    plan = LoadPlan.from_zone(RawZone(raw_uri), run_id, config=LoadConfig(schema=SCHEMA))
    conn = psycopg.connect(dsn)
    started = time.perf_counter()
    try:
        summary = load_run(conn, plan)
    finally:
        conn.close()
    return {"seconds": time.perf_counter() - started, "status": summary.status, "peak_rss_mib": peak_rss_mib()}


def transform_load(raw_uri: str, run_id: str, dsn: str) -> dict[str, dict[str, Any]]:
    """The adapter to the pipeline's transform and load steps: {phase: {seconds, peak_rss_mib}}.

    As the DAG runs them: the per-object transform tasks at once, each in its own process, then the load.
    """
    started = time.perf_counter()
    tasks = _tasks(_transform_child, [(raw_uri, run_id, o) for o in OBJECTS])
    transform = {"seconds": time.perf_counter() - started, "peak_rss_mib": max(t["peak_rss_mib"] for t in tasks)}
    return {"transform": transform, "load": _in_child(_load_child, raw_uri, run_id, dsn)}


# ----------------------------------------------------------------------------- the COPY floor


def copy_floor(dsn: str, workdir: Path) -> dict[str, Any]:
    """A plain ``COPY`` of the rows the load wrote (every finance table, as text) into empty unlogged tables."""
    import psycopg

    from hubspot_finance.objects import ASSOCIATIONS, OBJECTS as DECLS

    tables = [d.table for d in DECLS.values()] + [a.table for a in ASSOCIATIONS]
    seconds, rows = 0.0, 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {COPY_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {COPY_SCHEMA}")
        have = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                           (SCHEMA,))}
        for table in (t for t in tables if t in have):
            path = workdir / f"copy-{table}.csv"
            with path.open("wb") as fh, conn.cursor().copy(f"COPY {SCHEMA}.{table} TO STDOUT (FORMAT csv)") as cp:
                for block in cp:
                    fh.write(block)
            cols = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position", (SCHEMA, table))]
            conn.execute(f"CREATE UNLOGGED TABLE {COPY_SCHEMA}.{table} ({', '.join(f'{c} text' for c in cols)})")
            started = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY {COPY_SCHEMA}.{table} FROM STDIN (FORMAT csv)") as cp, \
                    path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    cp.write(block)
            seconds += time.perf_counter() - started
            rows += conn.execute(f"SELECT count(*) FROM {COPY_SCHEMA}.{table}").fetchone()[0]
            path.unlink()
        conn.execute(f"DROP SCHEMA {COPY_SCHEMA} CASCADE")
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    return {"seconds": seconds, "rows": rows}


# ----------------------------------------------------------------------------- one size


def _extract_phase(raw_uri: str, run_id: str, windows: dict[str, dict], *, here: bool = False) -> dict[str, Any]:
    """Reference + estimates here (the plan task), then the three extract tasks in fresh processes at once."""
    from hubspot_finance import extract
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.windows import Window
    from hubspot_provider.hooks.hubspot import HubSpotHook

    hook = HubSpotHook(FREE_CONN_ID)
    started = time.perf_counter()
    extract.extract_reference(hook, RawZone(raw_uri), run_id)
    mapping = load_mapping()
    expected = {o: int(extract.estimate_work(hook, get_object(o), Window.from_dict(windows[o]),
                                             get_object(o).properties(mapping))["records"]) for o in OBJECTS}
    jobs = [{"object_type": o, "window": windows[o], "run_id": run_id, "raw_uri": raw_uri, "expected": expected[o]}
            for o in OBJECTS]
    done = [_extract_task(job) for job in jobs] if here else _tasks(_extract_task, [(job,) for job in jobs])
    tasks = dict(zip(OBJECTS, done))
    planning = hook.stats.as_dict()
    calls = planning["total_calls"] + sum(t["calls"] for t in tasks.values())
    search = planning["calls"].get("search", 0) + sum(t["search_calls"] for t in tasks.values())
    return {"seconds": time.perf_counter() - started, "tasks": tasks, "calls": calls, "search_calls": search,
            "records": sum(t["records"] for t in tasks.values()),
            "archived": sum(t["archived"] for t in tasks.values()),
            "rate_floor_seconds": max((calls - search) / GENERAL_PER_SECOND, search / SEARCH_PER_SECOND),
            "peak_rss_mib": max(t["peak_rss_mib"] for t in tasks.values())}


def _pairs(object_type: str) -> int:
    from hubspot_finance.objects import associations_from

    return len(associations_from(object_type))


def _floors(counts: dict[str, dict[str, int]], changed: dict[str, int]) -> dict[str, float]:
    """What the API shape allows: calls and seconds for the full run, calls for the incremental run."""
    assoc_full = sum(_pairs(o) * math.ceil(counts[o]["live"] / ASSOCIATION_BATCH) for o in OBJECTS)
    archived = sum(max(1, math.ceil(counts[o]["archived"] / LIST_PAGE)) for o in OBJECTS)
    records = sum(counts[o]["live"] + counts[o]["archived"] for o in OBJECTS)
    list_calls = sum(math.ceil(counts[o]["live"] / LIST_PAGE) for o in OBJECTS) + archived
    searches = sum(math.ceil(changed.get(o, 0) / SEARCH_PAGE) for o in OBJECTS)
    assoc_incr = sum(_pairs(o) * math.ceil(changed.get(o, 0) / ASSOCIATION_BATCH) for o in OBJECTS)
    return {
        "full_list_only_calls": list_calls + assoc_full,
        "full_list_only_seconds": (list_calls + assoc_full) / GENERAL_PER_SECOND,
        # Both budgets at once: ids listed at 100 × 19/s and searched at 200 × 5/s, associations on the general one.
        "full_two_budget_seconds": (records + LIST_PAGE * assoc_full) / (LIST_PAGE * GENERAL_PER_SECOND
                                                                        + SEARCH_PAGE * SEARCH_PER_SECOND),
        "incremental_calls": searches + assoc_incr + archived,
    }


def _change(control: Any, changed: dict[str, int]) -> datetime:
    """Bulk edits spread over many milliseconds, as people make them; returns the moment before them."""
    base = control.clock()["now_ms"]
    for object_type, props in (("contacts", {"city": "Bergen"}), ("deals", {"dealname": "Fornyet avtale"})):
        count = changed[object_type]
        for i in range(0, count, 500):
            control.bulk_touch(object_type, min(500, count - i), at_ms=base + i // 500, properties=props, start=i * 3)
    time.sleep(0.01)
    return datetime.fromtimestamp((base - 1000) / 1000, timezone.utc)


def measure_size(workdir: Path, contacts: int, dsn: str) -> dict[str, Any]:
    """One portal size: full extract, transform and load against COPY, then an incremental extract."""
    from hubspot_finance.windows import plan_window
    from hubspot_sandbox.control import SandboxControl

    sizes = {"contacts": contacts, "deals": contacts // 2, "companies": max(10, contacts // 100)}
    here = workdir / f"size-{contacts}"
    with sandbox(here, tier=None, **sizes) as (url, token):
        os.environ[f"AIRFLOW_CONN_{FREE_CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "hubspot", "host": url, "password": token,
             "extra": {"requests_per_ten_seconds": 1_000_000, "search_requests_per_second": 1_000, "shared_limits": False}})
        control = SandboxControl(url)
        counts = control.state()["counts"]
        raw_uri = (here / "raw").as_uri()
        now = datetime.now(timezone.utc)
        full = _extract_phase(raw_uri, "curves-full", {o: plan_window(watermark=None, now=now, lag_margin=timedelta(0))
                                                      .as_dict() for o in OBJECTS})
        phases = transform_load(raw_uri, "curves-full", dsn)
        copy = copy_floor(dsn, here)
        changed = {o: round(sizes[o] * CHANGED_SHARE.get(o, 0)) for o in OBJECTS}
        watermark = _change(control, changed)
        later = datetime.now(timezone.utc) + timedelta(seconds=1)
        incr = _extract_phase(raw_uri, "curves-incremental", {
            o: plan_window(watermark=watermark, now=later, overlap=timedelta(0), lag_margin=timedelta(0)).as_dict()
            for o in OBJECTS}, here=True)
        rate_limited = sum((control.stats().get("rate_limited") or {}).values())
    return {**sizes, "records": full["records"], "changed": sum(changed.values()), "extract": full,
            "phases": phases, "copy": copy, "incremental": incr, "floors": _floors(counts, changed),
            "rate_limited": rate_limited}


# ----------------------------------------------------------------------------- the run


def run(workdir: Path, *, sizes: tuple[int, ...] = SIZES, pg_dsn: str, name: str = "curves",
        plot: bool = True, in_process: bool = False) -> list[dict[str, Any]]:
    """Measure every size, write ``<name>.json`` (and the PNGs), return the table rows.

    ``in_process`` (smoke runs): every task in this process, so its RSS figures are not per task.
    """
    IN_PROCESS["on"] = in_process
    points = []
    for contacts in sizes:
        started = time.perf_counter()
        points.append(measure_size(workdir, contacts, pg_dsn))
        points[-1]["wall_seconds"] = time.perf_counter() - started
        print(f"   {contacts:,} contacts: {points[-1]['wall_seconds']:.0f} s", flush=True)
    data = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "rss_limit_mib": RSS_LIMIT_MIB,
            "tasks_in_own_processes": not in_process,
            "rates": {"general_per_second": GENERAL_PER_SECOND, "search_per_second": SEARCH_PER_SECOND},
            "points": points}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    if plot:
        from benchmarks import plots

        plots.draw(path)
    return rows(data)


def _phase_seconds(point: dict[str, Any]) -> float:
    return sum(p["seconds"] for p in point["phases"].values())


def _phase_rss(point: dict[str, Any]) -> dict[str, float]:
    return {"extract": point["extract"]["peak_rss_mib"], **{k: v["peak_rss_mib"] for k, v in point["phases"].items()}}


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: peak RSS per phase (bounded as the portal grows), and the largest size's figures."""
    points = data["points"]
    small, large = points[-2] if len(points) > 1 else points[0], points[-1]
    out = []
    for p in (small, large):
        rss = _phase_rss(p)
        peak = max(rss.values())
        out.append({"measure": f"task peak RSS, {p['contacts']:,} contacts + {p['deals']:,} deals "
                               f"({' / '.join(f'{k} {v:.0f}' for k, v in rss.items())} MiB)",
                    "value": f"{peak:.0f} MiB", "target": f"≤ {RSS_LIMIT_MIB} MiB", "met": peak <= RSS_LIMIT_MIB})
    ratio = max(_phase_rss(large).values()) / max(_phase_rss(small).values())
    out.append({"measure": f"task peak RSS {large['contacts']:,} ÷ {small['contacts']:,} contacts (bounded, not linear)",
                "value": round(ratio, 2), "ratio": round(ratio, 2), "target": "≤ 1.5", "met": ratio <= 1.5})
    ext, fl, copy = large["extract"], large["floors"], large["copy"]
    load_s = _phase_seconds(large)
    names = " + ".join(large["phases"])
    out += [
        {"measure": f"full extraction of {large['records']:,} records, limits off: calls against a list-only listing",
         "value": f"{ext['calls']} calls, rate floor {ext['rate_floor_seconds']:.0f} s",
         "reference": f"list-only {fl['full_list_only_calls']} calls ({fl['full_list_only_seconds']:.0f} s at 19/s); "
                      f"two-budget floor {fl['full_two_budget_seconds']:.0f} s; unthrottled {ext['seconds']:.0f} s",
         "ratio": round(ext["calls"] / fl["full_list_only_calls"], 3)},
        {"measure": f"incremental extraction, {large['changed']:,} changed, limits off: calls against the search floor",
         "value": f"{large['incremental']['calls']} calls",
         "reference": f"floor {fl['incremental_calls']} calls (200 per search, 1,000 per association batch)",
         "ratio": round(large["incremental"]["calls"] / fl["incremental_calls"], 3)},
        {"measure": f"{names} of {large['records']:,} extracted records (PostgreSQL, empty tables)",
         "value": f"{load_s:.0f} s", "reference": f"COPY of the same {copy['rows']:,} rows {copy['seconds']:.1f} s",
         "ratio": round(load_s / copy["seconds"], 2) if copy["seconds"] else ""},
        {"measure": "curves: 429 responses (limits off, so none expected)", "value": sum(p["rate_limited"] for p in points),
         "target": "0", "met": not any(p["rate_limited"] for p in points)},
    ]
    return out
