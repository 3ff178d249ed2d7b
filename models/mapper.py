"""The value-stream mapper: runs the set-based SQL in models/sql that turns typed tables into views."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import duckdb

# The mapper's SQL steps, run in this order (names sort the same way); each creates or replaces views
# and map_* helper tables. Kept as data so the CLI and the docs can list what the mapper does.
SQL_FILES: tuple[tuple[str, str], ...] = (
    ("010_macros.sql", "helpers: the bot rule, never-negative spans, the stage list"),
    ("020_deployments.sql", "deployments view: one row per deployment, status normalised"),
    ("030_pr_timeline.sql", "map_pr_timeline: first commit, ready, first review, approval, merge per PR"),
    ("040_attribution.sql", "map_change_delivery: the production deployment that delivered each PR"),
    ("050_changes.sql", "changes view: one row per merged PR with deploy and lead time"),
    ("060_stage_times.sql", "stage_times and stage_clamps views: wait and process per stage"),
)


@dataclass(frozen=True)
class MapSettings:
    """What the views need from the config: extra bot logins and the production environment names."""

    bots: tuple[str, ...] = ()
    production_environments: tuple[str, ...] = ("production",)


@dataclass(frozen=True)
class MapResult:
    """What one mapper run produced: merged PRs mapped, how many are deployed, clamped spans per stage."""

    changes: int
    deployed: int
    clamped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSummary:
    """Median and 85th percentile of wait and process seconds of one stage (bots excluded)."""

    stage: str
    items: int
    wait_median_s: float | None
    wait_p85_s: float | None
    process_median_s: float | None
    process_p85_s: float | None


@dataclass(frozen=True)
class Totals:
    """Headline numbers of the value stream over human (non-bot) changes."""

    changes: int
    deployed: int
    lead_time_median_s: float | None
    lead_time_p85_s: float | None
    flow_efficiency: float | None


def sql_text(name: str) -> str:
    """The text of one of the mapper's SQL files, read from the installed package."""
    return resources.files("models.sql").joinpath(name).read_text(encoding="utf-8")


def run_mapper(con: duckdb.DuckDBPyConnection, settings: MapSettings) -> MapResult:
    """Store the settings and rebuild every view and map_* table in one transaction."""
    con.execute("SET TimeZone='UTC'")
    con.execute("BEGIN TRANSACTION")
    try:
        _write_settings(con, settings)
        for name, _purpose in SQL_FILES:
            con.execute(sql_text(name))
        result = _result(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


def _write_settings(con: duckdb.DuckDBPyConnection, settings: MapSettings) -> None:
    """Replace the contents of map_bot_logins and map_production_environments with the settings."""
    con.execute("DELETE FROM map_bot_logins")
    con.execute("DELETE FROM map_production_environments")
    bots = sorted({login.strip().lower() for login in settings.bots if login.strip()})
    envs = sorted({env.strip() for env in settings.production_environments if env.strip()})
    if bots:
        con.executemany("INSERT INTO map_bot_logins VALUES (?)", [[login] for login in bots])
    if envs:
        con.executemany("INSERT INTO map_production_environments VALUES (?)", [[env] for env in envs])


def _result(con: duckdb.DuckDBPyConnection) -> MapResult:
    """Count what the freshly built views hold."""
    row = con.execute("SELECT count(*), count(deployed_at) FROM changes").fetchone()
    changes, deployed = (int(row[0]), int(row[1])) if row else (0, 0)
    clamped = {stage: int(n) for stage, n in con.execute("SELECT stage, clamped FROM stage_clamps").fetchall()}
    return MapResult(changes=changes, deployed=deployed, clamped=clamped)


def stage_summary(con: duckdb.DuckDBPyConnection) -> list[StageSummary]:
    """Per stage, in stage order: item count and median / p85 of wait and process seconds, bots excluded."""
    rows = con.execute(
        """
        SELECT
            s.stage,
            count(*),
            quantile_cont(s.wait_s, 0.5),
            quantile_cont(s.wait_s, 0.85),
            quantile_cont(s.process_s, 0.5),
            quantile_cont(s.process_s, 0.85)
        FROM stage_times AS s
        JOIN changes AS c ON c.change_id = s.change_id
        WHERE NOT c.is_bot
        GROUP BY s.stage, s.stage_order
        ORDER BY s.stage_order
        """
    ).fetchall()
    return [
        StageSummary(stage, int(items), _num(wm), _num(wp), _num(pm), _num(pp))
        for stage, items, wm, wp, pm, pp in rows
    ]


def totals(con: duckdb.DuckDBPyConnection) -> Totals:
    """Changes, deployed changes, lead time median / p85 and flow efficiency, bots excluded.

    Flow efficiency = total process time / total lead time over deployed changes with a known lead time.
    """
    row = con.execute(
        """
        WITH human AS (SELECT * FROM changes WHERE NOT is_bot),
        lead AS (SELECT change_id, lead_time_s FROM human WHERE lead_time_s IS NOT NULL),
        process AS (
            SELECT sum(s.process_s) AS process_s
            FROM stage_times AS s
            JOIN lead AS l ON l.change_id = s.change_id
        )
        SELECT
            (SELECT count(*) FROM human),
            (SELECT count(deployed_at) FROM human),
            (SELECT quantile_cont(lead_time_s, 0.5) FROM lead),
            (SELECT quantile_cont(lead_time_s, 0.85) FROM lead),
            (SELECT process_s FROM process),
            (SELECT sum(lead_time_s) FROM lead)
        """
    ).fetchone()
    if row is None:
        return Totals(0, 0, None, None, None)
    changes, deployed, median, p85, process_sum, lead_sum = row
    efficiency = float(process_sum or 0.0) / float(lead_sum) if lead_sum else None
    return Totals(int(changes), int(deployed), _num(median), _num(p85), efficiency)


def _num(value: object) -> float | None:
    """A DuckDB numeric result as float, keeping NULL as None."""
    return None if value is None else float(value)  # type: ignore[arg-type]
