-- 010: small helpers shared by the mapper's views.

-- Bot rule (reviewers and PR authors): GitHub type 'Bot', a login ending in '[bot]' (dependabot[bot],
-- renovate[bot]), or a login listed in the settings (map_bot_logins holds them lower-cased).
-- Logins compare case-insensitively, as GitHub does.
CREATE OR REPLACE MACRO map_is_bot(who, kind) AS
    coalesce(kind = 'Bot', false)
    OR coalesce(ends_with(lower(who), '[bot]'), false)
    OR coalesce(lower(who) IN (SELECT b.login FROM map_bot_logins AS b), false);

-- A duration in DOUBLE seconds from ts_from to ts_to. NULL when either end is missing (the span is not
-- defined); never negative: a span whose end is before its start counts as 0 (see map_is_clamped).
CREATE OR REPLACE MACRO map_span(ts_from, ts_to) AS
    CASE WHEN ts_from IS NULL OR ts_to IS NULL THEN NULL
         ELSE greatest(epoch(ts_to) - epoch(ts_from), 0.0) END;

-- True when a defined span runs backwards and map_span clamped it to 0 (reported in stage_clamps).
CREATE OR REPLACE MACRO map_is_clamped(ts_from, ts_to) AS coalesce(ts_to < ts_from, false);

-- The ISO week of an instant, in UTC, as the DATE of its Monday (independent of the session's TimeZone).
CREATE OR REPLACE MACRO map_week(ts) AS CAST(date_trunc('week', timezone('UTC', ts)) AS DATE);

-- The deployment target an environment name belongs to: 'production' for the configured production
-- environments, 'staging' for the configured staging ones and any name starting with 'stag', else the
-- name itself lower-cased. Deploy events of the timeline carry the target (`deploy_started:staging`).
CREATE OR REPLACE MACRO map_target(environment) AS
    CASE
        WHEN lower(environment) IN (SELECT lower(e.environment) FROM map_production_environments AS e)
            THEN 'production'
        WHEN lower(environment) IN (SELECT lower(e.environment) FROM map_staging_environments AS e)
             OR starts_with(lower(environment), 'stag')
            THEN 'staging'
        ELSE lower(environment)
    END;

-- Revert detection. GitHub's revert button titles the PR `Revert "<original title>"` and names its branch
-- `revert-<original PR number>-<original branch>`; `git revert` writes the same subject.
-- map_reverted_title: the quoted original title, NULL when the text is no revert.
CREATE OR REPLACE MACRO map_reverted_title(text) AS
    nullif(regexp_extract(split_part(text, chr(10), 1), '^Revert "(.*)"\s*$', 1), '');

-- map_reverted_number: N of a `revert-N-...` branch, NULL otherwise.
CREATE OR REPLACE MACRO map_reverted_number(head_ref) AS
    TRY_CAST(nullif(regexp_extract(head_ref, '^revert-([0-9]+)-', 1), '') AS INTEGER);

-- The stages of the configured value stream and their order (from the settings table).
CREATE OR REPLACE VIEW map_stages AS
SELECT s.stage, min(s.stage_order) AS stage_order
FROM map_stage_spans AS s
GROUP BY s.stage;
