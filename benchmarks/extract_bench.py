"""Extraction against HubSpot's rate ceiling: a full run (list only, then from both ends), then an incremental run.

The sandbox enforces HubSpot's Professional limits (190 calls per 10 s, search 5 per s). The three
object types are extracted by three processes at once, as Airflow would run the three extract
tasks, each with its share of the budget. The ceiling of a run is the minimum number of calls the
API shape allows for that work divided by the allowed rates; search and the general budget are
separate and overlap, so the ceiling is the larger of the two quotients. A full run is measured
twice: the old list-only read against its rate floor (the calls a list-only read needs on the general
budget ÷ 19/s), and the read from both ends (list ascending, search descending) against the same floor.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import CONN_ID, WHOLE_BUDGET_CONN_ID, peak_rss_mib, sandbox, timed_load

GENERAL_PER_SECOND = 19.0  # Professional: 190 per 10 s
SEARCH_PER_SECOND = 5.0
OBJECTS = ("contacts", "deals", "companies")


def _warm(_: int) -> int:
    import hubspot_finance.extract  # noqa: F401
    import hubspot_provider.hooks.hubspot  # noqa: F401

    time.sleep(0.5)
    return 0


def _extract(args: tuple) -> dict[str, Any]:
    """One extract task (runs in a worker process)."""
    from hubspot_finance import extract
    from hubspot_finance.objects import get_object
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.windows import Window
    from hubspot_provider.hooks.hubspot import HubSpotHook

    object_type, window, run_id, raw_uri, fraction, expected, both_ends, conn_id = args
    zone = RawZone(raw_uri)
    decl = get_object(object_type)
    properties, dropped = extract.properties_for_run(zone, run_id, decl)
    hook = HubSpotHook(conn_id, budget_fraction=fraction["general"], search_fraction=fraction["search"])
    started = time.perf_counter()
    manifest = extract.extract_object(
        hook, zone, decl, Window.from_dict(window), run_id, properties, dropped_properties=dropped,
        expected_records=expected, full_from_both_ends=both_ends,
    )
    manifest["task_seconds"] = time.perf_counter() - started
    manifest["peak_rss_mib"] = peak_rss_mib()
    return manifest


def _run(pool, url: str, raw_uri: str, run_id: str, windows: dict, *, both_ends: bool = True,
         conn_id: str = CONN_ID) -> dict[str, Any]:
    from hubspot_finance import extract
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.windows import Window
    from hubspot_provider.hooks.hubspot import HubSpotHook
    from hubspot_sandbox.control import SandboxControl

    control = SandboxControl(url)
    control.reset_stats()
    hook = HubSpotHook(conn_id)
    zone = RawZone(raw_uri)
    started = time.perf_counter()
    extract.extract_reference(hook, zone, run_id)
    mapping = load_mapping()
    estimates = {
        o: extract.estimate_work(hook, get_object(o), Window.from_dict(windows[o]), get_object(o).properties(mapping))
        for o in OBJECTS
    }
    fractions = extract.budget_fractions(estimates)
    if not both_ends:  # the old path never searched: the budget split it had
        fractions = extract.budget_fractions({o: {**e, "search_calls": 1.0} for o, e in estimates.items()})
    jobs = [(o, windows[o], run_id, raw_uri, fractions[o], int(estimates[o]["records"]), both_ends, conn_id)
            for o in OBJECTS]
    manifests = {o: m for o, m in zip(OBJECTS, pool.map(_extract, jobs))}
    wall = time.perf_counter() - started
    stats = control.stats()
    planning_calls = hook.stats.total_calls
    return {
        "wall_seconds": wall,
        "manifests": manifests,
        "calls": planning_calls + sum(m["calls"]["total_calls"] for m in manifests.values()),
        "search_calls": hook.stats.calls.get("search", 0) + sum(m["calls"]["calls"].get("search", 0) for m in manifests.values()),
        "records": sum(m["records"] for m in manifests.values()),
        "sandbox_calls": stats.get("total"),
        "rate_limited": stats.get("rate_limited", {}),
        "peak_rss_mib": max(m["peak_rss_mib"] for m in manifests.values()),
        "fractions": fractions,
    }


def _ceiling(general_calls: int, search_calls: int) -> float:
    return max(general_calls / GENERAL_PER_SECOND, search_calls / SEARCH_PER_SECOND)


def _load_full(raw_uri: str, run_id: str, target: str) -> float:
    """Our transform + load of the full extraction (the second half of a full sync)."""
    from hubspot_finance.rawzone import RawZone

    return timed_load(RawZone(raw_uri), run_id, target, "bench_sync")[0]


def _diy(url: str, token: str, target: str, control: Any) -> dict[str, Any]:
    from benchmarks import diy_baseline

    if target.startswith("postgresql"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS bench_diy CASCADE")
            conn.execute("CREATE SCHEMA bench_diy")
    return diy_baseline.run(url, token, target, control)


def run(workdir: Path, *, contacts: int = 100_000, deals: int = 50_000, companies: int = 10_000,
        changed_contacts: int = 20_000, changed_deals: int = 5_000, target: str | None = None,
        diy: bool = True, compare: bool = True) -> list[dict[str, Any]]:
    """The extraction figures. ``compare=False`` (smoke) runs the full read from both ends only: not the old
    list-only path nor the whole-budget read, and so none of the pauses between them."""
    from hubspot_finance.windows import plan_window
    from hubspot_sandbox.control import SandboxControl

    rows: list[dict[str, Any]] = []
    raw_uri = (workdir / "raw").as_uri()
    ctx = get_context("spawn")
    target = target or str(workdir / "bench.db")
    with sandbox(workdir, contacts=contacts, deals=deals, companies=companies) as (url, token), \
            ProcessPoolExecutor(max_workers=3, mp_context=ctx) as pool:
        list(pool.map(_warm, range(3)))
        control = SandboxControl(url)
        counts = control.state()["counts"]
        now = datetime.now(timezone.utc)
        full_windows = {o: plan_window(watermark=None, now=now, lag_margin=timedelta(0)).as_dict() for o in OBJECTS}
        if compare:
            old = _run(pool, url, raw_uri, "bench-full-list", full_windows, both_ends=False)
            time.sleep(10.5)  # the old run's calls leave HubSpot's ten-second window before the new one starts
        full = _run(pool, url, raw_uri, "bench-full", full_windows)
        if compare:
            time.sleep(10.5)
            whole = _run(pool, url, raw_uri, "bench-full-whole", full_windows, conn_id=WHOLE_BUDGET_CONN_ID)

        pairs = {"contacts": 1, "deals": 2, "companies": 0}
        general_min = 5 + sum(
            math.ceil(counts[o]["live"] / 100) + max(1, math.ceil(counts[o]["archived"] / 100))
            + pairs[o] * math.ceil(counts[o]["live"] / 1000) for o in OBJECTS
        )
        ceiling = _ceiling(general_min, 0)
        records = full["records"]
        rows.append({"measure": "full: list-only rate floor", "value": f"{ceiling:.1f} s",
                     "reference": f"{general_min} calls (list pages, archived listing, associations, reference) at 19/s"})
        rows += [
            {"measure": f"full extraction, list only, old path ({old['records']:,} records, 3 tasks in parallel)",
             "value": f"{old['wall_seconds']:.1f} s", "reference": f"floor {ceiling:.1f} s ({old['search_calls']} searches)",
             "ratio": round(old["wall_seconds"] / ceiling, 3), "target": "≤ 1.2", "met": old["wall_seconds"] <= 1.2 * ceiling},
            {"measure": "full, list only: 429 responses", "value": sum(old["rate_limited"].values()), "target": "0",
             "met": not old["rate_limited"]},
        ] if compare else []
        rows += [
            {"measure": f"full extraction ({records:,} records, 3 tasks in parallel, both ends: list ascending + search descending; "
                        "default budget_share 0.9)",
             "value": f"{full['wall_seconds']:.1f} s",
             "reference": f"floor {ceiling:.1f} s ({full['search_calls']} searches); the floor at the client's pace "
                          f"(0.9 × 19/s) {ceiling / 0.9:.1f} s: {full['wall_seconds'] / (ceiling / 0.9):.3f}×",
             "ratio": round(full["wall_seconds"] / ceiling, 3), "target": "≤ 0.75", "met": full["wall_seconds"] <= 0.75 * ceiling},
        ]
        rows += [
            {"measure": f"full extraction from both ends with the whole budget (budget_share 1.0, {whole['records']:,} records)",
             "value": f"{whole['wall_seconds']:.1f} s", "reference": f"floor {ceiling:.1f} s ({whole['search_calls']} searches)",
             "ratio": round(whole["wall_seconds"] / ceiling, 3), "target": "≤ 0.75", "met": whole["wall_seconds"] <= 0.75 * ceiling},
            {"measure": "full, whole budget: 429 responses", "value": sum(whole["rate_limited"].values()), "target": "0",
             "met": not whole["rate_limited"]},
        ] if compare else []
        rows += [
            {"measure": "full: calls per 1,000 records", "value": round(1000 * full["calls"] / records, 2),
             "reference": f"{full['calls']} calls", "target": "≤ 12", "met": 1000 * full["calls"] / records <= 12},
            {"measure": "full: 429 responses", "value": sum(full["rate_limited"].values()), "target": "0",
             "met": not full["rate_limited"]},
            {"measure": "full: records per second", "value": round(records / full["wall_seconds"])},
        ]
        load_seconds = _load_full(raw_uri, "bench-full", target)
        sync_seconds = full["wall_seconds"] + load_seconds

        # People change things: bulk edits spread over many milliseconds.
        base = control.clock()["now_ms"]
        for object_type, count, batch, props in (("contacts", changed_contacts, 500, {"city": "Bergen"}),
                                                 ("deals", changed_deals, 500, {"dealname": "Fornyet avtale"})):
            for i in range(0, count, batch):
                control.bulk_touch(object_type, min(batch, count - i), at_ms=base + i // batch, properties=props, start=i * 3)
        time.sleep(0.01)
        watermark = datetime.fromisoformat(full_windows["contacts"]["advances_to"])
        now = datetime.now(timezone.utc) + timedelta(seconds=1)
        incr_windows = {o: plan_window(watermark=watermark, now=now, lag_margin=timedelta(0)).as_dict() for o in OBJECTS}
        incr = _run(pool, url, raw_uri, "bench-incremental", incr_windows)
        changed = {"contacts": changed_contacts, "deals": changed_deals, "companies": 0}
        search_min = sum(math.ceil(changed[o] / 200) for o in OBJECTS)
        general_min = 5 + sum(
            pairs[o] * math.ceil(changed[o] / 1000) + max(1, math.ceil(counts[o]["archived"] / 100)) for o in OBJECTS
        )
        ceiling = _ceiling(general_min, search_min)
        changed_total = changed_contacts + changed_deals
        live_records = incr["records"] - sum(m["archived"] for m in incr["manifests"].values())
        rows += [
            {"measure": f"incremental extraction ({changed_total:,} changed)", "value": f"{incr['wall_seconds']:.1f} s",
             "reference": f"ceiling {ceiling:.1f} s ({search_min} searches at 5/s, {general_min} calls at 19/s)",
             "ratio": round(incr["wall_seconds"] / ceiling, 3), "target": "≤ 1.2", "met": incr["wall_seconds"] <= 1.2 * ceiling},
            {"measure": "incremental: calls per 1,000 changed records (associations included)",
             "value": round(1000 * incr["calls"] / changed_total, 2), "reference": f"{incr['calls']} calls",
             "target": "≤ 16", "met": 1000 * incr["calls"] / changed_total <= 16},
            {"measure": "incremental: every change extracted once", "value": f"{live_records:,}",
             "reference": f"{changed_total:,} changed", "met": live_records == changed_total},
            {"measure": "incremental: 429 responses", "value": sum(incr["rate_limited"].values()), "target": "0",
             "met": not incr["rate_limited"]},
            {"measure": "scale-out: 3 extract tasks in parallel within the shared budget, 429s",
             "value": sum(full["rate_limited"].values()) + sum(incr["rate_limited"].values()), "target": "0",
             "met": not full["rate_limited"] and not incr["rate_limited"]},
            {"measure": "extract task peak RSS", "value": f"{max(full['peak_rss_mib'], incr['peak_rss_mib']):.0f} MiB"},
        ]
        if diy:
            baseline = _diy(url, token, target, control)
            rows += [
                {"measure": f"do-it-yourself: hubspot-api-client get_all + to_sql ({baseline['records']:,} contacts+deals)",
                 "value": f"{baseline['seconds']:.1f} s", "reference": f"{baseline['calls']} calls, {baseline['rate_limited']} 429s"},
                {"measure": "our full sync (3 objects + associations, extract + load) ÷ do-it-yourself, wall time",
                 "value": f"{sync_seconds:.1f} s", "reference": f"{baseline['seconds']:.1f} s",
                 "ratio": round(sync_seconds / baseline["seconds"], 3)},
                {"measure": "our full sync ÷ do-it-yourself, HubSpot calls", "value": full["calls"],
                 "reference": baseline["calls"], "ratio": round(full["calls"] / baseline["calls"], 3)},
                {"measure": "our full sync ÷ do-it-yourself, 429 responses", "value": sum(full["rate_limited"].values()),
                 "reference": baseline["rate_limited"]},
            ]
    return rows
