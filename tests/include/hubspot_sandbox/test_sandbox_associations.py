"""Associations batch read (v4 and 2026-09): type ids, primaries, per-id paging, edits."""

from __future__ import annotations

import pytest

V = {"v4": "/crm/v4/associations/{}/{}/batch/read", "2026": "/crm/associations/2026-09/{}/{}/batch/read"}


def read_all(client, version, f, t, ids):
    """Drain associations for ids, following per-id cursors; returns {from_id: [(to, typeIds)]} and page count."""
    out, pending, calls = {}, [{"id": i} for i in ids], 0
    while pending:
        r = client.post(V[version].format(f, t), {"inputs": pending})
        assert r.status_code == 200, r.text
        calls += 1
        pending = []
        for res in r.json()["results"]:
            fid = res["from"]["id"]
            out.setdefault(fid, []).extend((x["toObjectId"], sorted(a["typeId"] for a in x["associationTypes"])) for x in res["to"])
            nxt = res.get("paging", {}).get("next", {}).get("after")
            if nxt:
                pending.append({"id": fid, "after": nxt})
    return out, calls


@pytest.mark.parametrize("version", ["v4", "2026"])
def test_deal_associations_type_ids(client, sb, version):
    deals = [r["id"] for r in client.get("/crm/v3/objects/deals", limit=100).json()["results"]]
    companies, _ = read_all(client, version, "deals", "companies", deals)
    contacts, _ = read_all(client, version, "0-3", "0-1", deals)
    assert companies and contacts
    for lst in companies.values():
        types = [t for _to, t in lst]
        assert sum(1 for t in types if t == [5, 341]) <= 1
        assert all(t in ([341], [5, 341]) for t in types)
    assert any(t == [5, 341] for lst in companies.values() for _to, t in lst)
    assert all(t == [3] for lst in contacts.values() for _to, t in lst)
    without = set(deals) - set(companies)
    assert without  # ids without associations are omitted
    cc, _ = read_all(client, version, "contacts", "companies", [str(i) for i in range(101, 201)])
    assert any(t == [1, 279] for lst in cc.values() for _to, t in lst)


def test_per_id_paging(client, sb):
    sb.control.configure(association_page_size=2)
    companies = [r["id"] for r in client.get("/crm/v3/objects/companies", limit=20).json()["results"]]
    paged, calls = read_all(client, "v4", "companies", "contacts", companies)
    sb.control.configure(association_page_size=500)
    whole, calls1 = read_all(client, "v4", "companies", "contacts", companies)
    assert calls > 1 and calls1 == 1
    assert paged == whole
    assert any(len(v) > 2 for v in whole.values())


def test_associate_dissociate_and_primary(client, sb):
    c = sb.control
    deal = client.get("/crm/v3/objects/deals", limit=1).json()["results"][0]["id"]
    cos = [r["id"] for r in client.get("/crm/v3/objects/companies", limit=3).json()["results"]]
    c.associate("deals", deal, "companies", cos[1], primary=True)
    c.associate("deals", deal, "companies", cos[2])
    got, _ = read_all(client, "v4", "deals", "companies", [deal])
    types = dict(got[deal])
    assert types[int(cos[1])] == [5, 341] and types[int(cos[2])] == [341]
    assert sum(1 for t in types.values() if 5 in t) == 1
    c.dissociate("deals", deal, "companies", cos[2])
    got, _ = read_all(client, "v4", "deals", "companies", [deal])
    assert int(cos[2]) not in dict(got[deal])
    back, _ = read_all(client, "v4", "companies", "deals", [cos[1]])
    assert (int(deal), [6, 342]) in back[cos[1]]


def test_input_limit(client):
    r = client.post(V["v4"].format("deals", "contacts"), {"inputs": [{"id": str(i)} for i in range(1001)]})
    assert r.status_code == 400
