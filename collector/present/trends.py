"""Week-by-week trends for a repo (or all): lead time, flow efficiency, rolled %C/A and the DORA keys with
their bands, beside the same number of weeks before for comparison; what the Trends page draws."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from collector.present.records import Record
from collector.present.value_stream import DoraRow, dora_summary
from collector.present.views import has_relation, query_rows, require_mapped
from collector.present.weekly import TREND_WEEKS, TrendWeek, band_of, dora_bands, stage_order, trend
from collector.present.weeks import WEEK, week_bounds, week_label
from models.mapper import Totals, totals

DORA_COLUMNS = ("week", "repo", "deployments", "change_failure_rate", "recovery_median_s", "deploys_per_week_4w")


@dataclass(frozen=True)
class TrendPoint(Record):
    """One ISO week: the flow figures of its counted changes and its DORA keys, each with its 2023 band."""

    week: dt.date
    label: str
    changes: int
    deployed: int
    lead_time_median_s: float | None
    lead_time_p85_s: float | None
    flow_efficiency: float | None
    rolled_pca: float | None
    bottleneck: str | None
    deployments: int | None
    deploys_per_week_4w: float | None
    change_failure_rate: float | None
    recovery_median_s: float | None
    lead_time_band: str | None
    deploy_band: str | None
    change_failure_band: str | None
    recovery_band: str | None


@dataclass(frozen=True)
class Trends(Record):
    """The weeks up to and including the last one asked for, and as many weeks before them."""

    repo: str | None
    weeks: tuple[TrendPoint, ...]
    previous: tuple[TrendPoint, ...]
    totals: Totals | None = None  # over all the weeks together (not a median of weekly medians)
    previous_totals: Totals | None = None  # over the weeks before
    dora: DoraRow | None = None  # the four keys over all the weeks together, with bands
    previous_dora: DoraRow | None = None  # over the weeks before
    lead_time: tuple[TrendWeek, ...] = ()  # per week: median lead time and average time per stage (the chart)
    stage_order: tuple[str, ...] = ()  # the stream's stages in order, for the chart's stacking


def _dora_by_week(con: duckdb.DuckDBPyConnection, first: dt.date, end: dt.date,
                  repo: str | None) -> dict[dt.date, tuple[int, float | None, float | None, float | None]]:
    """Per week from dora_weekly: deployments, failure rate (weighted by deployments over repos), the median
    of the repos' recovery medians, and deployments per week over four weeks; empty when not mapped."""
    if not has_relation(con, "dora_weekly", DORA_COLUMNS):
        return {}
    where, params = ("AND w.repo = ?", [repo]) if repo is not None else ("", [])
    rows = query_rows(con, f"""
        SELECT w.week, sum(w.deployments),
               sum(w.change_failure_rate * w.deployments) FILTER (WHERE w.change_failure_rate IS NOT NULL)
                   / nullif(sum(w.deployments) FILTER (WHERE w.change_failure_rate IS NOT NULL), 0),
               quantile_cont(w.recovery_median_s, 0.5), sum(w.deploys_per_week_4w)
        FROM dora_weekly AS w
        WHERE w.week >= ? AND w.week < ? {where}
        GROUP BY w.week
        """, [first, end, *params])
    return {week: (int(n or 0), _num(rate), _num(recovery), _num(per_week))
            for week, n, rate, recovery, per_week in rows}


def _num(value: object) -> float | None:
    """A DuckDB number as float, keeping NULL as None."""
    return None if value is None else float(value)  # type: ignore[arg-type]


def _points(con: duckdb.DuckDBPyConnection, first: dt.date, weeks: int, repo: str | None,
            bands: dict[str, tuple[tuple[str, str, float | None], ...]]) -> tuple[TrendPoint, ...]:
    """`weeks` consecutive weeks from the one starting on `first`."""
    dora = _dora_by_week(con, first, first + weeks * WEEK, repo)
    points = []
    for i in range(weeks):
        monday = first + i * WEEK
        start, end = week_bounds(monday)
        flow = totals(con, start, end, repo)
        deployments, rate, recovery, per_week = dora.get(monday, (None, None, None, None))
        points.append(TrendPoint(
            week=monday, label=week_label(monday), changes=flow.changes, deployed=flow.deployed,
            lead_time_median_s=flow.lead_time_median_s, lead_time_p85_s=flow.lead_time_p85_s,
            flow_efficiency=flow.flow_efficiency, rolled_pca=flow.rolled_pca, bottleneck=flow.bottleneck,
            deployments=deployments, deploys_per_week_4w=per_week, change_failure_rate=rate,
            recovery_median_s=recovery,
            lead_time_band=band_of(bands, "lead_time_s", flow.lead_time_median_s),
            deploy_band=band_of(bands, "deploy_frequency", per_week),
            change_failure_band=band_of(bands, "change_failure_rate", rate),
            recovery_band=band_of(bands, "recovery_s", recovery)))
    return tuple(points)


def trends(con: duckdb.DuckDBPyConnection, last_week: dt.date, weeks: int = TREND_WEEKS,
           repo: str | None = None) -> Trends:
    """The `weeks` weeks ending with the one holding `last_week`, and the `weeks` weeks before them."""
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, not {weeks}")
    require_mapped(con)
    monday = last_week - dt.timedelta(days=last_week.weekday())
    first = monday - (weeks - 1) * WEEK
    bands = dora_bands(con)
    before = _points(con, first - weeks * WEEK, weeks, repo, bands)
    start, end = week_bounds(first)[0], week_bounds(monday)[1]
    return Trends(repo, _points(con, first, weeks, repo, bands), before, totals(con, start, end, repo),
                  totals(con, start - weeks * WEEK, start, repo),
                  dora=_dora_row(con, repo, start, end), previous_dora=_dora_row(con, repo, start - weeks * WEEK, start),
                  lead_time=trend(con, monday, weeks, repo), stage_order=tuple(stage_order(con)))


def _dora_row(con: duckdb.DuckDBPyConnection, repo: str | None, start: dt.datetime,
              end: dt.datetime) -> DoraRow | None:
    """The four keys of one repo (None: all repos together) over [start, end); None when not mapped."""
    return next((row for row in dora_summary(con, repo, start, end) if row.repo == repo), None)
