"""GitHub Actions runs as CI builds (part of the GitHub source): configured workflows, or every push run.

One stream per repo and configured workflow (`actions:<file>`), or without configuration one per repo
(`actions:push`: runs of all workflows triggered by a push): runs on the default branch, newest first,
incremental by `created`; completed runs bring their jobs (start, completion, runner queue). Every run attempt
becomes a ci_builds row, so a failed first attempt that was re-run is the change's build rework. The polled
requests are conditional (ETags in the cursor), so an unchanged repo costs only 304s. Fetches only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from github.GithubException import UnknownObjectException
from github.PaginatedList import PaginatedList
from github.Repository import Repository
from github.WorkflowJob import WorkflowJob

from connectors.github_repos import NOT_MODIFIED, conditional_get, rest_items
from connectors.resume import checkpoint, open_walk
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
# The stream of runs of every workflow pushed to the default branch (no ci_workflows configured).
PUSH_STREAM = "actions:push"
# runs stored per transaction: each completed run costs a jobs request, so a kill loses little
RUNS_PER_STORE = 3
# The cursor's `etags` key of the runs list's first page (watched runs are keyed by their id).
LIST_ETAG = "runs"


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


def workflow_file(data: dict[str, Any]) -> str:
    """A run's workflow file name from its `path` (".github/workflows/build.yml@main" -> "build.yml")."""
    # `path` carries the ref after "@"; dynamic workflows (Pages, CodeQL) have paths like "dynamic/pages/x"
    path = str(data.get("path") or "").split("@", 1)[0]
    return path.rsplit("/", 1)[-1] or str(data.get("name") or data.get("workflow_id"))


def workflow_pages(repo: Repository, scope: str, workflow: str, cursor: str | None,
                   horizon: dt.datetime, etags: bool = True) -> Iterator[Page]:
    """New runs of one configured workflow since the cursor, then the watched (unfinished or failed) runs again."""
    url = f"{repo.url}/actions/workflows/{quote(workflow, safe='')}/runs"
    missing = f"no workflow {workflow} (404); configure ci_workflows only where it exists"
    return _run_pages(repo, scope, stream_name(workflow), url, {}, lambda _: workflow, cursor, horizon, etags,
                      missing)


def push_run_pages(repo: Repository, scope: str, cursor: str | None, horizon: dt.datetime,
                   etags: bool = True) -> Iterator[Page]:
    """Runs of every workflow triggered by a push to the default branch: CI builds without configuration.

    Rows are those of configuring each workflow file explicitly (`workflow` is the file name from the run's
    `path`). A repo without Actions runs costs the one list request (a 304 once its ETag is known).
    """
    url = f"{repo.url}/actions/runs"
    return _run_pages(repo, scope, PUSH_STREAM, url, {"event": "push"}, workflow_file, cursor, horizon, etags,
                      "no Actions runs list (404)")


def _load(cursor: str | None) -> dict[str, Any]:
    """A stream cursor; those written before ETags (no `etags`, 4-item watch entries) load too."""
    state = json.loads(cursor) if cursor else {"created": None, "max_id": 0, "watch": []}
    state.setdefault("etags", {})
    return state


def _run_pages(repo: Repository, scope: str, stream: str, url: str, filters: dict[str, str],
               workflow_of: Callable[[dict[str, Any]], str], cursor: str | None, horizon: dt.datetime,
               etags: bool, missing: str) -> Iterator[Page]:
    """New runs of a runs list since the cursor, then the watched (unfinished or failed) runs again.

    The cursor holds the newest `created_at` seen, the highest run id stored (the `>=` boundary lists the
    newest run again; ids grow with time, so it is skipped), the runs still watched with their attempt,
    updated_at, status and conclusion, and the ETags of the list's first page and of each watched run: an
    unchanged list or run answers 304 (free of quota) and costs nothing more.
    """
    done, resume = open_walk(cursor, "rest")
    raw = json.loads(done) if done else None
    state = _load(done)
    tags: dict[str, str] = dict(state["etags"]) if etags else {}
    since = _ts(state["created"]) if state["created"] else horizon
    max_id, newest = int(state["max_id"]), since
    watch: dict[int, tuple[int, str, str, str | None, str | None]] = {}
    for entry in state["watch"] + (resume["watch"] if resume else []):
        run_id, attempt, updated, created, *rest = entry
        status, conclusion = (rest + [None, None])[:2]
        watch[int(run_id)] = (int(attempt), updated, created, status, conclusion)
    new_max = max_id
    # an unfinished walk stored the runs from its lowest id up: the list is read again, those are skipped
    stored_from = int(resume["at"]) if resume else None
    if resume is not None:
        new_max, newest = int(resume["new_max"]), _ts(resume["newest"]) or newest
    new_tags: dict[str, str] = {}
    created = f">={_qualifier(since)}"
    if resume is not None and resume.get("before"):
        # the walk stored every run created after `before`: list only the older part again; runs created
        # since the kill have higher ids and created_at than this walk's newest, so the next walk gets them
        created = f"{_qualifier(since)}..{_qualifier(_ts(resume['before']) or since)}"
    params = {"branch": repo.default_branch, **filters, "created": created, "per_page": repo.requester.per_page}
    try:
        code, headers, body = conditional_get(repo.requester, url, params,
                                              tags.get(LIST_ETAG) if resume is None else None)
    except UnknownObjectException:
        log.warning("github %s: %s", scope, missing)
        return
    page = Page(SOURCE, scope, stream)
    if code == NOT_MODIFIED:  # no run was created or changed on the first page since the last sync
        new_tags[LIST_ETAG], listed = tags[LIST_ETAG], iter(())
    else:
        if etags and headers.get("etag"):
            new_tags[LIST_ETAG] = headers["etag"]
        listed = rest_items(repo.requester, headers, body, "workflow_runs")
    walked: list[list[Any]] = []  # watch entries of the runs this walk stored, for its checkpoints
    lowest: int | None = stored_from
    before: str | None = resume.get("before") if resume else None  # created_at of the lowest stored run
    for data in listed:  # list items already hold every field stored (no completing request)
        run_id = int(data["id"])
        if run_id <= max_id or (stored_from is not None and stored_from <= run_id <= int(resume["new_max"])):
            continue
        new_max = max(new_max, run_id)
        if lowest is None or run_id < lowest:
            lowest, before = run_id, data["created_at"]
        newest = max(newest, _ts(data["created_at"]) or newest)
        _add_run(page, repo, scope, workflow_of(data), data)
        watch[run_id] = (int(data.get("run_attempt") or 1), data["updated_at"], data["created_at"],
                         data.get("status"), data.get("conclusion"))
        walked.append([run_id, *watch[run_id]])
        if len(walked) % RUNS_PER_STORE == 0:
            page.cursor = checkpoint(done, "rest", lowest, new_max=new_max, newest=newest.isoformat(), before=before,
                                     watch=(resume["watch"] if resume else []) + walked)
            yield page
            page = Page(SOURCE, scope, stream)
    if page.rows:
        yield page
    still: list[list[Any]] = []
    for run_id, (attempt, updated, created, status, conclusion) in sorted(watch.items()):
        if run_id <= max_id:
            key = str(run_id)
            try:
                code, headers, data = conditional_get(repo.requester, f"{repo.url}/actions/runs/{run_id}", None,
                                                      tags.get(key))
            except UnknownObjectException:
                log.warning("github %s: workflow run %s is gone (404); no longer watched", scope, run_id)
                continue
            if code == NOT_MODIFIED:
                new_tags[key] = tags[key]
            else:
                if etags and headers.get("etag"):
                    new_tags[key] = headers["etag"]
                fetched = int(data.get("run_attempt") or 1), data["updated_at"]
                if fetched != (attempt, updated):
                    refreshed = Page(SOURCE, scope, stream)
                    _add_run(refreshed, repo, scope, workflow_of(data), data)
                    yield refreshed
                (attempt, updated), status, conclusion = fetched, data.get("status"), data.get("conclusion")
        recent = newest - (_ts(created) or newest) < RERUN_WINDOW
        if status != "completed" or (conclusion != "success" and recent):
            still.append([run_id, attempt, updated, created, status, conclusion])
    kept = {str(entry[0]) for entry in still} | {LIST_ETAG}
    new_state = {"created": newest.isoformat(), "max_id": new_max, "watch": still,
                 "etags": {key: tag for key, tag in sorted(new_tags.items()) if key in kept}}
    if new_state != raw or resume is not None:
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
        "source": BUILD_SOURCE, "pause_s": 0.0, "url": run["html_url"]})
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
        "status": status, "source": BUILD_SOURCE, "pause_s": 0.0, "url": attempt_url(run["html_url"], attempt)})


def attempt_url(run_url: str | None, attempt: int) -> str | None:
    """The page of an earlier attempt: a run's html_url always shows its latest attempt."""
    return None if run_url is None else f"{run_url}/attempts/{attempt}"


def build_id(scope: str, run_id: int, attempt: int) -> str:
    """The ci_builds id of one run attempt."""
    return f"{BUILD_SOURCE}:{scope}/{run_id}#{attempt}"
