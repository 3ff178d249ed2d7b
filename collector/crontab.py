"""Crontab expressions with crontab's own meaning, turned into APScheduler 3.x triggers.

APScheduler 3 numbers weekdays from Monday = 0, crontab from Sunday = 0 (and 7): `0 8 * * 1` must mean
Monday 08:00 as it does in a crontab, so the day-of-week field is expanded to day names here. Crontab
also fires when EITHER a restricted day of month OR a restricted day of week matches; APScheduler would
require both, so such an expression becomes two triggers combined with OrTrigger.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

# crontab day numbers: 0 and 7 are Sunday
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
            "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}


class CrontabError(ValueError):
    """An expression crontab would not accept; str() is one line."""


def _day_number(token: str, expr: str) -> int:
    """A crontab weekday (0-7 or a three-letter name) as 0..6 with Sunday = 0."""
    token = token.lower()
    if token in DAY_NAMES:
        return DAY_NAMES.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise CrontabError(f"{expr!r}: {token!r} is not a day of week (0-7 or sun..sat)")


def weekdays(field: str, expr: str = "") -> str | None:
    """Expand crontab's day-of-week field into APScheduler day names ("mon,wed"); None for '*'."""
    if field == "*":
        return None
    days: set[int] = set()
    for part in field.split(","):
        match = re.fullmatch(r"(\*|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:/(\d+))?", part)
        if not match:
            raise CrontabError(f"{expr!r}: cannot read day-of-week part {part!r}")
        start_text, end_text, step_text = match.groups()
        step = int(step_text) if step_text else 1
        if step < 1:
            raise CrontabError(f"{expr!r}: step must be at least 1")
        if start_text == "*":
            span = list(range(7))
        else:
            start = _day_number(start_text, expr)
            # `7` as the end of a range means Sunday at the end of the week (crontab's 1-7)
            end = (7 if end_text == "7" else _day_number(end_text, expr)) if end_text else (
                start if not step_text else 6)
            if end < start:
                end += 7  # e.g. fri-mon wraps over the weekend
            span = list(range(start, end + 1))
        days.update(day % 7 for day in span[::step])
    # APScheduler counts from Monday; list names in that order for readability
    return ",".join(DAY_NAMES[d] for d in sorted(days, key=lambda d: (d - 1) % 7))


def trigger(expr: str, timezone: tzinfo | str) -> BaseTrigger:
    """The APScheduler trigger that fires exactly when crontab would for `expr` in `timezone`."""
    text = _ALIASES.get(expr.strip(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise CrontabError(f"{expr!r}: a crontab expression has 5 fields (minute hour day month weekday)")
    minute, hour, day, month, dow = fields
    names = weekdays(dow, expr)
    try:
        if day != "*" and names is not None:
            return OrTrigger([
                CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=timezone),
                CronTrigger(minute=minute, hour=hour, month=month, day_of_week=names, timezone=timezone),
            ])
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=names,
                           timezone=timezone)
    except ValueError as exc:
        raise CrontabError(f"{expr!r}: {exc}") from None
