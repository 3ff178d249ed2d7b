"""`vsm explain` and the Change and Stage pages: a change's timeline and how each stage figure was derived,
and the changes behind one stage's figure for a week; the records themselves come from models.explain."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from collector.present.records import Record
from collector.present.views import query_rows
from collector.present.weeks import monday_of, week_label
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

__all__ = ["ChangeExplanation", "DeliveryNote", "ReviewNote", "StageExplanation", "StageItem", "StageWeek",
           "TimelineEvent", "UnknownChange", "change", "slowest_change", "stage_week"]


@dataclass(frozen=True)
class StageWeek(Record):
    """The changes counted in one stage's figure for one ISO week, most wait first."""

    stage: str
    week: dt.date
    label: str
    items: tuple[StageItem, ...]


def change(con: duckdb.DuckDBPyConnection, change_id: str) -> ChangeExplanation:
    """Everything behind one change's figures (UnknownChange when it is not a merged pull request)."""
    return explain_change(con, change_id)


def stage_week(con: duckdb.DuckDBPyConnection, stage: str, week: dt.date) -> StageWeek:
    """The changes behind a stage's figure for the ISO week holding `week`."""
    monday = monday_of(week)
    return StageWeek(stage, week, week_label(monday), tuple(explain_stage(con, stage, week)))


def slowest_change(con: duckdb.DuckDBPyConnection) -> tuple[str, dt.date] | None:
    """The human-authored change with the longest lead time and its week: a good first one to explain."""
    rows = query_rows(con, "SELECT change_id, week FROM changes WHERE NOT is_bot "
                           "ORDER BY lead_time_s DESC NULLS LAST LIMIT 1")
    return (rows[0][0], rows[0][1]) if rows else None
