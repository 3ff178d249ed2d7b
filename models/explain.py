"""`vsm explain`: how every figure of one change (or of one stage and week) was derived, as plain data.

Reads the tables and views the mapper built (run_mapper first); never prints.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb

from models.mapper import counted_changes_sql


class UnknownChange(KeyError):
    """No merged pull request has this change id (owner/name#number)."""


@dataclass(frozen=True)
class TimelineEvent:
    """One event of a change's timeline, where it came from and what it was."""

    event: str
    environment: str | None
    at: dt.datetime
    source: str
    detail: str
    url: str | None = None  # the event's page at its source (GitHub, Jenkins), when the source gave one


@dataclass(frozen=True)
class ReviewNote:
    """One review of the PR: whether it counted, its role (first / changes_requested / approval) and why."""

    review_id: int
    reviewer: str | None
    state: str | None
    submitted_at: dt.datetime | None
    counted: bool
    roles: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class DeliveryNote:
    """Which build or deployment delivered the change to a target, how it was found and its rework."""

    target: str
    item_id: str | None
    sha: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attribution: str | None  # 'graph', 'time_window', 'seed' or None (not delivered)
    failed_attempts: int
    rolled_back: bool
    reason: str
    url: str | None = None  # the delivering build's or deployment's page at its source
    incidents: tuple[IncidentNote, ...] = ()  # incidents blamed on it (production): rework of the change


@dataclass(frozen=True)
class IncidentNote:
    """An incident linked to the deployment that delivered the change, how it was linked, and where it lives."""

    incident_id: str
    source: str
    title: str | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    link_method: str
    url: str | None


@dataclass(frozen=True)
class StageExplanation:
    """One stage of the change: the events its spans used, its figures and why they are what they are."""

    stage: str
    stage_order: int
    wait_from_event: str | None
    wait_to_event: str | None
    process_from_event: str | None
    process_to_event: str | None
    wait_s: float
    process_s: float
    wait_work_s: float
    process_work_s: float
    pause_s: float
    clamped: bool
    rework: int | None
    why: tuple[str, ...]


@dataclass(frozen=True)
class ChangeExplanation:
    """A change's whole timeline and the derivation of each stage figure."""

    change_id: str
    repo: str
    pr_number: int
    title: str | None
    author: str | None
    is_bot: bool
    is_revert: bool
    reverts_change_id: str | None
    reverted_by: tuple[str, ...]
    merged_at: dt.datetime
    deployed_at: dt.datetime | None
    lead_time_s: float | None
    week: dt.date
    events: tuple[TimelineEvent, ...]
    reviews: tuple[ReviewNote, ...]
    deliveries: tuple[DeliveryNote, ...]
    stages: tuple[StageExplanation, ...]
    skipped_stages: tuple[str, ...]


@dataclass(frozen=True)
class StageItem:
    """One change behind a stage's figure for a week."""

    change_id: str
    title: str | None
    wait_s: float
    process_s: float
    wait_work_s: float
    process_work_s: float
    rework: int | None


def _hours(seconds: float) -> str:
    """Seconds as hours and minutes, e.g. 30h 22m (explanations read better than raw seconds)."""
    minutes = round(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """Query rows as dicts keyed by column name."""
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def explain_change(con: duckdb.DuckDBPyConnection, change_id: str) -> ChangeExplanation:
    """Everything behind one change's figures; raises UnknownChange for an id that is no merged PR."""
    found = _rows(con, "SELECT * FROM map_change_rows WHERE change_id = ?", [change_id])
    if not found:
        raise UnknownChange(change_id)
    c = found[0]
    ck = c["ck"]
    events = tuple(
        TimelineEvent(r["event"], r["environment"], r["at"], r["source"], r["detail"], r["url"])
        for r in _rows(con, "SELECT * FROM change_timeline WHERE repo = ? AND pr_number = ?"
                       " ORDER BY \"at\", event", [c["repo"], c["pr_number"]])
    )
    reverted_by = tuple(
        r["change_id"] for r in _rows(con, "SELECT change_id FROM map_change_rows WHERE reverts_change_id = ?"
                                      " ORDER BY pr_number", [change_id])
    )
    deliveries = _deliveries(con, ck, c)
    return ChangeExplanation(
        change_id=change_id, repo=c["repo"], pr_number=c["pr_number"], title=c["title"], author=c["author"],
        is_bot=c["is_bot"], is_revert=c["is_revert"], reverts_change_id=c["reverts_change_id"],
        reverted_by=reverted_by, merged_at=c["merged_at"], deployed_at=c["deployed_at"],
        lead_time_s=c["lead_time_s"], week=c["week"], events=events, reviews=_reviews(con, ck),
        deliveries=deliveries, stages=_stages(con, ck, deliveries, reverted_by),
        skipped_stages=_skipped(con, ck),
    )


def _reviews(con: duckdb.DuckDBPyConnection, ck: int) -> tuple[ReviewNote, ...]:
    """Every review of the PR, classified with the same rules as map_pr_timeline."""
    rows = _rows(con, """
        SELECT r.review_id, r.reviewer_login, upper(r.state) AS state, r.submitted_at,
               map_is_bot(r.reviewer_login, r.reviewer_type) AS is_bot,
               lower(r.reviewer_login) IS NOT DISTINCT FROM lower(t.author) AS is_author,
               r.submitted_at > t.merged_at AS after_merge,
               t.first_review_id, t.changes_requested_id, t.approval_id
        FROM map_pr_timeline AS t
        JOIN pr_reviews AS r ON r.repo = t.repo AND r.pr_number = t.pr_number
        WHERE t.ck = ?
        ORDER BY r.submitted_at NULLS LAST, r.review_id
        """, [ck])
    notes = []
    for r in rows:
        skip = None
        if r["submitted_at"] is None:
            skip = "skipped: never submitted (pending)"
        elif r["is_bot"]:
            skip = "skipped: a bot is no reviewer"
        elif r["is_author"]:
            skip = "skipped: the author's own review"
        elif r["after_merge"]:
            skip = "skipped: submitted after the merge"
        elif r["state"] not in ("COMMENTED", "CHANGES_REQUESTED", "APPROVED", "DISMISSED"):
            skip = f"skipped: state {r['state']}"
        roles = tuple(role for role, key in (("first", "first_review_id"),
                                             ("changes_requested", "changes_requested_id"),
                                             ("approval", "approval_id")) if r[key] == r["review_id"])
        if skip:
            reason = skip
        elif roles:
            parts = {"first": "the first review by a human other than the author (ends the review wait)",
                     "changes_requested": "the first review requesting changes (review rework)",
                     "approval": "the last approval at or before the merge (ends the review process)"}
            reason = "; ".join(parts[role] for role in roles)
        elif r["state"] == "CHANGES_REQUESTED":
            reason = "counted: a further request for changes (review rework)"
        elif r["state"] == "APPROVED":
            reason = "counted: an approval, but a later one is the last before the merge"
        else:
            reason = "counted: a human review after the first one"
        notes.append(ReviewNote(int(r["review_id"]), r["reviewer_login"], r["state"], r["submitted_at"],
                                skip is None, roles, reason))
    return tuple(notes)


def _deliveries(con: duckdb.DuckDBPyConnection, ck: int, change: dict[str, Any]) -> tuple[DeliveryNote, ...]:
    """Per target the repo has: the delivering item and why, or why there is none."""
    rows = _rows(con, """
        WITH repo_targets AS (SELECT DISTINCT target FROM map_targets WHERE repo = ? AND ok)
        SELECT g.target, d.delivery_rank, d.in_seed, d.attribution, d.item_id, d.kind, d.sha, d.started_at,
               d.finished_at, d.failures, d.rolled_back, seed.item_id AS seed_item, prev.item_id AS prev_item,
               prev.started_at AS prev_started_at, src.url
        FROM repo_targets AS g
        LEFT JOIN map_change_delivery AS d ON d.ck = ? AND d.target = g.target
        LEFT JOIN (SELECT b.build_id AS item_id, b.url FROM builds AS b
                   UNION ALL
                   SELECT x.deployment_id, x.url FROM deployments AS x) AS src ON src.item_id = d.item_id
        LEFT JOIN map_targets AS seed ON seed.repo = ? AND seed.target = g.target AND seed.delivery_rank = 1
        LEFT JOIN map_targets AS prev
          ON prev.repo = ? AND prev.target = g.target AND prev.delivery_rank = d.delivery_rank - 1
        ORDER BY CASE g.target WHEN 'build' THEN 0 WHEN 'staging' THEN 1 WHEN 'production' THEN 3 ELSE 2 END,
                 g.target
        """, [change["repo"], ck, change["repo"], change["repo"]])
    merge = (change["merge_sha"] or "?")[:12]
    notes = []
    for r in rows:
        what = "build" if r["target"] == "build" else f"{r['target']} deployment"
        if r["delivery_rank"] is None:
            attribution = None
            reason = f"not delivered: no successful {what} reaches merge commit {merge} yet"
        elif r["in_seed"]:
            attribution = "seed"
            reason = (f"in the seed: {r['seed_item']}, the first successful {what} of the repo, already"
                      f" contains merge commit {merge}; history before it is unknown, so no time is given")
        elif r["attribution"] == "time_window":
            attribution = "time_window"
            reason = (f"{r['item_id']}: its SHA {(r['sha'] or '?')[:12]} is unknown to the commit graph,"
                      f" so it delivers the changes merged after the previous successful {what}"
                      f" ({r['prev_item']})"
                      f" started at {r['prev_started_at']} and before its own start")
        else:
            attribution = "graph"
            reason = (f"{r['item_id']}: the first successful {what} (by finish time) whose SHA"
                      f" {(r['sha'] or '?')[:12]} reaches merge commit {merge} in the commit graph")
        if r["failures"]:
            reason += f"; {r['failures']} failed attempt(s) reaching the merge commit before it (rework)"
        if r["rolled_back"]:
            reason += "; rolled back: the next successful one shipped an ancestor of its SHA (rework)"
        notes.append(DeliveryNote(r["target"], r["item_id"], r["sha"], r["started_at"], r["finished_at"],
                                  attribution, int(r["failures"] or 0), bool(r["rolled_back"]), reason,
                                  r["url"], _incidents(con, r["item_id"]) if r["item_id"] else ()))
    return tuple(notes)


def _incidents(con: duckdb.DuckDBPyConnection, deployment_id: str) -> tuple[IncidentNote, ...]:
    """The incidents the incidents view blames on one deployment (only production ones are ever blamed)."""
    rows = _rows(con, "SELECT incident_id, source, title, created_at, resolved_at, link_method, url"
                      " FROM incidents WHERE deployment_id = ? ORDER BY created_at, incident_id", [deployment_id])
    return tuple(IncidentNote(r["incident_id"], r["source"], r["title"], r["created_at"], r["resolved_at"],
                              r["link_method"], r["url"]) for r in rows)


def _rework_parts(signal: str, deliveries: tuple[DeliveryNote, ...],
                  reverted_by: tuple[str, ...]) -> list[str]:
    """What a build or deployment stage's rework count is made of."""
    target = signal.removeprefix("deploy:")
    what = "build" if target == "build" else f"{target} deployment"
    parts = []
    for d in deliveries:
        if d.target == target:
            if d.failed_attempts:
                parts.append(f"{d.failed_attempts} failed attempt(s) before the delivering {what}")
            if d.rolled_back:
                parts.append(f"the delivering {what} was rolled back")
    if target == "production" and reverted_by:
        parts.append(f"reverted by {', '.join(reverted_by)}")
    return parts


def _stages(con: duckdb.DuckDBPyConnection, ck: int, deliveries: tuple[DeliveryNote, ...],
            reverted_by: tuple[str, ...]) -> tuple[StageExplanation, ...]:
    """Each stage row of the change with the events used and the rules that applied."""
    rows = _rows(con, """
        SELECT s.*, g.wait_start, g.wait_end, g.process_start, g.process_end
        FROM map_stage_rows AS s
        JOIN map_stage_defs AS g ON g.stage = s.stage
        WHERE s.ck = ?
        ORDER BY s.stage_order
        """, [ck])
    out = []
    for r in rows:
        why: list[str] = []
        for kind, start, end, starts, ends in (
            ("wait", r["wait_from_event"], r["wait_to_event"], r["wait_start"], r["wait_end"]),
            ("process", r["process_from_event"], r["process_to_event"], r["process_start"], r["process_end"]),
        ):
            if start is None:
                if starts is not None and not r["collapsed"]:
                    why.append(f"{kind}: not defined for this change (0)")
                continue
            why.append(f"{kind}: {start} -> {end}")
            for used, options in ((start, starts), (end, ends)):
                if options and used in options and options.index(used) > 0:
                    missing = ", ".join(options[: options.index(used)])
                    why.append(f"{kind}: used {used} because the change has no {missing}")
        if r["collapsed"]:
            why.append(f"nobody picked it up: no {r['wait_end'][0]}, so the whole stage is wait until"
                       f" {r['wait_to_event']} and process is 0")
        if r["wait_clamped"]:
            why.append("wait span ran backwards (end before start): clamped to 0")
        if r["process_clamped"]:
            why.append("process span ran backwards (end before start): clamped to 0")
        if r["pause_s"]:
            why.append(f"{_hours(r['pause_s'])} of manual-approval pause inside the run moved from process to wait")
        if r["signal"] == "review":
            why.append(f"rework: {r['rework']} review(s) requesting changes")
        elif r["signal"] is not None and r["rework"]:
            why.append("rework: " + "; ".join(_rework_parts(r["signal"], deliveries, reverted_by)))
        out.append(StageExplanation(
            r["stage"], int(r["stage_order"]), r["wait_from_event"], r["wait_to_event"],
            r["process_from_event"], r["process_to_event"], float(r["wait_s"]), float(r["process_s"]),
            float(r["wait_work_s"]), float(r["process_work_s"]), float(r["pause_s"]),
            bool(r["wait_clamped"] or r["process_clamped"]),
            None if r["rework"] is None else int(r["rework"]), tuple(why)))
    return tuple(out)


def _skipped(con: duckdb.DuckDBPyConnection, ck: int) -> tuple[str, ...]:
    """Configured stages the change has no row for, each with the events it lacked."""
    rows = con.execute("""
        SELECT g.stage, list_distinct(list_concat(coalesce(g.wait_end, []), coalesce(g.process_end, [])))
        FROM map_stage_defs AS g
        WHERE g.stage NOT IN (SELECT s.stage FROM map_stage_rows AS s WHERE s.ck = ?)
        ORDER BY g.stage_order
        """, [ck]).fetchall()
    return tuple(f"{stage}: skipped, the change has none of {', '.join(sorted(ends))}"
                 for stage, ends in rows)


def explain_stage(con: duckdb.DuckDBPyConnection, stage: str, week: dt.date) -> list[StageItem]:
    """The changes behind a stage's value_stream figure for one ISO week (its Monday), most wait first."""
    monday = week - dt.timedelta(days=week.weekday())
    counted, params = counted_changes_sql(None, None, None)
    rows = con.execute(f"""
        WITH c AS ({counted})
        SELECT c.change_id, c.title, s.wait_s, s.process_s, s.wait_work_s, s.process_work_s, s.rework
        FROM map_stage_rows AS s
        JOIN c ON c.ck = s.ck
        WHERE s.stage = ? AND c.week = ?
        ORDER BY s.wait_s DESC, c.change_id
        """, [*params, stage, monday]).fetchall()
    return [StageItem(cid, title, float(w), float(p), float(ww), float(pw), None if rw is None else int(rw))
            for cid, title, w, p, ww, pw, rw in rows]
