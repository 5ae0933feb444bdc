"""Adversarial controls: GDPR purge, mid-scan triggers, per-id association errors, archived batch read, truth."""

from __future__ import annotations

import pytest

from hubspot_sandbox.control import SandboxControlError
from hubspot_sandbox.truth import portal_truth

OBJ = "/crm/v3/objects/{}"
ASSOC = "/crm/v4/associations/{}/{}/batch/read"
WINDOW = (1_600_000_000_000, 1_700_000_000_000)


def live_ids(client, otype, archived=False):
    ids, after = [], None
    while True:
        params = {"limit": 100, **({"after": after} if after else {}), **({"archived": "true"} if archived else {})}
        body = client.get(OBJ.format(otype), **params).json()
        ids += [x["id"] for x in body["results"]]
        after = body.get("paging", {}).get("next", {}).get("after")
        if not after:
            return ids


def associations(client, f, t, ids):
    """{from_id: {to_id: is_primary}} over per-id paging, and the 207 errors seen."""
    out, errors, pending = {}, [], [{"id": i} for i in ids]
    while pending:
        r = client.post(ASSOC.format(f, t), {"inputs": pending})
        assert r.status_code in (200, 207), r.text
        errors += r.json().get("errors", [])
        pending = []
        for res in r.json()["results"]:
            fid = res["from"]["id"]
            for x in res["to"]:
                prim = any(a["typeId"] in (1, 5, 6, 2) for a in x["associationTypes"])
                out.setdefault(fid, {})[str(x["toObjectId"])] = prim
            nxt = res.get("paging", {}).get("next", {}).get("after")
            if nxt:
                pending.append({"id": fid, "after": nxt})
    return out, errors


def window_search(client, after, limit=10):
    lo, end = WINDOW
    body = {"filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(lo)},
                {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": str(end)}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["hs_lastmodifieddate"], "limit": limit, "after": after}
    r = client.post(OBJ.format("deals") + "/search", body)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------- purge

def test_purge_removes_a_record_from_every_read(client, sb):
    c = sb.control
    deals = live_ids(client, "deals")[:100]
    by_deal, _ = associations(client, "deals", "companies", deals)
    deal, tos = next((d, t) for d, t in by_deal.items() if t)
    company = next(iter(tos))
    raw = c.purge("companies", company)
    assert raw["purged"] is True and raw["purgedAt"]
    assert company not in live_ids(client, "companies") and company not in live_ids(client, "companies", archived=True)
    found = client.post(OBJ.format("companies") + "/search", {"filterGroups": [{"filters": [
        {"propertyName": "hs_object_id", "operator": "EQ", "value": company}]}]}).json()
    assert found["total"] == 0
    r = client.post(OBJ.format("companies") + "/batch/read", {"inputs": [{"id": company}]})
    assert r.status_code == 207 and r.json()["errors"][0]["context"]["ids"] == [company]
    assert client.get(OBJ.format("companies") + f"/{company}").status_code == 404
    assert client.get(OBJ.format("companies") + f"/{company}", archived="true").status_code == 404
    assert associations(client, "companies", "deals", [company])[0] == {}
    assert company not in associations(client, "deals", "companies", [deal])[0].get(deal, {})
    assert c.get("companies", company)["purged"] is True
    assert c.state()["counts"]["companies"]["purged"] == 1
    for call in (lambda: c.purge("companies", company), lambda: c.modify("companies", company, {"name": "x"}),
                 lambda: c.associate("deals", deal, "companies", company)):
        with pytest.raises(SandboxControlError) as e:
            call()
        assert e.value.status == 404


def test_purge_archived_survivor_and_merged_away_ids(client, sb):
    c = sb.control
    a, b, d = live_ids(client, "contacts")[:3]
    c.archive("contacts", d)
    c.purge("contacts", d)
    assert d not in live_ids(client, "contacts", archived=True)
    c.merge("contacts", a, b)
    with pytest.raises(SandboxControlError) as e:
        c.purge("contacts", b)
    assert e.value.status == 400
    c.purge("contacts", a)
    assert client.get(OBJ.format("contacts") + f"/{b}").status_code == 404
    assert c.get("contacts", b)["mergedInto"] == a


# ---------------------------------------------------------------- triggers

def test_trigger_fires_once_after_the_nth_matching_call(client, sb):
    c = sb.control
    ids = live_ids(client, "contacts")[:2]
    tid = c.after_calls("list", 2, [
        {"method": "PATCH", "path": f"/_sandbox/records/contacts/{ids[0]}", "body": {"properties": {"firstname": "Trigget"}}},
        {"method": "POST", "path": f"/records/contacts/{ids[1]}/archive"}], object_type="0-1")
    assert [(t["id"], t["fired"]) for t in c.triggers()] == [(tid, False)]
    sb.control.add_fault(OBJ.format("contacts"), method="GET", status=503, times=1)
    assert client.get(OBJ.format("contacts")).status_code == 503  # not answered: does not count
    assert client.get(OBJ.format("deals")).status_code == 200  # other object type
    first = client.get(OBJ.format("contacts"), limit=2).json()["results"]
    assert [x["id"] for x in first] == ids and not c.triggers()[0]["fired"]
    second = client.get(OBJ.format("contacts"), limit=2, properties="firstname").json()["results"]
    assert second[0]["properties"]["firstname"] != "Trigget"  # the answer was computed before the actions
    t = c.triggers()[0]
    assert t["fired"] and [x["status"] for x in t["results"]] == [200, 200]
    assert client.get(OBJ.format("contacts") + f"/{ids[0]}", properties="firstname").json()["properties"]["firstname"] == "Trigget"
    assert client.get(OBJ.format("contacts") + f"/{ids[1]}").status_code == 404
    client.get(OBJ.format("contacts"))
    assert c.triggers()[0]["seen"] == 2
    c.clear_triggers()
    assert c.triggers() == []
    with pytest.raises(SandboxControlError):
        c.after_calls("nonsense", 1, [])


def test_any_kind_trigger_and_reset_all_clears(client, sb):
    c = sb.control
    deal = live_ids(client, "deals")[0]
    c.after_calls("any", 1, [{"method": "POST", "path": f"/_sandbox/records/deals/{deal}/purge"}])
    client.get("/crm/v3/properties/deals")
    assert c.triggers()[0]["fired"] and client.get(OBJ.format("deals") + f"/{deal}").status_code == 404
    c.after_calls("search", 1, [])
    c.configure(association_empty_as_error=True)
    c.reset_all(seed=7, contacts=300, companies=60, deals=200, extra_properties=5)
    assert c.triggers() == [] and c.state()["config"]["association_empty_as_error"] is False


def test_offset_paging_skips_a_record_edited_between_pages(client, sb):
    """The HubSpot flaw: an edit that moves a page-1 record out of the window shifts every later record up one."""
    c = sb.control
    c.freeze_clock(WINDOW[1] + 86_400_000)  # the edit is stamped with the sandbox clock: past the window end
    baseline = [x["id"] for x in window_search(client, 0, limit=200)["results"]]
    assert len(baseline) > 25
    c.edit_between_search_pages("deals", 1, [(baseline[0], {"dealname": "Endret midt i skanningen"})])
    page1 = window_search(client, 0)
    page2 = window_search(client, 10)
    assert [x["id"] for x in page1["results"]] == baseline[:10]
    assert [x["id"] for x in page2["results"]] == baseline[11:21]  # baseline[10] is never read
    assert page2["total"] == len(baseline) - 1
    assert c.triggers()[0]["fired"]
    edited = client.get(OBJ.format("deals") + f"/{baseline[0]}").json()
    assert edited["updatedAt"] == "2023-11-15T22:13:20.000Z"


def test_edit_inside_the_window_moves_the_record_to_the_end(client, sb):
    c = sb.control
    baseline = [x["id"] for x in window_search(client, 0, limit=200)["results"]]
    c.edit_between_search_pages("deals", 1, [(baseline[0], {"amount": "1"})], at_ms=WINDOW[1] - 1)
    window_search(client, 0)
    page2 = [x["id"] for x in window_search(client, 10)["results"]]
    assert page2 == baseline[11:21]
    assert [x["id"] for x in window_search(client, 0, limit=200)["results"]][-1] == baseline[0]


# ---------------------------------------------------------------- association per-id errors

def test_association_empty_as_error(client, sb):
    deals = live_ids(client, "deals")[:100]
    plain = client.post(ASSOC.format("deals", "companies"), {"inputs": [{"id": d} for d in deals]})
    assert plain.status_code == 200 and "errors" not in plain.json()
    without = set(deals) - {x["from"]["id"] for x in plain.json()["results"]}
    assert without
    sb.control.configure(association_empty_as_error=True)
    r = client.post(ASSOC.format("0-3", "0-2"), {"inputs": [{"id": d} for d in deals]})
    assert r.status_code == 207
    body = r.json()
    assert body["numErrors"] == len(body["errors"]) == len(without)
    assert body["results"] == plain.json()["results"]
    for e in body["errors"]:
        rid = e["context"]["fromObjectId"][0]
        assert rid in without
        assert e == {"status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                     "message": f"No company is associated with deal {rid}.", "context": {"fromObjectId": [rid]}}


def test_assoc_errors_fault(client, sb):
    deals = live_ids(client, "deals")[:9]
    sb.control.add_fault(r"/associations/", method="POST", action="assoc_errors", drop_ids=[deals[0]], times=1)
    r = client.post(ASSOC.format("deals", "contacts"), {"inputs": [{"id": d} for d in deals]})
    assert r.status_code == 207
    assert r.json()["numErrors"] == 1
    assert r.json()["errors"] == [{"status": "error", "category": "INTERNAL_ERROR",
                                   "message": f"Unable to read associations for {deals[0]}; try again.",
                                   "context": {"fromObjectId": [deals[0]]}}]
    assert deals[0] not in {x["from"]["id"] for x in r.json()["results"]}
    again = client.post(ASSOC.format("deals", "contacts"), {"inputs": [{"id": d} for d in deals]})
    assert again.status_code == 200
    sb.control.add_fault(r"/associations/", action="assoc_errors", drop_every=3)
    r = client.post(ASSOC.format("deals", "contacts"), {"inputs": [{"id": d} for d in deals]})
    assert [e["context"]["fromObjectId"][0] for e in r.json()["errors"]] == deals[2::3]


# ---------------------------------------------------------------- batch read of archived records

def test_batch_read_archived_records(client, sb):
    c = sb.control
    d = live_ids(client, "contacts")[:5]
    c.modify("contacts", d[0], {"firstname": "Arkivert", "customer_number": "10042"})
    c.archive("contacts", d[0])
    c.archive("contacts", d[1])
    c.purge("contacts", d[1])
    c.merge("contacts", d[3], d[2])
    c.archive("contacts", d[3])  # a merged-away id is not an archived record, even when its survivor is
    seeded = [x for x in live_ids(client, "contacts", archived=True) if x not in d][0]
    props = ["firstname", "email", "customer_number", "invoice_email"]
    r = client.post(OBJ.format("contacts") + "/batch/read", {
        "archived": True, "properties": props, "inputs": [{"id": x} for x in (d[0], d[1], d[2], d[3], d[4], seeded)]})
    assert r.status_code == 207
    body = r.json()
    assert [x["id"] for x in body["results"]] == [d[0], d[3], seeded]
    assert body["errors"][0]["context"]["ids"] == [d[1], d[2], d[4]]
    for rec in body["results"]:
        assert rec["archived"] is True and rec["archivedAt"]
        assert {*props, "hs_object_id", "createdate", "lastmodifieddate"} <= set(rec["properties"])
    assert body["results"][0]["properties"]["firstname"] == "Arkivert"
    assert body["results"][0]["properties"]["customer_number"] == "10042"
    assert body["results"][2]["properties"]["email"] is not None


# ---------------------------------------------------------------- truth

def test_portal_truth_matches_the_api(client, sb):
    c = sb.control
    cos = live_ids(client, "companies")
    a, b, z = cos[:3]
    c.merge("companies", a, b)
    c.merge("companies", z, a)
    deal = live_ids(client, "deals")[0]
    c.archive("deals", deal)
    contact = live_ids(client, "contacts")[0]
    c.purge("contacts", contact)
    wanted = {"deals": ["amount", "dealname"], "companies": ["name"], "contacts": ["email"]}
    truth = portal_truth(sb.portal, wanted)

    assert truth["companies"][b]["status"] == "merged" and truth["companies"][b]["merged_into"] == z
    assert truth["companies"][a]["merged_into"] == z and truth["companies"][a]["properties"] is None
    arch = truth["deals"][deal]
    assert arch["status"] == "archived" and arch["archived_at_ms"] and "amount" in arch["properties"]
    assert truth["contacts"][contact]["status"] == "purged" and truth["contacts"][contact]["properties"] is None
    for otype, props in wanted.items():
        ids = live_ids(client, otype)
        assert sorted(k for k, v in truth[otype].items() if v["status"] == "live") == sorted(ids)
        assert sorted(k for k, v in truth[otype].items() if v["status"] == "archived") == sorted(
            live_ids(client, otype, archived=True))
        for s in range(0, len(ids), 100):
            got = client.post(OBJ.format(otype) + "/batch/read",
                              {"inputs": [{"id": i} for i in ids[s:s + 100]], "properties": props}).json()["results"]
            for rec in got:
                assert truth[otype][rec["id"]]["properties"] == rec["properties"]
                assert truth[otype][rec["id"]]["archived_at_ms"] is None
    for f, t in (("deals", "contacts"), ("deals", "companies"), ("contacts", "companies")):
        froms = live_ids(client, f)
        api, _ = associations(client, f, t, froms)
        assert set(truth[(f, t)]) == set(froms)
        assert {k: v for k, v in truth[(f, t)].items() if v} == api
    assert any(any(v.values()) for v in truth[("contacts", "companies")].values())  # primaries are kept
