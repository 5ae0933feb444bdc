"""The extraction's repairs against HubSpot's rate limits: association reconciliation and the id sweep.

Two portals, each a sandbox in its own process:

- the standard portal of the extraction benchmark (100,000 contacts / 50,000 deals / 10,000
  companies) with HubSpot's Professional limits (190 calls per 10 s, search 5 per s);
- a 1,000,000-contact portal (contacts measured only). Its reconciliation runs with the limits on;
  its sweep alone would take about 10 minutes at the real rate, so by default it runs with the limits
  off: the calls are measured and the seconds given are the rate floor of those calls.

Each portal gets, before anything is timed (with the limits switched off): "hub" records with more
links than one association page (a deal with 2.5 pages of contacts, a contact with 1.2 pages of
companies), so reconciliation has to page; a few permanent deletes and merges, so the sweep has
candidates to confirm. The finance tables' ids (what ``pipeline.read_finance_ids`` would give) are
the ids HubSpot listed before those deletes and merges.

Measured, per object, one extract task at a time with the whole budget, each from an idle rate
window (HubSpot's window is 10 s: a run may start with a burst):

- a nightly incremental run whose window holds no changes, association reconciliation off and on:
  what reconciliation adds in calls and seconds, and its calls per 1,000 records per association
  type against the floor ``types × ceil(records / 1,000) + paging`` (paging: every page past the
  first of a from-record with more links than the sandbox's association page size, counted in the
  run's association datasets);
- the id sweep (``run_sweep=True``): its seconds against its rate floor — live ids listed from both
  ends on both budgets (list 100 ids × 19/s plus search 200 ids × 5/s) plus the candidate reads (live,
  then archived, 100 ids a call) at 19 calls/s.

Then, on the standard portal, 20,000 contacts and 5,000 deals change and the incremental run of the
extraction benchmark (three extract tasks in parallel) runs twice over the same window, reconciliation
off and on, each against its own ceiling.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

from benchmarks.common import CONN_ID, peak_rss_mib, sandbox
from benchmarks.extract_bench import GENERAL_PER_SECOND, OBJECTS, SEARCH_PER_SECOND

# Setup reads and limit-free measurements: no client-side ceiling, and no shared limiter file (at an
# unlimited ceiling that file would hold every call of the last 10 s and measure itself).
FREE_CONN_ID = "hubspot_bench_free"
# HubSpot's rolling window (10 s) plus the client's margin: a timed run starts this long after the last limited call.
IDLE_WINDOW_SECONDS = 10.5
LIST_PAGE = 100  # ids per id-list page and per batch read
ASSOCIATION_BATCH = 1_000
REF_RUN = "repair-reference"

_TIMES = {"sweep": 0.0, "candidates": 0.0}


def _types(object_type: str) -> int:
    from hubspot_finance.objects import associations_from

    return len(associations_from(object_type))


# ----------------------------------------------------------------------------------------- worker


def _instrument() -> None:
    """Time the id sweep and its candidate reads inside extract_object (wrappers, same code path)."""
    from hubspot_finance import extract, id_sweep

    _TIMES.update(sweep=0.0, candidates=0.0)
    if getattr(extract.sweep, "bench_timed", False):
        return
    sweep = extract.sweep

    def timed_sweep(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return sweep(*args, **kwargs)
        finally:
            _TIMES["sweep"] += time.perf_counter() - started

    timed_sweep.bench_timed = True  # type: ignore[attr-defined]
    extract.sweep = timed_sweep

    class TimedHydrator(id_sweep.Hydrator):
        def read(self, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                super().read(*args, **kwargs)
            finally:
                _TIMES["candidates"] += time.perf_counter() - started

    id_sweep.Hydrator = TimedHydrator


def _warm(_: int) -> int:
    """Imports done before anything is timed: a task process pays them once, not per run (pandas is
    imported lazily by the first association part written, which would land on reconciliation)."""
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    import hubspot_finance.extract  # noqa: F401
    import hubspot_provider.hooks.hubspot  # noqa: F401

    logging.getLogger("hubspot_finance").setLevel(logging.WARNING)
    time.sleep(0.5)
    return 0


def _ids(path: str | None) -> tuple[str, ...]:
    return tuple(Path(path).read_text().split()) if path else ()


def _task(job: dict[str, Any]) -> dict[str, Any]:
    """One extract task (runs in a worker process): extract_object with the finance ids and repairs of ``job``."""
    from hubspot_finance import extract
    from hubspot_finance.state import FinanceIds
    from hubspot_finance.objects import get_object
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.windows import Window
    from hubspot_provider.hooks.hubspot import HubSpotHook

    logging.getLogger("hubspot_finance").setLevel(logging.WARNING)
    _instrument()
    finance = FinanceIds(live=_ids(job.get("live")), known=_ids(job.get("known")))
    hook = HubSpotHook(job["conn"], budget_fraction=job.get("general", 1.0), search_fraction=job.get("search", 1.0),
                       backoff_base=job["backoff"])
    started = time.perf_counter()
    manifest = extract.extract_object(
        hook, RawZone(job["raw_uri"]), get_object(job["object_type"]), Window.from_dict(job["window"]), job["run_id"],
        job["properties"], dropped_properties=job["dropped"], expected_records=job.get("expected"), finance=finance,
        reconcile_associations=job["reconcile"], run_sweep=job["sweep"],
    )
    manifest["task_seconds"] = time.perf_counter() - started
    manifest["sweep_seconds"] = _TIMES["sweep"]
    manifest["candidate_seconds"] = _TIMES["candidates"]
    manifest["peak_rss_mib"] = peak_rss_mib()
    return manifest


# ------------------------------------------------------------------------------------------ portal


class _Portal:
    """One sandbox portal: its control client, pool, raw zone, prepared ids and the idle-window pacing."""

    def __init__(self, name: str, workdir: Path, url: str, pool: ProcessPoolExecutor, *, limited: bool, backoff: float):
        from hubspot_provider.hooks.hubspot import HubSpotHook
        from hubspot_sandbox.control import SandboxControl

        self.name, self.workdir, self.pool, self.limited, self.backoff = name, workdir, pool, limited, backoff
        self.control = SandboxControl(url)
        self.free_hook = HubSpotHook(FREE_CONN_ID)
        self.raw_uri = (workdir / "raw").as_uri()
        self.last_limited = 0.0
        self.ids: dict[str, dict[str, Any]] = {}
        self.properties: dict[str, tuple[list[str], list[str]]] = {}
        self.planted: dict[str, dict[str, int]] = {}
        self.page_size = 500

    def limits(self, on: bool) -> None:
        """Switch the sandbox's limits (setup and limit-free measurements run with them off)."""
        if self.limited:
            self.control.set_limits(enabled=on, reset_counters=True)

    def idle(self) -> None:
        """Wait until the rate window holds none of our calls, so every timed run starts alike."""
        if self.limited:
            time.sleep(max(0.0, self.last_limited + IDLE_WINDOW_SECONDS - time.monotonic()))

    def prepare(self, objects: tuple[str, ...], *, purge: int, merge: int, page_size: int | None) -> None:
        """List every id (limits off), add hub records, then delete permanently and merge a few records."""
        from hubspot_finance import extract
        from hubspot_finance.objects import get_object
        from hubspot_finance.rawzone import RawZone

        self.limits(False)
        if page_size:
            self.control.configure(association_page_size=page_size)
        self.page_size = int(self.control.state()["config"]["association_page_size"])
        zone = RawZone(self.raw_uri)
        extract.extract_reference(self.free_hook, zone, REF_RUN)
        for o in OBJECTS:
            self.properties[o] = extract.properties_for_run(zone, REF_RUN, get_object(o))
        for o in objects:
            live = [str(r["id"]) for page in self.free_hook.iter_list_pages(o, ["hs_object_id"]) for r in page.results]
            archived = [str(r["id"]) for page in self.free_hook.iter_list_pages(o, ["hs_object_id"], archived=True)
                        for r in page.results]
            self.ids[o] = {"live": live, "archived": archived}
        companies = self.ids.get("companies", {}).get("live") or [
            str(r["id"]) for page in self.free_hook.iter_list_pages("companies", ["hs_object_id"]) for r in page.results]
        hubs = {("deals", "contacts"): int(2.5 * self.page_size), ("contacts", "companies"): int(1.2 * self.page_size)}
        for (from_type, to_type), links in hubs.items():
            if from_type not in objects:
                continue
            targets = (self.ids[to_type]["live"] if to_type in self.ids else companies)[:links]
            for to_id in targets:
                self.control.associate(from_type, self.ids[from_type]["live"][0], to_type, to_id)
        for o in objects:
            live = self.ids[o]["live"]
            tail = live[-(purge + 2 * merge):] if purge + 2 * merge else []
            for record_id in tail[:purge]:
                self.control.purge(o, record_id)
            for survivor, absorbed in zip(tail[purge::2], tail[purge + 1::2]):
                self.control.merge(o, survivor, absorbed)
            self.planted[o] = {"purged": len(tail[:purge]), "merged": len(tail[purge + 1::2])}
            # What the finance tables hold: the live rows (reconciled) and live or archived rows (swept).
            (self.workdir / f"{o}-live.txt").write_text("\n".join(live))
            (self.workdir / f"{o}-known.txt").write_text("\n".join(live + self.ids[o]["archived"]))
        self.limits(True)
        self.control.reset_stats()

    def job(self, object_type: str, window: dict, run_id: str, *, reconcile: bool = False, sweep: bool = False,
            free: bool = False, **extra: Any) -> dict[str, Any]:
        properties, dropped = self.properties[object_type]
        return {"conn": FREE_CONN_ID if free else CONN_ID, "object_type": object_type, "window": window, "run_id": run_id,
                "raw_uri": self.raw_uri, "properties": properties, "dropped": dropped, "backoff": self.backoff,
                "reconcile": reconcile, "sweep": sweep,
                "live": str(self.workdir / f"{object_type}-live.txt") if reconcile else None,
                "known": str(self.workdir / f"{object_type}-known.txt") if sweep else None, **extra}

    def task(self, job: dict[str, Any]) -> dict[str, Any]:
        """One timed extract task; limit-free ones (``free``) switch the sandbox's limits off meanwhile."""
        free = job["conn"] == FREE_CONN_ID
        if free:
            self.limits(False)
        else:
            self.idle()
        try:
            return self.pool.submit(_task, job).result()
        finally:
            if free:
                self.limits(True)
            else:
                self.last_limited = time.monotonic()

    def extra_pages(self, object_type: str, run_id: str) -> dict[str, int]:
        """Association pages past the first, per association type, as served in ``run_id``: for every
        from-record with more links than the page size, ceil(links / page size) - 1."""
        import pyarrow as pa
        import pyarrow.compute as pc
        from hubspot_finance.objects import associations_from
        from hubspot_finance.rawzone import RawZone

        zone = RawZone(self.raw_uri)
        pages = {}
        for assoc in associations_from(object_type):
            manifest = zone.associations_manifest(object_type, assoc.to_type, run_id)
            tables = list(zone.iter_tables(manifest, columns=["from_id"]))
            extra = 0
            if tables:
                counts = pc.value_counts(pa.concat_tables(tables).column("from_id")).field("counts").to_pylist()
                extra = sum(math.ceil(c / self.page_size) - 1 for c in counts if c > self.page_size)
            pages[assoc.to_type] = extra
        return pages


def _nightly_window() -> dict:
    """A scheduled run's window a day after the last one: nothing in the sandbox changed in it."""
    from hubspot_finance.windows import plan_window

    now = datetime.now(timezone.utc)
    return plan_window(watermark=now - timedelta(days=1), now=now).as_dict()


# ------------------------------------------------------------------------------------ measurements


def _reconciliation(portal: _Portal, object_type: str, label: str, *, free: bool = False) -> tuple[list[dict], dict]:
    """Nightly run without changes, reconciliation off then on: what it adds, and its calls against the floor."""
    window = _nightly_window()
    off = portal.task(portal.job(object_type, window, f"{portal.name}-{object_type}-nightly-off", free=free))
    run_id = f"{portal.name}-{object_type}-nightly-on"
    on = portal.task(portal.job(object_type, window, run_id, reconcile=True, free=free))
    rec = on.get("reconciliation") or {}
    ids, calls, types = rec.get("ids", 0), rec.get("calls", 0), _types(object_type)
    pages = portal.extra_pages(object_type, run_id)
    paging = sum(pages.values())
    floor = types * math.ceil(ids / ASSOCIATION_BATCH) + paging
    added_calls = on["calls"]["total_calls"] - off["calls"]["total_calls"]
    added = on["task_seconds"] - off["task_seconds"]
    per_1000 = 1000 * calls / (ids * types) if ids and types else 0.0
    # 1.2 per 1,000 per type at scale; never less than the floor (a few records still take one call per type).
    allowed = max(floor, 1.2 * types * ids / 1000 + paging)
    limits = "limits off: seconds unthrottled, " if free else ""
    rows = [
        {"measure": f"reconciliation, {label}: added to a nightly run without changes ({ids:,} records, {types} "
                    f"association type{'s' if types > 1 else ''})",
         "value": f"{added:+.1f} s, {added_calls:+d} calls",
         "reference": f"{limits}off {off['task_seconds']:.1f} s → on {on['task_seconds']:.1f} s; rate floor "
                      f"{calls / GENERAL_PER_SECOND:.1f} s",
         "ratio": round(added / (calls / GENERAL_PER_SECOND), 3) if calls else ""},
        {"measure": f"reconciliation, {label}: calls per 1,000 records per association type",
         "value": round(per_1000, 3),
         "reference": f"{calls} calls; floor {floor} = {types} × {math.ceil(ids / ASSOCIATION_BATCH)} + {paging} paging "
                      f"(pages > {portal.page_size} links: {', '.join(f'→{t} {n}' for t, n in pages.items())})",
         "ratio": round(calls / floor, 3) if floor else "", "target": "≤ 1.2 + paging", "met": calls <= allowed},
    ]
    detail = {"off": off, "on": on, "ids": ids, "calls": calls, "added_calls": added_calls, "added_seconds": added,
              "paging": pages, "floor": floor}
    return rows, detail


def _sweep(portal: _Portal, object_type: str, label: str, *, free: bool = False) -> tuple[list[dict], dict]:
    """The id sweep of one object against its rate floor (limit-free: calls against the floor's calls)."""
    m = portal.task(portal.job(object_type, _nightly_window(), f"{portal.name}-{object_type}-sweep", sweep=True, free=free))
    s = m.get("sweep") or {}
    live, candidates, found, calls = s.get("live", 0), s.get("candidates", 0), s.get("found", 0), s.get("calls", 0)
    # Live ids come from both ends at once: list pages (100 ids, 19/s) and search pages (200 ids, 5/s), so the
    # listing's floor is live / (100 × 19 + 200 × 5) seconds; then every candidate read live, and those never
    # found read archived (100 a call, general budget). In calls, a list-only listing is the reference.
    reads_calls = math.ceil(candidates / LIST_PAGE) + math.ceil((candidates - found) / LIST_PAGE)
    floor_calls = max(1, math.ceil(live / LIST_PAGE)) + reads_calls
    floor = live / (LIST_PAGE * GENERAL_PER_SECOND + 200 * SEARCH_PER_SECOND) + reads_calls / GENERAL_PER_SECOND
    seconds, reads = m["sweep_seconds"], m["candidate_seconds"]
    what = f"{live:,} live, {candidates} candidates: {found} found, {s.get('purged', 0)} purged"
    if free:
        client_pace = 171 / 10.2  # the client's own pace at budget_share 0.9: 171 calls per 10 s + margin
        row = {"measure": f"id sweep, {label} ({what}; limits off: calls measured, seconds = rate floor)",
               "value": f"{calls} calls, rate floor {floor:.0f} s",
               "reference": f"a list-only listing {floor_calls} calls; rate floor on both budgets {floor:.0f} s; at the client's 171/10.2 s "
                            f"{calls / client_pace:.0f} s; unthrottled {seconds:.1f} s, of it candidate reads {reads:.1f} s",
               "ratio": round(calls / floor_calls, 3), "target": "≤ 1.1 (calls)", "met": calls <= 1.1 * floor_calls}
    else:
        row = {"measure": f"id sweep, {label} ({what})", "value": f"{seconds:.1f} s, {calls} calls",
               "reference": f"floor {floor:.1f} s (ids at 1,900/s listed + 1,000/s searched, {reads_calls} reads at 19/s); "
                            f"id list {seconds - reads:.1f} s, candidate "
                            f"reads {reads:.1f} s (re-read pauses included)",
               "ratio": round(seconds / floor, 3), "target": "≤ 1.1", "met": seconds <= 1.1 * floor}
    return [row], {"manifest": m, "floor_calls": floor_calls, "floor_seconds": floor, "seconds": seconds}


def _parallel(portal: _Portal, windows: dict, run_id: str, *, reconcile: bool) -> dict[str, Any]:
    """The extraction benchmark's incremental run (3 tasks in parallel, budget shares as planned)."""
    from hubspot_finance import extract
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.windows import Window
    from hubspot_provider.hooks.hubspot import HubSpotHook

    portal.idle()
    hook = HubSpotHook(CONN_ID)
    started = time.perf_counter()
    extract.extract_reference(hook, RawZone(portal.raw_uri), run_id)
    mapping = load_mapping()
    estimates = {o: extract.estimate_work(hook, get_object(o), Window.from_dict(windows[o]), get_object(o).properties(mapping))
                 for o in OBJECTS}
    fractions = extract.budget_fractions(estimates)
    jobs = [portal.job(o, windows[o], run_id, reconcile=reconcile and o in portal.ids, expected=int(estimates[o]["records"]),
                       **fractions[o]) for o in OBJECTS]
    manifests = dict(zip(OBJECTS, portal.pool.map(_task, jobs)))
    wall = time.perf_counter() - started
    portal.last_limited = time.monotonic()
    return {
        "wall_seconds": wall, "manifests": manifests,
        "calls": hook.stats.total_calls + sum(m["calls"]["total_calls"] for m in manifests.values()),
        "records": sum(m["records"] for m in manifests.values()),
        "live_records": sum(m["records"] - m["archived"] for m in manifests.values()),
        "reconciled": {o: (m.get("reconciliation") or {}) for o, m in manifests.items()},
    }


def _incremental(portal: _Portal, changed: dict[str, int], paging: dict[str, int]) -> list[dict]:
    """Bulk edits, then the incremental run twice over one window: reconciliation off, then on."""
    from hubspot_finance.windows import plan_window

    control = portal.control
    counts = control.state()["counts"]
    base = control.clock()["now_ms"]
    for object_type, props in (("contacts", {"city": "Bergen"}), ("deals", {"dealname": "Fornyet avtale"})):
        count = changed.get(object_type, 0)
        for i in range(0, count, 500):
            control.bulk_touch(object_type, min(500, count - i), at_ms=base + i // 500, properties=props,
                              start=1 + i * 3)  # not the hub records (the first live ones)
    time.sleep(0.01)
    watermark = datetime.fromtimestamp((base - 1000) / 1000, timezone.utc)
    now = datetime.now(timezone.utc) + timedelta(seconds=1)
    windows = {o: plan_window(watermark=watermark, now=now, overlap=timedelta(0), lag_margin=timedelta(0)).as_dict()
               for o in OBJECTS}
    off = _parallel(portal, windows, f"{portal.name}-incremental-off", reconcile=False)
    on = _parallel(portal, windows, f"{portal.name}-incremental-on", reconcile=True)
    # The extraction benchmark's ceiling; with reconciliation, plus its floor (ids the window did not read).
    search_min = sum(math.ceil(changed.get(o, 0) / 200) for o in OBJECTS)
    general_min = 5 + sum(_types(o) * math.ceil(changed.get(o, 0) / ASSOCIATION_BATCH)
                          + max(1, math.ceil(counts[o]["archived"] / LIST_PAGE)) for o in OBJECTS)
    rec_min = sum(_types(o) * math.ceil(r.get("ids", 0) / ASSOCIATION_BATCH) + (paging.get(o, 0) if r.get("ids") else 0)
                  for o, r in on["reconciled"].items())
    rec_calls = sum(r.get("calls", 0) for r in on["reconciled"].values())
    rec_ids = sum(r.get("ids", 0) for r in on["reconciled"].values())
    ceiling_off = max(general_min / GENERAL_PER_SECOND, search_min / SEARCH_PER_SECOND)
    ceiling_on = max((general_min + rec_min) / GENERAL_PER_SECOND, search_min / SEARCH_PER_SECOND)
    total = sum(changed.values())
    per_off, per_on = 1000 * off["calls"] / total, 1000 * on["calls"] / total
    return [
        {"measure": f"incremental extraction ({total:,} changed), association reconciliation off",
         "value": f"{off['wall_seconds']:.1f} s",
         "reference": f"ceiling {ceiling_off:.1f} s ({search_min} searches at 5/s, {general_min} calls at 19/s)",
         "ratio": round(off["wall_seconds"] / ceiling_off, 3), "target": "≤ 1.2",
         "met": off["wall_seconds"] <= 1.2 * ceiling_off},
        {"measure": f"incremental extraction ({total:,} changed), reconciliation on (+{rec_ids:,} unchanged records)",
         "value": f"{on['wall_seconds']:.1f} s",
         "reference": f"ceiling {ceiling_on:.1f} s ({search_min} searches at 5/s, {general_min} + {rec_min} calls at 19/s); "
                      f"reconciliation {rec_calls} calls",
         "ratio": round(on["wall_seconds"] / ceiling_on, 3), "target": "≤ 1.2",
         "met": on["wall_seconds"] <= 1.2 * ceiling_on},
        {"measure": "incremental: calls per 1,000 changed records, reconciliation off / on",
         "value": f"{per_off:.2f} / {per_on:.2f}", "reference": f"{off['calls']} / {on['calls']} calls",
         "target": "≤ 16 (off)", "met": per_off <= 16},
        {"measure": "incremental, reconciliation off / on: every change extracted once",
         "value": f"{off['live_records']:,} / {on['live_records']:,}", "reference": f"{total:,} changed",
         "met": off["live_records"] == on["live_records"] == total},
    ]


@contextmanager
def _portal(name: str, workdir: Path, ctx: Any, *, limited: bool, backoff: float, **sizes: int) -> Iterator[_Portal]:
    """A sandbox (Professional limits unless ``limited`` is false), both connections, and 3 warm workers.

    The workers start after both connections are in the environment: they inherit it when spawned.
    """
    with sandbox(workdir, tier="professional" if limited else None, **sizes) as (url, token):
        os.environ[f"AIRFLOW_CONN_{FREE_CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "hubspot", "host": url, "password": token,
             "extra": {"requests_per_ten_seconds": 1_000_000, "search_requests_per_second": 1_000, "shared_limits": False}})
        with ProcessPoolExecutor(max_workers=3, mp_context=ctx) as pool:
            list(pool.map(_warm, range(3)))
            yield _Portal(name, workdir, url, pool, limited=limited, backoff=backoff)


def run(workdir: Path, *, contacts: int = 100_000, deals: int = 50_000, companies: int = 10_000,
        changed_contacts: int = 20_000, changed_deals: int = 5_000, big_contacts: int = 1_000_000,
        limits: bool = True, big_sweep_limits: bool = False, purge: int = 5, merge: int = 2,
        page_size: int | None = None, backoff: float = 0.5) -> list[dict[str, Any]]:
    """Rows for the results table. ``limits=False`` (smoke) runs everything without rate limits;
    ``big_sweep_limits`` measures the big portal's sweep at the real rate too (about 10 minutes)."""
    rows: list[dict[str, Any]] = []
    ctx = get_context("spawn")

    with _portal("standard", workdir / "standard", ctx, limited=limits, backoff=backoff, contacts=contacts, deals=deals,
                 companies=companies) as portal:
        portal.prepare(OBJECTS, purge=purge, merge=merge, page_size=page_size)
        paging: dict[str, int] = {}
        for o in OBJECTS:
            if _types(o):
                got, detail = _reconciliation(portal, o, o)
                rows += got
                paging[o] = sum(detail["paging"].values())
        sweeps = {}
        for o in OBJECTS:
            got, sweeps[o] = _sweep(portal, o, o)
            rows += got
        purged = sum(d["manifest"]["sweep"].get("purged", 0) for d in sweeps.values())
        planted = sum(p["purged"] for p in portal.planted.values())
        rows.append({"measure": "id sweep: permanent deletes found (all planted, none invented)", "value": purged,
                     "reference": f"{planted} planted", "met": purged == planted})
        rows += _incremental(portal, {"contacts": changed_contacts, "deals": changed_deals}, paging)
        too_fast = sum((portal.control.stats().get("rate_limited") or {}).values())

    big = f"{big_contacts:,} contacts"
    with _portal("big", workdir / "big", ctx, limited=limits, backoff=backoff, contacts=big_contacts, deals=10,
                 companies=max(300, big_contacts // 100)) as portal:
        portal.prepare(("contacts",), purge=purge, merge=merge, page_size=page_size)
        got, _ = _reconciliation(portal, "contacts", big)
        rows += got
        got, _ = _sweep(portal, "contacts", big, free=not big_sweep_limits)
        rows += got
        too_fast += sum((portal.control.stats().get("rate_limited") or {}).values())

    rows.append({"measure": "repair runs: 429 responses", "value": too_fast, "target": "0", "met": not too_fast})
    return rows
