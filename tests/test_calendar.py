"""The working-hours calendar: working seconds across weekends, holidays and DST changes; in stage_times."""

from __future__ import annotations

import datetime as dt

import pytest

from models.calendar import CalendarSettings, build_calendar, parse_hours, working_seconds, write_settings
from tests.mapper_cases import H, World

UTC = dt.UTC
LONDON = CalendarSettings(timezone="Europe/London", holidays=(dt.date(2026, 3, 30),))  # a Monday


def _calendar(settings: CalendarSettings, first: dt.date, last: dt.date) -> World:
    """A database whose map_calendar covers first..last under settings."""
    w = World()
    write_settings(w.con, settings, include_bots=False, link_window_s=7 * 86400)
    build_calendar(w.con, first, last)
    return w


def test_wait_across_a_weekend_a_holiday_and_the_spring_dst_change() -> None:
    w = _calendar(LONDON, dt.date(2026, 3, 20), dt.date(2026, 4, 5))
    # Fri 27 Mar 16:00 UTC = 16:00 GMT -> Tue 31 Mar 10:00 UTC = 11:00 BST (clocks went forward Sun 29 Mar):
    # Fri 16:00-17:30 1.5h; Sat, Sun weekend; Mon 30 holiday; Tue 09:00-11:00 BST 2h -> 3.5h
    friday, tuesday = dt.datetime(2026, 3, 27, 16, tzinfo=UTC), dt.datetime(2026, 3, 31, 10, tzinfo=UTC)
    assert working_seconds(w.con, friday, tuesday) == 3.5 * H
    assert working_seconds(w.con, tuesday, friday) == 0.0  # backwards: nothing
    # Tue 31 Mar starts at 08:00 UTC (09:00 BST): 07:30 -> 08:30 UTC is half an hour of work
    assert working_seconds(w.con, dt.datetime(2026, 3, 31, 7, 30, tzinfo=UTC),
                           dt.datetime(2026, 3, 31, 8, 30, tzinfo=UTC)) == 0.5 * H
    rows = dict(w.con.execute("SELECT day, work_s FROM map_calendar"
                              " WHERE day BETWEEN '2026-03-27' AND '2026-03-31'").fetchall())
    assert rows == {dt.date(2026, 3, 27): 8.5 * H, dt.date(2026, 3, 28): 0.0, dt.date(2026, 3, 29): 0.0,
                    dt.date(2026, 3, 30): 0.0, dt.date(2026, 3, 31): 8.5 * H}  # 09:00-17:30 is 8.5h


def test_without_the_holiday_the_monday_counts() -> None:
    w = _calendar(CalendarSettings(timezone="Europe/London"), dt.date(2026, 3, 20), dt.date(2026, 4, 5))
    friday, tuesday = dt.datetime(2026, 3, 27, 16, tzinfo=UTC), dt.datetime(2026, 3, 31, 10, tzinfo=UTC)
    assert working_seconds(w.con, friday, tuesday) == 12 * H  # 1.5h + Monday 8.5h + 2h


def test_autumn_dst_change_and_a_custom_week() -> None:
    w = _calendar(LONDON, dt.date(2026, 10, 20), dt.date(2026, 10, 30))
    # Fri 23 Oct 17:00 UTC = 18:00 BST (after work) -> Mon 26 Oct 09:30 UTC = 09:30 GMT (clocks went back
    # Sun 25 Oct): only Monday 09:00-09:30 -> 0.5h
    assert working_seconds(w.con, dt.datetime(2026, 10, 23, 17, tzinfo=UTC),
                           dt.datetime(2026, 10, 26, 9, 30, tzinfo=UTC)) == 0.5 * H
    sun_thu = CalendarSettings(timezone="Asia/Jerusalem", workdays=("sun", "mon", "tue", "wed", "thu"),
                               start=dt.time(8), end=dt.time(16))
    w = _calendar(sun_thu, dt.date(2026, 10, 20), dt.date(2026, 10, 30))
    # Thu 22 Oct 12:00 UTC = 15:00 IDT (UTC+3) -> Sun 25 Oct 06:00 UTC = 08:00 IST (UTC+2 after DST):
    # Thu 15:00-16:00 1h; Fri, Sat off; Sun 08:00 -> 0 -> 1h
    assert working_seconds(w.con, dt.datetime(2026, 10, 22, 12, tzinfo=UTC),
                           dt.datetime(2026, 10, 25, 6, tzinfo=UTC)) == 1 * H


def test_settings_and_hours_format() -> None:
    assert parse_hours("09:00-17:30") == (dt.time(9), dt.time(17, 30))
    assert CalendarSettings().day_seconds == 8.5 * H
    with pytest.raises(ValueError, match="workdays"):
        CalendarSettings(workdays=("monday",))
    with pytest.raises(ValueError, match="end after"):
        CalendarSettings(start=dt.time(18), end=dt.time(9))


def test_stage_times_in_working_time_with_the_london_calendar() -> None:
    w = World()
    # T0 is Mon 2 Mar 09:00 UTC: Fri 27 Mar 16:00 UTC is 607h later, Tue 31 Mar 10:00 UTC is 697h.
    w.pr(1, opened=607, merged=700, commits=[("p1", 606)],
         reviews=[("bob", "COMMENTED", 697), ("bob", "APPROVED", 699)])
    w.map(calendar=LONDON)
    row = w.stage(1, "review")
    # wait Fri 16:00 UTC -> Tue 10:00 UTC: 90h, of which 3.5h working (see the first test)
    assert (row["wait_s"], row["wait_work_s"]) == (90 * H, 3.5 * H)
    # process Tue 10:00 -> 12:00 UTC = 11:00 -> 13:00 BST: all working time
    assert (row["process_s"], row["process_work_s"]) == (2 * H, 2 * H)
    assert w.stage(1, "code")["process_work_s"] == 1 * H  # Fri 15:00 -> 16:00 UTC (GMT)
    summary = w.rows("SELECT wait_work_median_s FROM value_stream WHERE period IS NULL AND stage = 'review'")
    assert summary == [{"wait_work_median_s": 3.5 * H}]


def test_a_pause_moves_its_share_of_working_time() -> None:
    w = World()
    w.line("m1", "a")
    w.ci_deploy("seed", "m1", started=-2, finished=-1.5)
    w.pr(1, opened=0, merged=6, merge_sha="a", commits=[("p1", 0)])
    # Mon 16:00 -> 18:00 UTC with a one-hour approval pause; working time ends 17:30
    w.ci_deploy("d2", "a", started=7, finished=9, pause_s=3600)
    w.map()
    row = w.stage(1, "release")
    # raw: wait merged 6h -> 7h (15:00-16:00, working); process 2h of which 1.5h working.
    # The pause moves 1h of 2h (half) of the process: 0.75h of its working time goes to wait.
    assert (row["wait_s"], row["process_s"]) == (2 * H, 1 * H)
    assert (row["wait_work_s"], row["process_work_s"]) == (1.75 * H, 0.75 * H)
