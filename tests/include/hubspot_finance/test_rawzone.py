"""Raw zone: layout, schema, chunking, manifests as completeness markers, crash leftovers, reference data."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from finance_testdata import assoc, iso, rec
from hubspot_finance.rawzone import ASSOCIATION_SCHEMA, IncompleteDatasetError, RawZone, RawZoneError, record_schema, sanitize_run_id

RUN = "scheduled__2024-01-01T02:00:00+00:00"


def test_sanitize_run_id_is_path_safe_and_injective():
    s = sanitize_run_id(RUN)
    assert s == "scheduled__2024-01-01T02~3A00~3A00~2B00~3A00"
    assert sanitize_run_id("a:b") != sanitize_run_id("a_b") != sanitize_run_id("a~3Ab")
    assert "/" not in sanitize_run_id("x/../y")


def test_records_roundtrip_chunks_and_manifest(tmp_path):
    zone = RawZone(f"file://{tmp_path}", chunk_rows=2)
    w = zone.record_writer("contacts", RUN, ["email", "hs_merged_object_ids"])
    w.write([rec("1", iso(2), email="a@b.no"), rec("2", "1704153600000", created="2024-01-01T01:00:00+01:00")])
    w.write([rec("3", iso(3), archived=True, archived_at=iso(3, 1), email="x", other="dropped")])
    m = w.commit({"mode": "full", "window_end": "2024-01-04T00:00:00Z", "api_calls": 7})
    d = tmp_path / "contacts" / f"run={sanitize_run_id(RUN)}"
    assert sorted(p.name for p in d.iterdir()) == ["_manifest.json", "part-00000.parquet", "part-00001.parquet"]
    on_disk = json.loads((d / "_manifest.json").read_text())
    assert on_disk["parts"] == [{"file": "part-00000.parquet", "rows": 2}, {"file": "part-00001.parquet", "rows": 1}]
    assert on_disk["rows"] == 3 and on_disk["property_names"] == ["email", "hs_merged_object_ids"]
    assert on_disk["extra"] == {"mode": "full", "window_end": "2024-01-04T00:00:00Z", "api_calls": 7}
    tables = list(zone.iter_tables(zone.records_manifest("contacts", RUN)))
    assert all(t.schema == record_schema(["email", "hs_merged_object_ids"]) for t in tables)
    rows = pa.concat_tables(tables).to_pylist()
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["updated_at"].isoformat() == "2024-01-02T00:00:00+00:00"
    assert rows[1]["created_at"].isoformat() == "2024-01-01T00:00:00+00:00"
    assert (rows[2]["archived"], rows[2]["archived_at"].isoformat()) == (True, "2024-01-03T01:00:00+00:00")
    assert rows[0]["p:email"] == "a@b.no" and rows[1]["p:email"] is None
    assert m.rows == 3


def test_uncommitted_dataset_is_never_read(tmp_path):
    zone = RawZone(f"file://{tmp_path}", chunk_rows=1)
    w = zone.record_writer("deals", "r1", ["amount"])
    w.write([rec("1", iso(2)), rec("2", iso(2))])  # parts written, no manifest: a crash here
    with pytest.raises(IncompleteDatasetError, match="no _manifest.json"):
        zone.records_manifest("deals", "r1")
    w.commit()
    # a retry of the same run first invalidates the committed manifest
    w2 = zone.record_writer("deals", "r1", ["amount"])
    with pytest.raises(IncompleteDatasetError):
        zone.records_manifest("deals", "r1")
    w2.write([rec("9", iso(2))])
    m = w2.commit()
    assert [t.column("id").to_pylist() for t in zone.iter_tables(m)] == [["9"]]  # leftover part-00001 is ignored


def test_part_row_count_mismatch_is_detected(tmp_path):
    zone = RawZone(f"file://{tmp_path}")
    w = zone.record_writer("deals", "r1", [])
    w.write([rec("1", iso(2))])
    m = w.commit()
    m.parts[0]["rows"] = 5
    with pytest.raises(RawZoneError, match="manifest says 5"):
        list(zone.iter_tables(m))


def test_associations_dedup_primary_and_coverage(tmp_path):
    zone = RawZone(f"file://{tmp_path}")
    w = zone.association_writer("deals", "companies", RUN)
    w.write([assoc("100", ("10", [341], [None])), assoc("100", ("10", [5], ["Primary"]), ("11", [341], ["Billing"]))])
    w.add_covered(["101", "100"])
    m = w.commit()
    t = pa.concat_tables(zone.iter_tables(m))
    assert t.schema == ASSOCIATION_SCHEMA
    assert t.to_pylist() == [
        {"from_id": "100", "to_id": "10", "type_ids": [5, 341], "labels": ["Primary"], "is_primary": True},
        {"from_id": "100", "to_id": "11", "type_ids": [341], "labels": ["Billing"], "is_primary": False},
    ]
    assert sorted(pa.concat_tables(zone.iter_from_ids(m)).column("from_id").to_pylist()) == ["100", "101"]
    d = tmp_path / "associations" / "deals_to_companies" / f"run={sanitize_run_id(RUN)}"
    assert sorted(p.name for p in d.iterdir()) == ["_manifest.json", "from_ids-00000.parquet", "part-00000.parquet"]


def test_reference_json(tmp_path):
    zone = RawZone(f"file://{tmp_path}")
    with pytest.raises(IncompleteDatasetError):
        zone.read_reference(RUN, "account")
    zone.write_reference(RUN, "account", {"companyCurrency": "NOK"})
    zone.write_reference(RUN, "pipelines_deals", [{"id": "default"}])
    assert zone.read_reference(RUN, "account") == {"companyCurrency": "NOK"}
    assert zone.reference_manifest(RUN).files == ["account", "pipelines_deals"]
    with pytest.raises(IncompleteDatasetError, match="properties_deals"):
        zone.read_reference(RUN, "properties_deals")
    assert zone.read_reference(RUN, "properties_deals", default=[]) == []
    with pytest.raises(ValueError):
        zone.write_reference(RUN, "../evil", {})
