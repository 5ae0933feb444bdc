"""Property-based tests: raw-zone round trips of arbitrary strings (lone surrogates included) and the
SQL identifier rules (schema.quote, the mapping's column names)."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_finance.mapping import MappingError, _default_raw, validate_mapping
from hubspot_finance.rawzone import RawZone
from hubspot_finance.schema import quote

ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=60)  # surrogates and controls too
STRICT_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.none(), ANY_TEXT), min_size=1, max_size=8))
def test_raw_zone_round_trips_any_string(tmp_path, values):
    zone = RawZone((tmp_path / uuid.uuid4().hex).as_uri(), chunk_rows=3)
    writer = zone.record_writer("contacts", "r1", ["firstname"])
    writer.write({"id": str(i), "properties": {"firstname": v}, "updatedAt": "2024-01-01T00:00:00Z"} for i, v in enumerate(values))
    writer.commit()
    got = [r["p:firstname"] for t in zone.iter_tables(zone.records_manifest("contacts", "r1")) for r in t.to_pylist()]
    expected = [None if v is None else re.sub("[\ud800-\udfff]", "\ufffd", v) for v in values]
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=70))
def test_quote_accepts_only_plain_identifiers(name):
    try:
        quoted = quote(name)
    except ValueError:
        assert not STRICT_IDENT.fullmatch(name)
        return
    assert quoted == f'"{name}"'
    assert STRICT_IDENT.fullmatch(name), f"{name!r} was accepted as an SQL identifier"


def test_quote_refuses_a_trailing_newline():
    with pytest.raises(ValueError):
        quote("customers\n")


def test_mapping_refuses_a_column_name_with_a_trailing_newline():
    raw = {"tables": {"customers": {"extra_columns": {"customer_number\n": {"property": "customer_number", "type": "text"}}}}}
    with pytest.raises(MappingError):
        validate_mapping(raw, base=_default_raw())


@settings(max_examples=150, deadline=None)
@given(name=st.text(min_size=1, max_size=40))
def test_mapping_column_names_are_plain_identifiers_or_refused(name):
    raw = {"tables": {"customers": {"extra_columns": {name: {"property": "customer_number", "type": "text"}}}}}
    try:
        mapping = validate_mapping(raw, base=_default_raw())
    except MappingError:
        return
    assert re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name), name
    assert name in repr(mapping.to_dict())
