"""The weekly flow report's figures: one ISO week from the views, so that a reader sees where the time went.

`weekly_figures` reads the database: headline tiles against the previous four weeks with their DORA 2023
band, the value stream per stage, a twelve-week trend, the slowest changes and data health. It returns
a record that the email renderers draw (collector.render.email) and a web page can answer as JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from collector.config import ReportConfig
from collector.present.format import count, duration, whole_percent
from collector.present.health import Health, data_health
from collector.present.records import Record
from collector.present.value_stream import StageFigures, stage_figures
from collector.present.views import has_relation, query_rows, repos, require_mapped
from collector.present.weeks import WEEK, week_bounds, week_label
from models.mapper import Totals, counted_changes_sql, totals

TREND_WEEKS = 12
SLOWEST = 5

# The DORA 2023 bands as the mapper's dora_bands view states them (used when that view is missing):
# metric -> (band, better, bound) best first; a figure gets the first band whose bound it meets.
DORA_BANDS: dict[str, tuple[tuple[str, str, float | None], ...]] = {
    "deploy_frequency": (("elite", "higher", 7.0), ("high", "higher", 1.0), ("medium", "higher", 0.25),
                         ("low", "higher", 0.0)),
    "lead_time_s": (("elite", "lower", 86400.0), ("high", "lower", 604800.0), ("medium", "lower", 2592000.0),
                    ("low", "lower", None)),
    "change_failure_rate": (("elite", "lower", 0.05), ("high", "lower", 0.10), ("medium", "lower", 0.15),
                            ("low", "lower", None)),
    "recovery_s": (("elite", "lower", 3600.0), ("high", "lower", 86400.0), ("medium", "lower", 604800.0),
                   ("low", "lower", None)),
}


@dataclass(frozen=True)
class Tile(Record):
    """One headline figure: this week, the previous four weeks, the change and its DORA band."""

    key: str
    label: str
    value: float | None
    text: str
    previous_text: str
    change_text: str
    verdict: str | None  # better, worse, steady, or None when there is nothing to compare
    band: str | None
    note: str


@dataclass(frozen=True)
class TrendWeek(Record):
    """One week of the lead-time trend: deployed changes, their median lead time, average time per stage."""

    week: dt.date
    label: str
    deployed: int
    lead_time_median_s: float | None
    stage_avg_s: dict[str, float]


@dataclass(frozen=True)
class SlowChange(Record):
    """A deployed change of the week with a long lead time, and the stages it waited in (longest first)."""

    change_id: str
    title: str
    author: str
    url: str | None
    lead_time_s: float
    waits: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class WeeklyFigures(Record):
    """Everything the weekly report shows, already computed and formatted once for every renderer."""

    week: dt.date
    label: str
    start: dt.datetime
    end: dt.datetime
    generated_at: dt.datetime
    subject: str
    repos: tuple[str, ...]
    headline: str
    summary: str
    tiles: tuple[Tile, ...]
    stages: tuple[StageFigures, ...]
    missing_stages: tuple[str, ...]
    totals: Totals
    trend: tuple[TrendWeek, ...]
    stage_order: tuple[str, ...]
    slowest: tuple[SlowChange, ...]
    health: Health


def dora_bands(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[tuple[str, str, float | None], ...]]:
    """The DORA bands from the dora_bands view when the mapper made it, else the same built-in table."""
    if not has_relation(con, "dora_bands", ("metric", "band", "rank", "better", "bound")):
        return DORA_BANDS
    bands: dict[str, list[tuple[str, str, float | None]]] = {}
    for metric, band, better, bound in query_rows(
            con, "SELECT metric, band, better, bound FROM dora_bands ORDER BY metric, rank"):
        bands.setdefault(metric, []).append((band, better, None if bound is None else float(bound)))
    return {**DORA_BANDS, **{metric: tuple(rows) for metric, rows in bands.items()}}


def band_of(bands: dict[str, tuple[tuple[str, str, float | None], ...]], metric: str,
            value: float | None) -> str | None:
    """The first band, best first, whose bound the figure meets (at most; at least where higher is better)."""
    if value is None:
        return None
    for band, better, bound in bands.get(metric, ()):
        if bound is None or (value <= bound if better == "lower" else value >= bound):
            return band.capitalize()
    return None


def _compare(current: float | None, previous: float | None, lower_is_better: bool,
             points: bool) -> tuple[str, str | None]:
    """The change against the previous four weeks as text, and whether it is better, worse or steady."""
    if current is None or previous is None:
        return ("no earlier data" if current is not None else "", None)
    if points:
        delta = (current - previous) * 100
        text = f"{delta:+.1f} pts"
        steady = abs(delta) < 1.0
    else:
        if previous == 0:
            return ("was 0" if current else "no change", "steady" if not current else
                    ("worse" if lower_is_better else "better"))
        delta = (current - previous) / previous * 100
        text = f"{delta:+.0f}%"
        steady = abs(delta) < 5.0
    if steady:
        return text, "steady"
    improved = (current < previous) == lower_is_better
    return text, "better" if improved else "worse"


def _tile(key: str, label: str, value: float | None, previous: float | None, fmt: Callable[[float], str], *,
          lower_is_better: bool, points: bool = False, band: str | None = None, note: str = "") -> Tile:
    """A headline tile, formatted once for every renderer."""
    change, verdict = _compare(value, previous, lower_is_better, points)
    return Tile(key, label, value, fmt(value) if value is not None else "n/a",
                fmt(previous) if previous is not None else "n/a", change, verdict, band, note)


def _pct(share: float | None) -> str:
    """A 0..1 share as a whole percentage, n/a when unknown (the tiles' and headline's form)."""
    return whole_percent(share, "n/a")


PRODUCTION_SQL = """
    SELECT d.repo, d.finished_at,
           row_number() OVER (PARTITION BY d.repo ORDER BY d.finished_at, d.deployment_id) = 1 AS is_seed
    FROM deployments AS d
    WHERE d.status = 'success' AND d.finished_at IS NOT NULL
      AND lower(d.environment) IN (SELECT lower(e.environment) FROM map_production_environments AS e)
"""


def _deployments(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """Successful production deployments finished in [start, end) and the UTC days they fell on.

    Like dora_weekly, each repo's seed (its first production deployment seen, which holds all earlier
    history) is not counted.
    """
    row = query_rows(con, f"""
        WITH p AS ({PRODUCTION_SQL})
        SELECT count(*), count(DISTINCT CAST(timezone('UTC', p.finished_at) AS DATE))
        FROM p WHERE NOT p.is_seed AND p.finished_at >= ? AND p.finished_at < ?
        """, [start, end])[0]
    return int(row[0]), int(row[1])


def _weeks_with_history(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> int:
    """How many whole weeks of [start, end) lie after the first production deployment seen."""
    first = query_rows(con, f"SELECT min(p.finished_at) FROM ({PRODUCTION_SQL}) AS p")[0][0]
    if first is None:
        return 0
    return sum(1 for i in range(round((end - start) / WEEK)) if start + (i + 1) * WEEK > first)


def _dora(con: duckdb.DuckDBPyConnection, start: dt.datetime,
          end: dt.datetime) -> tuple[float | None, float | None, int]:
    """Change failure rate and recovery time over [start, end) from dora_weekly (None when not measured).

    The failure rate weighs each repo's rate by its deployments (exact over repos); with several repos
    the recovery time is the median of their weekly medians. The int is how many repo-weeks had a recovery.
    """
    columns = ("week", "repo", "deployments", "change_failure_rate", "recovery_median_s")
    if not has_relation(con, "dora_weekly", columns):
        return None, None, 0
    row = query_rows(con, """
        SELECT sum(w.change_failure_rate * w.deployments) FILTER (WHERE w.change_failure_rate IS NOT NULL)
                   / nullif(sum(w.deployments) FILTER (WHERE w.change_failure_rate IS NOT NULL), 0),
               quantile_cont(w.recovery_median_s, 0.5),
               count(w.recovery_median_s)
        FROM dora_weekly AS w
        WHERE w.week >= ? AND w.week < ?
        """, [start.date(), end.date()])[0]
    rate = None if row[0] is None else float(row[0])
    recovery = None if row[1] is None else float(row[1])
    return rate, recovery, int(row[2])


def _tiles(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime, week: Totals,
           before: Totals) -> tuple[Tile, ...]:
    """The five headline tiles: lead time, flow efficiency, deployments, change failure rate, recovery."""
    prev_start = start - 4 * WEEK
    deploys, days = _deployments(con, start, end)
    prev_deploys, _ = _deployments(con, prev_start, start)
    history = _weeks_with_history(con, prev_start, start)
    per_week = prev_deploys / history if history else None
    bands = dora_bands(con)
    # frequency band as dora_weekly judges it: deployments per week over the four weeks ending with this one
    per_week_4w = _deployments(con, start - 3 * WEEK, end)[0] / 4
    rate, recovery, recoveries = _dora(con, start, end)
    prev_rate, prev_recovery, _ = _dora(con, prev_start, start)
    dora_note = "" if has_relation(con, "dora_weekly") else "not measured yet (needs incident data)"
    recovery_note = dora_note or ("no incident linked to a deployment" if recovery is None else
                                  "median of the repos' medians" if recoveries > 1 else "")
    plural = "s" if days != 1 else ""
    return (
        _tile("lead_time", "Median lead time", week.lead_time_median_s, before.lead_time_median_s, duration,
              lower_is_better=True, band=band_of(bands, "lead_time_s", week.lead_time_median_s),
              note=f"p85 {duration(week.lead_time_p85_s)}" if week.lead_time_p85_s is not None else ""),
        _tile("flow_efficiency", "Flow efficiency", week.flow_efficiency, before.flow_efficiency, _pct,
              lower_is_better=False, points=True, note="process ÷ lead time; typical 5-25%"),
        _tile("deployments", "Deployments", float(deploys), per_week, count, lower_is_better=False,
              band=band_of(bands, "deploy_frequency", per_week_4w),
              note=f"on {days} day{plural}; prior: avg per week"),
        _tile("change_failure_rate", "Change failure rate", rate, prev_rate, _pct, lower_is_better=True,
              points=True, band=band_of(bands, "change_failure_rate", rate), note=dora_note),
        _tile("recovery_time", "Recovery time", recovery, prev_recovery, duration, lower_is_better=True,
              band=band_of(bands, "recovery_s", recovery), note=recovery_note),
    )


def trend(con: duckdb.DuckDBPyConnection, monday: dt.date, weeks: int = TREND_WEEKS,
          repo: str | None = None) -> tuple[TrendWeek, ...]:
    """The `weeks` weeks ending with `monday`'s: deployed changes, median lead time, average time per stage."""
    first = monday - (weeks - 1) * WEEK
    start, _ = week_bounds(first)
    _, end = week_bounds(monday)
    counted, params = counted_changes_sql(start, end, repo)
    weekly = {week: (int(n), None if med is None else float(med)) for week, n, med in query_rows(con, f"""
        WITH c AS ({counted})
        SELECT c.week, count(*), quantile_cont(c.lead_time_s, 0.5)
        FROM c WHERE c.lead_time_s IS NOT NULL GROUP BY c.week
        """, params)}
    per_stage: dict[dt.date, dict[str, float]] = {}
    for week, stage, seconds in query_rows(con, f"""
        WITH c AS ({counted}), d AS (SELECT * FROM c WHERE c.lead_time_s IS NOT NULL),
        n AS (SELECT d.week, count(*) AS changes FROM d GROUP BY d.week)
        SELECT d.week, s.stage, sum(coalesce(s.wait_s, 0) + coalesce(s.process_s, 0)) / any_value(n.changes)
        FROM d JOIN stage_times AS s ON s.repo = d.repo AND s.pr_number = d.pr_number
        JOIN n ON n.week = d.week
        GROUP BY d.week, s.stage
        """, params):
        per_stage.setdefault(week, {})[stage] = float(seconds)
    points = []
    for i in range(weeks):
        week = first + i * WEEK
        deployed, median = weekly.get(week, (0, None))
        points.append(TrendWeek(week, week_label(week), deployed, median, per_stage.get(week, {})))
    return tuple(points)


def stage_order(con: duckdb.DuckDBPyConnection, fallback: Sequence[str] = ()) -> list[str]:
    """The configured stages in stream order (the fallback when the database has no stage list)."""
    if not has_relation(con, "map_stages"):
        return list(fallback)
    return [s for (s,) in query_rows(con, "SELECT stage FROM map_stages ORDER BY stage_order")]


def _slowest(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> tuple[SlowChange, ...]:
    """The week's deployed changes with the longest lead times, where they waited, and their PR links."""
    counted, params = counted_changes_sql(start, end, None)
    rows = query_rows(con, f"""
        WITH c AS ({counted} AND c.lead_time_s IS NOT NULL
                   ORDER BY c.lead_time_s DESC, c.change_id LIMIT {SLOWEST})
        SELECT c.change_id, c.title, c.author, p.html_url, c.lead_time_s,
               list([s.stage, CAST(s.wait_s AS VARCHAR)] ORDER BY s.wait_s DESC, s.stage_order)
                   FILTER (WHERE s.wait_s > 0)
        FROM c
        LEFT JOIN pull_requests AS p ON p.repo = c.repo AND p.number = c.pr_number
        LEFT JOIN stage_times AS s ON s.repo = c.repo AND s.pr_number = c.pr_number
        GROUP BY ALL
        ORDER BY c.lead_time_s DESC, c.change_id
        """, params)
    return tuple(
        SlowChange(change_id, title or "", author or "", url, float(lead),
                   tuple((stage, float(seconds)) for stage, seconds in (waits or [])))
        for change_id, title, author, url, lead, waits in rows
    )


def _headline(label: str, week: Totals) -> tuple[str, str]:
    """The bottleneck in words, and one sentence on the week's volume and lead time."""
    if week.changes == 0:
        return f"No change was merged or deployed in {label}.", "There is nothing to map for this week."
    if week.bottleneck is None or week.bottleneck_share is None:
        headline = "No change waited between steps this week."
    else:
        headline = f"Most waiting happens in {week.bottleneck}: {_pct(week.bottleneck_share)} of all wait"
        median, halved = week.lead_time_median_s, week.lead_time_median_if_halved_s
        if median is not None and halved is not None and halved < median:
            headline += (f"; halving it would cut median lead time from {duration(median)}"
                         f" to {duration(halved)}")
        headline += "."
    waiting = week.changes - week.deployed
    summary = f"{week.deployed} change{'s' if week.deployed != 1 else ''} reached production"
    if week.lead_time_median_s is not None:
        summary += (f" with a median lead time of {duration(week.lead_time_median_s)}"
                    f" (p85 {duration(week.lead_time_p85_s)})")
    if waiting:
        plural = waiting != 1
        summary += (f"; {waiting} merged change{'s' if plural else ''} still wait{'' if plural else 's'}"
                    " for production.")
    else:
        summary += "."
    return headline, summary


def weekly_figures(con: duckdb.DuckDBPyConnection, week: dt.date, config: ReportConfig | None = None, *,
                   now: dt.datetime | None = None) -> WeeklyFigures:
    """Compute the report's figures for the ISO week starting on `week` (a Monday) from the mapped views."""
    if week.weekday() != 0:
        raise ValueError(f"{week} is not a Monday (ISO weeks start on Monday)")
    require_mapped(con)
    generated = now or dt.datetime.now(dt.UTC)
    start, end = week_bounds(week)
    label = week_label(week)
    this_week = totals(con, start, end)
    before = totals(con, start - 4 * WEEK, start)
    stages = stage_figures(con, start, end, None, this_week.bottleneck)
    configured = stage_order(con, [s.stage for s in stages])
    present = {s.stage for s in stages}
    headline, summary = _headline(label, this_week)
    if generated < end:
        summary += f" {label} is not over yet: these are the figures so far."
    template = (config or ReportConfig()).subject
    return WeeklyFigures(
        week=week, label=label, start=start, end=end, generated_at=generated,
        subject=template.replace("{week}", label), repos=repos(con),
        headline=headline, summary=summary,
        tiles=_tiles(con, start, end, this_week, before),
        stages=stages,
        missing_stages=tuple(s for s in configured if s not in present),
        totals=this_week, trend=trend(con, week), stage_order=tuple(configured),
        slowest=_slowest(con, start, end),
        health=data_health(con, start, end, generated),
    )
