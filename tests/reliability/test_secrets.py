"""A failing sync whose HubSpot errors echo the token (a 500 body, a 401 body) leaves the token in no
log, exception text, raw-zone file, finance table or sync_runs row. (The whole DAG with a successful
run is searched in tests/e2e.)"""

from __future__ import annotations

from pathlib import Path

import pytest

import reliability_harness as h
from hubspot_provider.errors import HubSpotError
from hubspot_sandbox.testing import run_sandbox

TOKEN = "pat-eu1-0000RECOGNISABLE-TOKEN-4242"


def test_failing_runs_leak_the_token_nowhere(use, target, tmp_path, caplog, capsys):
    texts = []
    with run_sandbox(frozen_clock_ms=h.T0, token=TOKEN, contacts=20, companies=5, deals=10) as sb:
        use(sb, max_retries=1)
        echo = {"status": "error", "message": f"upstream said Bearer {TOKEN}", "category": "INTERNAL_ERROR", "correlationId": TOKEN}
        sb.control.add_fault(path="deals", status=500, body=echo)
        with pytest.raises(HubSpotError) as failed:
            h.sync("run-1", h.NOW1)
        texts += [str(failed.value), repr(failed.value), str(failed.value.__cause__), str(failed.value.__context__)]
        sb.control.clear_faults()
        sb.control.add_fault(path="contacts", status=401, body={**echo, "category": "INVALID_AUTHENTICATION"})
        with pytest.raises(HubSpotError) as failed:
            h.sync("run-2", h.NOW1)
        texts += [str(failed.value), repr(failed.value)]
    out, err = capsys.readouterr()
    texts += [out, err, caplog.text] + [str(r.args) + str(r.msg) for r in caplog.records]
    assert not [t for t in texts if TOKEN in t]
    files = [p for p in Path(tmp_path).rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert files == []
    if target.exists():
        assert TOKEN not in repr(target.query("SELECT * FROM {s}sync_runs")) + repr(target.snapshot())
