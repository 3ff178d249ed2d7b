"""Figures as short text, shared by every renderer so the terminal, the email and the web say the same."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def duration(seconds: float | None) -> str:
    """A short human duration: 2d 4h, 5h 12m, 14m, 40s; '-' when unknown."""
    if seconds is None:
        return "-"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def percent(share: float | None) -> str:
    """A 0..1 share as a percentage with one decimal; '-' when unknown."""
    return "-" if share is None else f"{share * 100:.1f}%"


def whole_percent(share: float | None, missing: str = "-") -> str:
    """A 0..1 share as a whole percentage; `missing` when unknown."""
    return missing if share is None else f"{share * 100:.0f}%"


def count(value: float | None) -> str:
    """A count, or a per-week average with one decimal; 'n/a' when unknown."""
    return "n/a" if value is None else (f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}")


def when(moment: dt.datetime | None) -> str:
    """A UTC timestamp as the report shows it, e.g. Tue 17 Nov 09:05 UTC; 'never' when missing."""
    if moment is None:
        return "never"
    return moment.astimezone(dt.UTC).strftime("%a %d %b %H:%M UTC")


def local_time(moment: dt.datetime | None, zone: ZoneInfo) -> str:
    """A timestamp in the team's time zone (they are stored in UTC), e.g. Tue 2026-11-17 10:05 CET."""
    if moment is None:
        return "-"
    return moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")
