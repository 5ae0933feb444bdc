"""A million contacts: seeding time and response times (slow marker)."""

from __future__ import annotations

import time

import pytest
import requests

from hubspot_sandbox.testing import run_sandbox


@pytest.mark.slow
def test_million_contacts_responsive():
    t0 = time.perf_counter()
    with run_sandbox(contacts=1_000_000, companies=10_000, deals=50_000) as sb:
        assert time.perf_counter() - t0 < 15
        s, h = requests.Session(), sb.auth_headers()

        def timed(fn):
            fn()  # warm
            t = time.perf_counter()
            r = fn()
            return r, time.perf_counter() - t

        r, dt = timed(lambda: s.get(sb.url + "/crm/v3/objects/contacts", params={"limit": 100, "after": "900000",
                                                                                   "properties": "email,firstname"}, headers=h))
        assert r.status_code == 200 and dt < 0.2
        body = {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 200, "after": 9800}
        r, dt = timed(lambda: s.post(sb.url + "/crm/v3/objects/contacts/search", json=body, headers=h))
        assert r.status_code == 200 and r.json()["total"] > 900_000 and dt < 0.3
        r, dt = timed(lambda: s.post(sb.url + "/crm/v3/objects/contacts/batch/read",
                                     json={"inputs": [{"id": str(101 + i * 9000)} for i in range(100)], "properties": ["email"]},
                                     headers=h))
        assert r.status_code in (200, 207) and dt < 0.2
