"""The link tables (contract_contacts, contract_companies, customer_companies) and ``primary_company_id``.

A record's link set is replaced whole when its associations were read — but only by a set read no
earlier than the stored one (``link_versions``), so an older run's load, cleared and re-run after a
newer one, never reverts links. Then, as HubSpot shows them: a merged-away record's links move to
the survivor, links from or to a deleted record disappear, and each deal
whose company links changed gets its ``primary_company_id`` recomputed (deleted deals keep theirs).
"""

from __future__ import annotations

import json

import pandas as pd

from hubspot_finance.load.context import LoadContext
from hubspot_finance.objects import ASSOCIATIONS, AssociationDecl, get_association, get_object
from hubspot_finance.rawzone import Manifest, parse_hubspot_time
from hubspot_finance.schema import quote
from hubspot_finance.summary import AssociationSummary

TOUCHED = "stg_touched_deals"  # deals whose company links changed in this load


def start(ctx: LoadContext) -> None:
    ctx.ops.create_stage(ctx.conn.cursor(), ctx.d, TOUCHED, [("hubspot_deal_id", "text")])


def _touch(ctx: LoadContext, decl: AssociationDecl, select_deal_ids: str, params: tuple = ()) -> None:
    if decl.table == "contract_companies":
        ctx.execute(f"INSERT INTO {ctx.ops.stage_ref(TOUCHED)} (hubspot_deal_id) {select_deal_ids}", params)


def read_at(manifest: Manifest):
    """When the dataset's associations were read (the extractor's start), for versioning link sets."""
    return parse_hubspot_time(manifest.extra.get("read_at")) or parse_hubspot_time(manifest.committed_at)


def load_links(ctx: LoadContext, manifest: Manifest) -> None:
    from_type, to_type = manifest.name.split("_to_", 1)
    decl = get_association(from_type, to_type)
    d, ops = ctx.d, ctx.ops
    s = AssociationSummary(decl.name, decl.table)
    ctx.summary.associations[decl.name] = s
    f, t = decl.from_column, decl.to_column
    pair_cols = [(f, "text"), (t, "text"), ("is_primary", "bool"), ("labels", "json")]
    cur = ctx.conn.cursor()
    ops.create_stage(cur, d, "stg_assoc", pair_cols)
    ops.create_stage(cur, d, "stg_cov", [("from_id", "text")])
    for table in ctx.plan.zone.iter_tables(manifest):
        frame = pd.DataFrame({
            f: table.column("from_id").to_pylist(), t: table.column("to_id").to_pylist(),
            "is_primary": table.column("is_primary").to_pylist(),
            "labels": [json.dumps(x or [], ensure_ascii=False) for x in table.column("labels").to_pylist()],
        })
        ops.write_stage(cur, d, "stg_assoc", pair_cols, frame)
    for table in ctx.plan.zone.iter_from_ids(manifest):
        ops.write_stage(cur, d, "stg_cov", [("from_id", "text")], pd.DataFrame({"from_id": table.column("from_id").to_pylist()}))
    A, C, V = d.t(decl.table), ops.stage_ref("stg_cov"), d.t("link_versions")
    qf, qt = quote(f), quote(t)
    # every from-id present in the pairs counts as read too
    ctx.execute(f"INSERT INTO {C} (from_id) SELECT DISTINCT {qf} FROM {ops.stage_ref('stg_assoc')}")
    # a deleted record has no links in HubSpot (a merged-away id's read shows its survivor's): never load any
    from_decl = get_object(decl.from_type)
    ctx.execute(f"DELETE FROM {C} WHERE from_id IN (SELECT {quote(from_decl.key_column)} FROM {d.t(from_decl.table)} "
                f"WHERE is_deleted = {ops.TRUE})")
    ops.analyze(ctx.conn.cursor(), C)
    version = ctx.param(read_at(manifest), "ts")
    s.stale = ctx.execute(
        f"DELETE FROM {C} WHERE from_id IN (SELECT from_id FROM {V} WHERE association = {d.param} AND read_at > {d.param})",
        (decl.name, version)).rowcount
    s.stale = max(s.stale or 0, 0)
    ctx.execute(f"DROP TABLE IF EXISTS {ops.stage_ref('src_assoc')}")
    ctx.execute(ops.assoc_merge_sql("stg_assoc", "src_assoc", f, t))
    S = ops.stage_ref("src_assoc")
    # NOT EXISTS (an anti-join), never NOT IN: PostgreSQL runs NOT IN over a big subquery row by row
    ops.analyze(ctx.conn.cursor(), S)
    ctx.execute(f"DELETE FROM {S} WHERE NOT EXISTS (SELECT 1 FROM {C} c WHERE c.from_id = {S}.{qf})")
    _touch(ctx, decl, f"SELECT DISTINCT from_id FROM {C}")  # read now: its primary company is recomputed
    s.rows = ctx.fetch_one(f"SELECT count(*) FROM {S}")[0]
    s.covered_from_ids = ctx.fetch_one(f"SELECT count(DISTINCT from_id) FROM {C}")[0]
    removed = (f"FROM {A} WHERE {qf} IN (SELECT from_id FROM {C}) AND NOT EXISTS "
               f"(SELECT 1 FROM {S} s WHERE s.{qf} = {A}.{qf} AND s.{qt} = {A}.{qt})")
    _touch(ctx, decl, f"SELECT {qf} {removed}")
    s.removed = max(ctx.execute(f"DELETE {removed}").rowcount, 0)
    changed = (f"FROM {S} s LEFT JOIN {A} a ON a.{qf} = s.{qf} AND a.{qt} = s.{qt} "
               f"WHERE a.{qf} IS NULL OR (a.is_primary, a.labels) {ops.DISTINCT} (s.is_primary, s.labels)")
    _touch(ctx, decl, f"SELECT s.{qf} {changed}")
    cur = ctx.execute(
        f"INSERT INTO {A} AS a ({qf}, {qt}, is_primary, labels, synced_at, sync_run_id) "
        f"SELECT s.{qf}, s.{qt}, s.is_primary, s.labels, {d.param}, {d.param} FROM {S} s WHERE true "
        f"ON CONFLICT ({qf}, {qt}) DO UPDATE SET is_primary = excluded.is_primary, labels = excluded.labels, "
        f"synced_at = excluded.synced_at, sync_run_id = excluded.sync_run_id "
        f"WHERE (a.is_primary, a.labels) {ops.DISTINCT} (excluded.is_primary, excluded.labels)",
        ctx.stamp(),
    )
    s.upserted = max(cur.rowcount, 0)
    ctx.execute(
        f"INSERT INTO {V} AS v (association, from_id, read_at, run_id) SELECT DISTINCT {d.param}, from_id, "
        f"{d.param}, {d.param} FROM {C} WHERE true ON CONFLICT (association, from_id) DO UPDATE SET "
        f"read_at = excluded.read_at, run_id = excluded.run_id WHERE excluded.read_at >= v.read_at",
        (decl.name, version, ctx.run_id),
    )


def repoint_merged(ctx: LoadContext) -> None:
    """HubSpot moves a merged-away record's associations to the survivor; do the same.

    The other side of such a link (e.g. the deal of a merged contact) may not be re-read in this run:
    without this it would still point at the absorbed id. Only merges this load applied move links
    (an older load replayed later moves nothing again); several records merged into one survivor
    give one link each (a link that was primary stays primary).
    """
    from hubspot_finance.load.entities import merged_now

    d, ops = ctx.d, ctx.ops
    for object_type in ctx.plan.records:
        decl = get_object(object_type)
        merged = f"SELECT absorbed, survivor FROM {ops.stage_ref(merged_now(decl.table))}"
        for assoc in ASSOCIATIONS:
            for side, col, other in ((assoc.from_type, assoc.from_column, assoc.to_column),
                                     (assoc.to_type, assoc.to_column, assoc.from_column)):
                if side != object_type:
                    continue
                A, qc, qo = d.t(assoc.table), quote(col), quote(other)
                deal = "m.survivor" if col == assoc.from_column else f"x.{quote(assoc.from_column)}"
                # a merged-away record's own primary link is not the survivor's primary (HubSpot keeps the
                # survivor's); a link *to* a merged-away record keeps its primary flag on the survivor
                primary = ops.any_true("x.is_primary") if col == assoc.to_column else ops.FALSE
                _touch(ctx, assoc, f"SELECT {deal} FROM {A} x JOIN ({merged}) m ON x.{qc} = m.absorbed")
                ctx.execute(
                    f"INSERT INTO {A} AS a ({qc}, {qo}, is_primary, labels, synced_at, sync_run_id) "
                    f"SELECT m.survivor, x.{qo}, {primary}, {ops.any_value('x.labels')}, {d.param}, {d.param} "
                    f"FROM {A} x JOIN ({merged}) m ON x.{qc} = m.absorbed GROUP BY m.survivor, x.{qo} "
                    f"ON CONFLICT ({quote(assoc.from_column)}, {quote(assoc.to_column)}) DO UPDATE SET "
                    f"is_primary = {ops.bool_or('a.is_primary', 'excluded.is_primary')}, synced_at = excluded.synced_at, "
                    f"sync_run_id = excluded.sync_run_id",
                    ctx.stamp(),
                )
                ctx.execute(f"DELETE FROM {A} WHERE {qc} IN (SELECT absorbed FROM ({merged}) m)")


def drop_links_of_deleted(ctx: LoadContext) -> None:
    """Links from or to a deleted record (archived, merged away, permanently deleted) disappear, as in HubSpot."""
    d, ops = ctx.d, ctx.ops
    for assoc in ASSOCIATIONS:
        A = d.t(assoc.table)
        removed = 0
        # One statement per end, not one with "… IN (…) OR … IN (…)": PostgreSQL cannot turn an OR of
        # sublinks into a semi-join, and these two statements took 25 of the 43 s load of a 250,000-contact
        # portal in the curves benchmark (the load grew to 795 s at 1,000,000).
        for object_type, column in ((assoc.from_type, assoc.from_column), (assoc.to_type, assoc.to_column)):
            decl = get_object(object_type)
            gone = (f"FROM {A} WHERE {quote(column)} IN "
                    f"(SELECT {quote(decl.key_column)} FROM {d.t(decl.table)} WHERE is_deleted = {ops.TRUE})")
            _touch(ctx, assoc, f"SELECT {quote(assoc.from_column)} {gone}")
            removed += max(ctx.execute(f"DELETE {gone}").rowcount, 0)
        if removed and assoc.name in ctx.summary.associations:
            ctx.summary.associations[assoc.name].removed += removed


def recompute_primary_companies(ctx: LoadContext) -> None:
    """``contracts.primary_company_id`` follows the primary deal→company link of each deal touched in this load."""
    d, ops = ctx.d, ctx.ops
    K, L, touched = d.t("contracts"), d.t("contract_companies"), ops.stage_ref(TOUCHED)
    ops.analyze(ctx.conn.cursor(), touched)
    primaries = (f"SELECT t.hubspot_deal_id AS deal, MIN(CASE WHEN cc.is_primary = {ops.TRUE} THEN cc.hubspot_company_id END) "
                 f"AS company FROM (SELECT DISTINCT hubspot_deal_id FROM {touched}) t LEFT JOIN {L} cc "
                 "ON cc.hubspot_deal_id = t.hubspot_deal_id GROUP BY t.hubspot_deal_id")
    ctx.execute(
        f"UPDATE {K} AS k SET primary_company_id = p.company FROM ({primaries}) p WHERE k.hubspot_deal_id = p.deal "
        f"AND k.is_deleted = {ops.FALSE} AND k.primary_company_id {ops.DISTINCT} p.company"
    )
