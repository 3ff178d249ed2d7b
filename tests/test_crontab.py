"""Crontab expressions keep crontab's meaning under APScheduler 3 (whose weekday 0 is Monday)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from collector.crontab import CrontabError, trigger, weekdays

UTC = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
WEDNESDAY_NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 2026-11-25 is a Wednesday


def fires(expr: str, tz: ZoneInfo = UTC, start: dt.datetime = WEDNESDAY_NOON, n: int = 3) -> list[dt.datetime]:
    """The next n fire times after start."""
    t = trigger(expr, tz)
    out, previous, now = [], None, start
    for _ in range(n):
        nxt = t.get_next_fire_time(previous, now)
        assert nxt is not None
        out.append(nxt)
        previous, now = nxt, nxt + dt.timedelta(seconds=1)
    return out


def test_one_is_monday_as_in_crontab() -> None:
    assert fires("0 8 * * 1", n=1) == [dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC)]  # next Monday
    assert fires("0 8 * * mon", n=1) == fires("0 8 * * 1", n=1)


@pytest.mark.parametrize("sunday", ["0", "7", "sun"])
def test_zero_and_seven_are_sunday(sunday: str) -> None:
    assert fires(f"30 6 * * {sunday}", n=1) == [dt.datetime(2026, 11, 29, 6, 30, tzinfo=UTC)]


def test_ranges_lists_and_steps_translate_to_names() -> None:
    assert weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert weekdays("*/2") == "tue,thu,sat,sun"  # crontab days 0,2,4,6
    assert weekdays("5-7") == "fri,sat,sun"
    assert weekdays("fri-mon") == "mon,fri,sat,sun"
    assert weekdays("*") is None
    # weekdays only: from Wednesday noon the next fires are Thu, Fri, then Mon 09:00
    assert [f.day for f in fires("0 9 * * 1-5")] == [26, 27, 30]


def test_day_of_month_or_day_of_week_as_crontab() -> None:
    # crontab fires on the 13th OR on Fridays; APScheduler alone would need both
    assert [f.date() for f in fires("0 8 13 * 5", n=3)] == [
        dt.date(2026, 11, 27), dt.date(2026, 12, 4), dt.date(2026, 12, 11)]
    assert dt.date(2026, 12, 13) in [f.date() for f in fires("0 8 13 * 5", n=4)]


def test_time_zone_and_daylight_saving() -> None:
    # 08:00 London is 08:00 UTC in winter and 07:00 UTC in summer
    (winter,) = fires("0 8 * * 1", LONDON, n=1)
    (summer,) = fires("0 8 * * 1", LONDON, start=dt.datetime(2026, 6, 3, tzinfo=UTC), n=1)
    assert winter.astimezone(UTC).hour == 8 and summer.astimezone(UTC).hour == 7


def test_aliases() -> None:
    assert fires("@weekly", n=1) == [dt.datetime(2026, 11, 29, 0, 0, tzinfo=UTC)]  # Sunday midnight
    # a fire time equal to "now" is due now (Wednesday 12:00 itself)
    assert fires("@hourly", n=2) == [WEDNESDAY_NOON, dt.datetime(2026, 11, 25, 13, 0, tzinfo=UTC)]


@pytest.mark.parametrize("expr", ["* * * *", "0 8 * * 8", "0 8 * * mon-", "61 * * * *"])
def test_bad_expressions_are_one_line_errors(expr: str) -> None:
    with pytest.raises(CrontabError) as error:
        trigger(expr, UTC)
    assert expr in str(error.value) and "\n" not in str(error.value)
