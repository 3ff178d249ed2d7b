-- 040: which build and which deployment of each target delivered each merged PR.
--
-- Targets: 'build' (the builds view), 'production' (every configured production environment), 'staging'
-- (see map_target) and any other environment a configured stage names (`deploy_started:qa`).
-- Definition: a PR is delivered to a target by the first (earliest finish) successful build or deployment
-- of that target whose SHA reaches the PR's merge commit in the commit graph (the SHA itself or any
-- ancestor). The first successful item of a repo and target is its seed: it contains all earlier
-- history, so a PR it already reaches gets no time for that target (never the next item's). Failed items
-- deliver nothing; they are the change's failed attempts (rework) when they reach its merge commit and
-- started before the delivering one.
-- Fallback: a successful production deployment whose SHA is unknown to the commit graph delivers, by
-- time window, the PRs merged after the previous successful production deployment started and before it
-- started (at most link_window_s earlier); such changes are flagged attribution = 'time_window'.
--
-- Method (set-based, no per-deployment loop; roughly linear in commits and independent of the order
-- in which deployments happened, so rollbacks and redeploys cost nothing extra):
--   1. Rank the successful items per repo and target by finish time (rank 1 = seed).
--   2. Main line: the first-parent chain from the newest tip; pos grows towards the tip, so a
--      main-line commit at pos p reaches every main-line commit at pos <= p.
--   3. Landing: for every commit, the lowest pos of a main-line commit that reaches it (min relaxation
--      from the main line through the other parents; it only has to walk the merged side branches).
--      A main-line commit at pos p then reaches commit c exactly when landing(c) <= p.
--   4. An item off the main line walks its own ancestors until it touches the main line; every
--      main-line commit it touches adds a (pos, rank) entry, the off-line commits it passes are reached
--      directly.
--   5. A commit's delivering rank = min(rank of entries at pos >= landing) (a suffix minimum over pos,
--      looked up with an ASOF join) combined with the direct off-line reach and the time window.
--   6. Reach position of every item: the highest main-line pos its SHA reaches (its own pos on the main
--      line). An item reaches commit c when landing(c) <= reach: that finds failed attempts and rollbacks.
-- The choice of tip only affects speed, never the result: any first-parent chain makes 3-5 exact.
-- The graph steps run on integer node ids (map_nodes) rather than SHAs: less memory, faster joins.

-- 0. The commit graph as integer nodes: every commit of a repo in scope (on an incremental map only those
-- committed since the scope's graph_from: a change's merge commit and every commit that reaches it are
-- at least as new as its merge) and the parents they name, and the edges between them.
CREATE OR REPLACE TABLE map_nodes AS
WITH scoped AS (
    SELECT c.repo, c.sha, c.committed_at
    FROM commits AS c
    JOIN map_scope AS s ON s.repo = c.repo AND (c.committed_at >= s.graph_from OR s.graph_from = '-infinity')
),
shas AS (
    SELECT c.repo, c.sha, c.committed_at FROM scoped AS c
    UNION ALL
    SELECT p.repo, p.parent_sha, NULL
    FROM commit_parents AS p
    SEMI JOIN scoped AS c ON c.repo = p.repo AND c.sha = p.sha
)
SELECT CAST(row_number() OVER () AS INTEGER) AS node, s.repo, s.sha, max(s.committed_at) AS committed_at
FROM shas AS s
GROUP BY s.repo, s.sha;

CREATE OR REPLACE TABLE map_edges AS
SELECT c.node, p.parent_index, q.node AS parent
FROM commit_parents AS p
JOIN map_nodes AS c ON c.repo = p.repo AND c.sha = p.sha
JOIN map_nodes AS q ON q.repo = p.repo AND q.sha = p.parent_sha;

-- 1. Every build and deployment of a target (successful or failed; others deliver nothing and are no
-- attempt), successful ones ranked per repo and target by finish time over all history (rank 1 = seed);
-- node = its SHA in the graph, in_graph = the SHA is known to the commit graph at all. An incremental map
-- keeps the items that can matter to the changes in scope: successes finished since targets_from, failures
-- started since graph_from.
CREATE OR REPLACE TABLE map_targets AS
WITH named AS (
    SELECT DISTINCT lower(split_part(e.event, ':', 2)) AS target
    FROM (SELECT unnest(list_concat(s.start_events, s.end_events)) AS event FROM map_stage_spans AS s) AS e
    WHERE e.event LIKE 'deploy_%:%'
),
items AS (
    SELECT
        d.repo, map_target(d.environment) AS target, 'deployment' AS kind, d.deployment_id AS item_id,
        d.environment AS label, d.sha, CAST(NULL AS TIMESTAMPTZ) AS queued_at, d.started_at, d.finished_at,
        d.status, d.pause_s
    FROM deployments AS d
    UNION ALL
    SELECT
        b.repo, 'build', 'build', b.build_id, b.job, b.sha, b.queued_at, b.started_at, b.finished_at,
        b.status, b.pause_s
    FROM builds AS b
),
classified AS (
    SELECT
        i.*,
        (i.status = 'success' AND i.finished_at IS NOT NULL) AS ok,
        -- A failed attempt: failed or errored (unstable for builds); an inactive deployment that never
        -- succeeded but reported a failure (finished_at holds its failure time) too.
        (i.status IN ('failure', 'error', 'unstable')
         OR (i.status = 'inactive' AND i.finished_at IS NOT NULL)) AS failed
    FROM items AS i
    WHERE i.target IN ('build', 'production', 'staging') OR i.target IN (SELECT n.target FROM named AS n)
),
ranked AS (
    SELECT
        c.*,
        CASE WHEN c.ok THEN row_number() OVER (
            PARTITION BY c.repo, c.target, c.ok ORDER BY c.finished_at, c.item_id) END AS delivery_rank
    FROM classified AS c
    WHERE c.ok OR c.failed
),
kept AS (
    SELECT r.*
    FROM ranked AS r
    JOIN map_scope AS s
      ON s.repo = r.repo
     AND (s.graph_from = '-infinity' OR (r.ok AND r.finished_at >= s.targets_from)
          OR (r.failed AND r.started_at >= s.graph_from))
)
SELECT
    k.*,
    n.node,
    (EXISTS (SELECT 1 FROM commits AS c WHERE c.repo = k.repo AND c.sha = k.sha)
     OR EXISTS (SELECT 1 FROM commit_parents AS c WHERE c.repo = k.repo AND c.parent_sha = k.sha)) AS in_graph
FROM kept AS k
LEFT JOIN map_nodes AS n ON n.repo = k.repo AND n.sha = k.sha;

-- 2. The main line of each repo that has builds or deployments: the first-parent chain of its tip
-- (a commit nobody lists as parent; the newest by commit date when a force-push left several).
-- A chain can be 100k commits long and a recursive CTE pays per iteration, so the chain is walked in
-- strides of 64 first parents (jump tables built by doubling: 1, 2, 4, ... 64) and the commits in
-- between are then filled in by halving the stride: about length / 64 + 13 iterations in all.
CREATE OR REPLACE TABLE map_mainline AS
WITH RECURSIVE
graph_nodes AS (
    SELECT n.node, n.repo, n.sha, n.committed_at
    FROM map_nodes AS n
    WHERE n.repo IN (SELECT t.repo FROM map_targets AS t)
),
first_edges AS (
    SELECT e.node, e.parent
    FROM map_edges AS e
    WHERE e.parent_index = 0 AND e.node IN (SELECT g.node FROM graph_nodes AS g)
),
edge_counts AS (
    SELECT g.repo, count(*) AS edges
    FROM first_edges AS e
    JOIN graph_nodes AS g ON g.node = e.node
    GROUP BY g.repo
),
tips AS (
    SELECT g.repo, g.node
    FROM graph_nodes AS g
    JOIN edge_counts AS k ON k.repo = g.repo
    WHERE NOT EXISTS (SELECT 1 FROM map_edges AS e WHERE e.parent = g.node)
    QUALIFY row_number() OVER (PARTITION BY g.repo ORDER BY g.committed_at DESC NULLS LAST, g.sha DESC) = 1
),
-- jumps: anc is the step-th first-parent ancestor of node, for step = 1, 2, 4, ..., 64.
jumps(step, node, anc) AS MATERIALIZED (
    SELECT 1, e.node, e.parent FROM first_edges AS e
    UNION ALL
    SELECT a.step * 2, a.node, b.anc
    FROM jumps AS a
    JOIN jumps AS b ON b.node = a.anc AND b.step = a.step
    WHERE a.step < 64
),
-- Every 64th commit of the chain, counting from the tip.
strides(repo, node, dist) AS (
    SELECT t.repo, t.node, 0 FROM tips AS t
    UNION ALL
    SELECT s.repo, j.anc, s.dist + 64
    FROM strides AS s
    JOIN jumps AS j ON j.node = s.node AND j.step = 64
    JOIN edge_counts AS k ON k.repo = s.repo
    -- A commit graph has no cycles; the guard only stops corrupt data from looping forever.
    WHERE s.dist < k.edges
),
-- Halving the stride: the commits at distances multiple of step/2 are those at multiples of step plus
-- their (step/2)-th first parents.
filled(step, repo, node, dist) AS (
    SELECT 64, s.repo, s.node, s.dist FROM strides AS s
    UNION ALL
    SELECT f.step // 2, f.repo, x.node, f.dist + x.hop
    FROM filled AS f
    LEFT JOIN jumps AS j ON j.node = f.node AND j.step = f.step // 2
    CROSS JOIN LATERAL (VALUES (f.node, 0), (j.anc, f.step // 2)) AS x(node, hop)
    WHERE f.step > 1 AND x.node IS NOT NULL
)
SELECT f.node, any_value(f.repo) AS repo, max(-f.dist) AS pos
FROM filled AS f
WHERE f.step = 1
GROUP BY f.node;

-- 3. Landing position of every commit reachable from the main line.
CREATE OR REPLACE TABLE map_landing AS
WITH RECURSIVE land(node, pos) USING KEY (node) AS (
    SELECT m.node, m.pos FROM map_mainline AS m
    UNION
    SELECT e.parent, min(l.pos)
    FROM land AS l
    JOIN map_edges AS e ON e.node = l.node
    LEFT JOIN recurring.land AS r ON r.node = e.parent
    -- Only an improvement (a lower main-line commit reaching it) is propagated further.
    WHERE r.pos IS NULL OR l.pos < r.pos
    GROUP BY e.parent
)
SELECT l.node, l.pos AS landing
FROM land AS l;

-- 4. Successful items of commits off the main line: the best rank reaching each commit per target,
-- walking ancestors and stopping at main-line commits (their reach is the landing rule's).
CREATE OR REPLACE TABLE map_offline_reach AS
WITH RECURSIVE walk(target, node, delivery_rank) USING KEY (target, node) AS (
    SELECT t.target, t.node, min(t.delivery_rank)
    FROM map_targets AS t
    WHERE t.ok AND t.node IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM map_mainline AS m WHERE m.node = t.node)
    GROUP BY t.target, t.node
    UNION
    SELECT w.target, e.parent, min(w.delivery_rank)
    FROM walk AS w
    JOIN map_edges AS e ON e.node = w.node
    LEFT JOIN recurring.walk AS r ON r.target = w.target AND r.node = e.parent
    WHERE (r.delivery_rank IS NULL OR w.delivery_rank < r.delivery_rank)
      AND NOT EXISTS (SELECT 1 FROM map_mainline AS m WHERE m.node = w.node)
    GROUP BY w.target, e.parent
)
SELECT w.target, w.node, w.delivery_rank
FROM walk AS w;

-- 5. Reach of every node an item built or deployed: its own pos on the main line, else the highest
-- pos among the main-line commits its ancestors touch (no row for SHAs unknown to the graph). An item
-- reaches a commit c exactly when landing(c) <= reach for main-line-reachable c.
CREATE OR REPLACE TABLE map_node_reach AS
WITH RECURSIVE starts AS (
    SELECT DISTINCT t.node
    FROM map_targets AS t
    WHERE t.node IS NOT NULL AND NOT EXISTS (SELECT 1 FROM map_mainline AS m WHERE m.node = t.node)
),
walk(start, node) AS (
    SELECT s.node, s.node FROM starts AS s
    UNION
    SELECT w.start, e.parent
    FROM walk AS w
    JOIN map_edges AS e ON e.node = w.node
    WHERE NOT EXISTS (SELECT 1 FROM map_mainline AS m WHERE m.node = w.node)
)
SELECT DISTINCT m.node, m.pos AS reach
FROM map_targets AS t
JOIN map_mainline AS m ON m.node = t.node
UNION ALL
SELECT w.start, max(m.pos)
FROM walk AS w
JOIN map_mainline AS m ON m.node = w.node
GROUP BY w.start;

-- 6. The delivering item of every merged PR per target, with how it was found, its failed attempts and
-- whether it was rolled back. One row per PR and target that has any successful item reaching the PR
-- (including the seed, whose rows carry in_seed and no item).
CREATE OR REPLACE TABLE map_change_delivery AS
WITH entries AS (
    SELECT m.repo, t.target, m.pos, t.delivery_rank
    FROM map_targets AS t
    JOIN map_mainline AS m ON m.node = t.node
    WHERE t.ok
    UNION ALL
    SELECT m.repo, w.target, m.pos, w.delivery_rank
    FROM map_offline_reach AS w
    JOIN map_mainline AS m ON m.node = w.node
),
-- best_rank at pos q = the lowest rank among entries at pos >= q.
suffix_best AS (
    SELECT
        e.repo,
        e.target,
        e.pos,
        min(min(e.delivery_rank)) OVER (
            PARTITION BY e.repo, e.target ORDER BY e.pos DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS best_rank
    FROM entries AS e
    GROUP BY e.repo, e.target, e.pos
),
repo_targets AS (
    SELECT DISTINCT t.repo, t.target FROM map_targets AS t WHERE t.ok
),
merged AS (
    SELECT t.ck, t.repo, t.pr_number, t.merged_at, t.merge_sha AS sha, n.node, l.landing, g.target
    FROM map_pr_timeline AS t
    JOIN repo_targets AS g ON g.repo = t.repo
    LEFT JOIN map_nodes AS n ON n.repo = t.repo AND n.sha = t.merge_sha
    LEFT JOIN map_landing AS l ON l.node = n.node
),
-- Items whose SHA is no node of the graph still deliver a merge commit of exactly that SHA.
exact AS (
    SELECT t.repo, t.target, t.sha, min(t.delivery_rank) AS delivery_rank
    FROM map_targets AS t
    WHERE t.ok AND t.node IS NULL AND t.sha IS NOT NULL
    GROUP BY t.repo, t.target, t.sha
),
graph AS (
    SELECT m.*, least(s.best_rank, o.delivery_rank, x.delivery_rank) AS graph_rank
    FROM merged AS m
    ASOF LEFT JOIN suffix_best AS s ON s.repo = m.repo AND s.target = m.target AND m.landing <= s.pos
    LEFT JOIN map_offline_reach AS o ON o.target = m.target AND o.node = m.node
    LEFT JOIN exact AS x ON x.repo = m.repo AND x.target = m.target AND x.sha = m.sha
),
-- Production deployments whose SHA the graph does not know (never the seed), with the window of merges
-- they deliver: after the previous successful production deployment started, up to their own start, and
-- at most link_window_s before it (the previous one may lie before an incremental map's item window: then
-- only link_window_s bounds it).
unknown AS (
    SELECT
        t.repo,
        t.target,
        t.delivery_rank,
        greatest(coalesce(p.started_at, '-infinity'),
                 t.started_at - to_seconds((SELECT any_value(s.link_window_s) FROM map_settings AS s)))
            AS window_from,
        t.started_at AS window_to
    FROM map_targets AS t
    LEFT JOIN map_targets AS p
      ON p.repo = t.repo AND p.target = t.target AND p.ok AND p.delivery_rank = t.delivery_rank - 1
    WHERE t.ok AND t.target = 'production' AND NOT t.in_graph AND t.delivery_rank > 1
),
windowed AS (
    SELECT g.ck, g.target, min(u.delivery_rank) AS window_rank
    FROM graph AS g
    JOIN unknown AS u
      ON u.repo = g.repo AND u.target = g.target
     AND g.merged_at > u.window_from AND g.merged_at <= u.window_to
    GROUP BY g.ck, g.target
),
ranked AS (
    SELECT
        g.*,
        least(g.graph_rank, w.window_rank) AS delivery_rank,
        CASE WHEN g.graph_rank <= coalesce(w.window_rank, g.graph_rank) THEN 'graph' ELSE 'time_window' END
            AS attribution
    FROM graph AS g
    LEFT JOIN windowed AS w ON w.ck = g.ck AND w.target = g.target
    WHERE least(g.graph_rank, w.window_rank) IS NOT NULL
),
delivered AS (
    SELECT
        r.ck,
        r.repo,
        r.pr_number,
        r.target,
        r.delivery_rank,
        r.delivery_rank = 1 AS in_seed,
        r.attribution,
        r.merged_at,
        r.landing,
        t.kind,
        t.item_id,
        t.label,
        t.sha,
        t.node AS item_node,
        t.queued_at,
        t.started_at,
        t.finished_at,
        t.pause_s
    FROM ranked AS r
    LEFT JOIN map_targets AS t
      ON t.repo = r.repo AND t.target = r.target AND t.ok AND t.delivery_rank = r.delivery_rank
     AND r.delivery_rank > 1
),
-- Failed attempts: failed items of the same target whose SHA reaches the merge commit and that started
-- after the merge and before the delivering item. Candidates are paired by UTC day (a band join), so the
-- work grows with the failures near each change, not with all failures of the repo.
failures AS (
    SELECT t.repo, t.target, t.started_at, x.reach, CAST(epoch(t.started_at) // 86400 AS BIGINT) AS day
    FROM map_targets AS t
    JOIN map_node_reach AS x ON x.node = t.node
    WHERE t.failed AND t.started_at IS NOT NULL
),
change_days AS (
    SELECT d.ck, d.repo, d.target, d.merged_at, d.started_at, d.landing, u.day
    FROM delivered AS d,
         unnest(range(CAST(epoch(d.merged_at) // 86400 AS BIGINT),
                      CAST(epoch(d.started_at) // 86400 AS BIGINT) + 1)) AS u(day)
    WHERE d.item_id IS NOT NULL AND d.landing IS NOT NULL AND d.started_at >= d.merged_at
      AND d.repo IN (SELECT f.repo FROM failures AS f)
),
attempts AS (
    SELECT c.ck, c.target, count(*) AS failures
    FROM change_days AS c
    JOIN failures AS f ON f.repo = c.repo AND f.target = c.target AND f.day = c.day
    WHERE f.started_at >= c.merged_at AND f.started_at < c.started_at AND f.reach >= c.landing
    GROUP BY c.ck, c.target
),
-- A successful item is rolled back when the next successful item of its repo and target ships a
-- different SHA that its own SHA reaches (an ancestor: the target went back in history). On an
-- incremental map a known SHA older than the mapped graph counts as such an ancestor.
rollbacks AS (
    SELECT t.repo, t.target, t.delivery_rank
    FROM map_targets AS t
    JOIN map_targets AS n
      ON n.repo = t.repo AND n.target = t.target AND n.ok AND n.delivery_rank = t.delivery_rank + 1
    JOIN map_node_reach AS x ON x.node = t.node
    LEFT JOIN map_landing AS l ON l.node = n.node
    WHERE t.ok AND n.sha <> t.sha
      AND (l.landing <= x.reach OR (n.node IS NULL AND n.in_graph))
)
SELECT
    d.ck,
    d.repo,
    d.pr_number,
    d.target,
    d.delivery_rank,
    d.in_seed,
    d.attribution,
    d.kind,
    d.item_id,
    d.label,
    d.sha,
    d.queued_at,
    d.started_at,
    d.finished_at,
    d.pause_s,
    coalesce(a.failures, 0) AS failures,
    (b.delivery_rank IS NOT NULL) AS rolled_back
FROM delivered AS d
LEFT JOIN attempts AS a ON a.ck = d.ck AND a.target = d.target
LEFT JOIN rollbacks AS b
  ON b.repo = d.repo AND b.target = d.target AND b.delivery_rank = d.delivery_rank AND d.item_id IS NOT NULL;
