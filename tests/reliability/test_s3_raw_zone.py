"""The sync as production Airflow runs it: the raw zone on an S3-compatible object store
(``HUBSPOT_SYNC_RAW_ROOT=s3://aws_default@bucket/raw``, the ``aws_default`` connection's ``endpoint_url``
pointing at moto in server mode on loopback). plan → extract → load through the real task bodies gives
exactly the tables of the same runs with a local raw zone, every raw-zone object is in the bucket and
nothing on the local disk; the store going away while a chunk is written fails the extract clearly,
leaves no manifest, and the task's retry converges."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import pytest

import reliability_harness as h
from hubspot_finance import pipeline
from hubspot_finance.config import default_raw_root
from hubspot_finance.rawzone import BLOCK_AT_ENV, MANIFEST, IncompleteDatasetError, RawZone, RawZoneError
from s3_support import SECRET, flaky_proxy, flaky_s3_zone, moto_s3, release_after, s3_zone  # noqa: F401 (fixtures)

CHUNK_ROWS = 50  # test-sized chunks: every full extract writes several parts per dataset


@pytest.fixture()
def chunked(monkeypatch):
    """The task bodies' raw zone (pipeline.raw_zone) with CHUNK_ROWS-row parts instead of 50 000."""
    monkeypatch.setattr(pipeline, "raw_zone", lambda cfg: RawZone(cfg.raw_root, chunk_rows=CHUNK_ROWS))


def local_raw_files(tmp_path: Path) -> list[str]:
    """Raw-zone files on the local disk: in the default root, the working dir, or tmp_path (but the finance database)."""
    local_root = Path(default_raw_root().removeprefix("file://"))
    found = [str(p) for p in local_root.rglob("*")] if local_root.exists() else []
    found += [str(p) for p in Path.cwd().glob("raw-zone-*")]  # a bucket name taken for a relative local path
    return found + [str(p) for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("finance-")]


def assert_every_object_is_accounted_for(s3_zone, run_ids: list[str]) -> int:
    """Each dataset in the bucket has its manifest, every file a manifest lists is there, and no other
    object is (no temporary names, no directory markers); the runs' datasets are all present."""
    keys = set(s3_zone.keys())
    datasets = {posixpath.dirname(k) for k in keys}
    listed = set()
    for d in datasets:
        assert f"{d}/{MANIFEST}" in keys, f"{d} has no manifest"
        m = json.loads(s3_zone.moto.read(s3_zone.bucket, f"{s3_zone.prefix}/{d}/{MANIFEST}"))
        files = [p["file"] for p in m["parts"] + m["from_id_parts"]] + m["extra"].get("side_files", [])
        files += [f"{name}.json" for name in m["files"]]
        listed |= {f"{d}/{MANIFEST}"} | {f"{d}/{f}" for f in files}
    assert listed == keys
    for run in run_ids:
        assert {f"reference/run={run}", f"contacts/run={run}", f"deals/run={run}", f"companies/run={run}",
                f"associations/deals_to_companies/run={run}", f"associations/contacts_to_companies/run={run}"} <= datasets
    return len(keys)


@pytest.mark.slow
def test_whole_sync_on_s3_equals_the_local_raw_zone(sb, use, target, reference, s3_zone, chunked, tmp_path):
    use(sb, raw_root=s3_zone.root)
    h.sync("run-1", h.NOW1)
    assert target.snapshot() == reference["run1"]  # the same tables as with file:// (conftest's reference)
    h.change_things(sb)
    h.sync("run-2", h.NOW2)
    assert target.snapshot() == reference["run2"]
    assert assert_every_object_is_accounted_for(s3_zone, ["run-1", "run-2"]) > 20
    parts = [k for k in s3_zone.keys() if k.startswith("contacts/run=run-1/part-")]
    assert len(parts) == 3  # 150 contacts in 50-row chunks
    assert local_raw_files(tmp_path) == []


@pytest.mark.slow
def test_store_unavailable_while_writing_a_chunk_then_the_retry_converges(
    sb, use, target, reference, flaky_s3_zone, chunked, tmp_path_factory, tmp_path, monkeypatch,
):
    zone = flaky_s3_zone
    use(sb, raw_root=zone.root)
    cfg = h.config()
    planned = h.plan("run-1", h.NOW1)
    reference_data = pipeline.extract_reference(cfg, "run-1")
    marker = tmp_path_factory.mktemp("block") / "marker"
    monkeypatch.setenv(BLOCK_AT_ENV, f"write_part:contacts/run={marker}")
    release_after(marker, zone.proxy.down)  # once contacts' first chunk is stored, the store goes away
    with pytest.raises(RawZoneError) as failed:
        pipeline.extract_object(cfg, planned, "contacts", "run-1", reference_data)
    message = str(failed.value)
    assert message.startswith(
        f"writing raw-zone file contacts/run=run-1/part-00001.parquet under {zone.root} failed: the object store "
        f"could not be written ("), message
    assert "The dataset has no manifest, so nothing of it will be loaded; re-run the task once the cause is fixed." in message
    assert SECRET not in message.replace(zone.root, "")  # the connection's key and secret never appear
    assert zone.proxy.dropped >= 1
    zone.proxy.up()  # the store is back
    keys = zone.keys()
    assert "contacts/run=run-1/part-00000.parquet" in keys and "contacts/run=run-1/part-00001.parquet" not in keys
    assert f"contacts/run=run-1/{MANIFEST}" not in keys
    with pytest.raises(IncompleteDatasetError, match="has no _manifest.json"):
        RawZone(zone.root).records_manifest("contacts", "run-1")
    with pytest.raises(IncompleteDatasetError):  # a load now would refuse the chunk set and change nothing
        h.load(planned, {o: {} for o in h.OBJECT_TYPES}, "run-1")
    assert target.snapshot() == {}  # nothing was loaded: the finance tables do not even exist yet
    # Airflow retries extract_contacts with the same run id; then the other extracts and the load run
    manifests = {o: pipeline.extract_object(cfg, planned, o, "run-1", reference_data) for o in h.OBJECT_TYPES}
    assert f"contacts/run=run-1/{MANIFEST}" in zone.keys()
    h.load(planned, manifests, "run-1")
    assert target.snapshot() == reference["run1"]
    h.change_things(sb)
    h.sync("run-2", h.NOW2)
    assert target.snapshot() == reference["run2"]
    assert_every_object_is_accounted_for(zone, ["run-1", "run-2"])
    assert local_raw_files(tmp_path) == []
