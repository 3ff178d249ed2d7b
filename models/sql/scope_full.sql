-- Scope of a full map: every repo that has pull requests (only they have changes to map), from the
-- beginning of time (see models/mapper.py).
--   since         changes merged at or after it are mapped
--   graph_from    commits committed at or after it form the commit graph (failed attempts started after it)
--   targets_from  successful builds and deployments finished at or after it are kept
CREATE OR REPLACE TABLE map_scope AS
SELECT DISTINCT
    p.repo,
    CAST('-infinity' AS TIMESTAMPTZ) AS since,
    CAST('-infinity' AS TIMESTAMPTZ) AS graph_from,
    CAST('-infinity' AS TIMESTAMPTZ) AS targets_from
FROM pull_requests AS p;
