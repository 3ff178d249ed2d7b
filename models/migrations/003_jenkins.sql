-- 003: typed Jenkins tables, filled by connectors/jenkins.py (one row per build, change and pipeline stage).
-- Times are TIMESTAMPTZ (UTC) converted from Jenkins's epoch milliseconds; durations are seconds. Nothing is
-- invented: a figure Jenkins did not report stays NULL.

-- One row per build of a configured CI job (kind 'ci') or deploy job (kind 'deploy').
--   job             full name, folders joined by '/' ('petclinic/build'); a multibranch project configured by
--                   its own name is stored under its default-branch job ('petclinic/vets-service/main')
--   repo            the configured GitHub repo named by a git remote URL of the build, else [jenkins.repos]
--                   for the job, else [jenkins] repo
--   result          SUCCESS, FAILURE, UNSTABLE, ABORTED, NOT_BUILT; NULL while building
--   started_at      the build's `timestamp` (it left the queue); finished_at = started_at + duration
--   queue_*_s       the Metrics plugin's TimeInQueueAction (quiet period / blocked / waiting for an executor,
--                   queue_s their total); NULL when the build has no such action. queued_at = started_at - queue_s
--   pause_s         wfapi/describe pauseDurationMillis: time spent waiting on `input` steps (approvals), part
--                   of the run time; NULL for builds without pipeline stages
--   sha, sha_source the built commit: git BuildData lastBuiltRevision ('build_data'), else the configured SHA
--                   parameter ('parameter'), else the SHA of the build that triggered it ('upstream')
--   causes          JSON array of the CauseAction causes (_class, shortDescription, userId, upstreamProject, ...)
--   parameters      JSON object name -> value of the build parameters
--   upstream_*      the first UpstreamCause: the build that triggered this one
CREATE TABLE jenkins_builds (
    job               VARCHAR NOT NULL,
    number            INTEGER NOT NULL,
    kind              VARCHAR NOT NULL CHECK (kind IN ('ci', 'deploy')),
    environment       VARCHAR,            -- deploy jobs: the environment [jenkins.deploy_jobs] names
    repo              VARCHAR,
    url               VARCHAR,
    build_class       VARCHAR,            -- e.g. org.jenkinsci.plugins.workflow.job.WorkflowRun
    result            VARCHAR,
    building          BOOLEAN NOT NULL,
    queue_id          BIGINT,
    queued_at         TIMESTAMPTZ,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    duration_s        DOUBLE,
    queue_s           DOUBLE,
    queue_waiting_s   DOUBLE,
    queue_blocked_s   DOUBLE,
    queue_buildable_s DOUBLE,
    pause_s           DOUBLE,
    sha               VARCHAR,
    sha_source        VARCHAR CHECK (sha_source IN ('build_data', 'parameter', 'upstream')),
    causes            JSON,
    parameters        JSON,
    upstream_job      VARCHAR,
    upstream_number   INTEGER,
    PRIMARY KEY (job, number)
);

-- The change set of a build: commits that are new since the job's previous build (git changeSets items).
CREATE TABLE jenkins_build_changes (
    job          VARCHAR NOT NULL,
    number       INTEGER NOT NULL,
    sha          VARCHAR NOT NULL,   -- commitId
    author       VARCHAR,            -- author.fullName
    message      VARCHAR,            -- msg (first line)
    committed_at TIMESTAMPTZ,        -- timestamp (the git plugin reports the commit's time)
    PRIMARY KEY (job, number, sha)
);

-- Pipeline stages of finished pipeline builds (wfapi/describe). duration_s includes pause_s, the time an
-- `input` step in the stage waited for a human (wait, not process).
CREATE TABLE jenkins_stages (
    job        VARCHAR NOT NULL,
    number     INTEGER NOT NULL,
    stage_id   VARCHAR NOT NULL,     -- flow node id
    name       VARCHAR,
    status     VARCHAR,              -- SUCCESS, FAILED, UNSTABLE, ABORTED, NOT_EXECUTED, ...
    started_at TIMESTAMPTZ,
    duration_s DOUBLE,
    pause_s    DOUBLE,               -- NULL when the server's stage view does not report pauses
    PRIMARY KEY (job, number, stage_id)
);
