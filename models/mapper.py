"""The value-stream mapper: runs the set-based SQL in models/sql that turns typed tables into views."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import duckdb

from models.calendar import CalendarSettings, write_settings
from models.stream import DEFAULT_STAGES, Stage, validate_stages

# The mapper's SQL steps, run in this order (names sort the same way); each creates or replaces views
# and map_* helper tables. Kept as data so the CLI and the docs can list what the mapper does.
SQL_FILES: tuple[tuple[str, str], ...] = (
    ("010_macros.sql", "helpers: bot rule, never-negative spans, weeks, targets, reverts, the stage list"),
    ("020_sources.sql", "deployments and builds views: one row per deployment / CI build, status normalised"),
    ("030_pr_timeline.sql", "map_pr_timeline and map_reverts: PR flow events per merged PR, reverts linked"),
    ("040_attribution.sql", "map_change_delivery: the build and deployments that delivered each PR, rework"),
    ("050_timeline.sql", "map_events and the change_timeline view: every change's events as rows"),
    ("060_calendar.sql", "map_calendar: working seconds per local day, cumulative"),
    ("070_stage_times.sql", "stage_times and stage_clamps: wait / process (and working time) per stage"),
    ("080_changes.sql", "changes view: one row per merged PR with deliveries, lead time, flow efficiency"),
    ("090_value_stream.sql", "value_stream and flow_weekly views: VSM figures per stage and week"),
    ("100_incidents.sql", "incidents view: incident tickets linked to the production deployment behind them"),
    ("110_dora.sql", "dora_weekly, dora_summary and dora_period: the DORA four keys per week, repo and period"),
    ("120_incident_rework.sql", "linked incidents count as rework of the production stage (its %C/A)"),
)
# Steps an incremental map runs on the changes in scope only; the later ones always run over everything.
INCREMENTAL_STEPS = frozenset(name for name, _ in SQL_FILES if name < "100")

# Helper SQL that is no step of its own: the scope of a full and of an incremental map, and the merge of an
# incremental map into the previous one.
SCOPE_FULL_SQL = "scope_full.sql"
SCOPE_INCREMENTAL_SQL = "scope_incremental.sql"
PATCH_INCREMENTAL_SQL = "patch_incremental.sql"

# The public views, in dependency order (documented in the README).
VIEWS: tuple[str, ...] = (
    "deployments", "builds", "change_timeline", "changes", "stage_times", "stage_clamps", "value_stream",
    "flow_weekly",
)


@dataclass(frozen=True)
class MapSettings:
    """What the views need from the config: bots, environments, the stream, the calendar, hygiene switches."""

    bots: tuple[str, ...] = ()
    production_environments: tuple[str, ...] = ("production",)
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    calendar: CalendarSettings = field(default_factory=CalendarSettings)
    include_bots: bool = False
    link_window_s: float = 7 * 86400.0
    staging_environments: tuple[str, ...] = ("staging",)
    # PagerDuty service ids, Jira components or labels -> repo ([incidents.service_map])
    incident_services: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MapResult:
    """What one mapper run produced: changes mapped, deployed, clamped spans per stage, a few counts.

    incremental tells whether the run was incremental; recomputed = changes (re)computed by this run.
    """

    changes: int
    deployed: int
    clamped: dict[str, int] = field(default_factory=dict)
    events: int = 0
    reverts: int = 0
    time_window: int = 0
    incremental: bool = False
    recomputed: int = 0


@dataclass(frozen=True)
class StageSummary:
    """Median and p85 of wait and process seconds of one stage, its %C/A and its working-time medians."""

    stage: str
    items: int
    wait_median_s: float | None
    wait_p85_s: float | None
    process_median_s: float | None
    process_p85_s: float | None
    pca: float | None = None
    wait_work_median_s: float | None = None
    process_work_median_s: float | None = None


@dataclass(frozen=True)
class Totals:
    """Headline numbers of the value stream over the counted (by default human) changes of a period."""

    changes: int
    deployed: int
    lead_time_median_s: float | None
    lead_time_p85_s: float | None
    flow_efficiency: float | None
    process_s_total: float | None = None
    rolled_pca: float | None = None
    bottleneck: str | None = None
    bottleneck_share: float | None = None
    lead_time_median_if_halved_s: float | None = None


def sql_text(name: str) -> str:
    """The text of one of the mapper's SQL files, read from the installed package."""
    return resources.files("models.sql").joinpath(name).read_text(encoding="utf-8")


def run_mapper(con: duckdb.DuckDBPyConnection, settings: MapSettings = MapSettings(),
               incremental: bool = False) -> MapResult:
    """Store the settings and rebuild every view and map_* table in one transaction.

    incremental=True recomputes only the changes still in flight (see scope_incremental.sql) and merges
    them into the previous map; it falls back to a full map when there is none, or when the settings or
    the mapper's SQL changed since (map_state.fingerprint).
    """
    validate_stages(settings.stages)
    con.execute("SET TimeZone='UTC'")
    fingerprint = _fingerprint(settings)
    con.execute("BEGIN TRANSACTION")
    try:
        if incremental and _previous_fingerprint(con) == fingerprint:
            recomputed = _map_incremental(con)
            mode = "incremental"
        else:
            _write_settings(con, settings)
            con.execute(sql_text(SCOPE_FULL_SQL))
            for name, _purpose in SQL_FILES:
                con.execute(sql_text(name))
            recomputed = int(con.execute("SELECT count(*) FROM map_pr_timeline").fetchall()[0][0])
            mode = "full"
        con.execute("DELETE FROM map_state")
        con.execute("INSERT INTO map_state VALUES (?, ?, now(), ?)", [fingerprint, mode, recomputed])
        result = _result(con, incremental=mode == "incremental", recomputed=recomputed)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


def _fingerprint(settings: MapSettings) -> str:
    """md5 of the settings and of every SQL text the mapper runs: equal fingerprints map the same way."""
    digest = hashlib.md5(repr(settings).encode("utf-8"))
    for name in [n for n, _ in SQL_FILES] + [SCOPE_FULL_SQL, SCOPE_INCREMENTAL_SQL, PATCH_INCREMENTAL_SQL]:
        digest.update(sql_text(name).encode("utf-8"))
    return digest.hexdigest()


def _previous_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The fingerprint of the last run, None when the database was never mapped."""
    rows = con.execute("SELECT any_value(fingerprint) FROM map_state").fetchall()
    return rows[0][0] if rows else None


def _map_incremental(con: duckdb.DuckDBPyConnection) -> int:
    """Map the changes in scope into schema map_delta, merge them into main; returns how many."""
    con.execute("CREATE SCHEMA map_delta")
    con.execute(sql_text(SCOPE_INCREMENTAL_SQL))
    con.execute("SET schema = 'map_delta'")
    try:
        for name in [n for n, _ in SQL_FILES if n in INCREMENTAL_STEPS]:
            con.execute(sql_text(name))
    finally:
        con.execute("SET schema = 'main'")
    recomputed = int(con.execute("SELECT count(*) FROM map_delta.map_pr_timeline").fetchall()[0][0])
    con.execute(sql_text(PATCH_INCREMENTAL_SQL))
    _drop_delta(con)
    for name in [n for n, _ in SQL_FILES if n not in INCREMENTAL_STEPS]:
        con.execute(sql_text(name))
    return recomputed


def _drop_delta(con: duckdb.DuckDBPyConnection) -> None:
    """Drop schema map_delta object by object (DuckDB 2.0 fails the commit after a DROP SCHEMA ... CASCADE
    of tables replaced in the same transaction)."""
    views = con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'map_delta'").fetchall()
    tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'map_delta'").fetchall()
    macros = con.execute("SELECT DISTINCT function_name FROM duckdb_functions()"
                         " WHERE schema_name = 'map_delta' AND function_type LIKE '%macro'").fetchall()
    for (name,) in views:
        con.execute(f'DROP VIEW map_delta."{name}"')
    for (name,) in tables:
        con.execute(f'DROP TABLE map_delta."{name}"')
    for (name,) in macros:
        con.execute(f'DROP MACRO map_delta."{name}"')
    con.execute("DROP SCHEMA map_delta")


def stage_rows(stages: tuple[Stage, ...]) -> list[tuple[str, int, str, list[str], list[str]]]:
    """The stream as map_stage_spans rows: (stage, stage_order, kind, start_events, end_events)."""
    rows = []
    for order, stage in enumerate(stages, start=1):
        for kind, span in (("wait", stage.wait), ("process", stage.process)):
            if span is not None:
                rows.append((stage.name, order, kind, list(span.start), list(span.end)))
    return rows


def _write_settings(con: duckdb.DuckDBPyConnection, settings: MapSettings) -> None:
    """Replace the map_* settings tables with the settings, one INSERT ... SELECT unnest(?) per table."""
    bots = sorted({login.strip().lower() for login in settings.bots if login.strip()})
    prod = sorted({env.strip() for env in settings.production_environments if env.strip()})
    staging = sorted({env.strip() for env in settings.staging_environments if env.strip()})
    for table, column, values in (("map_bot_logins", "login", bots),
                                  ("map_production_environments", "environment", prod),
                                  ("map_staging_environments", "environment", staging)):
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} ({column}) SELECT unnest(?::VARCHAR[])", [values])
    rows = stage_rows(settings.stages)
    con.execute("DELETE FROM map_stage_spans")
    con.execute(
        "INSERT INTO map_stage_spans SELECT unnest(?::VARCHAR[]), unnest(?::INTEGER[]), unnest(?::VARCHAR[]),"
        " unnest(?::VARCHAR[][]), unnest(?::VARCHAR[][])",
        [list(column) for column in zip(*rows, strict=True)],
    )
    write_settings(con, settings.calendar, include_bots=settings.include_bots,
                   link_window_s=settings.link_window_s)
    con.execute("DELETE FROM map_incident_settings")
    con.execute("INSERT INTO map_incident_settings (link_window_s) VALUES (?)", [settings.link_window_s])
    con.execute("DELETE FROM map_incident_services")
    keys, repos = ([k for k, _ in settings.incident_services], [r for _, r in settings.incident_services])
    con.execute("INSERT INTO map_incident_services (key, repo) SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[])",
                [keys, repos])


def _result(con: duckdb.DuckDBPyConnection, *, incremental: bool, recomputed: int) -> MapResult:
    """Count what the freshly built views hold."""
    changes, deployed, reverts, window = con.execute(
        "SELECT count(*), count(deployed_at), count(*) FILTER (WHERE is_revert),"
        " count(*) FILTER (WHERE attribution = 'time_window') FROM map_change_rows"
    ).fetchall()[0]
    events = con.execute("SELECT count(*) FROM map_events").fetchall()[0][0]
    clamps = con.execute("SELECT stage, clamped FROM stage_clamps").fetchall()
    clamped = {stage: int(n) for stage, n in clamps}
    return MapResult(changes=int(changes), deployed=int(deployed), clamped=clamped, events=int(events),
                     reverts=int(reverts), time_window=int(window), incremental=incremental,
                     recomputed=recomputed)


def counted_changes_sql(start: dt.datetime | None, end: dt.datetime | None,
                        repo: str | None) -> tuple[str, list[Any]]:
    """A SELECT of the map_change_rows that count for a period and repo (bots per the stored settings).

    A change belongs to a period by its deployed_at, or by its merged_at while undeployed.
    """
    where = ["(NOT c.is_bot OR (SELECT coalesce(any_value(m.include_bots), false) FROM map_settings AS m))"]
    params: list[Any] = []
    if start is not None:
        where.append("coalesce(c.deployed_at, c.merged_at) >= ?")
        params.append(start)
    if end is not None:
        where.append("coalesce(c.deployed_at, c.merged_at) < ?")
        params.append(end)
    if repo is not None:
        where.append("c.repo = ?")
        params.append(repo)
    return f"SELECT c.* FROM map_change_rows AS c WHERE {' AND '.join(where)}", params


def stage_summary(con: duckdb.DuckDBPyConnection, start: dt.datetime | None = None,
                  end: dt.datetime | None = None, repo: str | None = None) -> list[StageSummary]:
    """Per stage, in stage order: items, median / p85 of wait and process, %C/A and working-time medians."""
    counted, params = counted_changes_sql(start, end, repo)
    rows = con.execute(
        f"""
        WITH c AS ({counted})
        SELECT
            s.stage,
            count(*),
            quantile_cont(s.wait_s, 0.5),
            quantile_cont(s.wait_s, 0.85),
            quantile_cont(s.process_s, 0.5),
            quantile_cont(s.process_s, 0.85),
            avg(CASE WHEN s.rework = 0 THEN 1.0 WHEN s.rework > 0 THEN 0.0 END),
            quantile_cont(s.wait_work_s, 0.5),
            quantile_cont(s.process_work_s, 0.5)
        FROM map_stage_rows AS s
        JOIN c ON c.repo = s.repo AND c.pr_number = s.pr_number
        GROUP BY s.stage, s.stage_order
        ORDER BY s.stage_order
        """,
        params,
    ).fetchall()
    return [
        StageSummary(stage, int(items), *(_num(v) for v in figures)) for stage, items, *figures in rows
    ]


def totals(con: duckdb.DuckDBPyConnection, start: dt.datetime | None = None, end: dt.datetime | None = None,
           repo: str | None = None) -> Totals:
    """Changes, deployed, lead time, process total, flow efficiency, rolled %C/A and the bottleneck.

    Flow efficiency = total process time / total lead time over deployed changes with a known lead time.
    The bottleneck is the stage with the largest share of the period's total wait; halving it means
    every deployed change's lead time loses half of its own wait in that stage.
    """
    counted, params = counted_changes_sql(start, end, repo)
    row = con.execute(
        f"""
        WITH c AS ({counted}),
        lead AS (SELECT * FROM c WHERE lead_time_s IS NOT NULL),
        s AS (
            SELECT s.* FROM map_stage_rows AS s JOIN c ON c.repo = s.repo AND c.pr_number = s.pr_number
        ),
        per_stage AS (
            SELECT
                s.stage,
                s.stage_order,
                sum(s.wait_s) AS wait_sum,
                avg(CASE WHEN s.rework = 0 THEN 1.0 WHEN s.rework > 0 THEN 0.0 END) AS pca
            FROM s
            GROUP BY s.stage, s.stage_order
        ),
        neck AS (
            SELECT
                arg_max(p.stage, (p.wait_sum, -p.stage_order)) FILTER (WHERE p.wait_sum > 0) AS stage,
                max(p.wait_sum) / nullif(sum(p.wait_sum), 0) AS share,
                product(p.pca) AS rolled_pca
            FROM per_stage AS p
        ),
        halved AS (
            SELECT quantile_cont(greatest(l.lead_time_s - 0.5 * coalesce(b.wait_s, 0.0), 0.0), 0.5) AS median
            FROM lead AS l
            LEFT JOIN s AS b
              ON b.repo = l.repo AND b.pr_number = l.pr_number AND b.stage = (SELECT n.stage FROM neck AS n)
        )
        SELECT
            (SELECT count(*) FROM c),
            (SELECT count(deployed_at) FROM c),
            (SELECT quantile_cont(lead_time_s, 0.5) FROM lead),
            (SELECT quantile_cont(lead_time_s, 0.85) FROM lead),
            (SELECT sum(process_s) FROM lead),
            (SELECT sum(lead_time_s) FROM lead),
            (SELECT rolled_pca FROM neck),
            (SELECT stage FROM neck),
            (SELECT share FROM neck),
            (SELECT median FROM halved)
        """,
        params,
    ).fetchall()[0]
    changes, deployed, median, p85, process_sum, lead_sum, rolled, neck, share, halved = row
    efficiency = min(float(process_sum or 0.0) / float(lead_sum), 1.0) if lead_sum else None
    return Totals(int(changes), int(deployed), _num(median), _num(p85), efficiency,
                  process_s_total=_num(process_sum), rolled_pca=_num(rolled), bottleneck=neck,
                  bottleneck_share=_num(share) if neck is not None else None,
                  lead_time_median_if_halved_s=_num(halved))


def _num(value: object) -> float | None:
    """A DuckDB numeric result as float, keeping NULL as None."""
    return None if value is None else float(value)  # type: ignore[arg-type]
