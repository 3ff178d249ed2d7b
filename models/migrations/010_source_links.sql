-- 010: where each CI build and deployment can be seen at its source (the Jenkins build page, the GitHub
-- Actions run attempt), so that `vsm serve` and `vsm explain` link every event to its origin. Rows
-- collected before this migration take the link from the typed tables that already kept it.

ALTER TABLE ci_builds ADD COLUMN url VARCHAR;
ALTER TABLE ci_deployments ADD COLUMN url VARCHAR;

UPDATE ci_builds AS b
SET url = j.url
FROM jenkins_builds AS j
WHERE b.source = 'jenkins' AND b.build_id = 'jenkins:' || j.job || '#' || j.number;

UPDATE ci_deployments AS d
SET url = j.url
FROM jenkins_builds AS j
WHERE d.source = 'jenkins' AND d.deployment_id = 'jenkins:' || j.job || '#' || j.number;

-- A run's html_url shows its latest attempt; an earlier attempt has a page of its own under /attempts/N.
UPDATE ci_builds AS b
SET url = CASE WHEN r.run_attempt = CAST(split_part(b.build_id, '#', -1) AS INTEGER) THEN r.html_url
               ELSE r.html_url || '/attempts/' || split_part(b.build_id, '#', -1) END
FROM github_workflow_runs AS r
WHERE b.source = 'github-actions' AND r.html_url IS NOT NULL
  AND split_part(b.build_id, '#', 1) = 'github-actions:' || r.repo || '/' || r.run_id;
