"""The proof: after every quiet scheduled run the finance tables equal HubSpot.

A hypothesis ``RuleBasedStateMachine`` interleaves random CRM edits in the local HubSpot sandbox
(create, edit, bulk edits stamped in one millisecond, archive, restore, merges and merge chains,
permanent deletes, association edits that touch no last-modified time, a deal's primary company,
edits in the middle of a scan, transient 207s) with runs through the real task bodies (plan →
extract_reference → extract_* → load, as the DAG runs them): scheduled runs, id sweeps, full
refreshes, manual ranges, dry runs, and a replay of an older run's load.

Checked:

- after every quiet scheduled run, sweep and full refresh: the whole invariant (:func:`violations`) —
  live rows and their values, archived rows with their last values, merges, permanent deletes (once
  a sweep ran after them), the three link tables, ``primary_company_id``;
- after every run that loads: ``contract_changes`` is exactly the chain of the values the loads
  stored (:func:`change_violations`), and no row names an id HubSpot never had;
- a dry run leaves every table as it was; replaying an older run's load changes nothing.

Each example starts from a reset sandbox (3 records per type, or 230 contacts when the example may
stamp more than 200 records with one millisecond; the seeded deals made valid), the sandbox clock frozen at ``h.T0`` and a fresh
finance database (SQLite file or PostgreSQL schema). ``make test`` runs 12 examples of 20 steps per
database (about half a minute each); ``HUBSPOT_SYNC_STATE_MACHINE_EXAMPLES=2000`` (and
``HUBSPOT_SYNC_STATE_MACHINE_STEPS=40``) runs thousands, without the pytest timeout.
``HUBSPOT_SYNC_STATE_MACHINE_SHRINK=0`` reports a failure as found, without the (up to 5 minute) shrinking.
A failure prints the steps (with the CRM edits and runs logged under them) and one line per difference.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

import reliability_harness as h
from hubspot_finance.validation import format_decimal
from hubspot_sandbox import schema as sandbox_schema
from hubspot_sandbox.testing import run_sandbox
from hubspot_sandbox.truth import portal_truth

EXAMPLES_ENV, STEPS_ENV = "HUBSPOT_SYNC_STATE_MACHINE_EXAMPLES", "HUBSPOT_SYNC_STATE_MACHINE_STEPS"
SHRINK_ENV = "HUBSPOT_SYNC_STATE_MACHINE_SHRINK"
EXAMPLES = int(os.environ.get(EXAMPLES_ENV, "12"))
STEPS = int(os.environ.get(STEPS_ENV, "20"))
LONG = EXAMPLES_ENV in os.environ or STEPS_ENV in os.environ

SEED = 23
SMALL, BIG = 3, 230  # seeded records per type; BIG contacts allow one bulk edit of > 200 records
MAX_CREATED = 30  # records the machine creates per type and example
WIDE_EXTRA_PROPERTIES = 120  # with HUBSPOT_SYNC_EXTRA_PROPERTIES=all: too long for a search body → batch read

TYPES = ("contacts", "companies", "deals")
TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
PAIRS = (("deals", "contacts"), ("deals", "companies"), ("contacts", "companies"))
# object type → (table, key column, merged-into column)
TABLES = {"contacts": ("customers", "hubspot_contact_id", "merged_into_contact_id"),
          "companies": ("companies", "hubspot_company_id", "merged_into_company_id"),
          "deals": ("contracts", "hubspot_deal_id", "merged_into_deal_id")}
# (from, to) → (link table, from column, to column)
LINKS = {("deals", "contacts"): ("contract_contacts", "hubspot_deal_id", "hubspot_contact_id"),
         ("deals", "companies"): ("contract_companies", "hubspot_deal_id", "hubspot_company_id"),
         ("contacts", "companies"): ("customer_companies", "hubspot_contact_id", "hubspot_company_id")}
CHANGE_FIELDS = ("amount", "currency", "stage_id", "close_date", "is_deleted")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_LINES = 60
STATS: Counter = Counter()  # what the examples did, printed at the end of the test (pytest -s)
TIMES: Counter = Counter()  # seconds spent, by what


# ================================================================ valid CRM data
FIRST = ("Åsne", "Ola", "Kari", "Øystein", "Siri", "Håkon", "Ingrid", "Per", "Liv", "Bjørn")
LAST = ("Ødegård", "Hansen", "Nordmann", "Bråten", "Løken", "Sæther", "Dahl", "Berg", "Lie", "Haugen")
CITIES = ("Oslo", "Bergen", "Trondheim", "Kristiansand", "Tromsø", "Bodø", "Ålesund", "Stavanger")
STREETS = ("Storgata", "Kirkeveien", "Fjordveien", "Bryggen", "Skolegata")
STAGES = [(pid, stage[0]) for pid, _label, stages in sandbox_schema.PIPELINES for stage in stages]


def orgnr(n: int) -> str | None:
    """A valid Norwegian organisation number from 8 digits (None when no check digit exists)."""
    digits = [int(c) for c in f"{n:08d}"]
    check = 11 - sum(d * w for d, w in zip(digits, (3, 2, 7, 6, 5, 4, 3, 2))) % 11
    check = 0 if check == 11 else check
    return None if check == 10 else f"{n:08d}{check}"


def amount_text(cents: int, style: str) -> str:
    """A plain decimal, written as people write it: ``1250.50``, ``1250.5`` or ``1250.500``."""
    value = Decimal(cents).scaleb(-2)
    if style == "2":
        return f"{value:.2f}"
    if style == "3":
        return f"{value:.3f}"
    return canonical_decimal(value)


def _stage(d: dict) -> dict:
    d = dict(d)
    pair = d.pop("_stage", None)
    if pair:
        d["pipeline"], d["dealstage"] = pair
    return d


text = st.sampled_from
email = st.builds(lambda a, n, d: f"{a}{n}@{d}", text(("kari.nordmann", "ola", "post", "faktura", "a.b-c")),
                  st.integers(0, 99), text(("eksempel.no", "firma.no", "regnskap.com")))
phone = st.builds(lambda p, n: f"{p}{n}", text(("+47 ", "", "0047")), st.integers(20_000_000, 99_999_999))
zip_code = st.integers(0, 9999).map(lambda n: f"{n:04d}")
address = st.builds(lambda s, n: f"{s} {n}", text(STREETS), st.integers(1, 120))
company_name = st.builds(lambda a, b: f"{a}{b}", text(("Fjord", "Nord", "Vest", "Berg", "Havn")),
                         text(("regnskap AS", "bygg AS", "fisk AS", "data ASA", " Rådgivning ANS")))
org_number = st.integers(80_000_000, 99_999_999).map(orgnr).filter(bool)
amount = st.builds(amount_text, st.integers(-50_000, 5_000_000), text(("2", "min", "3")))
close_date = st.builds(lambda d, hh: f"{d.isoformat()}T{hh:02d}:00:00.000Z",
                       st.dates(date(2025, 1, 1), date(2027, 12, 31)), st.integers(0, 23))
owner = text(sandbox_schema.OWNER_IDS)

CONTACT_OPTIONAL = {
    "email": email, "firstname": text(FIRST), "lastname": text(LAST), "phone": st.none() | phone,
    "company": company_name, "address": address, "zip": zip_code, "city": st.none() | text(CITIES),
    "country": text(("Norge", "Norway", "Sverige")), "lifecyclestage": text(sandbox_schema.LIFECYCLE),
    "hubspot_owner_id": owner, "jobtitle": text(("Regnskapsfører", "Daglig leder", "Økonomisjef")),
}
COMPANY_OPTIONAL = {
    "name": company_name, "domain": st.builds(lambda a, n: f"{a}{n}.no", text(("fjord", "nord", "vest")), st.integers(0, 99)),
    "org_number": st.none() | org_number, "address": address, "zip": zip_code, "city": text(CITIES),
    "country": text(("Norge", "Norway")), "phone": phone, "industry": text(sandbox_schema.INDUSTRIES),
    "numberofemployees": st.integers(1, 500).map(str),
}
DEAL_OPTIONAL = {
    "dealname": st.builds(lambda a, n: f"{a} {n}", text(("Årsoppgjør", "Regnskap", "Lønn", "Rådgivning")), st.integers(2024, 2027)),
    "amount": st.none() | amount, "deal_currency_code": text(("NOK", "EUR", "SEK")), "_stage": text(STAGES),
    "closedate": st.none() | close_date, "hubspot_owner_id": owner, "dealtype": text(sandbox_schema.DEALTYPES),
    "description": text(("Fast månedspris", "Timebasert", "Engangsoppdrag")),
    "invoice_reference": st.integers(10_000, 99_999).map(lambda n: f"F-{n}"),
}
CREATE = {
    "contacts": st.fixed_dictionaries(
        {"email": email, "firstname": text(FIRST), "lastname": text(LAST)},
        optional={k: v for k, v in CONTACT_OPTIONAL.items() if k not in ("email", "firstname", "lastname")}),
    "companies": st.fixed_dictionaries({"name": company_name, "domain": COMPANY_OPTIONAL["domain"]},
                                       optional={k: v for k, v in COMPANY_OPTIONAL.items() if k not in ("name", "domain")}),
    "deals": st.fixed_dictionaries({"dealname": DEAL_OPTIONAL["dealname"], "amount": amount,
                                    "deal_currency_code": DEAL_OPTIONAL["deal_currency_code"], "_stage": text(STAGES),
                                    "closedate": close_date},
                                   optional={k: DEAL_OPTIONAL[k] for k in ("hubspot_owner_id", "dealtype", "description")}).map(_stage),
}
EDIT = {
    "contacts": st.fixed_dictionaries({}, optional=CONTACT_OPTIONAL).filter(bool),
    "companies": st.fixed_dictionaries({}, optional=COMPANY_OPTIONAL).filter(bool),
    "deals": st.fixed_dictionaries({}, optional=DEAL_OPTIONAL).filter(bool).map(_stage),
}
# One property for every record of a bulk job (no derived deal property: bulk_touch does not recompute them).
BULK = {
    "contacts": st.one_of(st.builds(lambda c: {"city": c}, text(CITIES)),
                          st.builds(lambda s: {"lifecyclestage": s}, text(sandbox_schema.LIFECYCLE))),
    "companies": st.one_of(st.builds(lambda c: {"city": c}, text(CITIES)),
                           st.builds(lambda i: {"industry": i}, text(sandbox_schema.INDUSTRIES))),
    "deals": st.one_of(st.builds(lambda d: {"description": d}, DEAL_OPTIONAL["description"]),
                       st.builds(lambda o: {"hubspot_owner_id": o}, owner)),
}
ADVANCE = st.integers(1, 120_000)  # ms the sandbox clock moves before a CRM edit


# ================================================================ normalisation
def canonical_decimal(value: Any) -> str | None:
    """The canonical text of a decimal: no exponent, no trailing fraction zeros, no ``-0``."""
    if value is None:
        return None
    try:
        return format_decimal(Decimal(str(value).strip()))  # unit-tested on its own in test_validation.py
    except InvalidOperation:
        return str(value)


def change_text(field: str, value: Any) -> str | None:
    """A stored value as ``contract_changes`` writes it."""
    value = h._norm(field, value)
    if value is None:
        return None
    if field == "amount":
        return canonical_decimal(value)
    if field == "is_deleted":
        return "true" if value else "false"
    return str(value)[:10] if field == "close_date" else str(value)


def iso_ms(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=int(ms))).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def moment(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


def _fmt(lines: list[str]) -> str:
    more = f"\n  … and {len(lines) - MAX_LINES} more" if len(lines) > MAX_LINES else ""
    return "\n  " + "\n  ".join(lines[:MAX_LINES]) + more


# ================================================================ the invariant
def extracted_names(sb, extra_all: bool) -> dict[str, list[str]]:
    """The property list each run extracts: the mapping's (objects.py), plus every defined one with ``all``."""
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object

    mapping = load_mapping()
    out = {}
    for otype in TYPES:
        names = get_object(otype).properties(mapping)
        if extra_all:
            names = [*names, *sb.portal.store(otype).props]
        out[otype] = list(dict.fromkeys(names))
    return out


def unknowable(truth: dict, otype: str, rid: str, swept: set) -> bool:
    """A permanent delete no sweep has looked for yet: HubSpot hides it (and the merges into it) entirely."""
    rec = truth[otype].get(rid)
    if rec is None:
        return False
    if rec["status"] == "purged":
        return (otype, rid) not in swept
    if rec["status"] == "merged" and truth[otype][rec["merged_into"]]["status"] == "purged":
        return (otype, rec["merged_into"]) not in swept
    return False


def entity_rows(target: h.Target, otype: str) -> dict[str, dict]:
    table, key, _ = TABLES[otype]
    return {str(r[key]): {k: h._norm(k, v) for k, v in r.items()} for r in target.query(f"SELECT * FROM {{s}}{table}")}


def link_rows(target: h.Target, pair: tuple[str, str]) -> dict[str, dict[str, bool]]:
    table, from_col, to_col = LINKS[pair]
    out: dict[str, dict[str, bool]] = defaultdict(dict)
    for r in target.query(f"SELECT {from_col} AS f, {to_col} AS t, is_primary AS p FROM {{s}}{table}"):
        out[str(r["f"])][str(r["t"])] = bool(r["p"])
    return dict(out)


def _links_text(links: dict[str, bool]) -> str:
    return "{" + ", ".join(f"{k}{' (primary)' if p else ''}" for k, p in sorted(links.items(), key=lambda kv: int(kv[0]))) + "}"


def violations(target: h.Target, truth: dict, names: dict[str, list[str]], swept: set) -> list[str]:
    """Every way the finance tables differ from HubSpot (``truth = portal_truth(...)``), one line each.

    ``swept``: (type, id) of the permanent deletes a sweep or full refresh has run after; other purged
    records (and records merged into them) are not checked, as HubSpot shows them nowhere."""
    out: list[str] = []
    for otype in TYPES:
        table, _key, merged_col = TABLES[otype]
        rows, recs = entity_rows(target, otype), truth[otype]
        for rid in sorted(set(rows) - set(recs), key=int):
            out.append(f"{table}[{rid}]: a row for an id HubSpot never had")
        for rid, rec in sorted(recs.items(), key=lambda kv: int(kv[0])):
            row, status = rows.get(rid), rec["status"]
            where = f"{table}[{rid}] ({status} in HubSpot)"
            if unknowable(truth, otype, rid, swept):
                continue
            expect: dict[str, Any]
            if status in ("live", "archived"):
                if row is None:
                    out.append(f"{where}: no row")
                    continue
                deleted = status == "archived"
                expect = {"is_deleted": deleted, "deletion_kind": "archived" if deleted else None, merged_col: None,
                          "updated_at": iso_ms(rec["updated_at_ms"])}
                if not deleted:
                    expect["deleted_at"] = None
                out += _compare(where, row, expect)
                out += _compare_properties(where, row.get("properties"), rec["properties"], names[otype])
                if otype == "deals":
                    out += _compare_deal_columns(where, row, rec["properties"])
            elif status == "merged":
                if row is None:
                    continue  # merged away before any run saw it
                survivor = rec["merged_into"]
                if truth[otype][survivor]["status"] == "purged":  # swept: the merge may be invisible now
                    if not row["is_deleted"] or row["deletion_kind"] not in ("merged", "permanent"):
                        out.append(f"{where}: merged into {survivor}, which is permanently deleted: expected a deleted row "
                                   f"(merged or permanent), got is_deleted={row['is_deleted']}, deletion_kind={row['deletion_kind']!r}")
                    continue
                out += _compare(where, row, {"is_deleted": True, "deletion_kind": "merged", merged_col: survivor})
            elif status == "purged" and row is not None:
                out += _compare(where, row, {"is_deleted": True, "deletion_kind": "permanent"})
    for pair in PAIRS:
        table, from_col, _to_col = LINKS[pair]
        got, expected, froms = link_rows(target, pair), truth[pair], truth[pair[0]]
        for fid in sorted(set(got) | set(expected), key=int):
            if fid in expected:
                if got.get(fid, {}) != expected[fid]:
                    out.append(f"{table}[{from_col}={fid}]: expected {_links_text(expected[fid])}, got {_links_text(got.get(fid, {}))}")
            elif not unknowable(truth, pair[0], fid, swept):
                status = froms[fid]["status"] if fid in froms else "never existed"
                out.append(f"{table}[{from_col}={fid}] ({status} in HubSpot): expected no links, got {_links_text(got[fid])}")
    deals = entity_rows(target, "deals")
    for deal, companies in sorted(truth[("deals", "companies")].items(), key=lambda kv: int(kv[0])):
        primaries = [c for c, p in companies.items() if p]
        want = min(primaries, key=int) if primaries else None
        if deal in deals and deals[deal]["primary_company_id"] != want:
            out.append(f"contracts[{deal}] primary_company_id: expected {want!r}, got {deals[deal]['primary_company_id']!r}")
    return out


def _compare(where: str, row: dict, expect: dict) -> list[str]:
    return [f"{where} {col}: expected {want!r}, got {row.get(col)!r}" for col, want in expect.items() if row.get(col) != want]


def _compare_properties(where: str, stored: Any, truth: dict, names: list[str]) -> list[str]:
    if not isinstance(stored, dict):
        return [f"{where} properties: expected a JSON object, got {stored!r}"]
    out = []
    for name in names:
        if name not in stored:
            out.append(f"{where} properties[{name!r}]: missing (HubSpot: {truth.get(name)!r})")
        elif stored[name] != truth.get(name):
            out.append(f"{where} properties[{name!r}]: expected {truth.get(name)!r}, got {stored[name]!r}")
    extra = sorted(set(stored) - set(names))
    if extra:
        out.append(f"{where} properties: keys that are not extracted: {extra[:10]}")
    return out


def _compare_deal_columns(where: str, row: dict, props: dict) -> list[str]:
    expect = {"amount": canonical_decimal((props.get("amount") or "").strip() or None),
              "currency": (props.get("deal_currency_code") or "").strip().upper() or "NOK",
              "stage_id": (props.get("dealstage") or "").strip() or None}
    got = {"amount": canonical_decimal(row.get("amount")), "currency": row.get("currency"), "stage_id": row.get("stage_id")}
    return [f"{where} {col}: expected {want!r}, got {got[col]!r}" for col, want in expect.items() if got[col] != want]


def change_violations(target: h.Target, observed: dict[str, dict[str, list]]) -> list[str]:
    """``contract_changes`` must be exactly the changes between the values the loads stored, in order."""
    got: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for r in target.query("SELECT hubspot_deal_id, field, old_value, new_value FROM {s}contract_changes ORDER BY id"):
        got[(str(r["hubspot_deal_id"]), r["field"])].append((r["old_value"], r["new_value"]))
    out = []
    keys = set(got) | {(d, f) for d, fields in observed.items() for f, seq in fields.items() if len(seq) > 1}
    for deal, field in sorted(keys, key=lambda k: (int(k[0]), k[1])):
        seq = observed.get(deal, {}).get(field, [])
        want = list(zip(seq[:-1], seq[1:]))
        if got.get((deal, field), []) != want:
            out.append(f"contract_changes[{deal}].{field}: stored values went {' → '.join(map(repr, seq)) or '(never loaded)'}; "
                       f"expected rows (old, new) {want}, got {got.get((deal, field), [])}")
    return out


def keyed(snapshot: dict[str, list[dict]]) -> dict[str, dict]:
    """``Target.snapshot()`` by table and row key, for a readable diff."""
    keys = {"customers": ("hubspot_contact_id",), "companies": ("hubspot_company_id",), "contracts": ("hubspot_deal_id",),
            "contract_contacts": ("hubspot_deal_id", "hubspot_contact_id"),
            "contract_companies": ("hubspot_deal_id", "hubspot_company_id"),
            "customer_companies": ("hubspot_contact_id", "hubspot_company_id"), "sync_state": ("object_type",)}
    out = {}
    for table in h.DATA_TABLES:
        rows = snapshot.get(table, [])
        by: dict[str, dict] = {}
        for r in rows:
            k = "/".join(str(r.get(c)) for c in keys[table]) if table in keys else json.dumps(r, sort_keys=True, default=str)
            while k in by:
                k += "'"
            by[k] = r
        out[table] = by
    return out


def snapshot_diff(before: dict, after: dict) -> list[str]:
    b, a = keyed(before), keyed(after)
    out = []
    for table in h.DATA_TABLES:
        for k in sorted(set(b[table]) | set(a[table])):
            old, new = b[table].get(k), a[table].get(k)
            if old == new:
                continue
            if old is None:
                out.append(f"{table}[{k}]: added {new}")
            elif new is None:
                out.append(f"{table}[{k}]: removed (was {old})")
            else:
                cols = sorted(c for c in set(old) | set(new) if old.get(c) != new.get(c))
                out.append(f"{table}[{k}]: " + "; ".join(f"{c} {old.get(c)!r} → {new.get(c)!r}" for c in cols))
    return out


# ================================================================ the machine
class SyncMachine(RuleBasedStateMachine):
    """Configured per test by a subclass: ``sb`` (sandbox), ``kind`` (sqlite|postgres), ``dsn``, ``root``."""

    sb: Any = None
    kind = "sqlite"
    dsn: str | None = None
    root: Path = Path(tempfile.gettempdir())

    def __init__(self) -> None:
        super().__init__()
        self.ready = False
        self.mp = pytest.MonkeyPatch()
        self.tmp: str | None = None
        self.target: h.Target | None = None
        self.clock = h.T0
        self.n_runs = 0
        self.created = dict.fromkeys(TYPES, 0)
        self.runs: list[tuple[str, dict, dict, dict]] = []  # (run_id, planned, reference, manifests) of loads
        self.observed: dict[str, dict[str, list]] = {}  # deal → field → distinct successive stored values
        self.swept: set[tuple[str, str]] = set()
        self.big_done = False

    # ------------------------------------------------------------ set-up and clean-up
    @initialize(extra_all=st.integers(0, 2).map(lambda i: i == 2), big=st.integers(0, 3).map(lambda i: i == 3),
                empty_as_error=st.booleans())
    def setup(self, extra_all: bool, big: bool, empty_as_error: bool) -> None:
        """Fresh sandbox data, frozen clock, fresh finance database, the sync's environment."""
        self.extra_all, self.big = extra_all, big
        sb, control = self.sb, self.sb.control
        control.clear_faults()
        control.clear_triggers()
        control.set_limits(enabled=False, reset_counters=True)
        control.configure(search_lag_ms=0, association_empty_as_error=empty_as_error, touch_on_associate=False)
        control.reset(seed=SEED, contacts=BIG if big else SMALL, companies=SMALL, deals=SMALL,
                      extra_properties=WIDE_EXTRA_PROPERTIES if extra_all else 5)
        control.freeze_clock(h.T0)
        control.reset_stats()
        for deal in self.ids("deals", "any"):  # the seed's deals may carry invalid amounts: make them valid
            control.modify("deals", deal, {"amount": "1000.00", "deal_currency_code": "NOK", "pipeline": "default",
                                           "dealstage": "qualifiedtobuy", "closedate": "2026-10-01T10:00:00.000Z"},
                           at_ms=h.T0 - 86_400_000)
        self.tmp = tempfile.mkdtemp(prefix="sm-", dir=self.root)
        if self.kind == "sqlite":
            self.target = h.Target("sqlite", os.path.join(self.tmp, "finance.db"))
        else:
            self.target = h.Target("postgres", self.dsn, f"sm_{uuid.uuid4().hex[:10]}")
        for key in [k for k in os.environ if k.startswith("HUBSPOT_SYNC_")]:  # the proof is of the defaults
            if not key.startswith(("HUBSPOT_SYNC_TEST_", "HUBSPOT_SYNC_STATE_MACHINE_", "HUBSPOT_SYNC_REQUIRE_")):
                self.mp.delenv(key)
        env = h.env_for(sb.url, sb.token, self.target, Path(self.tmp, "raw").as_uri())
        for key, value in env.items():
            self.mp.setenv(key, value)
        if extra_all:  # every defined property: too long for a search body, so changes are read by batch read
            self.mp.setenv("HUBSPOT_SYNC_EXTRA_PROPERTIES", "all")
        import hubspot_finance.pipeline as pipeline

        self.mp.setattr(pipeline, "hubspot_hook", pipeline.hubspot_hook)  # restored by undo()
        h.fast_hooks()
        self.names = extracted_names(sb, extra_all)
        self.ready = True
        note(f"setup: {self.kind}, contacts {BIG if big else SMALL}, extra properties "
             f"{'all (' + str(WIDE_EXTRA_PROPERTIES) + ' custom)' if extra_all else 'none'}, "
             f"association_empty_as_error={empty_as_error}")

    def teardown(self) -> None:
        try:
            if self.ready and sys.exc_info()[0] is None:  # no step failed (teardown runs in a finally)
                self._run("final", {}, quiet=True)  # every example ends with a checked quiet run
        finally:
            self.sb.control.clear_faults()
            self.sb.control.clear_triggers()
            self.mp.undo()
            if self.target is not None and self.target.kind == "postgres":
                import psycopg

                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{self.target.schema}" CASCADE')
            if self.tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ sandbox helpers
    def ids(self, otype: str, status: str) -> list[str]:
        """Ids of ``otype`` by state: live, archived, deletable (live or archived), any."""
        s = self.sb.portal.store(otype)
        n = s.n
        mask = {"live": lambda: s.active_mask(), "archived": lambda: s.archived_mask(),
                "deletable": lambda: (s.merged[:n] == 0) & (s.purged[:n] == 0),
                "any": lambda: np.ones(n, dtype=bool)}[status]()
        return [str(s.base + int(i)) for i in np.flatnonzero(mask)]

    def tick(self, ms: int) -> int:
        self.clock += int(ms)
        self.sb.control.freeze_clock(self.clock)
        return self.clock

    def at_least(self, ms: int) -> None:
        """Never let the clock fall behind a stamp already used (HubSpot's times only move forward)."""
        if ms > self.clock:
            self.clock = ms
            self.sb.control.freeze_clock(ms)

    def op(self, what: str) -> None:
        """Log a CRM edit (printed with a failing example) and count it."""
        STATS[what.split()[0]] += 1
        note(f"t={self.clock}: {what}")

    # ------------------------------------------------------------ running the sync, checking the tables
    def _run(self, label: str, params: dict, *, quiet: bool = False, sweep: bool = False) -> dict:
        """One run through the real task bodies at ``now`` = clock + 1 ms; then the clock moves past it."""
        self.n_runs += 1
        STATS[f"run:{label}"] += 1
        run_id = f"{label}-{self.n_runs}"
        now_ms = self.clock + 1
        note(f"t={now_ms}: run {run_id} {params or ''}")
        started = time.perf_counter()
        planned = h.plan(run_id, moment(now_ms), params)
        planned = planned.to_xcom() if hasattr(planned, "to_xcom") else planned  # what XCom hands the tasks
        reference, manifests = h.extract_all(planned, run_id)
        kept = copy.deepcopy((planned, reference, manifests))  # what XCom keeps for a later clear of the load task
        summary = h.load_task(planned, reference, manifests, run_id)
        TIMES["runs" + (" (wide)" if self.extra_all else "")] += time.perf_counter() - started
        self.at_least(now_ms + 1)
        if not planned.get("dry_run"):
            self.runs.append((run_id, *kept))
            self.after_load(run_id, summary)
        if quiet:
            if sweep:  # every permanent delete so far happened before this sweep started
                truth = portal_truth(self.sb.portal, {})
                self.swept |= {(t, rid) for t in TYPES for rid, rec in truth[t].items() if rec["status"] == "purged"}
            self.check(f"after quiet run {run_id} {params or ''}")
        return summary

    def after_load(self, run_id: str, summary: dict) -> None:
        """What holds after any load: no rejects (the machine's data is valid), exact contract_changes."""
        rejected = {o: (s or {}).get("rejected") for o, s in (summary.get("objects") or {}).items() if (s or {}).get("rejected")}
        if rejected:
            reasons = self.target.query("SELECT object_type, hubspot_id, reasons FROM {s}rejected_records")
            raise AssertionError(f"run {run_id} rejected records the machine made valid: {rejected}{_fmt([str(r) for r in reasons])}")
        for r in self.target.query("SELECT * FROM {s}contracts"):
            fields = self.observed.setdefault(str(r["hubspot_deal_id"]), {f: [] for f in CHANGE_FIELDS})
            for f in CHANGE_FIELDS:
                value = change_text(f, r[f])
                if not fields[f] or fields[f][-1] != value:
                    fields[f].append(value)
        problems = change_violations(self.target, self.observed)
        truth = portal_truth(self.sb.portal, {})
        for otype in TYPES:
            table = TABLES[otype][0]
            problems += [f"{table}[{rid}]: a row for an id HubSpot never had"
                         for rid in sorted(set(entity_rows(self.target, otype)) - set(truth[otype]), key=int)]
        if problems:
            raise AssertionError(f"after run {run_id}:{_fmt(problems)}")

    def check(self, when: str) -> None:
        STATS["invariant checks"] += 1
        started = time.perf_counter()
        truth = portal_truth(self.sb.portal, self.names)
        problems = violations(self.target, truth, self.names, self.swept)
        TIMES["checks"] += time.perf_counter() - started
        if problems:
            raise AssertionError(f"the finance tables differ from HubSpot {when}:{_fmt(problems)}")

    def snapshot(self) -> dict:
        return self.target.snapshot() if self.target.exists() else {}

    def types_with(self, status: str, n: int = 1) -> list[str]:
        return [t for t in TYPES if len(self.ids(t, status)) >= n]

    # ------------------------------------------------------------ runs
    @precondition(lambda self: self.ready)
    @rule()
    def scheduled_run(self) -> None:
        """The nightly run: quiet, so checked."""
        self._run("scheduled", {}, quiet=True)

    @precondition(lambda self: self.ready)
    @rule()
    def sweep_run(self) -> None:
        """A run with the id sweep: checked, permanent deletes included."""
        self._run("sweep", {"reconcile": True}, quiet=True, sweep=True)

    @precondition(lambda self: self.ready)
    @rule(reconcile=st.booleans())
    def full_refresh_run(self, reconcile: bool) -> None:
        """A full refresh re-reads everything and also sweeps (with or without the reconcile flag): checked."""
        self._run("full", {"full_refresh": True, **({"reconcile": True} if reconcile else {})}, quiet=True, sweep=True)

    @precondition(lambda self: self.ready)
    @rule(kind=st.sampled_from(("range", "dry", "replay")), data=st.data())
    def other_run(self, kind: str, data) -> None:
        """- ``range``: a manual re-sync of a past range only re-reads its range: not checked, nothing may break;
        - ``dry``: a dry run (of a scheduled run, a full refresh or a sweep) leaves every table as it was;
        - ``replay``: an older run's load runs again (its task cleared): it may change nothing, in particular
          make nothing older."""
        if kind == "range":
            start = self.clock - data.draw(st.integers(0, 3 * 3600_000), label="start, ms before the clock")
            end = start + data.draw(st.integers(1_000, 3 * 3600_000), label="length, ms")
            self._run("range", {"start": moment(start).isoformat(), "end": moment(end).isoformat()})
        elif kind == "dry":
            mode = data.draw(st.sampled_from(("scheduled", "full_refresh", "reconcile")), label="dry run of")
            before = self.snapshot()
            self._run("dry", {"dry_run": True, **({} if mode == "scheduled" else {mode: True})})
            diff = snapshot_diff(before, self.snapshot())
            if diff:
                raise AssertionError(f"a dry run changed the finance tables:{_fmt(diff)}")
        elif self.runs:
            run_id = data.draw(st.sampled_from([r[0] for r in self.runs]), label="replayed run")
            _, planned, reference, manifests = next(r for r in self.runs if r[0] == run_id)
            STATS["run:replay"] += 1
            note(f"replay the load of {run_id}")
            before = self.snapshot()
            summary = h.load_task(planned, reference, manifests, run_id)
            diff = snapshot_diff(before, self.snapshot())
            if diff:
                raise AssertionError(f"replaying the load of {run_id} changed the finance tables "
                                     f"(it must make nothing older, and change nothing):{_fmt(diff)}")
            self.after_load(run_id + " (replayed)", summary)

    # ------------------------------------------------------------ CRM edits
    @precondition(lambda self: self.ready and any(n < MAX_CREATED for n in self.created.values()))
    @rule(advance=ADVANCE, data=st.data())
    def create(self, advance: int, data) -> None:
        otype = data.draw(st.sampled_from([t for t in TYPES if self.created[t] < MAX_CREATED]), label="type")
        props = data.draw(CREATE[otype], label="properties")
        self.tick(advance)
        rid = self.sb.control.create(otype, props)["id"]
        self.created[otype] += 1
        self.op(f"create {otype} {rid}")

    @precondition(lambda self: self.ready and self.types_with("live"))
    @rule(advance=ADVANCE, data=st.data())
    def edit(self, advance: int, data) -> None:
        otype = data.draw(st.sampled_from(self.types_with("live")), label="type")
        rid = data.draw(st.sampled_from(self.ids(otype, "live")), label="id")
        props = data.draw(EDIT[otype], label="properties")
        self.tick(advance)
        self.sb.control.modify(otype, rid, props)
        self.op(f"edit {otype} {rid}")

    @precondition(lambda self: self.ready and self.types_with("live"))
    @rule(count=st.integers(2, 8), same=st.booleans(), advance=ADVANCE, data=st.data())
    def bulk_edit(self, count: int, same: bool, advance: int, data) -> None:
        """Several records stamped with ONE millisecond (a bulk job: the same values; or a workflow)."""
        otype = data.draw(st.sampled_from(self.types_with("live")), label="type")
        live = self.ids(otype, "live")
        start = data.draw(st.integers(0, len(live) - 1), label="from live record no.")
        self.tick(advance)
        if same:
            props = data.draw(BULK[otype], label="bulk properties")
            res = self.sb.control.bulk_touch(otype, count, at_ms=self.clock, properties=props, start=start)
            self.op(f"bulk_touch {otype} {res['count']} records {res['first_id']}…{res['last_id']}")
        else:
            chosen = live[start: start + count]
            for rid in chosen:
                self.sb.control.modify(otype, rid, data.draw(EDIT[otype], label=f"properties of {rid}"), at_ms=self.clock)
            self.op(f"edit {otype} {chosen} in one millisecond")

    @precondition(lambda self: self.ready and self.big and not self.big_done)
    @rule(advance=ADVANCE, props=BULK["contacts"])
    def bulk_edit_many(self, advance: int, props: dict) -> None:
        """More than 200 records (a search page) with one millisecond: the window needs the id drain."""
        live = self.ids("contacts", "live")
        self.big_done = True
        self.tick(advance)
        res = self.sb.control.bulk_touch("contacts", len(live), at_ms=self.clock, properties=props)
        self.op(f"bulk_touch contacts: {res['count']} records in one millisecond")

    @precondition(lambda self: self.ready and self.types_with("live"))
    @rule(advance=ADVANCE, data=st.data())
    def archive(self, advance: int, data) -> None:
        otype = data.draw(st.sampled_from(self.types_with("live")), label="type")
        rid = data.draw(st.sampled_from(self.ids(otype, "live")), label="id")
        self.tick(advance)
        self.sb.control.archive(otype, rid)
        self.op(f"archive {otype} {rid}")

    @precondition(lambda self: self.ready and self.types_with("archived"))
    @rule(advance=ADVANCE, data=st.data())
    def restore(self, advance: int, data) -> None:
        otype = data.draw(st.sampled_from(self.types_with("archived")), label="type")
        rid = data.draw(st.sampled_from(self.ids(otype, "archived")), label="id")
        self.tick(advance)
        self.sb.control.restore(otype, rid)
        self.op(f"restore {otype} {rid}")

    @precondition(lambda self: self.ready and self.types_with("live", 2))
    @rule(advance=ADVANCE, data=st.data())
    def merge(self, advance: int, data) -> None:
        """Two live records of one type; merging a survivor again later makes chains."""
        otype = data.draw(st.sampled_from(self.types_with("live", 2)), label="type")
        live = self.ids(otype, "live")
        primary = data.draw(st.sampled_from(live), label="survivor")
        absorbed = data.draw(st.sampled_from([x for x in live if x != primary]), label="merged away")
        self.tick(advance)
        self.sb.control.merge(otype, primary, absorbed)
        self.op(f"merge {otype} {absorbed} into {primary}")

    @precondition(lambda self: self.ready and self.types_with("deletable"))
    @rule(advance=ADVANCE, data=st.data())
    def purge(self, advance: int, data) -> None:
        """A permanent (GDPR) delete of a live or archived record: only an id sweep or a full refresh finds it."""
        otype = data.draw(st.sampled_from(self.types_with("deletable")), label="type")
        rid = data.draw(st.sampled_from(self.ids(otype, "deletable")), label="id")
        self.tick(advance)
        self.sb.control.purge(otype, rid)
        self.op(f"purge {otype} {rid}")

    @precondition(lambda self: self.ready and self.types_with("live"))
    @rule(pair=st.sampled_from(PAIRS), primary=st.booleans(), advance=ADVANCE, data=st.data())
    def associate(self, pair: tuple[str, str], primary: bool, advance: int, data) -> None:
        """A new association (a new primary company, when ``primary``): no last-modified time moves."""
        froms, tos = self.ids(pair[0], "live"), self.ids(pair[1], "live")
        if froms and tos:
            f = data.draw(st.sampled_from(froms), label=pair[0])
            t = data.draw(st.sampled_from(tos), label=pair[1])
            primary = primary and pair[1] == "companies"
            self.tick(advance)
            self.sb.control.associate(pair[0], f, pair[1], t, primary=primary)
            self.op(f"associate {pair[0]} {f} → {pair[1]} {t}{' (primary)' if primary else ''}")

    def linked(self) -> dict:
        truth = portal_truth(self.sb.portal, {})
        return {pair: {f: sorted(tos, key=int) for f, tos in truth[pair].items() if tos} for pair in PAIRS}

    @precondition(lambda self: self.ready and any(self.linked().values()))
    @rule(advance=ADVANCE, data=st.data())
    def dissociate(self, advance: int, data) -> None:
        """An association removed: no last-modified time moves."""
        linked = self.linked()
        pair = data.draw(st.sampled_from([p for p in PAIRS if linked[p]]), label="association")
        f = data.draw(st.sampled_from(sorted(linked[pair], key=int)), label=pair[0])
        t = data.draw(st.sampled_from(linked[pair][f]), label=pair[1])
        self.tick(advance)
        self.sb.control.dissociate(pair[0], f, pair[1], t)
        self.op(f"dissociate {pair[0]} {f} → {pair[1]} {t}")

    @precondition(lambda self: self.ready and self.ids("deals", "live") and self.ids("companies", "live"))
    @rule(drop_old=st.booleans(), advance=ADVANCE, data=st.data())
    def change_primary_company(self, drop_old: bool, advance: int, data) -> None:
        """A deal's primary company moves to another company (the old one stays linked, or is dissociated)."""
        deal = data.draw(st.sampled_from(self.ids("deals", "live")), label="deal")
        company = data.draw(st.sampled_from(self.ids("companies", "live")), label="new primary company")
        old = [c for c, p in portal_truth(self.sb.portal, {})[("deals", "companies")].get(deal, {}).items() if p and c != company]
        self.tick(advance)
        self.sb.control.associate("deals", deal, "companies", company, primary=True)
        if drop_old:
            for c in old:
                self.sb.control.dissociate("deals", deal, "companies", c)
        self.op(f"primary company of deal {deal}: {company} (was {old}{', dissociated' if drop_old and old else ''})")

    # ------------------------------------------------------------ runs that are not quiet
    @precondition(lambda self: self.ready)
    @rule(kind=st.sampled_from(("search", "batch_read", "associations", "list")), otype=st.sampled_from(TYPES),
          n=st.integers(1, 2), what=st.lists(st.sampled_from(("modify", "archive", "create", "associate", "merge")),
                                             min_size=1, max_size=3),
          stamp=st.sampled_from(("clock", "window_end", "after_window")), advance=ADVANCE, data=st.data())
    def edit_during_scan(self, kind: str, otype: str, n: int, what: list[str], stamp: str, advance: int, data) -> None:
        """After the ``n``-th ``kind`` call on ``otype`` of a scheduled run, someone edits HubSpot (stamped at the
        clock: inside the window; at its end; or after it). That run is not quiet; the next quiet one is checked."""
        self.tick(advance)
        now_ms = self.clock + 1
        at_ms = {"clock": None, "window_end": now_ms, "after_window": now_ms + 5_000}[stamp]
        used: set[str] = set()
        actions = []
        for action in what:
            free = [x for x in self.ids(otype, "live") if x not in used]
            if action == "create" and self.created[otype] < MAX_CREATED:
                self.created[otype] += 1
                actions.append({"method": "POST", "path": f"/_sandbox/records/{otype}",
                                "body": {"properties": data.draw(CREATE[otype], label="created properties"), "at_ms": at_ms}})
            elif action == "associate" and self.ids("deals", "live") and self.ids("contacts", "live"):
                deal = data.draw(st.sampled_from(self.ids("deals", "live")), label="deal")
                contact = data.draw(st.sampled_from(self.ids("contacts", "live")), label="contact")
                actions.append({"method": "POST", "path": "/_sandbox/associations",
                                "body": {"from_type": "deals", "from_id": deal, "to_type": "contacts", "to_id": contact}})
            elif action == "merge" and len(free) >= 2:
                a = data.draw(st.sampled_from(free), label="survivor")
                b = data.draw(st.sampled_from([x for x in free if x != a]), label="merged away")
                used |= {a, b}
                actions.append({"method": "POST", "path": f"/_sandbox/records/{otype}/merge",
                                "body": {"primary": a, "absorbed": b, "at_ms": at_ms}})
            elif action in ("modify", "archive") and free:
                rid = data.draw(st.sampled_from(free), label=f"{action} id")
                used.add(rid)
                if action == "modify":
                    actions.append({"method": "PATCH", "path": f"/_sandbox/records/{otype}/{rid}",
                                    "body": {"properties": data.draw(EDIT[otype], label=f"properties of {rid}"), "at_ms": at_ms}})
                else:
                    actions.append({"method": "POST", "path": f"/_sandbox/records/{otype}/{rid}/archive", "body": {"at_ms": at_ms}})
        if not actions:
            return
        self.sb.control.after_calls(kind, n, actions, object_type=otype)
        self.op(f"scan-edit armed after {kind} call {n} on {otype}: "
                + "; ".join(f"{a['method']} {a['path'].removeprefix('/_sandbox')}" for a in actions))
        try:
            self._run("scan-edit", {})
            fired = [t for t in self.sb.control.triggers() if t.get("fired")]
            note(f"trigger {'fired' if fired else 'did not fire'}"
                 + (": statuses " + ", ".join(str(r.get("status")) for t in fired for r in t.get("results") or []) if fired else ""))
        finally:
            self.sb.control.clear_triggers()
        if at_ms is not None:
            self.at_least(at_ms + 1)

    @precondition(lambda self: self.ready)
    @rule(where=st.sampled_from(("records", "associations")), otype=st.sampled_from(TYPES), every=st.integers(1, 2),
          times=st.integers(1, 2), edits=st.integers(0, 3), advance=ADVANCE, data=st.data())
    def transient_207(self, where: str, otype: str, every: int, times: int, edits: int, advance: int, data) -> None:
        """A batch read (records or associations) of ``otype`` answers 207 for every ``every``-th id, ``times``
        times, in a scheduled run after ``edits`` changes: not quiet; the next quiet run is checked."""
        live = self.ids(otype, "live")
        self.tick(advance)
        chosen = data.draw(st.lists(st.sampled_from(live), max_size=edits, unique=True), label="edited") if live else []
        for rid in chosen:  # changed records: read again (hydrated by batch read when the properties are wide)
            self.sb.control.modify(otype, rid, data.draw(EDIT[otype], label=f"properties of {rid}"))
        ids = f"(?:{otype}|{TYPE_IDS[otype]})"
        if where == "records":
            self.sb.control.add_fault(path=f"objects/(?:[^/]+/)?{ids}/batch/read", action="drop_ids",
                                      drop_every=every, times=times)
        else:
            self.sb.control.add_fault(path=f"associations/(?:[^/]+/)?{ids}/", action="assoc_errors",
                                      drop_every=every, times=times)
        self.op(f"207 armed: {otype} {chosen} edited; {where} batch reads of {otype}: every {every}. id missing, {times}×")
        try:
            self._run("faulty", {})
        finally:
            self.sb.control.clear_faults()


SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    print_blob=True,
    # HUBSPOT_SYNC_STATE_MACHINE_SHRINK=0: report the first failing example as found (faster, longer)
    phases=[p for p in Phase if p != Phase.shrink or os.environ.get(SHRINK_ENV, "1") != "0"],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)


@pytest.fixture(scope="module")
def sm_sandbox():
    with run_sandbox(seed=SEED, contacts=SMALL, companies=SMALL, deals=SMALL) as sb:
        yield sb


@pytest.mark.timeout(0 if LONG else 900)  # room for hypothesis to shrink a failure (it stops after 5 min)
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_finance_tables_equal_hubspot_after_every_quiet_run(kind, sm_sandbox, request, tmp_path):
    dsn = request.getfixturevalue("pg_dsn") if kind == "postgres" else None
    machine = type(f"SyncMachine_{kind}", (SyncMachine,), {"sb": sm_sandbox, "kind": kind, "dsn": dsn, "root": tmp_path})
    STATS.clear()
    TIMES.clear()
    started = time.perf_counter()
    try:
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        print(f"\n{kind}: {STATS['run:final']} examples completed in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(STATS.items())) + "; seconds: "
              + ", ".join(f"{k} {v:.1f}" for k, v in sorted(TIMES.items())))
