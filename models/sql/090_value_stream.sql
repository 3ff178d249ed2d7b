-- 090: the classic value-stream figures per stage and week (value_stream) and the weekly flow of each
-- repo (flow_weekly). Both read the materialised stage and change rows, leave bot-authored changes out
-- unless map_settings.include_bots, and put a change in the ISO week (UTC, DATE of its Monday) of its
-- deployed_at, or of its merged_at while undeployed.
--
-- %C/A (pca, a fraction 0..1) of a stage = share of its rows with rework = 0, by the stage's signal
-- (map_stage_defs.signal):
--   review     no CHANGES_REQUESTED review (first-pass review)
--   build      the change's first build reaching its merge commit was green (no failed build before the
--              delivering one)
--   deploy:T   the delivering deployment to T had no failed attempt of the change before it, was not
--              rolled back (the next deployment to T shipped an ancestor of its SHA), and (production) the
--              change was not reverted later, nor followed by a linked incident (step 120)
-- Stages without such a signal (code, merge, custom stages that end on PR events only) have pca NULL:
-- nothing tells whether their output was accurate.

CREATE OR REPLACE VIEW map_counted_stage_rows AS
SELECT s.*, c.week, c.is_bot
FROM map_stage_rows AS s
JOIN map_change_rows AS c ON c.repo = s.repo AND c.pr_number = s.pr_number
WHERE NOT c.is_bot OR (SELECT coalesce(any_value(m.include_bots), false) FROM map_settings AS m);

-- Per stage and week (period = the week's Monday), plus one all-time row per stage (period NULL).
CREATE OR REPLACE VIEW value_stream AS
SELECT
    s.week AS period,
    s.stage,
    s.stage_order,
    count(*) AS items,
    quantile_cont(s.wait_s, 0.5) AS wait_median_s,
    quantile_cont(s.wait_s, 0.85) AS wait_p85_s,
    quantile_cont(s.process_s, 0.5) AS process_median_s,
    quantile_cont(s.process_s, 0.85) AS process_p85_s,
    avg(CASE WHEN s.rework = 0 THEN 1.0 WHEN s.rework > 0 THEN 0.0 END) AS pca,
    quantile_cont(s.wait_work_s, 0.5) AS wait_work_median_s,
    quantile_cont(s.process_work_s, 0.5) AS process_work_median_s
FROM map_counted_stage_rows AS s
GROUP BY GROUPING SETS ((s.week, s.stage, s.stage_order), (s.stage, s.stage_order))
ORDER BY period NULLS FIRST, s.stage_order;

-- Per week and repo: the changes of the week, lead time of its deployed ones, flow efficiency =
-- sum(process) / sum(lead) over its deployed changes, rolled %C/A = product of its stages' pca, and the
-- bottleneck: the stage holding the largest share of the week's total wait (the earlier stage on a tie).
CREATE OR REPLACE VIEW flow_weekly AS
WITH changes_in AS (
    SELECT c.*
    FROM map_change_rows AS c
    WHERE NOT c.is_bot OR (SELECT coalesce(any_value(m.include_bots), false) FROM map_settings AS m)
),
flow AS (
    SELECT
        c.week,
        c.repo,
        count(*) AS items,
        quantile_cont(c.lead_time_s, 0.5) AS lead_time_median_s,
        quantile_cont(c.lead_time_s, 0.85) AS lead_time_p85_s,
        sum(c.process_s) FILTER (WHERE c.lead_time_s IS NOT NULL)
            / nullif(sum(c.lead_time_s), 0) AS flow_efficiency
    FROM changes_in AS c
    GROUP BY c.week, c.repo
),
stages AS (
    SELECT
        s.week,
        s.repo,
        s.stage,
        s.stage_order,
        sum(s.wait_s) AS wait_sum,
        avg(CASE WHEN s.rework = 0 THEN 1.0 WHEN s.rework > 0 THEN 0.0 END) AS pca
    FROM map_counted_stage_rows AS s
    GROUP BY s.week, s.repo, s.stage, s.stage_order
),
per_week AS (
    SELECT
        s.week,
        s.repo,
        product(s.pca) AS rolled_pca,
        arg_max(s.stage, (s.wait_sum, -s.stage_order)) FILTER (WHERE s.wait_sum > 0) AS bottleneck_stage
    FROM stages AS s
    GROUP BY s.week, s.repo
)
SELECT
    f.week,
    f.repo,
    f.items,
    f.lead_time_median_s,
    f.lead_time_p85_s,
    least(f.flow_efficiency, 1.0) AS flow_efficiency,
    p.rolled_pca,
    p.bottleneck_stage
FROM flow AS f
LEFT JOIN per_week AS p ON p.week = f.week AND p.repo = f.repo
ORDER BY f.week, f.repo;
