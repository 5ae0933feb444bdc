"""Search: filters, operators, sorting, the 10,000 cap, filter limits, body limit, index lag, bulk milliseconds."""

from __future__ import annotations

import pytest

S = "/crm/v3/objects/{}/search"


def search(client, otype, filters=None, groups=None, **kw):
    body = {"filterGroups": groups if groups is not None else ([{"filters": filters}] if filters else []), **kw}
    return client.post(S.format(otype), body)


def all_results(client, otype, filters, sort=None, props=("hs_object_id",)):
    out, after = [], 0
    while True:
        body = {"filterGroups": [{"filters": filters}], "limit": 200, "after": after, "properties": list(props)}
        if sort:
            body["sorts"] = [sort]
        r = client.post(S.format(otype), body)
        assert r.status_code == 200, r.text
        j = r.json()
        out += j["results"]
        nxt = j.get("paging", {}).get("next", {}).get("after")
        if not nxt:
            assert j["total"] == len(out)
            return out
        after = int(nxt)


def test_window_filter_and_sort_match_store(client, sb):
    st = sb.portal.stores["deals"]
    lo, hi = 1_650_000_000_000, 1_720_000_000_000
    res = all_results(client, "deals", [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(lo)},
                                        {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": str(hi)}],
                      sort={"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}, props=["hs_lastmodifieddate"])
    n = st.n
    mask = st.active_mask() & (st.lastmod[:n] >= lo) & (st.lastmod[:n] < hi)
    assert sorted(int(r["id"]) for r in res) == sorted(st.ids(mask.nonzero()[0]).tolist())
    stamps = [r["properties"]["hs_lastmodifieddate"] for r in res]
    assert stamps == sorted(stamps)


def test_descending_sort_and_operators(client):
    res = search(client, "deals", [{"propertyName": "deal_currency_code", "operator": "IN", "values": ["EUR", "SEK"]}],
                 sorts=[{"propertyName": "hs_object_id", "direction": "DESCENDING"}], limit=200,
                 properties=["deal_currency_code"]).json()["results"]
    assert res and {r["properties"]["deal_currency_code"] for r in res} <= {"EUR", "SEK"}
    ids = [int(r["id"]) for r in res]
    assert ids == sorted(ids, reverse=True)
    none = search(client, "deals", [{"propertyName": "deal_currency_code", "operator": "NOT_HAS_PROPERTY"}],
                  limit=200, properties=["deal_currency_code"]).json()["results"]
    assert none and all(r["properties"]["deal_currency_code"] in (None, "") for r in none)
    between = search(client, "deals", [{"propertyName": "amount", "operator": "BETWEEN", "value": "1000", "highValue": "5000"}],
                     limit=200, properties=["amount"]).json()["results"]
    assert between and all(1000 <= float(r["properties"]["amount"]) <= 5000 for r in between)
    neq = search(client, "deals", [{"propertyName": "pipeline", "operator": "NEQ", "value": "default"}],
                 limit=200, properties=["pipeline"]).json()["results"]
    assert neq and all(r["properties"]["pipeline"] == "75482910" for r in neq)


def test_or_groups(client):
    a = search(client, "contacts", [{"propertyName": "hs_object_id", "operator": "LTE", "value": "110"}]).json()["total"]
    b = search(client, "contacts", [{"propertyName": "hs_object_id", "operator": "GT", "value": "390"}]).json()["total"]
    both = search(client, "contacts", groups=[{"filters": [{"propertyName": "hs_object_id", "operator": "LTE", "value": "110"}]},
                                              {"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "390"}]}]).json()
    assert both["total"] == a + b


def test_archived_never_in_search(client, sb):
    st = sb.portal.stores["contacts"]
    archived = set(st.ids((st.archived[: st.n] != 0).nonzero()[0]).tolist())
    res = all_results(client, "contacts", [{"propertyName": "hs_object_id", "operator": "HAS_PROPERTY"}])
    assert archived and not archived & {int(r["id"]) for r in res}


def test_paging_cap_400(client):
    r = search(client, "contacts", limit=200, after=9801)
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert search(client, "contacts", limit=200, after=9800).status_code == 200
    assert search(client, "contacts", limit=201).status_code == 400
    assert search(client, "contacts", sorts=[{"propertyName": "a"}, {"propertyName": "b"}]).status_code == 400


def test_filter_limits(client):
    f = {"propertyName": "hs_object_id", "operator": "GT", "value": "0"}
    assert search(client, "contacts", groups=[{"filters": [f]}] * 6).status_code == 400
    assert search(client, "contacts", groups=[{"filters": [f] * 7}]).status_code == 400
    assert search(client, "contacts", groups=[{"filters": [f] * 4}] * 5).status_code == 400  # 20 > 18
    assert search(client, "contacts", groups=[{"filters": [f] * 6}] * 3).status_code == 200  # 18


def test_body_limit_configurable(client, sb):
    props = [f"egendefinert_felt_{i:03d}" for i in range(1, 6)] * 150
    assert search(client, "contacts", properties=props).status_code == 400
    sb.control.configure(search_body_limit=None)
    assert search(client, "contacts", properties=props).status_code == 200


def test_index_lag_hides_recent_changes(client, sb):
    c = sb.control
    now = c.freeze_clock(1_790_000_000_000)["now_ms"]
    rid = c.create("contacts", {"firstname": "Ærlige", "email": "ny@kunde.no"})["id"]
    c.set_search_lag(60_000)
    f = [{"propertyName": "hs_object_id", "operator": "EQ", "value": rid}]
    assert search(client, "contacts", f).json()["total"] == 0
    c.advance_clock(60_000)
    hit = search(client, "contacts", f, properties=["firstname"]).json()
    assert hit["total"] == 1 and hit["results"][0]["properties"]["firstname"] == "Ærlige"
    assert hit["results"][0]["properties"]["lastmodifieddate"] == "2026-09-21T14:13:20.000Z"
    assert now == 1_790_000_000_000


def test_bulk_millisecond_over_10000_drains_by_id(client, sb):
    c = sb.control
    c.reset(contacts=12_500)
    at = 1_760_000_000_000
    touched = c.bulk_touch("contacts", 10_500, at_ms=at)
    assert touched["count"] == 10_500
    eq = {"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(at)}
    assert search(client, "contacts", [eq]).json()["total"] == 10_500
    seen, last = [], 0
    while True:
        r = search(client, "contacts", [eq, {"propertyName": "hs_object_id", "operator": "GT", "value": str(last)}],
                   sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}], limit=200).json()
        if not r["results"]:
            break
        seen += [int(x["id"]) for x in r["results"]]
        last = seen[-1]
    assert len(seen) == len(set(seen)) == 10_500
