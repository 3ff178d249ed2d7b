"""`vsm explain` and the Change and Stage pages: a change's timeline and how each stage figure was derived,
and the changes behind one stage's figure for a week; the records themselves come from models.explain."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from collector.present.records import Record
from collector.present.views import query_rows, require_mapped
from collector.present.weeks import monday_of, period_label, week_label
from models.explain import (
    ChangeExplanation,
    DeliveryNote,
    ReviewNote,
    StageExplanation,
    StageItem,
    TimelineEvent,
    UnknownChange,
    explain_change,
    explain_stage,
)
from models.mapper import StageSummary, counted_changes_sql, stage_summary

__all__ = ["ChangeExplanation", "DeliveryNote", "ReviewNote", "StageChanges", "StageExplanation", "StageItem",
           "StageWeek", "TimelineEvent", "UnknownChange", "change", "slowest_change", "stage_changes",
           "stage_week"]


@dataclass(frozen=True)
class StageWeek(Record):
    """The changes counted in one stage's figure for one ISO week, most wait first."""

    stage: str
    week: dt.date
    label: str
    items: tuple[StageItem, ...]


@dataclass(frozen=True)
class StageChanges(Record):
    """Every change counted in one stage over a period for a repo (or all), most wait first: calendar and
    working-time wait and process per change, from which a page draws the stage's distribution."""

    stage: str
    repo: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    label: str
    items: tuple[StageItem, ...]
    summary: StageSummary | None  # the stage's medians and p85 over these changes (the Map's figures)


def change(con: duckdb.DuckDBPyConnection, change_id: str) -> ChangeExplanation:
    """Everything behind one change's figures (UnknownChange when it is not a merged pull request)."""
    return explain_change(con, change_id)


def stage_week(con: duckdb.DuckDBPyConnection, stage: str, week: dt.date) -> StageWeek:
    """The changes behind a stage's figure for the ISO week holding `week`."""
    monday = monday_of(week)
    return StageWeek(stage, week, week_label(monday), tuple(explain_stage(con, stage, week)))


def stage_changes(con: duckdb.DuckDBPyConnection, stage: str, start: dt.datetime | None = None,
                  end: dt.datetime | None = None, repo: str | None = None) -> StageChanges:
    """The changes counted in `stage` for [start, end) and repo, as stage_week lists them for one week."""
    require_mapped(con)
    counted, params = counted_changes_sql(start, end, repo)
    rows = query_rows(con, f"""
        WITH c AS ({counted})
        SELECT c.change_id, c.title, s.wait_s, s.process_s, s.wait_work_s, s.process_work_s, s.rework
        FROM map_stage_rows AS s
        JOIN c ON c.ck = s.ck
        WHERE s.stage = ?
        ORDER BY s.wait_s DESC, c.change_id
        """, [*params, stage])
    items = tuple(StageItem(cid, title, float(w), float(p), float(ww), float(pw), None if rw is None else int(rw))
                  for cid, title, w, p, ww, pw, rw in rows)
    summary = next((s for s in stage_summary(con, start, end, repo) if s.stage == stage), None)
    return StageChanges(stage, repo, start, end, period_label(start, end), items, summary)


def slowest_change(con: duckdb.DuckDBPyConnection) -> tuple[str, dt.date] | None:
    """The human-authored change with the longest lead time and its week: a good first one to explain."""
    rows = query_rows(con, "SELECT change_id, week FROM changes WHERE NOT is_bot "
                           "ORDER BY lead_time_s DESC NULLS LAST LIMIT 1")
    return (rows[0][0], rows[0][1]) if rows else None
