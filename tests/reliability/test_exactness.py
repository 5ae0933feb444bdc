"""The promise — the finance tables equal HubSpot after every run — against the CRM edits that broke it.

Each test reproduces one defect of issue "Exactness" through the real task bodies (plan → extract →
load) against the sandbox, and failed before its fix. The clock is frozen at ``h.T0``; run 1 is at
``NOW1`` (T0 + 1 h), edits happen at T0 + 90 min, run 2 is at ``NOW2`` (T0 + 3 h).
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

import reliability_harness as h

EDIT_MS = h.T0 + 90 * 60_000
NOW3 = h.NOW2 + timedelta(hours=2)
BOTH = pytest.mark.parametrize("target", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def row(target, table: str, key: str, record_id: str) -> dict:
    rows = target.query(f"SELECT * FROM {{s}}{table} WHERE {key} = %s" if target.kind == "postgres"
                        else f"SELECT * FROM {{s}}{table} WHERE {key} = ?", (str(record_id),))
    assert len(rows) == 1, f"{table} {record_id}: {rows}"
    return {k: h._norm(k, v) for k, v in rows[0].items()}


def changes(target, deal_id: str) -> list[tuple]:
    mark = "%s" if target.kind == "postgres" else "?"
    rows = target.query(f"SELECT field, old_value, new_value FROM {{s}}contract_changes WHERE hubspot_deal_id = {mark} ORDER BY id",
                        (str(deal_id),))
    return [(r["field"], r["old_value"], r["new_value"]) for r in rows]


def links(target, table: str, key: str, record_id: str) -> dict[str, bool]:
    mark = "%s" if target.kind == "postgres" else "?"
    other = {"contract_contacts": "hubspot_contact_id", "contract_companies": "hubspot_company_id",
             "customer_companies": "hubspot_company_id"}[table]
    rows = target.query(f"SELECT {other} AS other, is_primary FROM {{s}}{table} WHERE {key} = {mark}", (str(record_id),))
    return {r["other"]: bool(r["is_primary"]) for r in rows}


def truth_links(sb, from_type: str, from_id: str, to_type: str) -> dict[str, bool]:
    from hubspot_sandbox.truth import portal_truth

    return portal_truth(sb.portal, {})[(from_type, to_type)].get(str(from_id), {})


def deal_with_amount(sb) -> str:
    for deal_id in h.live_ids(sb, "deals"):
        record = sb.control.get("deals", deal_id)
        amount = record["properties"].get("amount")
        if amount and amount.replace(".", "").isdigit() and record["properties"].get("deal_currency_code") in ("NOK", "EUR"):
            return deal_id
    raise AssertionError("no deal with a plain amount in the seed")


# ---------------------------------------------------------------- 1. a deletion keeps the last values
@BOTH
def test_deleting_a_record_keeps_its_last_values_and_records_one_change(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    deal, contact = deal_with_amount(sb), h.live_ids(sb, "contacts")[5]
    company = h.live_ids(sb, "companies")[2]
    before = {"deal": row(target, "contracts", "hubspot_deal_id", deal),
              "contact": row(target, "customers", "hubspot_contact_id", contact),
              "company": row(target, "companies", "hubspot_company_id", company)}
    sb.control.freeze_clock(EDIT_MS)
    for object_type, record_id in (("deals", deal), ("contacts", contact), ("companies", company)):
        sb.control.archive(object_type, record_id)
    h.sync("run-2", h.NOW2)
    after = {"deal": row(target, "contracts", "hubspot_deal_id", deal),
             "contact": row(target, "customers", "hubspot_contact_id", contact),
             "company": row(target, "companies", "hubspot_company_id", company)}
    for name, new in after.items():
        old = before[name]
        assert new["is_deleted"] is True and new["deletion_kind"] == "archived", (name, new)
        assert new["deleted_at"] is not None
        # content_hash: the load's bookkeeping of the row as loaded, which the deletion changed
        kept = {k: v for k, v in new.items()
                if k not in {"is_deleted", "deleted_at", "deletion_kind", "synced_at", "sync_run_id", "content_hash"}}
        assert kept == {k: v for k, v in old.items() if k in kept}, f"{name}: values changed on deletion"
    assert after["deal"]["amount"] is not None and after["contact"]["email"] == before["contact"]["email"]
    assert changes(target, deal) == [("is_deleted", "false", "true")]


def test_a_record_created_and_deleted_between_runs_lands_with_its_values(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    sb.control.freeze_clock(EDIT_MS)
    deal = sb.control.create("deals", {"dealname": "Kortvarig avtale", "amount": "990.00", "deal_currency_code": "NOK",
                                       "dealstage": "closedwon", "pipeline": "default"})["id"]
    sb.control.advance_clock(60_000)
    sb.control.archive("deals", deal)
    h.sync("run-2", h.NOW2)
    stored = row(target, "contracts", "hubspot_deal_id", deal)
    assert stored["is_deleted"] is True and stored["deletion_kind"] == "archived"
    assert stored["deal_name"] == "Kortvarig avtale" and Decimal(stored["amount"]) == Decimal("990")
    assert stored["stage_id"] == "closedwon" and stored["currency"] == "NOK"


def test_first_full_sync_lands_archived_records_with_their_values(sb, use, target):
    use(sb)
    archived = sb.portal.store("contacts")
    import numpy as np

    idx = np.flatnonzero(archived.archived[: archived.n] != 0)
    assert len(idx), "the seed has archived contacts"
    contact = str(archived.base + int(idx[0]))
    h.sync("run-1", h.NOW1)
    stored = row(target, "customers", "hubspot_contact_id", contact)
    assert stored["is_deleted"] is True and stored["deletion_kind"] == "archived"
    truth = sb.control.get("contacts", contact)["properties"]
    assert stored["properties"]["email"] == truth.get("email") and stored["properties"]["firstname"] == truth.get("firstname")


# ---------------------------------------------------------------- 2. an edit during the scan loses nothing
def test_an_edit_between_two_search_pages_loses_no_change(sb, use, target):
    sb.control.reset(seed=17, contacts=420, companies=30, deals=80)
    use(sb)
    h.sync("run-1", h.NOW1)
    contacts = h.live_ids(sb, "contacts")[:250]
    sb.control.freeze_clock(EDIT_MS)
    for i, contact in enumerate(contacts):  # 250 changes, one millisecond apart
        sb.control.modify("contacts", contact, {"city": f"By {i}"}, at_ms=h.T0 + 80 * 60_000 + i)
    planned = h.plan("run-2", h.NOW2)
    end_ms = int(h.NOW2.timestamp() * 1000)
    # someone edits a contact read on page 1 before page 2 is read: it leaves the window (stamped after its end)
    sb.control.after_calls("search", 1, [{"method": "PATCH", "path": f"/_sandbox/records/contacts/{contacts[10]}",
                                          "body": {"properties": {"city": "Flyttet"}, "at_ms": end_ms + 5}}],
                           object_type="contacts")
    h.load(planned, h.extract(planned, "run-2"), "run-2")
    cities = {r["hubspot_contact_id"]: r["city"] for r in target.query("SELECT hubspot_contact_id, city FROM {s}customers")}
    missing = [c for i, c in enumerate(contacts) if c != contacts[10] and cities.get(c) != f"By {i}"]
    assert missing == [], f"changes lost by offset paging: {missing}"
    sb.control.freeze_clock(int(NOW3.timestamp() * 1000) - 60_000)
    h.sync("run-3", NOW3)
    assert cities.get(contacts[10]) in ("By 10", "Flyttet")
    assert target.query("SELECT city FROM {s}customers WHERE hubspot_contact_id = '%s'" % contacts[10])[0]["city"] == "Flyttet"


# ---------------------------------------------------------------- 3. 207s never lose a change
def wide_properties(sb, monkeypatch) -> None:
    """So many properties that search bodies cannot carry them: every change is hydrated by batch read."""
    sb.control.reset(**h.SIZES, extra_properties=150)
    monkeypatch.setenv("HUBSPOT_SYNC_EXTRA_PROPERTIES", "all")


def test_a_record_batch_read_keeps_missing_is_not_lost(sb, use, target, monkeypatch):
    wide_properties(sb, monkeypatch)
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = deal_with_amount(sb)
    sb.control.freeze_clock(EDIT_MS)
    sb.control.modify("deals", deal, {"amount": "4321.00"})
    sb.control.add_fault(path="deals/batch/read", action="drop_ids", drop_ids=[deal])  # every read of it: 207
    summary = h.sync("run-2", h.NOW2)
    assert row(target, "contracts", "hubspot_deal_id", deal)["amount"] != "4321"
    assert any(deal in w for w in summary["warnings"]), summary["warnings"]
    sb.control.clear_faults()
    h.sync("run-3", NOW3)  # the watermark stopped before the unread change: the next run reads it
    assert row(target, "contracts", "hubspot_deal_id", deal)["amount"] == "4321"


def test_a_transient_207_is_read_again_in_the_same_run(sb, use, target, monkeypatch):
    wide_properties(sb, monkeypatch)
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = deal_with_amount(sb)
    sb.control.freeze_clock(EDIT_MS)
    sb.control.modify("deals", deal, {"amount": "777.70"})
    sb.control.add_fault(path="deals/batch/read", action="drop_ids", drop_ids=[deal], times=2)
    h.sync("run-2", h.NOW2)
    assert row(target, "contracts", "hubspot_deal_id", deal)["amount"] == "777.7"


def test_an_association_read_error_keeps_the_stored_links(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = next(d for d in h.live_ids(sb, "deals") if links(target, "contract_contacts", "hubspot_deal_id", d))
    stored = links(target, "contract_contacts", "hubspot_deal_id", deal)
    sb.control.freeze_clock(EDIT_MS)
    sb.control.modify("deals", deal, {"dealname": "Endret"})
    sb.control.add_fault(path="associations/(.*/)?(deals|0-3)/(contacts|0-1)/batch", action="assoc_errors", drop_ids=[deal])
    h.sync("run-2", h.NOW2)
    assert links(target, "contract_contacts", "hubspot_deal_id", deal) == stored
    assert sum(sb.control.stats().get("faults", {}).values()) >= 1, "the fault never fired"


def test_ids_without_associations_reported_as_errors_empty_the_set(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = next(d for d in h.live_ids(sb, "deals") if links(target, "contract_contacts", "hubspot_deal_id", d))
    sb.control.configure(association_empty_as_error=True)
    for contact in links(target, "contract_contacts", "hubspot_deal_id", deal):
        sb.control.dissociate("deals", deal, "contacts", contact)
    h.sync("run-2", h.NOW2)
    assert links(target, "contract_contacts", "hubspot_deal_id", deal) == {}


# ---------------------------------------------------------------- 4. an older load never reverts links
@BOTH
def test_an_older_runs_load_does_not_revert_newer_links(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = next(d for d in h.live_ids(sb, "deals") if truth_links(sb, "deals", d, "companies"))
    companies = h.live_ids(sb, "companies")
    old_primary = next(c for c, p in truth_links(sb, "deals", deal, "companies").items() if p)
    new_primary = next(c for c in companies if c != old_primary)
    planned_a = h.plan("run-a", h.NOW1 + timedelta(minutes=30))
    manifests_a = h.extract(planned_a, "run-a")  # run A reads the old links ...
    sb.control.freeze_clock(EDIT_MS)
    sb.control.associate("deals", deal, "companies", new_primary, primary=True)
    sb.control.dissociate("deals", deal, "companies", old_primary)
    h.sync("run-b", h.NOW2)  # ... run B reads and loads the new ones ...
    newer = links(target, "contract_companies", "hubspot_deal_id", deal)
    assert newer == truth_links(sb, "deals", deal, "companies")
    h.load(planned_a, manifests_a, "run-a")  # ... then A's load is cleared and runs again
    assert links(target, "contract_companies", "hubspot_deal_id", deal) == newer
    assert row(target, "contracts", "hubspot_deal_id", deal)["primary_company_id"] == new_primary


# ---------------------------------------------------------------- 5. association-only edits
@BOTH
def test_association_only_edits_reach_the_link_tables(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = next(d for d in h.live_ids(sb, "deals") if truth_links(sb, "deals", d, "contacts"))
    contacts = h.live_ids(sb, "contacts")
    gone = next(iter(truth_links(sb, "deals", deal, "contacts")))
    new = next(c for c in contacts if c not in truth_links(sb, "deals", deal, "contacts"))
    contact = next(c for c in contacts if truth_links(sb, "contacts", c, "companies"))
    company = next(c for c in h.live_ids(sb, "companies") if c not in truth_links(sb, "contacts", contact, "companies"))
    sb.control.freeze_clock(EDIT_MS)  # none of these touches a last-modified time
    sb.control.dissociate("deals", deal, "contacts", gone)
    sb.control.associate("deals", deal, "contacts", new)
    sb.control.associate("contacts", contact, "companies", company, primary=True)
    summary = h.sync("run-2", h.NOW2)
    assert links(target, "contract_contacts", "hubspot_deal_id", deal) == truth_links(sb, "deals", deal, "contacts")
    assert links(target, "customer_companies", "hubspot_contact_id", contact) == truth_links(sb, "contacts", contact, "companies")
    assert summary["reconciliation"]["deals"]["calls"] >= 1 and summary["reconciliation"]["contacts"]["calls"] >= 1


def test_links_to_an_archived_record_disappear_and_come_back_on_restore(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = next(d for d in h.live_ids(sb, "deals") if truth_links(sb, "deals", d, "contacts"))
    contact = next(iter(truth_links(sb, "deals", deal, "contacts")))
    sb.control.freeze_clock(EDIT_MS)
    sb.control.archive("contacts", contact)
    h.sync("run-2", h.NOW2)
    assert contact not in links(target, "contract_contacts", "hubspot_deal_id", deal)
    sb.control.freeze_clock(EDIT_MS + 3 * 3600_000)
    sb.control.restore("contacts", contact)
    h.sync("run-3", NOW3 + timedelta(hours=1))
    assert contact in links(target, "contract_contacts", "hubspot_deal_id", deal)


# ---------------------------------------------------------------- 6. permanent deletes
@BOTH
def test_permanent_deletes_are_found_by_the_id_sweep(sb, use, target, monkeypatch):
    use(sb)
    monkeypatch.setenv("HUBSPOT_SYNC_ERASE_PERSONAL_DATA", "true")
    h.sync("run-1", h.NOW1)
    contact, deal = h.live_ids(sb, "contacts")[7], deal_with_amount(sb)
    survivor, absorbed = h.live_ids(sb, "contacts")[20], h.live_ids(sb, "contacts")[21]
    amount = row(target, "contracts", "hubspot_deal_id", deal)["amount"]
    sb.control.freeze_clock(EDIT_MS)
    sb.control.purge("contacts", contact)
    sb.control.purge("deals", deal)
    sb.control.merge("contacts", survivor, absorbed)
    h.sync("run-2", h.NOW2)  # a plain nightly run: permanent deletes are only found by the sweep
    assert row(target, "customers", "hubspot_contact_id", contact)["is_deleted"] is False
    h.sync("run-3", NOW3, {"reconcile": True})
    gone = row(target, "customers", "hubspot_contact_id", contact)
    assert gone["is_deleted"] is True and gone["deletion_kind"] == "permanent"
    assert gone["email"] is None and gone["first_name"] is None and gone["phone"] is None and gone["properties"] == {}
    deal_row = row(target, "contracts", "hubspot_deal_id", deal)
    assert deal_row["deletion_kind"] == "permanent" and deal_row["amount"] == amount
    assert changes(target, deal)[-1] == ("is_deleted", "false", "true")
    merged = row(target, "customers", "hubspot_contact_id", absorbed)
    assert merged["deletion_kind"] == "merged" and merged["merged_into_contact_id"] == survivor
    assert links(target, "customer_companies", "hubspot_contact_id", contact) == {}


def test_full_refresh_also_sweeps(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    contact = h.live_ids(sb, "contacts")[7]
    sb.control.freeze_clock(EDIT_MS)
    sb.control.purge("contacts", contact)
    h.sync("run-2", h.NOW2, {"full_refresh": True})
    assert row(target, "customers", "hubspot_contact_id", contact)["deletion_kind"] == "permanent"


# ---------------------------------------------------------------- 7. merges repoint the primary company
@BOTH
def test_a_company_merge_moves_the_primary_company_to_the_survivor(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = next(d for d in h.live_ids(sb, "deals") if any(truth_links(sb, "deals", d, "companies").values()))
    primary = next(c for c, p in truth_links(sb, "deals", deal, "companies").items() if p)
    survivor = next(c for c in h.live_ids(sb, "companies") if c != primary)
    assert row(target, "contracts", "hubspot_deal_id", deal)["primary_company_id"] == primary
    sb.control.freeze_clock(EDIT_MS)
    sb.control.merge("companies", survivor, primary)
    h.sync("run-2", h.NOW2)
    assert row(target, "contracts", "hubspot_deal_id", deal)["primary_company_id"] == survivor
    assert links(target, "contract_companies", "hubspot_deal_id", deal) == truth_links(sb, "deals", deal, "companies")


# ---------------------------------------------------------------- 8. one canonical decimal text
@BOTH
def test_a_decimal_written_differently_is_no_change_on_either_database(sb, use, target):
    use(sb)
    deal = deal_with_amount(sb)
    sb.control.modify("deals", deal, {"amount": "100.5"}, at_ms=h.T0 - 60_000)
    h.sync("run-1", h.NOW1)
    sb.control.freeze_clock(EDIT_MS)
    sb.control.modify("deals", deal, {"amount": "100.50"})
    h.sync("run-2", h.NOW2)
    sb.control.freeze_clock(EDIT_MS + 60 * 60_000 + 1)
    sb.control.modify("deals", deal, {"amount": "100.70"})
    h.sync("run-3", NOW3)
    assert changes(target, deal) == [("amount", "100.5", "100.7")]
    assert row(target, "contracts", "hubspot_deal_id", deal)["amount"] == "100.7"


# ---------------------------------------------------------------- the retry list
def test_a_rejected_record_is_read_again_until_it_loads(sb, use, target, monkeypatch):
    from hubspot_sandbox import schema

    use(sb)
    h.sync("run-1", h.NOW1)
    deal = deal_with_amount(sb)
    sb.control.freeze_clock(EDIT_MS)
    sb.control.modify("deals", deal, {"deal_currency_code": "DKK", "amount": "250.00"})
    h.sync("run-2", h.NOW2)
    assert row(target, "contracts", "hubspot_deal_id", deal)["currency"] != "DKK"
    monkeypatch.setitem(schema.ACCOUNT, "additionalCurrencies", ["EUR", "SEK", "DKK"])  # fixed outside the record
    h.sync("run-3", NOW3)
    stored = row(target, "contracts", "hubspot_deal_id", deal)
    assert stored["currency"] == "DKK" and stored["amount"] == "250"
    attempts = target.query("SELECT run_id, attempt FROM {s}rejected_records WHERE hubspot_id = '%s'" % deal)
    assert [(r["run_id"], r["attempt"]) for r in attempts] == [("run-2", 1)]
    retries = {r["hubspot_id"]: r["attempts"] for r in target.query("SELECT * FROM {s}record_retries")}
    assert deal not in retries and retries, retries  # loaded: off the list; the seed's malformed deals stay on it


def test_a_rejected_record_deleted_for_good_leaves_the_retry_list(sb, use, target):
    use(sb)
    h.sync("run-1", h.NOW1)
    deal = deal_with_amount(sb)
    sb.control.freeze_clock(EDIT_MS)
    sb.control.modify("deals", deal, {"deal_currency_code": "DKK"})
    h.sync("run-2", h.NOW2)
    assert deal in {r["hubspot_id"] for r in target.query("SELECT hubspot_id FROM {s}record_retries")}
    sb.control.purge("deals", deal)
    h.sync("run-3", NOW3)
    assert deal not in {r["hubspot_id"] for r in target.query("SELECT hubspot_id FROM {s}record_retries")}
