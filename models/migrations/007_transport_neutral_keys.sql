-- 007: keys that GitHub's REST and GraphQL APIs share, so either transport fills the same rows.
-- GraphQL exposes no numeric id for timeline events or deployment statuses, but both APIs carry the
-- same global node id (REST `node_id`, GraphQL `id`). pr_events.event_id and
-- github_deployment_statuses.status_id become that node id; stored rows take it from the raw payload
-- they were parsed from (rows without one keep their old id as text).

CREATE TABLE pr_events_007 (
    repo        VARCHAR NOT NULL,
    pr_number   INTEGER NOT NULL,
    event_id    VARCHAR NOT NULL,   -- GitHub node id of the event
    event       VARCHAR NOT NULL,
    actor_login VARCHAR,
    actor_type  VARCHAR,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, event_id)
);

INSERT INTO pr_events_007
SELECT e.repo, e.pr_number, coalesce(r.payload ->> 'node_id', e.event_id), e.event, e.actor_login,
       e.actor_type, e.created_at
FROM pr_events AS e
LEFT JOIN raw_objects AS r
  ON r.source = 'github' AND r.kind = 'pr_event'
 AND r.id = e.repo || '#' || e.pr_number || '/' || e.event_id
QUALIFY row_number() OVER (PARTITION BY e.repo, coalesce(r.payload ->> 'node_id', e.event_id)) = 1;

DROP TABLE pr_events;
ALTER TABLE pr_events_007 RENAME TO pr_events;

CREATE TABLE github_deployment_statuses_007 (
    repo          VARCHAR NOT NULL,
    deployment_id BIGINT NOT NULL,
    status_id     VARCHAR NOT NULL,   -- GitHub node id of the status
    state         VARCHAR NOT NULL,   -- error, failure, inactive, in_progress, queued, pending, success
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, status_id)
);

INSERT INTO github_deployment_statuses_007
SELECT s.repo, s.deployment_id, coalesce(r.payload ->> 'node_id', CAST(s.status_id AS VARCHAR)), s.state,
       s.created_at
FROM github_deployment_statuses AS s
LEFT JOIN raw_objects AS r
  ON r.source = 'github' AND r.kind = 'deployment_status'
 AND r.id = s.repo || '/' || s.deployment_id || '/' || s.status_id
QUALIFY row_number() OVER (PARTITION BY s.repo, coalesce(r.payload ->> 'node_id', CAST(s.status_id AS VARCHAR))) = 1;

DROP TABLE github_deployment_statuses;
ALTER TABLE github_deployment_statuses_007 RENAME TO github_deployment_statuses;
