"""The raw zone on an S3-compatible object store: ``s3://aws_default@bucket/raw`` through Airflow's
ObjectStoragePath and the amazon provider's s3fs, against moto in server mode on loopback (a real HTTP
endpoint; the ``aws_default`` connection's ``endpoint_url`` points at it). Same guarantees as on a local
disk: chunked parts, the manifest as the commit point, a retry that invalidates the old manifest first;
plus the object store going away mid-dataset (a TCP proxy resetting every connection)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from finance_testdata import assoc, iso, rec
from hubspot_finance.config import default_raw_root
from hubspot_finance.rawzone import BLOCK_AT_ENV, IncompleteDatasetError, RawZone, RawZoneError, record_schema, sanitize_run_id
from s3_support import SECRET, flaky_proxy, flaky_s3_zone, moto_s3, release_after, s3_zone  # noqa: F401 (fixtures)

RUN = "scheduled__2024-01-01T02:00:00+00:00"
R = sanitize_run_id(RUN)


@pytest.fixture(autouse=True)
def nothing_local(tmp_path):
    """No raw-zone file may land on the local disk: not in the default root, the tmp dir or the working dir."""
    local_root = Path(default_raw_root().removeprefix("file://"))
    before = sorted(local_root.rglob("*"))
    yield
    assert sorted(local_root.rglob("*")) == before
    assert not list(tmp_path.iterdir())
    assert not list(Path.cwd().glob("raw-zone-*"))  # a bucket name taken for a relative local path


def test_records_and_associations_on_s3(s3_zone):
    zone = RawZone(s3_zone.root, chunk_rows=2)
    w = zone.record_writer("contacts", RUN, ["email"])
    w.write([rec("1", iso(2), email="a@b.no"), rec("2", iso(2)), rec("3", iso(3), email="c")])
    w.write_json("purged.json", ["7"])
    m = w.commit({"mode": "full"})
    a = zone.association_writer("deals", "companies", RUN)
    a.write([assoc("100", ("10", [5], ["Primary"]))])
    a.add_covered(["101"])
    am = a.commit()
    # one object per file, manifests included; no directory markers, no temporary names
    assert s3_zone.keys() == [
        f"associations/deals_to_companies/run={R}/_manifest.json",
        f"associations/deals_to_companies/run={R}/from_ids-00000.parquet",
        f"associations/deals_to_companies/run={R}/part-00000.parquet",
        f"contacts/run={R}/_manifest.json",
        f"contacts/run={R}/part-00000.parquet",
        f"contacts/run={R}/part-00001.parquet",
        f"contacts/run={R}/purged.json",
    ]
    on_store = json.loads(s3_zone.moto.read(s3_zone.bucket, f"raw/contacts/run={R}/_manifest.json"))
    assert on_store["parts"] == [{"file": "part-00000.parquet", "rows": 2}, {"file": "part-00001.parquet", "rows": 1}]
    assert on_store["extra"] == {"mode": "full", "side_files": ["purged.json"]}
    # read back through a new zone object, as the load task on another worker does
    reader = RawZone(s3_zone.root)
    tables = list(reader.iter_tables(reader.records_manifest("contacts", RUN)))
    assert all(t.schema == record_schema(["email"]) for t in tables)
    assert [r["id"] for r in pa.concat_tables(tables).to_pylist()] == ["1", "2", "3"]
    assert reader.read_dataset_json(m, "purged.json") == ["7"]
    assert pa.concat_tables(reader.iter_tables(am)).column("is_primary").to_pylist() == [True]
    assert sorted(pa.concat_tables(reader.iter_from_ids(am)).column("from_id").to_pylist()) == ["100", "101"]


def test_manifest_is_the_commit_point_on_s3(s3_zone):
    zone = RawZone(s3_zone.root, chunk_rows=1)
    w = zone.record_writer("deals", "r1", ["amount"])
    w.write([rec("1", iso(2)), rec("2", iso(2))])  # parts stored, no manifest: a crash here
    assert s3_zone.keys() == ["deals/run=r1/part-00000.parquet", "deals/run=r1/part-00001.parquet"]
    with pytest.raises(IncompleteDatasetError, match="no _manifest.json"):
        zone.records_manifest("deals", "r1")
    w.commit()
    assert "deals/run=r1/_manifest.json" in s3_zone.keys()
    w2 = zone.record_writer("deals", "r1", ["amount"])  # a retry of the same run drops the manifest first
    assert "deals/run=r1/_manifest.json" not in s3_zone.keys()
    with pytest.raises(IncompleteDatasetError):
        zone.records_manifest("deals", "r1")
    w2.write([rec("9", iso(2))])
    m = w2.commit()
    assert [t.column("id").to_pylist() for t in zone.iter_tables(m)] == [["9"]]  # the leftover part-00001 is not read


def test_reference_json_on_s3_is_written_in_place(s3_zone):
    zone = RawZone(s3_zone.root)
    with pytest.raises(IncompleteDatasetError):
        zone.read_reference(RUN, "account")
    zone.write_reference(RUN, "account", {"companyCurrency": "NOK", "name": "Bl\ud800"})
    zone.write_reference(RUN, "pipelines_deals", [{"id": "default"}])
    assert s3_zone.keys() == [f"reference/run={R}/_manifest.json", f"reference/run={R}/account.json",
                              f"reference/run={R}/pipelines_deals.json"]  # no temporary object left by a rename
    assert zone.read_reference(RUN, "account") == {"companyCurrency": "NOK", "name": "Bl\ud800"}
    assert RawZone(s3_zone.root).reference_manifest(RUN).files == ["account", "pipelines_deals"]
    assert zone.read_reference(RUN, "properties_deals", default=[]) == []


def test_a_missing_bucket_is_an_error_not_created(s3_zone):
    root = f"s3://aws_default@no-such-bucket-{s3_zone.bucket}/raw"
    w = RawZone(root).record_writer("deals", "r1", [])
    w.write([rec("1", iso(2))])
    with pytest.raises(RawZoneError) as failed:
        w.commit()
    assert str(failed.value).startswith(f"writing raw-zone file deals/run=r1/part-00000.parquet under {root} failed: "
                                        "the object store could not be written (FileNotFoundError: ")
    buckets = [b["Name"] for b in s3_zone.moto.client().list_buckets()["Buckets"]]
    assert f"no-such-bucket-{s3_zone.bucket}" not in buckets


def test_store_unavailable_between_chunks_then_the_retry_commits(flaky_s3_zone, tmp_path_factory, monkeypatch):
    zone, proxy = RawZone(flaky_s3_zone.root, chunk_rows=2), flaky_s3_zone.proxy
    records = [rec(str(i), iso(2)) for i in range(5)]
    marker = tmp_path_factory.mktemp("block") / "marker"
    monkeypatch.setenv(BLOCK_AT_ENV, f"write_part:deals/run={marker}")
    release_after(marker, proxy.down)  # the store goes away once the first chunk is stored
    w = zone.record_writer("deals", "r1", [])
    with pytest.raises(RawZoneError) as failed:
        w.write(records)
        w.commit()
    message = str(failed.value)
    assert message.startswith(f"writing raw-zone file deals/run=r1/part-00001.parquet under {flaky_s3_zone.root} failed: "
                              "the object store could not be written (")
    assert "The dataset has no manifest, so nothing of it will be loaded; re-run the task" in message
    assert SECRET not in message.replace(flaky_s3_zone.root, "")
    assert proxy.dropped >= 1  # the fault was real: connections were refused
    proxy.up()
    assert flaky_s3_zone.keys() == ["deals/run=r1/part-00000.parquet"]  # the chunk set, without a manifest
    with pytest.raises(IncompleteDatasetError):
        zone.records_manifest("deals", "r1")
    w = zone.record_writer("deals", "r1", [])  # the task's retry
    w.write(records)
    m = w.commit()
    assert [p["rows"] for p in m.parts] == [2, 2, 1]
    assert pa.concat_tables(RawZone(flaky_s3_zone.root).iter_tables(m)).column("id").to_pylist() == [str(i) for i in range(5)]


def test_store_unavailable_at_commit_or_start_leaves_no_manifest(flaky_s3_zone):
    zone, proxy = RawZone(flaky_s3_zone.root), flaky_s3_zone.proxy
    w = zone.record_writer("companies", "r1", [])
    w.write([rec("1", iso(2))])
    w.flush()
    proxy.down()
    with pytest.raises(RawZoneError, match=r"^writing raw-zone file companies/run=r1/_manifest.json under s3://aws_default@"):
        w.commit()
    proxy.up()
    assert flaky_s3_zone.keys() == ["companies/run=r1/part-00000.parquet"]
    committed = zone.record_writer("companies", "r1", [])
    committed.write([rec("1", iso(2))])
    committed.commit()
    proxy.down()  # a retry that cannot reach the store leaves the committed dataset as it was
    with pytest.raises(RawZoneError, match="Nothing of this attempt was written"):
        zone.record_writer("companies", "r1", [])
    proxy.up()
    assert [t.num_rows for t in zone.iter_tables(zone.records_manifest("companies", "r1"))] == [1]
