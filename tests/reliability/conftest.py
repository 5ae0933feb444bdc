"""Fixtures for the reliability tests: a seeded sandbox with a frozen clock, a finance database, the
sync's environment, and the fault-free reference result every faulty run must reproduce exactly."""

from __future__ import annotations

import uuid

import pytest

import reliability_harness as h
from hubspot_sandbox.testing import run_sandbox

SIZES, live_ids, change_things = h.SIZES, h.live_ids, h.change_things


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
