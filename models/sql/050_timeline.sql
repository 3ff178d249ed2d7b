-- 050: every change's timeline as rows (map_events, materialised and kept narrow: change key, event,
-- environment, time, pause) and the public change_timeline view, which names each event's source and
-- adds a human-readable detail. The vocabulary is models/stream.py's EVENTS; deploy events carry their
-- target as environment ('production', 'staging', ...). Events a change does not have are absent.

CREATE OR REPLACE TABLE map_events AS
WITH pr AS (
    SELECT t.ck, u.event, u."at"
    FROM map_pr_timeline AS t,
         LATERAL (VALUES ('commit_authored', t.first_commit_at), ('pr_opened', t.opened_at),
                         ('pr_ready', t.ready_at), ('review_first', t.pickup_at),
                         ('review_changes_requested', t.changes_requested_at),
                         ('review_approved', t.approved_at), ('pr_merged', t.merged_at)) AS u(event, "at")
    WHERE u."at" IS NOT NULL
),
-- The delivering build and deployments (seed rows carry no item and give no events). The finishing
-- event carries the item's pause: time paused inside it is wait, not process.
items AS (
    SELECT d.ck, u.event, CASE WHEN d.kind = 'deployment' THEN d.target END AS environment, u."at", u.pause_s
    FROM map_change_delivery AS d,
         LATERAL (VALUES ('build_queued', d.queued_at, 0.0), ('build_started', d.started_at, 0.0),
                         ('build_finished', d.finished_at, d.pause_s)) AS u(event, "at", pause_s)
    WHERE d.kind = 'build' AND u."at" IS NOT NULL
    UNION ALL
    SELECT d.ck, u.event, d.target, u."at", u.pause_s
    FROM map_change_delivery AS d,
         LATERAL (VALUES ('deploy_started', d.started_at, 0.0),
                         ('deploy_finished', d.finished_at, d.pause_s)) AS u(event, "at", pause_s)
    WHERE d.kind = 'deployment' AND u."at" IS NOT NULL
)
SELECT p.ck, p.event, CAST(NULL AS VARCHAR) AS environment, p."at", 0.0 AS pause_s FROM pr AS p
UNION ALL
SELECT i.ck, i.event, i.environment, i."at", i.pause_s FROM items AS i;

-- The local days the calendar must cover: every event's day, one day of margin on each side.
CREATE OR REPLACE TABLE map_calendar_range AS
WITH s AS (SELECT any_value(m.timezone) AS timezone FROM map_settings AS m),
bounds AS (SELECT min(e."at") AS first_at, max(e."at") AS last_at FROM map_events AS e)
SELECT
    coalesce(CAST(timezone(s.timezone, b.first_at) AS DATE), current_date) - 1 AS first_day,
    coalesce(CAST(timezone(s.timezone, b.last_at) AS DATE), current_date) + 1 AS last_day
FROM bounds AS b, s;

-- Public: one row per event of a change, with where it came from, a human-readable detail and the page
-- that shows it at its source (NULL when the source gave none).
CREATE OR REPLACE VIEW change_timeline AS
SELECT
    t.repo || '#' || t.pr_number AS change_id,
    t.repo,
    t.pr_number,
    e.event,
    e.environment,
    e."at",
    CASE
        WHEN e.event = 'commit_authored' THEN 'pr_commits'
        WHEN e.event = 'pr_ready' AND t.ready_by_event THEN 'pr_events'
        WHEN e.event LIKE 'review_%' THEN 'pr_reviews'
        WHEN e.event LIKE 'build_%' THEN 'builds'
        WHEN e.event LIKE 'deploy_%' THEN 'deployments'
        ELSE 'pull_requests'
    END AS source,
    CASE
        WHEN e.event = 'commit_authored' THEN 'commit ' || left(t.first_commit_sha, 12)
            || coalesce(' by ' || pc.author_login, '')
            || coalesce(': ' || split_part(pc.message, chr(10), 1), '')
        WHEN e.event = 'pr_opened'
            THEN 'pull request #' || t.pr_number || ' opened by ' || coalesce(t.author, '?')
        WHEN e.event = 'pr_ready' AND t.ready_by_event THEN 'marked ready for review (was a draft)'
        WHEN e.event = 'pr_ready' THEN 'ready for review when opened'
        WHEN e.event LIKE 'review_%'
            THEN 'review ' || r.review_id || ' by ' || coalesce(r.reviewer_login, '?')
            || ' (' || coalesce(upper(r.state), '?') || ')'
        WHEN e.event = 'pr_merged' THEN 'merged as ' || coalesce(left(t.merge_sha, 12), 'unknown commit')
        WHEN e.event LIKE 'build_%' THEN 'build ' || d.item_id || coalesce(' of job ' || d.label, '')
            || coalesce(' at ' || left(d.sha, 12), '')
            || CASE WHEN e.pause_s > 0 THEN ' (paused ' || CAST(round(e.pause_s) AS BIGINT) || ' s)'
                    ELSE '' END
        WHEN e.event LIKE 'deploy_%'
            THEN 'deployment ' || d.item_id || ' to ' || coalesce(d.label, e.environment)
            || coalesce(' at ' || left(d.sha, 12), '')
            || CASE WHEN e.pause_s > 0 THEN ' (paused ' || CAST(round(e.pause_s) AS BIGINT) || ' s)'
                    ELSE '' END
    END AS detail,
    CASE
        -- GitHub shows a PR's commit inside the PR, and a review as an anchor on its conversation page.
        WHEN e.event = 'commit_authored' THEN p.html_url || '/commits/' || t.first_commit_sha
        WHEN e.event LIKE 'review_%' THEN p.html_url || '#pullrequestreview-' || r.review_id
        WHEN e.event LIKE 'build_%' OR e.event LIKE 'deploy_%' THEN src.url
        ELSE p.html_url
    END AS url
FROM map_events AS e
JOIN map_pr_timeline AS t ON t.ck = e.ck
LEFT JOIN pr_reviews AS r
  ON r.repo = t.repo
 AND r.review_id = CASE e.event WHEN 'review_first' THEN t.first_review_id
                                WHEN 'review_changes_requested' THEN t.changes_requested_id
                                WHEN 'review_approved' THEN t.approval_id END
LEFT JOIN pr_commits AS pc
  ON e.event = 'commit_authored'
 AND pc.repo = t.repo AND pc.pr_number = t.pr_number AND pc.sha = t.first_commit_sha
LEFT JOIN pull_requests AS p ON p.repo = t.repo AND p.number = t.pr_number
LEFT JOIN map_change_delivery AS d
  ON d.ck = e.ck AND d.item_id IS NOT NULL
 AND d.target = CASE WHEN e.event LIKE 'build_%' THEN 'build'
                     WHEN e.event LIKE 'deploy_%' THEN e.environment END
LEFT JOIN (SELECT b.build_id AS item_id, b.url FROM builds AS b
           UNION ALL
           SELECT x.deployment_id, x.url FROM deployments AS x) AS src
  ON src.item_id = d.item_id;
