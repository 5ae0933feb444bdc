"""The benchmark suite at smoke size, so its code cannot rot. Checks shape and bookkeeping, not speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.slow
def test_extract_benchmark_at_smoke_size(pg_dsn):
    out = "smoke-test"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--only", "extract", "--pg-dsn", pg_dsn,
         "--out", out],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    path = REPO / "benchmarks" / "results" / f"{out}.json"
    report = json.loads(path.read_text())
    measures = {row["measure"].split(" (")[0]: row for row in report["results"]}
    # Correctness figures hold at any size: every change once, no 429s anywhere.
    assert measures["incremental: every change extracted once"]["met"] is True
    # Smoke runs the full read from both ends only (no old-path or whole-budget reads): it is measured.
    assert measures["full extraction"]["ratio"] > 0 and measures["full: list-only rate floor"]["value"].endswith(" s")
    assert not any(m.startswith("full extraction, list only") for m in measures)
    assert measures["full: 429 responses"]["value"] == 0
    assert measures["incremental: 429 responses"]["value"] == 0
    assert measures["our full sync ÷ do-it-yourself, HubSpot calls"]["ratio"] > 0
    assert (REPO / "benchmarks" / "results" / f"{out}.md").read_text().startswith("Measured")
    path.unlink()
    (REPO / "benchmarks" / "results" / f"{out}.md").unlink()
