-- Merge an incremental map (schema map_delta) into the previous one (schema main): the changes in scope
-- replace their old rows, keeping their old ck; new changes get new ones.

-- delta ck -> ck in main.
CREATE OR REPLACE TABLE map_delta.ck_map AS
SELECT
    d.ck AS delta_ck,
    coalesce(m.ck, CAST((SELECT coalesce(max(x.ck), 0) FROM main.map_pr_timeline AS x)
                        + row_number() OVER (PARTITION BY m.ck IS NULL ORDER BY d.repo, d.pr_number)
                        AS INTEGER)) AS ck
FROM map_delta.map_pr_timeline AS d
LEFT JOIN main.map_pr_timeline AS m ON m.repo = d.repo AND m.pr_number = d.pr_number;

-- The old rows of every change in scope (merged at or after its repo's since).
CREATE OR REPLACE TABLE map_delta.old_cks AS
SELECT t.ck
FROM main.map_pr_timeline AS t
JOIN map_delta.map_scope AS s ON s.repo = t.repo AND t.merged_at >= s.since;

DELETE FROM main.map_pr_timeline WHERE ck IN (SELECT o.ck FROM map_delta.old_cks AS o);
DELETE FROM main.map_change_delivery WHERE ck IN (SELECT o.ck FROM map_delta.old_cks AS o);
DELETE FROM main.map_events WHERE ck IN (SELECT o.ck FROM map_delta.old_cks AS o);
DELETE FROM main.map_stage_rows WHERE ck IN (SELECT o.ck FROM map_delta.old_cks AS o);
DELETE FROM main.map_change_rows WHERE ck IN (SELECT o.ck FROM map_delta.old_cks AS o);

INSERT INTO main.map_pr_timeline
SELECT d.* REPLACE (k.ck AS ck)
FROM map_delta.map_pr_timeline AS d JOIN map_delta.ck_map AS k ON k.delta_ck = d.ck;
INSERT INTO main.map_change_delivery
SELECT d.* REPLACE (k.ck AS ck)
FROM map_delta.map_change_delivery AS d JOIN map_delta.ck_map AS k ON k.delta_ck = d.ck;
INSERT INTO main.map_events
SELECT d.* REPLACE (k.ck AS ck)
FROM map_delta.map_events AS d JOIN map_delta.ck_map AS k ON k.delta_ck = d.ck;
INSERT INTO main.map_stage_rows
SELECT d.* REPLACE (k.ck AS ck)
FROM map_delta.map_stage_rows AS d JOIN map_delta.ck_map AS k ON k.delta_ck = d.ck;
INSERT INTO main.map_change_rows
SELECT d.* REPLACE (k.ck AS ck)
FROM map_delta.map_change_rows AS d JOIN map_delta.ck_map AS k ON k.delta_ck = d.ck;

-- Reverts made by the changes in scope.
DELETE FROM main.map_reverts AS r
WHERE EXISTS (
    SELECT 1 FROM map_delta.map_pr_timeline AS d WHERE d.repo = r.repo AND d.pr_number = r.pr_number
);
INSERT INTO main.map_reverts SELECT * FROM map_delta.map_reverts;

-- The builds and deployments of the item window (explain reads them; their node ids are the delta's).
DELETE FROM main.map_targets AS t
WHERE EXISTS (
    SELECT 1 FROM map_delta.map_scope AS s
    WHERE s.repo = t.repo
      AND ((t.ok AND t.finished_at >= s.targets_from) OR (t.failed AND t.started_at >= s.graph_from))
);
INSERT INTO main.map_targets SELECT * FROM map_delta.map_targets;

-- A revert in scope may revert an older, frozen change: recount the production rework of every
-- reverted change (failed attempts + rollback + reverts, as in 070).
UPDATE main.map_stage_rows AS s
SET rework = x.rework, rework_base = x.rework
FROM (
    SELECT d.ck, d.failures + CAST(d.rolled_back AS INTEGER) + count(*) AS rework
    FROM main.map_reverts AS v
    JOIN main.map_pr_timeline AS t ON t.repo = v.repo AND t.pr_number = v.reverted_pr
    JOIN main.map_change_delivery AS d ON d.ck = t.ck AND d.target = 'production' AND d.item_id IS NOT NULL
    GROUP BY d.ck, d.failures, d.rolled_back
) AS x
WHERE s.ck = x.ck AND s.signal = 'deploy:production';
