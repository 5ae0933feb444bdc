from datetime import timedelta

import pytest

from hubspot_finance.config import ConfigError, SyncConfig


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    cfg = SyncConfig.from_env()
    assert cfg.schedule == "0 2 * * *" and cfg.timezone == "Europe/Oslo"
    assert cfg.finance_conn_id == "finance_db" and cfg.hubspot_conn_id == "hubspot_default"
    assert cfg.raw_root == (tmp_path / "hubspot_raw").as_uri()
    assert cfg.overlap == timedelta(minutes=30) and cfg.lag_margin == timedelta(minutes=10)


def test_overrides(monkeypatch):
    monkeypatch.setenv("HUBSPOT_SYNC_SCHEDULE", "30 3 * * 1-5")
    monkeypatch.setenv("HUBSPOT_SYNC_TIMEZONE", "UTC")
    monkeypatch.setenv("HUBSPOT_SYNC_EXTRA_PROPERTIES", "all")
    monkeypatch.setenv("HUBSPOT_SYNC_LAG_MARGIN_MINUTES", "2.5")
    cfg = SyncConfig.from_env()
    assert (cfg.schedule, cfg.timezone, cfg.extra_properties) == ("30 3 * * 1-5", "UTC", "all")
    assert cfg.lag_margin == timedelta(minutes=2.5)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TIMEZONE", "Oslo", "HUBSPOT_SYNC_TIMEZONE='Oslo': not an IANA time zone"),
        ("SCHEMA", "Finance; drop", "HUBSPOT_SYNC_SCHEMA"),
        ("OVERLAP_MINUTES", "-1", "must not be negative"),
        ("REJECT_ACTION", "explode", "warn or fail"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(f"HUBSPOT_SYNC_{name}", value)
    with pytest.raises(ConfigError, match=message):
        SyncConfig.from_env()
