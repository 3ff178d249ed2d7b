"""Jenkins source (python-jenkins): builds of CI and deploy jobs with queue times, the built SHA, change sets
and pipeline stages. Fetches and yields pages; never touches the database."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import jenkins
import requests

from connectors.base import Cursors, read_secret
from connectors.http import (
    RETRY_STATUSES,
    CountingAdapter,
    RequestCount,
    counting_retry,
    is_timeout,
    safe_url,
)
from models.records import Page, RawObject, Row

log = logging.getLogger(__name__)

SOURCE = "jenkins"
STREAM = "builds"
PAGE_SIZE = 100
MAX_UPSTREAM_DEPTH = 5
WORKFLOW_RUN = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
PRIMARY_BRANCH_ACTION = "jenkins.scm.api.metadata.PrimaryInstanceMetadataAction"
# A multibranch project named in the config means its default branch: marked primary, or by these names.
DEFAULT_BRANCHES = ("main", "master", "trunk", "develop", "default")
SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# What one build request asks for, as JSON API `tree` fields. TimeInQueueAction's fields (Metrics plugin)
# are hidden at depth 0, so they are named; an action without them simply does not answer them.
QUEUE_FIELDS = ("queuingDurationMillis", "waitingDurationMillis", "blockedDurationMillis",
                "buildableDurationMillis")
CAUSE_FIELDS = ("shortDescription", "userId", "userName", "upstreamProject", "upstreamBuild", "upstreamUrl")
REVISION_FIELDS = ("lastBuiltRevision[SHA1]", "remoteUrls", "parameters[name,value]",
                   f"causes[{','.join(CAUSE_FIELDS)}]")
CHANGE_FIELDS = "items[commitId,author[fullName],msg,timestamp]"
BUILD_FIELDS = ("number", "url", "result", "building", "timestamp", "duration", "queueId",
                f"actions[{','.join((*QUEUE_FIELDS, *REVISION_FIELDS))}]",
                f"changeSets[{CHANGE_FIELDS}]",  # pipelines
                f"changeSet[{CHANGE_FIELDS}]")   # freestyle and other classic jobs
# Asked with every page: a multibranch project answers its branch jobs, a job its oldest kept build.
JOB_FIELDS = ("jobs[name,actions[_class]]", "firstBuild[number]")
UPSTREAM_TREE = f"actions[{','.join(REVISION_FIELDS)}]"


def builds_tree(start: int, stop: int) -> str:
    """The tree expression for builds start..stop-1 (newest first) of a job."""
    return f"{','.join(JOB_FIELDS)},allBuilds[{','.join(BUILD_FIELDS)}]{{{start},{stop}}}"


class JenkinsSettings(Protocol):
    """What the connector reads from the config's [jenkins] section (collector.config.JenkinsConfig)."""

    @property
    def url(self) -> str: ...
    @property
    def user_env(self) -> str | None: ...
    @property
    def token_env(self) -> str | None: ...
    @property
    def repo(self) -> str | None: ...
    @property
    def jobs(self) -> tuple[str, ...]: ...
    @property
    def sha_parameter(self) -> str: ...
    @property
    def deploy_jobs(self) -> dict[str, str]: ...
    @property
    def repos(self) -> dict[str, str]: ...
    @property
    def timeout(self) -> float: ...
    @property
    def retries(self) -> int: ...


class CollectError(RuntimeError):
    """A configured name that cannot be collected (e.g. a plain folder); str() is one line."""


def _ts(millis: Any) -> dt.datetime | None:
    """Jenkins epoch milliseconds as an aware UTC datetime (exact: no float rounding)."""
    if millis is None:
        return None
    return EPOCH + dt.timedelta(milliseconds=int(millis))


def _seconds(millis: Any) -> float | None:
    return None if millis is None else int(millis) / 1000


def job_path(name: str) -> str:
    """The URL path of a job or folder: 'a/b' -> 'job/a/job/b'."""
    return "/".join(f"job/{part}" for part in name.split("/"))


def _repo_of_url(url: str, repos: Iterable[str]) -> str | None:
    """The configured repo whose owner/name ends a git remote URL (https, ssh or scp form)."""
    tail = re.sub(r"(\.git)?/*$", "", url.strip()).replace(":", "/").lower()
    for repo in repos:
        if tail.endswith("/" + repo.lower()):
            return repo
    return None


def _actions(build: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in build.get("actions") or [] if isinstance(a, dict)]


def _upstream(actions: list[dict[str, Any]]) -> tuple[str, int] | None:
    """The first UpstreamCause's project and build number."""
    for action in actions:
        for cause in action.get("causes") or []:
            if cause.get("upstreamProject") and cause.get("upstreamBuild") is not None:
                return str(cause["upstreamProject"]), int(cause["upstreamBuild"])
    return None


def _after(start: dt.datetime | None, millis: int | None) -> dt.datetime | None:
    """start plus a number of milliseconds (None when either is unknown)."""
    return None if start is None or millis is None else start + dt.timedelta(milliseconds=millis)


def _queue_times(actions: list[dict[str, Any]]) -> dict[str, int | None] | None:
    """TimeInQueueAction's figures in milliseconds, or None when the build has no such action."""
    for action in actions:
        if any(name in action for name in QUEUE_FIELDS):
            parts = [None if action.get(n) is None else int(action[n]) for n in QUEUE_FIELDS[1:]]
            total = None if action.get(QUEUE_FIELDS[0]) is None else int(action[QUEUE_FIELDS[0]])
            if total is None and all(p is not None for p in parts):
                total = sum(p for p in parts if p is not None)
            return {"queue_s": total, "queue_waiting_s": parts[0], "queue_blocked_s": parts[1],
                    "queue_buildable_s": parts[2]}
    return None


def _changes(build: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Change set items of a pipeline (changeSets) or classic job (changeSet)."""
    sets = list(build.get("changeSets") or [])
    if isinstance(build.get("changeSet"), dict):
        sets.append(build["changeSet"])
    for change_set in sets:
        for item in (change_set or {}).get("items") or []:
            if item.get("commitId"):
                yield item


class JenkinsConnector:
    """Collects the configured CI and deploy jobs of one Jenkins controller."""

    source = SOURCE

    def __init__(self, url: str, *, jobs: Iterable[str], deploy_jobs: Mapping[str, str] | None = None,
                 repo: str | None = None, repos: Mapping[str, str] | None = None,
                 sha_parameter: str | None = "GIT_COMMIT", user: str | None = None, token: str | None = None,
                 timeout: float = 30.0, retries: int = 3, known_repos: Iterable[str] = ()) -> None:
        self._url = url.rstrip("/")
        self._jobs = list(jobs)
        self._deploy_jobs = dict(deploy_jobs or {})
        self._repo = repo
        self._repos = dict(repos or {})
        self._known = list(dict.fromkeys([*(r for r in [repo] if r), *self._repos.values(), *known_repos]))
        self._sha_parameter = sha_parameter
        self._timeout = timeout
        self._retries = retries
        # python-jenkins needs both or neither; an anonymous client sends no Authorization header
        self._jenkins = jenkins.Jenkins(self._url, username=user if token else None,
                                        password=token if user else None, timeout=timeout, retries=retries)
        # The retry policy of every source (connectors/http.py), counted. python-jenkins offers no request
        # hook, and its own retrying adapter is mounted on the bare scheme ('http'), which requests never
        # selects because the default 'http://' adapter matches first, so its `retries` has no effect.
        self._adapter = CountingAdapter(counting_retry(retries, count=RequestCount()))
        for prefix in ("http://", "https://"):
            self._jenkins._session.mount(prefix, self._adapter)
        self._shas: dict[tuple[str, int], str | None] = {}
        self._current = "the server"
        self.warnings: list[str] = []

    # -- Connector protocol -------------------------------------------------------------------------
    def scopes(self) -> list[str]:
        """CI jobs first, then deploy jobs: a deploy build then finds its upstream build's SHA in memory."""
        return list(dict.fromkeys([*self._jobs, *self._deploy_jobs]))

    @property
    def requests_made(self) -> int:
        """HTTP requests sent by this connector, retries included."""
        return self._adapter.count.value

    @property
    def rate_limit_remaining(self) -> int | None:
        """Jenkins has no request budget."""
        return None

    def describe_error(self, exc: BaseException) -> str:
        """One line naming the cause, for logs and the run table (never a credential)."""
        server, where = safe_url(self._url), self._current
        answer = self._adapter.last_answer
        if self._html_page(exc) and answer is not None:
            return (f"Jenkins at {server} answered an HTML page, not JSON, for {where} ({answer.path}): "
                    "wrong credentials or a login redirect?")
        if isinstance(exc, jenkins.NotFoundException):
            return f"Jenkins answered 404 Not Found for {where} (deleted, renamed or not visible)"
        if isinstance(exc, jenkins.TimeoutException) or is_timeout(exc):
            return f"Jenkins at {server} did not answer {where} within {self._timeout:g}s (timeout)"
        if isinstance(exc, requests.exceptions.ConnectionError):
            return f"cannot connect to Jenkins at {server} ({where})"
        if isinstance(exc, CollectError):
            return str(exc)
        if _unparsable(exc):
            return f"malformed JSON from Jenkins at {server} for {where}"
        if answer is not None and answer.status in (401, 403):
            return f"Jenkins at {server} rejected the credentials ({answer.status} {answer.reason}) for {where}"
        if answer is not None and answer.status >= 400:
            tries = self._retries
            again = f" (still after {tries} {'retry' if tries == 1 else 'retries'})" \
                if answer.status in RETRY_STATUSES and tries else ""
            return f"Jenkins answered {answer.status} {answer.reason} for {where}{again}"
        if isinstance(exc, KeyError | TypeError | ValueError):
            return f"malformed Jenkins payload for {where}: {type(exc).__name__}: {exc}"
        text = str(exc).splitlines()[0] if str(exc) else ""
        return f"{type(exc).__name__} for {where}: {text[:200]}"

    def prepare(self, cursors: Cursors) -> Iterator[Page]:
        """Ask for the CSRF crumb before any job (python-jenkins' first request anyway, so it costs nothing):
        a server that rejects the credentials or answers a login page ends the run with one line, not one a job."""
        self._current = "the crumb issuer"
        self._jenkins.maybe_add_crumb(requests.Request("GET", self._url))
        yield from ()

    def pages(self, scope: str, cursors: Cursors) -> Iterator[Page]:
        """New and still-running builds of one job, newest first, 100 per request; each page moves the cursor.

        The cursor {"job", "last", "running"} holds the highest finished build number and the numbers still
        building: a pass walks down to the lowest of those, and running builds are fetched again until they
        finish. A page stored mid-pass adds "pass": {"high", "low", "running"} (the pass's highest finished
        number, the lowest number it stored, its running builds): a restarted pass skips every number from
        `low` up, finishes the old walk and ends with the plain cursor whose `last` is that high-water mark,
        so builds started meanwhile belong to the next pass and no cursor claims a build not yet stored.

        A finished pipeline build whose wfapi/describe answers 404 (deleted since the listing, or a job
        without a stage view) is stored as listed, without stages: it ran, and vsm keeps history the API
        drops; retrying the page would lose the build for good once Jenkins no longer lists it.
        """
        try:
            yield from self._walk(scope, cursors.get((scope, STREAM)))
        except Exception as exc:
            self._mark_passing(exc)
            raise

    def _walk(self, scope: str, raw_cursor: str | None) -> Iterator[Page]:
        """One pass over a job's builds from a stored cursor (see `pages`)."""
        try:
            job, data = self._open(scope)
        except jenkins.NotFoundException:
            message = (f"Jenkins job {scope} was not found (404): deleted or renamed? "
                       "The other jobs still collect")
            log.warning("jenkins: %s", message)
            self.warnings.append(message)
            return
        state = json.loads(raw_cursor) if raw_cursor else {}
        if state.get("job") != job:  # first sync, or a multibranch project's default branch changed
            state = {"job": job, "last": 0, "running": []}
        last, running = int(state["last"]), {int(n) for n in state["running"]}
        floor = min(running | {last})
        unfinished = state.get("pass") or {}
        high = int(unfinished.get("high", last))
        low: int | None = None if unfinished.get("low") is None else int(unfinished["low"])
        still_running = {int(n) for n in unfinished.get("running") or []}
        start = 0
        while True:
            builds = [b for b in data.get("allBuilds") or [] if isinstance(b, dict) and "number" in b]
            page = Page(SOURCE, scope, STREAM)
            for build in builds:
                number = int(build["number"])
                if (number <= last and number not in running) or (low is not None and number >= low):
                    continue  # collected by an earlier pass, or already by this one
                if build.get("building"):
                    still_running.add(number)
                else:
                    high = max(high, number)
                self._add_build(page, scope, job, build)
                low = number if low is None else min(low, number)
            numbers = [int(b["number"]) for b in builds]
            oldest_kept = (data.get("firstBuild") or {}).get("number")
            if len(builds) < PAGE_SIZE or min(numbers) <= floor or min(numbers) == oldest_kept:
                cursor = json.dumps({"job": job, "last": high, "running": sorted(still_running)})
                if cursor != raw_cursor:
                    page.cursor = cursor
                if page.rows or page.cursor:
                    yield page
                return
            if page.rows:
                page.cursor = json.dumps({"job": job, "last": last, "running": sorted(running), "pass": {
                    "high": high, "low": low, "running": sorted(still_running)}})
                yield page
            start += PAGE_SIZE
            data = self._list(job, start)

    def _html_page(self, exc: BaseException) -> bool:
        """Whether a failure was a successful answer carrying an HTML page (a login page, an SSO redirect)."""
        answer = self._adapter.last_answer
        return answer is not None and answer.status < 300 and answer.is_html and _unparsable(exc)

    def _mark_passing(self, exc: BaseException) -> None:
        """Tell the pipeline's scope restarts (exc.passing) whether another try may help: timeouts and
        statuses worth a retry may, a login page never; anything else the pipeline judges itself."""
        answer = self._adapter.last_answer
        retryable = answer is not None and answer.status in RETRY_STATUSES and \
            isinstance(exc, jenkins.JenkinsException | requests.exceptions.HTTPError)
        if self._html_page(exc) or isinstance(exc, jenkins.TimeoutException) or retryable:
            exc.passing = not self._html_page(exc)  # type: ignore[attr-defined]

    # -- fetching -----------------------------------------------------------------------------------
    def _list(self, job: str, start: int) -> dict[str, Any]:
        """One page of a job's builds (one request)."""
        self._current = f"builds {start}-{start + PAGE_SIZE - 1} of job {job}"
        tree = builds_tree(start, start + PAGE_SIZE)
        return self._jenkins.get_info(item=job_path(job), query=f"?tree={tree}")

    def _open(self, scope: str) -> tuple[str, dict[str, Any]]:
        """The first page of a configured job; a multibranch project is resolved to its default branch."""
        data = self._list(scope, 0)
        if "allBuilds" in data:
            return scope, data
        branches = [j for j in data.get("jobs") or [] if isinstance(j, dict) and j.get("name")]
        if not branches or "MultiBranch" not in str(data.get("_class")):
            raise CollectError(f"{scope} is a folder ({data.get('_class')}), not a job: name a job inside it")
        primary = [j["name"] for j in branches
                   if any(a.get("_class") == PRIMARY_BRANCH_ACTION for a in j.get("actions") or [] if a)]
        names = [j["name"] for j in branches]
        branch = next(iter(primary), None) or next((n for n in DEFAULT_BRANCHES if n in names), None)
        if branch is None:
            raise CollectError(f"multibranch project {scope} has no default branch job ("
                               f"{', '.join(DEFAULT_BRANCHES)}): name the branch job, "
                               f"e.g. {scope}/{names[0]}")
        log.debug("jenkins %s: multibranch project, collecting its default branch %s", scope, branch)
        job = f"{scope}/{branch}"
        return job, self._list(job, 0)

    def _stages(self, job: str, number: int) -> dict[str, Any] | None:
        """wfapi/describe of a finished pipeline build (None when the server has no stage view)."""
        self._current = f"wfapi/describe of {job} #{number}"
        return self._jenkins.get_build_stages(job, number)

    def _upstream_sha(self, job: str, number: int, depth: int = 0) -> str | None:
        """The SHA an upstream build built: from this run's builds, else fetched (following its upstreams)."""
        if (job, number) in self._shas:
            return self._shas[(job, number)]
        if depth >= MAX_UPSTREAM_DEPTH:
            return None
        self._current = f"upstream build {job} #{number}"
        try:
            data = self._jenkins.get_info(item=f"{job_path(job)}/{number}", query=f"?tree={UPSTREAM_TREE}")
        except jenkins.NotFoundException:
            log.info("jenkins: upstream build %s #%d is gone; its SHA is unknown", job, number)
            data = {}
        actions = _actions(data)
        sha = self._own_sha(actions)[0]
        if sha is None and (upstream := _upstream(actions)) is not None:
            sha = self._upstream_sha(*upstream, depth=depth + 1)
        self._shas[(job, number)] = sha
        return sha

    # -- rows ---------------------------------------------------------------------------------------
    def _own_sha(self, actions: list[dict[str, Any]]) -> tuple[str | None, str | None, str | None]:
        """(sha, source, repo) from the build itself: git BuildData, else the configured SHA parameter.

        Of several checkouts (a pipeline library, then the project), the one whose remote names a
        configured repo wins; with none matching, the last checkout is the project's.
        """
        checkouts = [((a.get("lastBuiltRevision") or {}).get("SHA1"), a.get("remoteUrls") or [])
                     for a in actions if "lastBuiltRevision" in a or "remoteUrls" in a]
        for sha, urls in checkouts:
            repo = next((r for url in urls if (r := _repo_of_url(str(url), self._known))), None)
            if repo is not None:
                return (sha, "build_data", repo) if sha else (self._parameter(actions), "parameter", repo)
        shas = [sha for sha, _ in checkouts if sha]
        if shas:
            return shas[-1], "build_data", None
        value = self._parameter(actions)
        return (value, "parameter", None) if value else (None, None, None)

    def _parameter(self, actions: list[dict[str, Any]]) -> str | None:
        """The configured SHA parameter's value, when it looks like a commit SHA."""
        for action in actions:
            for parameter in action.get("parameters") or []:
                value = parameter.get("value")
                named = parameter.get("name") == self._sha_parameter
                if named and isinstance(value, str) and SHA.match(value):
                    return value.lower()
        return None

    def _add_build(self, page: Page, scope: str, job: str, build: dict[str, Any]) -> None:
        """One build: its row, change set, raw payload and (finished pipelines) stages."""
        number = int(build["number"])
        actions = _actions(build)
        sha, source, remote_repo = self._own_sha(actions)
        upstream = _upstream(actions)
        if sha is None and upstream is not None:
            sha = self._upstream_sha(*upstream)
            source = "upstream" if sha else None
        if sha is None:
            source = None
        self._shas[(job, number)] = sha
        building = bool(build.get("building"))
        started = _ts(build.get("timestamp"))
        duration_ms = None if building or build.get("duration") is None else int(build["duration"])
        queue = _queue_times(actions)
        causes = [c for a in actions for c in a.get("causes") or []]
        parameters = {p.get("name"): p.get("value") for a in actions for p in a.get("parameters") or []}
        row: Row = {
            "job": job, "number": number, "kind": "deploy" if scope in self._deploy_jobs else "ci",
            "environment": self._deploy_jobs.get(scope),
            "repo": remote_repo or self._repos.get(job) or self._repos.get(scope) or self._repo,
            "url": build.get("url"), "build_class": build.get("_class"), "result": build.get("result"),
            "building": building, "queue_id": build.get("queueId"), "started_at": started,
            "finished_at": _after(started, duration_ms), "duration_s": _seconds(duration_ms),
            "sha": sha, "sha_source": source, "causes": json.dumps(causes),
            "parameters": json.dumps(parameters),
            "upstream_job": upstream[0] if upstream else None,
            "upstream_number": upstream[1] if upstream else None,
            **{column: _seconds(millis) for column, millis in (queue or {}).items()},
        }
        if queue and queue["queue_s"] is not None:
            row["queued_at"] = _after(started, -queue["queue_s"])
        page.raw.append(RawObject("build", f"{job}#{number}", build, scope))
        for item in _changes(build):
            page.add("jenkins_build_changes", {
                "job": job, "number": number, "sha": item["commitId"],
                "author": (item.get("author") or {}).get("fullName"), "message": item.get("msg"),
                "committed_at": _ts(item.get("timestamp"))})
        if not building and build.get("_class") == WORKFLOW_RUN:
            describe = self._stages(job, number)
            if describe is not None:
                page.raw.append(RawObject("wfapi_describe", f"{job}#{number}", describe, scope))
                row["pause_s"] = self._add_stages(page, job, number, describe)
        page.add("jenkins_builds", row)
        _add_normalised(page, row)

    @staticmethod
    def _add_stages(page: Page, job: str, number: int, describe: dict[str, Any]) -> float | None:
        """The stages of one pipeline run; returns the run's pause seconds (time waiting on `input`)."""
        pauses = []
        for stage in describe.get("stages") or []:
            pause = _seconds(stage.get("pauseDurationMillis"))
            pauses.append(pause)
            page.add("jenkins_stages", {
                "job": job, "number": number, "stage_id": str(stage["id"]), "name": stage.get("name"),
                "status": stage.get("status"), "started_at": _ts(stage.get("startTimeMillis")),
                "duration_s": _seconds(stage.get("durationMillis")), "pause_s": pause})
        total = _seconds(describe.get("pauseDurationMillis"))
        if total is None and pauses and all(p is not None for p in pauses):
            total = sum(p for p in pauses if p is not None)
        return total


# Jenkins results in the vocabularies of the generic ci_builds / ci_deployments tables. An aborted deploy
# build never deployed (a candidate replaced while it waited for approval, or rejected): `inactive`, not a
# failed deployment.
BUILD_STATUS = {"SUCCESS": "success", "FAILURE": "failure", "UNSTABLE": "unstable", "ABORTED": "aborted",
                "NOT_BUILT": "aborted"}
DEPLOY_STATUS = {"SUCCESS": "success", "FAILURE": "failure", "UNSTABLE": "failure", "ABORTED": "inactive",
                 "NOT_BUILT": "inactive"}


def _add_normalised(page: Page, row: Row) -> None:
    """The build again in the source-neutral shape the mapper reads: a CI build or a deployment.

    jenkins_builds keeps everything Jenkins said; ci_builds / ci_deployments hold the same build as the
    value stream sees it, so the mapper treats Jenkins like any other CI or deploy source.
    """
    if row["repo"] is None:
        return  # a build vsm cannot place in any repository cannot feed a repository's value stream
    result = row["result"]
    common = {"repo": row["repo"], "sha": row["sha"], "started_at": row["started_at"], "source": "jenkins",
              "pause_s": row.get("pause_s") or 0.0, "url": row.get("url")}
    item_id = f"jenkins:{row['job']}#{row['number']}"
    if row["kind"] == "deploy":
        status = "in_progress" if row["building"] else DEPLOY_STATUS.get(result or "", "error")
        page.add("ci_deployments", {
            **common, "deployment_id": item_id, "environment": row["environment"], "status": status,
            "finished_at": row["finished_at"] if status in ("success", "failure") else None})
    else:
        status = "running" if row["building"] else BUILD_STATUS.get(result or "", "error")
        page.add("ci_builds", {**common, "build_id": item_id, "job": row["job"], "queued_at": row.get("queued_at"),
                               "finished_at": row["finished_at"], "status": status})


def _unparsable(exc: BaseException) -> bool:
    """Whether python-jenkins failed to parse an answer as JSON (its own message, or the crumb's ValueError)."""
    return isinstance(exc, json.JSONDecodeError) or \
        (isinstance(exc, jenkins.JenkinsException) and "Could not parse JSON" in str(exc))


def make_connector(config: JenkinsSettings, env: Mapping[str, str] = os.environ,
                   known_repos: Iterable[str] = ()) -> JenkinsConnector:
    """The connector for a [jenkins] config section, with the user and token read from the environment."""
    credentials = [read_secret(config.user_env, "jenkins.user_env", env),
                   read_secret(config.token_env, "jenkins.token_env", env)]
    return JenkinsConnector(config.url, jobs=config.jobs, deploy_jobs=config.deploy_jobs, repo=config.repo,
                            repos=config.repos, sha_parameter=config.sha_parameter, user=credentials[0],
                            token=credentials[1], timeout=config.timeout, retries=config.retries,
                            known_repos=known_repos)
