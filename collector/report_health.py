"""Data health for the weekly report: did every source sync, were there errors or gaps, what is missing.

A figure is only as good as the data under it; the report says plainly when a source failed, when its
last successful sync ended before the week did, and when syncs stopped for longer than two days.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from collector.terminal import duration
from models.mapper import counted_changes_sql

GAP_WARN_S = 2 * 86400.0  # a longer stretch without a successful sync is called out as a gap


def has_relation(con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[str] = ()) -> bool:
    """True when a table or view exists (with every listed column): later views are optional."""
    found = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]).fetchall()}
    return bool(found) and all(column in found for column in columns)


def query_rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run a query and fetch every row (an unfinished result would block the connection)."""
    return con.execute(sql, list(params)).fetchall()


@dataclass(frozen=True)
class SourceHealth:
    """How one source's syncs went around the report week."""

    source: str
    last_success_at: dt.datetime | None
    last_run_at: dt.datetime | None
    last_status: str | None
    last_error: str | None
    failed_runs: int
    complete: bool
    longest_gap_s: float | None
    gap_from: dt.datetime | None


@dataclass(frozen=True)
class ScopeHealth:
    """One repo (or job) of a source: when its cursors last advanced; its error when the last run failed."""

    source: str
    scope: str
    last_advanced_at: dt.datetime | None
    error: str | None


@dataclass(frozen=True)
class Health:
    """Whether the week's figures rest on complete data: syncs, errors, gaps, clamped spans."""

    sources: tuple[SourceHealth, ...]
    scopes: tuple[ScopeHealth, ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing limits the week's figures."""
        return not self.problems


def when(moment: dt.datetime | None) -> str:
    """A UTC timestamp for the report, e.g. Tue 17 Nov 09:05 UTC; 'never' when missing."""
    if moment is None:
        return "never"
    return moment.astimezone(dt.UTC).strftime("%a %d %b %H:%M UTC")


def _longest_gap(successes: list[dt.datetime], anchor: dt.datetime | None,
                 now: dt.datetime) -> tuple[float | None, dt.datetime | None]:
    """The longest stretch from anchor to now without a successful sync finishing, and where it began."""
    if anchor is None:
        return None, None
    points = [anchor, *sorted(s for s in successes if anchor < s <= now), now]
    best, began = 0.0, anchor
    for left, right in itertools.pairwise(points):
        span = (right - left).total_seconds()
        if span > best:
            best, began = span, left
    return best, began


def _source_health(con: duckdb.DuckDBPyConnection, source: str, start: dt.datetime, end: dt.datetime,
                   now: dt.datetime) -> SourceHealth:
    """One source's health: last success and run, failures since the week began, coverage, longest gap."""
    runs = query_rows(con, "SELECT started_at, finished_at, status, error FROM sync_runs WHERE source = ?"
                      " ORDER BY run_id", [source])
    successes = [finished for _, finished, status, _ in runs if status == "success" and finished is not None]
    before = [s for s in successes if s <= start]
    first_start = runs[0][0] if runs else None
    anchor = max(before) if before else (max(first_start, start) if first_start is not None else None)
    gap, gap_from = _longest_gap(successes, anchor, now)
    errors = [error for _, _, status, error in runs if status != "success" and error]
    last = runs[-1] if runs else None
    return SourceHealth(
        source=source, last_success_at=max(successes) if successes else None,
        last_run_at=(last[1] or last[0]) if last else None, last_status=last[2] if last else None,
        last_error=errors[-1] if errors else None,
        failed_runs=sum(1 for started, _, status, _ in runs if status not in ("success", "running")
                        and started >= start),
        complete=any(s >= end for s in successes), longest_gap_s=gap, gap_from=gap_from,
    )


def _scope_error(error: str | None, scope: str) -> str | None:
    """The part of a run's error text ('scope: message; ...') that names this scope."""
    for part in (error or "").split("; "):
        if part.startswith(f"{scope}: "):
            return part[len(scope) + 2:]
    return None


def data_health(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime,
                now: dt.datetime) -> Health:
    """Sync health per source and scope around the week, and the statements of what limits the figures."""
    sources = [s for (s,) in query_rows(con, "SELECT DISTINCT source FROM sync_runs ORDER BY source")]
    states = tuple(_source_health(con, s, start, end, now) for s in sources)
    failing_runs = {s.source: s.last_error for s in states
                    if s.last_status not in ("success", "running", None)}
    scopes = tuple(
        ScopeHealth(source, scope, advanced, _scope_error(failing_runs.get(source), scope))
        for source, scope, advanced in query_rows(con, "SELECT source, scope, max(updated_at) FROM sync_cursors"
                                                  " GROUP BY source, scope ORDER BY source, scope")
    )
    clamped = 0
    if has_relation(con, "stage_times", ["clamped"]):
        counted, params = counted_changes_sql(start, end, None)
        clamped = int(query_rows(con, f"""
            WITH c AS ({counted}) SELECT count(*) FILTER (WHERE s.clamped) FROM stage_times AS s
            JOIN c ON c.repo = s.repo AND c.pr_number = s.pr_number""", params)[0][0])
    problems: list[str] = []
    if not states:
        problems.append("no sync is recorded in this database: the figures cover whatever was loaded")
    for s in states:
        if s.source in failing_runs:
            problems.append(f"{s.source}: the last sync ({when(s.last_run_at)}) failed: {s.last_error}")
        if not s.complete:
            problems.append(f"{s.source}: no successful sync since {when(s.last_success_at)}, so activity "
                            "after that is missing from this report")
        if s.longest_gap_s is not None and s.longest_gap_s > GAP_WARN_S:
            problems.append(f"{s.source}: no successful sync for {duration(s.longest_gap_s)}"
                            f" from {when(s.gap_from)}")
    notes = ((f"{clamped} stage span{'s' if clamped != 1 else ''} of this week's changes ran backwards"
              " (clock skew or out-of-order events) and counted as 0."),) if clamped else ()
    return Health(states, scopes, tuple(problems), notes)
