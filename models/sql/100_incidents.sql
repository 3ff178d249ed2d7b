-- 100: the incidents view: every incident ticket (GitHub issue, Jira issue, PagerDuty incident) with its
-- repo and the production deployment that caused it, and how that link was made.
--
-- Linking (in this order; the first rule that finds a deployment wins):
--   1. An explicit reference in the title, body or refs of the incident:
--        explicit_deployment  a deployment id: 'github:512345678', 'deployment 512345678',
--                             '.../deployments/512345678'
--                             or any other id of the deployments view written out ('jenkins:...')
--        explicit_sha         a full or short SHA (7 to 40 hex digits with at least one letter a-f): the
--                             production deployment of that SHA, or the one that delivered the PR whose merge
--                             commit or one of whose commits it names
--        explicit_pr          '#123' (in the incident's repo), 'owner/repo#123' or a pull request URL: the
--                             production deployment that delivered that PR (changes.deployed_at)
--      Only successful production deployments that finished before the incident was created count (one
--      finished later cannot have caused it: "fixed by #130" must not link to the fix). Among several, the
--      kind listed first wins, then the latest to finish.
--   2. Otherwise time_window: the latest successful production deployment of the incident's repo that
--      finished before the incident was created, at most map_incident_settings.link_window_s earlier
--      (7 days when the settings table is empty). Beyond the window there is no link.
-- The repo of an incident: the source's own (GitHub issues), else its service, first component or first
-- label mapped in map_incident_services, else the repo of the explicitly referenced deployment.

-- The ISO week of an instant, in UTC, as the DATE of its Monday.
CREATE OR REPLACE MACRO dora_week(ts) AS CAST(date_trunc('week', timezone('UTC', ts)) AS DATE);

-- A duration in seconds, never negative (NULL when either end is missing).
CREATE OR REPLACE MACRO dora_span(ts_from, ts_to) AS
    CASE WHEN ts_from IS NULL OR ts_to IS NULL THEN NULL
         ELSE greatest(epoch(ts_to) - epoch(ts_from), 0.0) END;

-- Successful production deployments, numbered per repo by finish time: seq 1 is the repo's seed (the first
-- production deployment seen, which contains all earlier history).
CREATE OR REPLACE TABLE map_production_deploys AS
SELECT
    d.deployment_id,
    d.repo,
    d.sha,
    d.started_at,
    d.finished_at,
    row_number() OVER (PARTITION BY d.repo ORDER BY d.finished_at, d.deployment_id) AS seq
FROM deployments AS d
WHERE d.status = 'success'
  AND d.finished_at IS NOT NULL
  AND lower(d.environment) IN (SELECT lower(e.environment) FROM map_production_environments AS e);

-- Every incident with its text and the repo its service, components or labels map to.
CREATE OR REPLACE TABLE map_incident_base AS
WITH records AS (
    SELECT
        r.*,
        r.source || ':' || r.incident_id AS incident_key,
        coalesce(json_extract_string(r.components, '$[*]'), []) AS component_list,
        coalesce(json_extract_string(r.labels, '$[*]'), []) AS label_list,
        concat_ws(chr(10), r.title, r.body,
                  array_to_string(coalesce(json_extract_string(r.refs, '$[*]'), []), chr(10))) AS text
    FROM incident_records AS r
),
keys AS (
    SELECT r.incident_key, 0 AS rank, r.service AS key FROM records AS r WHERE r.service IS NOT NULL
    UNION ALL
    SELECT r.incident_key, 1000 + unnest(range(len(r.component_list))), unnest(r.component_list)
    FROM records AS r
    UNION ALL
    SELECT r.incident_key, 2000 + unnest(range(len(r.label_list))), unnest(r.label_list)
    FROM records AS r
),
mapped AS (
    SELECT k.incident_key, arg_min(m.repo, k.rank) AS repo
    FROM keys AS k
    JOIN map_incident_services AS m ON m.key = k.key
    GROUP BY k.incident_key
)
SELECT
    r.incident_key,
    r.source,
    r.incident_id,
    r.title,
    coalesce(r.repo, m.repo) AS repo,
    r.created_at,
    r.acknowledged_at,
    r.resolved_at,
    r.status,
    r.status_category,
    r.url,
    r.service,
    r.urgency,
    r.text
FROM records AS r
LEFT JOIN mapped AS m ON m.incident_key = r.incident_key;

-- The explicit references found in each incident's text: kind, the repo it names (NULL: the incident's)
-- and the referenced value (deployment id, lower-case SHA prefix, PR number).
CREATE OR REPLACE TABLE map_incident_refs AS
WITH texts AS (SELECT b.incident_key, b.repo, b.text FROM map_incident_base AS b WHERE b.text IS NOT NULL)
SELECT DISTINCT incident_key, kind, ref_repo, ref
FROM (
    SELECT t.incident_key, 'deployment' AS kind, NULL AS ref_repo, 'github:' || unnest(
        regexp_extract_all(t.text, '(?i)\bdeployments?(?:/|\s+id)?[\s:#]*([0-9]+)\b', 1)) AS ref
    FROM texts AS t
    UNION ALL
    SELECT t.incident_key, 'deployment', NULL, rtrim(unnest(
        regexp_extract_all(t.text, '\b([a-z][a-z0-9_-]*:[^\s,;()<>"''\[\]]+)', 1)), '.')
    FROM texts AS t
    UNION ALL
    SELECT t.incident_key, 'sha', NULL, unnest(regexp_extract_all(lower(t.text), '\b([0-9a-f]{7,40})\b', 1))
    FROM texts AS t
    UNION ALL
    SELECT t.incident_key, 'pr', t.repo, unnest(regexp_extract_all(t.text, '(?:^|[^\w/&])#([0-9]+)\b', 1))
    FROM texts AS t
    UNION ALL
    SELECT t.incident_key, 'pr', x.m['repo'], x.m['n']
    FROM texts AS t,
         LATERAL (SELECT unnest(regexp_extract_all(t.text, '([\w.-]+/[\w.-]+)(?:#|/pulls?/)([0-9]+)\b',
                                                   ['repo', 'n'])) AS m) AS x
) AS found
WHERE ref IS NOT NULL AND (kind <> 'sha' OR regexp_matches(ref, '[a-f]'));

-- Candidate deployments of the explicit references, each with its kind's priority.
CREATE OR REPLACE TABLE map_incident_links AS
WITH settings AS (
    SELECT coalesce(max(s.link_window_s), 7 * 86400.0) AS link_window_s FROM map_incident_settings AS s
),
by_deployment AS (
    SELECT r.incident_key, p.deployment_id, 1 AS priority, 'explicit_deployment' AS link_method
    FROM map_incident_refs AS r
    JOIN map_production_deploys AS p ON p.deployment_id = r.ref
    WHERE r.kind = 'deployment'
),
delivered AS (
    -- the production deployment that delivered each deployed change
    SELECT c.repo, c.pr_number, c.merge_sha, min(p.deployment_id) AS deployment_id
    FROM changes AS c
    JOIN map_production_deploys AS p ON p.repo = c.repo AND p.finished_at = c.deployed_at
    WHERE c.deployed_at IS NOT NULL
    GROUP BY c.repo, c.pr_number, c.merge_sha
),
shas AS (
    SELECT r.incident_key, r.ref, b.repo FROM map_incident_refs AS r
    JOIN map_incident_base AS b ON b.incident_key = r.incident_key
    WHERE r.kind = 'sha'
),
by_sha AS (
    SELECT s.incident_key, p.deployment_id, 2 AS priority, 'explicit_sha' AS link_method
    FROM shas AS s
    JOIN map_production_deploys AS p
      ON left(p.sha, 7) = left(s.ref, 7) AND starts_with(p.sha, s.ref) AND p.repo = coalesce(s.repo, p.repo)
    UNION ALL
    SELECT s.incident_key, d.deployment_id, 2, 'explicit_sha'
    FROM shas AS s
    JOIN delivered AS d
      ON left(d.merge_sha, 7) = left(s.ref, 7) AND starts_with(d.merge_sha, s.ref)
     AND d.repo = coalesce(s.repo, d.repo)
    UNION ALL
    SELECT s.incident_key, d.deployment_id, 2, 'explicit_sha'
    FROM shas AS s
    JOIN pr_commits AS c
      ON left(c.sha, 7) = left(s.ref, 7) AND starts_with(c.sha, s.ref) AND c.repo = coalesce(s.repo, c.repo)
    JOIN delivered AS d ON d.repo = c.repo AND d.pr_number = c.pr_number
),
by_pr AS (
    SELECT r.incident_key, d.deployment_id, 3 AS priority, 'explicit_pr' AS link_method
    FROM map_incident_refs AS r
    JOIN delivered AS d ON d.repo = r.ref_repo AND d.pr_number = TRY_CAST(r.ref AS INTEGER)
    WHERE r.kind = 'pr'
),
explicit AS (
    SELECT e.incident_key, e.link_method, p.deployment_id, p.finished_at
    FROM (SELECT * FROM by_deployment UNION ALL SELECT * FROM by_sha UNION ALL SELECT * FROM by_pr) AS e
    JOIN map_production_deploys AS p ON p.deployment_id = e.deployment_id
    JOIN map_incident_base AS b ON b.incident_key = e.incident_key
    -- a deployment that finished after the incident was created cannot have caused it
    WHERE p.finished_at <= b.created_at
    QUALIFY row_number() OVER (PARTITION BY e.incident_key
                               ORDER BY e.priority, p.finished_at DESC, p.deployment_id) = 1
),
windowed AS (
    SELECT b.incident_key, 'time_window' AS link_method, p.deployment_id, p.finished_at
    FROM map_incident_base AS b
    ASOF JOIN map_production_deploys AS p ON p.repo = b.repo AND p.finished_at <= b.created_at
    WHERE epoch(b.created_at) - epoch(p.finished_at) <= (SELECT s.link_window_s FROM settings AS s)
)
SELECT x.incident_key, x.link_method, x.deployment_id
FROM explicit AS x
UNION ALL
SELECT w.incident_key, w.link_method, w.deployment_id
FROM windowed AS w
WHERE w.incident_key NOT IN (SELECT x.incident_key FROM explicit AS x);

-- One row per incident (materialised; the public view below).
CREATE OR REPLACE TABLE map_incident_rows AS
SELECT
    b.incident_key AS incident_id,
    b.source,
    b.title,
    coalesce(b.repo, p.repo) AS repo,
    b.created_at,
    b.acknowledged_at,
    b.resolved_at,
    l.deployment_id,
    p.sha AS deployment_sha,
    -- explicit_deployment | explicit_sha | explicit_pr | time_window; NULL when no deployment is blamed
    l.link_method,
    p.finished_at AS deployment_finished_at,
    -- failed-deployment recovery time: the linked deployment finished -> the incident resolved
    dora_span(p.finished_at, b.resolved_at) AS recovery_s,
    -- time to restore: the incident created -> resolved
    dora_span(b.created_at, b.resolved_at) AS restore_s,
    b.status,
    b.status_category,
    b.url,
    b.service,
    b.urgency,
    dora_week(b.created_at) AS week,
    b.incident_id AS source_id
FROM map_incident_base AS b
LEFT JOIN map_incident_links AS l ON l.incident_key = b.incident_key
LEFT JOIN map_production_deploys AS p ON p.deployment_id = l.deployment_id;

CREATE OR REPLACE VIEW incidents AS SELECT * FROM map_incident_rows;
