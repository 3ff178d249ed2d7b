-- 060: the working-hours calendar (see models/calendar.py): one row per local day of map_calendar_range
-- with the cumulative working seconds before it, so working time between two instants is two lookups.

-- Working seconds elapsed from the calendar's first day up to instant t, given the calendar row of t's
-- local day (the last row with day_start <= t): the earlier days' total plus the part of t's own working
-- hours already gone. NULL when t is NULL.
CREATE OR REPLACE MACRO map_work_at(t, day_start, work_start, work_s, cum_before_s) AS
    CASE WHEN t IS NOT NULL THEN
        cum_before_s + least(greatest(epoch(t) - epoch(work_start), 0.0), work_s)
    END;

-- One row per local day. day_start / work_start / work_end are UTC instants of local wall-clock times, so
-- days around a DST change are 23 or 25 hours long while the working hours keep their local length.
CREATE OR REPLACE TABLE map_calendar AS
WITH s AS (SELECT * FROM map_settings LIMIT 1),
days AS (
    SELECT CAST(g.d AS DATE) AS day
    FROM map_calendar_range AS r,
         range(CAST(r.first_day AS TIMESTAMP), CAST(r.last_day AS TIMESTAMP) + INTERVAL 1 DAY,
               INTERVAL 1 DAY) AS g(d)
),
local AS (
    SELECT
        d.day,
        timezone(s.timezone, CAST(d.day AS TIMESTAMP)) AS day_start,
        timezone(s.timezone, d.day + s.work_start) AS work_start,
        timezone(s.timezone, d.day + s.work_end) AS work_end,
        -- isodow: 1 = Monday ... 7 = Sunday, the position in ('mon', ..., 'sun').
        list_contains(s.workdays, ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'][isodow(d.day)])
            AND NOT list_contains(s.holidays, d.day) AS is_workday
    FROM days AS d, s
)
SELECT
    l.day,
    l.day_start,
    l.work_start,
    l.work_end,
    l.is_workday,
    CASE WHEN l.is_workday THEN epoch(l.work_end) - epoch(l.work_start) ELSE 0.0 END AS work_s,
    coalesce(sum(CASE WHEN l.is_workday THEN epoch(l.work_end) - epoch(l.work_start) ELSE 0.0 END) OVER (
        ORDER BY l.day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0.0) AS cum_before_s
FROM local AS l
ORDER BY l.day;
