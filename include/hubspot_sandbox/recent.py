"""Recent activity: a fortnight of people's edits before the sandbox starts, so it does not look frozen.

The seed (``generate``) ends at ``T1_MS`` (2025), so a range run over "the last 7 days" would find
nothing. ``seed_recent_activity(portal, days)`` plays a script of edits, creations (with their
associations), archives, restores and merges over the ``days`` before the sandbox clock, through the
same store methods the control API calls, so search, lists, the archived listing, associations and
``truth.portal_truth`` agree with each other.

Which records and which values are a function of (seed, sizes); the times are office hours in the
account's time zone, stratified over the window so every type has edits in its last few days. The
first records of each type (``RESERVED``) are left as seeded: the demo and the README's examples edit
them by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from . import generate as gen
from . import schema
from .clock import iso_ms

DAY_MS = 86_400_000
RESERVED = 16
# kind -> (share of the seeded records, at least, at most); the caps keep a million-record start fast
RATES = {"modify": (0.03, 4, 400), "create": (0.005, 2, 60), "archive": (0.0025, 1, 30),
         "merge": (0.001, 1, 10), "restore": (0.0005, 1, 5)}
TZ = ZoneInfo(schema.ACCOUNT["timeZone"])
# Where a deal moves next when someone works on it (the archived stage's deals finally get confirmed).
NEXT_STAGE = {"appointmentscheduled": "qualifiedtobuy", "qualifiedtobuy": "presentationscheduled",
              "presentationscheduled": "decisionmakerboughtin", "decisionmakerboughtin": "contractsent",
              "contractsent": "closedwon", "75482911": "75482912", "75482912": "75482913",
              "75482913": "75482916", schema.ARCHIVED_STAGE: "75482913"}


@dataclass
class Event:
    at_ms: int
    otype: str
    kind: str
    idx: tuple[int, ...] = ()  # the record (modify, archive, restore) or (primary, absorbed)
    props: dict = field(default_factory=dict)
    links: tuple[tuple[str, int, bool], ...] = ()  # (to type, to index, primary) for a created record


def seed_recent_activity(portal, days: int) -> dict:
    """Apply the script to a fresh portal; returns a summary for ``/_sandbox/state``."""
    anchor = portal.now_ms()
    with portal.lock:
        events = plan(portal, days, anchor)
        done: dict[str, dict[str, int]] = {t: {k: 0 for k in RATES} for t in schema.OBJECT_TYPES}
        skipped = 0
        for ev in sorted(events, key=lambda e: e.at_ms):
            if _apply(portal, ev):
                done[ev.otype][ev.kind] += 1
            else:
                skipped += 1
    times = [e.at_ms for e in events]
    return {"days": days, "anchor": iso_ms(anchor), "first": iso_ms(min(times)) if times else None,
            "last": iso_ms(max(times)) if times else None, "changes": done, "skipped": skipped}


def plan(portal, days: int, anchor_ms: int) -> list[Event]:
    """The events, unordered: disjoint record picks per type, then values and times."""
    picks = {t: _picks(portal.stores[t]) for t in schema.OBJECT_TYPES}
    events: list[Event] = []
    for t, pk in picks.items():
        store = portal.stores[t]
        for kind in RATES:
            times = _times(store.gen, kind, len(pk[kind]), days, anchor_ms)
            for k, (target, at) in enumerate(zip(pk[kind], times)):
                if at is None:  # no working day in the window (one day, and a Sunday)
                    continue
                if kind == "modify":
                    events.append(Event(at, t, kind, (target,), _edit(store, target, at)))
                elif kind == "create":
                    props, links = _new_record(store, k, at, picks)
                    events.append(Event(at, t, kind, (), props, links))
                else:
                    events.append(Event(at, t, kind, tuple(target) if kind == "merge" else (target,)))
    return events


def _count(n: int, kind: str) -> int:
    share, lo, hi = RATES[kind]
    return min(hi, max(lo, round(n * share)))


def _picks(store) -> dict:
    """Disjoint seeded records for each kind, in a seed-determined order; ``targets`` stay live."""
    g, n = store.gen, store.n_seeded
    first = min(RESERVED, n // 5)
    idx = np.arange(first, n, dtype=np.int64)
    live = idx[store.active_mask()[first:n]]
    order = live[np.argsort(g.h("recent_pick", live), kind="stable")].tolist()
    m, a, g2 = _count(n, "modify"), _count(n, "archive"), 2 * _count(n, "merge")
    merged = order[m + a: m + a + g2]
    archived = idx[store.archived_mask()[first:n]]
    restore = archived[np.argsort(g.h("recent_restore", archived), kind="stable")][: _count(n, "restore")]
    return {"modify": order[:m], "archive": order[m: m + a],
            "merge": [tuple(merged[k: k + 2]) for k in range(0, len(merged) - 1, 2)],
            "restore": restore.tolist(), "create": [None] * _count(n, "create"),
            "targets": order[m + a + g2:] or order[:m]}


def _times(g, kind: str, k: int, days: int, anchor_ms: int) -> list[int | None]:
    """k office-hour times on the working days of the window, stratified (the last in its final 1/k)."""
    today = datetime.fromtimestamp(anchor_ms / 1000, TZ).date()
    until = anchor_ms - 60_000  # nothing in the last minute: a sync started right away sees it all
    workdays = [d for d in (today - timedelta(days=n) for n in range(days - 1, -1, -1))
                if d.weekday() < 5 and _office_time(d, 0.0, until) < until]
    if k == 0 or not workdays:
        return [None] * k
    j = np.arange(k, dtype=np.int64)
    frac = (j + g.u(f"recent_t_{kind}", j)) / k
    tod = g.u(f"recent_tod_{kind}", j)
    return [_office_time(workdays[min(len(workdays) - 1, int(f * len(workdays)))], u, until)
            for f, u in zip(frac.tolist(), tod.tolist())]


def _office_time(day, u: float, until_ms: int) -> int:
    """The moment at fraction ``u`` of ``day``'s office hours (07:30-17:00, account time zone) before until_ms."""
    start = int(datetime.combine(day, time(7, 30), TZ).timestamp() * 1000)
    return start + int(u * max(0, min(9.5 * 3_600_000, until_ms - start - 1)))


def _live(store, i: int) -> bool:
    return not (store.archived[i] or store.merged[i] or store.purged[i])


def _apply(portal, ev: Event) -> bool:
    """One event through the store's own mutation methods; False when the record moved on meanwhile."""
    s = portal.stores[ev.otype]
    if ev.kind == "create":
        i = s.create(ev.props, ev.at_ms)
        for tt, ti, primary in ev.links:
            if _live(portal.stores[tt], ti):
                portal.assoc.set_edge(ev.otype, i, tt, ti, primary, True)
        return True
    if ev.kind == "restore":
        i = ev.idx[0]
        if s.merged[i] or s.purged[i] or not 0 < s.archived[i] < ev.at_ms:
            return False
        s.restore(i, ev.at_ms)
        return True
    if not all(_live(s, i) and s.lastmod[i] < ev.at_ms for i in ev.idx):
        return False  # a clock before the seed's end: never stamp a change before the record's last one
    if ev.kind == "modify":
        s.modify(ev.idx[0], ev.props, ev.at_ms)
    elif ev.kind == "archive":
        s.archive(ev.idx[0], ev.at_ms)
    else:
        s.merge(ev.idx[0], ev.idx[1], ev.at_ms)
    return True


# ---------------------------------------------------------------- values people type

def _one(store, prop: str, i: int):
    return store.values(prop, np.array([i], dtype=np.int64))[0]


def _pick(g, seq, name: str, i: int):
    return seq[int(g.n(name, np.array([i], dtype=np.int64), len(seq))[0])]


def _phone(g, name: str, i: int) -> str:
    d = str(90_000_000 + int(g.n(name, np.array([i], dtype=np.int64), 9_999_999)[0]))
    return f"+47 {d[:3]} {d[3:5]} {d[5:]}"


def _edit(store, i: int, at_ms: int) -> dict:
    """A realistic change of record i that really changes a value (HubSpot does not stamp no-ops)."""
    g, t = store.gen, store.otype
    options = {"contacts": _contact_edits, "companies": _company_edits, "deals": _deal_edits}[t](store, i, at_ms)
    start = int(g.n("recent_what", np.array([i], dtype=np.int64), len(options))[0])
    for k in range(len(options)):
        props = options[(start + k) % len(options)]
        if any(_one(store, p, i) != v for p, v in props.items()):
            return props
    return options[start]


def _place(g, i: int) -> dict:
    zip_, city = _pick(g, gen.CITIES, "recent_city", i)
    return {"address": f"{_pick(g, gen.STREETS, 'recent_street', i)} {1 + i % 97}", "zip": zip_, "city": city}


def _contact_edits(store, i: int, _at: int) -> list[dict]:
    g = store.gen
    first, last = _one(store, "firstname", i) or "post", _pick(g, gen.LAST, "recent_ln", i)
    mail = f"{gen.fold(first).lower()}.{gen.fold(last).lower()}@{_pick(g, gen.ISP, 'recent_isp', i)}"
    return [_place(g, i), {"phone": _phone(g, "recent_phone", i)}, {"lifecyclestage": "customer"},
            {"lastname": last, "email": mail}, {"jobtitle": _pick(g, gen.JOBS[:-1], "recent_job", i)}]


def _company_edits(store, i: int, _at: int) -> list[dict]:
    g = store.gen
    a = np.array([i], dtype=np.int64)
    name = str(_one(store, "name", i) or "firma").split(" ")[0]
    return [{"phone": _phone(g, "recent_phone", i)}, _place(g, i),
            {"numberofemployees": str(1 + int(g.n("recent_emp", a, 120)[0]))},
            {"annualrevenue": str((1 + int(g.n("recent_rev", a, 900)[0])) * 25_000)},
            {"invoice_email": f"faktura@{gen.fold(name).lower()}.no"}]


def _deal_edits(store, i: int, at_ms: int) -> list[dict]:
    g = store.gen
    a = np.array([i], dtype=np.int64)
    amount = f"{(1 + int(g.n('recent_amt', a, 400)[0])) * 250 + int(g.n('recent_ore', a, 4)[0]) * 0.25:.2f}"
    later = iso_ms(at_ms - at_ms % DAY_MS + (30 + int(g.n("recent_close", a, 60)[0])) * DAY_MS)
    edits = [{"amount": amount}, {"closedate": later},
             {"invoice_reference": f"F-{200_000 + i}", "description": "Pris justert etter møte med kunden."}]
    nxt = NEXT_STAGE.get(_one(store, "dealstage", i))
    if nxt is None:  # a closed deal: its amount or invoice details change, its close date stays
        del edits[1]
    else:
        won = schema.STAGE_INFO[nxt][1][3] == "1.0"
        edits.insert(1, {"dealstage": nxt, **({"closedate": iso_ms(at_ms - at_ms % 1000)} if won else {})})
    return edits


def _new_record(store, k: int, at_ms: int, picks: dict) -> tuple[dict, tuple]:
    """Properties and links of the k-th record created in this type during the window."""
    g, t = store.gen, store.otype
    key = 1_000_000 + k  # hash index for new records: never a seeded index
    a = np.array([key], dtype=np.int64)
    targets = {tt: picks[tt]["targets"] for tt in schema.OBJECT_TYPES}
    co = targets["companies"][int(g.n("recent_co", a, len(targets["companies"]))[0])] if targets["companies"] else None
    ct = targets["contacts"][int(g.n("recent_ct", a, len(targets["contacts"]))[0])] if targets["contacts"] else None
    owner = _pick(g, schema.OWNER_IDS, "recent_owner", key)
    if t == "contacts":
        first, last = _pick(g, gen.FIRST, "recent_fn", key), _pick(g, gen.LAST, "recent_ln", key)
        props = {"firstname": first, "lastname": last, "phone": _phone(g, "recent_phone", key),
                 "email": f"{gen.fold(first).lower()}.{gen.fold(last).lower()}@{_pick(g, gen.ISP, 'recent_isp', key)}",
                 "lifecyclestage": "lead", "hubspot_owner_id": owner, **_place(g, key)}
        if co is not None:
            props["company"] = _one(store.portal.stores["companies"], "name", co)
        return props, ((("companies", co, True),) if co is not None else ())
    if t == "companies":
        name = f"{_pick(g, gen.CO_A, 'recent_a', key)}{_pick(g, gen.CO_B, 'recent_b', key)} AS"
        org = str(gen.org_numbers(g, np.array([store.n_seeded + k], dtype=np.int64))[0])
        return {"name": name, "org_number": org, "domain": f"{gen.fold(name.split(' ')[0]).lower()}{k}.no",
                "phone": _phone(g, "recent_phone", key), "industry": "ACCOUNTING", "hubspot_owner_id": owner,
                "customer_number": str(900_000 + k), **_place(g, key)}, ()
    year = datetime.fromtimestamp(at_ms / 1000, TZ).year
    props = {"dealname": f"{_pick(g, gen.SERVICES, 'recent_svc', key)} {year}",
             "amount": str((1 + int(g.n("recent_amt", a, 200)[0])) * 500),
             "deal_currency_code": _pick(g, ("NOK", "NOK", "NOK", "EUR", "SEK"), "recent_cur", key),
             "pipeline": schema.DEFAULT_PIPELINE, "dealstage": "appointmentscheduled", "dealtype": "newbusiness",
             "closedate": iso_ms(at_ms - at_ms % DAY_MS + 45 * DAY_MS), "hubspot_owner_id": owner}
    links = tuple(x for x in (("companies", co, True) if co is not None else None,
                              ("contacts", ct, False) if ct is not None else None) if x)
    return props, links
