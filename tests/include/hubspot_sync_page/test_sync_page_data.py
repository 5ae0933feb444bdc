"""The page and its JSON against finance tables the real pipeline filled from the sandbox (SQLite and
PostgreSQL): freshness, run counts equal to ``sync_runs``, rejects by rule, contract changes, run links."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sync_page_support import HOSTILE_NAME, RUN_1, RUN_2, h, run_url


PORTAL = 24681357  # the sandbox account's portal id (read by extract_reference, recorded in sync_runs by the load)
DEADLINE = datetime(2026, 9, 22, 4, 0, tzinfo=timezone.utc)  # 06:00 in Oslo: the 02:00 run's deadline (4 h)


def summary(client) -> dict:
    response = client.get("/api/summary")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "ok"
    return body


def freshness(body: dict) -> dict[str, dict]:
    return {f["object_type"]: f for f in body["freshness"]}


def test_every_object_is_green_right_after_the_run_with_its_last_successful_run(synced, page_client):
    body = summary(page_client(now=synced.now + timedelta(hours=1)))
    for object_type, f in freshness(body).items():
        assert f["status"] == "green", (object_type, f)
        assert datetime.fromisoformat(f["watermark"]) == synced.now  # the lag margin is 0 in the test environment
        assert f["age_seconds"] == 3600
        assert f["last_success_run_id"] == RUN_2 and f["last_success_url"] == run_url(RUN_2)
    assert body["schedule"]["cron"] == "0 2 * * *" and body["schedule"]["interval_seconds"] == 24 * 3600


@pytest.mark.parametrize("now, status", [
    (DEADLINE - timedelta(minutes=1), "green"),  # 05:59: today's 02:00 run may still be running
    (DEADLINE + timedelta(minutes=1), "amber"),  # 06:01: today's run should be in; the one before is
    (DEADLINE + timedelta(days=1, minutes=1), "red"),  # two scheduled runs missing
])
def test_freshness_follows_the_schedule_and_its_deadline(synced, page_client, now, status):
    assert {f["status"] for f in summary(page_client(now=now))["freshness"]} == {status}


def test_freshness_interval_comes_from_the_configured_schedule(synced, page_client, monkeypatch):
    monkeypatch.setenv("HUBSPOT_SYNC_SCHEDULE", "0 */6 * * *")
    monkeypatch.setenv("HUBSPOT_SYNC_DEADLINE_MINUTES", "60")
    body = summary(page_client(now=synced.now + timedelta(hours=8)))
    assert body["schedule"]["interval_seconds"] == 6 * 3600
    assert {f["status"] for f in body["freshness"]} == {"amber"}  # the 00:00 UTC+2 run is in, the 06:00 one is not


COMPARED = ("inserted", "updated", "deleted", "rejected", "api_calls", "daily_budget_left", "status")


def test_runs_show_exactly_what_sync_runs_holds(synced, page_client):
    body = summary(page_client())
    rows = synced.target.query(f"SELECT run_id, object_type, {', '.join(COMPARED)} FROM {{s}}sync_runs")
    stored = {(r["run_id"], r["object_type"]): r for r in rows}
    assert [v["run"]["run_id"] for v in body["runs"]] == [RUN_2, RUN_1]  # newest first
    shown = {}
    for view in body["runs"]:
        run_id = view["run"]["run_id"]
        assert view["airflow_url"] == run_url(run_id)
        assert view["api_calls"] == sum(r["api_calls"] for k, r in stored.items() if k[0] == run_id)
        # the lowest daily budget left of the run's objects, as the run summary reports it
        assert view["daily_budget_left"] == min(r["daily_budget_left"] for k, r in stored.items() if k[0] == run_id)
        for o in view["run"]["objects"]:
            shown[(run_id, o["object_type"])] = o
    assert shown.keys() == stored.keys()
    for key, row in stored.items():
        assert {f: shown[key][f] for f in COMPARED} == {f: row[f] for f in COMPARED}, key
    assert shown[(RUN_2, "deals")]["rejected"] == 2 and shown[(RUN_1, "deals")]["rejected"] == 1
    assert body["budget_recorded"] is True and body["notes"] == []


def test_the_load_records_each_objects_daily_budget_left_and_the_portal_in_sync_runs(synced):
    """What the extraction saw (each object's manifest calls.daily_remaining, the account's portal id) is in sync_runs."""
    rows = synced.target.query("SELECT run_id, object_type, daily_budget_left, portal_id FROM {s}sync_runs")
    assert {(r["run_id"], r["object_type"]): r["daily_budget_left"] for r in rows} == \
           {(run_id, o): left for run_id, objects in synced.budget_left.items() for o, left in objects.items()}
    assert all(isinstance(left, int) and left > 0 for objects in synced.budget_left.values() for left in objects.values())
    run_1 = min(synced.budget_left[RUN_1].values())
    assert all(left < run_1 for left in synced.budget_left[RUN_2].values())  # run 2 spent more of the same day
    assert {r["portal_id"] for r in rows} == {PORTAL}


def test_rejects_are_grouped_by_rule_with_examples_and_links(synced, page_client):
    groups = {g["rule"]: g for g in summary(page_client())["reject_groups"]}
    assert set(groups) == {"invalid_amount", "unknown_currency"}
    amount, currency = groups["invalid_amount"], groups["unknown_currency"]
    assert (amount["records"], amount["still_open"]) == (2, 1)
    assert (currency["records"], currency["still_open"]) == (1, 1)
    examples = {e["hubspot_id"]: e for e in amount["examples"]}
    assert examples[synced.bad_amount_deal]["still_open"] and examples[synced.bad_amount_deal]["run_id"] == RUN_2
    assert examples[synced.bad_amount_deal]["value"] == "12,5" and examples[synced.bad_amount_deal]["field"] == "amount"
    assert not examples[synced.fixed_deal]["still_open"] and examples[synced.fixed_deal]["run_url"] == run_url(RUN_1)
    [bad_currency] = currency["examples"]
    assert bad_currency["hubspot_id"] == synced.bad_currency_deal and bad_currency["value"] == "XYZ"
    assert bad_currency["hubspot_url"] == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-3/{synced.bad_currency_deal}"


def test_the_stored_raw_record_of_a_reject(synced, page_client):
    client = page_client()
    [example] = {g["rule"]: g for g in summary(client)["reject_groups"]}["unknown_currency"]["examples"]
    stored = client.get(f"/rejects/{example['reject_id']}").json()
    assert stored["hubspot_id"] == synced.bad_currency_deal and stored["run_id"] == RUN_2
    assert stored["raw_record"]["properties"]["deal_currency_code"] == "XYZ"
    assert client.get("/rejects/987654").status_code == 404


def test_hubspot_links_use_the_portal_in_sync_runs_unless_one_is_configured(synced, page_client, monkeypatch):
    monkeypatch.setenv("HUBSPOT_SYNC_RAW_ROOT", "s3://aws_default@bucket/raw")  # the page never reads the raw zone
    body = summary(page_client())
    change = body["contract_changes"][0]
    assert body["portal_id"] == PORTAL
    assert change["hubspot_url"] == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-3/{change['change']['deal_id']}"
    monkeypatch.setenv("HUBSPOT_SYNC_PORTAL_ID", "555")
    change = summary(page_client())["contract_changes"][0]
    assert change["hubspot_url"] == f"https://app.hubspot.com/contacts/555/record/0-3/{change['change']['deal_id']}"


def test_contract_changes_are_the_newest_rows_of_contract_changes(synced, page_client):
    changes = summary(page_client())["contract_changes"]
    rows = synced.target.query("SELECT c.hubspot_deal_id, c.field, c.old_value, c.new_value, c.sync_run_id, k.currency "
                               "FROM {s}contract_changes c JOIN {s}contracts k USING (hubspot_deal_id) ORDER BY c.id DESC")
    assert rows, "the edits between the runs change a deal's amount"
    shown = [c["change"] for c in changes]
    assert [(c["deal_id"], c["field"], c["old_value"], c["new_value"], c["run_id"], c["currency"]) for c in shown] == \
           [(r["hubspot_deal_id"], r["field"], r["old_value"], r["new_value"], r["sync_run_id"], r["currency"]) for r in rows]
    assert all(c["run_url"] == run_url(RUN_2) for c in changes)
    assert {c["deal_name"] for c in shown} == {HOSTILE_NAME}
    assert ("amount", "0.3") in {(c["field"], c["new_value"]) for c in shown}


def test_the_page_shows_it_all_inline_with_local_times(synced, page_client):
    response = page_client().get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    for run_id in (RUN_1, RUN_2):
        assert f'href="{run_url(run_id)}"' in page
    assert page.count('class="status green"') == 3
    assert "Times in Europe/Oslo" in page and "2026-09-21 19:13 CEST" in page  # the watermark, 17:13 UTC
    assert page.count("<svg") == 3 and "invalid_amount" in page and "unknown_currency" in page
    deals = next(v for v in summary(page_client())["runs"] if v["run"]["run_id"] == RUN_2)["run"]["objects"]
    inserted = next(o for o in deals if o["object_type"] == "deals")["inserted"]
    assert f"<title>{RUN_2}: {inserted} inserted</title>" in page
    assert "0.3</code>" in page and "Last 2 runs" in page
    budget_left = min(synced.budget_left[RUN_2].values())  # run 2's daily budget left, from sync_runs
    assert f'<td class="n">{budget_left:,}</td>'.replace(",", "\u202f") in page
    assert f'href="https://app.hubspot.com/contacts/{PORTAL}/record/0-3/{synced.bad_currency_deal}"' in page
    assert "&lt;script&gt;alert(&#39;deal&#39;)&lt;/script&gt; &amp; Co" in page and "<script>alert" not in page
    # offline: nothing is fetched from anywhere else
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import|url\(", page)


def test_times_follow_the_account_time_zone(synced, page_client, monkeypatch):
    monkeypatch.setenv("HUBSPOT_SYNC_TIMEZONE", "America/New_York")
    page = page_client().get("/").text
    assert "Times in America/New_York" in page and "2026-09-21 13:13 EDT" in page


def test_links_are_relative_without_a_configured_base_url(synced, page_client):
    body = summary(page_client(base_url=""))
    assert body["runs"][0]["airflow_url"] == run_url(RUN_2, base="..")
    assert body["dag_url"] == "../dags/hubspot_to_finance"


# One dialect is enough for the newest run's portal and older schemas: they edit a copy of the SQLite file.
ONLY_SQLITE = pytest.mark.parametrize("synced", ["sqlite"], indirect=True)


def _copy_with(synced, tmp_path, monkeypatch, *statements: str) -> None:
    """Point the page at a copy of the SQLite finance database changed by ``statements``."""
    assert synced.target.kind == "sqlite", "these tests edit a copy of the SQLite file (ONLY_SQLITE)"
    import shutil
    import sqlite3

    copy = tmp_path / "finance.db"
    shutil.copy(synced.target.target, copy)
    with sqlite3.connect(copy) as conn:
        for statement in statements:
            conn.execute(statement)
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_DB", h.Target("sqlite", str(copy)).conn_json())


@ONLY_SQLITE
@pytest.mark.parametrize("statements, portal", [
    ([f"UPDATE sync_runs SET portal_id = 13579 WHERE run_id = '{RUN_2}'"], 13579),  # e.g. a new account
    ([f"UPDATE sync_runs SET portal_id = 13579 WHERE run_id = '{RUN_1}'",
      f"UPDATE sync_runs SET portal_id = NULL WHERE run_id = '{RUN_2}'"], 13579),  # the newest run that recorded one
    (["UPDATE sync_runs SET portal_id = NULL"], None),  # none recorded: the bare id
])
def test_the_portal_is_the_newest_one_sync_runs_recorded(synced, page_client, tmp_path, monkeypatch, statements, portal):
    _copy_with(synced, tmp_path, monkeypatch, *statements)
    body = summary(page_client())
    change = body["contract_changes"][0]
    assert body["portal_id"] == portal
    assert change["hubspot_url"] == (portal and f"https://app.hubspot.com/contacts/{portal}/record/0-3/{change['change']['deal_id']}")


@ONLY_SQLITE
def test_a_database_not_migrated_yet_shows_neither_budget_nor_portal(synced, page_client, tmp_path, monkeypatch):
    """Before the first load of schema v4 (the page reads, never migrates) sync_runs has neither column."""
    _copy_with(synced, tmp_path, monkeypatch, "ALTER TABLE sync_runs DROP COLUMN daily_budget_left",
               "ALTER TABLE sync_runs DROP COLUMN portal_id", "DELETE FROM schema_migrations WHERE version = 4")
    body = summary(page_client())
    assert body["budget_recorded"] is False and "daily budget left is not recorded" in body["notes"][0]
    assert [v["daily_budget_left"] for v in body["runs"]] == [None, None] and all(v["api_calls"] for v in body["runs"])
    assert body["portal_id"] is None and body["contract_changes"][0]["hubspot_url"] is None
    monkeypatch.setenv("HUBSPOT_SYNC_PORTAL_ID", "555")
    assert summary(page_client())["portal_id"] == 555
