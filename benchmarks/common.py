"""Shared benchmark plumbing: a sandbox in its own process, peak-RSS measurement, result tables."""

from __future__ import annotations

import json
import os
import resource
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hubspot_devtools.local import REPO, sandbox_process

RESULTS = REPO / "benchmarks" / "results"
CONN_ID = "hubspot_bench"
# The same sandbox with the whole budget to this pipeline (budget_share 1.0: no reserve for other integrations).
WHOLE_BUDGET_CONN_ID = "hubspot_bench_whole"


@contextmanager
def sandbox(workdir: Path, *, contacts: int, deals: int, companies: int, tier: str | None = "professional",
            seed: int = 42) -> Iterator[tuple[str, str]]:
    """The sandbox in a separate process (so it does not share our GIL), with HubSpot's limits of ``tier``.

    Without a tier the sandbox enforces no limits and the client is told a ceiling it never reaches,
    so what is measured is our own speed and memory, not the rate budget.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    # No recent activity: the published figures are of the plain seed.
    args = ["--contacts", str(contacts), "--deals", str(deals), "--companies", str(companies), "--seed", str(seed),
            "--recent-days", "0"]
    args += ["--tier", tier] if tier else ["--no-rate-limits"]
    with sandbox_process(workdir, args=args) as (url, token):
        extra = {"requests_per_ten_seconds": 190 if tier else 1_000_000, "search_requests_per_second": 5 if tier else 1_000}
        for conn_id, share in ((CONN_ID, {}), (WHOLE_BUDGET_CONN_ID, {"budget_share": 1.0})):
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {"conn_type": "hubspot", "host": url, "password": token, "extra": {**extra, **share}})
        yield url, token


def peak_rss_mib() -> float:
    """This process's own peak RSS (``VmHWM``), in MiB.

    Not ``ru_maxrss``: Linux carries it across fork and exec, so a fresh child process would report
    its parent's peak if that was higher.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.started


def write_results(name: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> tuple[Path, Path]:
    """benchmarks/results/<name>.json and .md: every figure with its target and verdict."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps({"meta": meta, "results": rows}, indent=2, default=str))
    md_path.write_text(markdown_table(rows, meta))
    return json_path, md_path


def markdown_table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"Measured {meta.get('date')} on {meta.get('machine')} ({meta.get('mode')} run, {meta.get('seconds', 0):.0f} s).", ""]
    lines.append("| measure | value | limit / baseline | ratio | target | met |")
    lines.append("|---|---|---|---|---|---|")
    for row in rows:
        met = row.get("met")
        lines.append(
            f"| {row['measure']} | {row.get('value', '')} | {row.get('reference', '')} | {row.get('ratio', '')} | "
            f"{row.get('target', '')} | {'' if met is None else ('yes' if met else '**no**')} |"
        )
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = ["measure", "value", "reference", "ratio", "target", "met"]
    cells = [[str(r.get(h, "")) if h != "met" else ("" if r.get("met") is None else ("yes" if r["met"] else "NO")) for h in headers] for r in rows]
    widths = [min(60, max(len(h), *(len(c[i]) for c in cells))) for i, h in enumerate(headers)] if cells else []
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v[:w].ljust(w) for v, w in zip(c, widths)))


def timed_load(zone: Any, run_id: str, target: str, schema: str, **plan_kw: Any) -> tuple[float, Any]:
    """Transform then load run ``run_id`` of ``zone`` into a fresh ``schema`` (PostgreSQL DSN) or file (SQLite path);
    (seconds, summary). The DAG runs the two as separate tasks; here they run back to back."""
    from hubspot_finance.load import LoadConfig
    from hubspot_finance.transform_step import transform_and_load

    if target.startswith("postgresql"):
        import psycopg

        conn = psycopg.connect(target)
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.commit()
    else:
        import sqlite3

        Path(target).unlink(missing_ok=True)
        conn = sqlite3.connect(target)
    started = time.perf_counter()
    try:
        summary = transform_and_load(conn, zone, run_id, config=LoadConfig(schema=schema), **plan_kw)
    finally:
        conn.close()
    return time.perf_counter() - started, summary
