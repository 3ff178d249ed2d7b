-- 050: the public changes view, one row per merged pull request.

CREATE OR REPLACE VIEW changes AS
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
    map_span(t.first_commit_at, d.deployed_at) AS lead_time_s
FROM map_pr_timeline AS t
LEFT JOIN map_change_delivery AS d ON d.repo = t.repo AND d.pr_number = t.pr_number;
