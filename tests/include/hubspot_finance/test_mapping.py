"""Mapping file: defaults, merging, errors that name the offending key; object declarations."""

from __future__ import annotations

import json

import pytest

from hubspot_finance.mapping import MappingError, load_mapping
from hubspot_finance.objects import ASSOCIATIONS, OBJECTS, associations_from


def test_default_mapping_and_objects():
    m = load_mapping()
    assert m.table("contracts").columns["amount"] == "amount"
    assert (OBJECTS["contacts"].type_id, OBJECTS["contacts"].cursor_property) == ("0-1", "lastmodifieddate")
    assert (OBJECTS["deals"].type_id, OBJECTS["deals"].cursor_property) == ("0-3", "hs_lastmodifieddate")
    assert (OBJECTS["companies"].type_id, OBJECTS["companies"].cursor_property) == ("0-2", "hs_lastmodifieddate")
    props = OBJECTS["deals"].properties(m)
    assert props[:4] == ["hs_object_id", "createdate", "hs_merged_object_ids", "hs_lastmodifieddate"]
    assert {"amount", "deal_currency_code", "dealstage", "pipeline", "closedate"} <= set(props)
    assert [(a.from_type, a.to_type) for a in associations_from("deals")] == [("deals", "contacts"), ("deals", "companies")]
    assert len(ASSOCIATIONS) == 3


def test_custom_mapping_merges_over_default(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"tables": {"customers": {"columns": {"email": "invoice_email", "phone": None},
                                                      "extra_columns": {"customer_number": {"property": "kundenr", "type": "text"}},
                                                      "extra_properties": ["hs_language"]}}}))
    m = load_mapping(p)
    t = m.table("customers")
    assert t.columns["email"] == "invoice_email" and t.columns["phone"] is None and t.columns["city"] == "city"
    assert t.extra_columns["customer_number"].property == "kundenr"
    props = OBJECTS["contacts"].properties(m)
    assert "invoice_email" in props and "kundenr" in props and "hs_language" in props and "phone" not in props


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"tables": {"customers": {"columns": {"emial": "email"}}}}, r"tables\.customers\.columns\.emial: unknown column"),
        ({"tables": {"invoices": {}}}, r"tables\.invoices: unknown table"),
        ({"tables": {"customers": {"extra_columns": {"Bad-Name": "x"}}}}, r"extra_columns\.Bad-Name: column name must match"),
        ({"tables": {"customers": {"extra_columns": {"email": "x"}}}}, r"extra_columns\.email: clashes"),
        ({"tables": {"customers": {"extra_columns": {"n": {"property": "x", "type": "float"}}}}}, r"extra_columns\.n\.type"),
        ({"tables": {"contracts": {"columns": {"amount": "amount; DROP TABLE"}}}}, r"tables\.contracts\.columns\.amount: expected a HubSpot property"),
        ({"version": 2}, r"version: unsupported"),
        ({"tabels": {}}, r"tabels: unknown top-level key"),
    ],
)
def test_invalid_mapping_names_the_key(tmp_path, doc, match):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(MappingError, match=match):
        load_mapping(p)


def test_invalid_json_reports_position(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"tables": ')
    with pytest.raises(MappingError, match="invalid JSON at line 1"):
        load_mapping(p)
