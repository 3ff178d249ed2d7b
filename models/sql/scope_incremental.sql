-- Scope of an incremental map, per repo, from the previous map's tables (run in schema main; the result
-- goes to map_delta, where the numbered steps then run). A change is frozen once it has a delivery row
-- (an item or the seed) for every target its repo has: nothing later can change its figures except a
-- revert (patched after the run) or a rollback of its deployment (see last_batch). A repo's since is the
-- earliest merge among
--   - changes not frozen yet (still waiting for a build, staging or production),
--   - merged PRs the previous map did not have (new, or collected late),
--   - changes delivered by the latest successful item of each target (the next one may roll it back).
-- Repos with none of these are not mapped again.
CREATE OR REPLACE TABLE map_delta.map_scope AS
WITH repo_targets AS (
    SELECT t.repo, count(DISTINCT t.target) AS targets FROM main.map_targets AS t WHERE t.ok GROUP BY t.repo
),
delivered AS (
    SELECT d.ck, count(DISTINCT d.target) AS targets FROM main.map_change_delivery AS d GROUP BY d.ck
),
unfrozen AS (
    SELECT t.repo, t.merged_at
    FROM main.map_pr_timeline AS t
    JOIN repo_targets AS g ON g.repo = t.repo
    LEFT JOIN delivered AS d ON d.ck = t.ck
    WHERE coalesce(d.targets, 0) < g.targets
),
new_prs AS (
    SELECT p.repo, p.merged_at
    FROM pull_requests AS p
    ANTI JOIN main.map_pr_timeline AS t ON t.repo = p.repo AND t.pr_number = p.number
    WHERE p.merged_at IS NOT NULL
),
last_items AS (
    SELECT t.repo, t.target, max(t.delivery_rank) AS delivery_rank
    FROM main.map_targets AS t
    WHERE t.ok
    GROUP BY t.repo, t.target
),
last_batch AS (
    SELECT t.repo, t.merged_at
    FROM main.map_change_delivery AS d
    JOIN last_items AS l ON l.repo = d.repo AND l.target = d.target AND l.delivery_rank = d.delivery_rank
    JOIN main.map_pr_timeline AS t ON t.ck = d.ck
),
earliest AS (
    SELECT u.repo, min(u.merged_at) AS since
    FROM (SELECT * FROM unfrozen UNION ALL SELECT * FROM new_prs UNION ALL SELECT * FROM last_batch) AS u
    GROUP BY u.repo
)
SELECT
    e.repo,
    e.since,
    -- A day of slack for clocks that disagree between GitHub and CI.
    e.since - INTERVAL 1 DAY AS graph_from,
    e.since - INTERVAL 1 DAY - to_seconds((SELECT any_value(s.link_window_s) FROM main.map_settings AS s))
        AS targets_from
FROM earliest AS e;
