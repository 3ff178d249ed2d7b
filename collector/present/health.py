"""Data health: did every source sync, were there errors or gaps, what is fresh, what is missing.

A figure is only as good as the data under it. `data_health` tells, for a period such as the report's
week, when a source failed, when its last successful sync ended before the period did, and when syncs
stopped for longer than two days; `source_status` is `vsm status`: per configured source how fresh the
data is, how the last run went, its rate budget, and whether it is stale.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from collector.config import Config, ScheduleConfig, parse_duration
from collector.pipeline import configured_sources
from collector.present.format import duration, when
from collector.present.records import Record, fields_json
from collector.present.views import has_relation, query_rows
from collector.present.weeks import period_label
from collector.store import Store
from models.mapper import counted_changes_sql

GAP_WARN_S = 2 * 86400.0  # a longer stretch without a successful sync is called out as a gap
STALE_AFTER_S = parse_duration(ScheduleConfig.stale_after)  # the default [schedule] stale_after, in seconds


@dataclass(frozen=True)
class SourceHealth(Record):
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
class ScopeHealth(Record):
    """One repo (or job) of a source: when its cursors last advanced; its error when the last run failed."""

    source: str
    scope: str
    last_advanced_at: dt.datetime | None
    error: str | None


@dataclass(frozen=True)
class Health(Record):
    """Whether the week's figures rest on complete data: syncs, errors, gaps, clamped spans."""

    sources: tuple[SourceHealth, ...]
    scopes: tuple[ScopeHealth, ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing limits the week's figures."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields, with the verdict `ok` beside them."""
        return {**fields_json(self), "ok": self.ok}


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


@dataclass(frozen=True)
class MappingQuality(Record):
    """How the counted changes of a period were mapped: how each deployment was attributed to them
    (graph, time_window fallback, seed; undeployed), and the spans per stage that ran backwards."""

    repo: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    attribution: dict[str, int]
    clamped: dict[str, int]


def mapping_quality(con: duckdb.DuckDBPyConnection, start: dt.datetime | None = None,
                    end: dt.datetime | None = None, repo: str | None = None) -> MappingQuality:
    """Attribution kinds of the period's counted changes and their clamped spans per stage."""
    counted, params = counted_changes_sql(start, end, repo)
    attribution = {kind or "undeployed": int(n) for kind, n in query_rows(con, f"""
        WITH c AS ({counted}) SELECT c.attribution, count(*) FROM c GROUP BY ALL ORDER BY ALL""", params)}
    clamped = {}
    if has_relation(con, "map_stage_rows", ("wait_clamped", "process_clamped")):
        clamped = {stage: int(n) for stage, n in query_rows(con, f"""
            WITH c AS ({counted})
            SELECT s.stage, sum(CAST(s.wait_clamped AS INTEGER) + CAST(s.process_clamped AS INTEGER))
            FROM map_stage_rows AS s JOIN c ON c.ck = s.ck
            GROUP BY s.stage, s.stage_order ORDER BY s.stage_order""", params) if n}
    return MappingQuality(repo, start, end, attribution, clamped)


STATUS_SQL = """
WITH ranked AS (
    SELECT *, row_number() OVER (PARTITION BY source ORDER BY run_id DESC) AS newest
    FROM sync_runs
)
SELECT
    s.source,
    (SELECT max(finished_at) FROM sync_runs AS r WHERE r.source = s.source AND r.status = 'success'),
    (SELECT error FROM sync_runs AS r WHERE r.source = s.source AND r.error IS NOT NULL
     ORDER BY run_id DESC LIMIT 1),
    last.status, last.started_at, last.finished_at, last.items, last.requests, last.rate_limit_remaining
FROM (SELECT unnest(?::VARCHAR[]) AS source) AS s
LEFT JOIN ranked AS last ON last.source = s.source AND last.newest = 1
ORDER BY s.source
"""


BUDGET_SQL = """
SELECT source, token_env, resource, remaining, "limit", reset_at, observed_at
FROM rate_budgets ORDER BY source, token_env, resource
"""


@dataclass(frozen=True)
class RateBudget(Record):
    """What a source's API allowed one token for one resource when last collected (GitHub: core, graphql)."""

    source: str
    token_env: str  # the environment variable holding the token: its name, never its value
    resource: str
    remaining: int | None
    limit: int | None
    reset_at: dt.datetime | None
    observed_at: dt.datetime

    @property
    def used_share(self) -> float | None:
        """The share of the window's budget spent when observed (None when the limit is unknown)."""
        return None if not self.limit or self.remaining is None else 1.0 - self.remaining / self.limit

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields with the spent share beside them."""
        return {**fields_json(self), "used_share": self.used_share}


def rate_budgets(con: duckdb.DuckDBPyConnection) -> tuple[RateBudget, ...]:
    """Every token's last reported budget per source and resource (none before any GitHub collect)."""
    if not has_relation(con, "rate_budgets"):
        return ()
    return tuple(RateBudget(*row) for row in query_rows(con, BUDGET_SQL))


@dataclass(frozen=True)
class SourceStatus(Record):
    """The health of one configured source."""

    source: str
    last_success_at: dt.datetime | None
    last_error: str | None
    last_status: str | None
    last_started_at: dt.datetime | None
    last_finished_at: dt.datetime | None
    last_items: int | None
    last_requests: int | None
    rate_limit_remaining: int | None
    age_s: float | None
    stale: bool
    rate_budget: tuple[RateBudget, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """JSON-ready fields (timestamps as ISO 8601 UTC), each budget without the source it sits under."""
        fields = {k: v.isoformat() if isinstance(v, dt.datetime) else v
                  for k, v in asdict(self).items() if k != "rate_budget"}
        fields["rate_budget"] = [{k: v for k, v in b.to_json().items() if k != "source"} for b in self.rate_budget]
        return fields


def _age(last_success_at: dt.datetime | None, now: dt.datetime, stale_after_s: float) -> tuple[float | None, bool]:
    """Seconds since the last success, and whether that is stale (older than stale_after_s, or never)."""
    age = None if last_success_at is None else (now - last_success_at).total_seconds()
    return age, age is None or age > stale_after_s


def source_status(config: Config, store: Store, now: dt.datetime | None = None) -> list[SourceStatus]:
    """The status of every configured source; stale = no success within [schedule] stale_after."""
    now = now or dt.datetime.now(dt.UTC)
    limit = parse_duration(config.schedule.stale_after, "schedule.stale_after")
    rows = store.query(STATUS_SQL, [configured_sources(config)])[1]
    budgets = rate_budgets(store.con)
    statuses = []
    for source, success, error, status, started, finished, items, requests, remaining in rows:
        age, stale = _age(success, now, limit)
        statuses.append(SourceStatus(source, success, error, status, started, finished, items, requests,
                                     remaining, age, stale=stale,
                                     rate_budget=tuple(b for b in budgets if b.source == source)))
    return statuses


@dataclass(frozen=True)
class Freshness(Record):
    """How old a source's data is now: stale when its last success is older than [schedule] stale_after."""

    source: str
    last_success_at: dt.datetime | None
    age_s: float | None
    stale: bool


@dataclass(frozen=True)
class HealthView(Record):
    """The web Health page: sync health of the sources over a period, how fresh each is now, their rate
    budgets, and how the period's changes were mapped."""

    start: dt.datetime
    end: dt.datetime
    label: str
    health: Health
    mapping: MappingQuality
    stale_after_s: float = STALE_AFTER_S
    freshness: tuple[Freshness, ...] = ()
    budgets: tuple[RateBudget, ...] = ()


def health_view(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime, repo: str | None,
                now: dt.datetime, stale_after_s: float = STALE_AFTER_S) -> HealthView:
    """Data health over [start, end), each source's freshness now and rate budget, and the mapping quality
    of the period's changes (one repo or all)."""
    health = data_health(con, start, end, now)
    freshness = tuple(Freshness(s.source, s.last_success_at, *_age(s.last_success_at, now, stale_after_s))
                      for s in health.sources)
    return HealthView(start, end, period_label(start, end), health, mapping_quality(con, start, end, repo),
                      stale_after_s, freshness, rate_budgets(con))
