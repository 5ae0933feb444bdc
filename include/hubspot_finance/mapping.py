"""Which HubSpot property feeds which finance column: the mapping file, loaded and validated.

The file is JSON (``mapping.default.json`` is the default and the documentation by example)::

    {
      "version": 1,
      "tables": {
        "customers": {
          "columns": {"email": "invoice_email", "phone": null},
          "extra_columns": {"customer_number": {"property": "kundenummer", "type": "text"}},
          "extra_properties": ["hs_language"]
        }
      }
    }

- ``tables.<table>.columns`` maps a *fixed* finance column to a HubSpot property name; ``null`` switches
  the column off (it stays NULL). A custom file is merged over the default, so it only names what it
  changes.
- ``extra_columns`` adds columns of the office's own (customer number, invoice e-mail …). Names must
  match ``^[a-z_][a-z0-9_]{0,62}$`` and must not clash with fixed columns; ``type`` is one of
  ``text, number, date, datetime, bool, list`` (``number`` is exact decimal; ``list`` splits a
  multi-select on ``;`` into a JSON list). The loader adds missing extra columns to the table.
- ``extra_properties`` are only extracted (they land in the ``properties`` JSON column).

Validation happens at load time of the file, needs no I/O beyond reading it, and every error names
the offending key (``tables.customers.columns.emial: unknown column …``).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
# HubSpot internal property names: letters, digits, underscores (custom ones are lower-case, but be lenient).
PROPERTY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\Z")
EXTRA_TYPES = ("text", "number", "date", "datetime", "bool", "list")

# Fixed mappable columns per table and their semantic kind (drives parsing and validation).
FIXED_COLUMNS: dict[str, dict[str, str]] = {
    "customers": {
        "email": "email",
        "first_name": "text",
        "last_name": "text",
        "phone": "phone",
        "company_name": "text",
        "address": "text",
        "postal_code": "text",
        "city": "text",
        "country": "text",
        "lifecycle_stage": "text",
        "hubspot_owner_id": "text",
    },
    "companies": {
        "name": "text",
        "domain": "text",
        "organization_number": "orgnr",
        "address": "text",
        "postal_code": "text",
        "city": "text",
        "country": "text",
    },
    "contracts": {
        "deal_name": "text",
        "amount": "money",
        "currency": "currency",
        "amount_home_currency": "money_lenient",
        "pipeline_id": "text",
        "stage_id": "text",
        "close_date": "close_date",
        "hubspot_owner_id": "text",
    },
}

# Columns every entity table has besides the mappable ones (extra column names must avoid them too).
RESERVED_COLUMNS = frozenset(
    {
        "hubspot_contact_id", "hubspot_company_id", "hubspot_deal_id", "created_at", "updated_at",
        "is_deleted", "deleted_at", "deletion_kind", "merged_into_contact_id", "merged_into_company_id",
        "merged_into_deal_id", "properties", "synced_at", "sync_run_id", "validation_warnings",
        "pipeline_label", "stage_label", "is_closed", "is_won", "primary_company_id",
    }
)


class MappingError(ValueError):
    """The mapping file is invalid; the message names the offending key."""


@dataclass(frozen=True)
class ExtraColumn:
    name: str
    property: str
    type: str


@dataclass(frozen=True)
class TableMapping:
    table: str
    columns: dict[str, str | None]
    extra_columns: dict[str, ExtraColumn] = field(default_factory=dict)
    extra_properties: tuple[str, ...] = ()

    def properties(self) -> list[str]:
        out: list[str] = []
        for prop in [*self.columns.values(), *(c.property for c in self.extra_columns.values()), *self.extra_properties]:
            if prop and prop not in out:
                out.append(prop)
        return out


@dataclass(frozen=True)
class Mapping:
    tables: dict[str, TableMapping]
    source: str = "<default>"

    def table(self, name: str) -> TableMapping:
        return self.tables[name]

    def properties_for(self, table: str) -> list[str]:
        return self.tables[table].properties()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "tables": {
                t: {
                    "columns": dict(m.columns),
                    "extra_columns": {c.name: {"property": c.property, "type": c.type} for c in m.extra_columns.values()},
                    "extra_properties": list(m.extra_properties),
                }
                for t, m in self.tables.items()
            },
        }


def _default_raw() -> dict[str, Any]:
    text = resources.files("hubspot_finance").joinpath("mapping.default.json").read_text(encoding="utf-8")
    return json.loads(text)


def _check_property(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not PROPERTY_RE.match(value):
        raise MappingError(f"{where}: expected a HubSpot property name or null, got {value!r}")
    return value


def validate_mapping(raw: Any, *, source: str = "<mapping>", base: dict[str, Any] | None = None) -> Mapping:
    """Validate a parsed mapping document (merged over ``base``) and return a :class:`Mapping`."""
    if not isinstance(raw, dict):
        raise MappingError(f"{source}: the mapping must be a JSON object, got {type(raw).__name__}")
    for key in raw:
        if key not in ("version", "tables") and not key.startswith("$"):
            raise MappingError(f"{source}: {key}: unknown top-level key (expected version, tables)")
    if raw.get("version", 1) != 1:
        raise MappingError(f"{source}: version: unsupported mapping version {raw.get('version')!r} (expected 1)")
    tables_raw = raw.get("tables", {})
    if not isinstance(tables_raw, dict):
        raise MappingError(f"{source}: tables: expected an object")
    merged = copy.deepcopy(base["tables"]) if base else {t: {} for t in FIXED_COLUMNS}
    for tname, traw in tables_raw.items():
        if tname not in FIXED_COLUMNS:
            raise MappingError(f"{source}: tables.{tname}: unknown table (expected one of {sorted(FIXED_COLUMNS)})")
        if not isinstance(traw, dict):
            raise MappingError(f"{source}: tables.{tname}: expected an object")
        for key in traw:
            if key not in ("columns", "extra_columns", "extra_properties") and not key.startswith("$"):
                raise MappingError(f"{source}: tables.{tname}.{key}: unknown key (expected columns, extra_columns, extra_properties)")
        dst = merged.setdefault(tname, {})
        if "columns" in traw:
            if not isinstance(traw["columns"], dict):
                raise MappingError(f"{source}: tables.{tname}.columns: expected an object")
            dst.setdefault("columns", {}).update(traw["columns"])
        if "extra_columns" in traw:
            if not isinstance(traw["extra_columns"], dict):
                raise MappingError(f"{source}: tables.{tname}.extra_columns: expected an object")
            dst.setdefault("extra_columns", {}).update(traw["extra_columns"])
        if "extra_properties" in traw:
            if not isinstance(traw["extra_properties"], list):
                raise MappingError(f"{source}: tables.{tname}.extra_properties: expected a list")
            dst["extra_properties"] = list(dict.fromkeys([*dst.get("extra_properties", []), *traw["extra_properties"]]))

    tables: dict[str, TableMapping] = {}
    for tname, fixed in FIXED_COLUMNS.items():
        traw = merged.get(tname, {})
        cols: dict[str, str | None] = {c: None for c in fixed}
        for col, prop in traw.get("columns", {}).items():
            if col not in fixed:
                raise MappingError(
                    f"{source}: tables.{tname}.columns.{col}: unknown column (mappable: {', '.join(fixed)})"
                )
            cols[col] = _check_property(prop, f"{source}: tables.{tname}.columns.{col}")
        extras: dict[str, ExtraColumn] = {}
        for name, spec in traw.get("extra_columns", {}).items():
            where = f"{source}: tables.{tname}.extra_columns.{name}"
            if not isinstance(name, str) or not IDENTIFIER_RE.match(name):
                raise MappingError(f"{where}: column name must match {IDENTIFIER_RE.pattern}")
            if name in fixed or name in RESERVED_COLUMNS:
                raise MappingError(f"{where}: clashes with a fixed column")
            if isinstance(spec, str):
                spec = {"property": spec}
            if not isinstance(spec, dict):
                raise MappingError(f"{where}: expected {{\"property\": ..., \"type\": ...}} or a property name")
            unknown = set(spec) - {"property", "type"}
            if unknown:
                raise MappingError(f"{where}.{sorted(unknown)[0]}: unknown key (expected property, type)")
            prop = _check_property(spec.get("property"), f"{where}.property")
            if prop is None:
                raise MappingError(f"{where}.property: required")
            ctype = spec.get("type", "text")
            if ctype not in EXTRA_TYPES:
                raise MappingError(f"{where}.type: {ctype!r} is not one of {', '.join(EXTRA_TYPES)}")
            extras[name] = ExtraColumn(name, prop, ctype)
        props = []
        for i, prop in enumerate(traw.get("extra_properties", [])):
            p = _check_property(prop, f"{source}: tables.{tname}.extra_properties[{i}]")
            if p is None:
                raise MappingError(f"{source}: tables.{tname}.extra_properties[{i}]: null is not a property")
            props.append(p)
        tables[tname] = TableMapping(tname, cols, extras, tuple(props))
    return Mapping(tables, source)


_DEFAULT: Mapping | None = None


def load_mapping(path: str | Path | None = None) -> Mapping:
    """Load and validate a mapping file merged over the default; ``None`` gives the default mapping."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = validate_mapping(_default_raw(), source="mapping.default.json")
    if path is None:
        return _DEFAULT
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"{path}: mapping file not found") from None
    except json.JSONDecodeError as exc:
        raise MappingError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return validate_mapping(raw, source=str(path), base=_default_raw())
