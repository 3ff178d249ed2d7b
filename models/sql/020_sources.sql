-- 020: the public deployments and builds views, one row per deployment / CI build of any source.
-- deployments: GitHub's deployments API plus ci_deployments (filled by other connectors, e.g. Jenkins).
-- builds: ci_builds (empty until a CI connector fills it).

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
        -- Statuses of the same second are ordered by how far they go (a status id is a node id, with
        -- no order), so `success` outranks the `in_progress` it followed and `inactive` comes last.
        arg_max(lower(s.state), (s.created_at, CASE lower(s.state)
            WHEN 'inactive' THEN 4 WHEN 'success' THEN 3 WHEN 'failure' THEN 3 WHEN 'error' THEN 3
            WHEN 'in_progress' THEN 2 ELSE 1 END)) AS latest_state,
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
            WHEN u.latest_state IN ('failure', 'error', 'in_progress', 'queued', 'inactive')
                THEN u.latest_state
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
    'github' AS source,
    -- GitHub deployments report no pauses.
    0.0 AS pause_s,
    -- A deployment object has no page of its own on GitHub; the repository's deployments page lists it.
    r.html_url || '/deployments' AS url
FROM normalised AS n
LEFT JOIN repos AS r ON r.repo = n.repo
-- One deployment reported twice (a Jenkins deploy job that also creates a GitHub deployment) counts once:
-- the GitHub record gives way to the other source's (which knows queue and approval pauses) when both
-- name the same repo, environment and SHA and started within an hour of each other.
WHERE NOT EXISTS (
    SELECT 1 FROM ci_deployments AS c
    WHERE c.repo = n.repo AND lower(c.environment) = lower(n.environment) AND c.sha = n.sha
      AND abs(epoch(c.started_at) - epoch(n.created_at)) <= 3600
)
UNION ALL
-- Other sources already store the normalised shape; statuses are lower-cased to the same vocabulary.
SELECT
    c.deployment_id,
    c.repo,
    c.environment,
    c.sha,
    c.started_at,
    c.finished_at,
    lower(c.status),
    c.source,
    CAST(coalesce(c.pause_s, 0) AS DOUBLE),
    c.url
FROM ci_deployments AS c;

-- One row per CI build. status: success, failure, error, unstable, aborted, running, queued; pause_s is
-- time paused inside the run (manual approval), which the mapper counts as wait.
CREATE OR REPLACE VIEW builds AS
SELECT
    b.build_id,
    b.repo,
    b.job,
    b.sha,
    b.queued_at,
    b.started_at,
    b.finished_at,
    lower(b.status) AS status,
    b.source,
    CAST(coalesce(b.pause_s, 0) AS DOUBLE) AS pause_s,
    b.url
FROM ci_builds AS b;
