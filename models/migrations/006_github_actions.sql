-- 006: typed GitHub Actions tables, filled by connectors/github.py for the configured `ci_workflows`. Each
-- run attempt is also a row of ci_builds (source 'github-actions'), which is what the mapper reads.

-- One row per workflow run on the default branch, as last seen (status and times of its latest attempt).
--   workflow        the configured workflow file ('build.yml')
--   status          queued, in_progress, completed (or waiting, requested, pending)
--   conclusion      success, failure, cancelled, skipped, timed_out, action_required, neutral, stale,
--                   startup_failure; NULL until completed
--   created_at      when the run (its first attempt) was created; run_started_at: when the latest attempt
--                   started; updated_at: its last change (the completion time once completed)
CREATE TABLE github_workflow_runs (
    repo           VARCHAR NOT NULL,
    run_id         BIGINT NOT NULL,
    run_attempt    INTEGER NOT NULL,
    workflow       VARCHAR NOT NULL,
    head_sha       VARCHAR,
    head_branch    VARCHAR,
    event          VARCHAR,
    status         VARCHAR,
    conclusion     VARCHAR,
    created_at     TIMESTAMPTZ,
    run_started_at TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ,
    html_url       VARCHAR,
    PRIMARY KEY (repo, run_id)
);

-- One row per job of a run attempt. started_at is NULL while the job is queued (GitHub then reports its
-- creation time); runner queue = started_at - created_at.
CREATE TABLE github_workflow_jobs (
    repo         VARCHAR NOT NULL,
    job_id       BIGINT NOT NULL,
    run_id       BIGINT NOT NULL,
    run_attempt  INTEGER,
    name         VARCHAR,
    status       VARCHAR,
    conclusion   VARCHAR,
    created_at   TIMESTAMPTZ,
    started_at   TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    PRIMARY KEY (repo, job_id)
);
