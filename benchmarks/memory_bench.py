"""Peak memory of a full sync of N contacts: extraction and load each in their own process, as Airflow
runs them, against the sandbox with its limits off (memory, not the rate budget, is measured here)."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import CONN_ID, peak_rss_mib, sandbox, timed_load


def _extract_contacts(raw_uri: str) -> dict[str, Any]:
    from hubspot_finance import extract
    from hubspot_finance.objects import get_object
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.windows import plan_window
    from hubspot_provider.hooks.hubspot import HubSpotHook

    hook = HubSpotHook(CONN_ID)
    zone = RawZone(raw_uri)
    extract.extract_reference(hook, zone, "mem")
    decl = get_object("contacts")
    properties, _ = extract.properties_for_run(zone, "mem", decl)
    window = plan_window(watermark=None, now=datetime.now(timezone.utc), lag_margin=timedelta(0))
    started = time.perf_counter()
    manifest = extract.extract_object(hook, zone, decl, window, "mem", properties)
    return {"rows": manifest["rows"], "seconds": time.perf_counter() - started,
            "peak_rss_mib": peak_rss_mib()}


def _load(raw_uri: str, target: str) -> dict[str, Any]:
    from hubspot_finance.rawzone import RawZone

    seconds, summary = timed_load(RawZone(raw_uri), "mem", target, "bench_memory", object_types=["contacts"],
                                  associations=[("contacts", "companies")])
    return {"loaded": summary.objects["contacts"].loaded, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}


def measure(workdir: Path, contacts: int, target: str) -> dict[str, Any]:
    ctx = get_context("spawn")
    with sandbox(workdir / f"sandbox-{contacts}", contacts=contacts, deals=10, companies=max(10, contacts // 100),
                 tier=None):
        raw_uri = (workdir / f"raw-{contacts}").as_uri()
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            extracted = pool.submit(_extract_contacts, raw_uri).result()
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            loaded = pool.submit(_load, raw_uri, target).result()
    return {"contacts": contacts, "extract": extracted, "load": loaded,
            "peak_rss_mib": max(extracted["peak_rss_mib"], loaded["peak_rss_mib"])}


def run(workdir: Path, *, sizes: tuple[int, int] = (250_000, 1_000_000), pg_dsn: str | None = None) -> list[dict[str, Any]]:
    small, large = sizes
    target = pg_dsn or str(workdir / "memory.db")
    a = measure(workdir, small, target)
    b = measure(workdir, large, target)
    ratio = b["peak_rss_mib"] / a["peak_rss_mib"]
    return [
        {"measure": f"full sync peak RSS, {small:,} contacts (extract {a['extract']['peak_rss_mib']:.0f} / load "
                    f"{a['load']['peak_rss_mib']:.0f} MiB)", "value": f"{a['peak_rss_mib']:.0f} MiB"},
        {"measure": f"full sync peak RSS, {large:,} contacts (extract {b['extract']['peak_rss_mib']:.0f} / load "
                    f"{b['load']['peak_rss_mib']:.0f} MiB)", "value": f"{b['peak_rss_mib']:.0f} MiB",
         "target": "≤ 1536 MiB", "met": b["peak_rss_mib"] <= 1536},
        {"measure": f"peak RSS {large:,} ÷ {small:,} (bounded, not linear)", "value": round(ratio, 2), "ratio": round(ratio, 2),
         "target": "≤ 1.5", "met": ratio <= 1.5},
        {"measure": f"extract + load of {large:,} contacts without rate limits",
         "value": f"{b['extract']['seconds']:.0f} s + {b['load']['seconds']:.0f} s"},
    ]
