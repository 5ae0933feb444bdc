"""Stacked bar charts as inline SVG, drawn in Python: no JavaScript and nothing fetched from elsewhere,
so the page works offline and inside the Airflow UI's sandboxed frame."""

from __future__ import annotations

from html import escape

from hubspot_sync_page.queries import COUNT_FIELDS, RunRecord

COLOURS = {"inserted": "#2e7d32", "updated": "#1565c0", "deleted": "#6d4c41", "rejected": "#c62828"}
BAR, GAP, HEIGHT, AXIS = 14, 4, 110, 34  # px: bar width, gap, plot height, left axis width


def stacked_counts_svg(runs: list[RunRecord], object_type: str) -> str:
    """One bar per run (oldest left), stacked inserted / updated / deleted / rejected for ``object_type``.

    Linear scale from 0 to the largest bar; every segment carries a ``<title>`` with the exact count.
    """
    ordered = list(reversed(runs))
    stacks = [(run, _counts(run, object_type)) for run in ordered]
    top = max([sum(c.values()) for _, c in stacks] + [1])
    width = AXIS + max(len(stacks), 1) * (BAR + GAP) + GAP
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{HEIGHT + 22}" viewBox="0 0 {width} {HEIGHT + 22}" '
        f'aria-label="{escape(object_type)}: inserted, updated, deleted and rejected per run, last {len(stacks)} runs">',
        f'<text x="{AXIS - 4}" y="10" text-anchor="end" class="axis">{top:,}</text>',
        f'<text x="{AXIS - 4}" y="{HEIGHT}" text-anchor="end" class="axis">0</text>',
        f'<line x1="{AXIS}" y1="{HEIGHT}" x2="{width}" y2="{HEIGHT}" class="base"/>',
    ]
    for index, (run, counts) in enumerate(stacks):
        x = AXIS + GAP + index * (BAR + GAP)
        y = float(HEIGHT)
        if not any(counts.values()):
            parts.append(f'<rect x="{x}" y="{HEIGHT - 1}" width="{BAR}" height="1" class="empty">'
                         f'<title>{escape(run.run_id)}: no changes</title></rect>')
        for name in COUNT_FIELDS:
            value = counts[name]
            if not value:
                continue
            h = max(value / top * (HEIGHT - 12), 1.0)
            y -= h
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{BAR}" height="{h:.1f}" fill="{COLOURS[name]}">'
                         f'<title>{escape(run.run_id)}: {value:,} {name}</title></rect>')
        if run.status == "failed":
            parts.append(f'<text x="{x + BAR / 2}" y="{HEIGHT + 14}" text-anchor="middle" class="failed">'
                         f'✕<title>{escape(run.run_id)} failed</title></text>')
    parts.append("</svg>")
    return "".join(parts)


def legend_html() -> str:
    return " ".join(f'<span class="key"><span class="swatch" style="background:{c}"></span>{n}</span>'
                    for n, c in COLOURS.items())


def _counts(run: RunRecord, object_type: str) -> dict[str, int]:
    for counts in run.objects:
        if counts.object_type == object_type:
            return {name: getattr(counts, name) for name in COUNT_FIELDS}
    return dict.fromkeys(COUNT_FIELDS, 0)
