"""The value stream for a repo (or all) and a period: per-stage figures, totals, the bottleneck, the
what-if of halving a stage's wait, and the DORA four keys; what `vsm map` prints and the Map page draws."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import duckdb

from collector.present.records import Record
from collector.present.views import has_macro, has_relation, query_rows, require_mapped
from collector.present.weeks import period_label
from models.mapper import StageSummary, Totals, counted_changes_sql, stage_summary, totals

__all__ = ["DoraRow", "StageFigures", "StageSummary", "Totals", "ValueStream", "WhatIf", "dora_summary",
           "stage_figures", "value_stream", "what_if"]


@dataclass(frozen=True)
class StageFigures(Record):
    """One stage of the value stream (medians and p85 in seconds), with its share of all wait."""

    stage: str
    items: int
    wait_median_s: float | None
    wait_p85_s: float | None
    process_median_s: float | None
    process_p85_s: float | None
    pca: float | None
    wait_share: float | None
    is_bottleneck: bool
    wait_work_median_s: float | None = None
    process_work_median_s: float | None = None


@dataclass(frozen=True)
class WhatIf(Record):
    """The median lead time now, and if every counted change waited half as long in one stage."""

    stage: str
    lead_time_median_s: float | None
    lead_time_median_if_halved_s: float | None


@dataclass(frozen=True)
class DoraRow(Record):
    """The DORA four keys over a period (or all collected history) for one repo (None: all repos), with bands."""

    repo: str | None
    weeks: float | None  # the period's length; over all history, the weeks from the first to the last active
    deployments: int | None
    deploys_per_week: float | None
    deploy_band: str | None
    lead_time_median_s: float | None
    lead_time_p85_s: float | None
    lead_time_band: str | None
    change_failure_rate: float | None
    change_failure_band: str | None
    recovery_median_s: float | None
    recovery_band: str | None
    restore_median_s: float | None
    restore_band: str | None
    failed_attempts: int | None
    failed_deployments: int | None
    incidents: int | None


@dataclass(frozen=True)
class ValueStream(Record):
    """Everything the value stream map shows for one repo (None: all) and period (None: open-ended)."""

    repo: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    label: str
    stages: tuple[StageFigures, ...]
    totals: Totals
    what_if: WhatIf | None
    dora: tuple[DoraRow, ...]


def stage_figures(con: duckdb.DuckDBPyConnection, start: dt.datetime | None = None,
                  end: dt.datetime | None = None, repo: str | None = None,
                  bottleneck: str | None = None) -> tuple[StageFigures, ...]:
    """The per-stage figures in stage order, each with its share of the period's total wait."""
    summary = stage_summary(con, start, end, repo)
    counted, params = counted_changes_sql(start, end, repo)
    sums = dict(query_rows(con, f"""
        WITH c AS ({counted})
        SELECT s.stage, sum(s.wait_s) FROM stage_times AS s
        JOIN c ON c.repo = s.repo AND c.pr_number = s.pr_number
        GROUP BY s.stage
        """, params))
    total = sum(float(v or 0.0) for v in sums.values())
    return tuple(
        StageFigures(s.stage, s.items, s.wait_median_s, s.wait_p85_s, s.process_median_s, s.process_p85_s,
                     s.pca, float(sums.get(s.stage) or 0.0) / total if total else None,
                     s.stage == bottleneck, s.wait_work_median_s, s.process_work_median_s)
        for s in summary
    )


def what_if(con: duckdb.DuckDBPyConnection, stage: str, start: dt.datetime | None = None,
            end: dt.datetime | None = None, repo: str | None = None) -> WhatIf:
    """The median lead time of the period's deployed changes, and with each one's wait in `stage` halved.

    The same arithmetic as the mapper's bottleneck figure (models.mapper.totals), for any stage.
    """
    counted, params = counted_changes_sql(start, end, repo)
    median, halved = query_rows(con, f"""
        WITH c AS ({counted}), lead AS (SELECT * FROM c WHERE lead_time_s IS NOT NULL)
        SELECT quantile_cont(l.lead_time_s, 0.5),
               quantile_cont(greatest(l.lead_time_s - 0.5 * coalesce(s.wait_s, 0.0), 0.0), 0.5)
        FROM lead AS l
        LEFT JOIN map_stage_rows AS s ON s.repo = l.repo AND s.pr_number = l.pr_number AND s.stage = ?
        """, [*params, stage])[0]
    return WhatIf(stage, None if median is None else float(median), None if halved is None else float(halved))


def dora_summary(con: duckdb.DuckDBPyConnection, repo: str | None = None, start: dt.datetime | None = None,
                 end: dt.datetime | None = None) -> tuple[DoraRow, ...]:
    """The four keys as records, every repo then all repos (or only `repo`'s row): over [start, end) from the
    dora_period macro when either bound is given, else over all history from the dora_summary view.

    Empty when the mapper made no DORA views (or only part of them, as in a database mapped before them).
    """
    if not has_relation(con, "dora_summary") or not has_relation(con, "dora_weekly"):
        return ()
    where, params = ("WHERE repo = ?", [repo]) if repo is not None else ("", [])
    if start is None and end is None:
        source, bounds = "dora_summary", []
    elif has_macro(con, "dora_period"):
        source, bounds = "dora_period(?, ?)", [start, end]
    else:
        return ()  # mapped by a vsm without period figures: none rather than all-history ones mislabelled
    cursor = con.execute(f"SELECT * FROM {source} {where} ORDER BY repo NULLS LAST", [*bounds, *params])
    names = [column[0] for column in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return tuple(DoraRow(**{f.name: row.get(f.name) for f in fields(DoraRow)}) for row in rows)


def value_stream(con: duckdb.DuckDBPyConnection, start: dt.datetime | None = None,
                 end: dt.datetime | None = None, repo: str | None = None) -> ValueStream:
    """The value stream of the changes counted in [start, end) for one repo or all (NotMapped if unmapped)."""
    require_mapped(con)
    summed = totals(con, start, end, repo)
    neck = summed.bottleneck
    return ValueStream(
        repo=repo, start=start, end=end, label=period_label(start, end),
        stages=stage_figures(con, start, end, repo, neck), totals=summed,
        what_if=(WhatIf(neck, summed.lead_time_median_s, summed.lead_time_median_if_halved_s)
                 if neck else None),
        dora=dora_summary(con, repo, start, end),
    )
