-- 060: wait and process time of every change in every stage (stage_times), and how often a backwards
-- span was clamped to zero (stage_clamps).

-- Each stage as two spans: wait (wait_from -> wait_to) then process (process_from -> process_to).
CREATE OR REPLACE VIEW map_stage_spans AS
WITH c AS (
    SELECT
        t.repo || '#' || t.pr_number AS change_id,
        t.repo,
        t.pr_number,
        t.first_commit_at,
        t.ready_at,
        -- A review submitted only after the merge picked nothing up: the PR counts as never reviewed.
        CASE WHEN t.first_review_at <= t.merged_at THEN t.first_review_at END AS review_at,
        t.approved_at,
        t.merged_at,
        d.deploy_started_at,
        d.deployed_at
    FROM map_pr_timeline AS t
    LEFT JOIN map_change_delivery AS d ON d.repo = t.repo AND d.pr_number = t.pr_number
)
-- code: all process, first commit -> ready for review.
SELECT change_id, repo, pr_number, 'code' AS stage,
       first_commit_at AS started_at, ready_at AS ended_at,
       first_commit_at AS wait_from, first_commit_at AS wait_to,
       first_commit_at AS process_from, ready_at AS process_to
FROM c
UNION ALL
-- review: wait ready -> first review; process first review -> last approval (merge when nobody
-- approved). Never reviewed: the whole ready -> merge time is wait, process is 0.
SELECT change_id, repo, pr_number, 'review',
       ready_at, coalesce(approved_at, merged_at),
       ready_at, coalesce(review_at, merged_at),
       coalesce(review_at, merged_at), coalesce(approved_at, merged_at)
FROM c
UNION ALL
-- merge: wait approval -> merge, no process. Without an approval the review stage ran to the merge,
-- so merge wait is 0.
SELECT change_id, repo, pr_number, 'merge',
       coalesce(approved_at, merged_at), merged_at,
       coalesce(approved_at, merged_at), merged_at,
       merged_at, merged_at
FROM c
UNION ALL
-- release (deployed changes only): wait merge -> start of the delivering production deployment;
-- process that start -> its first success.
SELECT change_id, repo, pr_number, 'release',
       merged_at, deployed_at,
       merged_at, deploy_started_at,
       deploy_started_at, deployed_at
FROM c
WHERE deployed_at IS NOT NULL;

CREATE OR REPLACE VIEW stage_times AS
SELECT
    s.change_id,
    s.repo,
    s.pr_number,
    s.stage,
    g.stage_order,
    s.started_at,
    s.ended_at,
    map_span(s.wait_from, s.wait_to) AS wait_s,
    map_span(s.process_from, s.process_to) AS process_s
FROM map_stage_spans AS s
JOIN map_stages AS g ON g.stage = s.stage
-- Only stages with at least one defined span (e.g. no code stage when no commit is known).
WHERE map_span(s.wait_from, s.wait_to) IS NOT NULL OR map_span(s.process_from, s.process_to) IS NOT NULL;

-- Spans whose end was before their start and were clamped to 0, per stage (0 when none).
CREATE OR REPLACE VIEW stage_clamps AS
SELECT
    g.stage,
    coalesce(sum(
        CAST(map_is_clamped(s.wait_from, s.wait_to) AS INTEGER)
        + CAST(map_is_clamped(s.process_from, s.process_to) AS INTEGER)
    ), 0)::BIGINT AS clamped
FROM map_stages AS g
LEFT JOIN map_stage_spans AS s ON s.stage = g.stage
GROUP BY g.stage, g.stage_order
ORDER BY g.stage_order;
