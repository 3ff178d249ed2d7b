-- 001: the raw layer, sync bookkeeping and the typed GitHub tables.
-- Every timestamp is TIMESTAMPTZ in UTC; every table that a connector fills has a primary key so that
-- writes are idempotent upserts.

CREATE TABLE raw_objects (
    source       VARCHAR NOT NULL,   -- 'github', 'jenkins', ...
    kind         VARCHAR NOT NULL,   -- 'pull', 'review', 'commit', 'deployment', ...
    id           VARCHAR NOT NULL,   -- the object's id within source and kind (repo-qualified where needed)
    scope        VARCHAR,            -- repo or job the object belongs to
    payload      JSON NOT NULL,      -- the object exactly as the API sent it
    payload_hash VARCHAR NOT NULL,   -- md5 of payload; a re-fetch of an unchanged object writes nothing
    fetched_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, kind, id)
);

CREATE TABLE sync_cursors (
    source     VARCHAR NOT NULL,
    scope      VARCHAR NOT NULL,     -- e.g. the repo 'petclinic/petclinic-web'
    stream     VARCHAR NOT NULL,     -- e.g. 'pulls', 'commits', 'deployments'
    value      VARCHAR NOT NULL,     -- ISO timestamp or id, meaning defined by the stream
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, scope, stream)
);

CREATE SEQUENCE sync_run_ids START 1;

CREATE TABLE sync_runs (
    run_id               BIGINT PRIMARY KEY DEFAULT nextval('sync_run_ids'),
    source               VARCHAR NOT NULL,
    started_at           TIMESTAMPTZ NOT NULL,
    finished_at          TIMESTAMPTZ,
    status               VARCHAR NOT NULL,   -- running, success, failed
    items                BIGINT NOT NULL DEFAULT 0,
    requests             BIGINT NOT NULL DEFAULT 0,
    rate_limit_remaining INTEGER,
    error                VARCHAR
);

CREATE TABLE repos (
    repo           VARCHAR PRIMARY KEY,  -- 'owner/name'
    default_branch VARCHAR NOT NULL,
    html_url       VARCHAR
);

-- Commits of the default branch (the commit graph used for attribution).
CREATE TABLE commits (
    repo         VARCHAR NOT NULL,
    sha          VARCHAR NOT NULL,
    author_login VARCHAR,
    author_name  VARCHAR,
    authored_at  TIMESTAMPTZ,
    committed_at TIMESTAMPTZ,
    message      VARCHAR,
    PRIMARY KEY (repo, sha)
);

CREATE TABLE commit_parents (
    repo         VARCHAR NOT NULL,
    sha          VARCHAR NOT NULL,
    parent_index INTEGER NOT NULL,   -- 0 = first parent
    parent_sha   VARCHAR NOT NULL,
    PRIMARY KEY (repo, sha, parent_index)
);

CREATE TABLE pull_requests (
    repo             VARCHAR NOT NULL,
    number           INTEGER NOT NULL,
    id               BIGINT,
    title            VARCHAR,
    author_login     VARCHAR,
    author_type      VARCHAR,         -- 'User', 'Bot', 'Organization'
    state            VARCHAR,         -- open, closed
    draft            BOOLEAN,
    created_at       TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ,
    closed_at        TIMESTAMPTZ,
    merged_at        TIMESTAMPTZ,
    merge_commit_sha VARCHAR,
    head_ref         VARCHAR,
    head_sha         VARCHAR,
    base_ref         VARCHAR,
    html_url         VARCHAR,
    PRIMARY KEY (repo, number)
);

-- Commits listed on a pull request (includes squashed and rebased-away commits).
CREATE TABLE pr_commits (
    repo         VARCHAR NOT NULL,
    pr_number    INTEGER NOT NULL,
    sha          VARCHAR NOT NULL,
    author_login VARCHAR,
    authored_at  TIMESTAMPTZ,
    committed_at TIMESTAMPTZ,
    message      VARCHAR,
    PRIMARY KEY (repo, pr_number, sha)
);

CREATE TABLE pr_reviews (
    repo           VARCHAR NOT NULL,
    pr_number      INTEGER NOT NULL,
    review_id      BIGINT NOT NULL,
    reviewer_login VARCHAR,
    reviewer_type  VARCHAR,           -- 'User', 'Bot'
    state          VARCHAR,           -- APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    submitted_at   TIMESTAMPTZ,       -- NULL while PENDING
    commit_id      VARCHAR,
    PRIMARY KEY (repo, review_id)
);

-- Timeline events of a pull request that matter for flow (ready_for_review, convert_to_draft,
-- review_requested, merged, closed, reopened).
CREATE TABLE pr_events (
    repo        VARCHAR NOT NULL,
    pr_number   INTEGER NOT NULL,
    event_id    VARCHAR NOT NULL,
    event       VARCHAR NOT NULL,
    actor_login VARCHAR,
    actor_type  VARCHAR,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, event_id)
);

CREATE TABLE github_deployments (
    repo          VARCHAR NOT NULL,
    deployment_id BIGINT NOT NULL,
    environment   VARCHAR,
    sha           VARCHAR,
    ref           VARCHAR,
    task          VARCHAR,
    creator_login VARCHAR,
    created_at    TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ,
    PRIMARY KEY (repo, deployment_id)
);

CREATE TABLE github_deployment_statuses (
    repo          VARCHAR NOT NULL,
    deployment_id BIGINT NOT NULL,
    status_id     BIGINT NOT NULL,
    state         VARCHAR NOT NULL,   -- error, failure, inactive, in_progress, queued, pending, success
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, status_id)
);

-- Settings the mapper copies from the config so that the views need no config to be queried.
CREATE TABLE map_bot_logins (
    login VARCHAR PRIMARY KEY
);

CREATE TABLE map_production_environments (
    environment VARCHAR PRIMARY KEY
);
