"""The curves part at smoke size (tasks in-process): the JSON has every point and phase, the PNGs exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_curves_and_plots_at_smoke_size(pg_dsn):
    out = "smoke-curves-test"
    made = [RESULTS / f"{out}.{ext}" for ext in ("json", "md")] + [RESULTS / f"{out}-curves.json"] + [
        RESULTS / f"{out}-curves-{kind}.png" for kind in ("time", "rss", "calls")]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--only", "curves", "--pg-dsn", pg_dsn, "--out", out],
        cwd=REPO, capture_output=True, text=True, timeout=540, env=dict(os.environ),
    )
    try:
        assert result.returncode == 0, result.stderr[-4000:]
        data = json.loads((RESULTS / f"{out}-curves.json").read_text())
        points = data["points"]
        assert [p["contacts"] for p in points] == [1_000, 4_000]
        for p in points:
            assert p["deals"] == p["contacts"] // 2 and p["records"] > p["contacts"]
            assert p["extract"]["calls"] > 0 and p["extract"]["rate_floor_seconds"] > 0
            assert p["extract"]["peak_rss_mib"] > 0
            assert p["phases"] and all(v["seconds"] > 0 and v["peak_rss_mib"] > 0 for v in p["phases"].values())
            assert p["copy"]["rows"] > 0 and p["copy"]["seconds"] > 0
            assert p["incremental"]["calls"] > 0 and p["floors"]["incremental_calls"] > 0
            assert p["changed"] == round(0.2 * p["contacts"]) + round(0.1 * p["deals"])
            assert p["rate_limited"] == 0
        for png in made[3:]:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        measures = {row["measure"].split(" (")[0]: row for row in json.loads(made[0].read_text())["results"]}
        assert measures["task peak RSS 4,000 ÷ 1,000 contacts"]["ratio"] > 0
        assert measures["curves: 429 responses"]["met"] is True
    finally:
        for path in made:
            path.unlink(missing_ok=True)
