"""The sandbox editing CLI against a real sandbox: each change is visible through the HubSpot API."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time

import pytest
import requests

from hubspot_devtools import sandbox_edit
from hubspot_sandbox.client import RunningSandbox, SandboxNotRunning, TokenProblem
from hubspot_sandbox.testing import run_sandbox
from hubspot_sandbox.truth import portal_truth

SIZES = {"seed": 7, "contacts": 300, "companies": 60, "deals": 200}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    token_file = tmp_path_factory.mktemp("sandbox") / "token"
    with run_sandbox(**SIZES, recent_activity_days=14, token_file=token_file) as sb:
        sb.token_path = token_file
        yield sb


@pytest.fixture()
def sb(running):
    yield running
    running.control.reset()


def cli(sb, *args, token_file=None, url=None):
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = sandbox_edit.main(["--url", url or sb.url, "--token-file", str(token_file or sb.token_path), *args])
    return code, out.getvalue(), err.getvalue()


def api(sb, path, **params):
    return requests.get(sb.url + path, params=params, headers=sb.auth_headers(), timeout=10)


def live_ids(sb, otype, k=2):
    """k live records the recent activity did not touch (the seed's first ones)."""
    truth = portal_truth(sb.portal, {})[otype]
    return [rid for rid, t in truth.items() if t["status"] == "live"][:k]


def test_set_amount_stores_the_exact_decimal_and_says_what_the_sync_records(sb):
    deal = live_ids(sb, "deals", 1)[0]
    before = api(sb, f"/crm/v3/objects/deals/{deal}", properties="amount").json()["properties"]["amount"]
    code, out, _ = cli(sb, "set-amount", deal, "125000.50")
    assert code == 0 and out.count("\n") == 1
    got = api(sb, f"/crm/v3/objects/deals/{deal}", properties="amount,amount_in_home_currency").json()
    assert got["properties"]["amount"] == "125000.50"
    assert f"amount {before} → 125000.50" in out and "contract_changes" in out and "→ 125000.5." in out
    stamp = sb.portal.stores["deals"].lastmod[int(deal) - sb.portal.stores["deals"].base]
    assert abs(int(stamp) - time.time() * 1000) < 60_000


def test_set_amount_refuses_what_is_not_a_plain_decimal_and_shows_how_to_try_it(sb):
    deal = live_ids(sb, "deals", 1)[0]
    before = api(sb, f"/crm/v3/objects/deals/{deal}", properties="amount").json()["properties"]["amount"]
    code, out, err = cli(sb, "set-amount", deal, "12 000")
    assert code == 1 and not out and f"set deal {deal} amount='12 000'" in err
    assert api(sb, f"/crm/v3/objects/deals/{deal}", properties="amount").json()["properties"]["amount"] == before
    code, out, _ = cli(sb, "set", "deal", deal, "amount=12 000")
    assert code == 0 and "invalid_amount" in out and "rejected_records" in out
    assert api(sb, f"/crm/v3/objects/deals/{deal}", properties="amount").json()["properties"]["amount"] == "12 000"


def test_set_changes_properties_and_the_change_is_in_a_last_modified_search(sb):
    contact = live_ids(sb, "contacts", 1)[0]
    started = int(time.time() * 1000) - 1
    code, out, _ = cli(sb, "set", "contacts", contact, "city=Bodø", "zip=8006", "jobtitle=CFO")
    assert code == 0 and "customers.city, customers.postal_code, properties JSON (jobtitle)" in out
    got = api(sb, f"/crm/v3/objects/contacts/{contact}", properties="city,zip,jobtitle").json()["properties"]
    assert (got["city"], got["zip"], got["jobtitle"]) == ("Bodø", "8006", "CFO")
    r = requests.post(f"{sb.url}/crm/v3/objects/contacts/search", headers=sb.auth_headers(), timeout=10, json={
        "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(started)}]}]})
    assert [x["id"] for x in r.json()["results"]] == [contact]


def test_set_names_unknown_and_calculated_properties(sb):
    deal = live_ids(sb, "deals", 1)[0]
    code, _, err = cli(sb, "set", "deal", deal, "amout=5")
    assert code == 1 and "did you mean 'amount'" in err
    code, _, err = cli(sb, "set", "deal", deal, "hs_is_closed_won=true")
    assert code == 1 and "HubSpot sets hs_is_closed_won itself" in err


def test_archive_then_restore_a_contact(sb):
    contact = live_ids(sb, "contacts", 1)[0]
    code, out, _ = cli(sb, "archive", "contacts", contact)
    assert code == 0 and "deletion_kind = 'archived'" in out and f"restore contacts {contact}" in out
    archived = api(sb, "/crm/v3/objects/contacts", archived="true", limit=100).json()["results"]
    assert contact in {r["id"] for r in archived}
    assert api(sb, f"/crm/v3/objects/contacts/{contact}").status_code == 404
    code, _, err = cli(sb, "archive", "contacts", contact)
    assert code == 1 and f"restore it first: python -m hubspot_devtools.sandbox_edit restore contacts {contact}" in err
    code, out, _ = cli(sb, "restore", "contacts", contact)
    assert code == 0 and "is live again" in out
    assert api(sb, f"/crm/v3/objects/contacts/{contact}").status_code == 200
    archived = api(sb, "/crm/v3/objects/contacts", archived="true", limit=100).json()["results"]
    assert contact not in {r["id"] for r in archived}


def test_merge_companies_reports_the_merge_as_hubspot_does(sb):
    primary, merged = live_ids(sb, "companies", 2)
    code, out, _ = cli(sb, "merge", "companies", primary, merged)
    assert code == 0 and f"merged_into_company_id = {primary}" in out
    got = api(sb, f"/crm/v3/objects/companies/{merged}", properties="hs_merged_object_ids").json()
    assert got["id"] == primary and merged in got["properties"]["hs_merged_object_ids"].split(";")
    assert portal_truth(sb.portal, {})["companies"][merged]["merged_into"] == primary
    code, _, err = cli(sb, "set", "company", merged, "city=Oslo")
    assert code == 1 and f"merged into {primary}; edit {primary} instead" in err


def test_delete_permanently_removes_the_contact_from_every_read(sb):
    contact = live_ids(sb, "contacts", 1)[0]
    code, out, _ = cli(sb, "delete-permanently", "contacts", contact)
    assert code == 0 and "id sweep" in out and "deletion_kind = 'permanent'" in out
    assert api(sb, f"/crm/v3/objects/contacts/{contact}").status_code == 404
    assert api(sb, f"/crm/v3/objects/contacts/{contact}", archived="true").status_code == 404
    r = requests.post(f"{sb.url}/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": contact}]},
                      headers=sb.auth_headers(), timeout=10)
    assert r.status_code == 207 and r.json()["errors"][0]["context"]["ids"] == [contact]
    assert sb.control.get("contacts", contact)["purged"] is True


def test_associate_and_dissociate_show_in_the_associations_api(sb):
    deal, company = live_ids(sb, "deals", 1)[0], live_ids(sb, "companies", 3)[2]

    def companies_of_deal():
        r = requests.post(f"{sb.url}/crm/v4/associations/deals/companies/batch/read", json={"inputs": [{"id": deal}]},
                          headers=sb.auth_headers(), timeout=10).json()
        return {str(t["toObjectId"]): any(x["typeId"] == 5 for x in t["associationTypes"])
                for res in r["results"] for t in res["to"]}

    code, out, _ = cli(sb, "associate", "companies", company, "deals", deal, "--primary")  # either order
    assert code == 0 and "contract_companies and contracts.primary_company_id" in out
    assert companies_of_deal()[company] is True and list(companies_of_deal().values()).count(True) == 1
    code, out, _ = cli(sb, "dissociate", "deals", deal, "companies", company)
    assert code == 0 and company not in companies_of_deal()
    code, _, err = cli(sb, "associate", "deals", deal, "contacts", live_ids(sb, "contacts", 1)[0], "--primary")
    assert code == 1 and "Only a company can be primary" in err


def test_create_makes_a_record_the_api_serves(sb):
    code, out, _ = cli(sb, "create", "contact", "firstname=Kari", "lastname=Nordmann", "email=kari@example.no")
    new_id = out.split()[2]
    assert code == 0 and "a new customers row" in out
    got = api(sb, f"/crm/v3/objects/contacts/{new_id}", properties="firstname,lastname,email").json()["properties"]
    assert (got["firstname"], got["lastname"], got["email"]) == ("Kari", "Nordmann", "kari@example.no")


def test_list_shows_the_latest_changes_first_including_recent_activity(sb):
    code, out, _ = cli(sb, "list", "deals", "--limit", "3")
    rows = out.splitlines()[2:]
    truth = portal_truth(sb.portal, {"deals": ["amount"]})["deals"]
    latest = sorted((t["updated_at_ms"], rid) for rid, t in truth.items() if t["status"] == "live")[-3:][::-1]
    assert code == 0 and [r.split()[0] for r in rows] == [rid for _, rid in latest]
    assert truth[latest[0][1]]["properties"]["amount"] in rows[0]
    code, out, _ = cli(sb, "list", "contacts", "--archived", "--limit", "100")
    archived = {rid for rid, t in portal_truth(sb.portal, {})["contacts"].items() if t["status"] == "archived"}
    assert code == 0 and {r.split()[0] for r in out.splitlines()[2:]} == archived


def test_unknown_ids_and_a_missing_sandbox_say_what_to_do(sb):
    code, _, err = cli(sb, "set-amount", "123", "10")
    assert code == 1 and "There is no deal 123" in err and "list deals" in err
    code, out, err = cli(sb, "archive", "contacts", "101", url="http://127.0.0.1:9")
    assert code == 1 and not out and "No sandbox answers at http://127.0.0.1:9" in err and "`make sandbox`" in err
    with pytest.raises(SandboxNotRunning, match="make sandbox"):
        RunningSandbox("http://127.0.0.1:9").record("contacts", "101")
    with pytest.raises(SandboxNotRunning, match="answered 404 but is not a HubSpot sandbox"):
        RunningSandbox(sb.url + "/crm").record("contacts", "101")  # the HubSpot API, not the control API


def test_a_stale_token_file_is_skipped_and_no_token_is_ever_printed(sb, tmp_path):
    stale, fresh = tmp_path / "stale", tmp_path / "fresh"
    stale.write_text("pat-na1-00000000-0000-0000-0000-000000000000\n")
    fresh.write_text(sb.token + "\n")
    os.utime(stale, (time.time() + 5, time.time() + 5))  # the newest file is tried first
    found = RunningSandbox(sb.url, (fresh, stale)).hubspot("GET", "/crm/v3/objects/deals", params={"limit": 1})
    assert len(found["results"]) == 1
    code, out, err = cli(sb, "list", "deals", token_file=stale)
    assert code == 1 and str(stale) in err and "--token-file" in err and "pat-na1" not in out + err
    with pytest.raises(TokenProblem, match="make airflow"):
        RunningSandbox(sb.url, (tmp_path / "none",)).hubspot("GET", "/crm/v3/objects/deals")


def test_python_dash_m_entry_point(sb):
    deal = live_ids(sb, "deals", 1)[0]
    env = {**os.environ, "SANDBOX_URL": sb.url}
    r = subprocess.run([sys.executable, "-m", "hubspot_devtools.sandbox_edit", "--token-file", str(sb.token_path),
                        "list", "deals", "--limit", "2"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "last modified" in r.stdout and sb.token not in r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "hubspot_devtools.sandbox_edit", "set-amount", deal, "99.90"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert api(sb, f"/crm/v3/objects/deals/{deal}", properties="amount").json()["properties"]["amount"] == "99.90"
