-- 030: the flow events of every merged pull request, one row per PR (materialised: the changes and
-- stage_times views read it many times).

CREATE OR REPLACE TABLE map_pr_timeline AS
WITH merged AS (
    SELECT
        p.repo,
        p.number AS pr_number,
        p.title,
        p.author_login AS author,
        map_is_bot(p.author_login, p.author_type) AS is_bot,
        p.merge_commit_sha AS merge_sha,
        p.created_at AS opened_at,
        p.merged_at,
        coalesce(p.draft, false) AS draft_now
    FROM pull_requests AS p
    WHERE p.merged_at IS NOT NULL
),
-- first_commit_at: the earliest author date of the commits listed on the PR (squashed and rebased-away
-- commits included; the author date survives a rebase, the commit date does not).
first_commits AS (
    SELECT c.repo, c.pr_number, min(c.authored_at) AS first_commit_at
    FROM pr_commits AS c
    GROUP BY c.repo, c.pr_number
),
-- A review is a pickup when it was submitted (not PENDING) in one of the four review states - a
-- DISMISSED review was still done - by a human other than the PR author.
human_reviews AS (
    SELECT r.repo, r.pr_number, upper(r.state) AS state, r.submitted_at, m.merged_at
    FROM pr_reviews AS r
    JOIN merged AS m ON m.repo = r.repo AND m.pr_number = r.pr_number
    WHERE r.submitted_at IS NOT NULL
      AND upper(r.state) IN ('COMMENTED', 'CHANGES_REQUESTED', 'APPROVED', 'DISMISSED')
      AND lower(r.reviewer_login) IS DISTINCT FROM lower(m.author)
      AND NOT map_is_bot(r.reviewer_login, r.reviewer_type)
),
-- first_review_at: the first pickup. approved_at: the last approval at or before the merge; a dismissed
-- approval has state DISMISSED, so it is a pickup but never the approval.
reviews AS (
    SELECT
        h.repo,
        h.pr_number,
        min(h.submitted_at) AS first_review_at,
        max(h.submitted_at) FILTER (WHERE h.state = 'APPROVED' AND h.submitted_at <= h.merged_at) AS approved_at
    FROM human_reviews AS h
    GROUP BY h.repo, h.pr_number
),
draft_events AS (
    SELECT e.repo, e.pr_number
    FROM pr_events AS e
    WHERE e.event IN ('ready_for_review', 'convert_to_draft')
    GROUP BY e.repo, e.pr_number
),
base AS (
    SELECT
        m.*,
        f.first_commit_at,
        r.first_review_at,
        r.approved_at,
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
)
SELECT
    b.repo,
    b.pr_number,
    b.title,
    b.author,
    b.is_bot,
    b.merge_sha,
    b.first_commit_at,
    b.opened_at,
    -- Never a draft: ready when opened. A draft reviewed before any ready event: opened_at as well.
    CASE WHEN b.ever_draft THEN coalesce(l.ready_event_at, b.opened_at) ELSE b.opened_at END AS ready_at,
    b.first_review_at,
    b.approved_at,
    b.merged_at
FROM base AS b
LEFT JOIN last_ready AS l ON l.repo = b.repo AND l.pr_number = b.pr_number;
