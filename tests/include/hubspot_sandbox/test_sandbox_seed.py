"""Seeded data: deterministic, Norwegian-looking, deliberately imperfect; control mutations; CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests
from stdnum.no import orgnr

from hubspot_sandbox.data import Portal, PortalConfig
from hubspot_sandbox.server import wait_until_up


def _dump(seed):
    p = Portal(PortalConfig(seed=seed, contacts=200, companies=40, deals=120))
    out = {}
    for t, s in p.stores.items():
        out[t] = s.records(np.arange(s.n), list(s.props))
    out["assoc"] = [p.assoc.targets("deals", "companies", i) for i in range(120)]
    return out


def test_same_seed_same_data():
    a, b, c = _dump(1), _dump(1), _dump(2)
    assert a == b
    assert a != c


def test_data_quality_mix():
    p = Portal(PortalConfig(seed=3, contacts=3000, companies=600, deals=2000))
    co = p.stores["companies"]
    org = [v for v in co.values("org_number", np.arange(co.n)) if v]
    valid = [v for v in org if orgnr.is_valid(v)]
    assert len(valid) / len(org) > 0.85 and len(valid) < len(org)
    names = " ".join(v or "" for v in co.values("name", np.arange(co.n)))
    assert any(ch in names for ch in "æøåÆØÅ")
    de = p.stores["deals"]
    ix = np.arange(de.n)
    cur = set(de.values("deal_currency_code", ix))
    assert {"NOK", "EUR", "SEK", None, ""} <= cur
    amounts = de.values("amount", ix)
    assert "12 000" in amounts or "abc" in amounts
    stages = set(de.values("dealstage", ix))
    assert "75482915" in stages and "closedwon" in stages
    ct = p.stores["contacts"]
    emails = ct.values("email", np.arange(ct.n))
    assert None in emails and any(e and " " in e for e in emails) and any(e and "ø" in e for e in emails)
    merged = ct.values("hs_merged_object_ids", np.arange(ct.n))
    assert any(m for m in merged)
    assert (ct.archived[: ct.n] != 0).any()


def test_create_modify_is_stamped_with_clock(sb, client):
    c = sb.control
    c.freeze_clock(1_800_000_000_000)
    rec = c.create("deals", {"dealname": "Årsoppgjør 2026", "amount": "15000", "deal_currency_code": "EUR"})
    assert rec["properties"]["amount_in_home_currency"] == "175800"
    c.advance_clock(5)
    c.modify("deals", rec["id"], {"amount": "100"})
    got = client.get(f"/crm/v3/objects/deals/{rec['id']}", properties="amount,amount_in_home_currency").json()
    assert got["properties"]["amount"] == "100" and got["properties"]["amount_in_home_currency"] == "1172"
    assert got["properties"]["hs_lastmodifieddate"] == "2027-01-15T08:00:00.005Z"
    assert got["createdAt"] == "2027-01-15T08:00:00.000Z"


def test_cli_writes_token_file(tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hubspot_sandbox", "--host", "127.0.0.1", "--port", str(port),
                             "--contacts", "50", "--deals", "20", "--companies", "10", "--no-rate-limits"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, timeout=20)
        token_file = tmp_path / "var" / "sandbox" / "token"
        token = token_file.read_text().strip()
        assert token.startswith("pat-na1-")
        assert (token_file.stat().st_mode & 0o777) == 0o600
        r = requests.get(url + "/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and len(r.json()["results"]) == 10
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert "var/sandbox/token" in out and token not in out


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
