"""The repair benchmark (association reconciliation, id sweep) at smoke size: its bookkeeping, not its speed.

Smoke runs without rate limits and with a 100-link association page, so the hub records page and the
planted permanent deletes and merges go through the sweep's candidate reads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_repair_benchmark_at_smoke_size():
    out = "smoke-repair-test"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--only", "repair", "--out", out],
        cwd=REPO, capture_output=True, text=True, timeout=540, env=dict(os.environ),
    )
    json_path, md_path = (REPO / "benchmarks" / "results" / f"{out}.{ext}" for ext in ("json", "md"))
    try:
        assert result.returncode == 0, result.stderr[-4000:]
        report = json.loads(json_path.read_text())
        assert report["meta"]["parts"] == ["repair"]
        measures = {row["measure"].split(" (")[0]: row for row in report["results"]}

        # Reconciliation: one call per 1,000 records per association type, plus one per extra page of
        # the hub records (which have more links than a page): exactly the floor without faults.
        for label in ("contacts", "deals", "10,000 contacts"):
            calls = measures[f"reconciliation, {label}: calls per 1,000 records per association type"]
            assert calls["met"] is True and calls["ratio"] == 1.0, calls
            paging = int(re.search(r"\+ (\d+) paging", calls["reference"]).group(1))
            assert paging >= 1, calls  # the hub record paged
            added = measures[f"reconciliation, {label}: added to a nightly run without changes"]
            assert re.search(r"\+\d+ calls", added["value"]), added

        # The sweep: every object, the planted permanent deletes found, nothing else reported deleted.
        for label in ("contacts", "deals", "companies"):
            sweep = measures[f"id sweep, {label}"]
            assert "5 purged" in sweep["measure"] and "2 found" in sweep["measure"], sweep
            assert sweep["ratio"] > 0
        assert measures["id sweep: permanent deletes found"]["met"] is True
        big = measures["id sweep, 10,000 contacts"]
        assert "limits off" in big["measure"] and big["met"] is True, big  # calls within 1.1× the floor

        # The incremental figure with reconciliation off and on: every change once, both ways.
        assert measures["incremental, reconciliation off / on: every change extracted once"]["met"] is True
        assert measures["incremental extraction"]["ratio"] > 0
        assert measures["repair runs: 429 responses"]["value"] == 0
        assert md_path.read_text().startswith("Measured")
    finally:
        json_path.unlink(missing_ok=True)
        md_path.unlink(missing_ok=True)
