"""Bad input from HubSpot, through the real HTTP path (the sandbox answers the list calls with crafted
pages, and search with nothing), the raw zone and the load: every record ends as a loaded row, a nulled field with a warning,
or a rejected_records row with its reasons; never a crash, never a silent drop, never SQL built from data."""

from __future__ import annotations


import pytest
import requests

import reliability_harness as h

MB = "Å" * 1_000_000
SQLI = "Robert'); DROP TABLE customers;--"
JSONI = '{"$ne": null, "__proto__": {"x": 1}}'


def rec(rid, updated="2025-01-02T03:04:05.678Z", created="2024-01-01T00:00:00.000Z", **props):
    return {"id": rid, "properties": props, "createdAt": created, "updatedAt": updated, "archived": False}


CONTACTS = [
    rec("1001", email="not-an-email", phone="++47 abc"),
    rec("1002", firstname=MB),
    rec("1003", firstname="ctl\x01\x07\x1b\x7f end", lastname="tab\tnew\nline"),
    rec("1004", lastname="lone \ud800 surrogate"),
    rec("1005", email=" Ola.Normann@Eksempel.NO ", firstname="😀 Åse", city="Tromsø"),
    rec("1006", firstname=SQLI, lastname=JSONI, city='"; DELETE FROM sync_state; --'),
    rec(None, firstname="no id"),
    rec("12a", firstname="bad id"),
    rec("1009", updated="2025-01-01T00:00:00.000Z", city="Old"),
    rec("1009", updated="2025-03-01T00:00:00.000Z", city="New"),
    rec("1010", updated="garbage", firstname="no time"),
    rec("1011", created="not a date", firstname="bad created"),
    rec("1012", phone="+47 (0) 22-33 44 55", **{"x'; DROP TABLE customers; --": "unrequested property"}),
]
DEALS = [
    rec("9100", amount="1e309", deal_currency_code="NOK", dealname="huge"),
    rec("9101", amount="NaN", deal_currency_code="NOK"),
    rec("9102", amount="100", closedate="2024-02-30", deal_currency_code="NOK"),
    rec("9103", amount="100", dealstage="does-not-exist", pipeline="default", deal_currency_code="NOK"),
    rec("9104", amount="١٢٣", deal_currency_code="NOK"),
    rec("9105", amount="12.50", deal_currency_code="XXX"),
]


def crafted(sb):
    sb.control.add_fault(path=r"objects/2026-09/contacts\?.*archived=false", status=200, body={"results": CONTACTS}, times=1)
    sb.control.add_fault(path=r"objects/2026-09/deals\?.*archived=false", status=200, body={"results": DEALS}, times=1)
    # The crafted pages are the whole portal: search (the full read's other end) has nothing indexed yet.
    sb.control.add_fault(path=r"objects/2026-09/(contacts|deals)/search", status=200, body={"total": 0, "results": []})
    ghost = {"results": [{"from": {"id": "1005"}, "to": [{"toObjectId": 7777777777, "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None}]}]}]}
    sb.control.add_fault(path=r"associations/2026-09/contacts/companies", status=200, body=ghost, times=1)
    props = requests.get(f"{sb.url}/crm/v3/properties/contacts", headers=sb.auth_headers(), timeout=30).json()["results"]
    for p in props:
        if p["name"] == "city":
            p["type"] = "quantum_blob"  # a property type we have never heard of
    sb.control.add_fault(path=r"properties/2026-09/contacts", status=200, body={"results": props})


@pytest.mark.parametrize("target", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_bad_records_end_loaded_nulled_or_rejected(sb, use, target, caplog):
    use(sb)
    crafted(sb)
    summary = h.sync("run-1", h.NOW1)
    customers = {r["hubspot_contact_id"]: r for r in target.query("SELECT * FROM {s}customers")}
    contracts = {r["hubspot_deal_id"]: r for r in target.query("SELECT * FROM {s}contracts")}
    rejected = {(r["object_type"], r["hubspot_id"]): h._norm("reasons", r["reasons"])
                for r in target.query("SELECT * FROM {s}rejected_records")}
    warn = lambda row: [w["rule"] for w in h._norm("validation_warnings", row["validation_warnings"]) or []]  # noqa: E731
    # loaded rows, exactly as sent (SQL- and JSON-looking text is data, never SQL)
    assert customers["1002"]["first_name"] == MB and h._norm("properties", customers["1002"]["properties"])["firstname"] == MB
    assert (customers["1003"]["first_name"], customers["1003"]["last_name"]) == ("ctl\x01\x07\x1b\x7f end", "tab\tnew\nline")
    assert customers["1004"]["last_name"] == "lone \ufffd surrogate"  # not encodable: U+FFFD, with a warning in the log
    assert "lone surrogates" in caplog.text
    assert (customers["1005"]["email"], customers["1005"]["first_name"], customers["1005"]["city"]) == (
        "ola.normann@eksempel.no", "😀 Åse", "Tromsø")
    assert (customers["1006"]["first_name"], customers["1006"]["last_name"], customers["1006"]["city"]) == (
        SQLI, JSONI, '"; DELETE FROM sync_state; --')
    assert customers["1009"]["city"] == "New"  # duplicate id: the newest updatedAt wins
    assert "x'; DROP TABLE customers; --" not in h._norm("properties", customers["1012"]["properties"])  # not requested, not stored
    assert len(target.query("SELECT * FROM {s}sync_state")) == 3  # the tables it named are all there
    # nulled fields with a warning
    assert (customers["1001"]["email"], customers["1001"]["phone"], warn(customers["1001"])) == (None, None, ["invalid_email", "invalid_phone"])
    assert (customers["1011"]["created_at"], warn(customers["1011"])) == (None, ["invalid_created_at"])
    assert (customers["1012"]["phone"], warn(customers["1012"])) == (None, ["invalid_phone"])
    assert (contracts["9103"]["stage_label"], warn(contracts["9103"])) == (None, ["unknown_stage"])
    # rejected, each with its reason
    assert {k: [x["rule"] for x in v] for k, v in rejected.items()} == {
        ("contacts", None): ["missing_id"], ("contacts", "12a"): ["invalid_id"], ("contacts", "1010"): ["missing_updated_at"],
        ("deals", "9100"): ["invalid_amount"], ("deals", "9101"): ["invalid_amount"], ("deals", "9102"): ["invalid_close_date"],
        ("deals", "9104"): ["invalid_amount"], ("deals", "9105"): ["unknown_currency"],
    }
    # nothing silently dropped: every crafted id is a row or a reject
    sent = {r["id"] for r in CONTACTS} | {r["id"] for r in DEALS}
    assert sent <= set(customers) | set(contracts) | {k[1] for k in rejected}
    # an association to a company that does not exist (yet) is kept as HubSpot sent it
    assert [(r["hubspot_contact_id"], r["hubspot_company_id"]) for r in target.query("SELECT * FROM {s}customer_companies")] == [
        ("1005", "7777777777")]
    # an unknown property type is tolerated: the value is loaded as text
    assert summary["status"] == "success"


@pytest.mark.parametrize("target", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_nul_character_in_a_value_is_loaded_or_nulled_never_fails_the_load(sb, use, target):
    use(sb)
    sb.control.add_fault(path=r"objects/2026-09/contacts\?.*archived=false", status=200,
                         body={"results": [rec("1013", lastname="nul\x00byte"), rec("1014", lastname="fine")]}, times=1)
    assert h.sync("run-1", h.NOW1)["status"] == "success"
    rows = {r["hubspot_contact_id"]: r["last_name"] for r in target.query("SELECT * FROM {s}customers")}
    # SQLite keeps it; PostgreSQL text cannot hold NUL: it is dropped from the value with a warning
    assert rows["1014"] == "fine" and rows["1013"] == ("nul\x00byte" if target.kind == "sqlite" else "nulbyte")
