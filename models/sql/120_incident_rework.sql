-- 120: a production deployment followed by a linked incident was not complete and accurate, so each
-- incident linked to the deployment that delivered a change is rework of that change's production stage
-- and lowers its %C/A (value_stream, flow_weekly, stage_summary). It runs after the links exist (100) and
-- sets rework from rework_base (070) instead of adding to it, so every map, incremental ones included,
-- gives the same result.

UPDATE map_stage_rows
SET rework = rework_base
WHERE signal = 'deploy:production' AND rework IS DISTINCT FROM rework_base;

UPDATE map_stage_rows AS s
SET rework = s.rework_base + x.incidents
FROM (
    SELECT d.ck, count(DISTINCT i.incident_id) AS incidents
    FROM map_change_delivery AS d
    JOIN incidents AS i ON i.deployment_id = d.item_id
    WHERE d.target = 'production' AND d.item_id IS NOT NULL
    GROUP BY d.ck
) AS x
WHERE s.ck = x.ck AND s.signal = 'deploy:production';
