"""Deterministic base-record generation: every property value is a pure function of (seed, type, index).

Nothing here is stored per record. Values are computed, vectorised with numpy, for exactly the
indices a response needs, which is what lets a portal hold a million contacts in a few megabytes
and seed in well under a second. Changes made later live in the store's overlay, not here.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import hashlib

import numpy as np

from . import schema

_U = np.uint64
T0_MS = 1546300800000  # 2019-01-01T00:00:00Z: oldest seeded record
T1_MS = 1761868800000  # 2025-10-31T00:00:00Z: newest seeded modification
# A few "bulk import" milliseconds shared by many seeded records, so same-millisecond handling
# is exercised even by small portals.
BULK_MS = (1704103200123, 1717236000456, 1735725600789, 1751364000000)
ID_BASE = {"contacts": 100, "companies": 5_000_000_000, "deals": 9_000_000_000}

FIRST = ("Kari", "Ola", "Åse", "Øystein", "Bjørn", "Håkon", "Siri", "Ingrid", "Kåre", "Sølvi", "Ståle",
         "Mette", "Jørgen", "Trine", "Eirik", "Marit", "Liv", "Per", "Anne", "Lars", "Åsmund", "Gøril",
         "Bård", "Frøydis", "Pål", "Sigrun", "Tor", "Hege", "Ørjan", "Dagny", "Gunnhild", "Nils", "Ragnhild",
         "Tormod", "Kjærsti", "Synnøve", "Stian", "Maja", "Emil", "Nora", "Jonas", "Sofie", "Aksel", "Ida")
LAST = ("Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen", "Jensen",
        "Karlsen", "Berg", "Haugen", "Hagen", "Bakken", "Sæther", "Løken", "Strøm", "Dahl", "Lie", "Solberg",
        "Bråten", "Æsøy", "Øvrebø", "Kvåle", "Haaland", "Rønning", "Myhre", "Fjeld", "Sørensen", "Ødegård",
        "Aasen", "Tveit", "Moe", "Vik", "Holm", "Lunde", "Brå", "Grønli", "Nordmann", "Østby")
ISP = ("online.no", "gmail.com", "hotmail.com", "outlook.com", "yahoo.no", "live.no", "icloud.com", "frisurf.no")
CITIES = (("0150", "Oslo"), ("0484", "Oslo"), ("5003", "Bergen"), ("7010", "Trondheim"), ("4006", "Stavanger"),
          ("9008", "Tromsø"), ("2317", "Hamar"), ("3015", "Drammen"), ("1606", "Fredrikstad"), ("6002", "Ålesund"),
          ("8006", "Bodø"), ("4612", "Kristiansand"), ("2609", "Lillehammer"), ("1337", "Sandvika"),
          ("3616", "Kongsberg"), ("6800", "Førde"), ("9600", "Hammerfest"), ("2380", "Brumunddal"))
STREETS = ("Storgata", "Kirkegata", "Fjordveien", "Bjørkeveien", "Løkkeveien", "Sjøgata", "Åsveien",
           "Skolegata", "Ringveien", "Industriveien", "Møllergata", "Strandgata", "Kongens gate")
CO_A = ("Fjord", "Nord", "Vest", "Bjørke", "Løvås", "Hav", "Fjell", "Sølv", "Åsen", "Bølge", "Tind", "Skog",
        "Elve", "Kyst", "Midt", "Øst", "Sør", "Lyng", "Grønn", "Stein", "Rein", "Måke", "Ærlig", "Trøndelag")
CO_B = ("lys", "tre", "bygg", " Regnskap", " Eiendom", " Transport", " Rørleggerservice", " Elektro", "kraft",
        " Consulting", " Bakeri", " Fisk", " Maskin", " Tannklinikk", " Frisør", "data", " Holding", " Snekkeri")
CO_FORM = ("AS", "AS", "AS", "AS", "AS", "ANS", "ENK", "DA", "SA", "AS", "Holding AS", "")
SERVICES = ("Regnskapsføring", "Lønnskjøring", "Årsoppgjør", "Skattemelding", "Rådgivning",
            "MVA-rapportering", "Fakturering", "Oppstartspakke", "Revisjonsbistand")
JOBS = ("Daglig leder", "Økonomisjef", "Regnskapsansvarlig", "Styreleder", "CFO", "Innehaver",
        "Kontormedarbeider", "Prosjektleder", None)
BAD_AMOUNTS = ("12 000", "abc", "1.234,50", "kr 5000", "-", "12,5")
_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "Æ": "Ae", "Ø": "O", "Å": "A", "é": "e", " ": "", "&": ""})
ORG_WEIGHTS = np.array([3, 2, 7, 6, 5, 4, 3, 2], dtype=np.int64)


def fold(s: str) -> str:
    return s.translate(_FOLD)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wraps on overflow by design)."""
    with np.errstate(over="ignore"):
        x = x + _U(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U(30))) * _U(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U(27))) * _U(0x94D049BB133111EB)
        return x ^ (x >> _U(31))


def iso_array(ms: np.ndarray) -> np.ndarray:
    """Vectorised epoch-ms → HubSpot datetime strings."""
    s = np.datetime_as_string(np.asarray(ms, dtype="int64").astype("datetime64[ms]"), unit="ms")
    return np.char.add(s.astype(str), "Z")


class Generator:
    """Hash streams for one object type of one seed."""

    def __init__(self, seed: int, otype: str, sizes: dict[str, int]):
        self.seed, self.otype, self.sizes = int(seed), otype, sizes
        self._salts: dict[str, np.uint64] = {}

    def h(self, field: str, idx: np.ndarray) -> np.ndarray:
        salt = self._salts.get(field)
        if salt is None:
            d = hashlib.blake2b(f"{self.seed}|{self.otype}|{field}".encode(), digest_size=8).digest()
            salt = self._salts[field] = _U(int.from_bytes(d, "little"))
        with np.errstate(over="ignore"):
            return _mix(idx.astype(np.uint64) * _U(0xD1B54A32D192ED03) ^ salt)

    def u(self, field: str, idx: np.ndarray) -> np.ndarray:
        return (self.h(field, idx) >> _U(11)).astype(np.float64) / float(1 << 53)

    def n(self, field: str, idx: np.ndarray, k: int) -> np.ndarray:
        return (self.h(field, idx) % _U(k)).astype(np.int64)

    def pick(self, seq, field: str, idx: np.ndarray) -> np.ndarray:
        arr = np.empty(len(seq), dtype=object)
        arr[:] = list(seq)
        return arr[self.n(field, idx, len(seq))]


# ---------------------------------------------------------------- timestamps and lifecycle flags

def seed_arrays(g: Generator, n: int) -> dict[str, np.ndarray]:
    """created/lastmod/archived/merged arrays for n seeded records."""
    idx = np.arange(n, dtype=np.int64)
    created = T0_MS + (g.u("created", idx) * (T1_MS - T0_MS - 86_400_000)).astype(np.int64)
    touched = g.u("touched", idx)
    lastmod = created + (g.u("lastmod", idx) * (T1_MS - created)).astype(np.int64)
    lastmod = np.where(touched < 0.25, created + 1234, lastmod)
    bulk = g.n("bulk", idx, 40) == 0
    bulk_ms = np.array(BULK_MS, dtype=np.int64)[g.n("bulkwhich", idx, len(BULK_MS))]
    lastmod = np.where(bulk & (bulk_ms > created), bulk_ms, lastmod)
    archived = g.u("archived", idx) < 0.01
    archived_ms = np.where(archived, lastmod + (g.u("archivedat", idx) * (T1_MS + 86_400_000 - lastmod)).astype(np.int64), 0)
    rate = 0.002 if g.otype == "deals" else 0.005
    cand = (g.u("merged", idx) < rate) & ~archived
    cand[0] = False
    prev_ok = np.zeros(n, dtype=bool)
    if n > 1:
        prev_ok[1:] = ~cand[:-1] & ~archived[:-1]
    absorbed = cand & prev_ok
    merged_into = np.where(absorbed, idx - 1 + ID_BASE[g.otype] + 1, 0).astype(np.int64)
    return {"created": created, "lastmod": lastmod.astype(np.int64), "archived": archived_ms.astype(np.int64),
            "merged": merged_into}


# ---------------------------------------------------------------- associations

def seed_edges(gens: dict[str, Generator], sizes: dict[str, int]) -> dict[tuple, tuple]:
    """Canonical association edges as (from_idx, to_idx, primary) arrays sorted by (from, to)."""
    out = {}
    nco, nct, nde = sizes["companies"], sizes["contacts"], sizes["deals"]

    def build(parts):
        f = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        t = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        pr = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, bool)
        order = np.lexsort((~pr, t, f))
        f, t, pr = f[order], t[order], pr[order]
        keep = np.ones(len(f), dtype=bool)
        keep[1:] = (f[1:] != f[:-1]) | (t[1:] != t[:-1])
        return f[keep], t[keep], pr[keep]

    g = gens["deals"]
    d = np.arange(nde, dtype=np.int64)
    parts = []
    if nco:
        has = g.u("a_co", d) < 0.9
        parts.append((d[has], g.n("a_co_i", d, nco)[has], np.ones(has.sum(), bool)))
        two = g.u("a_co2", d) < 0.05
        parts.append((d[two], g.n("a_co2_i", d, nco)[two], np.zeros(two.sum(), bool)))
    out[("deals", "companies")] = build(parts)
    parts = []
    if nct:
        cnt = np.array([0, 1, 1, 1, 2, 2, 3])[g.n("a_ct_n", d, 7)]
        for j in range(3):
            has = cnt > j
            parts.append((d[has], g.n(f"a_ct_{j}", d, nct)[has], np.zeros(has.sum(), bool)))
    out[("deals", "contacts")] = build(parts)
    g = gens["contacts"]
    c = np.arange(nct, dtype=np.int64)
    parts = []
    if nco:
        has = g.u("a_co", c) < 0.85
        # cluster contacts on fewer companies so some companies have many contacts
        skew = (g.u("a_co_s", c) ** 2 * nco).astype(np.int64)
        parts.append((c[has], skew[has], np.ones(has.sum(), bool)))
        two = g.u("a_co2", c) < 0.04
        parts.append((c[two], g.n("a_co2_i", c, nco)[two], np.zeros(two.sum(), bool)))
    out[("contacts", "companies")] = build(parts)
    return out


# ---------------------------------------------------------------- property values

def _where(mask, values, other=None) -> np.ndarray:
    out = np.array(values, dtype=object)
    out[mask] = other
    return out


def _digits(g, field, idx, lo, span):
    return (g.n(field, idx, span) + lo).astype(str)


def company_names(g: Generator, idx: np.ndarray) -> np.ndarray:
    a, b, form = g.pick(CO_A, "co_a", idx), g.pick(CO_B, "co_b", idx), g.pick(CO_FORM, "co_form", idx)
    ln = g.pick(LAST, "co_ln", idx)
    style = g.n("co_style", idx, 10)
    out = np.empty(len(idx), dtype=object)
    for k in range(len(idx)):
        if style[k] == 0:
            name = f"{ln[k]} & Sønn {form[k]}"
        elif style[k] == 1:
            name = f"{ln[k]}{b[k]} {form[k]}"
        else:
            name = f"{a[k]}{b[k]} {form[k]}"
        out[k] = name.strip()
    return out


def org_numbers(g: Generator, idx: np.ndarray) -> np.ndarray:
    """Valid 9-digit organisation numbers (mod-11 check digit), mostly unique per index."""
    base = 80_000_000 + ((idx.astype(np.int64) * 7919 + int(g.n("org_off", np.zeros(1, np.int64), 20_000_000)[0])) % 20_000_000)
    for _ in range(3):
        digits = (base[:, None] // (10 ** np.arange(7, -1, -1))) % 10
        check = (11 - (digits @ ORG_WEIGHTS) % 11) % 11
        bad = check == 10
        if not bad.any():
            break
        base = np.where(bad, base + 1, base)
    return base * 10 + np.where(check == 10, 0, check)


def _contacts(g: Generator, prop: str, idx: np.ndarray, store) -> np.ndarray | None:
    fn, ln = g.pick(FIRST, "fn", idx), g.pick(LAST, "ln", idx)
    if prop == "firstname":
        return _where(g.u("fn_null", idx) < 0.01, fn)
    if prop == "lastname":
        return _where(g.u("ln_null", idx) < 0.005, ln)
    if prop in ("email", "invoice_email"):
        style, isp, num = g.n(prop + "_s", idx, 100), g.pick(ISP, prop + "_isp", idx), g.n(prop + "_n", idx, 100)
        out = np.empty(len(idx), dtype=object)
        for k in range(len(idx)):
            f, l, s = fold(fn[k]).lower(), fold(ln[k]).lower(), style[k]
            if prop == "invoice_email":
                out[k] = None if s < 65 else (f"faktura@{l}{num[k]}.no" if s < 90 else f"{f}.{l}@{isp[k]}; regnskap@{l}.no")
            elif s < 55:
                out[k] = f"{f}.{l}{idx[k]}@{isp[k]}"
            elif s < 70:
                out[k] = f"{f[0]}{l}{num[k]}@gmail.com"
            elif s < 78:
                out[k] = f"post@{l}-{idx[k]}.no"
            elif s < 83:
                out[k] = f"{fold(fn[k])}.{fold(ln[k])}{idx[k]}@Online.NO"
            elif s < 86:
                out[k] = f"{fn[k].lower()}.{ln[k].lower()}{idx[k]}@epost.no"
            elif s < 88:
                out[k] = f"  {f}{idx[k]}@{isp[k]} "
            elif s < 90:
                out[k] = (f"{f}.{l}(at){isp[k]}", f"{f}.{l}@online", f"{f} {l}@{isp[k]}")[s % 3]
            elif s < 94:
                out[k] = None
            else:
                out[k] = f"{f}{idx[k]}@{l}.no"
        return out
    if prop in ("phone", "mobilephone"):
        style = g.n(prop + "_s", idx, 14)
        d8 = g.n(prop + "_d", idx, 10_000_000) + (90_000_000 if prop == "mobilephone" else 20_000_000)
        out = np.empty(len(idx), dtype=object)
        for k in range(len(idx)):
            d = str(d8[k])
            out[k] = (f"+47 {d[:3]} {d[3:5]} {d[5:]}", d, f"0047 {d}", f"+47{d}", f"{d[:3]} {d[3:5]} {d[5:]}",
                      f"{d[:2]} {d[2:4]} {d[4:6]} {d[6:]}", f"(+47) {d}", f"tlf. {d[:3]} {d[3:5]} {d[5:]}",
                      f"+46 70 {d[:3]} {d[3:5]} {d[5:7]}", "", None, None, f"+47 {d}", d)[style[k]]
        return out
    if prop == "company":
        cidx = store.portal.primary_company_of_contacts(idx)
        names = np.full(len(idx), None, dtype=object)
        ok = cidx >= 0
        if ok.any():
            names[ok] = company_names(store.portal.stores["companies"].gen, cidx[ok])
        return names
    if prop == "jobtitle":
        return g.pick(JOBS, "job", idx)
    if prop == "address":
        return _where(g.u("addr_null", idx) < 0.1,
                      np.char.add(np.char.add(g.pick(STREETS, "street", idx).astype(str), " "), _digits(g, "no", idx, 1, 120)))
    if prop in ("zip", "city"):
        c = g.n("city", idx, len(CITIES))
        col = 0 if prop == "zip" else 1
        return _where(g.u("city_null", idx) < 0.08, np.array([CITIES[i][col] for i in c], dtype=object))
    if prop == "country":
        return g.pick(("Norway", "Norway", "Norway", "Norge", "NO", None, "Sweden"), "country", idx)
    if prop == "lifecyclestage":
        return g.pick(schema.LIFECYCLE + ("customer", "customer"), "lcs", idx)
    if prop == "hs_email_optout":
        return g.pick(("false", "false", "false", "true", None), "optout", idx)
    if prop == "customer_number":
        return _where(g.u("cust_null", idx) < 0.4, (idx + 10_000).astype(str).astype(object))
    return None


def _companies(g: Generator, prop: str, idx: np.ndarray, store) -> np.ndarray | None:
    if prop == "name":
        return _where(g.u("name_null", idx) < 0.005, company_names(g, idx))
    if prop == "domain":
        names = company_names(g, idx)
        dom = np.array([fold(n.rsplit(" ", 1)[0] if " " in n else n).lower() + f"{i}.no" for n, i in zip(names, idx)], dtype=object)
        return _where(g.u("dom_null", idx) < 0.15, dom)
    if prop == "org_number":
        org = org_numbers(g, idx)
        style = g.n("org_style", idx, 100)
        out = np.empty(len(idx), dtype=object)
        for k in range(len(idx)):
            s, o = style[k], str(org[k])
            if s < 80:
                out[k] = o
            elif s < 88:
                out[k] = f"{o[:3]} {o[3:6]} {o[6:]}"
            elif s < 90:
                out[k] = f"NO {o} MVA"
            elif s < 93:
                out[k] = None
            elif s < 97:
                out[k] = o[:8] + str((int(o[8]) + 1) % 10)  # wrong check digit
            elif s < 99:
                out[k] = o[:8]
            else:
                out[k] = "ukjent"
        return out
    if prop == "phone":
        return _contacts(g, "phone", idx, store)
    if prop in ("address", "zip", "city", "country"):
        return _contacts(g, prop, idx, store)
    if prop == "industry":
        return _where(g.u("ind_null", idx) < 0.2, g.pick(schema.INDUSTRIES, "ind", idx))
    if prop == "numberofemployees":
        return _where(g.u("emp_null", idx) < 0.3, (g.n("emp", idx, 250) + 1).astype(str).astype(object))
    if prop == "annualrevenue":
        return _where(g.u("rev_null", idx) < 0.4, ((g.n("rev", idx, 5000) + 1) * 10_000).astype(str).astype(object))
    if prop == "customer_number":
        return _where(g.u("cust_null", idx) < 0.3, (idx + 500_000).astype(str).astype(object))
    if prop == "invoice_email":
        names = company_names(g, idx)
        em = np.array([f"faktura@{fold(n.split(' ')[0]).lower()}{i}.no" for n, i in zip(names, idx)], dtype=object)
        return _where(g.u("inv_null", idx) < 0.45, em)
    return None


def _stage(g: Generator, idx: np.ndarray):
    custom = g.u("pipe", idx) >= 0.7
    dstages = [s[0] for s in schema.STAGES[schema.DEFAULT_PIPELINE]]
    cstages = [s[0] for s in schema.STAGES[schema.CUSTOM_PIPELINE]]
    dpick = g.pick(dstages + ["closedwon", "closedwon", "closedlost"], "stage_d", idx)
    cpick = g.pick(cstages + ["75482913", "75482916"], "stage_c", idx)
    stage = np.where(custom, cpick, dpick)
    pipe = np.where(custom, schema.CUSTOM_PIPELINE, schema.DEFAULT_PIPELINE).astype(object)
    return pipe, stage


def _amount_value(g, idx):
    return (g.n("amt", idx, 400) + 1) * 250 + np.where(g.u("amt_c", idx) < 0.2, g.n("amt_o", idx, 100) / 100.0, 0)


def _deals(g: Generator, prop: str, idx: np.ndarray, store) -> np.ndarray | None:
    if prop == "dealname":
        svc = g.pick(SERVICES, "svc", idx)
        yr = (2019 + g.n("yr", idx, 8)).astype(str)
        return np.array([f"{s} {y}" for s, y in zip(svc, yr)], dtype=object)
    if prop == "amount":
        val = _amount_value(g, idx)
        style = g.n("amt_s", idx, 100)
        bad = g.pick(BAD_AMOUNTS, "amt_bad", idx)
        out = np.empty(len(idx), dtype=object)
        for k in range(len(idx)):
            s, v = style[k], val[k]
            out[k] = (None if s < 3 else bad[k] if s < 5 else f"{v:.2f}" if s < 40 else
                      (str(int(v)) if v == int(v) else f"{v:.2f}".rstrip("0")))
        return out
    if prop == "deal_currency_code":
        u = g.u("cur", idx)
        out = np.full(len(idx), "", dtype=object)
        for lim, val in ((0.97, None), (0.92, "SEK"), (0.86, "EUR"), (0.76, "NOK")):
            out[u < lim] = val
        return out
    if prop == "amount_in_home_currency":
        amt, cur = _deals(g, "amount", idx, store), _deals(g, "deal_currency_code", idx, store)
        return np.array([home_amount(a, c) for a, c in zip(amt, cur)], dtype=object)
    if prop in ("pipeline", "dealstage", "hs_is_closed_won"):
        pipe, stage = _stage(g, idx)
        if prop == "pipeline":
            return pipe
        if prop == "dealstage":
            return stage
        return np.array(["true" if schema.STAGE_INFO[s][1][2] == "true" and schema.STAGE_INFO[s][1][3] == "1.0" else "false"
                         for s in stage], dtype=object)
    if prop == "closedate":
        ms = T0_MS + (g.u("close", idx) * (T1_MS + 120 * 86_400_000 - T0_MS)).astype(np.int64)
        ms = ms - ms % 1000
        return _where(g.u("close_null", idx) < 0.1, iso_array(ms).astype(object))
    if prop == "dealtype":
        return g.pick(schema.DEALTYPES + (None,), "dtype", idx)
    if prop == "description":
        return _where(g.u("desc", idx) < 0.9, np.array(["Avtalt med kunde på telefon; se e-post fra regnskapsfører."] * len(idx), dtype=object))
    if prop == "invoice_reference":
        return _where(g.u("invref", idx) < 0.5, np.char.add("F-", (idx + 100_000).astype(str)).astype(object))
    if prop == "engagement_type":
        return g.pick(("regnskap", "lonn", "arsoppgjor", "radgivning", None), "eng", idx)
    if prop == "billing_start_date":
        ms = T0_MS + (g.u("bill", idx) * (T1_MS - T0_MS)).astype(np.int64)
        return _where(g.u("bill_null", idx) < 0.5, np.datetime_as_string(ms.astype("datetime64[ms]").astype("datetime64[D]")).astype(object))
    return None


def home_amount(amount, currency) -> str | None:
    """The calculated ``amount_in_home_currency``: NOK value of a parseable amount."""
    if amount is None:
        return None
    try:
        v = Decimal(str(amount))
    except InvalidOperation:
        return None
    rate = schema.EXCHANGE_RATES.get(currency or "NOK")
    if rate is None or not v.is_finite():
        return None
    return f"{(v * Decimal(str(rate))).quantize(Decimal('0.01'))}".rstrip("0").rstrip(".")


_BY_TYPE = {"contacts": _contacts, "companies": _companies, "deals": _deals}


def base_values(g: Generator, prop: str, idx: np.ndarray, store) -> np.ndarray:
    """Seeded values of one property for the given indices (object array of str/None)."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return np.empty(0, dtype=object)
    if prop == "hubspot_owner_id":
        return _where(g.u("owner_null", idx) < 0.05, g.pick(schema.OWNER_IDS, "owner", idx))
    if prop.startswith("egendefinert_felt_"):
        vals = np.char.add(f"{prop[-3:]}-", g.n(prop, idx, 1000).astype(str)).astype(object)
        return _where(g.u(prop + "_null", idx) < 0.5, vals)
    out = _BY_TYPE[g.otype](g, prop, idx, store)
    if out is None:
        return np.full(len(idx), None, dtype=object)
    return out
