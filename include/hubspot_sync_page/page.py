"""The page's HTML: Jinja2 with autoescaping (HubSpot values are user input), inline CSS and SVG.

Times are shown in the account's time zone with the zone named; they are stored in UTC.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup

from hubspot_finance.config import OBJECT_TYPES
from hubspot_sync_page.chart import legend_html, stacked_counts_svg
from hubspot_sync_page.dashboard import Dashboard, age_text
from hubspot_sync_page.links import DAG_ID

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 20px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.muted{color:#59636e}.small{font-size:12px}
table{border-collapse:collapse;margin:4px 0 8px}th,td{padding:4px 10px;border-bottom:1px solid #d1d9e0;text-align:left;vertical-align:top}
th{font-weight:600;background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;color:#fff}
.green{background:#2e7d32}.amber{background:#b26a00}.red{background:#c62828}.failed{color:#c62828}
.charts{display:flex;flex-wrap:wrap;gap:24px}.charts figure{margin:0}.charts figcaption{font-weight:600}
.chart .axis{font-size:10px;fill:#59636e}.chart .base{stroke:#d1d9e0}.chart .empty{fill:#d1d9e0}
.key{margin-right:12px}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.notice{padding:12px 16px;border:1px solid #d1d9e0;border-radius:6px;background:#f6f8fa;max-width:760px}
code{font-size:12px;background:#f6f8fa;padding:1px 4px;border-radius:3px}
@media (prefers-color-scheme: dark){body{background:#0d1117;color:#e6edf3}th,.notice,code{background:#161b22}
th,td{border-color:#30363d}.muted{color:#9198a1}a{color:#4493f8}}
"""

# Inside the Airflow UI this page is a sandboxed iframe that may neither navigate the top window nor open
# pop-ups. Same origin as the UI, it can hand a link to the UI's own document instead; elsewhere (the page
# opened on its own) links behave normally.
PARENT_LINKS_JS = """
document.addEventListener("click", function (event) {
  var link = event.target.closest ? event.target.closest("a[data-parent]") : null;
  if (!link || window.parent === window) return;
  try {
    var doc = window.parent.document, a = doc.createElement("a");
    a.href = link.href;
    if (link.target) { a.target = link.target; a.rel = "noopener noreferrer"; }
    doc.body.appendChild(a); a.click(); a.remove();
    event.preventDefault();
  } catch (e) { /* not inside the same-origin Airflow UI: follow the link here */ }
});
"""

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>HubSpot sync</title><style>{{ style }}</style></head>
<body>{% block body %}{% endblock %}<script>{{ script }}</script></body></html>"""

EMPTY = """{% extends "base" %}{% block body %}
<h1>HubSpot sync</h1>
<div class="notice"><p><strong>{{ headline }}</strong></p><p class="muted">{{ detail }}</p>
{% if dag_url %}<p><a href="{{ dag_url }}" data-parent>Open {{ dag_id }}</a> and trigger it (or wait for its schedule).</p>{% endif %}
</div>{% endblock %}"""

DASHBOARD = """{% extends "base" %}{% block body %}
<h1>HubSpot sync</h1>
<div class="muted small">As of {{ local(d.generated_at) }}. Times in {{ d.time_zone }}, stored in UTC.
DAG <a href="{{ d.dag_url }}" data-parent>{{ dag_id }}</a> · <a href="api/summary">JSON</a></div>

<h2>Freshness</h2>
<table><tr><th>Object</th><th>Status</th><th>Watermark</th><th>Age</th><th>Last successful run</th><th>Newest run</th></tr>
{% for f in d.freshness %}<tr>
<td>{{ f.object_type }}</td><td><span class="status {{ f.status }}">{{ f.status }}</span> <span class="small muted">{{ f.reason }}</span></td>
<td>{{ local(f.watermark) }}</td><td class="n">{{ age(f.age_seconds) }}</td>
<td>{% if f.last_success_run_id %}<a href="{{ f.last_success_url }}" data-parent>{{ f.last_success_run_id }}</a><br><span class="small muted">finished {{ local(f.last_success_at) }}</span>{% else %}none{% endif %}</td>
<td>{% if f.last_run_status and f.last_run_status != "success" %}<span class="failed">{{ f.last_run_status }}</span>{% if f.last_run_error %}<br><span class="small">{{ f.last_run_error[:300] }}</span>{% endif %}{% else %}{{ f.last_run_status or "—" }}{% endif %}</td>
</tr>{% endfor %}</table>
<p class="small muted">{{ d.schedule.rule }}</p>

<h2>Last {{ d.runs|length }} runs</h2>
<div class="charts">{% for object_type in objects %}<figure><figcaption>{{ object_type }}</figcaption>{{ charts[object_type] }}</figure>{% endfor %}</div>
<div class="small">{{ legend }} <span class="muted">· bars oldest to newest, hover for counts; ✕ failed run</span></div>
<table><tr><th>Run</th><th>Started</th><th>Mode</th><th>Status</th>
{% for object_type in objects %}<th>{{ object_type }}<br><span class="small muted">ins / upd / del / rej</span></th>{% endfor %}
<th>API calls</th><th>Daily budget left</th></tr>
{% for v in d.runs %}<tr>
<td><a href="{{ v.airflow_url }}" data-parent>{{ v.run.run_id }}</a></td><td>{{ local(v.run.started_at) }}</td><td>{{ v.run.mode or "—" }}</td>
<td{% if v.run.status == "failed" %} class="failed"{% endif %}>{{ v.run.status }}</td>
{% for object_type in objects %}{% set c = counts(v.run, object_type) %}<td class="n">{% if c %}{{ num(c.inserted) }} / {{ num(c.updated) }} / {{ num(c.deleted) }} / {{ num(c.rejected) }}{% else %}—{% endif %}</td>{% endfor %}
<td class="n">{{ num(v.api_calls) }}</td><td class="n">{{ num(v.daily_budget_left) }}</td>
</tr>{% endfor %}</table>
{% for note in d.notes %}<p class="small muted">{{ note }}</p>{% endfor %}

<h2>Rejected records by rule</h2>
{% if not d.reject_groups %}<p class="muted">No record was rejected in these runs.</p>{% else %}
<p class="small muted">The newest rejection of each record rejected in the runs above; “open” means it is still on the retry list (not loaded since). Fix the record in HubSpot; the next run reads it again.</p>
{% for g in d.reject_groups %}<h3 style="font-size:14px;margin:12px 0 4px"><code>{{ g.rule }}</code> — {{ num(g.records) }} record{{ "" if g.records == 1 else "s" }}, {{ num(g.still_open) }} open</h3>
<table><tr><th>Record</th><th>Field</th><th>Value</th><th>Why</th><th>Run</th><th>Attempt</th><th>State</th></tr>
{% for e in g.examples %}<tr>
<td>{{ e.object_type }} {% if e.hubspot_url %}<a href="{{ e.hubspot_url }}" target="_blank" rel="noopener noreferrer" data-parent>{{ e.hubspot_id }}</a>{% else %}{{ e.hubspot_id or "(no id)" }}{% endif %}
<br><a class="small" href="rejects/{{ e.reject_id }}">stored raw record</a></td>
<td>{{ e.field or "—" }}</td><td><code>{{ e.value if e.value is not none else "—" }}</code></td><td>{{ e.message or "" }}</td>
<td><a href="{{ e.run_url }}" data-parent>{{ e.run_id }}</a></td><td class="n">{{ e.attempt }}</td><td>{{ "open" if e.still_open else "loaded since" }}</td>
</tr>{% endfor %}</table>{% if g.records > g.examples|length %}<p class="small muted">… and {{ num(g.records - g.examples|length) }} more</p>{% endif %}
{% endfor %}{% endif %}

<h2>Latest contract changes</h2>
{% if not d.contract_changes %}<p class="muted">No change of a deal's amount, currency, stage, close date or deletion recorded yet.</p>{% else %}
<p class="small muted">What invoicing must adjust: each observed change of a deal's amount, currency, stage, close date or deletion.</p>
<table><tr><th>Deal</th><th>Field</th><th>Old → new</th><th>Changed (HubSpot)</th><th>Run</th></tr>
{% for v in d.contract_changes %}{% set c = v.change %}<tr>
<td>{% if v.hubspot_url %}<a href="{{ v.hubspot_url }}" target="_blank" rel="noopener noreferrer" data-parent>{{ c.deal_id }}</a>{% else %}{{ c.deal_id }}{% endif %}{% if c.deal_name %}<br><span class="small muted">{{ c.deal_name }}</span>{% endif %}</td>
<td>{{ c.field }}</td><td><code>{{ c.old_value if c.old_value is not none else "∅" }}</code> → <code>{{ c.new_value if c.new_value is not none else "∅" }}</code>{% if c.field == "amount" and c.currency %} {{ c.currency }}{% endif %}</td>
<td>{{ local(c.changed_at) }}</td><td><a href="{{ v.run_url }}" data-parent>{{ c.run_id }}</a><br><span class="small muted">recorded {{ local(c.recorded_at) }}</span></td>
</tr>{% endfor %}</table>{% endif %}
{% endblock %}"""

DENIED = """{% extends "base" %}{% block body %}
<h1>HubSpot sync</h1><div class="notice"><p><strong>{{ headline }}</strong></p>
{% if login_url %}<p><a href="{{ login_url }}">Sign in to Airflow</a></p>{% endif %}</div>{% endblock %}"""

_ENV = Environment(loader=DictLoader({"base": BASE, "empty": EMPTY, "dashboard": DASHBOARD, "denied": DENIED}),
                   autoescape=select_autoescape(default=True, default_for_string=True))


def _formatters(time_zone: str) -> dict:
    zone = ZoneInfo(time_zone)

    def local(moment: datetime | None) -> str:
        return "—" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    def num(value: int | None) -> str:
        return "—" if value is None else f"{value:,}".replace(",", "\u202f")

    return {"local": local, "num": num, "age": age_text}


def _counts(run, object_type: str):
    return next((c for c in run.objects if c.object_type == object_type), None)


def render_dashboard(d: Dashboard) -> str:
    runs = [v.run for v in d.runs]
    charts = {o: Markup(stacked_counts_svg(runs, o)) for o in OBJECT_TYPES}
    return _ENV.get_template("dashboard").render(
        d=d, objects=OBJECT_TYPES, charts=charts, legend=Markup(legend_html()), counts=_counts, dag_id=DAG_ID,
        style=Markup(STYLE), script=Markup(PARENT_LINKS_JS), **_formatters(d.time_zone))


def render_empty(headline: str, detail: str, dag_url: str | None) -> str:
    return _ENV.get_template("empty").render(headline=headline, detail=detail, dag_url=dag_url, dag_id=DAG_ID,
                                             style=Markup(STYLE), script=Markup(PARENT_LINKS_JS))


def render_denied(headline: str, login_url: str | None) -> str:
    return _ENV.get_template("denied").render(headline=headline, login_url=login_url, style=Markup(STYLE),
                                              script=Markup(PARENT_LINKS_JS))
