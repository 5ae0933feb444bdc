"""Declarations of the HubSpot object types the sync handles.

Adding an object type is a new :class:`ObjectDecl` entry in :data:`OBJECTS` (plus its table in
``schema.py`` and its mapping section). The extractor imports this module to know what to extract;
the transform and the loader import it to know where rows go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from hubspot_finance.mapping import Mapping


@dataclass(frozen=True)
class AssociationDecl:
    """An association to extract: from one object type to another, and the table it lands in."""

    from_type: str
    to_type: str
    table: str  # finance table holding the current set
    from_column: str  # column holding the from-object's HubSpot id
    to_column: str  # column holding the to-object's HubSpot id
    primary_type_ids: frozenset[int] = frozenset()  # HUBSPOT_DEFINED type ids meaning "primary"

    @property
    def name(self) -> str:
        """Raw-zone dataset name: ``{from}_to_{to}``."""
        return f"{self.from_type}_to_{self.to_type}"


@dataclass(frozen=True)
class ObjectDecl:
    """One HubSpot object type and its finance table."""

    name: str  # HubSpot type name used in API paths: contacts, deals, companies
    type_id: str  # HubSpot object type id: 0-1, 0-3, 0-2
    cursor_property: str  # last-modified property used for incremental search
    table: str  # finance table (mapping section has the same name)
    key_column: str  # primary key column (HubSpot id as text)
    merged_into_column: str  # column pointing at a merge survivor
    # Properties always extracted, whatever the mapping says.
    base_properties: tuple[str, ...] = field(default=())

    def properties(self, mapping: Mapping | None = None) -> list[str]:
        """The property names to request from HubSpot: base properties + everything the mapping uses."""
        from hubspot_finance.mapping import load_mapping

        mapping = mapping if mapping is not None else load_mapping()
        names = list(self.base_properties)
        for prop in mapping.properties_for(self.table):
            if prop not in names:
                names.append(prop)
        return names


_ALWAYS = ("hs_object_id", "createdate", "hs_merged_object_ids")

OBJECTS: dict[str, ObjectDecl] = {
    "companies": ObjectDecl(
        name="companies",
        type_id="0-2",
        cursor_property="hs_lastmodifieddate",
        table="companies",
        key_column="hubspot_company_id",
        merged_into_column="merged_into_company_id",
        base_properties=(*_ALWAYS, "hs_lastmodifieddate"),
    ),
    "contacts": ObjectDecl(
        name="contacts",
        type_id="0-1",
        cursor_property="lastmodifieddate",
        table="customers",
        key_column="hubspot_contact_id",
        merged_into_column="merged_into_contact_id",
        base_properties=(*_ALWAYS, "lastmodifieddate"),
    ),
    "deals": ObjectDecl(
        name="deals",
        type_id="0-3",
        cursor_property="hs_lastmodifieddate",
        table="contracts",
        key_column="hubspot_deal_id",
        merged_into_column="merged_into_deal_id",
        base_properties=(*_ALWAYS, "hs_lastmodifieddate"),
    ),
}

# Order matters only for readability of logs; the load is one transaction.
LOAD_ORDER: tuple[str, ...] = ("companies", "contacts", "deals")

ASSOCIATIONS: tuple[AssociationDecl, ...] = (
    AssociationDecl(
        "deals", "contacts", "contract_contacts", "hubspot_deal_id", "hubspot_contact_id", frozenset()
    ),
    AssociationDecl(
        "deals", "companies", "contract_companies", "hubspot_deal_id", "hubspot_company_id", frozenset({5})
    ),
    AssociationDecl(
        "contacts", "companies", "customer_companies", "hubspot_contact_id", "hubspot_company_id", frozenset({1})
    ),
)


def get_object(name: str) -> ObjectDecl:
    try:
        return OBJECTS[name]
    except KeyError:
        raise KeyError(f"unknown object type {name!r}; known: {sorted(OBJECTS)}") from None


def get_association(from_type: str, to_type: str) -> AssociationDecl:
    for decl in ASSOCIATIONS:
        if decl.from_type == from_type and decl.to_type == to_type:
            return decl
    raise KeyError(f"no association declared from {from_type!r} to {to_type!r}")


def associations_from(object_type: str) -> list[AssociationDecl]:
    """The associations to extract for records of ``object_type``."""
    return [a for a in ASSOCIATIONS if a.from_type == object_type]
