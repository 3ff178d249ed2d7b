"""Server-rendered HTML for the web app: Jinja templates over the figure records, no front-end build."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from collector.present.explain import ChangeExplanation, StageChanges
from collector.present.format import duration, when, whole_percent
from collector.present.health import HealthView
from collector.present.trends import Trends
from collector.present.value_stream import ValueStream
from collector.render.email.charts import stage_histogram_svg, trend_svg, value_stream_svg

# One environment, autoescaping everything but the chart SVG (drawn by our own matplotlib code).
_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters["duration"] = duration
_ENV.filters["percent"] = whole_percent
_ENV.filters["when"] = when
_ENV.filters["per_week"] = lambda value: "-" if value is None else f"{value:.1f}/week"
_ENV.filters["apply"] = lambda value, name: _ENV.filters[name](value)

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · vsm</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body { font: 15px/1.45 system-ui, sans-serif; color: #1f2933; margin: 0 auto; max-width: 1100px; padding: 1rem; }
nav a { margin-right: 1rem; } table { border-collapse: collapse; } td, th { padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } td + td { white-space: nowrap; }
table.text th, table.text td { text-align: left; white-space: normal; } table.text td:first-child { white-space: nowrap; } tr.neck { color: #b42318; font-weight: 600; }
form { margin: .8rem 0; } table + table { margin-top: 1rem; } .chart svg { max-width: 100%; height: auto; } .muted { color: #5f6b7a; }
</style></head><body>
<nav><strong>vsm</strong> <a href="/map{{ query }}">Map</a> <a href="/trends">Trends</a> <a href="/health">Health</a> <a href="/change">Slowest change</a></nav>
{{ body }}
</body></html>
"""

_FILTERS = """<form method="get" action="{{ action }}">
{% for k, v in hidden.items() %}<input type="hidden" name="{{ k }}" value="{{ v }}">{% endfor %}
<label>Repo <select name="repo"><option value="">all</option>
{% for r in repos %}<option{% if r == repo %} selected{% endif %}>{{ r }}</option>{% endfor %}</select></label>
{% if with_from %}<label>From <input type="date" name="from" value="{{ first or '' }}"></label>{% endif %}
<label>To <input type="date" name="to" value="{{ last or '' }}"></label>
<button>Show</button> <a href="{{ action }}.json{{ query }}">JSON</a></form>
"""

# The DORA keys of one record, as (label, value filter, field, band field) rows the tables below loop over.
DORA_KEYS = (("deploy frequency", "per_week", "deploys_per_week", "deploy_band"),
             ("lead time (median)", "duration", "lead_time_median_s", "lead_time_band"),
             ("change failure rate", "percent", "change_failure_rate", "change_failure_band"),
             ("failed-deployment recovery", "duration", "recovery_median_s", "recovery_band"),
             ("time to restore", "duration", "restore_median_s", "restore_band"))

_DORA_CELL = """{% macro key(row, k) %}{% if row %}{{ row[k[2]] | apply(k[1]) }}{% if row[k[3]] %}
<span class="muted">({{ row[k[3]] | capitalize }})</span>{% endif %}{% else %}-{% endif %}{% endmacro %}"""

_MAP_DORA = """{% if vs.dora %}<h2>DORA four keys, {{ vs.label }}</h2>
<table><tr><th>repo</th>{% for k in keys %}<th>{{ k[0] }}</th>{% endfor %}<th>deployments</th><th>incidents</th></tr>
{% for r in vs.dora %}<tr><td>{{ r.repo or 'all repos' }}</td>{% for k in keys %}<td>{{ key(r, k) }}</td>{% endfor %}
<td>{{ r.deployments }}</td><td>{{ r.incidents }}</td></tr>{% endfor %}</table>
<p class="muted">Bands: the 2023 State of DevOps Report. Deployment frequency is over the period's length;
bots' changes count only when the settings include them.</p>{% endif %}
"""

_MAP = """<h1>Value stream: {{ vs.repo or 'all repos' }}, {{ vs.label }}</h1>
{{ filters }}
<div class="chart">{{ svg }}</div>
<p>{{ vs.totals.changes }} changes, {{ vs.totals.deployed }} deployed. Median lead time
<strong>{{ vs.totals.lead_time_median_s | duration }}</strong>, flow efficiency
<strong>{{ vs.totals.flow_efficiency | percent }}</strong>, rolled %C/A
<strong>{{ vs.totals.rolled_pca | percent }}</strong>.</p>
{% if vs.what_if %}<p>What if {{ vs.what_if.stage }} waited half as long: median lead time
{{ vs.what_if.lead_time_median_s | duration }} → <strong>{{ vs.what_if.lead_time_median_if_halved_s | duration }}</strong>.</p>{% endif %}
<table><tr><th>stage</th><th>n</th><th>wait (median)</th><th>process (median)</th><th>%C/A</th><th>share of wait</th></tr>
{% for s in vs.stages %}<tr{% if s.is_bottleneck %} class="neck"{% endif %}><td>{{ s.stage }}{% if s.is_bottleneck %} (bottleneck){% endif %}</td>
<td><a href="/stage?stage={{ s.stage | urlencode }}{{ amp_query }}">{{ s.items }} changes</a></td><td>{{ s.wait_median_s | duration }}</td><td>{{ s.process_median_s | duration }}</td>
<td>{{ s.pca | percent }}</td><td>{{ s.wait_share | percent }}</td></tr>{% endfor %}</table>
""" + _MAP_DORA

_TRENDS = """<h1>Trends: {{ t.repo or 'all repos' }}, weekly</h1>
{{ filters }}
{% if chart %}<div class="chart">{{ chart }}</div>{% endif %}
<table><tr><th>week</th><th>changes</th><th>lead time (median)</th><th>flow efficiency</th><th>rolled %C/A</th>
<th>deploys</th><th>change failure</th><th>recovery (median)</th></tr>
{% for w in t.weeks %}<tr><td>{{ w.label }}</td><td>{{ w.changes }}</td>
<td>{{ w.lead_time_median_s | duration }}{% if w.lead_time_band %} <span class="muted">({{ w.lead_time_band }})</span>{% endif %}</td>
<td>{{ w.flow_efficiency | percent }}</td><td>{{ w.rolled_pca | percent }}</td>
<td>{{ w.deployments if w.deployments is not none else '-' }}{% if w.deploy_band %} <span class="muted">({{ w.deploy_band }})</span>{% endif %}</td>
<td>{{ w.change_failure_rate | percent }}{% if w.change_failure_band %} <span class="muted">({{ w.change_failure_band }})</span>{% endif %}</td>
<td>{{ w.recovery_median_s | duration }}{% if w.recovery_band %} <span class="muted">({{ w.recovery_band }})</span>{% endif %}</td></tr>{% endfor %}
</table>
<p class="muted">Bands (2023 State of DevOps Report): deploys judged over the four weeks ending with the week.</p>
{% if t.totals and t.previous_totals %}<h2>These {{ t.weeks | length }} weeks and the {{ t.previous | length }} before</h2>
<table><tr><th>figure</th><th>{{ t.weeks[0].label }} to {{ t.weeks[-1].label }}</th>
<th>{{ t.previous[0].label }} to {{ t.previous[-1].label }}</th></tr>
<tr><td>changes</td><td>{{ t.totals.changes }}</td><td>{{ t.previous_totals.changes }}</td></tr>
<tr><td>lead time (median of the changes)</td><td>{{ t.totals.lead_time_median_s | duration }}</td><td>{{ t.previous_totals.lead_time_median_s | duration }}</td></tr>
<tr><td>flow efficiency</td><td>{{ t.totals.flow_efficiency | percent }}</td><td>{{ t.previous_totals.flow_efficiency | percent }}</td></tr>
<tr><td>rolled %C/A</td><td>{{ t.totals.rolled_pca | percent }}</td><td>{{ t.previous_totals.rolled_pca | percent }}</td></tr>
{% if t.dora or t.previous_dora %}{% for k in keys %}<tr><td>{{ k[0] }}</td><td>{{ key(t.dora, k) }}</td>
<td>{{ key(t.previous_dora, k) }}</td></tr>{% endfor %}{% endif %}</table>{% endif %}
"""

_HEALTH = """<h1>Data health: {{ h.label }}</h1>
{{ filters }}
<p><strong>{{ 'Nothing limits these figures.' if h.health.ok else 'These figures are limited:' }}</strong></p>
<ul>{% for p in h.health.problems %}<li>{{ p }}</li>{% endfor %}{% for n in h.health.notes %}<li class="muted">{{ n }}</li>{% endfor %}</ul>
<table><tr><th>source</th><th>last success</th><th>last status</th><th>failed runs</th><th>longest gap</th><th>last error</th></tr>
{% for s in h.health.sources %}<tr><td>{{ s.source }}</td><td>{{ s.last_success_at | when }}</td><td>{{ s.last_status or '-' }}</td>
<td>{{ s.failed_runs }}</td><td>{{ s.longest_gap_s | duration }}</td><td>{{ s.last_error or '' }}</td></tr>{% endfor %}</table>
<h2>Freshness now</h2>
<table><tr><th>source</th><th>last success</th><th>age</th><th>state</th></tr>
{% for f in h.freshness %}<tr{% if f.stale %} class="neck"{% endif %}><td>{{ f.source }}</td><td>{{ f.last_success_at | when }}</td>
<td>{{ f.age_s | duration }}</td><td>{{ 'stale' if f.stale else 'fresh' }}</td></tr>{% endfor %}</table>
<p class="muted">Stale: no successful sync within {{ h.stale_after_s | duration }} ([schedule] stale_after).</p>
<h2>Rate budget</h2>
{% if h.budgets %}<table><tr><th>source</th><th>token (variable)</th><th>resource</th><th>remaining</th><th>of</th><th>spent</th><th>window resets</th><th>as of</th></tr>
{% for b in h.budgets %}<tr><td>{{ b.source }}</td><td>{{ b.token_env }}</td><td>{{ b.resource }}</td><td>{{ b.remaining }}</td>
<td>{{ b.limit if b.limit is not none else '-' }}</td><td>{{ b.used_share | percent }}</td><td>{{ b.reset_at | when }}</td>
<td>{{ b.observed_at | when }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">No source has reported a rate budget yet (GitHub does on every collect).</p>{% endif %}
<h2>How the changes were mapped</h2>
<table><tr><th>attribution</th><th>changes</th></tr>
{% for kind, n in h.mapping.attribution.items() %}<tr><td>{{ kind }}</td><td>{{ n }}</td></tr>{% endfor %}</table>
<table><tr><th>stage</th><th>clamped spans (ran backwards)</th></tr>
{% for stage, n in h.mapping.clamped.items() %}<tr><td>{{ stage }}</td><td>{{ n }}</td></tr>{% endfor %}</table>
"""

_STAGE = """<h1>Stage {{ sc.stage }}: {{ sc.repo or 'all repos' }}, {{ sc.label }}</h1>
{{ filters }}
<div class="chart">{{ svg }}</div>
{% if m %}<p>{{ m.items }} changes. Median wait {{ m.wait_median_s | duration }} (working time
{{ m.wait_work_median_s | duration }}), median process {{ m.process_median_s | duration }} (working time
{{ m.process_work_median_s | duration }}).</p>{% endif %}
<h2>The changes that waited longest</h2>
<table><tr><th>change</th><th>wait</th><th>wait (working)</th><th>process</th><th>process (working)</th><th>rework</th></tr>
{% for i in longest %}<tr><td><a href="/change?id={{ i.change_id | urlencode }}">{{ i.change_id }}</a> {{ i.title or '' }}</td>
<td>{{ i.wait_s | duration }}</td><td>{{ i.wait_work_s | duration }}</td><td>{{ i.process_s | duration }}</td>
<td>{{ i.process_work_s | duration }}</td><td>{{ i.rework if i.rework is not none else '-' }}</td></tr>{% endfor %}</table>
"""

_CHANGE = """{% macro ev(key) %}{% if key %}<a href="#ev-{{ key }}">{{ key }}</a>{% else %}-{% endif %}{% endmacro %}
{% macro out(url, text) %}{% if url and url.startswith(('https://', 'http://')) %}<a href="{{ url }}" rel="noreferrer">{{ text }}</a>{% else %}{{ text }}{% endif %}{% endmacro %}
<h1>{{ c.change_id }}: {{ c.title or '' }}</h1>
<p>By {{ c.author or 'unknown' }}{% if c.is_bot %} (bot){% endif %}. Merged {{ c.merged_at | when }},
{% if c.deployed_at %}in production {{ c.deployed_at | when }}, lead time <strong>{{ c.lead_time_s | duration }}</strong>
{%- else %}not deployed yet{% endif %}. <a href="/change.json?id={{ c.change_id | urlencode }}">JSON</a></p>
<h2>Stages</h2>
<p>Each span runs between two events of the timeline below; follow one to the event and on to its source.</p>
<table class="text"><tr><th>stage</th><th>wait</th><th>waited from → to</th><th>process</th><th>worked from → to</th><th>why</th></tr>
{% for s in c.stages %}<tr><td>{{ s.stage }}</td><td>{{ s.wait_s | duration }}</td>
<td>{{ ev(s.wait_from_event) }} → {{ ev(s.wait_to_event) }}</td><td>{{ s.process_s | duration }}</td>
<td>{{ ev(s.process_from_event) }} → {{ ev(s.process_to_event) }}</td><td>{{ s.why | join('; ') }}</td></tr>{% endfor %}</table>
{% if c.deliveries %}<h2>Delivery</h2>
<table class="text"><tr><th>target</th><th>delivered by</th><th>attribution</th><th>why</th></tr>
{% for d in c.deliveries %}<tr><td>{{ d.target }}</td><td>{{ out(d.url, d.item_id or 'none') }}</td>
<td>{{ d.attribution or 'not delivered' }}</td><td>{{ d.reason }}{% for i in d.incidents %}<br>incident
{{ out(i.url, i.incident_id) }} ({{ i.link_method }}) opened {{ i.created_at | when }}{% if i.title %}: {{ i.title }}{% endif %}
{% endfor %}</td></tr>{% endfor %}</table>{% endif %}
<h2>Timeline</h2>
<table class="text"><tr><th>when (UTC)</th><th>event</th><th>environment</th><th>source</th><th>detail</th></tr>
{% for e in c.events %}{% set key = e.event ~ (':' ~ e.environment if e.environment else '') %}
<tr id="ev-{{ key }}"><td>{{ e.at | when }}</td><td>{{ out(e.url, e.event) }}</td><td>{{ e.environment or '' }}</td>
<td>{{ e.source }}</td><td>{{ e.detail }}</td></tr>{% endfor %}</table>
"""

_ERROR = """<h1>{{ status }}</h1><p>{{ message }}</p><p><a href="/map">Back to the map</a></p>"""


def _inline(svg: str) -> Markup:
    """A chart's SVG document as markup to put in a page: from <svg> on, without XML prolog and doctype."""
    return Markup(svg[svg.find("<svg"):])


def _page(title: str, body: str, query: str) -> str:
    """The shared layout around one page body."""
    return _ENV.from_string(_LAYOUT).render(title=title, body=Markup(body), query=query)


def map_page(vs: ValueStream, repos: Sequence[str], filters: Mapping[str, str], query: str) -> str:
    """The Map page: the value stream SVG, its headline figures, the what-if and the stage table."""
    form = _filters("/map", repos, filters, query, with_from=True)
    svg = _inline(value_stream_svg(vs.stages, vs.totals, vs.label))
    amp_query = "&" + query[1:] if query else ""
    body = _ENV.from_string(_DORA_CELL + _MAP).render(vs=vs, filters=Markup(form), svg=svg, amp_query=amp_query,
                                                      keys=DORA_KEYS)
    return _page("Map", body, query)


def _filters(action: str, repos: Sequence[str], filters: Mapping[str, str], query: str, with_from: bool,
             hidden: Mapping[str, str] | None = None) -> str:
    """The filter form of a page, filled with the URL's values (hidden: fixed parameters it carries)."""
    return _ENV.from_string(_FILTERS).render(action=action, repos=repos, repo=filters.get("repo"),
                                             first=filters.get("from"), last=filters.get("to"), query=query,
                                             with_from=with_from, hidden=hidden or {})


def trends_page(record: Trends, repos: Sequence[str], filters: Mapping[str, str], query: str) -> str:
    """The Trends page: the lead-time chart, one row per ISO week (flow and DORA with bands), and the whole
    period beside the one before."""
    chart = (_inline(trend_svg(record.lead_time, record.stage_order))
             if any(w.deployed for w in record.lead_time) else None)
    body = _ENV.from_string(_DORA_CELL + _TRENDS).render(
        t=record, filters=Markup(_filters("/trends", repos, filters, query, with_from=False)), chart=chart,
        keys=DORA_KEYS)
    return _page("Trends", body, query)


def health_page(record: HealthView, repos: Sequence[str], filters: Mapping[str, str], query: str) -> str:
    """The Health page: the verdict, problems and notes, the sources' syncs, freshness and rate budgets, and
    the mapping's fallbacks."""
    body = _ENV.from_string(_HEALTH).render(
        h=record, filters=Markup(_filters("/health", repos, filters, query, with_from=True)))
    return _page("Health", body, query)


def stage_page(record: StageChanges, repos: Sequence[str], filters: Mapping[str, str], query: str,
               longest: int = 20) -> str:
    """The Stage page: wait and process histograms, the medians in calendar and working time, the longest."""
    svg = _inline(stage_histogram_svg(record.items, record.stage, record.label))
    body = _ENV.from_string(_STAGE).render(
        sc=record, filters=Markup(_filters("/stage", repos, filters, query, with_from=True,
                                           hidden={"stage": record.stage})),
        svg=svg, longest=record.items[:longest], m=record.summary)
    return _page(f"Stage {record.stage}", body, query)


def change_page(record: ChangeExplanation) -> str:
    """The Change page: the stages with the events their spans ran between and why, then the timeline."""
    return _page(record.change_id, _ENV.from_string(_CHANGE).render(c=record), "")


def error_page(status: int, message: str) -> str:
    """A 4xx/5xx answer as a page: the one-line reason and a way back."""
    return _page(str(status), _ENV.from_string(_ERROR).render(status=status, message=message), "")
