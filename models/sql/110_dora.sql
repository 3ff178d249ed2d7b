-- 110: the DORA four keys per ISO week and repo (dora_weekly), over the whole history (dora_summary) or
-- any period (the dora_period table macro), and the performance bands they are judged by (dora_bands).
--
-- Definitions (every count is of production deployments of the configured production environments):
--   deployments          successful production deployments by the week they finished, the repo's seed (its
--                        first production deployment seen, see 100) excluded
--   deploy_days          distinct UTC days with such a deployment
--   lead_time_*_s        first commit -> production of the changes deployed that week (changes.lead_time_s;
--                        bot changes only when the settings include them)
--   change_failure_rate  of those deployments, the share that caused an incident (one is linked to it, see
--                        100) or was rolled back (the repo's next production deployment shipped a different
--                        SHA that is an ancestor of its own); a deployment with several incidents and a
--                        rollback counts once
--   failed_attempts      production deployments that failed or errored, by the week they finished: shown
--                        beside the rate, never in it (they delivered nothing)
--   recovery_median_s    failed-deployment recovery time: linked deployment finished -> incident resolved,
--                        over the incidents created that week
--   restore_median_s     time to restore: incident created -> resolved, incidents created that week
--   incidents            incidents created that week; an incident whose repo is unknown (an unmapped service)
--                        is in the incidents view but in no row here

-- Deployments that were rolled back. Set-based: every pair (deployment, next deployment of the repo) with
-- different SHAs walks the first deployment's ancestry, only through commits not older than one day
-- before the next SHA's commit date (an ancestor cannot be much newer than its descendants; the day of
-- slack absorbs clock skew), and is a rollback when it meets the next SHA. A forward deployment (the
-- usual case) stops at once, because everything it would walk is older than the next SHA.
CREATE OR REPLACE TABLE map_rollbacks AS
WITH RECURSIVE pairs AS (
    SELECT t.repo, t.deployment_id, t.sha AS from_sha, n.sha AS to_sha,
           c.committed_at - INTERVAL 1 DAY AS floor_at
    FROM map_production_deploys AS t
    JOIN map_production_deploys AS n ON n.repo = t.repo AND n.seq = t.seq + 1
    JOIN commits AS c ON c.repo = n.repo AND c.sha = n.sha
    WHERE n.sha <> t.sha AND t.sha IS NOT NULL
),
walk(repo, deployment_id, to_sha, floor_at, sha) AS (
    SELECT p.repo, p.deployment_id, p.to_sha, p.floor_at, p.from_sha FROM pairs AS p
    UNION
    SELECT w.repo, w.deployment_id, w.to_sha, w.floor_at, e.parent_sha
    FROM walk AS w
    JOIN commit_parents AS e ON e.repo = w.repo AND e.sha = w.sha
    JOIN commits AS c ON c.repo = e.repo AND c.sha = e.parent_sha
    WHERE w.sha <> w.to_sha AND c.committed_at >= w.floor_at
)
SELECT DISTINCT w.repo, w.deployment_id
FROM walk AS w
WHERE w.sha = w.to_sha;

-- Every successful production deployment with what the four keys need to know about it.
CREATE OR REPLACE TABLE map_dora_deploys AS
SELECT
    p.deployment_id,
    p.repo,
    p.sha,
    p.finished_at,
    dora_week(p.finished_at) AS week,
    p.seq = 1 AS is_seed,
    EXISTS (SELECT 1 FROM map_incident_rows AS i WHERE i.deployment_id = p.deployment_id) AS caused_incident,
    EXISTS (SELECT 1 FROM map_rollbacks AS r WHERE r.deployment_id = p.deployment_id) AS rolled_back
FROM map_production_deploys AS p;

-- The 2023 Accelerate State of DevOps Report's performance levels, as data. A figure is in the first band
-- (by rank) whose bound it meets: at most `bound` where lower is better, at least `bound` where higher is.
-- The report describes clusters rather than thresholds; their boundaries are read as:
--   deploy_frequency     deployments per week over the 4 weeks ending with the week judged: elite at least
--                        daily (7 a week; the report: on demand, several a day), high at least weekly,
--                        medium at least monthly (1 in 4 weeks), else low
--   lead_time_s          elite at most a day, high at most a week, medium at most a month (30 days), else low
--   change_failure_rate  the clusters' 5% / 10% / 15% (low: 64%): elite at most 0.05, high 0.10, medium 0.15
--   recovery_s           failed deployment recovery time: elite under an hour, high under a day, medium at
--                        most a week, else low (the report's low is a month to six months)
--   restore_s            time to restore, judged like recovery_s
-- The 2023 report gives the low cluster the same deploy-frequency and lead-time ranges as medium; vsm calls
-- anything slower than medium low.
CREATE OR REPLACE VIEW dora_bands AS
SELECT * FROM (VALUES
    ('deploy_frequency', 'elite', 1, 'higher', 7.0, 'on demand: at least daily'),
    ('deploy_frequency', 'high', 2, 'higher', 1.0, 'between once a day and once a week'),
    ('deploy_frequency', 'medium', 3, 'higher', 0.25, 'between once a week and once a month'),
    ('deploy_frequency', 'low', 4, 'higher', 0.0, 'less than once a month'),
    ('lead_time_s', 'elite', 1, 'lower', 86400.0, 'less than one day'),
    ('lead_time_s', 'high', 2, 'lower', 604800.0, 'between one day and one week'),
    ('lead_time_s', 'medium', 3, 'lower', 2592000.0, 'between one week and one month'),
    ('lead_time_s', 'low', 4, 'lower', NULL, 'more than one month'),
    ('change_failure_rate', 'elite', 1, 'lower', 0.05, '5% or less'),
    ('change_failure_rate', 'high', 2, 'lower', 0.10, '10% or less'),
    ('change_failure_rate', 'medium', 3, 'lower', 0.15, '15% or less'),
    ('change_failure_rate', 'low', 4, 'lower', NULL, 'more than 15% (the low cluster: 64%)'),
    ('recovery_s', 'elite', 1, 'lower', 3600.0, 'less than one hour'),
    ('recovery_s', 'high', 2, 'lower', 86400.0, 'less than one day'),
    ('recovery_s', 'medium', 3, 'lower', 604800.0, 'between one day and one week'),
    ('recovery_s', 'low', 4, 'lower', NULL, 'more than one week'),
    ('restore_s', 'elite', 1, 'lower', 3600.0, 'less than one hour'),
    ('restore_s', 'high', 2, 'lower', 86400.0, 'less than one day'),
    ('restore_s', 'medium', 3, 'lower', 604800.0, 'between one day and one week'),
    ('restore_s', 'low', 4, 'lower', NULL, 'more than one week')
) AS b(metric, band, rank, better, bound, meaning);

-- The band of one figure of a metric (NULL for a NULL figure).
CREATE OR REPLACE MACRO dora_band(metric_name, figure) AS (
    SELECT arg_min(b.band, b.rank)
    FROM dora_bands AS b
    WHERE b.metric = metric_name
      AND figure IS NOT NULL
      AND (b.bound IS NULL OR (b.better = 'lower' AND figure <= b.bound)
                           OR (b.better = 'higher' AND figure >= b.bound))
);

-- Changes counted for lead time: deployed ones, bots only when the settings include them.
CREATE OR REPLACE VIEW map_dora_changes AS
SELECT c.repo, dora_week(c.deployed_at) AS week, c.deployed_at, c.lead_time_s
FROM changes AS c
WHERE c.deployed_at IS NOT NULL
  AND (NOT coalesce(c.is_bot, false)
       OR coalesce((SELECT any_value(s.include_bots) FROM map_settings AS s), false));

-- Failed production deployment attempts (one row each, whatever statuses they reported).
CREATE OR REPLACE VIEW map_dora_failed_attempts AS
SELECT d.deployment_id, d.repo, dora_week(coalesce(d.finished_at, d.started_at)) AS week,
       coalesce(d.finished_at, d.started_at) AS failed_at
FROM deployments AS d
WHERE (d.status IN ('failure', 'error') OR (d.status = 'inactive' AND d.finished_at IS NOT NULL))
  AND lower(d.environment) IN (SELECT lower(e.environment) FROM map_production_environments AS e);

CREATE OR REPLACE VIEW dora_weekly AS
WITH deploys AS (
    SELECT
        d.week,
        d.repo,
        count(*) AS deployments,
        count(DISTINCT CAST(timezone('UTC', d.finished_at) AS DATE)) AS deploy_days,
        count(*) FILTER (WHERE d.caused_incident OR d.rolled_back) AS failed_deployments
    FROM map_dora_deploys AS d
    WHERE NOT d.is_seed
    GROUP BY d.week, d.repo
),
lead AS (
    SELECT c.week, c.repo, quantile_cont(c.lead_time_s, 0.5) AS median_s,
           quantile_cont(c.lead_time_s, 0.85) AS p85_s
    FROM map_dora_changes AS c
    GROUP BY c.week, c.repo
),
failed AS (
    SELECT f.week, f.repo, count(*) AS failed_attempts
    FROM map_dora_failed_attempts AS f
    GROUP BY f.week, f.repo
),
incidents AS (
    SELECT
        i.week,
        i.repo,
        count(*) AS incidents,
        quantile_cont(i.recovery_s, 0.5) AS recovery_median_s,
        quantile_cont(i.restore_s, 0.5) AS restore_median_s
    FROM map_incident_rows AS i
    WHERE i.repo IS NOT NULL
    GROUP BY i.week, i.repo
),
weeks AS (
    SELECT week, repo FROM deploys UNION SELECT week, repo FROM lead
    UNION SELECT week, repo FROM failed UNION SELECT week, repo FROM incidents
),
joined AS (
    SELECT
        w.week,
        w.repo,
        coalesce(d.deployments, 0) AS deployments,
        coalesce(d.deploy_days, 0) AS deploy_days,
        l.median_s AS lead_time_median_s,
        l.p85_s AS lead_time_p85_s,
        CAST(d.failed_deployments AS DOUBLE) / nullif(d.deployments, 0) AS change_failure_rate,
        i.recovery_median_s,
        i.restore_median_s,
        coalesce(f.failed_attempts, 0) AS failed_attempts,
        coalesce(d.failed_deployments, 0) AS failed_deployments,
        coalesce(i.incidents, 0) AS incidents
    FROM weeks AS w
    LEFT JOIN deploys AS d ON d.week = w.week AND d.repo = w.repo
    LEFT JOIN lead AS l ON l.week = w.week AND l.repo = w.repo
    LEFT JOIN failed AS f ON f.week = w.week AND f.repo = w.repo
    LEFT JOIN incidents AS i ON i.week = w.week AND i.repo = w.repo
),
rated AS (
    SELECT
        j.*,
        sum(j.deployments) OVER (PARTITION BY j.repo ORDER BY j.week
                                 RANGE BETWEEN INTERVAL 21 DAYS PRECEDING AND CURRENT ROW) / 4.0
            AS deploys_per_week_4w
    FROM joined AS j
)
SELECT
    r.week,
    r.repo,
    r.deployments,
    r.deploy_days,
    r.lead_time_median_s,
    r.lead_time_p85_s,
    r.change_failure_rate,
    r.recovery_median_s,
    r.restore_median_s,
    r.failed_attempts,
    r.failed_deployments,
    r.incidents,
    r.deploys_per_week_4w,
    dora_band('deploy_frequency', r.deploys_per_week_4w) AS deploy_band,
    dora_band('lead_time_s', r.lead_time_median_s) AS lead_time_band,
    dora_band('change_failure_rate', r.change_failure_rate) AS change_failure_band,
    dora_band('recovery_s', r.recovery_median_s) AS recovery_band,
    dora_band('restore_s', r.restore_median_s) AS restore_band
FROM rated AS r;

-- The four keys' counts and medians over [s, e) per repo and for all repos together (repo NULL), before they
-- are spread over weeks and banded: what dora_summary (all history: both bounds NULL) and dora_period (one
-- period) share. Medians are of the underlying items, not of weekly medians. Each item falls in the range by
-- the instant dora_weekly files it under: a deployment or failed attempt by when it finished, a change by
-- when it reached production, an incident by when it was created.
CREATE OR REPLACE MACRO map_dora_totals(s, e) AS TABLE
WITH deploys AS (
    SELECT d.repo, count(*) AS deployments,
           count(*) FILTER (WHERE d.caused_incident OR d.rolled_back) AS failed_deployments
    FROM map_dora_deploys AS d
    WHERE NOT d.is_seed AND (s IS NULL OR d.finished_at >= s) AND (e IS NULL OR d.finished_at < e)
    GROUP BY GROUPING SETS ((d.repo), ())
),
lead AS (
    SELECT c.repo, quantile_cont(c.lead_time_s, 0.5) AS median_s, quantile_cont(c.lead_time_s, 0.85) AS p85_s
    FROM map_dora_changes AS c
    WHERE (s IS NULL OR c.deployed_at >= s) AND (e IS NULL OR c.deployed_at < e)
    GROUP BY GROUPING SETS ((c.repo), ())
),
failed AS (
    SELECT f.repo, count(*) AS failed_attempts
    FROM map_dora_failed_attempts AS f
    WHERE (s IS NULL OR f.failed_at >= s) AND (e IS NULL OR f.failed_at < e)
    GROUP BY GROUPING SETS ((f.repo), ())
),
incidents AS (
    SELECT i.repo, count(*) AS incidents, quantile_cont(i.recovery_s, 0.5) AS recovery_median_s,
           quantile_cont(i.restore_s, 0.5) AS restore_median_s
    FROM map_incident_rows AS i
    WHERE i.repo IS NOT NULL AND (s IS NULL OR i.created_at >= s) AND (e IS NULL OR i.created_at < e)
    GROUP BY GROUPING SETS ((i.repo), ())
),
repos AS (
    SELECT CAST(NULL AS VARCHAR) AS repo
    UNION SELECT repo FROM deploys UNION SELECT repo FROM lead
    UNION SELECT repo FROM failed UNION SELECT repo FROM incidents
)
SELECT
    r.repo,
    coalesce(d.deployments, 0) AS deployments,
    l.median_s AS lead_time_median_s,
    l.p85_s AS lead_time_p85_s,
    CAST(d.failed_deployments AS DOUBLE) / nullif(d.deployments, 0) AS change_failure_rate,
    i.recovery_median_s,
    i.restore_median_s,
    coalesce(f.failed_attempts, 0) AS failed_attempts,
    coalesce(d.failed_deployments, 0) AS failed_deployments,
    coalesce(i.incidents, 0) AS incidents
FROM repos AS r
LEFT JOIN deploys AS d ON d.repo IS NOT DISTINCT FROM r.repo
LEFT JOIN lead AS l ON l.repo IS NOT DISTINCT FROM r.repo
LEFT JOIN failed AS f ON f.repo IS NOT DISTINCT FROM r.repo
LEFT JOIN incidents AS i ON i.repo IS NOT DISTINCT FROM r.repo;

-- The four keys over everything collected, per repo and for all repos together (repo NULL), with bands;
-- deploys_per_week spreads deployments over the weeks from the repo's first to its last week with any
-- activity.
CREATE OR REPLACE VIEW dora_summary AS
WITH span AS (
    SELECT repo, (max(week) - min(week)) // 7 + 1 AS weeks
    FROM dora_weekly
    GROUP BY GROUPING SETS ((repo), ())
    HAVING count(*) > 0
),
joined AS (
    SELECT s.repo, s.weeks, t.deployments, t.deployments / (s.weeks + 0.0) AS deploys_per_week,
           t.* EXCLUDE (repo, deployments)
    FROM span AS s
    JOIN map_dora_totals(NULL, NULL) AS t ON t.repo IS NOT DISTINCT FROM s.repo
)
SELECT
    j.*,
    dora_band('deploy_frequency', j.deploys_per_week) AS deploy_band,
    dora_band('lead_time_s', j.lead_time_median_s) AS lead_time_band,
    dora_band('change_failure_rate', j.change_failure_rate) AS change_failure_band,
    dora_band('recovery_s', j.recovery_median_s) AS recovery_band,
    dora_band('restore_s', j.restore_median_s) AS restore_band
FROM joined AS j
ORDER BY j.repo NULLS LAST;

-- The four keys over one period [period_start, period_end), per repo and for all repos (repo NULL), with
-- the columns of dora_summary: what `vsm serve` shows for a chosen date range. weeks is the period's length
-- in weeks, so deploys_per_week is deployments over that length. A NULL bound means the first (or the end
-- of the last) ISO week dora_weekly has. Usage: SELECT * FROM dora_period(TIMESTAMPTZ '2026-11-02 00:00Z',
-- TIMESTAMPTZ '2026-11-30 00:00Z').
CREATE OR REPLACE MACRO dora_period(period_start, period_end) AS TABLE
WITH bounds AS (
    SELECT coalesce(CAST(period_start AS TIMESTAMPTZ),
                    (SELECT timezone('UTC', CAST(min(w.week) AS TIMESTAMP)) FROM dora_weekly AS w)) AS s,
           coalesce(CAST(period_end AS TIMESTAMPTZ),
                    (SELECT timezone('UTC', CAST(max(w.week) + 7 AS TIMESTAMP)) FROM dora_weekly AS w)) AS e
),
joined AS (
    SELECT t.repo, greatest(epoch(b.e) - epoch(b.s), 0.0) / 604800.0 AS weeks, t.deployments,
           t.deployments / nullif(greatest(epoch(b.e) - epoch(b.s), 0.0) / 604800.0, 0) AS deploys_per_week,
           t.* EXCLUDE (repo, deployments)
    FROM bounds AS b, map_dora_totals(b.s, b.e) AS t
    WHERE b.s IS NOT NULL AND b.e IS NOT NULL
)
SELECT
    j.*,
    dora_band('deploy_frequency', j.deploys_per_week) AS deploy_band,
    dora_band('lead_time_s', j.lead_time_median_s) AS lead_time_band,
    dora_band('change_failure_rate', j.change_failure_rate) AS change_failure_band,
    dora_band('recovery_s', j.recovery_median_s) AS recovery_band,
    dora_band('restore_s', j.restore_median_s) AS restore_band
FROM joined AS j
ORDER BY j.repo NULLS LAST;
