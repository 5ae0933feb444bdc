"""The transform task: raw Parquet → typed, validated, one-row-per-id Parquet in ``staged/`` with its manifest last."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from finance_testdata import iso, rec, write_run
from hubspot_finance import rawzone
from hubspot_finance.load import LoadConfig, LoadPlan
from hubspot_finance.transform_step import StagedDatasetMissingError, transform_object


def _deals(zone):
    base = {"dealname": "D", "dealstage": "closedwon", "pipeline": "default", "deal_currency_code": "NOK",
            "closedate": "2024-06-30T22:00:00.000Z"}
    write_run(zone, "r1", deals=[
        rec("100", iso(2), amount="10.50", **{k: v for k, v in base.items()}),
        rec("101", iso(2), amount="7", **base),
        rec("102", iso(2), amount="1", **base),
        rec("100", iso(4), amount="12.25", **base),  # newer version of 100 in the second chunk
        rec("101", iso(9), amount="oops", **base),  # newest version of 101 is rejected: it never wins
        rec("102", iso(2), amount="2", **base),  # tie on updated_at: the last read wins
        rec("103", iso(3), amount="100000000000000000000000000000.000000000000000000000000000001", **base),
    ])


def _read(zone, manifest) -> pa.Table:
    return pa.concat_tables(list(zone.iter_tables(manifest)))


def test_one_row_per_id_exact_types(zone):
    _deals(zone)
    m = transform_object(zone, "r1", "deals")
    table = _read(zone, m)
    rows = {r["hubspot_deal_id"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["100", "101", "102", "103"] and table.num_rows == m.rows == 4
    assert rows["100"]["amount"] == Decimal("12.25")
    assert rows["101"]["amount"] == Decimal("7")  # the rejected newer version never wins
    assert rows["102"]["amount"] == Decimal("2")
    assert rows["103"]["amount"] == Decimal("100000000000000000000000000000.000000000000000000000000000001")
    assert pa.types.is_decimal(table.schema.field("amount").type)
    ts = table.schema.field("updated_at").type
    assert pa.types.is_timestamp(ts) and ts.tz == "UTC"
    assert table.schema.field("close_date").type == pa.date32()
    assert rows["100"]["close_date"] == dt.date(2024, 7, 1)  # 22:00Z is the next day in Oslo
    assert m.kind == "staged" and m.extra["rejected"] == 1 and m.extra["raw_rows"] == 7
    assert zone.read_dataset_json(m, "rejects.json")[0]["hubspot_id"] == "101"


def test_manifest_written_last_and_absent_after_failed_commit(zone, monkeypatch):
    _deals(zone)
    real = rawzone._write_json

    def failing(path, obj):
        if path.name == rawzone.MANIFEST and "staged" in str(path):
            raise OSError(28, "No space left on device")
        real(path, obj)

    monkeypatch.setattr(rawzone, "_write_json", failing)
    with pytest.raises(rawzone.RawZoneError):
        transform_object(zone, "r1", "deals")
    with pytest.raises(StagedDatasetMissingError, match="transform_deals"):
        zone.staged_manifest("deals", "r1")
    monkeypatch.setattr(rawzone, "_write_json", real)
    # the retry converges: the same rows as a clean run
    m = transform_object(zone, "r1", "deals")
    first = _read(zone, m).to_pylist()
    m2 = transform_object(zone, "r1", "deals")
    assert _read(zone, m2).to_pylist() == first and m2.rows == 4


def test_load_refuses_a_run_without_staged_data(zone):
    write_run(zone, "r1", contacts=[rec("1", iso(2), email="a@b.no")])
    with pytest.raises(StagedDatasetMissingError, match="transform_contacts"):
        LoadPlan.from_zone(zone, "r1", object_types=["contacts"], associations=[], config=LoadConfig())


def test_crash_before_commit_leaves_no_manifest(zone, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    _deals(zone)
    marker = tmp_path / "blocked"
    code = textwrap.dedent(f"""
        from hubspot_finance.rawzone import RawZone
        from hubspot_finance.transform_step import transform_object
        transform_object(RawZone({str(zone.root)!r}, chunk_rows=3), "r1", "deals")
    """)
    env = {**os.environ, rawzone.BLOCK_AT_ENV: f"commit:staged={marker}"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 180  # a loaded 2-core machine imports slowly
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.poll()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    with pytest.raises(StagedDatasetMissingError):
        zone.staged_manifest("deals", "r1")
    assert transform_object(zone, "r1", "deals").rows == 4
