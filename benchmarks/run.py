"""`make bench`: the benchmark suite, every figure a ratio measured in the same run.

    python -m benchmarks.run                # full size (its seconds: meta.seconds in latest.json)
    python -m benchmarks.run --smoke        # a few thousand records (the test suite runs this)
    python -m benchmarks.run --only curves  # one part: extract, load, curves or repair

Writes benchmarks/results/latest.{json,md} (and a dated copy) and prints the table; the curves part
also writes curves.json and its PNGs (seconds, peak RSS and calls against portal size; the table's
memory figures are its points).
PostgreSQL figures need HUBSPOT_SYNC_BENCH_PG_DSN (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import print_table, write_results

FULL = {"contacts": 100_000, "deals": 50_000, "companies": 10_000, "changed_contacts": 20_000, "changed_deals": 5_000}
SMOKE = {"contacts": 3_000, "deals": 1_500, "companies": 300, "changed_contacts": 600, "changed_deals": 150}
# Repairs: the standard portal again plus a big one; the big portal's sweep runs with the limits off (its
# calls measured, its seconds the rate floor): at the real rate it alone would take about 10 minutes.
REPAIR_FULL = {**FULL, "big_contacts": 1_000_000}
# Smoke: no rate limits, a small association page (so hub records page), short re-read pauses.
REPAIR_SMOKE = {**SMOKE, "big_contacts": 10_000, "limits": False, "page_size": 100, "backoff": 0.01}
CURVE_SIZES = (50_000, 250_000, 1_000_000)
CURVE_SMOKE_SIZES = (1_000, 4_000)
PARTS = ["extract", "load", "curves", "repair"]


def load_rows(result: dict) -> list[dict]:
    """The load benchmark's result as table rows (its own dict keeps every detail in the JSON)."""
    pg, ratios, met, targets = result["postgres"], result["ratios"], result["met"], result["targets"]
    copy = pg["copy"]
    transform = result.get("transform", {}).get("bench_initial")
    rows = [
        {"measure": f"PostgreSQL: plain COPY of the same {copy['rows']:,} rows into empty unlogged tables",
         "value": f"{copy['seconds']:.1f} s", "reference": f"{copy['rows_per_s']:,} rows/s"},
        *([{"measure": f"transform task (raw → staged Parquet, {result['contacts']:,} contacts + {result['deals']:,} deals)",
            "value": f"{transform['seconds']:.1f} s", "reference": f"peak RSS {transform['peak_rss_mib']:.0f} MiB"}]
          if transform else []),
        {"measure": f"PostgreSQL: our load of the staged rows, empty tables ({result['contacts']:,} contacts + {result['deals']:,} deals)",
         "value": f"{pg['load_initial']['seconds']:.1f} s", "reference": f"COPY {copy['seconds']:.1f} s",
         "ratio": ratios["load_vs_copy"], "target": targets["load_vs_copy"], "met": met["load_vs_copy"]},
        {"measure": "PostgreSQL: our upsert where 20% changed", "value": f"{pg['load_upsert']['seconds']:.1f} s",
         "reference": f"COPY {copy['seconds']:.1f} s", "ratio": ratios["upsert_vs_copy"], "target": targets["upsert_vs_copy"],
         "met": met["upsert_vs_copy"]},
        {"measure": f"PostgreSQL: DataFrame.to_sql ({pg['to_sql']['rows']:,}-row sample, scaled) ÷ our load",
         "value": f"{pg['to_sql']['scaled_seconds']:.1f} s", "reference": f"ours {pg['load_initial']['seconds']:.1f} s",
         "ratio": ratios["to_sql_vs_load"], "target": targets["to_sql_vs_load"], "met": met["to_sql_vs_load"]},
        {"measure": "peak RSS per task (transform, load)", "value": f"{result['peak_rss_mib']:.0f} MiB",
         "target": f"{targets['peak_rss_mib']} MiB",
         "met": met["peak_rss_mib"]},
    ]
    lite = result.get("sqlite")
    if lite:
        rows.append({"measure": f"SQLite: our load / 20% upsert of {lite['rows']:,} rows",
                     "value": f"{lite['load_initial']['seconds']:.1f} s / {lite['load_upsert']['seconds']:.1f} s",
                     "reference": f"to_sql scaled {lite['to_sql']['scaled_seconds']:.1f} s" if lite.get("to_sql") else ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few thousand records: checks the code, not the targets")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    parser.add_argument("--pg-dsn", default=os.environ.get("HUBSPOT_SYNC_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--curve-sizes", default=None, metavar="N,N,…",
                        help=f"contacts per curve point (default {','.join(map(str, CURVE_SIZES))})")
    parser.add_argument("--out", default=None, help="results name (default: latest, or smoke)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("hubspot_finance").setLevel(logging.WARNING)
    parts = args.only or PARTS
    workdir = Path(tempfile.mkdtemp(prefix="hubspot-bench-"))
    started = time.perf_counter()
    rows = []
    try:
        if "extract" in parts:
            from benchmarks import extract_bench

            print("== extraction against the rate ceiling, and the do-it-yourself baseline", flush=True)
            # smoke: the full read from both ends only (no old-path or whole-budget reads, no pauses between them)
            rows += extract_bench.run(workdir / "extract", target=args.pg_dsn, compare=not args.smoke,
                                      **(SMOKE if args.smoke else FULL))
        if "load" in parts:
            from benchmarks import load_bench

            print("== load against COPY", flush=True)
            rows += load_rows(load_bench.run(scale=0.005 if args.smoke else 1.0, pg_dsn=args.pg_dsn))
        if "curves" in parts:
            from benchmarks import curves

            print("== curves: seconds, peak RSS per task and HubSpot calls against portal size", flush=True)
            name = f"{args.out}-curves" if args.out else ("smoke-curves" if args.smoke else "curves")
            sizes = tuple(int(n) for n in args.curve_sizes.split(",")) if args.curve_sizes else (
                CURVE_SMOKE_SIZES if args.smoke else CURVE_SIZES)
            rows += curves.run(workdir / "curves", sizes=sizes,
                               pg_dsn=args.pg_dsn, name=name, in_process=args.smoke)
        if "repair" in parts:
            from benchmarks import repair_bench

            print("== repairs: association reconciliation and the id sweep against the rate floor", flush=True)
            rows += repair_bench.run(workdir / "repair", **(REPAIR_SMOKE if args.smoke else REPAIR_FULL))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - started
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "mode": "smoke" if args.smoke else "full",
        "parts": parts,
        "seconds": seconds,
    }
    name = args.out or ("smoke" if args.smoke else "latest")
    json_path, md_path = write_results(name, rows, meta)
    if not args.smoke and not args.only:
        shutil.copy(md_path, md_path.with_name(f"{datetime.now(timezone.utc):%Y-%m-%d}.md"))
    print()
    print_table(rows)
    print(f"\n{len(rows)} figures in {seconds:.0f} s; written to {json_path} and {md_path}")
    missed = [r["measure"] for r in rows if r.get("met") is False]
    if missed:
        print("targets not met: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
