"""Set-based SQL for the entity tables (customers, companies, contracts), one statement per concern.

Which incoming row may replace a stored one (:func:`newer_condition`):
- it is not older (``updated_at``): replaying old data never overwrites newer data;
- a merged-away row is only replaced by strictly newer data;
- a deleted row comes back to life only with data modified after its deletion (a restore bumps
  HubSpot's last-modified time), so an older run's load can never revive it — and an archived row
  is never turned back from ``permanent`` by an older archived copy.
Deletions keep the values HubSpot shows for the deleted record, and ``contract_changes`` gets one
``is_deleted`` row for a deal deleted in any way (archived, merged, permanently deleted).
Each row keeps the content hash it was loaded with (:mod:`hubspot_finance.row_hash`); whatever changes a row
otherwise (a merge, a permanent delete) sets it NULL, so an equal hash always means equal loaded values.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd

from hubspot_finance.load.context import LoadContext, iso
from hubspot_finance.objects import ObjectDecl
from hubspot_finance.rawzone import Manifest, parse_hubspot_time
from hubspot_finance.row_hash import HASH_COLUMN
from hubspot_finance.schema import CHANGE_TRACKED, ENTITY_COLUMNS, quote
from hubspot_finance.summary import ObjectSummary

MERGE_COLUMNS = [("absorbed", "text"), ("survivor", "text"), ("survivor_updated_at", "ts")]


def merged_now(table: str) -> str:
    """Staging table: absorbed → survivor of the merges this load applied to ``table``."""
    return f"stg_merged_now_{table}"
PURGE_COLUMNS = [("hubspot_id", "text"), ("detected_at", "ts")]
# What permanently deleted contacts lose when HUBSPOT_SYNC_ERASE_PERSONAL_DATA is on.
PERSONAL_COLUMNS = {"customers": ("email", "first_name", "last_name", "phone", "address", "postal_code", "city",
                                  "validation_warnings")}
CHANGES_COLUMNS = "hubspot_deal_id, field, old_value, new_value, changed_at, sync_run_id, recorded_at"


def newer_condition(ctx: LoadContext, decl: ObjectDecl, incoming: str) -> str:
    """SQL: the ``incoming`` row may replace the stored row ``t`` (see the module docstring)."""
    ops, merged = ctx.ops, quote(decl.merged_into_column)
    i = incoming
    return (f"({i}.updated_at >= t.updated_at AND (t.{merged} IS NULL OR {i}.updated_at > t.updated_at) "
            f"AND (t.deletion_kind IS NULL OR (t.deletion_kind = 'archived' AND {i}.is_deleted = {ops.TRUE}) "
            f"OR {i}.updated_at > COALESCE(t.deleted_at, t.updated_at)))")


def _logical(decl: ObjectDecl, column: str) -> str:
    return dict(ENTITY_COLUMNS[decl.table])[column]


def record_changes(ctx: LoadContext, decl: ObjectDecl, source: str, newer: str) -> None:
    """One ``contract_changes`` row per tracked field that differs between stored and incoming (existing deals only)."""
    tracked = CHANGE_TRACKED.get(decl.table, ())
    if not tracked:
        return
    d, ops = ctx.d, ctx.ops
    T, key = d.t(decl.table), quote(decl.key_column)
    changed_at = {"is_deleted": f"CASE WHEN s.is_deleted = {ops.TRUE} THEN COALESCE(s.deleted_at, s.updated_at) ELSE s.updated_at END"}
    if d.name == "postgres":
        values = ", ".join(
            f"({n}, '{f}', {ops.text_of('t.' + quote(f), _logical(decl, f))}, {ops.text_of('s.' + quote(f), _logical(decl, f))}, "
            f"t.{quote(f)} IS DISTINCT FROM s.{quote(f)}, {changed_at.get(f, 's.updated_at')})"
            for n, f in enumerate(tracked))
        cur = ctx.execute(
            f"INSERT INTO {d.t('contract_changes')} ({CHANGES_COLUMNS}) "
            f"SELECT s.{key}, v.field, v.old_value, v.new_value, v.changed_at, %s, %s "
            f"FROM {source} s JOIN {T} t ON t.{key} = s.{key} "
            f"CROSS JOIN LATERAL (VALUES {values}) AS v(n, field, old_value, new_value, changed, changed_at) "
            f"WHERE {newer} AND v.changed ORDER BY v.n, s.{key}",
            (ctx.run_id, ctx.param(ctx.now, "ts")),
        )
        ctx.summary.contract_changes += max(cur.rowcount, 0)
        return
    for field in tracked:
        q, logical = quote(field), _logical(decl, field)
        cur = ctx.execute(
            f"INSERT INTO {d.t('contract_changes')} ({CHANGES_COLUMNS}) "
            f"SELECT s.{key}, ?, {ops.text_of('t.' + q, logical)}, {ops.text_of('s.' + q, logical)}, "
            f"{changed_at.get(field, 's.updated_at')}, ?, ? "
            f"FROM {source} s JOIN {T} t ON t.{key} = s.{key} WHERE {newer} AND t.{q} {ops.DISTINCT} s.{q} ORDER BY s.{key}",
            (field, ctx.run_id, ctx.param(ctx.now, "ts")),
        )
        ctx.summary.contract_changes += max(cur.rowcount, 0)


def _classify(ctx: LoadContext, decl: ObjectDecl, data_cols: list[str], S: str) -> tuple[str, dict[str, int]]:
    """PostgreSQL: ONE pass of staging × table that classifies each staged id — ``n`` new, ``c`` changed (newer
    and different), ``u`` unchanged, ``s`` stale — and flags deletions; reused for the counts, the contract
    changes, the UPDATE and the INSERT. Returns the class table and the counts per class (plus ``deleted``)."""
    ops = ctx.ops
    T, key = ctx.d.t(decl.table), quote(decl.key_column)
    newer = newer_condition(ctx, decl, "s")
    differs = (f"({', '.join('t.' + quote(c) for c in data_cols)}) {ops.DISTINCT} "
               f"({', '.join('s.' + quote(c) for c in data_cols)})")
    name = f"stg_class_{decl.table}"
    ctx.execute(f"DROP TABLE IF EXISTS {ops.stage_ref(name)}")
    ctx.execute(
        f"CREATE TEMP TABLE {quote(name)} ON COMMIT DROP AS SELECT s.{key} AS id, CASE WHEN t.{key} IS NULL THEN 'n' "
        f"WHEN NOT {newer} THEN 's' WHEN {differs} THEN 'c' ELSE 'u' END AS k, "
        f"(s.is_deleted AND (t.{key} IS NULL OR ({newer} AND NOT t.is_deleted))) AS del "
        f"FROM {S} s LEFT JOIN {T} t ON t.{key} = s.{key}"
    )
    C = ops.stage_ref(name)
    counts = {k: int(n) for k, n in ctx.execute(f"SELECT k, count(*) FROM {C} GROUP BY k").fetchall()}
    counts["deleted"] = int(ctx.fetch_one(f"SELECT count(*) FROM {C} WHERE del")[0])
    ops.analyze(ctx.conn.cursor(), C, ["id", "k"])
    return C, counts


def _upsert_postgres(ctx: LoadContext, decl: ObjectDecl, data_cols: list[str], S: str, s: ObjectSummary) -> None:
    ctx.execute("SET LOCAL work_mem = '256MB'")  # hash joins of staging × table in memory (this transaction only)
    T, key = ctx.d.t(decl.table), quote(decl.key_column)
    C, counts = _classify(ctx, decl, data_cols, S)
    s.distinct = sum(n for k, n in counts.items() if k != "deleted")
    s.stale, s.deleted, s.inserted, s.updated = counts.get("s", 0), counts["deleted"], counts.get("n", 0), counts.get("c", 0)
    write_cols = data_cols + [HASH_COLUMN]
    cols = ", ".join(quote(c) for c in write_cols)
    params = ctx.stamp()
    if s.updated:
        # only the changed rows, materialized once: contract changes and the UPDATE join just these to the table
        changed = f"stg_changed_{decl.table}"
        ctx.execute(f"DROP TABLE IF EXISTS {ctx.ops.stage_ref(changed)}")
        ctx.execute(f"CREATE TEMP TABLE {quote(changed)} ON COMMIT DROP AS SELECT s.* FROM {S} s JOIN {C} c "
                    f"ON c.id = s.{key} WHERE c.k = 'c'")
        X = ctx.ops.stage_ref(changed)
        ctx.ops.analyze(ctx.conn.cursor(), X, [decl.key_column])
        record_changes(ctx, decl, X, newer_condition(ctx, decl, "s"))
        assignments = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in write_cols if c != decl.key_column)
        ctx.execute(f"UPDATE {T} AS t SET {assignments}, synced_at = %s, sync_run_id = %s FROM {X} s "
                    f"WHERE t.{key} = s.{key}", params)
    if s.inserted:
        ctx.execute(f"INSERT INTO {T} ({cols}, synced_at, sync_run_id) SELECT {', '.join('s.' + quote(c) for c in write_cols)}, "
                    f"%s, %s FROM {S} s JOIN {C} c ON c.id = s.{key} WHERE c.k = 'n'", params)
    s.unchanged = counts.get("u", 0)
    if s.unchanged:  # equal values under another (or no) stored hash: keep the new hash, so the next load skips them
        ctx.execute(f"UPDATE {T} AS t SET {HASH_COLUMN} = s.{HASH_COLUMN} FROM {S} s JOIN {C} c ON c.id = s.{key} "
                    f"WHERE t.{key} = s.{key} AND c.k = 'u' AND s.{HASH_COLUMN} IS NOT NULL "
                    f"AND t.{HASH_COLUMN} IS DISTINCT FROM s.{HASH_COLUMN}")


def upsert(ctx: LoadContext, decl: ObjectDecl, columns: list[tuple[str, str]], source_name: str, s: ObjectSummary) -> None:
    """Staged rows → the table: counts, contract changes, then UPDATE of newer differing rows and INSERT of new ids."""
    d, ops = ctx.d, ctx.ops
    T, key = d.t(decl.table), quote(decl.key_column)
    S = ops.stage_ref(source_name)
    data_cols = [c for c, _ in columns]
    if d.name == "postgres":
        _upsert_postgres(ctx, decl, data_cols, S, s)
        return
    newer = newer_condition(ctx, decl, "s")

    def distinct_from(alias: str) -> str:
        return (f"({', '.join('t.' + quote(c) for c in data_cols)}) {ops.DISTINCT} "
                f"({', '.join(alias + '.' + quote(c) for c in data_cols)})")

    s.distinct, s.stale, s.deleted = (int(x or 0) for x in ctx.fetch_one(
        f"SELECT count(*), "
        f"COALESCE(SUM(CASE WHEN t.{key} IS NOT NULL AND NOT {newer} THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN s.is_deleted = {ops.TRUE} AND (t.{key} IS NULL OR ({newer} AND t.is_deleted = {ops.FALSE})) "
        f"THEN 1 ELSE 0 END), 0) FROM {S} s LEFT JOIN {T} t ON t.{key} = s.{key}"
    ))
    record_changes(ctx, decl, S, newer)
    all_cols = data_cols + [HASH_COLUMN, "synced_at", "sync_run_id"]
    insert_cols = ", ".join(quote(c) for c in all_cols)
    select = ", ".join([f"s.{quote(c)}" for c in data_cols + [HASH_COLUMN]] + [d.param, d.param])
    s.inserted = ctx.fetch_one(f"SELECT count(*) FROM {S} s LEFT JOIN {T} t ON t.{key} = s.{key} WHERE t.{key} IS NULL")[0]
    s.updated = ctx.fetch_one(f"SELECT count(*) FROM {S} s JOIN {T} t ON t.{key} = s.{key} WHERE {newer} AND {distinct_from('s')}")[0]
    sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in all_cols if c != decl.key_column)
    ctx.execute(
        f"INSERT INTO {T} AS t ({insert_cols}) SELECT {select} FROM {S} s WHERE true "
        f"ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {newer_condition(ctx, decl, 'excluded')} AND {distinct_from('excluded')}",
        ctx.stamp(),
    )
    s.unchanged = s.distinct - s.inserted - s.updated - s.stale


def _deletion_changes(ctx: LoadContext, decl: ObjectDecl, join_sql: str, when_sql: str, params: tuple) -> None:
    """``is_deleted`` false → true rows in ``contract_changes`` for deals about to be deleted by a merge or purge."""
    if "is_deleted" not in CHANGE_TRACKED.get(decl.table, ()):
        return
    d, ops = ctx.d, ctx.ops
    T, key = d.t(decl.table), quote(decl.key_column)
    cur = ctx.execute(
        f"INSERT INTO {d.t('contract_changes')} ({CHANGES_COLUMNS}) SELECT t.{key}, 'is_deleted', 'false', 'true', {when_sql}, "
        f"{d.param}, {d.param} FROM {T} t {join_sql} AND t.is_deleted = {ops.FALSE} ORDER BY t.{key}",
        (*params, ctx.run_id, ctx.param(ctx.now, "ts")),
    )
    ctx.summary.contract_changes += max(cur.rowcount, 0)


def apply_merges(ctx: LoadContext, decl: ObjectDecl, merges: list[tuple[str, str, datetime]], s: ObjectSummary) -> None:
    """Merged-away ids (from survivors' ``hs_merged_object_ids``): deleted, ``merged_into_*`` = the survivor."""
    d, ops = ctx.d, ctx.ops
    T, key, merged_col = d.t(decl.table), quote(decl.key_column), quote(decl.merged_into_column)
    M = ops.stage_ref("stg_merges")
    ops.create_stage(ctx.conn.cursor(), d, "stg_merges", MERGE_COLUMNS)
    ops.create_stage(ctx.conn.cursor(), d, merged_now(decl.table), [("absorbed", "text"), ("survivor", "text")])
    if not merges:
        return
    # one survivor per absorbed id: the newest merge wins (the same survivor may be read twice in a run)
    newest: dict[str, tuple[str, datetime]] = {}
    for absorbed, survivor, at in merges:
        if absorbed not in newest or (at, survivor) > (newest[absorbed][1], newest[absorbed][0]):
            newest[absorbed] = (survivor, at)
    frame = pd.DataFrame([(a, s_, at) for a, (s_, at) in newest.items()], columns=[c for c, _ in MERGE_COLUMNS])
    ops.write_stage(ctx.conn.cursor(), d, "stg_merges", MERGE_COLUMNS, frame)
    applies = (f"m.survivor_updated_at >= t.updated_at AND (t.{merged_col} {ops.DISTINCT} m.survivor OR t.is_deleted = {ops.FALSE}) "
               f"AND t.deletion_kind {ops.DISTINCT} 'permanent'")
    _deletion_changes(ctx, decl, f"JOIN {M} m ON t.{key} = m.absorbed WHERE {applies}", "m.survivor_updated_at", ())
    # the merges this load applies (not those an earlier load already did): their links move to the survivor
    ctx.execute(f"INSERT INTO {ops.stage_ref(merged_now(decl.table))} (absorbed, survivor) SELECT m.absorbed, m.survivor "
                f"FROM {M} m JOIN {T} t ON t.{key} = m.absorbed WHERE {applies}")
    cur = ctx.execute(
        f"UPDATE {T} AS t SET is_deleted = {ops.TRUE}, deleted_at = COALESCE(t.deleted_at, m.survivor_updated_at), "
        f"deletion_kind = 'merged', {merged_col} = m.survivor, updated_at = {ops.GREATEST}(t.updated_at, m.survivor_updated_at), "
        f"{HASH_COLUMN} = NULL, synced_at = {d.param}, sync_run_id = {d.param} FROM {M} m WHERE t.{key} = m.absorbed AND {applies}",
        ctx.stamp(),
    )
    s.merged = max(cur.rowcount, 0)
    s.deleted += s.merged


def apply_purges(ctx: LoadContext, decl: ObjectDecl, purged: list[dict[str, Any]], s: ObjectSummary) -> None:
    """Ids the id sweep found gone for good (GDPR deletes): deleted with kind ``permanent``, values kept.

    Only a row not modified after the id was found missing is marked (an older load replayed later
    cannot bring it back either: see :func:`newer_condition`). With ``erase_personal_data`` a
    contact's personal data is erased; the ids, amounts and links invoicing needs stay.
    """
    if not purged:
        return
    d, ops = ctx.d, ctx.ops
    T, key = d.t(decl.table), quote(decl.key_column)
    frame = pd.DataFrame({"hubspot_id": [str(p["id"]) for p in purged],
                          "detected_at": pd.to_datetime([p["detected_at"] for p in purged], utc=True)})
    ops.create_stage(ctx.conn.cursor(), d, "stg_purged", PURGE_COLUMNS)
    ops.write_stage(ctx.conn.cursor(), d, "stg_purged", PURGE_COLUMNS, frame)
    P = ops.stage_ref("stg_purged")
    applies = "t.updated_at <= p.detected_at AND (t.deletion_kind IS NULL OR t.deletion_kind = 'archived')"
    _deletion_changes(ctx, decl, f"JOIN {P} p ON t.{key} = p.hubspot_id WHERE {applies}", "p.detected_at", ())
    cur = ctx.execute(
        f"UPDATE {T} AS t SET is_deleted = {ops.TRUE}, deleted_at = p.detected_at, deletion_kind = 'permanent', "
        f"{HASH_COLUMN} = NULL, synced_at = {d.param}, sync_run_id = {d.param} FROM {P} p WHERE t.{key} = p.hubspot_id AND {applies}",
        ctx.stamp(),
    )
    s.purged = max(cur.rowcount, 0)
    s.deleted += s.purged
    personal = PERSONAL_COLUMNS.get(decl.table)
    if personal and ctx.plan.config.erase_personal_data:
        erased = ", ".join(f"{quote(c)} = NULL" for c in personal)
        ctx.execute(f"UPDATE {T} SET {erased}, properties = '{{}}', {HASH_COLUMN} = NULL WHERE deletion_kind = 'permanent' "
                    f"AND {key} IN (SELECT hubspot_id FROM {P})")
        ctx.execute(f"UPDATE {d.t('rejected_records')} SET raw_record = NULL WHERE object_type = {d.param} "
                    f"AND hubspot_id IN (SELECT hubspot_id FROM {P})", (decl.name,))


def record_rejects(ctx: LoadContext, decl: ObjectDecl, rejects: list[dict[str, Any]], staged_source: str | None,
                   s: ObjectSummary, gone: list[str] = ()) -> None:
    """Rejected rows into ``rejected_records`` (with their attempt number) and the retry list.

    The retry list (``record_retries``) holds every rejected id until a later run loads it: the
    extractor re-reads those ids each run, so a fix outside the record (a currency added to the
    account, a mapping change) lands without anyone editing it.
    """
    d = ctx.d
    R, Q = d.t("rejected_records"), d.t("record_retries")
    ctx.execute(f"DELETE FROM {R} WHERE run_id = {d.param} AND object_type = {d.param}", (ctx.run_id, decl.name))
    s.rejected = len(rejects)
    # the attempt number: one more than the list says, unless this very run counted it (a re-run of its load)
    attempts = {row[0]: int(row[1]) - (row[2] == ctx.run_id) for row in ctx.execute(
        f"SELECT hubspot_id, attempts, last_run_id FROM {Q} WHERE object_type = {d.param}", (decl.name,)).fetchall()}
    rows, retries = [], {}
    for reject in rejects:
        rid = reject["hubspot_id"]
        attempt = attempts.get(rid, 0) + 1
        if rid:
            retries[rid] = attempt
        rows.append((reject["object_type"], rid, reject["run_id"],
                     ctx.param(json.dumps(reject["reasons"], ensure_ascii=False, default=str), "json"),
                     ctx.param(json.dumps(reject["raw_record"], ensure_ascii=False, default=str), "json"),
                     ctx.param(ctx.now, "ts"), attempt))
    if rows:
        marks = ", ".join([d.param] * 7)
        ctx.conn.cursor().executemany(
            f"INSERT INTO {R} (object_type, hubspot_id, run_id, reasons, raw_record, rejected_at, attempt) VALUES ({marks})", rows)
    if retries:
        ctx.conn.cursor().executemany(
            f"INSERT INTO {Q} AS q (object_type, hubspot_id, attempts, first_rejected_at, last_run_id) "
            f"VALUES ({', '.join([d.param] * 5)}) ON CONFLICT (object_type, hubspot_id) DO UPDATE SET "
            "attempts = excluded.attempts, last_run_id = excluded.last_run_id",
            [(decl.name, rid, n, ctx.param(ctx.now, "ts"), ctx.run_id) for rid, n in retries.items()])
    loaded = (f"SELECT {quote(decl.key_column)} FROM {ctx.ops.stage_ref(staged_source)}" if staged_source
              else f"SELECT {quote(decl.key_column)} FROM {d.t(decl.table)} WHERE sync_run_id = {d.param}")
    ctx.execute(f"DELETE FROM {Q} WHERE object_type = {d.param} AND hubspot_id IN ({loaded})",
                (decl.name,) if staged_source else (decl.name, ctx.run_id))
    if gone:  # deleted in HubSpot since: nothing left to retry (its archived copy, if any, was read this run)
        ctx.conn.cursor().executemany(f"DELETE FROM {Q} WHERE object_type = {d.param} AND hubspot_id = {d.param}",
                                      [(decl.name, rid) for rid in gone if rid not in retries])


def move_watermark(ctx: LoadContext, object_type: str, manifest: Manifest, max_updated: datetime | None,
                   s: ObjectSummary) -> None:
    """Raise the object's watermark to where the extractor said this window's data reaches (never backwards)."""
    if "advances_to" in manifest.extra:
        # None (e.g. a manual range that does not join up with the watermark) leaves it where it is.
        watermark = parse_hubspot_time(manifest.extra["advances_to"])
    else:
        watermark = parse_hubspot_time(manifest.extra.get("window_end")) or max_updated
    if watermark is None:
        return
    s.watermark = iso(watermark)
    d, ops = ctx.d, ctx.ops
    ctx.execute(
        f"INSERT INTO {d.t('sync_state')} AS w (object_type, watermark, updated_at, run_id) VALUES ({d.param}, {d.param}, {d.param}, {d.param}) "
        f"ON CONFLICT (object_type) DO UPDATE SET watermark = {ops.GREATEST}(COALESCE(w.watermark, excluded.watermark), excluded.watermark), "
        "updated_at = excluded.updated_at, run_id = excluded.run_id",
        (object_type, ctx.param(watermark, "ts"), ctx.param(ctx.now, "ts"), ctx.run_id),
    )
