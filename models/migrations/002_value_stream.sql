-- 002: generic CI tables that any connector can fill (Jenkins first), and the settings the value-stream
-- mapper copies from the config (stages, staging environments, calendar, hygiene switches).

-- One row per CI build of any source. The mapper's `builds` view reads it; build events of a change come
-- from the first successful build whose SHA reaches the change's merge commit.
--   build_id  source-qualified id, e.g. 'jenkins:petclinic-web/main#412'
--   job       the job or workflow name
--   sha       the commit that was built (NULL when unknown)
--   status    success, failure, error, unstable, aborted, running or queued (lower case)
--   pause_s   seconds the build spent paused inside its run (e.g. a Jenkins `input` step): counted as wait
CREATE TABLE ci_builds (
    build_id    VARCHAR NOT NULL,
    repo        VARCHAR NOT NULL,
    job         VARCHAR,
    sha         VARCHAR,
    queued_at   TIMESTAMPTZ,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    status      VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    pause_s     DOUBLE NOT NULL DEFAULT 0,
    PRIMARY KEY (build_id)
);

-- Deployments reported by a source other than GitHub's deployments API (e.g. a Jenkins deploy job).
-- The `deployments` view adds them to GitHub's. finished_at is the success time (or the failure time);
-- status uses the deployments view's vocabulary: success, failure, error, in_progress, queued, inactive.
CREATE TABLE ci_deployments (
    deployment_id VARCHAR NOT NULL,
    repo          VARCHAR NOT NULL,
    environment   VARCHAR,
    sha           VARCHAR,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    status        VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    pause_s       DOUBLE NOT NULL DEFAULT 0,
    PRIMARY KEY (deployment_id)
);

-- Environment names (compared lower-cased) that count as staging, besides any name starting with 'stag'.
CREATE TABLE map_staging_environments (
    environment VARCHAR PRIMARY KEY
);

-- The configured value stream, one row per span: stage `stage` (position stage_order) has a `kind`
-- ('wait' or 'process') span from the first of start_events the change has to the first of end_events
-- it has. Event names follow models/stream.py (`deploy_started:staging`). Mapper v1 kept a view of the
-- same name; it is replaced by this table.
DROP VIEW IF EXISTS map_stage_spans;
CREATE TABLE map_stage_spans (
    stage        VARCHAR NOT NULL,
    stage_order  INTEGER NOT NULL,
    kind         VARCHAR NOT NULL CHECK (kind IN ('wait', 'process')),
    start_events VARCHAR[] NOT NULL,
    end_events   VARCHAR[] NOT NULL,
    PRIMARY KEY (stage, kind)
);

-- Scalar settings, exactly one row after a mapper run.
--   include_bots   bot-authored changes count in the headline figures (value_stream, flow_weekly, totals)
--   link_window_s  the longest a time-window attribution reaches back from a deployment's start
--   timezone, workdays ('mon'..'sun'), work_start / work_end (local wall-clock), holidays (local dates):
--                  the working-hours calendar
CREATE TABLE map_settings (
    include_bots  BOOLEAN NOT NULL,
    link_window_s DOUBLE NOT NULL,
    timezone      VARCHAR NOT NULL,
    workdays      VARCHAR[] NOT NULL,
    work_start    TIME NOT NULL,
    work_end      TIME NOT NULL,
    holidays      DATE[] NOT NULL
);

-- What the last mapper run was: its settings-and-SQL fingerprint (an incremental run is only allowed
-- while it is unchanged), whether it was full or incremental, and when it ran. At most one row.
CREATE TABLE map_state (
    fingerprint VARCHAR NOT NULL,
    mode        VARCHAR NOT NULL CHECK (mode IN ('full', 'incremental')),
    mapped_at   TIMESTAMPTZ NOT NULL,
    changes     BIGINT NOT NULL          -- changes (re)computed by that run
);
