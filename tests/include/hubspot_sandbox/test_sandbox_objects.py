"""List, get, batch read, properties, pipelines, account: both API versions."""

from __future__ import annotations

import re

import pytest

PREFIXES = {"v3": "/crm/v3/objects", "2026": "/crm/objects/2026-09"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _drain(client, path, **params):
    ids, after, pages = [], None, 0
    while True:
        p = dict(params)
        if after:
            p["after"] = after
        r = client.get(path, **p)
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [x["id"] for x in body["results"]]
        pages += 1
        after = body.get("paging", {}).get("next", {}).get("after")
        if not after:
            return ids, pages, body


@pytest.mark.parametrize("version", ["v3", "2026"])
@pytest.mark.parametrize("otype,alias", [("contacts", "0-1"), ("companies", "0-2"), ("deals", "0-3")])
def test_list_pages_to_exact_live_id_set(client, sb, version, otype, alias):
    store = sb.portal.stores[otype]
    expected = [str(x) for x in store.ids(store.active_mask().nonzero()[0])]
    ids, pages, _ = _drain(client, f"{PREFIXES[version]}/{otype}", limit=100)
    assert ids == expected
    assert pages == -(-len(expected) // 100)
    ids2, _, _ = _drain(client, f"{PREFIXES[version]}/{alias}", limit=37)
    assert ids2 == expected


def test_list_limit_capped_at_100_and_properties_shape(client):
    r = client.get("/crm/v3/objects/deals", limit=500, properties="amount,deal_currency_code,nonexistent_prop,closedate")
    body = r.json()
    assert len(body["results"]) == 100
    for rec in body["results"]:
        props = rec["properties"]
        assert {"hs_object_id", "createdate", "hs_lastmodifieddate", "amount", "deal_currency_code", "closedate"} <= set(props)
        assert "nonexistent_prop" not in props
        assert all(v is None or isinstance(v, str) for v in props.values())
        assert ISO.match(props["createdate"]) and ISO.match(rec["updatedAt"])
        assert rec["updatedAt"] == props["hs_lastmodifieddate"]
        assert rec["archived"] is False


def test_contacts_use_lastmodifieddate(client):
    rec = client.get("/crm/v3/objects/contacts", limit=1, properties="email").json()["results"][0]
    assert ISO.match(rec["properties"]["lastmodifieddate"])


def test_archived_listing_returns_only_archived(client, sb):
    store = sb.portal.stores["contacts"]
    ids, _, _ = _drain(client, "/crm/v3/objects/contacts", archived="true", limit=100)
    expected = [str(x) for x in store.ids((store.archived[: store.n] != 0).nonzero()[0])]
    assert ids and ids == expected
    rec = client.get("/crm/v3/objects/contacts", archived="true", limit=1).json()["results"][0]
    assert rec["archived"] is True and ISO.match(rec["archivedAt"])
    assert client.get(f"/crm/v3/objects/contacts/{ids[0]}").status_code == 404
    assert client.get(f"/crm/v3/objects/contacts/{ids[0]}", archived="true").status_code == 200


def test_archive_restore_roundtrip(client, sb):
    c = sb.control
    rid = client.get("/crm/v3/objects/deals", limit=1).json()["results"][0]["id"]
    c.archive("deals", rid)
    assert client.get(f"/crm/v3/objects/deals/{rid}").status_code == 404
    archived, _, _ = _drain(client, "/crm/v3/objects/deals", archived="true", limit=100)
    assert rid in archived
    c.restore("deals", rid)
    assert client.get(f"/crm/v3/objects/deals/{rid}").status_code == 200


def test_get_merged_away_id_resolves_to_survivor(client, sb):
    c = sb.control
    a, b = [r["id"] for r in client.get("/crm/v3/objects/companies", limit=2).json()["results"]]
    c.merge("companies", a, b)
    r = client.get(f"/crm/objects/2026-09/companies/{b}", properties="hs_merged_object_ids")
    assert r.status_code == 200
    assert r.json()["id"] == a
    assert b in r.json()["properties"]["hs_merged_object_ids"].split(";")
    live, _, _ = _drain(client, "/crm/v3/objects/companies", limit=100)
    archived, _, _ = _drain(client, "/crm/v3/objects/companies", archived="true", limit=100)
    assert b not in live and b not in archived


@pytest.mark.parametrize("version", ["v3", "2026"])
def test_batch_read_207_and_merged_ids(client, sb, version):
    c = sb.control
    ids = [r["id"] for r in client.get("/crm/v3/objects/contacts", limit=3).json()["results"]]
    c.merge("contacts", ids[0], ids[1])
    r = client.post(f"{PREFIXES[version]}/contacts/batch/read",
                    {"inputs": [{"id": ids[1]}, {"id": ids[2]}, {"id": "999999999"}], "properties": ["email", "customer_number"]})
    assert r.status_code == 207
    body = r.json()
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"]["ids"] == ["999999999"]
    assert [x["id"] for x in body["results"]] == [ids[0], ids[2]]
    assert "customer_number" in body["results"][0]["properties"]
    ok = client.post(f"{PREFIXES[version]}/contacts/batch/read", {"inputs": [{"id": ids[2]}], "properties": ["email"]})
    assert ok.status_code == 200 and "errors" not in ok.json()


def test_batch_read_rejects_more_than_100(client):
    r = client.post("/crm/v3/objects/deals/batch/read", {"inputs": [{"id": str(i)} for i in range(101)]})
    assert r.status_code == 400
    assert r.json()["category"] == "VALIDATION_ERROR" and r.json()["correlationId"]


@pytest.mark.parametrize("path", ["/crm/v3/properties/companies", "/crm/properties/2026-09/0-2"])
def test_properties(client, path):
    res = client.get(path).json()["results"]
    by = {p["name"]: p for p in res}
    for key in ("name", "type", "fieldType", "options", "hubspotDefined", "calculated", "label"):
        assert key in by["org_number"]
    assert by["org_number"]["hubspotDefined"] is False
    assert by["hs_lastmodifieddate"]["type"] == "datetime"
    assert "egendefinert_felt_005" in by


def test_many_extra_properties_and_414(client, sb):
    sb.control.reset(extra_properties=400)
    names = [p["name"] for p in client.get("/crm/v3/properties/contacts").json()["results"]]
    extra = [n for n in names if n.startswith("egendefinert_felt_")]
    assert len(extra) == 400
    assert client.get("/crm/v3/objects/contacts", properties=",".join(extra)).status_code == 414
    first = client.get("/crm/v3/objects/contacts", limit=2).json()["results"]
    r = client.post("/crm/v3/objects/contacts/batch/read", {"inputs": [{"id": x["id"]} for x in first], "properties": extra})
    assert r.status_code == 200 and len(r.json()["results"][0]["properties"]) >= 400


@pytest.mark.parametrize("path", ["/crm/v3/pipelines/deals", "/crm/pipelines/2026-09/deals"])
def test_pipelines(client, sb, path):
    pipes = {p["id"]: p for p in client.get(path).json()["results"]}
    assert set(pipes) == {"default", "75482910"}
    stages = {s["id"]: s for s in pipes["default"]["stages"]}
    assert stages["closedwon"]["metadata"] == {"isClosed": "true", "probability": "1.0"}
    custom = pipes["75482910"]["stages"]
    assert all(s["id"].isdigit() for s in custom)
    archived = [s for s in custom if s["archived"]]
    assert len(archived) == 1
    deals = client.post("/crm/v3/objects/deals/search", {"filterGroups": [{"filters": [
        {"propertyName": "dealstage", "operator": "EQ", "value": archived[0]["id"]}]}], "limit": 5}).json()
    assert deals["total"] > 0


@pytest.mark.parametrize("path", ["/account-info/v3/details", "/account-info/2026-09/details"])
def test_account(client, path):
    body = client.get(path).json()
    assert body["timeZone"] == "Europe/Oslo" and body["companyCurrency"] == "NOK"
    assert body["additionalCurrencies"] == ["EUR", "SEK"] and isinstance(body["portalId"], int)
