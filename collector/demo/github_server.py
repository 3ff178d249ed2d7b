"""A simulated GitHub: a threaded HTTP server on 127.0.0.1 answering like the REST API for a Pet Clinic world.

It serves only what existed at `clock` (default: the world's end), so a test can collect at T1, move the clock
to T2 and collect again. Pagination, Link headers, rate-limit headers, ETags/304, bad-token 401s and injected
faults behave like api.github.com closely enough for PyGithub and plain `requests` clients to run unmodified.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from collector.demo.github_graphql import GraphQLEndpoint
from collector.demo.incident_world import LABEL, Incident, IncidentWorld, build_incidents
from collector.demo.payloads import Payloads, stable_workflow_id
from collector.demo.served import Fault, ServedSimulator, hang_up, parse_instant
from collector.demo.world import UTC, Commit, PullRequest, RepoWorld, World

logger = logging.getLogger(__name__)

RATE_LIMIT = 5000
DOCS = "https://docs.github.com/rest"
RATE_DOCS = DOCS + "/overview/rate-limits-for-the-rest-api"
# GitHub.com serves GraphQL at /graphql, GitHub Enterprise Server at /api/graphql
GRAPHQL_PATHS = ("/graphql", "/api/graphql")
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
# (path regex, handler method of _Api): every GET endpoint the simulator answers.
ROUTES: tuple[tuple[str, str], ...] = (
    (r"/rate_limit", "rate_limit"),
    (_REPO, "repo"),
    (_REPO + r"/commits", "commits"),
    (_REPO + r"/commits/(?P<ref>[^/]+)", "commit"),
    (_REPO + r"/compare/(?P<basehead>[^/]+)", "compare"),
    (_REPO + r"/pulls", "pulls"),
    (_REPO + r"/pulls/(?P<number>\d+)", "pull"),
    (_REPO + r"/pulls/(?P<number>\d+)/reviews", "reviews"),
    (_REPO + r"/pulls/(?P<number>\d+)/commits", "pull_commits"),
    (_REPO + r"/issues", "issues"),
    (_REPO + r"/issues/(?P<number>\d+)", "issue"),
    (_REPO + r"/issues/(?P<number>\d+)/timeline", "timeline"),
    (_REPO + r"/deployments", "deployments"),
    (_REPO + r"/deployments/(?P<id>\d+)", "deployment"),
    (_REPO + r"/deployments/(?P<id>\d+)/statuses", "statuses"),
    (_REPO + r"/actions/workflows/(?P<workflow>[^/]+)/runs", "workflow_runs"),
    (_REPO + r"/actions/runs", "repo_runs"),
    (_REPO + r"/actions/runs/(?P<run_id>\d+)", "workflow_run"),
    (_REPO + r"/actions/runs/(?P<run_id>\d+)/jobs", "run_jobs"),
    (_REPO + r"/actions/runs/(?P<run_id>\d+)/attempts/(?P<attempt>\d+)/jobs", "attempt_jobs"),
    (r"/orgs/(?P<org>[^/]+)/repos", "org_repos"),
    (r"/users/(?P<user>[^/]+)/repos", "user_repos"),
)
# `status` filter values of the workflow-runs list that name a conclusion rather than a status.
RUN_STATUSES = ("queued", "in_progress", "completed")
# `type` filters of the org / user repo lists -> whether a (public, non-fork) world repo is listed.
ORG_REPO_TYPES = {"all": True, "public": True, "private": False, "forks": False, "sources": True, "member": True}
USER_REPO_TYPES = {"all": True, "owner": True, "member": False}
REPO_SORTS = ("created", "updated", "pushed", "full_name")
_COMPILED = tuple((re.compile(pattern), name) for pattern, name in ROUTES)
_FAULT_MESSAGES = {
    401: "Bad credentials",
    403: "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please "
         "include the request ID.",
    404: "Not Found",
    422: "Validation Failed",
    429: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
}


class ApiError(Exception):
    """An HTTP error answer with GitHub's error body."""

    def __init__(self, status: int, message: str, documentation_url: str = DOCS) -> None:
        super().__init__(message)
        self.status, self.message, self.documentation_url = status, message, documentation_url


@dataclass
class Listing:
    """A full list answer: the items in GitHub's order and how to render one (after pagination)."""

    items: list[Any]
    render: Callable[[Any], Any]
    envelope: str | None = None  # Actions lists: {"total_count": n, envelope: [items]}


@dataclass
class _Answer:
    """What a request gets: status, JSON body, extra headers, and whether it uses rate-limit quota."""

    status: int
    body: Any
    headers: dict[str, str]
    counted: bool = True


class _Api:
    """The endpoint handlers of ROUTES, bound to one clock: each returns an object or a full Listing."""

    def __init__(self, world: World, payloads: Payloads, clock: datetime, rate: tuple[int, int],
                 incidents: IncidentWorld) -> None:
        self.world, self.p, self.t, self.rate, self.incidents = world, payloads, clock, rate, incidents

    def _repo(self, params: dict[str, str]) -> RepoWorld:
        try:
            return self.world.repo(f"{params['owner']}/{params['name']}")
        except KeyError:
            raise ApiError(404, "Not Found", DOCS + "/repos/repos#get-a-repository") from None

    def _pull(self, rw: RepoWorld, number: str) -> PullRequest:
        pr = rw.pull(int(number))
        now = pr.as_of(self.t) if pr else None
        if now is None:
            raise ApiError(404, "Not Found", DOCS + "/pulls/pulls#get-a-pull-request")
        return now

    def rate_limit(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET /rate_limit: the quota as this server counts it (free, like on GitHub)."""
        return self.p.rate_limit(RATE_LIMIT, *self.rate)

    def repo(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET /repos/{o}/{r}: the full repository."""
        rw = self._repo(params)
        if rw.repo.created_at > self.t:
            raise ApiError(404, "Not Found", DOCS + "/repos/repos#get-a-repository")
        return self.p.repository(rw, self.t, full=True)

    def _resolve(self, rw: RepoWorld, ref: str) -> Commit | None:
        """A branch name, PR head ref or (abbreviated) sha -> the commit it names at the clock."""
        if ref == rw.repo.default_branch:
            return rw.tip_at(self.t)
        for pr in rw.pulls:
            if pr.head_ref == ref and (now := pr.as_of(self.t)) is not None and now.commits:
                return now.commits[-1]
        if re.fullmatch(r"[0-9a-f]{4,40}", ref):
            hits = [c for sha, c in rw.commits.items() if sha.startswith(ref) and c.committed_at <= self.t]
            if len(hits) == 1:
                return hits[0]
        return None

    @staticmethod
    def _history(rw: RepoWorld, start: Commit) -> dict[str, Commit]:
        """Every commit reachable from start (start included)."""
        seen: dict[str, Commit] = {}
        stack = [start.sha]
        while stack:
            sha = stack.pop()
            if sha not in seen and (commit := rw.commits.get(sha)) is not None:
                seen[sha] = commit
                stack.extend(commit.parents)
        return seen

    def commits(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../commits: history from `sha` (default branch) newest first; since/until on commit date."""
        rw = self._repo(params)
        start = self._resolve(rw, query.get("sha") or rw.repo.default_branch)
        if start is None:
            raise ApiError(404, "Not Found", DOCS + "/commits/commits#list-commits")
        since, until = _parse_time(query.get("since")), _parse_time(query.get("until"))
        seen = self._history(rw, start)
        order = _topo_order(seen)
        listed = [c for c in seen.values() if (since is None or c.committed_at >= since)
                  and (until is None or c.committed_at <= until)]
        listed.sort(key=lambda c: (c.committed_at, order[c.sha]), reverse=True)
        return Listing(listed, lambda c: self.p.commit(rw, c))

    def compare(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../compare/{base}...{head}: commits reachable from head and not from base, oldest first.

        Like GitHub, the commit list pages by page/per_page (default 250, at most 1000 per page) with a
        Link header, and base/merge-base commits come in full.
        """
        rw = self._repo(params)
        base_ref, sep, head_ref = unquote(params["basehead"]).partition("...")
        base, head = self._resolve(rw, base_ref), self._resolve(rw, head_ref)
        if not sep or base is None or head is None:
            raise ApiError(404, "Not Found", DOCS + "/commits/commits#compare-two-commits")
        from_head, from_base = self._history(rw, head), self._history(rw, base)
        order = _topo_order(from_head | from_base)
        ahead = sorted((c for sha, c in from_head.items() if sha not in from_base),
                       key=lambda c: (c.committed_at, order[c.sha]))
        behind = sum(1 for sha in from_base if sha not in from_head)
        common = [c for sha, c in from_head.items() if sha in from_base]
        merge_base = max(common, key=lambda c: (order[c.sha], c.committed_at)) if common else base
        status = ("identical" if not ahead and not behind else "ahead" if not behind
                  else "behind" if not ahead else "diverged")
        try:
            per_page = min(1000, max(1, int(query.get("per_page") or 250)))
            page = max(1, int(query.get("page") or 1))
        except ValueError:
            raise ApiError(422, "Validation Failed") from None
        shown = ahead[(page - 1) * per_page: page * per_page]
        body = self.p.comparison(rw, base, head, merge_base, status, len(ahead), behind,
                                 [self.p.commit(rw, c) for c in shown])
        return _Answer(200, body, _link_header(self._page_urls(params, query), page,
                                               max(1, math.ceil(len(ahead) / per_page))))

    def _page_urls(self, params: dict[str, str], query: dict[str, str]) -> Callable[[int], str]:
        """Page URLs of the compare endpoint on this server."""
        path = f"/repos/{params['owner']}/{params['name']}/compare/{params['basehead']}"
        return lambda number: f"{self.p.api}{path}?{urlencode({**query, 'page': number})}"

    def commit(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../commits/{ref}: one commit with stats and files (422 if unknown, as GitHub)."""
        rw = self._repo(params)
        ref = unquote(params["ref"])
        found = self._resolve(rw, ref)
        if found is None:
            raise ApiError(422, f"No commit found for SHA: {ref}", DOCS + "/commits/commits#get-a-commit")
        return self.p.commit(rw, found, full=True)

    def pulls(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../pulls: state/base/head filters; sort created|updated; direction defaults as GitHub."""
        rw = self._repo(params)
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise ApiError(422, "Validation Failed", DOCS + "/pulls/pulls#list-pull-requests")
        sort = query.get("sort", "created")
        direction = query.get("direction") or ("desc" if sort == "created" else "asc")
        owner = rw.repo.full_name.split("/")[0]
        listed = [now for pr in rw.pulls if (now := pr.as_of(self.t)) is not None
                  and state in ("all", now.state) and query.get("base", now.base_ref) == now.base_ref
                  and query.get("head", f"{owner}:{now.head_ref}") == f"{owner}:{now.head_ref}"]
        key: Callable[[PullRequest], Any] = ((lambda pr: (pr.updated_at, pr.number)) if sort == "updated"
                                             else (lambda pr: (pr.created_at, pr.number)))
        listed.sort(key=key, reverse=direction == "desc")
        return Listing(listed, lambda pr: self.p.pull(rw, pr, self.t))

    def pull(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../pulls/{n}: the full pull request (merged, merged_by, counts)."""
        rw = self._repo(params)
        return self.p.pull(rw, self._pull(rw, params["number"]), self.t, full=True)

    def reviews(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../pulls/{n}/reviews: submitted reviews, chronological."""
        rw = self._repo(params)
        pr = self._pull(rw, params["number"])
        return Listing(list(pr.reviews), lambda review: self.p.review(rw, pr, review, self.t))

    def pull_commits(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../pulls/{n}/commits: the PR's own commits, chronological (also when squashed or rebased)."""
        rw = self._repo(params)
        return Listing(list(self._pull(rw, params["number"]).commits), lambda c: self.p.commit(rw, c))

    def _incident_issues(self, rw: RepoWorld) -> list[Incident]:
        """The repo's incident issues as of the clock."""
        return [now for i in self.incidents.of("github") if i.repo == rw.full_name
                and (now := i.as_of(self.t)) is not None]

    def issues(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../issues: issues and PRs; state, labels (all of them), since (updated), sort, direction."""
        rw = self._repo(params)
        state = query.get("state", "open")
        sort = query.get("sort", "created")
        if state not in ("open", "closed", "all") or sort not in ("created", "updated", "comments"):
            raise ApiError(422, "Validation Failed", DOCS + "/issues/issues#list-repository-issues")
        labels = {name.strip() for name in query.get("labels", "").split(",") if name.strip()}
        since = _parse_time(query.get("since"))
        items: list[tuple[datetime, datetime, int, Any]] = []
        for issue in self._incident_issues(rw):
            items.append((issue.created_at, issue.updated_at, issue.number, issue))
        for pr in rw.pulls:
            if (now := pr.as_of(self.t)) is not None:
                items.append((now.created_at, now.updated_at, now.number, now))

        def keep(item: Any) -> bool:
            closed = item.resolved_at is not None if isinstance(item, Incident) else item.state == "closed"
            names = {LABEL} if isinstance(item, Incident) else set(item.labels)
            return state in ("all", "closed" if closed else "open") and labels <= names

        listed = [entry for entry in items if keep(entry[3]) and (since is None or entry[1] >= since)]
        listed.sort(key=lambda e: (e[1] if sort == "updated" else e[0], e[2]),
                    reverse=query.get("direction", "desc") == "desc")
        return Listing([entry[3] for entry in listed], lambda item: self._render_issue(rw, item))

    def _render_issue(self, rw: RepoWorld, item: Any) -> Any:
        """An incident issue, or a PR seen through the issues API."""
        if isinstance(item, Incident):
            return self.p.incident_issue(rw, item)
        return self.p.issue(rw, item)

    def issue(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../issues/{n}: an incident issue, or a PR through the issues API (PyGithub's `as_issue()`)."""
        rw = self._repo(params)
        for incident in self._incident_issues(rw):
            if incident.number == int(params["number"]):
                return self.p.incident_issue(rw, incident)
        return self.p.issue(rw, self._pull(rw, params["number"]))

    def timeline(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../issues/{n}/timeline: committed, reviewed and issue events, chronological."""
        rw = self._repo(params)
        return Listing(self.p.timeline(rw, self._pull(rw, params["number"]), self.t), lambda item: item)

    def deployments(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../deployments: newest first, filtered by environment/sha/ref/task."""
        rw = self._repo(params)
        filters = {k: query[k] for k in ("environment", "sha", "ref", "task")
                   if query.get(k) not in (None, "none")}
        listed = [now for d in rw.deployments if (now := d.as_of(self.t)) is not None
                  and all(getattr(now, k) == v for k, v in filters.items())]
        listed.sort(key=lambda d: d.id, reverse=True)
        return Listing(listed, lambda d: self.p.deployment(rw, d))

    def _deployment(self, params: dict[str, str]) -> tuple[RepoWorld, Any]:
        rw = self._repo(params)
        wanted = int(params["id"])
        for dep in rw.deployments:
            if dep.id == wanted and (now := dep.as_of(self.t)) is not None:
                return rw, now
        raise ApiError(404, "Not Found", DOCS + "/deployments/deployments#get-a-deployment")

    def deployment(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../deployments/{id}: one deployment."""
        rw, dep = self._deployment(params)
        return self.p.deployment(rw, dep)

    def statuses(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../deployments/{id}/statuses: newest first."""
        rw, dep = self._deployment(params)
        return Listing(sorted(dep.statuses, key=lambda s: s.id, reverse=True),
                       lambda s: self.p.deployment_status(rw, dep, s))

    def _runs(self, rw: RepoWorld) -> list[Any]:
        """The repo's workflow runs as of the clock."""
        return [now for run in rw.runs if (now := run.as_of(self.t)) is not None]

    def workflow_runs(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../actions/workflows/{file or id}/runs: newest first; branch/event/status/head_sha/created."""
        rw = self._repo(params)
        workflow = unquote(params["workflow"])
        runs = [run for run in self._runs(rw) if workflow in (run.workflow, str(stable_workflow_id(rw, run.workflow)))]
        if not runs and not any(workflow == run.workflow for run in rw.runs):
            raise ApiError(404, "Not Found", DOCS + "/actions/workflows#get-a-workflow")
        low, high = _created_range(query.get("created"))
        status = query.get("status")

        def keep(run: Any) -> bool:
            attempt = run.latest
            return (query.get("branch", run.head_branch) == run.head_branch
                    and query.get("event", run.event) == run.event
                    and query.get("head_sha", run.head_sha) == run.head_sha
                    and (low is None or run.created_at >= low) and (high is None or run.created_at <= high)
                    and (not status or status == (attempt.status if status in RUN_STATUSES else attempt.conclusion)))

        listed = sorted((run for run in runs if keep(run)), key=lambda run: (run.created_at, run.id), reverse=True)
        return Listing(listed, lambda run: self.p.workflow_run(rw, run, self.t), "workflow_runs")

    def _run(self, params: dict[str, str]) -> tuple[RepoWorld, Any]:
        rw = self._repo(params)
        wanted = int(params["run_id"])
        for run in self._runs(rw):
            if run.id == wanted:
                return rw, run
        raise ApiError(404, "Not Found", DOCS + "/actions/workflow-runs#get-a-workflow-run")

    def workflow_run(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../actions/runs/{id}: one run as of the clock."""
        rw, run = self._run(params)
        return self.p.workflow_run(rw, run, self.t)

    def run_jobs(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../actions/runs/{id}/jobs: jobs of the latest attempt (filter=all: of every attempt)."""
        rw, run = self._run(params)
        attempts = run.attempts if query.get("filter") == "all" else run.attempts[-1:]
        items = [(attempt, job) for attempt in attempts for job in attempt.jobs]
        return Listing(items, lambda item: self.p.workflow_job(rw, run, *item), "jobs")

    def attempt_jobs(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../actions/runs/{id}/attempts/{n}/jobs: the jobs of one attempt."""
        rw, run = self._run(params)
        attempt = next((a for a in run.attempts if a.number == int(params["attempt"])), None)
        if attempt is None:
            raise ApiError(404, "Not Found", DOCS + "/actions/workflow-jobs#list-jobs-for-a-workflow-run-attempt")
        return Listing([(attempt, job) for job in attempt.jobs],
                       lambda item: self.p.workflow_job(rw, run, *item), "jobs")

    def repo_runs(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET .../actions/runs: runs of every workflow, newest first; same filters as a workflow's runs."""
        rw = self._repo(params)
        low, high = _created_range(query.get("created"))
        status = query.get("status")

        def keep(run: Any) -> bool:
            attempt = run.latest
            return (query.get("branch", run.head_branch) == run.head_branch
                    and query.get("event", run.event) == run.event
                    and query.get("head_sha", run.head_sha) == run.head_sha
                    and (low is None or run.created_at >= low) and (high is None or run.created_at <= high)
                    and (not status or status == (attempt.status if status in RUN_STATUSES else attempt.conclusion)))

        # a repo without runs (or without Actions) answers total_count 0, never 404
        listed = sorted((run for run in self._runs(rw) if keep(run)), key=lambda run: (run.created_at, run.id),
                        reverse=True)
        return Listing(listed, lambda run: self.p.workflow_run(rw, run, self.t), "workflow_runs")

    def _owned(self, owner: str, query: dict[str, str], types: dict[str, bool], default_type: str,
               default_sort: str, docs: str) -> Listing:
        """The owner's repos existing at the clock, filtered by `type` and sorted as GitHub does."""
        kind, sort = query.get("type", default_type), query.get("sort", default_sort)
        if kind not in types or sort not in REPO_SORTS:
            raise ApiError(422, "Validation Failed", docs)
        # every repo of the world is public, not a fork, and its owner's member can see it
        listed = [rw for rw in self.world.repos if rw.full_name.split("/")[0].lower() == owner.lower()
                  and rw.repo.created_at <= self.t and types[kind]]
        direction = query.get("direction") or ("asc" if sort == "full_name" else "desc")
        listed.sort(key=lambda rw: self._repo_sort_key(rw, sort), reverse=direction == "desc")
        return Listing(listed, lambda rw: {**self.p.repository(rw, self.t), "archived": rw.repo.archived})

    def _repo_sort_key(self, rw: RepoWorld, sort: str) -> Any:
        """created, updated/pushed (last push at the clock) or full_name, ids breaking ties."""
        if sort == "full_name":
            return rw.full_name.lower(), rw.repo.id
        if sort == "created":
            return rw.repo.created_at, rw.repo.id
        tip = rw.tip_at(self.t)
        return (tip.landed_at if tip and tip.landed_at else rw.repo.created_at), rw.repo.id

    def _account(self, login: str) -> Any:
        """The person with that login, case-insensitive (None if unknown)."""
        return next((p for p in self.world.people if p.login.lower() == login.lower()), None)

    def org_repos(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET /orgs/{org}/repos: an organisation's repos (404 for a user or an unknown login, like GitHub)."""
        docs = DOCS + "/repos/repos#list-organization-repositories"
        account = self._account(params["org"])
        if account is None or account.type != "Organization":
            raise ApiError(404, "Not Found", docs)
        return self._owned(account.login, query, ORG_REPO_TYPES, "all", "created", docs)

    def user_repos(self, params: dict[str, str], query: dict[str, str]) -> Any:
        """GET /users/{user}/repos: an account's public repos (organisations answer too, as on GitHub)."""
        docs = DOCS + "/repos/repos#list-repositories-for-a-user"
        account = self._account(params["user"])
        if account is None:
            raise ApiError(404, "Not Found", docs)
        return self._owned(account.login, query, USER_REPO_TYPES, "owner", "full_name", docs)


def _created_range(text: str | None) -> tuple[datetime | None, datetime | None]:
    """GitHub's `created` search qualifier (>=, >, <=, <, a..b, or one date) as inclusive UTC bounds."""
    if not text:
        return None, None
    for prefix in (">=", "<=", ">", "<"):
        if text.startswith(prefix):
            value = _qualifier_time(text[len(prefix):], end=prefix[0] == "<")
            if prefix in (">", "<"):
                value += timedelta(seconds=1 if prefix == ">" else -1)
            return (value, None) if prefix[0] == ">" else (None, value)
    low, sep, high = text.partition("..")
    if sep:
        return (None if low == "*" else _qualifier_time(low, end=False),
                None if high == "*" else _qualifier_time(high, end=True))
    return _qualifier_time(text, end=False), _qualifier_time(text, end=True)


def _qualifier_time(text: str, *, end: bool) -> datetime:
    """A date (its first or last second, by `end`) or an ISO 8601 time of a search qualifier."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return day + timedelta(days=1, seconds=-1) if end else day
    value = _parse_time(text)
    if value is None:
        raise ApiError(422, f"Invalid created qualifier: {text}")
    return value


def _link_header(url: Callable[[int], str], page: int, last: int) -> dict[str, str]:
    """GitHub's Link header (prev/next/last/first) for one page of a paginated answer."""
    links = []
    if page > 1:
        links.append(f'<{url(min(page - 1, last))}>; rel="prev"')
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links.append(f'<{url(1)}>; rel="first"')
    return {"Link": ", ".join(links)} if links else {}


def _parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 query parameter as an aware UTC datetime (422 when malformed)."""
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise ApiError(422, f"Invalid time: {text}") from None


def _topo_order(commits: dict[str, Commit]) -> dict[str, int]:
    """Generation number of each commit (parents lower), to order commits with equal dates child-first."""
    depth: dict[str, int] = {}
    for sha in sorted(commits, key=lambda s: commits[s].committed_at):
        stack = [sha]
        while stack:
            top = stack[-1]
            if top in depth:
                stack.pop()
                continue
            missing = [p for p in commits[top].parents if p in commits and p not in depth]
            if missing:
                stack.extend(missing)
            else:
                depth[top] = 1 + max((depth[p] for p in commits[top].parents if p in commits), default=0)
                stack.pop()
    return depth


class GitHubSimulator(ServedSimulator):
    """Serves a World like api.github.com on http://127.0.0.1:<free port>, as of a movable `clock`."""

    name = "github"
    server_header = "GitHub.com"

    def __init__(self, world: World, *, token: str | tuple[str, ...] | None = None,
                 incidents: IncidentWorld | None = None) -> None:
        super().__init__()
        self.world = world
        self.token = token
        # incident issues (label `incident`) served beside the PRs; by default those of the world
        self.incidents = incidents if incidents is not None else build_incidents(world)
        self.clock: datetime = world.end
        self.latency = 0.0  # seconds added to every answer, to simulate a slow network in tests
        self.request_log: list[tuple[str, str, int]] = []
        self._remaining = RATE_LIMIT
        self._reset = int(time.time()) + 3600
        self._ids = itertools.count(1)
        self._payloads: Payloads | None = None
        self.graphql: GraphQLEndpoint | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def _on_start(self) -> None:
        """Payload URLs carry the server's own host:port (PyGithub refuses any other)."""
        self._payloads = Payloads(self.world, self.base_url)
        self.graphql = GraphQLEndpoint(self.world, self._payloads, self.incidents)

    # -- request handling --------------------------------------------------------------------------------
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request, write it to the wire and to the request log."""
        if self.latency:
            time.sleep(self.latency)
        fault: Fault | None = None
        try:
            answer, fault = self._answer(request)
        except Exception:
            logger.exception("simulated GitHub failed on %s %s", request.command, request.path)
            answer = _Answer(500, Payloads.error(500, "Server Error"), {})
        if isinstance(answer.body, str):  # an injected raw body (malformed JSON, a proxy's HTML page)
            data = answer.body.encode("utf-8")
        else:
            data = json.dumps(answer.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        # the same content has the same ETag on every run of the world, whatever port this server got
        etag = f'W/"{hashlib.md5(data.replace(urlsplit(self.base_url).netloc.encode(), b"")).hexdigest()}"'
        if answer.status == 200 and etag in (request.headers.get("If-None-Match") or ""):
            answer.status, data, answer.counted = 304, b"", False
        with self._lock:  # logged before the answer leaves, so a client never sees a request missing
            self.request_log.append((request.command, request.path, answer.status))
        self._send(request, answer, data, etag, fault)

    def _answer(self, request: BaseHTTPRequestHandler) -> tuple[_Answer, Fault | None]:
        """The answer to a request and the injected fault it triggered (which may still cut it on the wire)."""
        split = urlsplit(request.path)
        path = split.path.rstrip("/") or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        tokens = (self.token,) if isinstance(self.token, str) else tuple(self.token or ())
        auth = request.headers.get("Authorization") or ""
        if tokens and auth not in {f"{scheme} {t}" for t in tokens for scheme in ("token", "Bearer")}:
            return _Answer(401, Payloads.error(401, "Bad credentials"), {}, counted=False), None
        fault = self._take_fault(request.path, getattr(request, "body", b""))
        if fault is not None and fault.delay:
            self._pause(fault.delay)
        if fault is not None and fault.status is not None:
            body = fault.body if fault.body is not None else Payloads.error(
                fault.status, _FAULT_MESSAGES.get(fault.status, "Error"))
            headers = dict(fault.headers)
            if path in GRAPHQL_PATHS:  # GitHub names the budget a GraphQL answer counts against
                headers.setdefault("X-RateLimit-Resource", "graphql")
            if isinstance(body, str) and body.lstrip().startswith("<"):
                headers.setdefault("Content-Type", "text/html; charset=utf-8")
            return _Answer(fault.status, body, headers, counted=False), fault
        try:
            if request.command == "POST" and path in GRAPHQL_PATHS:
                return self._graphql(request), fault
            if request.command != "GET":
                raise ApiError(404, "Not Found")
            return self._route(path, query), fault
        except ApiError as error:
            body = Payloads.error(error.status, error.message, error.documentation_url)
            return _Answer(error.status, body, {}), fault

    def _graphql(self, request: BaseHTTPRequestHandler) -> _Answer:
        """POST /graphql: GitHub's v4 API; its points budget is its own, so the REST quota is not touched."""
        assert self.graphql is not None
        auth = request.headers.get("Authorization") or ""
        # api.github.com refuses anonymous GraphQL; this simulator accepts it when it was given no token,
        # so the demo runs without credentials (each token, or "anonymous", has its own points budget)
        token = auth.split(" ", 1)[-1] if auth else "anonymous"
        try:
            body = json.loads(getattr(request, "body", b"") or b"null")
        except ValueError:
            body = None
        reply = self.graphql.answer(body, token, self.clock)
        return _Answer(reply.status, reply.body, reply.headers, counted=False)

    def _route(self, path: str, query: dict[str, str]) -> _Answer:
        """Find the endpoint in ROUTES and call it; /rate_limit is free, everything else needs quota."""
        assert self._payloads is not None
        with self._lock:
            rate = (self._remaining, self._reset)
        api = _Api(self.world, self._payloads, self.clock, rate, self.incidents)
        for pattern, name in _COMPILED:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if name == "rate_limit":
                return _Answer(200, api.rate_limit({}, query), {}, counted=False)
            if rate[0] <= 0:
                body = Payloads.error(403, _FAULT_MESSAGES[403], RATE_DOCS)
                return _Answer(403, body, {"X-RateLimit-Remaining": "0"}, counted=False)
            result = getattr(api, name)(match.groupdict(), query)
            if isinstance(result, Listing):
                return self._paginate(path, query, result)
            if isinstance(result, _Answer):
                return result
            return _Answer(200, result, {})
        raise ApiError(404, "Not Found")

    def _paginate(self, path: str, query: dict[str, str], listing: Listing) -> _Answer:
        """Slice a full list by page/per_page and add GitHub's Link header."""
        try:
            per_page = min(100, max(1, int(query.get("per_page") or 30)))
            page = max(1, int(query.get("page") or 1))
        except ValueError:
            raise ApiError(422, "Validation Failed") from None
        last = max(1, math.ceil(len(listing.items) / per_page))

        def url(number: int) -> str:
            return f"{self.base_url}{path}?{urlencode({**query, 'page': number})}"

        headers = _link_header(url, page, last)
        shown = [listing.render(item) for item in listing.items[(page - 1) * per_page: page * per_page]]
        if listing.envelope is not None:
            return _Answer(200, {"total_count": len(listing.items), listing.envelope: shown}, headers)
        return _Answer(200, shown, headers)

    def _send(self, request: BaseHTTPRequestHandler, answer: _Answer, data: bytes, etag: str,
              fault: Fault | None = None) -> None:
        """Write status, GitHub's headers (rate limit, ETag, ...) and the JSON body; count the quota.

        A fault that cuts the answer sends only part of the body: as a complete (short) answer, or
        followed by a connection reset."""
        with self._lock:
            if self._reset <= time.time():
                self._remaining, self._reset = RATE_LIMIT, int(time.time()) + 3600
            if answer.counted:
                self._remaining = max(0, self._remaining - 1)
            remaining, reset = self._remaining, self._reset
        headers = {"Content-Type": "application/json; charset=utf-8", "ETag": etag,
                   "X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": str(reset), "X-RateLimit-Used": str(RATE_LIMIT - remaining),
                   "X-RateLimit-Resource": "core", "X-GitHub-Media-Type": "github.v3; format=json",
                   "X-GitHub-Request-Id": f"SIM:{next(self._ids):08X}",
                   "Cache-Control": "private, max-age=60"}
        headers.update(answer.headers)
        sent, length = fault.wire(data) if fault is not None else (data, len(data))
        request.send_response(answer.status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(length))
        request.end_headers()
        if sent:
            request.wfile.write(sent)
        if fault is not None and fault.reset:
            hang_up(request)
