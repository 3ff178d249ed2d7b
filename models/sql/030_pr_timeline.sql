-- 030: the flow events of every merged pull request, one row per PR (materialised: the timeline, the
-- changes view and explain read it). Each event keeps what explain needs to name it (sha, review id).
-- ck is a compact integer key of the change used by the mapper's own joins. Only PRs merged at or after
-- their repo's map_scope.since are mapped (everything on a full map; the changes still in flight on an
-- incremental one, see models/mapper.py).

CREATE OR REPLACE TABLE map_pr_timeline AS
WITH merged AS (
    SELECT
        p.repo,
        p.number AS pr_number,
        p.title,
        p.author_login AS author,
        map_is_bot(p.author_login, p.author_type) AS is_bot,
        p.merge_commit_sha AS merge_sha,
        p.head_ref,
        p.created_at AS opened_at,
        p.merged_at,
        coalesce(p.draft, false) AS draft_now
    FROM pull_requests AS p
    JOIN map_scope AS s ON s.repo = p.repo AND p.merged_at >= s.since
),
-- first_commit_at: the earliest author date of the commits listed on the PR (squashed and rebased-away
-- commits included; the author date survives a rebase, the commit date does not).
first_commits AS (
    SELECT
        c.repo,
        c.pr_number,
        min(c.authored_at) AS first_commit_at,
        arg_min(c.sha, (c.authored_at, c.sha)) AS first_commit_sha
    FROM pr_commits AS c
    JOIN merged AS m ON m.repo = c.repo AND m.pr_number = c.pr_number
    WHERE c.authored_at IS NOT NULL
    GROUP BY c.repo, c.pr_number
),
-- A review counts when it was submitted (not PENDING) in one of the four review states - a DISMISSED
-- review was still done - by a human other than the PR author.
human_reviews AS (
    SELECT
        r.repo, r.pr_number, r.review_id, r.reviewer_login, upper(r.state) AS state, r.submitted_at,
        r.submitted_at <= m.merged_at AS before_merge
    FROM pr_reviews AS r
    JOIN merged AS m ON m.repo = r.repo AND m.pr_number = r.pr_number
    WHERE r.submitted_at IS NOT NULL
      AND upper(r.state) IN ('COMMENTED', 'CHANGES_REQUESTED', 'APPROVED', 'DISMISSED')
      AND lower(r.reviewer_login) IS DISTINCT FROM lower(m.author)
      AND NOT map_is_bot(r.reviewer_login, r.reviewer_type)
),
-- first_review_at: the first such review at all (the changes column, as in mapper v1). pickup: the first
-- at or before the merge (a review after the merge picked nothing up; the review_first event).
-- changes requested before the merge: the first one and how many (review rework). approval: the last
-- APPROVED review before the merge (a dismissed approval has state DISMISSED: a pickup, never the
-- approval). Ties on time break by review id.
reviews AS (
    SELECT
        h.repo,
        h.pr_number,
        min(h.submitted_at) AS first_review_at,
        min(h.submitted_at) FILTER (WHERE h.before_merge) AS pickup_at,
        arg_min(h.review_id, (h.submitted_at, h.review_id)) FILTER (WHERE h.before_merge) AS first_review_id,
        min(h.submitted_at) FILTER (WHERE h.before_merge AND h.state = 'CHANGES_REQUESTED')
            AS changes_requested_at,
        arg_min(h.review_id, (h.submitted_at, h.review_id))
            FILTER (WHERE h.before_merge AND h.state = 'CHANGES_REQUESTED') AS changes_requested_id,
        count(*) FILTER (WHERE h.before_merge AND h.state = 'CHANGES_REQUESTED') AS changes_requested,
        max(h.submitted_at) FILTER (WHERE h.before_merge AND h.state = 'APPROVED') AS approved_at,
        arg_max(h.review_id, (h.submitted_at, h.review_id))
            FILTER (WHERE h.before_merge AND h.state = 'APPROVED') AS approval_id
    FROM human_reviews AS h
    GROUP BY h.repo, h.pr_number
),
draft_events AS (
    SELECT e.repo, e.pr_number
    FROM pr_events AS e
    JOIN merged AS m ON m.repo = e.repo AND m.pr_number = e.pr_number
    WHERE e.event IN ('ready_for_review', 'convert_to_draft')
    GROUP BY e.repo, e.pr_number
),
base AS (
    SELECT
        m.*,
        f.first_commit_at,
        f.first_commit_sha,
        r.first_review_at,
        r.pickup_at,
        r.first_review_id,
        r.changes_requested_at,
        r.changes_requested_id,
        coalesce(r.changes_requested, 0) AS changes_requested,
        r.approved_at,
        r.approval_id,
        (m.draft_now OR d.pr_number IS NOT NULL) AS ever_draft
    FROM merged AS m
    LEFT JOIN first_commits AS f ON f.repo = m.repo AND f.pr_number = m.pr_number
    LEFT JOIN reviews AS r ON r.repo = m.repo AND r.pr_number = m.pr_number
    LEFT JOIN draft_events AS d ON d.repo = m.repo AND d.pr_number = m.pr_number
),
-- For a PR that was ever a draft, it became ready at its last ready_for_review event at or before the
-- first review (never reviewed: at or before the merge). Later ready events (after a convert back to
-- draft past the pickup) do not move it.
last_ready AS (
    SELECT b.repo, b.pr_number, max(e.created_at) AS ready_event_at
    FROM base AS b
    JOIN pr_events AS e
      ON e.repo = b.repo AND e.pr_number = b.pr_number AND e.event = 'ready_for_review'
     AND e.created_at <= coalesce(b.first_review_at, b.merged_at)
    WHERE b.ever_draft
    GROUP BY b.repo, b.pr_number
),
-- Revert signals: the PR title or the merge commit's subject `Revert "..."`, or a `revert-N-` branch.
reverts AS (
    SELECT
        b.repo,
        b.pr_number,
        map_reverted_number(b.head_ref) AS reverted_number,
        coalesce(map_reverted_title(b.title), map_reverted_title(c.message)) AS reverted_title
    FROM base AS b
    LEFT JOIN commits AS c ON c.repo = b.repo AND c.sha = b.merge_sha
)
SELECT
    CAST(row_number() OVER (ORDER BY b.repo, b.pr_number) AS INTEGER) AS ck,
    b.repo,
    b.pr_number,
    b.title,
    b.author,
    b.is_bot,
    b.merge_sha,
    b.head_ref,
    b.first_commit_at,
    b.first_commit_sha,
    b.opened_at,
    -- Never a draft: ready when opened. A draft reviewed before any ready event: opened_at as well.
    CASE WHEN b.ever_draft THEN coalesce(l.ready_event_at, b.opened_at) ELSE b.opened_at END AS ready_at,
    (b.ever_draft AND l.ready_event_at IS NOT NULL) AS ready_by_event,
    b.first_review_at,
    b.pickup_at,
    b.first_review_id,
    b.changes_requested_at,
    b.changes_requested_id,
    b.changes_requested,
    b.approved_at,
    b.approval_id,
    b.merged_at,
    (v.reverted_number IS NOT NULL OR v.reverted_title IS NOT NULL) AS is_revert,
    v.reverted_number,
    v.reverted_title
FROM base AS b
LEFT JOIN last_ready AS l ON l.repo = b.repo AND l.pr_number = b.pr_number
LEFT JOIN reverts AS v ON v.repo = b.repo AND v.pr_number = b.pr_number;

-- Which merged PR each revert reverts: the PR number of a `revert-N-` branch when that PR was merged,
-- else the latest PR of the same repo merged before the revert whose title is the quoted one. The
-- reverted PR is looked up among all merged PRs (it may be older than the mapped scope).
CREATE OR REPLACE TABLE map_reverts AS
WITH revert_prs AS (SELECT * FROM map_pr_timeline WHERE is_revert),
merged AS (
    SELECT p.repo, p.number, p.title, p.merged_at FROM pull_requests AS p WHERE p.merged_at IS NOT NULL
),
candidates AS (
    SELECT r.repo, r.pr_number, o.number AS reverted_pr, 0 AS preference, o.merged_at
    FROM revert_prs AS r
    JOIN merged AS o ON o.repo = r.repo AND o.number = r.reverted_number
    WHERE o.number <> r.pr_number
    UNION ALL
    SELECT r.repo, r.pr_number, o.number, 1, o.merged_at
    FROM revert_prs AS r
    JOIN merged AS o ON o.repo = r.repo AND o.title = r.reverted_title
    WHERE o.number <> r.pr_number AND o.merged_at <= r.merged_at
)
SELECT c.repo, c.pr_number, arg_min(c.reverted_pr, (c.preference, -epoch(c.merged_at))) AS reverted_pr
FROM candidates AS c
GROUP BY c.repo, c.pr_number;
