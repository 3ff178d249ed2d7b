"""ISO weeks and date ranges as UTC intervals: the periods every figure is counted over."""

from __future__ import annotations

import datetime as dt
import re

WEEK = dt.timedelta(days=7)
_ISO_WEEK = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.IGNORECASE)


def week_label(monday: dt.date) -> str:
    """The ISO week of a date as text, e.g. 2026-W47."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> dt.date:
    """The Monday of an ISO week written like 2026-W47 (or 2026W47), or of the week holding a date like
    2026-11-18; ValueError with one line otherwise."""
    match = _ISO_WEEK.match(text)
    if match:
        try:
            return dt.date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
        except ValueError:
            pass
    else:
        try:
            return monday_of(dt.date.fromisoformat(text.strip()))
        except ValueError:
            pass
    raise ValueError(f"week {text!r} is not an ISO week like 2026-W47 (or a date like 2026-11-18)")


def parse_day(text: str) -> dt.date:
    """A calendar date written like 2026-11-18; ValueError with one line otherwise."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"date {text!r} is not a date like 2026-11-18") from None


def monday_of(day: dt.date) -> dt.date:
    """The Monday of the ISO week a date is in."""
    return day - dt.timedelta(days=day.weekday())


def last_complete_week(now: dt.datetime) -> dt.date:
    """The Monday of the last ISO week (UTC) that ended at or before now."""
    moment = now.astimezone(dt.UTC) if now.tzinfo else now.replace(tzinfo=dt.UTC)
    return monday_of(moment.date()) - WEEK


def week_bounds(monday: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The week as a half-open UTC interval [Monday 00:00, next Monday 00:00)."""
    start = dt.datetime(monday.year, monday.month, monday.day, tzinfo=dt.UTC)
    return start, start + WEEK


def day_bounds(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The days first..last (both included) as a half-open UTC interval; ValueError when last < first."""
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    start = dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC)
    return start, dt.datetime(last.year, last.month, last.day, tzinfo=dt.UTC) + dt.timedelta(days=1)


def period_label(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """A period as text: its ISO week when it is exactly one, else its first and last UTC day."""
    if start is None and end is None:
        return "all time"
    if start is not None and end is not None and end - start == WEEK and start.weekday() == 0 \
            and week_bounds(start.date())[0] == start:
        return week_label(start.date())
    first = start.astimezone(dt.UTC).date().isoformat() if start is not None else "the first change"
    last = (end.astimezone(dt.UTC) - dt.timedelta(microseconds=1)).date().isoformat() if end is not None else "now"
    return f"{first} to {last}"
