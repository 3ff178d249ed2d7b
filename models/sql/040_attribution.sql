-- 040: which production deployment delivered each merged PR.
--
-- Definition: a PR is delivered by the first (earliest first-success time) successful production
-- deployment whose SHA reaches the PR's merge commit in the commit graph (the SHA itself or any
-- ancestor). All environments in map_production_environments form one production per repo. The first
-- successful production deployment of a repo is the seed: it contains all earlier history, so a PR it
-- already reaches gets no deploy time (never the next deployment's). Failed deployments deliver nothing.
--
-- Method (set-based, no per-deployment loop; roughly linear in commits and independent of the order
-- in which deployments happened, so rollbacks and redeploys cost nothing extra):
--   1. Rank the successful production deployments per repo by first-success time (rank 1 = seed).
--   2. Main line: the first-parent chain from the newest tip; pos grows towards the tip, so a
--      main-line commit at pos p reaches every main-line commit at pos <= p.
--   3. Landing: for every commit, the lowest pos of a main-line commit that reaches it (min relaxation
--      from the main line through the other parents; it only has to walk the merged side branches).
--      A main-line commit at pos p then reaches commit c exactly when landing(c) <= p.
--   4. A deployment off the main line walks its own ancestors until it touches the main line; every
--      main-line commit it touches adds a (pos, rank) entry, the off-line commits it passes are reached
--      directly.
--   5. A commit's delivering rank = min(rank of entries at pos >= landing) (a suffix minimum over pos,
--      looked up with an ASOF join) combined with the direct off-line reach.
-- The choice of tip only affects speed, never the result: any first-parent chain makes 3-5 exact.
-- 100k PRs (210k commits, 2k deployments) map in about 1 s.

-- 1. Successful production deployments, ranked per repo by the time of their first success.
CREATE OR REPLACE TABLE map_prod_deployments AS
SELECT
    d.repo,
    d.deployment_id,
    d.sha,
    d.started_at,
    d.finished_at AS deployed_at,
    row_number() OVER (PARTITION BY d.repo ORDER BY d.finished_at, d.deployment_id) AS delivery_rank
FROM deployments AS d
WHERE d.status = 'success'
  AND lower(d.environment) IN (SELECT lower(e.environment) FROM map_production_environments AS e);

-- 2. The main line of each repo that has production deployments: the first-parent chain of its tip
-- (a commit nobody lists as parent; the newest by commit date when a force-push left several).
-- A chain can be 100k commits long and a recursive CTE pays per iteration, so the chain is walked in
-- strides of 64 first parents (jump tables built by doubling: 1, 2, 4, ... 64) and the commits in
-- between are then filled in by halving the stride: about length / 64 + 13 iterations in all.
CREATE OR REPLACE TABLE map_mainline AS
WITH RECURSIVE
edge_counts AS (
    SELECT p.repo, count(*) AS edges
    FROM commit_parents AS p
    WHERE p.repo IN (SELECT d.repo FROM map_prod_deployments AS d)
    GROUP BY p.repo
),
nodes AS (
    SELECT c.repo, c.sha FROM commits AS c
    UNION
    SELECT p.repo, p.sha FROM commit_parents AS p
),
tips AS (
    SELECT n.repo, n.sha
    FROM nodes AS n
    JOIN edge_counts AS k ON k.repo = n.repo
    LEFT JOIN commits AS c ON c.repo = n.repo AND c.sha = n.sha
    WHERE NOT EXISTS (
        SELECT 1 FROM commit_parents AS p WHERE p.repo = n.repo AND p.parent_sha = n.sha
    )
    QUALIFY row_number() OVER (PARTITION BY n.repo ORDER BY c.committed_at DESC NULLS LAST, n.sha DESC) = 1
),
-- jumps: anc is the step-th first-parent ancestor of sha, for step = 1, 2, 4, ..., 64.
jumps(step, repo, sha, anc) AS MATERIALIZED (
    SELECT 1, p.repo, p.sha, p.parent_sha
    FROM commit_parents AS p
    JOIN edge_counts AS k ON k.repo = p.repo
    WHERE p.parent_index = 0
    UNION ALL
    SELECT a.step * 2, a.repo, a.sha, b.anc
    FROM jumps AS a
    JOIN jumps AS b ON b.repo = a.repo AND b.sha = a.anc AND b.step = a.step
    WHERE a.step < 64
),
-- Every 64th commit of the chain, counting from the tip.
strides(repo, sha, dist) AS (
    SELECT t.repo, t.sha, 0 FROM tips AS t
    UNION ALL
    SELECT s.repo, j.anc, s.dist + 64
    FROM strides AS s
    JOIN jumps AS j ON j.repo = s.repo AND j.sha = s.sha AND j.step = 64
    JOIN edge_counts AS k ON k.repo = s.repo
    -- A commit graph has no cycles; the guard only stops corrupt data from looping forever.
    WHERE s.dist < k.edges
),
-- Halving the stride: the commits at distances multiple of step/2 are those at multiples of step plus
-- their (step/2)-th first parents.
filled(step, repo, sha, dist) AS (
    SELECT 64, s.repo, s.sha, s.dist FROM strides AS s
    UNION ALL
    SELECT f.step // 2, f.repo, x.sha, f.dist + x.hop
    FROM filled AS f
    LEFT JOIN jumps AS j ON j.repo = f.repo AND j.sha = f.sha AND j.step = f.step // 2
    CROSS JOIN LATERAL (VALUES (f.sha, 0), (j.anc, f.step // 2)) AS x(sha, hop)
    WHERE f.step > 1 AND x.sha IS NOT NULL
)
SELECT f.repo, f.sha, max(-f.dist) AS pos
FROM filled AS f
WHERE f.step = 1
GROUP BY f.repo, f.sha;

-- 3. Landing position of every commit reachable from the main line.
CREATE OR REPLACE TABLE map_landing AS
WITH RECURSIVE land(repo, sha, pos) USING KEY (repo, sha) AS (
    SELECT m.repo, m.sha, m.pos FROM map_mainline AS m
    UNION
    SELECT p.repo, p.parent_sha, min(l.pos)
    FROM land AS l
    JOIN commit_parents AS p ON p.repo = l.repo AND p.sha = l.sha
    LEFT JOIN recurring.land AS r ON r.repo = p.repo AND r.sha = p.parent_sha
    -- Only an improvement (a lower main-line commit reaching it) is propagated further.
    WHERE r.pos IS NULL OR l.pos < r.pos
    GROUP BY p.repo, p.parent_sha
)
SELECT l.repo, l.sha, l.pos AS landing
FROM land AS l;

-- 4. Deployments of commits off the main line (or unknown to the graph): the best rank reaching each
-- commit by walking ancestors, stopping at main-line commits (their reach is the landing rule's).
CREATE OR REPLACE TABLE map_offline_reach AS
WITH RECURSIVE walk(repo, sha, delivery_rank) USING KEY (repo, sha) AS (
    SELECT d.repo, d.sha, min(d.delivery_rank)
    FROM map_prod_deployments AS d
    WHERE d.sha IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM map_mainline AS m WHERE m.repo = d.repo AND m.sha = d.sha)
    GROUP BY d.repo, d.sha
    UNION
    SELECT p.repo, p.parent_sha, min(w.delivery_rank)
    FROM walk AS w
    JOIN commit_parents AS p ON p.repo = w.repo AND p.sha = w.sha
    LEFT JOIN recurring.walk AS r ON r.repo = p.repo AND r.sha = p.parent_sha
    WHERE (r.delivery_rank IS NULL OR w.delivery_rank < r.delivery_rank)
      AND NOT EXISTS (SELECT 1 FROM map_mainline AS m WHERE m.repo = w.repo AND m.sha = w.sha)
    GROUP BY p.repo, p.parent_sha
)
SELECT w.repo, w.sha, w.delivery_rank
FROM walk AS w;

-- 5. The delivering deployment of every merged PR; NULL when nothing reaches its merge commit yet or
-- when the seed already did.
CREATE OR REPLACE TABLE map_change_delivery AS
WITH entries AS (
    SELECT m.repo, m.pos, d.delivery_rank
    FROM map_prod_deployments AS d
    JOIN map_mainline AS m ON m.repo = d.repo AND m.sha = d.sha
    UNION ALL
    SELECT m.repo, m.pos, w.delivery_rank
    FROM map_offline_reach AS w
    JOIN map_mainline AS m ON m.repo = w.repo AND m.sha = w.sha
),
-- best_rank at pos q = the lowest rank among entries at pos >= q.
suffix_best AS (
    SELECT
        e.repo,
        e.pos,
        min(min(e.delivery_rank)) OVER (
            PARTITION BY e.repo ORDER BY e.pos DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS best_rank
    FROM entries AS e
    GROUP BY e.repo, e.pos
),
merged AS (
    SELECT p.repo, p.number AS pr_number, p.merge_commit_sha AS sha, l.landing
    FROM pull_requests AS p
    LEFT JOIN map_landing AS l ON l.repo = p.repo AND l.sha = p.merge_commit_sha
    WHERE p.merged_at IS NOT NULL AND p.merge_commit_sha IS NOT NULL
),
ranked AS (
    SELECT m.repo, m.pr_number, least(s.best_rank, o.delivery_rank) AS delivery_rank
    FROM merged AS m
    ASOF LEFT JOIN suffix_best AS s ON s.repo = m.repo AND m.landing <= s.pos
    LEFT JOIN map_offline_reach AS o ON o.repo = m.repo AND o.sha = m.sha
)
SELECT
    r.repo,
    r.pr_number,
    r.delivery_rank,
    coalesce(r.delivery_rank = 1, false) AS in_seed,
    d.deployment_id,
    d.started_at AS deploy_started_at,
    d.deployed_at
FROM ranked AS r
LEFT JOIN map_prod_deployments AS d
  ON d.repo = r.repo AND d.delivery_rank = r.delivery_rank AND r.delivery_rank > 1;
