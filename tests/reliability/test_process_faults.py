"""Our own process and the database failing: kill -9 during extraction, transform and load; the
database unreachable or dropped mid-transaction; a full disk while writing Parquet; two runs at once.
Finance tables are either as before or fully updated, and the next run converges to the fault-free result."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import reliability_harness as h
from hubspot_finance import rawzone
from hubspot_finance.load import BLOCK_ENV
from hubspot_finance.rawzone import BLOCK_AT_ENV, IncompleteDatasetError, RawZone, RawZoneError

HARNESS = str(Path(h.__file__).resolve())


def start_child(env: dict, run_id: str, now, tmp_path, block: str):
    """A sync in a child process that stops at ``block`` (``phase[:match]`` or ``staging``)."""
    marker = tmp_path / f"block-{uuid.uuid4().hex[:8]}"
    child_env = {**os.environ, **env}
    if block == "staging":
        child_env[BLOCK_ENV] = str(marker)
    else:
        child_env[BLOCK_AT_ENV] = f"{block}={marker}"
    spec = {"env": env, "run_id": run_id, "now": now.isoformat()}
    proc = subprocess.Popen([sys.executable, HARNESS, json.dumps(spec)], env=child_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError("child ended before the block point:\n" + proc.stdout.read().decode()[-3000:])
        assert time.time() < deadline, "child never reached the block point"
        time.sleep(0.05)
    return proc, marker


def kill9(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


KILL_POINTS = [
    # (phase, dataset left without a manifest by the kill, or None when the kill is inside the load)
    ("write_part:associations/contacts_to_companies", ("records", "contacts")),  # extracting contacts
    ("commit:deals/run", ("records", "deals")),  # deals' parts written, manifest not yet
    ("write_part:companies/run", ("records", "companies")),  # extracting companies
    ("read_part:deals/run", None),  # transform_deals: reading the raw deals
    ("read_part:staged/deals/run", None),  # load: reading the staged deals, transaction open
    ("staging", None),  # load: companies upserted, transaction open
    ("read_part:associations/", None),  # load: objects upserted, associations being replaced
]


@pytest.mark.parametrize("point,incomplete", KILL_POINTS, ids=[p[0].split(":")[0] + "-" + str(i) for i, p in enumerate(KILL_POINTS)])
def test_kill_9_then_the_retry_converges(sb, use, target, reference, tmp_path, point, incomplete):
    env = use(sb)
    h.sync("run-1", h.NOW1)
    h.change_things(sb)
    before, watermarks = target.snapshot(), target.watermarks()
    proc, _ = start_child(env, "run-2", h.NOW2, tmp_path, point)
    kill9(proc)
    assert target.snapshot() == before and target.watermarks() == watermarks  # as before: nothing half-loaded
    zone = RawZone((tmp_path / "raw").as_uri())
    if incomplete:
        with pytest.raises(IncompleteDatasetError, match="has no _manifest.json: it is incomplete"):
            zone.records_manifest(incomplete[1], "run-2")
        # the orphan Parquet is never mistaken for data: loading that run refuses and changes nothing
        planned = h.plan("run-2", h.NOW2)
        with pytest.raises(IncompleteDatasetError):
            h.load(planned, {o: {} for o in h.OBJECT_TYPES}, "run-2")
        assert target.snapshot() == before
    h.sync("run-2", h.NOW2)  # Airflow retries the tasks with the same run id
    assert target.snapshot() == reference["run2"]


@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
@pytest.mark.parametrize("point", ["read_part:deals/run", "read_part:staged/deals/run", "read_part:associations/"])
def test_kill_9_mid_transform_and_load_on_postgres(sb, use, target, reference, tmp_path, point):
    env = use(sb)
    h.sync("run-1", h.NOW1)
    h.change_things(sb)
    before = target.snapshot()
    proc, _ = start_child(env, "run-2", h.NOW2, tmp_path, point)
    kill9(proc)
    assert target.snapshot() == before
    h.sync("run-2", h.NOW2)
    assert target.snapshot() == reference["run2"]


@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_database_unreachable_at_load_start_then_retry(sb, use, target, reference, monkeypatch):
    use(sb)
    h.sync("run-1", h.NOW1)
    h.change_things(sb)
    before = target.snapshot()
    planned = h.plan("run-2", h.NOW2)
    manifests = h.extract(planned, "run-2")
    good = os.environ["AIRFLOW_CONN_FINANCE_DB"]
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DB", json.dumps({**json.loads(good), "port": 1}))
    with pytest.raises(Exception) as failed:
        h.load(planned, manifests, "run-2")
    assert "127.0.0.1" in str(failed.value) and "port 1 failed" in str(failed.value) and "finance_db" in str(failed.value)
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DB", good)
    assert target.snapshot() == before
    h.load(planned, manifests, "run-2")  # the task's retry
    assert target.snapshot() == reference["run2"]


@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_connection_dropped_mid_transaction_commits_nothing(sb, use, target, reference, tmp_path):
    import psycopg

    env = use(sb)
    h.sync("run-1", h.NOW1)
    h.change_things(sb)
    before = target.snapshot()
    proc, marker = start_child(env, "run-2", h.NOW2, tmp_path, "read_part:associations/")
    with psycopg.connect(target.target, autocommit=True) as admin:
        pids = [r[0] for r in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction' AND pid <> pg_backend_pid() "
            "AND datname = current_database()").fetchall()]
        assert pids, "the blocked load holds no open transaction"
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    marker.unlink()  # let the child go on with its dead connection
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode != 0 and "CHILD-DONE" not in out
    assert "terminating connection due to administrator command" in out or "server closed the connection" in out, out[-3000:]
    assert target.snapshot() == before
    h.sync("run-2", h.NOW2)
    assert target.snapshot() == reference["run2"]


def test_disk_full_while_writing_parquet(sb, use, target, reference, monkeypatch, tmp_path):
    use(sb)
    h.sync("run-1", h.NOW1)
    h.change_things(sb)
    before, watermarks = target.snapshot(), target.watermarks()
    real = rawzone._write_parquet

    def full_disk(path, table):
        if "/deals/" in str(path):
            with path.open("wb") as fh:  # the device fills up half-way through the file
                fh.write(b"PAR1\x00\x00")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, table)

    monkeypatch.setattr(rawzone, "_write_parquet", full_disk)
    planned = h.plan("run-2", h.NOW2)
    with pytest.raises(RawZoneError) as failed:
        h.extract(planned, "run-2")
    message = str(failed.value)
    assert message.startswith("writing raw-zone file deals/run=run-2/part-00000.parquet under ")
    assert "No space left on device (the raw zone's storage is full" in message
    assert "has no manifest, so nothing of it will be loaded" in message
    with pytest.raises(IncompleteDatasetError):
        RawZone((tmp_path / "raw").as_uri()).records_manifest("deals", "run-2")
    assert target.snapshot() == before and target.watermarks() == watermarks
    monkeypatch.setattr(rawzone, "_write_parquet", real)  # space freed
    h.sync("run-2", h.NOW2)
    assert target.snapshot() == reference["run2"]


def test_two_runs_at_once_one_waits_and_the_watermark_never_moves_back(sb, use, target, reference, tmp_path):
    env = use(sb)
    h.sync("run-1", h.NOW1)
    h.change_things(sb)
    old_plan = h.plan("run-old", h.NOW1 + (h.NOW2 - h.NOW1) / 4)  # an older, shorter window
    old_manifests = h.extract(old_plan, "run-old")
    proc, marker = start_child(env, "run-new", h.NOW2, tmp_path, "read_part:staged/deals/run")  # holds the load lock
    done, errors = threading.Event(), []

    def older():
        try:
            h.load(old_plan, old_manifests, "run-old")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        done.set()

    thread = threading.Thread(target=older)
    thread.start()
    assert not done.wait(1.0), "the second load did not wait for the first"
    marker.unlink()
    assert proc.wait(timeout=60) == 0, proc.stdout.read().decode()[-3000:]
    assert done.wait(60) and not errors, errors
    thread.join()
    assert target.watermarks() == {o: h._norm("w", h.NOW2) for o in h.OBJECT_TYPES}  # not moved back to run-old's end
    # every table as after a plain run 2; rejected_records also holds run-old's extra attempt at the seed's bad deal
    now, expected = target.snapshot(), reference["run2"]
    assert {k: v for k, v in now.items() if k != "rejected_records"} == {k: v for k, v in expected.items() if k != "rejected_records"}
    assert {r["hubspot_id"] for r in now["rejected_records"]} == {r["hubspot_id"] for r in expected["rejected_records"]}


def test_database_error_names_the_connection(sb, use, target, monkeypatch, tmp_path):
    use(sb)
    planned = h.plan("run-1", h.NOW1)
    manifests = h.extract(planned, "run-1")
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "no" / "such" / "dir.db")}))
    with pytest.raises(Exception) as failed:
        h.load(planned, manifests, "run-1")
    assert "finance_db" in str(failed.value), str(failed.value)
    assert target.snapshot() == {}  # nothing was created anywhere
