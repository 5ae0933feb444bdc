"""Draws the curves that ``benchmarks.curves`` measured, from its JSON, so the PNGs and the table agree.

    python -m benchmarks.plots benchmarks/results/curves.json

Headless (matplotlib's Agg backend). Writes, beside the JSON, ``<name>-time.png``, ``<name>-rss.png``
and ``<name>-calls.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

COLORS = {"extract": "tab:blue", "transform+load": "tab:orange", "transform": "tab:green", "load": "tab:orange"}


def _thousands(axis: Any) -> None:
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _size_axis(ax: Any, points: list[dict[str, Any]]) -> list[int]:
    xs = [p["contacts"] for p in points]
    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:,}" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("portal size: contacts (deals = contacts / 2)")
    ax.grid(True, which="major", alpha=0.3)
    return xs


def _lines(ax: Any, points: list[dict[str, Any]], specs: list[tuple], x: Any = None) -> None:
    """One line per spec ``(value of a point, style, color, label)``; x is the portal size unless given."""
    for value, style, color, label in specs:
        xs = [x(p) if x else p["contacts"] for p in points]
        ax.plot(xs, [value(p) for p in points], style, color=color, label=label)


def _finish(fig: Any, axes: list[Any], path: Path) -> None:
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _time(points: list[dict[str, Any]], path: Path) -> None:
    fig, (ext, load) = plt.subplots(1, 2, figsize=(12, 4.8))
    xs = _size_axis(ext, points)
    _lines(ext, points, [
        (lambda p: p["extract"]["rate_floor_seconds"], "o-", COLORS["extract"], "extract: rate floor of the calls made"),
        (lambda p: p["extract"]["seconds"], "s--", "tab:cyan", "extract: measured with the limits off"),
        (lambda p: p["floors"]["full_list_only_seconds"], ":", "grey", "list-only floor (records / 100 at 19/s)"),
        (lambda p: p["floors"]["full_two_budget_seconds"], "-.", "black", "two-budget floor (list 19/s + search 5/s)"),
    ])
    ext.set_yscale("log")
    ext.set_ylabel("seconds")
    ext.set_title("Full extraction (HubSpot Professional rates)")
    _size_axis(load, points)
    for phase in points[0]["phases"]:
        load.plot(xs, [p["phases"][phase]["seconds"] for p in points], "o-", color=COLORS.get(phase), label=phase)
    if len(points[0]["phases"]) > 1:
        load.plot(xs, [sum(v["seconds"] for v in p["phases"].values()) for p in points], "o--", color="tab:red",
                  label="together")
    load.plot(xs, [p["copy"]["seconds"] for p in points], ":", color="black",
              label="plain COPY of the same rows (same run)")
    load.set_yscale("log")
    load.set_ylabel("seconds")
    load.set_title("Transform and load into PostgreSQL")
    _finish(fig, [ext, load], path)


def _rss(points: list[dict[str, Any]], limit: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.8))
    xs = _size_axis(ax, points)
    ax.plot(xs, [p["extract"]["peak_rss_mib"] for p in points], "o-", color=COLORS["extract"],
            label="extract (largest of the 3 tasks)")
    for phase in points[0]["phases"]:
        ax.plot(xs, [p["phases"][phase]["peak_rss_mib"] for p in points], "o-", color=COLORS.get(phase), label=phase)
    ax.axhline(limit, linestyle=":", color="red", label=f"limit {limit:,.0f} MiB")
    ax.set_ylim(0, limit * 1.1)
    ax.set_ylabel("peak RSS of one task process (MiB)")
    ax.set_title("Memory per task against portal size")
    _finish(fig, [ax], path)


def _calls(points: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.8))
    _lines(ax, points, [
        (lambda p: p["extract"]["calls"], "o-", "tab:blue", "full run"),
        (lambda p: p["floors"]["full_list_only_calls"], ":", "tab:blue", "full: list-only floor (records / 100 + associations)"),
    ], x=lambda p: p["records"])
    _lines(ax, points, [
        (lambda p: p["incremental"]["calls"], "o-", "tab:purple", "incremental run (x = changed records)"),
        (lambda p: p["floors"]["incremental_calls"], ":", "tab:purple",
         "incremental: search floor (changed / 200 + associations)"),
    ], x=lambda p: p["changed"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    _thousands(ax.xaxis)
    _thousands(ax.yaxis)
    ax.set_xlabel("records read")
    ax.set_ylabel("HubSpot calls")
    ax.set_title("HubSpot calls against records")
    ax.grid(True, which="major", alpha=0.3)
    _finish(fig, [ax], path)


def draw(json_path: Path) -> list[Path]:
    """The three PNGs beside ``json_path``; returns their paths."""
    data = json.loads(Path(json_path).read_text())
    points = data["points"]
    stem = Path(json_path).with_suffix("")
    paths = [stem.with_name(f"{stem.name}-{kind}.png") for kind in ("time", "rss", "calls")]
    _time(points, paths[0])
    _rss(points, data["rss_limit_mib"], paths[1])
    _calls(points, paths[2])
    return paths


if __name__ == "__main__":
    for p in draw(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/curves.json")):
        print(p)
