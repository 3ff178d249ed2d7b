-- 080: the public changes view, one row per merged pull request (materialised as map_change_rows).

CREATE OR REPLACE TABLE map_change_rows AS
WITH delivery AS (
    SELECT
        d.ck,
        max(d.started_at) FILTER (WHERE d.target = 'build') AS build_started_at,
        max(d.finished_at) FILTER (WHERE d.target = 'build') AS build_finished_at,
        max(d.finished_at) FILTER (WHERE d.target = 'staging') AS staging_at,
        max(d.started_at) FILTER (WHERE d.target = 'production') AS release_started_at,
        max(d.finished_at) FILTER (WHERE d.target = 'production') AS deployed_at,
        max(d.item_id) FILTER (WHERE d.target = 'production') AS deployment_id,
        max(d.attribution) FILTER (WHERE d.target = 'production' AND d.item_id IS NOT NULL) AS attribution
    FROM map_change_delivery AS d
    WHERE d.item_id IS NOT NULL
    GROUP BY d.ck
),
sums AS (
    SELECT s.ck, sum(s.wait_s) AS wait_s, sum(s.process_s) AS process_s
    FROM map_stage_rows AS s
    GROUP BY s.ck
)
SELECT
    t.repo || '#' || t.pr_number AS change_id,
    t.repo,
    t.pr_number,
    t.title,
    t.author,
    t.is_bot,
    t.merge_sha,
    t.first_commit_at,
    t.opened_at,
    t.ready_at,
    t.first_review_at,
    t.approved_at,
    t.merged_at,
    -- First success of the production deployment that delivered the merge commit (see 040).
    d.deployed_at,
    -- First commit to production in seconds, never negative; NULL when not deployed or no commit is known.
    map_span(t.first_commit_at, d.deployed_at) AS lead_time_s,
    d.build_started_at,
    d.build_finished_at,
    -- First success of the staging deployment that delivered the merge commit.
    d.staging_at,
    d.release_started_at,
    -- Sums over the change's stage_times rows (the stages it went through so far).
    coalesce(s.process_s, 0.0) AS process_s,
    coalesce(s.wait_s, 0.0) AS wait_s,
    -- process / lead time of a deployed change (capped at 1 when custom stages overlap); NULL otherwise.
    CASE WHEN map_span(t.first_commit_at, d.deployed_at) > 0
         THEN least(coalesce(s.process_s, 0.0) / map_span(t.first_commit_at, d.deployed_at), 1.0) END
        AS flow_efficiency,
    t.is_revert,
    CASE WHEN v.reverted_pr IS NOT NULL THEN t.repo || '#' || v.reverted_pr END AS reverts_change_id,
    -- How the production deployment was found: 'graph' (commit reachability), 'time_window' (fallback for
    -- a deployed SHA unknown to the graph); NULL when not deployed.
    d.attribution,
    -- The ISO week (UTC, its Monday) the change belongs to: of deployed_at, or merged_at while undeployed.
    map_week(coalesce(d.deployed_at, t.merged_at)) AS week,
    d.deployment_id,
    t.ck
FROM map_pr_timeline AS t
LEFT JOIN delivery AS d ON d.ck = t.ck
LEFT JOIN sums AS s ON s.ck = t.ck
LEFT JOIN map_reverts AS v ON v.repo = t.repo AND v.pr_number = t.pr_number;

CREATE OR REPLACE VIEW changes AS SELECT * EXCLUDE (ck) FROM map_change_rows;
