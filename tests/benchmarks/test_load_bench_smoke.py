"""The load benchmark at smoke size (a few thousand rows): its structure, not its timings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import load_bench  # noqa: E402


@pytest.mark.postgres
def test_load_bench_smoke(pg_dsn, tmp_path):
    res = load_bench.run(scale=0.003, pg_dsn=pg_dsn, workdir=str(tmp_path / "bench"), to_sql_sample=1500, log=lambda m: None,
                         in_process=True)
    assert (res["contacts"], res["deals"]) == (3000, 1500)
    pg = res["postgres"]
    for step in ("copy", "load_initial", "load_upsert", "to_sql"):
        assert pg[step]["seconds"] > 0 and pg[step]["rows_per_s"] > 0
    assert pg["load_initial"]["status"] == pg["load_upsert"]["status"] == "success"
    c0, c1 = pg["load_initial"]["objects"]["contacts"], pg["load_upsert"]["objects"]["contacts"]
    assert c0["inserted"] == 3000 and c1["inserted"] == 0 and 500 <= c1["updated"] <= 700
    d0 = pg["load_initial"]["objects"]["deals"]
    assert d0["rejected"] > 0 and d0["inserted"] + d0["rejected"] == 1500
    assert pg["copy"]["rows"] == pg["loaded_rows"]
    # the transform task is measured on its own; each load says where its time went
    assert {r: t["rows"] for r, t in res["transform"].items()} == {"bench_initial": 4500 - d0["rejected"],
                                                                   "bench_upsert": 4500 - d0["rejected"]}
    assert any("load_run" in line for line in pg["load_upsert"]["profile"])
    for name in ("load_vs_copy", "upsert_vs_copy", "load_and_upsert_vs_two_copies", "to_sql_vs_load"):
        assert isinstance(res["ratios"][name], float) and res["ratios"][name] > 0
    assert set(res["met"]) == set(res["targets"]) and 0 < res["peak_rss_mib"] < 4096
    sq = res["sqlite"]
    assert sq["load_initial"]["status"] == "success" and sq["load_upsert"]["objects"]["deals"]["updated"] > 0
    assert sq["to_sql_vs_load"] > 0
