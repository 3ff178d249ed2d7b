-- 020: the public deployments view, one row per deployment of any source (GitHub for now; Jenkins
-- later adds rows with deployment_id 'jenkins:...' through a UNION ALL here).

CREATE OR REPLACE VIEW deployments AS
WITH status_summary AS (
    SELECT
        s.repo,
        s.deployment_id,
        -- A deployment that ever reported success was deployed; a later 'inactive' (set by GitHub when a
        -- newer deployment replaces it) does not undo that.
        bool_or(lower(s.state) = 'success') AS ever_success,
        -- The deploy time is the first success status, never updated_at or the latest status.
        min(s.created_at) FILTER (WHERE lower(s.state) = 'success') AS first_success_at,
        arg_max(lower(s.state), (s.created_at, s.status_id)) AS latest_state,
        max(s.created_at) AS latest_at,
        max(s.created_at) FILTER (WHERE lower(s.state) IN ('failure', 'error')) AS last_failed_at
    FROM github_deployment_statuses AS s
    GROUP BY s.repo, s.deployment_id
),
normalised AS (
    SELECT
        d.repo,
        d.deployment_id,
        d.environment,
        d.sha,
        d.created_at,
        u.first_success_at,
        u.latest_at,
        u.last_failed_at,
        CASE
            WHEN u.ever_success THEN 'success'
            -- No status yet, or 'pending' (GitHub's name for a queued deployment): queued.
            WHEN u.latest_state IS NULL OR u.latest_state = 'pending' THEN 'queued'
            WHEN u.latest_state IN ('failure', 'error', 'in_progress', 'queued', 'inactive') THEN u.latest_state
            -- GitHub documents no other state; anything unknown has not visibly started.
            ELSE 'queued'
        END AS status
    FROM github_deployments AS d
    LEFT JOIN status_summary AS u ON u.repo = d.repo AND u.deployment_id = d.deployment_id
)
SELECT
    'github:' || n.deployment_id AS deployment_id,
    n.repo,
    n.environment,
    n.sha,
    n.created_at AS started_at,
    -- finished: the first success; for a failed/errored deployment the time it reported that; an
    -- inactive deployment that never succeeded keeps its last failure/error time (NULL if it had none);
    -- queued or in-progress deployments have not finished.
    CASE n.status
        WHEN 'success' THEN n.first_success_at
        WHEN 'failure' THEN n.latest_at
        WHEN 'error' THEN n.latest_at
        WHEN 'inactive' THEN n.last_failed_at
    END AS finished_at,
    n.status,
    'github' AS source
FROM normalised AS n;
