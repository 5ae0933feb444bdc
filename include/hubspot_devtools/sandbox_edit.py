"""Edit the running HubSpot sandbox as a person would, and say what the next sync will show.

    python -m hubspot_devtools.sandbox_edit list deals --limit 5
    python -m hubspot_devtools.sandbox_edit set-amount 9000000003 125000.50
    python -m hubspot_devtools.sandbox_edit set contact 110 city=Bodø zip=8006
    python -m hubspot_devtools.sandbox_edit archive contacts 110      # restore contacts 110 undoes it
    python -m hubspot_devtools.sandbox_edit merge companies 5000000005 5000000006
    python -m hubspot_devtools.sandbox_edit delete-permanently contacts 111
    python -m hubspot_devtools.sandbox_edit associate deals 9000000003 companies 5000000007 --primary

Edits go through the sandbox's control API (``/_sandbox/…``, loopback, no token), stamped with the
sandbox clock. ``list`` reads through the HubSpot API, as the sync does, with the token the sandbox
wrote (``make sandbox``: var/sandbox/token; ``make airflow``: var/airflow/sandbox-token). The token
is never printed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from hubspot_sandbox.client import NotEditable, RunningSandbox, SandboxError
from hubspot_sandbox.schema import ACCOUNT, LASTMOD_PROPERTY, SINGULAR, TYPE_ALIASES

PROG = "python -m hubspot_devtools.sandbox_edit"
REPO = Path(__file__).resolve().parents[2]
TOKEN_FILES = (REPO / "var" / "sandbox" / "token", REPO / "var" / "airflow" / "sandbox-token")
TABLE = {"contacts": "customers", "companies": "companies", "deals": "contracts"}
MERGED_COLUMN = {"contacts": "merged_into_contact_id", "companies": "merged_into_company_id", "deals": "merged_into_deal_id"}
LINK_TABLE = {("deals", "contacts"): "contract_contacts", ("deals", "companies"): "contract_companies",
              ("contacts", "companies"): "customer_companies"}
CALCULATED = {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_merged_object_ids",
              "amount_in_home_currency", "hs_is_closed_won"}
CHANGE_FIELDS = {"amount": "amount", "deal_currency_code": "currency", "dealstage": "stage_id", "closedate": "close_date"}
LIST_COLUMNS = {"contacts": (["firstname", "lastname", "email"], "email"), "companies": (["name", "org_number"], "org_number"),
                "deals": (["dealname", "amount", "deal_currency_code"], "amount")}


class BadEdit(SandboxError):
    """The command line asks for something HubSpot would refuse."""


def default_url() -> str:
    return os.environ.get("SANDBOX_URL") or f"http://127.0.0.1:{os.environ.get('SANDBOX_PORT', '8765')}"


# ---------------------------------------------------------------- what a person sees

def otype_arg(value: str) -> str:
    otype = TYPE_ALIASES.get(value.lower())
    if otype is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not deals, contacts or companies")
    return otype


def id_arg(value: str) -> str:
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a record id (HubSpot ids are digits)")
    return value.strip()


def name(otype: str, props: dict) -> str:
    if otype == "contacts":
        full = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p)
        return full or props.get("email") or "(no name)"
    return props.get("name" if otype == "companies" else "dealname") or "(no name)"


def label(otype: str, rec: dict) -> str:
    return f'{SINGULAR[otype]} {rec["id"]} "{name(otype, rec["properties"])}"'


def when(iso: str | None) -> str:
    return (iso or "?").replace("T", " ")[:19] + " UTC"


def columns(otype: str, props) -> str:
    """The finance columns the properties feed (the mapping in use), or where unmapped ones land."""
    from hubspot_finance.mapping import MappingError, load_mapping

    try:
        mapping = load_mapping(os.environ.get("HUBSPOT_SYNC_MAPPING_FILE") or None).table(TABLE[otype])
    except MappingError:
        mapping = load_mapping(None).table(TABLE[otype])
    by_prop = {p: c for c, p in mapping.columns.items() if p}
    by_prop.update({x.property: x.name for x in mapping.extra_columns.values()})
    cols = [f"{TABLE[otype]}.{by_prop[p]}" for p in props if p in by_prop]
    rest = [p for p in props if p not in by_prop]
    return ", ".join(cols + ([f"properties JSON ({', '.join(rest)})"] if rest else []))


def deal_outcome(old: dict, new: dict) -> str:
    """What the load does with a deal's new values: reject, or update and record contract changes."""
    from hubspot_finance.validation import format_decimal, parse_decimal

    def canon(v):
        try:
            d = parse_decimal(v)
        except ValueError:
            return None, f"{v!r}"
        return d, "NULL" if d is None else format_decimal(d)

    amount, shown = canon(new.get("amount"))
    if amount is None and shown != "NULL":
        return (f"the load rejects it (invalid_amount: {shown} is not a plain decimal) into rejected_records and "
                "retries it every run until the amount is fixed")
    currencies = [ACCOUNT["companyCurrency"], *ACCOUNT["additionalCurrencies"], "", None]
    if new.get("deal_currency_code") not in currencies:
        return f"the load rejects it (unknown_currency {new['deal_currency_code']!r}) into rejected_records"
    changed = [f for p, f in CHANGE_FIELDS.items() if old.get(p) != new.get(p)]
    if not changed:
        return f"contracts row {new['hs_object_id']} updated (no contract_changes row)"
    before = canon(old.get("amount"))
    parts = [f"amount {before[1]} → {shown}" if f == "amount" else f for f in changed]
    note = " (it was rejected for invalid_amount until now, so it loads)" if before[0] is None and before[1] != "NULL" else ""
    return f"contracts row {new['hs_object_id']} updated and contract_changes gets {', '.join(parts)}{note}"


def after_update(otype: str, old: dict, new: dict, props) -> str:
    if otype == "deals":
        return deal_outcome(old, new)
    return f"{TABLE[otype]} row {new['hs_object_id']} updated: {columns(otype, props)}"


def deleted(otype: str, rid: str, kind: str) -> str:
    extra = "; contract_changes gets is_deleted false → true" if otype == "deals" else ""
    return f"{TABLE[otype]} row {rid} gets is_deleted = 1, deletion_kind = '{kind}'{extra}"


# ---------------------------------------------------------------- commands (each returns the line to print)

def cmd_list(sb: RunningSandbox, a) -> str:
    otype, limit = a.otype, max(1, min(a.limit, 200 if not a.archived else 100))
    lastmod, (props, extra) = LASTMOD_PROPERTY[otype], LIST_COLUMNS[otype]
    if a.archived:
        page = sb.hubspot("GET", f"/crm/v3/objects/{otype}", params={
            "archived": "true", "limit": limit, "properties": ",".join(props)})
        title, stamp = f"archived {otype} (by id)", "archivedAt"
    else:
        page = sb.hubspot("POST", f"/crm/v3/objects/{otype}/search", json={
            "filterGroups": [], "sorts": [{"propertyName": lastmod, "direction": "DESCENDING"}],
            "properties": props, "limit": limit})
        title, stamp = f"{otype}, last modified first", "updatedAt"
    rows = [(r["id"], name(otype, r["properties"]),
             " ".join(x for x in (r["properties"].get(extra), r["properties"].get("deal_currency_code")) if x)
             if otype == "deals" else r["properties"].get(extra) or "", when(r.get(stamp))) for r in page["results"]]
    head = ("id", "name", extra, "archived" if a.archived else "last modified")
    widths = [min(40, max(len(str(x)) for x in col)) for col in zip(head, *rows)]
    lines = [f"{title} ({len(rows)} shown):"] + ["  " + "  ".join(str(v)[:w].ljust(w) for v, w in zip(row, widths))
                                                 for row in [head, *rows]]
    return "\n".join(lines)


def cmd_show(sb: RunningSandbox, a) -> str:
    rec = sb.record(a.otype, a.id)
    state = ("deleted permanently" if rec.get("purged") else f"merged into {rec['mergedInto']}" if rec.get("mergedInto")
             else "archived" if rec.get("archived") else "live")
    shown = {k: v for k, v in rec["properties"].items() if v not in (None, "")}
    return f"{label(a.otype, rec)} ({state}, last modified {when(rec.get('updatedAt'))}): " + ", ".join(
        f"{k}={v}" for k, v in sorted(shown.items()))


def parse_assignments(sb_props: dict, otype: str, pairs: list[str]) -> dict:
    props = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise BadEdit(f"{pair!r} is not prop=value (e.g. city=Bodø; prop= clears it)")
        if key in CALCULATED:
            raise BadEdit(f"HubSpot sets {key} itself; it cannot be edited.")
        if key not in sb_props:
            near = difflib.get_close_matches(key, list(sb_props), n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"`{PROG} show {otype} ID` lists them."
            raise BadEdit(f"{otype} have no property {key!r}; {hint}")
        props[key] = value
    return props


def cmd_set(sb: RunningSandbox, a) -> str:
    old = sb.live(a.otype, a.id)
    props = parse_assignments(old["properties"], a.otype, a.assignments)
    new = sb.change("modify", a.otype, a.id, props)
    diff = ", ".join(f"{k} {old['properties'].get(k) or '(empty)'} → {v or '(empty)'}" for k, v in props.items())
    return (f"{label(a.otype, new)}: {diff} at {when(new['updatedAt'])}. "
            f"Next sync: {after_update(a.otype, old['properties'], new['properties'], list(props))}.")


def cmd_set_amount(sb: RunningSandbox, a) -> str:
    from hubspot_finance.validation import parse_decimal

    try:
        ok = parse_decimal(a.amount) is not None and "e" not in a.amount.lower()
    except ValueError:
        ok = False
    if not ok:
        raise BadEdit(f"{a.amount!r} is not a plain decimal amount (like 125000.50). To see how the sync rejects a "
                      f"bad amount, set it on purpose: {PROG} set deal {a.id} amount='{a.amount}'")
    a.otype, a.assignments = "deals", [f"amount={a.amount.strip()}"]
    return cmd_set(sb, a)


def cmd_create(sb: RunningSandbox, a) -> str:
    defs = sb.call("state")  # the property names come from a record of the type: the first one
    first = sb.record(a.otype, defs["counts"][a.otype]["first_id"])["properties"]
    props = parse_assignments(first, a.otype, a.assignments)
    new = sb.change("create", a.otype, props)
    hint = f" Link it: {PROG} associate {a.otype} {new['id']} companies ID --primary" if a.otype != "companies" else ""
    return (f"New {label(a.otype, new)} created at {when(new['updatedAt'])}. "
            f"Next sync: a new {TABLE[a.otype]} row {new['id']}.{hint}")


def cmd_archive(sb: RunningSandbox, a) -> str:
    rec = sb.live(a.otype, a.id)
    sb.change("archive", a.otype, a.id)
    return (f"{label(a.otype, rec)} archived (deleted in HubSpot, restorable: {PROG} restore {a.otype} {a.id}). "
            f"Next sync: {deleted(a.otype, a.id, 'archived')}, and its links are removed.")


def cmd_restore(sb: RunningSandbox, a) -> str:
    rec = sb.record(a.otype, a.id)
    if rec.get("purged") or rec.get("mergedInto") or not rec.get("archived"):
        state = "deleted permanently" if rec.get("purged") else f"merged into {rec['mergedInto']}" if rec.get(
            "mergedInto") else "not archived (it is live)"
        raise NotEditable(f"{SINGULAR[a.otype]} {a.id} is {state}: only an archived record can be restored.")
    new = sb.change("restore", a.otype, a.id)
    extra = "; contract_changes gets is_deleted true → false" if a.otype == "deals" else ""
    return (f"{label(a.otype, new)} restored at {when(new['updatedAt'])}. Next sync: {TABLE[a.otype]} row {a.id} "
            f"is live again (is_deleted = 0) with its links{extra}.")


def cmd_merge(sb: RunningSandbox, a) -> str:
    if a.primary == a.merged:
        raise BadEdit("A record cannot be merged into itself: give two different ids.")
    keep, gone = sb.live(a.otype, a.primary), sb.live(a.otype, a.merged)
    new = sb.change("merge", a.otype, a.primary, a.merged)
    return (f"{label(a.otype, gone)} merged into {label(a.otype, keep)}: HubSpot now answers {a.merged} with "
            f"{a.primary}, whose hs_merged_object_ids is {new['properties'].get('hs_merged_object_ids')}. Next sync: "
            f"{deleted(a.otype, a.merged, 'merged')}, {MERGED_COLUMN[a.otype]} = {a.primary}, and its links move to "
            f"{a.primary}.")


def cmd_purge(sb: RunningSandbox, a) -> str:
    rec = sb.record(a.otype, a.id)
    if rec.get("purged") or rec.get("mergedInto"):
        raise NotEditable(f"{SINGULAR[a.otype]} {a.id} is " + ("already deleted permanently." if rec.get("purged") else
                          f"merged into {rec['mergedInto']}: delete {rec['mergedInto']} instead."))
    sb.change("purge", a.otype, a.id)
    return (f"{label(a.otype, rec)} deleted permanently (GDPR): gone from every HubSpot read. Next sync: nothing "
            "until an id sweep (the nightly run on HUBSPOT_SYNC_SWEEP_WEEKDAY, sunday by default, or a run triggered "
            f"with reconcile = true); then {deleted(a.otype, a.id, 'permanent')}.")


def cmd_link(sb: RunningSandbox, a) -> str:
    pair = (a.from_type, a.to_type)
    if pair not in LINK_TABLE:
        pair, (a.from_id, a.to_id) = pair[::-1], (a.to_id, a.from_id)
        if pair not in LINK_TABLE:
            raise BadEdit("Associations link deals, contacts and companies to each other: give two different types.")
    if a.command == "associate" and a.primary and pair[1] != "companies":
        raise BadEdit("Only a company can be primary (for a deal or a contact).")
    src, dst = sb.live(pair[0], a.from_id), sb.live(pair[1], a.to_id)
    if a.command == "associate":
        sb.change("associate", pair[0], a.from_id, pair[1], a.to_id, primary=a.primary)
    else:
        sb.change("dissociate", pair[0], a.from_id, pair[1], a.to_id)
    done = "associated" + (" (primary)" if a.primary else "") if a.command == "associate" else "no longer associated"
    primary = " and contracts.primary_company_id" if pair == ("deals", "companies") else ""
    return (f"{label(pair[0], src)} and {label(pair[1], dst)} {done}. HubSpot does not stamp association edits, so "
            f"only the association reconciliation sees it: the next run (HUBSPOT_SYNC_RECONCILE_ASSOCIATIONS=every_run, "
            f"the default) updates {LINK_TABLE[pair]}{primary}.")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=default_url(), help="the sandbox (default: $SANDBOX_URL or http://127.0.0.1:8765)")
    ap.add_argument("--token-file", help="the sandbox's token file for `list` (default: the newest of "
                                         "var/sandbox/token and var/airflow/sandbox-token)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name, fn, help_, *args):
        p = sub.add_parser(name, help=help_, description=help_)
        for arg, kw in args:
            p.add_argument(arg, **kw)
        p.set_defaults(fn=fn)
        return p

    typ, rid = {"type": otype_arg, "metavar": "TYPE"}, {"type": id_arg}
    p = cmd("list", cmd_list, "latest records of a type (deals, contacts, companies), last modified first", ("otype", typ))
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--archived", action="store_true", help="the archived (deleted) ones instead")
    cmd("show", cmd_show, "one record and its state", ("otype", typ), ("id", rid))
    cmd("set-amount", cmd_set_amount, "change a deal's amount (an exact decimal)", ("id", {**rid, "metavar": "DEAL_ID"}),
        ("amount", {"metavar": "AMOUNT"}))
    cmd("set", cmd_set, "change properties: set deal 9000000003 dealstage=closedwon", ("otype", typ), ("id", rid),
        ("assignments", {"nargs": "+", "metavar": "prop=value"}))
    cmd("create", cmd_create, "create a record: create contact firstname=Kari lastname=Nordmann", ("otype", typ),
        ("assignments", {"nargs": "+", "metavar": "prop=value"}))
    cmd("archive", cmd_archive, "delete a record (restorable)", ("otype", typ), ("id", rid))
    cmd("restore", cmd_restore, "bring an archived record back", ("otype", typ), ("id", rid))
    cmd("merge", cmd_merge, "merge MERGED_ID into PRIMARY_ID", ("otype", typ), ("primary", {**rid, "metavar": "PRIMARY_ID"}),
        ("merged", {**rid, "metavar": "MERGED_ID"}))
    cmd("delete-permanently", cmd_purge, "GDPR delete: gone from every HubSpot read", ("otype", typ), ("id", rid))
    for name_, help_ in (("associate", "link two records"), ("dissociate", "unlink two records")):
        p = cmd(name_, cmd_link, help_, ("from_type", typ), ("from_id", rid), ("to_type", typ), ("to_id", rid))
        if name_ == "associate":
            p.add_argument("--primary", action="store_true", help="the deal's or contact's primary company")
        else:
            p.set_defaults(primary=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sandbox = RunningSandbox(args.url, [args.token_file] if args.token_file else TOKEN_FILES, PROG)
        print(args.fn(sandbox, args), flush=True)
    except SandboxError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
