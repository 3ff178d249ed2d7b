-- 070: wait and process time of every change in every configured stage (map_stage_rows, materialised;
-- the public stage_times view), and how often a backwards span was clamped to zero (stage_clamps).
--
-- Generic rule, driven only by map_stage_spans: each span starts at the first of its start events the
-- change has and ends at the first of its end events it has. A span missing either end is undefined and
-- counts 0; a stage none of whose spans is defined is skipped for that change (no row).
-- Nobody picked it up: when the wait ends with the event that starts the process (review: review_first),
-- the change lacks that event, and the stage still ended, the whole stage was wait (ready -> merged for
-- a PR merged without review) and its process is 0.
-- Pauses: when a process span starts and ends on the same build or deployment, that item's pause_s
-- (e.g. a manual approval inside the run) moves from process to wait; in working time the same share of
-- the span's working seconds moves.
-- Working time: wait_work_s / process_work_s are the same spans measured on map_calendar.

-- One row per stage: its spans' event lists and the rework signal its end events carry: the last
-- activity it completes decides (a deployment to target T, else a build, else a review).
CREATE OR REPLACE TABLE map_stage_defs AS
WITH stage_pivot AS (
    SELECT
        s.stage,
        min(s.stage_order) AS stage_order,
        any_value(s.start_events) FILTER (WHERE s.kind = 'wait') AS wait_start,
        any_value(s.end_events) FILTER (WHERE s.kind = 'wait') AS wait_end,
        any_value(s.start_events) FILTER (WHERE s.kind = 'process') AS process_start,
        any_value(s.end_events) FILTER (WHERE s.kind = 'process') AS process_end
    FROM map_stage_spans AS s
    GROUP BY s.stage
),
ends AS (
    SELECT p.*, list_concat(coalesce(p.process_end, []), coalesce(p.wait_end, [])) AS end_events
    FROM stage_pivot AS p
)
SELECT
    e.stage,
    e.stage_order,
    e.wait_start,
    e.wait_end,
    e.process_start,
    e.process_end,
    coalesce(e.wait_end = e.process_start, false) AS shared_middle,
    CASE
        WHEN len(list_filter(e.end_events, lambda x: x LIKE 'deploy_%:%')) > 0
            THEN 'deploy:'
                 || lower(split_part(list_filter(e.end_events, lambda x: x LIKE 'deploy_%:%')[1], ':', 2))
        WHEN len(list_filter(e.end_events, lambda x: x LIKE 'build_%')) > 0 THEN 'build'
        WHEN len(list_filter(e.end_events, lambda x: x LIKE 'review_%')) > 0 THEN 'review'
    END AS signal
FROM ends AS e;

CREATE OR REPLACE TABLE map_stage_rows AS
WITH defs_long AS (
    -- slot: 0 wait start, 1 wait end, 2 process start, 3 process end; alt: position in the alternatives.
    SELECT s.stage, CASE s.kind WHEN 'wait' THEN 0 ELSE 2 END AS slot,
           lower(unnest(s.start_events)) AS event_key, generate_subscripts(s.start_events, 1) AS alt
    FROM map_stage_spans AS s
    UNION ALL
    SELECT s.stage, CASE s.kind WHEN 'wait' THEN 1 ELSE 3 END, lower(unnest(s.end_events)),
           generate_subscripts(s.end_events, 1)
    FROM map_stage_spans AS s
),
-- Each event with its working-seconds position from the calendar.
ev AS (
    SELECT
        e.ck,
        e.event || coalesce(':' || e.environment, '') AS event_key,
        e."at",
        epoch_us(e."at") + 18014398509481984 AS us,
        e.pause_s,
        map_work_at(e."at", c.day_start, c.work_start, c.work_s, c.cum_before_s) AS work_at
    FROM map_events AS e
    ASOF LEFT JOIN map_calendar AS c ON e."at" >= c.day_start
),
-- Per change and stage, the event used at each end of each span: the first alternative it has. The
-- alternative and the time are packed into one BIGINT (alt * 2^55 + microseconds since 1970 + 2^54),
-- so a plain min() picks the first alternative; it is several times faster than arg_min over structs.
picked AS (
    SELECT
        ev.ck,
        d.stage,
        min(d.alt * 36028797018963968 + ev.us) FILTER (WHERE d.slot = 0) AS k0,
        min(d.alt * 36028797018963968 + ev.us) FILTER (WHERE d.slot = 1) AS k1,
        min(d.alt * 36028797018963968 + ev.us) FILTER (WHERE d.slot = 2) AS k2,
        min(d.alt * 36028797018963968 + ev.us) FILTER (WHERE d.slot = 3) AS k3,
        arg_min(ev.work_at, d.alt) FILTER (WHERE d.slot = 0) AS w0,
        arg_min(ev.work_at, d.alt) FILTER (WHERE d.slot = 1) AS w1,
        arg_min(ev.work_at, d.alt) FILTER (WHERE d.slot = 2) AS w2,
        arg_min(ev.work_at, d.alt) FILTER (WHERE d.slot = 3) AS w3,
        arg_min(ev.pause_s, d.alt) FILTER (WHERE d.slot = 3) AS pause3
    FROM ev
    JOIN defs_long AS d ON d.event_key = ev.event_key
    GROUP BY ev.ck, d.stage
),
-- Unpacked: microseconds (us*) and the alternative used (a*) of each span end.
unpacked AS (
    SELECT
        p.*,
        p.k0 // 36028797018963968 AS a0, p.k0 % 36028797018963968 - 18014398509481984 AS us0,
        p.k1 // 36028797018963968 AS a1, p.k1 % 36028797018963968 - 18014398509481984 AS us1,
        p.k2 // 36028797018963968 AS a2, p.k2 % 36028797018963968 - 18014398509481984 AS us2,
        p.k3 // 36028797018963968 AS a3, p.k3 % 36028797018963968 - 18014398509481984 AS us3,
        (g.shared_middle AND p.k0 IS NOT NULL AND p.k1 IS NULL AND p.k3 IS NOT NULL) AS collapsed
    FROM picked AS p
    JOIN map_stage_defs AS g ON g.stage = p.stage
),
-- The spans actually used, after the "nobody picked it up" rule (collapsed: the wait runs from its
-- start to the process end, and there is no process).
spans AS (
    SELECT
        u.ck,
        u.stage,
        g.stage_order,
        g.signal,
        u.collapsed,
        u.us0 AS wf_us, u.w0 AS wf_work, g.wait_start[u.a0] AS wf_event,
        CASE WHEN u.collapsed THEN u.us3 ELSE u.us1 END AS wt_us,
        CASE WHEN u.collapsed THEN u.w3 ELSE u.w1 END AS wt_work,
        CASE WHEN u.collapsed THEN g.process_end[u.a3] ELSE g.wait_end[u.a1] END AS wt_event,
        CASE WHEN NOT u.collapsed THEN u.us2 END AS pf_us,
        u.w2 AS pf_work,
        g.process_start[u.a2] AS pf_event,
        CASE WHEN NOT u.collapsed THEN u.us3 END AS pt_us,
        u.w3 AS pt_work,
        g.process_end[u.a3] AS pt_event,
        coalesce(u.pause3, 0.0) AS pt_pause
    FROM unpacked AS u
    JOIN map_stage_defs AS g ON g.stage = u.stage
),
measured AS (
    SELECT
        s.*,
        (s.wf_us IS NOT NULL AND s.wt_us IS NOT NULL) AS wait_defined,
        (s.pf_us IS NOT NULL AND s.pt_us IS NOT NULL) AS process_defined,
        coalesce(greatest((s.wt_us - s.wf_us) / 1e6, 0.0), 0.0) AS raw_wait_s,
        coalesce(greatest((s.pt_us - s.pf_us) / 1e6, 0.0), 0.0) AS raw_process_s,
        coalesce(greatest(s.wt_work - s.wf_work, 0.0), 0.0) AS raw_wait_work_s,
        coalesce(greatest(s.pt_work - s.pf_work, 0.0), 0.0) AS raw_process_work_s
    FROM spans AS s
),
-- Pause: only when the process starts and ends on the same item (build_* to build_*, or deploy_*:T to
-- deploy_*:T of the same target T).
paused AS (
    SELECT
        m.*,
        CASE WHEN m.process_defined AND m.pt_pause > 0
              AND split_part(m.pf_event, '_', 1) = split_part(m.pt_event, '_', 1)
              AND split_part(m.pf_event, ':', 2) = split_part(m.pt_event, ':', 2)
             THEN least(m.pt_pause, m.raw_process_s) ELSE 0.0 END AS pause_s
    FROM measured AS m
    WHERE m.wait_defined OR m.process_defined
),
-- Rework per change and signal (see map_stage_defs.signal): review = CHANGES_REQUESTED reviews; build =
-- failed builds reaching the merge commit before the delivering build; deploy:T = failed attempts
-- before the delivering deployment, plus 1 when that deployment was rolled back, plus (production) the
-- number of later changes that revert this one.
reverted AS (
    SELECT t.ck, count(*) AS reverts
    FROM map_reverts AS v
    JOIN map_pr_timeline AS t ON t.repo = v.repo AND t.pr_number = v.reverted_pr
    GROUP BY t.ck
),
rework AS (
    SELECT
        d.ck,
        CASE WHEN d.target = 'build' THEN 'build' ELSE 'deploy:' || d.target END AS signal,
        d.failures + CAST(d.rolled_back AS INTEGER)
            + CASE WHEN d.target = 'production' THEN coalesce(r.reverts, 0) ELSE 0 END AS rework
    FROM map_change_delivery AS d
    LEFT JOIN reverted AS r ON r.ck = d.ck
    WHERE d.item_id IS NOT NULL
    UNION ALL
    SELECT t.ck, 'review', t.changes_requested
    FROM map_pr_timeline AS t
)
SELECT
    t.repo || '#' || t.pr_number AS change_id,
    t.repo,
    t.pr_number,
    p.stage,
    p.stage_order,
    make_timestamptz(CASE WHEN p.wait_defined THEN p.wf_us ELSE p.pf_us END) AS started_at,
    make_timestamptz(CASE WHEN p.process_defined THEN p.pt_us ELSE p.wt_us END) AS ended_at,
    p.raw_wait_s + p.pause_s AS wait_s,
    p.raw_process_s - p.pause_s AS process_s,
    p.raw_wait_work_s
        + CASE WHEN p.raw_process_s > 0 THEN p.raw_process_work_s * p.pause_s / p.raw_process_s ELSE 0.0 END
        AS wait_work_s,
    p.raw_process_work_s
        - CASE WHEN p.raw_process_s > 0 THEN p.raw_process_work_s * p.pause_s / p.raw_process_s ELSE 0.0 END
        AS process_work_s,
    CASE WHEN p.signal IS NOT NULL THEN coalesce(w.rework, 0) END AS rework,
    -- rework before linked incidents are added by step 120 (which sets rework = rework_base + incidents)
    CASE WHEN p.signal IS NOT NULL THEN coalesce(w.rework, 0) END AS rework_base,
    (p.wait_defined AND p.wt_us < p.wf_us) AS wait_clamped,
    (p.process_defined AND p.pt_us < p.pf_us) AS process_clamped,
    p.ck,
    p.signal,
    p.collapsed,
    p.pause_s,
    CASE WHEN p.wait_defined THEN p.wf_event END AS wait_from_event,
    CASE WHEN p.wait_defined THEN p.wt_event END AS wait_to_event,
    CASE WHEN p.process_defined THEN p.pf_event END AS process_from_event,
    CASE WHEN p.process_defined THEN p.pt_event END AS process_to_event
FROM paused AS p
JOIN map_pr_timeline AS t ON t.ck = p.ck
LEFT JOIN rework AS w ON w.ck = p.ck AND w.signal = p.signal;

-- Public: one row per change and stage it went through, in stage order.
CREATE OR REPLACE VIEW stage_times AS
SELECT
    s.change_id,
    s.repo,
    s.pr_number,
    s.stage,
    s.stage_order,
    s.started_at,
    s.ended_at,
    s.wait_s,
    s.process_s,
    s.wait_work_s,
    s.process_work_s,
    s.rework,
    (s.wait_clamped OR s.process_clamped) AS clamped
FROM map_stage_rows AS s;

-- Spans whose end was before their start and were clamped to 0, per configured stage (0 when none).
CREATE OR REPLACE VIEW stage_clamps AS
SELECT
    g.stage,
    coalesce(sum(CAST(s.wait_clamped AS INTEGER) + CAST(s.process_clamped AS INTEGER)), 0)::BIGINT AS clamped
FROM map_stage_defs AS g
LEFT JOIN map_stage_rows AS s ON s.stage = g.stage
GROUP BY g.stage, g.stage_order
ORDER BY g.stage_order;
