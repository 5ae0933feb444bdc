"""Fixtures for the HubSpot sync page: a finance database filled by the real task bodies (plan → extract →
load) against the sandbox, on SQLite and PostgreSQL, and clients of the page's app."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sync_page_support import BASE_URL, HOSTILE_NAME, RUN_1, RUN_2, SIZES, Synced, h, rejected_ids, sync, target_for

from hubspot_sandbox.testing import run_sandbox


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def synced(request, tmp_path_factory):
    """Run 1 (full), then edits at the frozen sandbox clock, then run 2 (incremental)."""
    target = target_for(request, tmp_path_factory)
    raw = tmp_path_factory.mktemp("raw").as_uri()
    with pytest.MonkeyPatch.context() as mp:
        with run_sandbox(**SIZES) as sb:
            sb.control.freeze_clock(h.T0)
            # HubSpot's rate-limit headers (Professional), the daily budget left the load records among them
            sb.control.set_limits(enabled=True, tier="professional", reset_counters=True)
            for key, value in h.env_for(sb.url, sb.token, target, raw).items():
                mp.setenv(key, value)
            mp.delenv("HUBSPOT_SYNC_PORTAL_ID", raising=False)
            import hubspot_finance.pipeline as pipeline

            mp.setattr(pipeline, "hubspot_hook", pipeline.hubspot_hook)  # fast_hooks() replaces it; restored on exit
            h.fast_hooks()
            fixed = h.live_ids(sb, "deals")[5]
            sb.control.modify("deals", fixed, {"amount": "12 000"})  # stamped at T0, inside run 1's window
            budget_left = {RUN_1: sync(RUN_1, h.NOW1)}
            assert rejected_ids(target, RUN_1) == [fixed]
            changed = h.live_ids(sb, "deals")[2]  # change_things() edits its amount: a contract change
            h.change_things(sb)  # edits people make between two nightly runs
            sb.control.modify("deals", changed, {"dealname": HOSTILE_NAME})
            deals = [d for d in h.live_ids(sb, "deals") if d != fixed]
            sb.control.modify("deals", fixed, {"amount": "12000"})
            sb.control.modify("deals", deals[10], {"amount": "12,5"})
            sb.control.modify("deals", deals[11], {"deal_currency_code": "XYZ"})
            budget_left[RUN_2] = sync(RUN_2, h.NOW2)
        yield Synced(target, fixed, deals[10], deals[11], budget_left=budget_left)


@pytest.fixture()
def page_client():
    """``page_client(now=…, base_url=…)``: a TestClient of the page's app without Airflow's auth dependency
    (the auth tests use the real Airflow app), its clock fixed at ``now``."""
    from fastapi.testclient import TestClient

    from hubspot_sync_page.app import create_app

    def make(now: datetime | None = None, base_url: str | None = BASE_URL) -> TestClient:
        moment = now or h.NOW2 + timedelta(hours=1)
        return TestClient(create_app(dependencies=[], clock=lambda: moment, base_url=base_url))

    return make
