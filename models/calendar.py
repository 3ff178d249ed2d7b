"""The working-hours calendar: settings, and SQL that makes working seconds a set-based lookup.

The mapper's step `060_calendar.sql` builds `map_calendar`, one row per local day over the data's range:

    day          the local date (in `timezone`)
    day_start    the UTC instant of that day's local midnight (DST-correct, via DuckDB's ICU `timezone()`)
    work_start   the UTC instant the working day starts (local `start`), work_end likewise
    work_s       working seconds of the day: work_end - work_start on a workday that is no holiday, else 0
    cum_before_s working seconds of all earlier days of the table

The working seconds elapsed up to an instant t are `cum_before_s + clamp(t - work_start, 0, work_s)` of the
last row with day_start <= t (an ASOF join), so the working time between t1 and t2 is cum(t2) - cum(t1):
two lookups per span, never a loop over days. A DST change shortens or lengthens the night, never the
working hours themselves (the day's start and end are local wall-clock times).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources

import duckdb

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALENDAR_SQL = "060_calendar.sql"


@dataclass(frozen=True)
class CalendarSettings:
    """The team's working time: time zone, workdays, local working hours and local holidays."""

    timezone: str = "UTC"
    workdays: tuple[str, ...] = WEEKDAYS[:5]
    start: dt.time = dt.time(9)
    end: dt.time = dt.time(17, 30)
    holidays: tuple[dt.date, ...] = ()

    def __post_init__(self) -> None:
        """Reject days and hours the calendar cannot use (the config checks them too; this guards the API)."""
        unknown = [d for d in self.workdays if d not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown workdays {unknown}; use {', '.join(WEEKDAYS)}")
        if self.start >= self.end:
            raise ValueError(f"the working day must end after it starts: {self.start}-{self.end}")

    @property
    def day_seconds(self) -> float:
        """Working seconds of a normal workday (no DST change can alter wall-clock hours)."""
        start = dt.datetime.combine(dt.date(2000, 1, 1), self.start)
        end = dt.datetime.combine(dt.date(2000, 1, 1), self.end)
        return (end - start).total_seconds()


def parse_hours(text: str) -> tuple[dt.time, dt.time]:
    """Turn the config's `09:00-17:30` into (start, end) times."""
    start, end = text.split("-")
    return dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())


def write_settings(con: duckdb.DuckDBPyConnection, calendar: CalendarSettings, *, include_bots: bool,
                   link_window_s: float) -> None:
    """Replace the single map_settings row with these calendar and hygiene settings."""
    con.execute("DELETE FROM map_settings")
    con.execute(
        "INSERT INTO map_settings VALUES (?, ?, ?, ?::VARCHAR[], ?, ?, ?::DATE[])",
        [include_bots, float(link_window_s), calendar.timezone, list(calendar.workdays), calendar.start,
         calendar.end, sorted(set(calendar.holidays))],
    )


def build_calendar(con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> None:
    """(Re)build map_calendar for local days first..last from the stored settings (used by the mapper)."""
    sql = resources.files("models.sql").joinpath(CALENDAR_SQL).read_text(encoding="utf-8")
    con.execute("CREATE OR REPLACE TABLE map_calendar_range AS"
                " SELECT ?::DATE AS first_day, ?::DATE AS last_day", [first, last])
    con.execute(sql)


def working_seconds(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> float:
    """Working seconds between two instants through map_calendar (0 when end is not after start)."""
    rows = con.execute(
        """
        WITH ends(i, t) AS (VALUES (1, ?::TIMESTAMPTZ), (2, ?::TIMESTAMPTZ)),
        cum AS (
            SELECT e.i, map_work_at(e.t, c.day_start, c.work_start, c.work_s, c.cum_before_s) AS w
            FROM ends AS e
            ASOF LEFT JOIN map_calendar AS c ON e.t >= c.day_start
        )
        SELECT greatest(max(w) FILTER (WHERE i = 2) - max(w) FILTER (WHERE i = 1), 0.0) FROM cum
        """,
        [start, end],
    ).fetchall()
    return float(rows[0][0] or 0.0)
