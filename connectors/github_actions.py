"""GitHub Actions runs of configured workflows as CI builds (part of the GitHub source).

One stream per repo and workflow (`actions:<file>`): runs on the default branch, newest first, incremental by
`created`; completed runs bring their jobs (start, completion, runner queue). Every run attempt becomes a
ci_builds row, so a failed first attempt that was re-run is the change's build rework. Fetches only.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from github.GithubException import UnknownObjectException
from github.PaginatedList import PaginatedList
from github.Repository import Repository
from github.WorkflowJob import WorkflowJob

from models.records import Page, RawObject, Row

log = logging.getLogger(__name__)

SOURCE = "github"
BUILD_SOURCE = "github-actions"
# Run / job conclusions in the ci_builds vocabulary (anything else completed is an error).
CONCLUSION_STATUS = {
    "success": "success", "failure": "failure", "timed_out": "failure", "startup_failure": "failure",
    "cancelled": "aborted", "skipped": "aborted", "action_required": "error", "neutral": "error",
    "stale": "error",
}
# Run statuses that mean "not started yet" (others before `completed` are running).
WAITING = frozenset({"queued", "waiting", "requested", "pending"})
# A completed run that did not succeed stays watched (one request per sync) this long after its creation,
# measured against the newest run seen, because a re-run brings it back without a new `created`.
RERUN_WINDOW = dt.timedelta(days=3)


def _ts(value: str | None) -> dt.datetime | None:
    """Parse GitHub's ISO 8601 timestamps (UTC)."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _qualifier(value: dt.datetime) -> str:
    """A time as a `created` search qualifier bound."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stream_name(workflow: str) -> str:
    """The cursor stream of one workflow."""
    return f"actions:{workflow}"


def workflow_pages(repo: Repository, scope: str, workflow: str, cursor: str | None,
                   horizon: dt.datetime) -> Iterator[Page]:
    """New runs of one workflow since the cursor, then the watched (unfinished or failed) runs again.

    The cursor holds the newest `created_at` seen, the highest run id stored (the `>=` boundary lists the
    newest run again; ids grow with time, so it is skipped) and the runs still watched with their attempt
    and updated_at: an unchanged one costs its one re-fetch and nothing more.
    """
    stream = stream_name(workflow)
    state = json.loads(cursor) if cursor else {"created": None, "max_id": 0, "watch": []}
    since = _ts(state["created"]) if state["created"] else horizon
    max_id, newest = int(state["max_id"]), since
    watch: dict[int, tuple[int, str, str]] = {int(i): (a, u, c) for i, a, u, c in state["watch"]}
    runs = repo.get_workflow(workflow).get_runs(branch=repo.default_branch, created=f">={_qualifier(since)}")
    new_max = max_id
    outcome: dict[int, tuple[bool, str | None]] = {}
    page = Page(SOURCE, scope, stream)
    try:
        listed = iter(runs)
        first = next(listed, None)
    except UnknownObjectException:
        log.warning("github %s: no workflow %s (404); configure ci_workflows only where it exists", scope, workflow)
        return
    for run in itertools.chain([first] if first is not None else [], listed):
        data = run._rawData  # the list item already holds every field stored (no completing request)
        run_id = int(data["id"])
        if run_id <= max_id:
            continue
        new_max = max(new_max, run_id)
        newest = max(newest, _ts(data["created_at"]) or newest)
        _add_run(page, repo, scope, workflow, data)
        watch[run_id] = (int(data.get("run_attempt") or 1), data["updated_at"], data["created_at"])
        outcome[run_id] = (data.get("status") == "completed", data.get("conclusion"))
        if len(page.raw) >= 100:
            yield page
            page = Page(SOURCE, scope, stream)
    if page.rows:
        yield page
    still: list[tuple[int, int, str, str]] = []
    for run_id, (attempt, updated, created) in sorted(watch.items()):
        if run_id <= max_id:
            try:
                data = repo.get_workflow_run(run_id).raw_data  # completes the lazy run: one request
            except UnknownObjectException:
                log.warning("github %s: workflow run %s is gone (404); no longer watched", scope, run_id)
                continue
            attempt, updated = int(data.get("run_attempt") or 1), data["updated_at"]
            if (attempt, updated) != tuple(watch[run_id][:2]):
                refreshed = Page(SOURCE, scope, stream)
                _add_run(refreshed, repo, scope, workflow, data)
                yield refreshed
            outcome[run_id] = (data.get("status") == "completed", data.get("conclusion"))
        done, conclusion = outcome[run_id]
        recent = newest - (_ts(created) or newest) < RERUN_WINDOW
        if not done or (conclusion != "success" and recent):
            still.append((run_id, attempt, updated, created))
    new_state = {"created": newest.isoformat(), "max_id": new_max, "watch": still}
    if new_state != state:
        yield Page(SOURCE, scope, stream, cursor=json.dumps(new_state))


def _add_run(page: Page, repo: Repository, scope: str, workflow: str, data: dict[str, Any]) -> None:
    """A run as its typed row and ci_builds rows; a completed one with its jobs (and earlier attempts')."""
    run_id, attempt = int(data["id"]), int(data.get("run_attempt") or 1)
    page.raw.append(RawObject("workflow_run", f"{scope}/{run_id}", data, scope))
    run = {"repo": scope, "run_id": run_id, "run_attempt": attempt, "workflow": workflow,
           "head_sha": data.get("head_sha"), "head_branch": data.get("head_branch"), "event": data.get("event"),
           "status": data.get("status"), "conclusion": data.get("conclusion"),
           "created_at": _ts(data.get("created_at")), "run_started_at": _ts(data.get("run_started_at")),
           "updated_at": _ts(data.get("updated_at")), "html_url": data.get("html_url")}
    page.add("github_workflow_runs", run)
    jobs: list[Row] = []
    if run["status"] == "completed":
        jobs = _add_jobs(page, scope, _job_list(repo, run_id, None))
    started = run["run_started_at"] or min((j["started_at"] for j in jobs if j["started_at"]), default=None)
    if run["status"] == "completed":
        status = CONCLUSION_STATUS.get(run["conclusion"] or "", "error")
    else:
        status = "queued" if run["status"] in WAITING else "running"
    page.add("ci_builds", {
        "build_id": build_id(scope, run_id, attempt), "repo": scope, "job": workflow, "sha": run["head_sha"],
        # a re-run attempt was queued when it was triggered; created_at belongs to the first attempt
        "queued_at": run["created_at"] if attempt == 1 else started, "started_at": started,
        "finished_at": run["updated_at"] if run["status"] == "completed" else None, "status": status,
        "source": BUILD_SOURCE, "pause_s": 0.0})
    for earlier in range(1, attempt):
        _add_attempt(page, scope, workflow, run, earlier, _add_jobs(page, scope, _job_list(repo, run_id, earlier)))


def _job_list(repo: Repository, run_id: int, attempt: int | None) -> PaginatedList[WorkflowJob]:
    """The jobs of a run's latest attempt, or of attempt `attempt` (PyGithub has no method for those)."""
    path = f"/actions/runs/{run_id}/jobs" if attempt is None else f"/actions/runs/{run_id}/attempts/{attempt}/jobs"
    return PaginatedList(WorkflowJob, repo.requester, repo.url + path, None, list_item="jobs")


def _add_jobs(page: Page, scope: str, jobs: Iterable[WorkflowJob]) -> list[Row]:
    """Jobs as typed rows (a queued job's started_at, which GitHub sets to its creation, is left NULL)."""
    rows = []
    for job in jobs:
        item = job._rawData
        page.raw.append(RawObject("workflow_job", f"{scope}/{item['id']}", item, scope))
        row = {"repo": scope, "job_id": int(item["id"]), "run_id": int(item["run_id"]),
               "run_attempt": item.get("run_attempt"), "name": item.get("name"), "status": item.get("status"),
               "conclusion": item.get("conclusion"), "created_at": _ts(item.get("created_at")),
               "started_at": None if item.get("status") in WAITING else _ts(item.get("started_at")),
               "completed_at": _ts(item.get("completed_at"))}
        page.add("github_workflow_jobs", row)
        rows.append(row)
    return rows


def _add_attempt(page: Page, scope: str, workflow: str, run: Row, attempt: int, jobs: list[Row]) -> None:
    """An earlier (re-run) attempt as a ci_builds row: times from its jobs, status from their conclusions.

    Its start is its first job's creation, which is what run_started_at says for the latest attempt.
    """
    created = [j["created_at"] for j in jobs if j["created_at"]]
    completed = [j["completed_at"] for j in jobs]
    statuses = {CONCLUSION_STATUS.get(j["conclusion"] or "", "error") for j in jobs}
    finished = bool(jobs) and all(completed)
    status = next((s for s in ("failure", "error", "aborted") if s in statuses), "success") if finished \
        else "error"
    page.add("ci_builds", {
        "build_id": build_id(scope, run["run_id"], attempt), "repo": scope, "job": workflow,
        "sha": run["head_sha"], "queued_at": run["created_at"] if attempt == 1 else min(created, default=None),
        "started_at": min(created, default=None), "finished_at": max(completed) if finished else None,
        "status": status, "source": BUILD_SOURCE, "pause_s": 0.0})


def build_id(scope: str, run_id: int, attempt: int) -> str:
    """The ci_builds id of one run attempt."""
    return f"{BUILD_SOURCE}:{scope}/{run_id}#{attempt}"
