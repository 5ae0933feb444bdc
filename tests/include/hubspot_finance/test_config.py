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
        ("ALERT_EMAIL", "ops@example.com; cfo", "HUBSPOT_SYNC_ALERT_EMAIL: 'ops@example.com; cfo' is not an e-mail"),
        ("ALERT_NOTIFIER", "slack", "HUBSPOT_SYNC_ALERT_NOTIFIER='slack': give the dotted path"),
        ("DEADLINE_MINUTES", "soon", "HUBSPOT_SYNC_DEADLINE_MINUTES='soon': give a number of minutes"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(f"HUBSPOT_SYNC_{name}", value)
    with pytest.raises(ConfigError, match=message):
        SyncConfig.from_env()


def test_alert_settings(monkeypatch):
    cfg = SyncConfig.from_env()
    assert cfg.alert_emails == () and cfg.alert_notifier is None and cfg.deadline == timedelta(hours=4)
    monkeypatch.setenv("HUBSPOT_SYNC_ALERT_EMAIL", "finance-ops@example.com, data@example.com")
    monkeypatch.setenv("HUBSPOT_SYNC_ALERT_FROM", "airflow@example.com")
    monkeypatch.setenv("HUBSPOT_SYNC_ALERT_SMTP_CONN_ID", "smtp_ops")
    monkeypatch.setenv("HUBSPOT_SYNC_ALERT_NOTIFIER", "mypackage.alerts.make_notifier")
    monkeypatch.setenv("HUBSPOT_SYNC_DEADLINE_MINUTES", "90")
    cfg = SyncConfig.from_env()
    assert cfg.alert_emails == ("finance-ops@example.com", "data@example.com")
    assert (cfg.alert_from, cfg.alert_smtp_conn_id, cfg.alert_notifier) == ("airflow@example.com", "smtp_ops", "mypackage.alerts.make_notifier")
    assert cfg.deadline == timedelta(minutes=90)
    monkeypatch.setenv("HUBSPOT_SYNC_DEADLINE_MINUTES", "0")
    assert SyncConfig.from_env().deadline is None
