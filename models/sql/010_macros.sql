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

-- The stages of the value stream and their order. Orders leave room for build (4) and staging (5).
CREATE OR REPLACE VIEW map_stages AS
SELECT * FROM (VALUES ('code', 1), ('review', 2), ('merge', 3), ('release', 6)) AS s(stage, stage_order);
