"""Run summary of a load: for logs, XCom (``to_dict()`` is JSON-safe) and asset event extras."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo


@dataclass
class ObjectSummary:
    object_type: str
    table: str
    extracted: int = 0  # rows in the raw-zone dataset (incl. duplicates and rejects)
    distinct: int = 0  # distinct ids after deduplication
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0  # incoming identical to stored
    stale: int = 0  # incoming older than stored (replay): ignored
    rejected: int = 0
    deleted: int = 0  # archived now (newly or again) or merged away
    merged: int = 0  # merged-away rows marked in this run
    purged: int = 0  # permanently deleted in HubSpot (found by the id sweep), marked in this run
    warnings: dict[str, int] = field(default_factory=dict)
    watermark: str | None = None

    @property
    def loaded(self) -> int:
        return self.inserted + self.updated


@dataclass
class AssociationSummary:
    name: str
    table: str
    rows: int = 0  # distinct (from, to) pairs read
    covered_from_ids: int = 0
    upserted: int = 0
    removed: int = 0
    stale: int = 0  # from-ids whose stored link set was read later than this one: kept


@dataclass
class RunSummary:
    run_id: str
    status: str = "success"
    mode: str | None = None
    objects: dict[str, ObjectSummary] = field(default_factory=dict)
    associations: dict[str, AssociationSummary] = field(default_factory=dict)
    contract_changes: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    migrations_applied: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name, obj in self.objects.items():
            d["objects"][name]["loaded"] = obj.loaded
        return d

    def format(self) -> str:
        lines = [f"run {self.run_id}: {self.status} (mode {self.mode})"]
        for o in self.objects.values():
            lines.append(
                f"  {o.object_type:<10} extracted {o.extracted}, inserted {o.inserted}, updated {o.updated}, "
                f"unchanged {o.unchanged}, stale {o.stale}, rejected {o.rejected}, deleted {o.deleted}, "
                f"merged {o.merged}, purged {o.purged}, warnings {sum(o.warnings.values())}"
            )
        for a in self.associations.values():
            lines.append(f"  {a.name:<22} pairs {a.rows}, from-ids {a.covered_from_ids}, upserted {a.upserted}, removed {a.removed}, stale {a.stale}")
        lines.append(f"  contract changes {self.contract_changes}")
        return "\n".join(lines)


REPORT_COLUMNS = ("extracted", "inserted", "updated", "unchanged", "rejected", "deleted")


def _local(moment: str | None, zone: ZoneInfo) -> str:
    if not moment:
        return "the beginning"
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def report_lines(summary: Mapping[str, Any], timezone: str) -> list[str]:
    """The run summary as a person reads it in the task log: a count table under 90 characters wide,
    then each object's window (in the account's time zone) and watermark."""
    zone = ZoneInfo(timezone)
    objects = summary.get("objects") or {}
    windows = summary.get("windows") or {}
    calls = summary.get("api_calls") or {}
    names = sorted(set(objects) | set(windows))
    verdict = "dry run: nothing was loaded" if summary.get("dry_run") else "loaded in one transaction"
    lines = [f"HubSpot sync {summary.get('run_id')}: {summary.get('status')}, {summary.get('mode')} run, {verdict}",
             f"{'object':<10}" + "".join(f"{c:>10}" for c in REPORT_COLUMNS) + f"{'API calls':>10}"]
    for name in names:
        obj = objects.get(name) or {}
        called = calls.get(name)
        lines.append(f"{name:<10}" + "".join(f"{obj.get(c, 0) or 0:>10}" for c in REPORT_COLUMNS)
                     + f"{called if called is not None else '-':>10}")
    for name in names:
        window = windows.get(name) or {}
        mark = (objects.get(name) or {}).get("watermark")
        lines.append(f"{name:<10} window {_local(window.get('window_start'), zone)} → {_local(window.get('window_end'), zone)} "
                     f"{timezone}, watermark now {_local(mark, zone) if mark else 'not set'}")
    for link in (summary.get("associations") or {}).values():
        lines.append(f"links {link.get('table')}: {link.get('upserted', 0)} added or kept, {link.get('removed', 0)} removed")
    lines.append(f"contract changes for invoicing: {summary.get('contract_changes', 0)}")
    budget = summary.get("daily_budget_left")
    lines.append(f"HubSpot daily budget left: {budget:,}" if isinstance(budget, int) else "HubSpot daily budget left: unknown")
    if summary.get("asset_events") is not None:
        lines.append("asset events: " + (", ".join(summary["asset_events"]) or "none"))
    for warning in [*(summary.get("warnings") or []), *(summary.get("reject_warnings") or [])]:
        lines.append(f"warning: {warning}")
    return lines
