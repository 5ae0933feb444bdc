"""Everything the page shows, gathered once per request into one dataclass (the HTML and the JSON
endpoint render the same :class:`Dashboard`, so the tests of one hold for the other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hubspot_finance.config import OBJECT_TYPES, SyncConfig
from hubspot_sync_page import freshness as fresh
from hubspot_sync_page.links import AirflowLinks, hubspot_record_url, portal_id
from hubspot_sync_page.queries import ChangeRow, FinanceReader, RejectRow, RunRecord

EXAMPLES_PER_RULE = 5


class NoRunsYet(LookupError):
    """The tables exist, but hold no run."""


@dataclass(frozen=True)
class ObjectFreshness:
    object_type: str
    status: fresh.Status
    reason: str
    watermark: datetime | None
    age_seconds: float | None
    last_success_run_id: str | None
    last_success_at: datetime | None
    last_success_url: str | None
    last_run_status: str | None  # the newest run's outcome, e.g. "failed" after a success
    last_run_error: str | None


@dataclass(frozen=True)
class RunView:
    run: RunRecord
    airflow_url: str
    api_calls: int | None
    daily_budget_left: int | None


@dataclass(frozen=True)
class RejectExample:
    reject_id: int
    object_type: str
    hubspot_id: str | None
    hubspot_url: str | None
    field: str | None
    value: str | None
    message: str | None
    run_id: str
    run_url: str
    attempt: int
    rejected_at: datetime | None
    still_open: bool


@dataclass(frozen=True)
class RejectGroup:
    rule: str
    records: int  # distinct records rejected by this rule in the shown runs
    still_open: int  # of which still on the retry list (not loaded since)
    examples: tuple[RejectExample, ...]


@dataclass(frozen=True)
class ChangeView:
    change: ChangeRow
    hubspot_url: str | None  # the deal in HubSpot
    run_url: str


@dataclass(frozen=True)
class ScheduleView:
    cron: str
    time_zone: str
    interval_seconds: float
    grace_seconds: float
    due: datetime
    rule: str


@dataclass(frozen=True)
class Dashboard:
    generated_at: datetime
    time_zone: str
    dag_url: str
    schedule: ScheduleView
    freshness: tuple[ObjectFreshness, ...]
    runs: tuple[RunView, ...]
    budget_recorded: bool  # sync_runs has a daily_budget_left column
    reject_groups: tuple[RejectGroup, ...]
    rejects_read: int
    contract_changes: tuple[ChangeView, ...]
    portal_id: int | None
    notes: tuple[str, ...] = field(default=())


def build_dashboard(reader: FinanceReader, cfg: SyncConfig, now: datetime, links: AirflowLinks) -> Dashboard:
    """Read and judge everything for one page view; raises :class:`NoRunsYet` on an empty database."""
    runs = reader.recent_runs()
    watermarks = reader.watermarks()
    if not runs and not any(w.watermark for w in watermarks.values()):
        raise NoRunsYet("the finance tables exist but no run has been recorded yet")
    schedule = fresh.schedule_at(cfg, now)
    successes, latest = reader.last_runs(successful=True), reader.last_runs(successful=False)
    freshness = []
    for object_type in OBJECT_TYPES:
        mark = watermarks.get(object_type)
        verdict = fresh.judge(mark.watermark if mark else None, schedule)
        ok, last = successes.get(object_type), latest.get(object_type)
        freshness.append(ObjectFreshness(
            object_type, verdict.status, verdict.reason, mark.watermark if mark else None,
            (now - mark.watermark).total_seconds() if mark and mark.watermark else None,
            ok.run_id if ok else None, ok.finished_at if ok else None, links.run(ok.run_id) if ok else None,
            last.status if last else None, last.error if last and last.status != "success" else None))
    portal = portal_id(reader.portal_id())
    rejects = reader.rejects([r.run_id for r in runs])
    notes = () if reader.budget_recorded else (
        "HubSpot's daily budget left is not recorded in sync_runs yet (only in each run's summary), nor the "
        "portal id for links to HubSpot: the next load adds both (schema v4). API calls are recorded.",)
    return Dashboard(
        generated_at=now, time_zone=cfg.timezone, dag_url=links.dag(),
        schedule=ScheduleView(schedule.cron, schedule.time_zone, schedule.interval.total_seconds(),
                              schedule.grace.total_seconds(), schedule.due, fresh.describe_rule(schedule)),
        freshness=tuple(freshness),
        runs=tuple(RunView(r, links.run(r.run_id), r.api_calls, r.daily_budget_left) for r in runs),
        budget_recorded=not notes,
        reject_groups=group_rejects(rejects, portal, links),
        rejects_read=len(rejects),
        contract_changes=tuple(ChangeView(c, hubspot_record_url(portal, "deals", c.deal_id), links.run(c.run_id))
                               for c in reader.contract_changes()),
        portal_id=portal, notes=notes,
    )


def group_rejects(rows: list[RejectRow], portal: int | None, links: AirflowLinks) -> tuple[RejectGroup, ...]:
    """Rejections grouped by rule, most records first; a record with several rules is in each group."""
    groups: dict[str, list[tuple[RejectRow, dict[str, Any]]]] = {}
    for row in rows:
        rules: dict[str, dict[str, Any]] = {}
        for reason in row.reasons or ({"rule": "unknown"},):
            rules.setdefault(str(reason.get("rule") or "unknown"), reason)
        for rule, reason in rules.items():
            groups.setdefault(rule, []).append((row, reason))
    out = []
    for rule, members in groups.items():
        examples = tuple(
            RejectExample(row.reject_id, row.object_type, row.hubspot_id,
                          hubspot_record_url(portal, row.object_type, row.hubspot_id),
                          _text(reason.get("field")), _text(reason.get("value")), _text(reason.get("message")),
                          row.run_id, links.run(row.run_id), row.attempt, row.rejected_at, row.still_open)
            for row, reason in members[:EXAMPLES_PER_RULE])
        out.append(RejectGroup(rule, len(members), sum(row.still_open for row, _ in members), examples))
    return tuple(sorted(out, key=lambda g: (-g.records, g.rule)))


def _text(value: Any, limit: int = 120) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def age_text(seconds: float | None) -> str:
    return "—" if seconds is None else fresh.human_duration(timedelta(seconds=seconds))
