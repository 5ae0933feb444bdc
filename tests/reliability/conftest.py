"""Fixtures for the reliability tests: a seeded sandbox with a frozen clock, a finance database, the
sync's environment, and the fault-free reference result every faulty run must reproduce exactly."""

from __future__ import annotations

import uuid

import pytest

import reliability_harness as h
from hubspot_sandbox.testing import run_sandbox

SIZES = {"seed": 17, "contacts": 150, "companies": 30, "deals": 80}


def live_ids(sb, object_type: str) -> list[str]:
    import numpy as np

    store = sb.portal.store(object_type)
    return sorted(str(i) for i in store.ids(np.nonzero(store.active_mask())[0]))


def change_things(sb) -> None:
    """What people do in HubSpot between two nightly runs (stamped at the frozen sandbox clock)."""
    control = sb.control
    control.freeze_clock(h.T0 + 90 * 60_000)  # after run 1 (NOW1 = T0 + 1 h), before run 2 (NOW2)
    contacts, deals = live_ids(sb, "contacts"), live_ids(sb, "deals")
    control.create("contacts", {"email": "Ny.Kunde@Eksempel.NO", "firstname": "Åsne", "lastname": "Ødegård"})
    control.modify("contacts", contacts[3], {"city": "Kristiansand"})
    control.archive("contacts", contacts[4])
    control.merge("contacts", contacts[8], contacts[9])
    control.modify("deals", deals[2], {"amount": "0.30", "dealstage": "closedwon"})
    control.create("deals", {"dealname": "Ny avtale", "amount": "1500.00", "deal_currency_code": "NOK"})


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox(**SIZES) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox):
    sandbox.control.clear_faults()
    sandbox.control.set_limits(enabled=False, reset_counters=True)
    sandbox.control.reset(**SIZES)
    sandbox.control.freeze_clock(h.T0)
    sandbox.control.reset_stats()
    yield sandbox
    sandbox.control.clear_faults()
    sandbox.control.set_limits(enabled=False, reset_counters=True)


def _target(request, tmp_path, kind: str) -> h.Target:
    if kind == "sqlite":
        return h.Target("sqlite", str(tmp_path / f"finance-{uuid.uuid4().hex[:6]}.db"))
    dsn = request.getfixturevalue("pg_dsn")
    target = h.Target("postgres", dsn, f"rel_{uuid.uuid4().hex[:10]}")
    request.addfinalizer(lambda: _drop_schema(dsn, target.schema))
    return target


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture()
def target(request, tmp_path) -> h.Target:
    return _target(request, tmp_path, getattr(request, "param", "sqlite"))


@pytest.fixture()
def use(monkeypatch, tmp_path, target):
    """``use(sb, **hubspot_extra)`` points the sync's environment at the sandbox and the target."""

    def apply(sb, raw_root: str | None = None, **extra) -> dict[str, str]:
        env = h.env_for(sb.url, sb.token, target, raw_root or (tmp_path / "raw").as_uri(), **extra)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        h.fast_hooks()
        return env

    import hubspot_finance.pipeline as pipeline

    monkeypatch.setattr(pipeline, "hubspot_hook", pipeline.hubspot_hook)  # restored after the test
    return apply


@pytest.fixture(scope="module")
def reference(sandbox, tmp_path_factory):
    """The fault-free result: after run 1 (full) and after run 2 (incremental, after change_things)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("reference")
    target = h.Target("sqlite", str(root / "finance.db"))
    try:
        sandbox.control.clear_faults()
        sandbox.control.set_limits(enabled=False, reset_counters=True)
        sandbox.control.reset(**SIZES)
        sandbox.control.freeze_clock(h.T0)
        for key, value in h.env_for(sandbox.url, sandbox.token, target, (root / "raw").as_uri()).items():
            mp.setenv(key, value)
        import hubspot_finance.pipeline as pipeline

        mp.setattr(pipeline, "hubspot_hook", pipeline.hubspot_hook)
        h.fast_hooks()
        h.sync("ref-1", h.NOW1)
        first = target.snapshot()
        change_things(sandbox)
        h.sync("ref-2", h.NOW2)
        second = target.snapshot()
    finally:
        mp.undo()
    assert first["customers"] and first["contracts"] and second != first
    return {"run1": first, "run2": second}
