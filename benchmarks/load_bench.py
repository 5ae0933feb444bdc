"""Transform + load benchmark: raw-zone Parquet → finance tables, against plain COPY and ``DataFrame.to_sql``.

Entry point for the bench runner::

    from benchmarks import load_bench
    result = load_bench.run(scale=1.0, pg_dsn="postgresql://postgres@127.0.0.1:5432/test")  # -> dict

``run(scale=1.0, pg_dsn=DEFAULT_PG_DSN, out=None, *, workdir=None, sqlite=True, to_sql_sample=200_000,
keep=False, in_process=False) -> dict`` (``in_process``: every step in this process — smoke tests only).

- ``scale``: 1.0 = 1,000,000 contacts + 500,000 deals; 0.01 = a smoke run.
- ``pg_dsn``: a PostgreSQL database the bench may use; it creates and drops the schemas ``bench_load`` and
  ``bench_load_copy`` (nothing else is touched).
- ``out``: optional dict that is filled (and returned) with the results.

What is measured (all in the same run, same machine):

(a) ``copy``: plain ``COPY … FROM STDIN (FORMAT csv)`` of the same rows (the transformed column set, as
    text) into empty UNLOGGED all-TEXT tables — the floor any loader is compared with.
(b) ``transform``: the REAL transform task (``hubspot_finance.transform_step.transform_run``: raw Parquet →
    typed, one-row-per-id staged Parquet), per run, in its own process (time and peak RSS reported; it is a
    task of its own in the DAG, so it is not part of the load's figure).
    ``load_initial``: the REAL ``hubspot_finance.load.load_run`` (staged Parquet → Arrow → CSV → COPY, one
    transaction) into empty tables.
(c) ``load_upsert``: the same rows again where 20 % of the records changed (newer ``updatedAt``, changed
    name/phone/city or amount/stage), the rest identical (counted as unchanged).
(d) ``to_sql``: ``DataFrame.to_sql`` (SQLAlchemy + psycopg, pandas' default insert path) of already
    transformed rows, on a sample of ``to_sql_sample`` rows, scaled linearly to the full row count.
(e) ``sqlite``: our load (initial + 20 % upsert) into a SQLite file, and ``to_sql`` on the sample
    (SQLite runs on ``sqlite_scale`` × the full counts, default the same as ``scale`` capped at 0.3, since
    SQLite is the small-installation backend; its rows/s figures are what matter).

Each load runs in a fresh child process; its own peak RSS (``VmHWM``) is reported. The raw data is
generated with the project's own :class:`~hubspot_finance.rawzone.RawZone` writer: Norwegian-looking
contacts and deals with a small share of invalid values (bad e-mails/phones → warnings; malformed amounts,
unknown currencies, impossible close dates → rejects), archived records, merges and a few duplicate ids.

Result dict (seconds, rows/s, ratios): see :func:`run`'s return statement; ``ratios`` holds
``load_vs_copy`` (target ≤ 1.5), ``upsert_vs_copy`` (target ≤ 2.5), ``to_sql_vs_load`` (target ≥ 10); peak RSS
≤ 512 MiB per task (transform and load measured separately). Each load also reports ``profile``: the top
functions by cumulative time (cProfile), i.e. where the time goes (psycopg's ``wait`` and the COPY's
``finish`` are the server's share: parsing JSONB/timestamps/numerics, the primary-key index, WAL).

Command line: ``.venv/bin/python -m benchmarks.load_bench [--scale 0.01] [--pg-dsn DSN] [--no-sqlite]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PG_DSN = os.environ.get("HUBSPOT_SYNC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
FULL_CONTACTS = 1_000_000
FULL_DEALS = 500_000
CHANGED_SHARE = 0.2
SCHEMA = "bench_load"
COPY_SCHEMA = "bench_load_copy"
RUN_INITIAL, RUN_UPSERT = "bench_initial", "bench_upsert"
CHUNK_ROWS = 50_000
# against the plain COPY of the same rows measured in the same run; peak RSS per task (transform, load)
TARGETS = {"load_vs_copy": 1.5, "upsert_vs_copy": 2.5, "to_sql_vs_load": 10, "peak_rss_mib": 512}

ACCOUNT = {"portalId": 1, "companyCurrency": "NOK", "additionalCurrencies": ["EUR", "USD"], "timeZone": "Europe/Oslo"}
PIPELINES = [
    {"id": "default", "label": "Salg", "stages": [
        {"id": "appointmentscheduled", "label": "Møte booket", "metadata": {"isClosed": "false", "probability": "0.2"}},
        {"id": "qualifiedtobuy", "label": "Kvalifisert", "metadata": {"isClosed": "false", "probability": "0.4"}},
        {"id": "contractsent", "label": "Kontrakt sendt", "metadata": {"isClosed": "false", "probability": "0.9"}},
        {"id": "closedwon", "label": "Vunnet", "metadata": {"isClosed": "true", "probability": "1.0"}},
        {"id": "closedlost", "label": "Tapt", "metadata": {"isClosed": "true", "probability": "0.0"}},
    ]},
    {"id": "777", "label": "Fornyelser", "stages": [
        {"id": "888", "label": "Fornyet", "metadata": {"isClosed": "true", "probability": "1.0"}},
        {"id": "889", "label": "Til fornyelse", "metadata": {"isClosed": "false", "probability": "0.5"}},
    ]},
]
PROPERTY_TYPES = {
    "contacts": [{"name": "email", "type": "string"}, {"name": "lastmodifieddate", "type": "datetime"}],
    "companies": [{"name": "name", "type": "string"}],
    "deals": [{"name": "closedate", "type": "datetime"}, {"name": "amount", "type": "number"}],
}

FIRST = ["Ola", "Kari", "Ingrid", "Per", "Nils", "Marit", "Bjørn", "Åse", "Øystein", "Hege", "Lars", "Sigrid", "Knut",
         "Solveig", "Håkon", "Ragnhild", "Espen", "Tone", "Geir", "Liv", "Jørgen", "Astrid", "Trond", "Silje"]
LAST = ["Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen", "Jensen",
        "Berg", "Haugen", "Hagen", "Johnsen", "Pettersen", "Eriksen", "Bakken", "Solberg", "Dahl", "Lie", "Strand",
        "Sæther", "Løken", "Ødegård"]
CITIES = [("Oslo", "0150"), ("Bergen", "5003"), ("Trondheim", "7010"), ("Stavanger", "4006"), ("Tromsø", "9008"),
          ("Drammen", "3015"), ("Kristiansand", "4610"), ("Fredrikstad", "1606"), ("Ålesund", "6002"), ("Bodø", "8006")]
STREETS = ["Storgata", "Kirkegata", "Dronningens gate", "Kongens gate", "Bryggen", "Strandveien", "Skolegata", "Fjordveien"]
COMPANY_SUFFIX = ["AS", "ASA", "ANS", "DA", "Enk."]
LIFECYCLE = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]
ASCII = str.maketrans({"ø": "o", "å": "a", "æ": "ae", "Ø": "O", "Å": "A", "Æ": "Ae"})
STAGES = [("default", s["id"]) for s in PIPELINES[0]["stages"]] + [("777", "888"), ("777", "889")]


# ----------------------------------------------------------------------------- data generation
def _iso_ms(ms: int) -> str:
    s = np.datetime64(int(ms), "ms").astype(str)
    return s + "Z"


def _contacts(start: int, n: int, seed: int, changed: bool) -> list[dict[str, Any]]:
    """Records ``start … start+n-1``; ``changed`` = the upsert run: every 5th record is modified."""
    rng = np.random.default_rng(seed * 1_000_003 + start)
    base_ms = 1_704_067_200_000  # 2024-01-01
    first = rng.integers(0, len(FIRST), n)
    last = rng.integers(0, len(LAST), n)
    city = rng.integers(0, len(CITIES), n)
    street = rng.integers(0, len(STREETS), n)
    num = rng.integers(1, 120, n)
    phone = rng.integers(40_000_000, 99_999_999, n)
    kind = rng.random(n)
    created = base_ms + rng.integers(0, 180 * 86_400_000, n)
    updated = created + rng.integers(0, 90 * 86_400_000, n)
    life = rng.integers(0, len(LIFECYCLE), n)
    owner = rng.integers(1, 60, n)
    out = []
    for i in range(n):
        rid = 100_001 + start + i
        fn, ln = FIRST[first[i]], LAST[last[i]]
        cname, zipc = CITIES[city[i]]
        upd = int(updated[i])
        k = kind[i]
        email = f"{fn.translate(ASCII).lower()}.{ln.translate(ASCII).lower()}{rid % 997}@example.no"
        ph = f"+47 {phone[i] // 100000:03d} {phone[i] // 1000 % 100:02d} {phone[i] % 1000:03d}"
        if k < 0.010:
            email = f"{fn.lower()}.{ln.lower()}@"  # invalid → warning
        elif k < 0.015:
            email = f"  {fn}.{ln}{rid % 97}@Example.NO "  # valid after trim/lower
        elif k < 0.020:
            email = None
        if 0.020 <= k < 0.030:
            ph = "12 34"  # invalid → warning
        elif 0.030 <= k < 0.033:
            ph = f"+46 70 {phone[i] % 1000:03d} {phone[i] // 1000 % 100:02d} {phone[i] // 10 % 100:02d}"  # slow path
        elif 0.033 <= k < 0.060:
            ph = f"{phone[i]}"
        props = {
            "hs_object_id": str(rid), "createdate": _iso_ms(int(created[i])), "lastmodifieddate": _iso_ms(upd),
            "email": email, "firstname": fn, "lastname": ln, "phone": ph,
            "company": f"{LAST[(last[i] + 3) % len(LAST)]} {COMPANY_SUFFIX[i % len(COMPANY_SUFFIX)]}",
            "address": f"{STREETS[street[i]]} {num[i]}", "zip": zipc, "city": cname, "country": "Norway",
            "lifecyclestage": LIFECYCLE[life[i]], "hubspot_owner_id": str(owner[i]),
        }
        if k > 0.9995 and rid > 100_010:
            props["hs_merged_object_ids"] = f"{rid - 7};{rid}"
        if changed and (start + i) % 5 == 0:
            upd += 100 * 86_400_000
            props["lastmodifieddate"] = _iso_ms(upd)
            props["lastname"] = LAST[(last[i] + 1) % len(LAST)]
            props["city"], props["zip"] = CITIES[(city[i] + 1) % len(CITIES)]
            props["phone"] = f"+47 {(phone[i] + 1) // 100000:03d} {(phone[i] + 1) // 1000 % 100:02d} {(phone[i] + 1) % 1000:03d}"
        out.append(_record(rid, props, int(created[i]), upd, archived=0.990 < k < 0.995))
    return out


def _record(rid: int, props: dict[str, Any], created_ms: int, updated_ms: int, *, archived: bool) -> dict[str, Any]:
    """A record as HubSpot's API returns it (archived ones carry ``archivedAt``)."""
    rec = {"id": str(rid), "properties": props, "createdAt": _iso_ms(created_ms), "updatedAt": _iso_ms(updated_ms),
           "archived": archived}
    if archived:
        rec["archivedAt"] = _iso_ms(updated_ms + 1000)
    return rec


def _deals(start: int, n: int, seed: int, changed: bool) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed * 2_000_003 + start)
    base_ms = 1_704_067_200_000
    kind = rng.random(n)
    kroner = rng.integers(1_000, 5_000_000, n)
    ore = rng.integers(0, 100, n)
    stage = rng.integers(0, len(STAGES), n)
    cur = rng.random(n)
    created = base_ms + rng.integers(0, 180 * 86_400_000, n)
    updated = created + rng.integers(0, 90 * 86_400_000, n)
    close = created + rng.integers(0, 365 * 86_400_000, n)
    owner = rng.integers(1, 60, n)
    out = []
    for i in range(n):
        rid = 9_000_001 + start + i
        k = kind[i]
        amount = f"{kroner[i]}.{ore[i]:02d}"
        currency = "NOK" if cur[i] < 0.85 else ("EUR" if cur[i] < 0.93 else ("USD" if cur[i] < 0.98 else ""))
        pid, sid = STAGES[stage[i]]
        closedate = _iso_ms(int(close[i]))
        home = amount if currency in ("NOK", "") else f"{kroner[i] * 11}.{ore[i]:02d}"
        if k < 0.005:
            amount = f"{kroner[i] // 1000} {kroner[i] % 1000:03d}"  # "12 000" → reject
        elif k < 0.007:
            amount = f"{kroner[i]},{ore[i]:02d}"  # decimal comma → reject
        elif k < 0.010:
            currency = "SEK"  # not an account currency → reject
        elif k < 0.012:
            closedate = "2024-02-30"  # impossible date → reject
        elif k < 0.022:
            sid = "legacy_stage"  # unknown stage → warning
        elif k < 0.027:
            home = "n/a"  # warning
        elif k < 0.060:
            closedate = closedate[:10]  # date-only close dates
        elif k < 0.070:
            amount = f"{kroner[i]}"
        props = {
            "hs_object_id": str(rid), "createdate": _iso_ms(int(created[i])), "hs_lastmodifieddate": _iso_ms(int(updated[i])),
            "dealname": f"{LAST[i % len(LAST)]} {COMPANY_SUFFIX[i % len(COMPANY_SUFFIX)]} – avtale {rid}",
            "amount": amount, "deal_currency_code": currency, "amount_in_home_currency": home, "pipeline": pid,
            "dealstage": sid, "closedate": closedate, "hubspot_owner_id": str(owner[i]),
        }
        upd = int(updated[i])
        if changed and (start + i) % 5 == 0:
            upd += 100 * 86_400_000
            props["hs_lastmodifieddate"] = _iso_ms(upd)
            props["amount"] = f"{kroner[i] + 500}.{ore[i]:02d}" if k >= 0.007 else props["amount"]
            props["dealstage"] = "closedwon" if pid == "default" and sid != "legacy_stage" else props["dealstage"]
        out.append(_record(rid, props, int(created[i]), upd, archived=0.990 < k < 0.994))
    return out


def _write_dataset(args: tuple) -> int:
    """Child process: write one records dataset of a run with RawZone's RecordWriter."""
    root, object_type, run_id, n, seed, changed = args
    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import OBJECTS
    from hubspot_finance.rawzone import RawZone

    zone = RawZone(root, chunk_rows=CHUNK_ROWS)
    gen = _contacts if object_type == "contacts" else _deals
    w = zone.record_writer(object_type, run_id, OBJECTS[object_type].properties(load_mapping()))
    dup_every = 2000  # ~0.05 % of the records appear twice (HubSpot paging overlap), older copy first
    for start in range(0, n, CHUNK_ROWS):
        recs = gen(start, min(CHUNK_ROWS, n - start), seed, changed)
        w.write(recs)
        if start + CHUNK_ROWS < n:  # the duplicate shows up in the next chunk with the same data
            w.write([r for j, r in enumerate(recs) if j % dup_every == 7][:50])
    w.commit({"mode": "full", "window_start": None, "window_end": "2025-01-01T00:00:00Z", "api_calls": 0})
    return w.rows


def generate(root: str, contacts: int, deals: int, seed: int = 7, in_process: bool = False) -> dict[str, int]:
    """Write both runs (initial, 20 %-changed) of contacts and deals under ``root``, two processes at once
    (``in_process``: one after the other in this process — for smoke tests, where spawning costs more)."""
    from hubspot_finance.rawzone import RawZone

    zone = RawZone(root)
    for run_id in (RUN_INITIAL, RUN_UPSERT):
        zone.write_reference(run_id, "account", ACCOUNT)
        zone.write_reference(run_id, "pipelines_deals", PIPELINES)
        for ot, props in PROPERTY_TYPES.items():
            zone.write_reference(run_id, f"properties_{ot}", props)
    jobs = [(root, "contacts", RUN_INITIAL, contacts, seed, False), (root, "contacts", RUN_UPSERT, contacts, seed, True),
            (root, "deals", RUN_INITIAL, deals, seed, False), (root, "deals", RUN_UPSERT, deals, seed, True)]
    if in_process:
        rows = [_write_dataset(j) for j in jobs]
    else:
        with mp.get_context("spawn").Pool(2) as pool:
            rows = pool.map(_write_dataset, jobs)
    return {f"{j[1]}/{j[2]}": r for j, r in zip(jobs, rows)}


# ----------------------------------------------------------------------------- measured steps (child processes)
def _maxrss_mib() -> float:
    from benchmarks.common import peak_rss_mib

    return peak_rss_mib()


def _child_transform(args: tuple) -> dict[str, Any]:
    """Child process: the transform tasks of a bench run (contacts, deals); seconds and peak RSS."""
    root, run_id = args
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.transform_step import transform_run

    t0 = time.perf_counter()
    staged = transform_run(RawZone(root), run_id, object_types=["contacts", "deals"])
    return {"seconds": time.perf_counter() - t0, "rows": sum(m.rows for m in staged.values()),
            "peak_rss_mib": _maxrss_mib()}


def _profile_lines(prof: Any, top: int = 14) -> list[str]:
    """The ``top`` functions by cumulative time: what a reader needs to see where a load spends it."""
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    return [ln.rstrip() for ln in buf.getvalue().splitlines() if ln.strip()][-top - 1:]


def _child_load(args: tuple) -> dict[str, Any]:
    """Child process: one ``load_run`` of a bench run's staged data; seconds, summary, peak RSS and a profile."""
    import cProfile

    kind, target, root, run_id = args
    from hubspot_finance.load import LoadConfig, LoadPlan, load_run
    from hubspot_finance.rawzone import RawZone

    if kind == "postgres":
        import psycopg

        conn = psycopg.connect(target)
        cfg = LoadConfig(schema=SCHEMA)
    else:
        conn = sqlite3.connect(target)
        cfg = LoadConfig()
    zone = RawZone(root)
    plan = LoadPlan.from_zone(zone, run_id, object_types=["contacts", "deals"], associations=[], config=cfg)
    rss_before = _maxrss_mib()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    summary = load_run(conn, plan)
    prof.disable()
    seconds = time.perf_counter() - t0
    conn.close()
    objs = {k: {f: getattr(o, f) for f in ("extracted", "distinct", "inserted", "updated", "unchanged", "stale", "rejected",
                                            "deleted", "merged")} | {"warnings": sum(o.warnings.values())}
            for k, o in summary.objects.items()}
    return {"seconds": seconds, "status": summary.status, "objects": objs, "peak_rss_mib": _maxrss_mib(),
            "rss_before_load_mib": rss_before, "profile": _profile_lines(prof)}


def _sample_frames(root: str, run_id: str, limit: dict[str, int]) -> dict[str, Any]:
    """Transformed rows (what a naive loader would hand to ``to_sql``) of the first ``limit`` records."""
    import pandas as pd

    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.rawzone import RawZone
    from hubspot_finance.transform import Reference, transform_chunk

    zone = RawZone(root)
    ref = Reference.from_zone(zone, run_id)
    out = {}
    for ot, n in limit.items():
        frames, have = [], 0
        for frame in zone.iter_frames(zone.records_manifest(ot, run_id)):
            res = transform_chunk(frame.head(n - have), ot, mapping=load_mapping(), reference=ref, run_id=run_id)
            frames.append(res.rows)
            have += len(frame.head(n - have))
            if have >= n:
                break
        out[ot] = pd.concat(frames, ignore_index=True)
    return out


def _child_to_sql(args: tuple) -> dict[str, Any]:
    """Child process: ``DataFrame.to_sql`` (pandas' default path) of transformed sample rows."""
    kind, target, root, limit = args
    import sqlalchemy as sa

    frames = _sample_frames(root, RUN_INITIAL, limit)
    url = target.replace("postgresql://", "postgresql+psycopg://", 1) if kind == "postgres" else f"sqlite:///{target}"
    engine = sa.create_engine(url)
    schema = COPY_SCHEMA if kind == "postgres" else None
    rows = sum(len(f) for f in frames.values())
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for ot, f in frames.items():
            f.to_sql(f"to_sql_{ot}", conn, schema=schema, if_exists="replace", index=False)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": seconds, "rows": rows}


def _in_child(fn: Any, args: tuple, in_process: bool = False) -> Any:
    if in_process:  # smoke tests: no interpreter start-up; peak RSS is then this process's
        return fn(args)
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(fn, (args,))


# ----------------------------------------------------------------------------- plain COPY baseline
def _copy_baseline(dsn: str, workdir: Path) -> dict[str, Any]:
    """Export the loaded rows (transformed column set) as CSV, then time COPY into empty UNLOGGED TEXT tables."""
    import psycopg

    from hubspot_finance.mapping import load_mapping
    from hubspot_finance.objects import get_object
    from hubspot_finance.transform import table_columns

    out: dict[str, Any] = {"tables": {}}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {COPY_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {COPY_SCHEMA}")
        files = {}
        for ot in ("contacts", "deals"):
            decl = get_object(ot)
            cols = [c for c, _ in table_columns(decl, load_mapping())]
            path = workdir / f"copy_{decl.table}.csv"
            with path.open("wb") as fh, conn.cursor().copy(
                f"COPY (SELECT {', '.join(cols)} FROM {SCHEMA}.{decl.table}) TO STDOUT (FORMAT csv)"
            ) as cp:
                for block in cp:
                    fh.write(block)
            conn.execute(f"CREATE UNLOGGED TABLE {COPY_SCHEMA}.{decl.table} ({', '.join(c + ' text' for c in cols)})")
            files[decl.table] = (path, cols)
        total = 0.0
        for table, (path, cols) in files.items():
            t0 = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY {COPY_SCHEMA}.{table} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as cp, \
                    path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    cp.write(block)
            sec = time.perf_counter() - t0
            n = conn.execute(f"SELECT count(*) FROM {COPY_SCHEMA}.{table}").fetchone()[0]
            out["tables"][table] = {"rows": n, "seconds": sec, "bytes": path.stat().st_size}
            total += sec
            path.unlink()
        out["seconds"] = total
        out["rows"] = sum(t["rows"] for t in out["tables"].values())
    return out


def _reset_pg(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"DROP SCHEMA IF EXISTS {COPY_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {COPY_SCHEMA}")


def _rate(rows: int, seconds: float) -> float:
    return round(rows / seconds) if seconds > 0 else 0.0


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


# ----------------------------------------------------------------------------- entry points
def run(scale: float = 1.0, pg_dsn: str = DEFAULT_PG_DSN, out: dict | None = None, *, workdir: str | None = None,
        sqlite: bool = True, sqlite_scale: float | None = None, to_sql_sample: int = 200_000, keep: bool = False,
        log: Any = None, in_process: bool = False) -> dict[str, Any]:
    """Run the load benchmark; returns (and fills ``out`` with) the results dict (see the module docstring)."""
    log = log or (lambda msg: print(f"[load_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True))
    out = {} if out is None else out
    started = time.perf_counter()
    contacts, deals = max(1, round(FULL_CONTACTS * scale)), max(1, round(FULL_DEALS * scale))
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="load-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    root = (tmp / "raw").as_uri()
    try:
        t0 = time.perf_counter()
        written = generate(root, contacts, deals, in_process=in_process)
        out.update({"scale": scale, "contacts": contacts, "deals": deals, "changed_share": CHANGED_SHARE,
                    "raw_records": written, "generate_seconds": round(time.perf_counter() - t0, 2)})
        log(f"generated {contacts} contacts + {deals} deals (×2 runs) in {out['generate_seconds']} s")

        transforms = {r: _in_child(_child_transform, (root, r), in_process) for r in (RUN_INITIAL, RUN_UPSERT)}
        for r, t in transforms.items():
            log(f"transform {r}: {t['seconds']:.2f} s, peak RSS {t['peak_rss_mib']:.0f} MiB")
        _reset_pg(pg_dsn)
        initial = _in_child(_child_load, ("postgres", pg_dsn, root, RUN_INITIAL), in_process)
        log(f"postgres initial load: {initial['seconds']:.2f} s, peak RSS {initial['peak_rss_mib']:.0f} MiB")
        upsert = _in_child(_child_load, ("postgres", pg_dsn, root, RUN_UPSERT), in_process)
        log(f"postgres 20% upsert: {upsert['seconds']:.2f} s, peak RSS {upsert['peak_rss_mib']:.0f} MiB")
        loaded_rows = sum(o["distinct"] - o["stale"] for o in initial["objects"].values())
        copy = _copy_baseline(pg_dsn, tmp)
        log(f"plain COPY of {copy['rows']} rows: {copy['seconds']:.2f} s")
        sample_total = min(to_sql_sample, contacts + deals)
        limit = {"contacts": round(sample_total * contacts / (contacts + deals))}
        limit["deals"] = sample_total - limit["contacts"]
        to_sql = _in_child(_child_to_sql, ("postgres", pg_dsn, root, limit), in_process)
        full_rows = initial["objects"]["contacts"]["extracted"] + initial["objects"]["deals"]["extracted"]
        to_sql["scaled_seconds"] = to_sql["seconds"] * full_rows / max(1, to_sql["rows"])
        log(f"to_sql sample {to_sql['rows']} rows: {to_sql['seconds']:.2f} s (scaled {to_sql['scaled_seconds']:.1f} s)")
        out["transform"] = {r: {**t, "rows_per_s": _rate(full_rows, t["seconds"])} for r, t in transforms.items()}
        out["postgres"] = {
            "copy": {**copy, "rows_per_s": _rate(copy["rows"], copy["seconds"])},
            "load_initial": {**initial, "rows": full_rows, "rows_per_s": _rate(full_rows, initial["seconds"])},
            "load_upsert": {**upsert, "rows": full_rows, "rows_per_s": _rate(full_rows, upsert["seconds"])},
            "to_sql": {**to_sql, "rows_per_s": _rate(to_sql["rows"], to_sql["seconds"])},
            "loaded_rows": loaded_rows,
        }
        out["ratios"] = {
            "load_vs_copy": _ratio(initial["seconds"], copy["seconds"]),
            "upsert_vs_copy": _ratio(upsert["seconds"], copy["seconds"]),
            "load_and_upsert_vs_two_copies": _ratio(initial["seconds"] + upsert["seconds"], 2 * copy["seconds"]),
            "to_sql_vs_load": _ratio(to_sql["scaled_seconds"], initial["seconds"]),
        }
        out["targets"] = {"load_vs_copy": f"<= {TARGETS['load_vs_copy']}", "upsert_vs_copy": f"<= {TARGETS['upsert_vs_copy']}",
                          "to_sql_vs_load": f">= {TARGETS['to_sql_vs_load']}", "peak_rss_mib": f"<= {TARGETS['peak_rss_mib']}"}
        out["peak_rss_mib"] = max(initial["peak_rss_mib"], upsert["peak_rss_mib"],
                                  *(t["peak_rss_mib"] for t in transforms.values()))
        ratios = out["ratios"]
        out["met"] = {
            "load_vs_copy": ratios["load_vs_copy"] is not None and ratios["load_vs_copy"] <= TARGETS["load_vs_copy"],
            "upsert_vs_copy": ratios["upsert_vs_copy"] is not None and ratios["upsert_vs_copy"] <= TARGETS["upsert_vs_copy"],
            "to_sql_vs_load": ratios["to_sql_vs_load"] is not None and ratios["to_sql_vs_load"] >= TARGETS["to_sql_vs_load"],
            "peak_rss_mib": out["peak_rss_mib"] <= TARGETS["peak_rss_mib"],
        }

        if sqlite:
            s_scale = sqlite_scale if sqlite_scale is not None else min(scale, 0.3)
            s_root = root
            if s_scale != scale:
                s_root = (tmp / "raw_sqlite").as_uri()
                generate(s_root, max(1, round(FULL_CONTACTS * s_scale)), max(1, round(FULL_DEALS * s_scale)),
                         in_process=in_process)
            if s_root != root:
                for r in (RUN_INITIAL, RUN_UPSERT):
                    _in_child(_child_transform, (s_root, r), in_process)
            db = tmp / "finance.db"
            s_init = _in_child(_child_load, ("sqlite", str(db), s_root, RUN_INITIAL), in_process)
            s_up = _in_child(_child_load, ("sqlite", str(db), s_root, RUN_UPSERT), in_process)
            s_rows = s_init["objects"]["contacts"]["extracted"] + s_init["objects"]["deals"]["extracted"]
            s_sample = min(to_sql_sample, s_rows)
            s_limit = {"contacts": round(s_sample * 2 / 3)}
            s_limit["deals"] = s_sample - s_limit["contacts"]
            s_to_sql = _in_child(_child_to_sql, ("sqlite", str(tmp / "to_sql.db"), s_root, s_limit), in_process)
            s_to_sql["scaled_seconds"] = s_to_sql["seconds"] * s_rows / max(1, s_to_sql["rows"])
            out["sqlite"] = {
                "scale": s_scale, "rows": s_rows,
                "load_initial": {**s_init, "rows_per_s": _rate(s_rows, s_init["seconds"])},
                "load_upsert": {**s_up, "rows_per_s": _rate(s_rows, s_up["seconds"])},
                "to_sql": {**s_to_sql, "rows_per_s": _rate(s_to_sql["rows"], s_to_sql["seconds"])},
                "to_sql_vs_load": _ratio(s_to_sql["scaled_seconds"], s_init["seconds"]),
            }
            log(f"sqlite ({s_rows} rows): initial {s_init['seconds']:.2f} s, upsert {s_up['seconds']:.2f} s, "
                f"to_sql scaled {s_to_sql['scaled_seconds']:.1f} s")
        out["total_seconds"] = round(time.perf_counter() - started, 1)
        return out
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                import psycopg

                with psycopg.connect(pg_dsn, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
                    conn.execute(f"DROP SCHEMA IF EXISTS {COPY_SCHEMA} CASCADE")
            except Exception:
                pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 1M contacts + 500k deals (default)")
    ap.add_argument("--pg-dsn", default=DEFAULT_PG_DSN)
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--sqlite-scale", type=float, default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the raw zone, SQLite files and bench schemas")
    ap.add_argument("--json", default=None, help="also write the result dict to this file")
    a = ap.parse_args(argv)
    res = run(a.scale, a.pg_dsn, workdir=a.workdir, sqlite=not a.no_sqlite, sqlite_scale=a.sqlite_scale, keep=a.keep)
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if a.json:
        Path(a.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
