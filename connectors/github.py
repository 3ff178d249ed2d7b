"""GitHub source (PyGithub): default-branch commits, pull requests with reviews, commits and timeline,
deployments with their statuses, and Actions runs of the configured CI workflows (connectors/github_actions).
Fetches and yields pages; never touches the database."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from github import Auth, Consts, Github, GithubException
from github.Commit import Commit
from github.Deployment import Deployment
from github.GithubException import UnknownObjectException
from github.GithubObject import GithubObject
from github.PaginatedList import PaginatedList
from github.PullRequest import PullRequest
from github.Repository import Repository

from connectors.base import Cursors, request_tally
from connectors.github_actions import PUSH_STREAM, push_run_pages, stream_name, workflow_pages
from connectors.github_errors import CountingRetry, describe_rest_error
from connectors.github_repos import OwnerListings, expand, is_pattern
from connectors.http import request_path
from connectors.resume import checkpoint, open_walk
from models.records import Page, RawObject, Row

log = logging.getLogger(__name__)

SOURCE = "github"
# where the ETag-cached listing of `owner/*` patterns is kept (a cursor of no repo)
LISTING_SCOPE, LISTING_STREAM = "*", "repo-listing"
PER_PAGE = 100
# pull requests stored per transaction over REST (each costs three detail requests beside its list page)
PULLS_PER_STORE = 5
# Timeline events that matter for flow; comments, labels, commits etc. are not stored as events.
FLOW_EVENTS = frozenset(
    {"ready_for_review", "convert_to_draft", "review_requested", "review_request_removed",
     "merged", "closed", "reopened"}
)
# A deployment with one of these statuses has settled; others are re-polled until they do. A successful
# one has not: GitHub adds `inactive` to it when a newer deployment to its environment replaces it.
SETTLED_STATES = frozenset({"failure", "error", "inactive"})
# An unsettled deployment stops being re-polled once a newer one to its environment is this much newer.
OPEN_DEPLOYMENT_MAX_AGE = dt.timedelta(days=7)

# the list endpoint below /repos/{owner}/{repo} that each stream reads (errors name it)
STREAM_PATHS = {"repo": "", "commits": "/commits", "pulls": "/pulls", "deployments": "/deployments"}
ACTIONS_PATH = "/actions/runs"  # push-triggered and per-workflow runs alike

T = TypeVar("T")


def _payload(obj: GithubObject) -> dict[str, Any]:
    """The object's JSON as the list endpoint sent it.

    PyGithub's public `raw_data` completes a lazy object with one extra request per object; the list
    payload already holds every field we store, so read the attributes it was built from instead.
    """
    return obj._rawData


def _ts(value: str | None) -> dt.datetime | None:
    """Parse GitHub's ISO 8601 timestamps (always UTC, 'Z' suffix)."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _iso(value: dt.datetime) -> str:
    """Cursor text for a timestamp."""
    return value.astimezone(dt.UTC).isoformat()


def _login(user: dict[str, Any] | None) -> str | None:
    return user.get("login") if user else None


def _user_type(user: dict[str, Any] | None) -> str | None:
    return user.get("type") if user else None


def _batches(items: Iterable[T], size: int = PER_PAGE) -> Iterator[list[T]]:
    """Group a lazily paginated list back into API pages, so each page is stored as it arrives."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class GitHubConnector:
    """Collects one GitHub (or GitHub Enterprise) installation's repos."""

    source = SOURCE

    def __init__(
        self,
        repos: Iterable[str],
        *,
        base_url: str,
        token: str | None,
        horizon: dt.datetime,
        timeout: float = 30.0,
        retries: int = 5,
        max_rate_limit_wait: float = 900.0,
        seconds_between_requests: float | None = None,
        ci_workflows: Iterable[str] | None = None,
        concurrency: int = 1,
    ) -> None:
        self._repos = list(repos)
        self.concurrency = concurrency  # repos fetched at once by the pipeline's pool
        self._local = threading.local()
        self._threads: dict[int, int] = {}  # thread id -> its request count when it started working for us
        self._threads_lock = threading.Lock()
        # None: runs of the workflows a push to the default branch triggers; (): no Actions at all
        self._workflows = None if ci_workflows is None else tuple(ci_workflows)
        self._horizon = horizon
        self._retries = [0]
        self._tally = request_tally("github.Requester")
        self._enlist()
        self._retry = retry = CountingRetry(
            tally=self._retries,
            total=retries,
            backoff_factor=0.5,
            max_rate_limit_wait=max_rate_limit_wait,
            # GitHub asks integrators to wait at least a minute on a secondary limit without Retry-After
            secondary_rate_wait=60,
        )
        self._client_settings: dict[str, Any] = {
            "auth": Auth.Token(token) if token else None, "base_url": base_url.rstrip("/"), "per_page": PER_PAGE,
            "timeout": int(timeout), "retry": retry, "seconds_between_requests": seconds_between_requests,
            # objects built from a URL stay unfetched until a field is read: no surprise requests
            "lazy": True}
        self._clients: list[Github] = []
        self._base_url = base_url

    @property
    def _gh(self) -> Github:
        """This thread's PyGithub client: a Requester keeps per-request state on its one connection, so
        threads fetching repos at once each need their own."""
        client = getattr(self._local, "gh", None)
        if client is None:
            client = self._local.gh = Github(**self._client_settings)
            with self._threads_lock:
                self._clients.append(client)
        return client

    # -- Connector protocol -------------------------------------------------------------------------

    def prepare(self, cursors: Cursors) -> Iterator[Page]:
        """Expand `owner/*` patterns to the owner's unarchived repos, listed once per run.

        The listing is polled with the ETag stored in a cursor, so an unchanged organisation costs a 304.
        """
        if not any(is_pattern(name) for name in self._repos):
            return
        listings = OwnerListings(self._gh, cursors.get((LISTING_SCOPE, LISTING_STREAM)))
        self._current = "the repo listing"
        self._endpoint = None
        self._repos = expand(self._repos, listings)
        log.info("%s: %d repos after expanding patterns", self.source, len(self._repos))
        yield Page(self.source, LISTING_SCOPE, LISTING_STREAM, cursor=listings.to_json())

    def scopes(self) -> list[str]:
        """One scope per repo (patterns expanded by `prepare`)."""
        return list(self._repos)

    @property
    def _current(self) -> str:
        """What the calling thread is syncing (for error messages): each worker thread has its own."""
        return getattr(self._local, "current", "the repo")

    @_current.setter
    def _current(self, value: str) -> None:
        self._local.current = value

    @property
    def _endpoint(self) -> str | None:
        """The path of the list the calling thread is reading (its pages and per-item requests below it)."""
        return getattr(self._local, "endpoint", None)

    @_endpoint.setter
    def _endpoint(self, value: str | None) -> None:
        self._local.endpoint = value

    def _enlist(self) -> None:
        """Count the calling thread's requests from now on as this connector's."""
        ident = threading.get_ident()
        with self._threads_lock:
            if ident not in self._threads:
                self._threads[ident] = self._tally.count(ident)

    @property
    def requests_made(self) -> int:
        """Requests sent by the threads working for this connector since they started, retries included."""
        with self._threads_lock:
            sent = sum(self._tally.count(ident) - start for ident, start in self._threads.items())
        return sent + self._retries[0]

    @property
    def rate_limit_remaining(self) -> int | None:
        """Remaining core API budget from the last response headers (no extra request)."""
        known = [c.requester.rate_limiting[0] for c in list(self._clients) if c.requester.rate_limiting[0] >= 0]
        return min(known) if known else None

    def describe_error(self, exc: BaseException) -> str:
        """One line naming the endpoint and the cause, for logs and the run table."""
        return describe_rest_error(exc, base_url=self._base_url, endpoint=request_path(exc) or self._endpoint,
                                   doing=self._current, retried=self._retry.last_answer())

    def pages(self, scope: str, cursors: Cursors) -> Iterator[Page]:
        """All streams of one repo, each from its own cursor."""
        self._enlist()
        self._current = scope
        self._endpoint = f"/repos/{scope}"
        repo = self._gh.get_repo(scope)
        for stream, fetch in self._streams():
            log.debug("github %s: syncing %s", scope, stream)
            self._current = f"{stream} of {scope}"
            self._endpoint = f"/repos/{scope}{STREAM_PATHS.get(stream, ACTIONS_PATH)}"
            yield from fetch(repo, scope, cursors.get((scope, stream)))

    def _streams(self) -> list[tuple[str, Callable[[Repository, str, str | None], Iterator[Page]]]]:
        """The streams of a repo, in the order they are synced."""
        return [
            ("repo", self._repo_pages),
            ("commits", self._commit_pages),
            ("pulls", self._pull_pages),
            ("deployments", self._deployment_pages),
            *self._actions_streams(),
        ]

    def _actions_streams(self) -> list[tuple[str, Callable[[Repository, str, str | None], Iterator[Page]]]]:
        """The Actions streams: push-triggered runs by default, else one per configured workflow."""
        if self._workflows is None:
            return [(PUSH_STREAM, self._push_pages)]
        return [(stream_name(workflow), functools.partial(self._workflow_pages, workflow))
                for workflow in self._workflows]

    def _push_pages(self, repo: Repository, scope: str, cursor: str | None) -> Iterator[Page]:
        """Runs of the workflows triggered by pushes to the default branch, as CI builds."""
        return push_run_pages(repo, scope, cursor, self._horizon)

    # -- streams ------------------------------------------------------------------------------------

    def _repo_pages(self, repo: Repository, scope: str, _cursor: str | None) -> Iterator[Page]:
        """The repo itself (its default branch decides which history is the commit graph)."""
        repo.default_branch  # noqa: B018 - completes the lazy repo with its one request
        data = repo.raw_data
        page = Page(SOURCE, scope, "repo")
        page.raw.append(RawObject("repo", scope, data, scope))
        page.add("repos", {"repo": scope, "default_branch": data["default_branch"], "html_url": data.get("html_url")})
        yield page

    def _commit_pages(self, repo: Repository, scope: str, cursor: str | None) -> Iterator[Page]:
        """Default-branch commits with their parents: the commit graph used for attribution.

        The first sync lists history back to the horizon. Later syncs ask for exactly the commits
        reachable from the branch now and not from the head seen last time (compare old...branch):
        listing with `since` would miss commits of a merged branch that were authored before the
        cursor, because GitHub filters `since` by commit date, not by when a commit joined the branch.
        """
        done, resume = open_walk(cursor, "rest")
        state = json.loads(done) if done else None
        seen: dict[str, Row] = {}
        parents_of: set[str] = set()
        head: str | None = resume["head"] if resume else None
        number = int(resume["at"]) if resume else 1
        try:
            if state is None and resume is not None:  # an unfinished first walk goes on from its pinned head
                commits: Iterable[Any] = listing(repo, Commit, "commits", {"sha": json.loads(head or "{}")["head"],
                                                 "since": _iso(self._horizon)}, number)
            elif state is None:
                commits = repo.get_commits(sha=repo.default_branch, since=self._horizon)
            else:
                commits = self._commits_since_head(repo, scope, state)
            for batch in _batches(commits):
                page = Page(SOURCE, scope, "commits")
                for commit in batch:
                    data = _payload(commit)
                    row = _commit_row(scope, data)
                    seen[row["sha"]] = row
                    page.add("commits", row)
                    for index, parent in enumerate(data.get("parents") or []):
                        parents_of.add(parent["sha"])
                        page.add("commit_parents", {"repo": scope, "sha": data["sha"], "parent_index": index,
                                                    "parent_sha": parent["sha"]})
                    page.raw.append(RawObject("commit", f"{scope}@{data['sha']}", data, scope))
                number += 1
                if state is None:  # the first walk pins the head its first page showed, and can resume
                    head = head or head_cursor(seen, parents_of, self._horizon)
                    if head is not None:
                        page.cursor = checkpoint(done, "rest", number, head=head)
                yield page
        except GithubException as exc:
            # GitHub answers 409 "Git Repository is empty." for a repo without commits: nothing to sync
            if exc.status != 409:
                raise
            log.info("github %s: repository is empty", scope)
        cursor = head if state is None else head_cursor(seen, parents_of, self._horizon)
        if cursor is not None:
            yield Page(SOURCE, scope, "commits", cursor=cursor)

    def _commits_since_head(self, repo: Repository, scope: str, state: dict[str, str]) -> Iterable[Any]:
        """Commits on the default branch that the last seen head does not reach."""
        try:
            comparison = repo.compare(state["head"], repo.default_branch, comparison_commits_per_page=PER_PAGE)
            commits = comparison.commits
            iterator = iter(commits)
            first = next(iterator, None)
        except UnknownObjectException:
            # the old head no longer exists (force-push and garbage collection): fall back to dates
            log.warning("github %s: last seen head %s is gone; listing commits since %s",
                        scope, state["head"][:12], state["committed_at"])
            return repo.get_commits(sha=repo.default_branch, since=_ts(state["committed_at"]))
        return itertools.chain([first], iterator) if first is not None else []

    def _pull_pages(self, repo: Repository, scope: str, cursor: str | None) -> Iterator[Page]:
        """Pull requests of all states, newest update first, down to the cursor; each with details.

        The list has no `since` filter, so it is walked by updated_at descending and stopped at the
        previous run's newest update. The boundary PR (equal updated_at) is fetched again on purpose:
        an update in the same second as the previous listing must not be lost. Each page stored before
        the walk ends carries a checkpoint (connectors/resume.py), so a killed run goes on from there.
        """
        done, resume = open_walk(cursor, "rest")
        stop_at = _ts(done) if done else self._horizon
        newest = _ts(resume["newest"]) if resume else None
        number, skip = resume["at"] if resume else (1, 0)
        pulls = listing(repo, PullRequest, "pulls", {"state": "all", "sort": "updated", "direction": "desc"}, number)
        for batch in _batches(pulls):
            # a PR costs three more requests: store every few, so a kill loses little of a list page's work
            for offset in range(skip, max(len(batch), skip + 1), PULLS_PER_STORE):
                page = Page(SOURCE, scope, "pulls")
                reached_cursor = False
                for pull in batch[offset:offset + PULLS_PER_STORE]:
                    data = _payload(pull)
                    updated = _ts(data["updated_at"])
                    if updated is None or updated < stop_at:
                        reached_cursor = True
                        break
                    newest = updated if newest is None else max(newest, updated)
                    self._add_pull(page, scope, pull, data)
                if reached_cursor:  # the walk is over: its newest update is the next walk's stop point
                    page.cursor = _iso(newest) if newest is not None else None
                elif newest is not None:
                    after = offset + PULLS_PER_STORE
                    at = [number, after] if after < len(batch) else [number + 1, 0]
                    page.cursor = checkpoint(done, "rest", at, newest=_iso(newest))
                if page.rows or page.cursor:
                    yield page
                if reached_cursor:
                    return
            number, skip = number + 1, 0
        if newest is not None:
            yield Page(SOURCE, scope, "pulls", cursor=_iso(newest))

    def _add_pull(self, page: Page, scope: str, pull: Any, data: dict[str, Any]) -> None:
        """One pull request with its reviews, commits and flow events (three list requests)."""
        number = int(data["number"])
        page.raw.append(RawObject("pull", f"{scope}#{number}", data, scope))
        page.add("pull_requests", _pull_row(scope, data))
        for review in pull.get_reviews():
            item = _payload(review)
            page.raw.append(RawObject("review", f"{scope}#{number}/{item['id']}", item, scope))
            page.add("pr_reviews", {
                "repo": scope, "pr_number": number, "review_id": int(item["id"]),
                "reviewer_login": _login(item.get("user")), "reviewer_type": _user_type(item.get("user")),
                "state": item.get("state"), "submitted_at": _ts(item.get("submitted_at")),
                "commit_id": item.get("commit_id"),
            })
        for commit in pull.get_commits():
            item = _payload(commit)
            page.raw.append(RawObject("pr_commit", f"{scope}#{number}@{item['sha']}", item, scope))
            row = _commit_row(scope, item)
            del row["author_name"]
            page.add("pr_commits", {**row, "pr_number": number})
        for event in pull.get_issue_timeline():
            item = _payload(event)
            kind = item.get("event")
            # keyed by node id, which GraphQL shares (it has no numeric id for timeline events)
            node = item.get("node_id")
            if kind not in FLOW_EVENTS or node is None:
                continue
            page.raw.append(RawObject("pr_event", f"{scope}#{number}/{node}", item, scope))
            page.add("pr_events", {
                "repo": scope, "pr_number": number, "event_id": node, "event": kind,
                "actor_login": _login(item.get("actor")), "actor_type": _user_type(item.get("actor")),
                "created_at": _ts(item.get("created_at")),
            })

    def _deployment_pages(self, repo: Repository, scope: str, cursor: str | None) -> Iterator[Page]:
        """New deployments (ids above the cursor) with all statuses, then re-poll unsettled ones.

        Deployments are listed newest first and have no `since` filter; ids grow with time, so the
        walk stops at the highest id already stored. Statuses keep arriving after a deployment was first
        seen (queued -> in_progress -> success -> inactive once replaced), so unsettled deployments stay
        in the cursor and are re-polled, until settled or left behind for a week by a newer deployment
        to the same environment (an abandoned pipeline must not cost a request forever).
        """
        done, resume = open_walk(cursor, "rest")
        state = json.loads(done) if done else {"max_id": 0, "open": [], "newest": {}}
        max_id = int(state["max_id"])
        # entries written by the GraphQL transport also carry the node id: [id, created, environment, node]
        open_deployments = {int(i): (created, env) for i, created, env, *_node in state["open"]}
        newest: dict[str, str] = dict(state["newest"])
        new_max, number = max_id, 1
        if resume is not None:  # an unfinished walk: what it had found, and the page after its last stored one
            open_deployments.update((int(i), (created, env)) for i, created, env, *_node in resume["open"])
            newest, new_max, number = dict(resume["newest"]), int(resume["new_max"]), int(resume["at"])
        deployments = listing(repo, Deployment, "deployments", {}, number,
                              headers={"Accept": Consts.deploymentEnhancementsPreview})
        for batch in _batches(deployments):
            page = Page(SOURCE, scope, "deployments")
            reached_cursor = False
            for deployment in batch:
                data = _payload(deployment)
                deployment_id, created, env = int(data["id"]), data["created_at"], data.get("environment") or ""
                if deployment_id <= max_id or (done is None and _ts(created) < self._horizon):  # type: ignore[operator]
                    reached_cursor = True
                    break
                new_max = max(new_max, deployment_id)
                newest[env] = max(newest.get(env, created), created)
                page.raw.append(RawObject("deployment", f"{scope}/{deployment_id}", data, scope))
                page.add("github_deployments", _deployment_row(scope, data))
                if not self._add_statuses(page, scope, deployment_id, deployment.get_statuses()):
                    open_deployments[deployment_id] = (created, env)
            number += 1
            if not reached_cursor and page.rows:
                fresh = [[i, c, e] for i, (c, e) in sorted(open_deployments.items()) if i > max_id]
                page.cursor = checkpoint(done, "rest", number, new_max=new_max, open=fresh,
                                         newest=dict(sorted(newest.items())))
            if page.rows:
                yield page
            if reached_cursor:
                break
        still_open: list[tuple[int, str, str]] = []
        for deployment_id, (created, env) in sorted(open_deployments.items()):
            if deployment_id <= max_id:
                page = Page(SOURCE, scope, "deployments")
                deployment = repo.get_deployment(deployment_id)
                data = deployment.raw_data  # completes the lazy object: its updated_at moves with new statuses
                page.raw.append(RawObject("deployment", f"{scope}/{deployment_id}", data, scope))
                page.add("github_deployments", _deployment_row(scope, data))
                settled = self._add_statuses(page, scope, deployment_id, deployment.get_statuses())
                yield page
                if settled:
                    continue
            left_behind = _ts(newest.get(env, created)) - _ts(created)  # type: ignore[operator]
            if left_behind < OPEN_DEPLOYMENT_MAX_AGE:
                still_open.append((deployment_id, created, env))
        new_state = {"max_id": new_max, "open": still_open, "newest": dict(sorted(newest.items()))}
        if new_state != state or resume is not None:
            yield Page(SOURCE, scope, "deployments", cursor=json.dumps(new_state))

    def _workflow_pages(self, workflow: str, repo: Repository, scope: str, cursor: str | None) -> Iterator[Page]:
        """Runs of one CI workflow on the default branch, with their jobs, as CI builds."""
        return workflow_pages(repo, scope, workflow, cursor, self._horizon)

    @staticmethod
    def _add_statuses(page: Page, scope: str, deployment_id: int, statuses: Iterable[Any]) -> bool:
        """Add a deployment's statuses to the page; True when one of them settles it."""
        settled = False
        for status in statuses:
            item = _payload(status)
            # keyed by node id, which GraphQL shares (it has no numeric id for deployment statuses)
            node = item["node_id"]
            page.raw.append(RawObject("deployment_status", f"{scope}/{deployment_id}/{node}", item, scope))
            page.add("github_deployment_statuses", {
                "repo": scope, "deployment_id": deployment_id, "status_id": node,
                "state": item["state"], "created_at": _ts(item["created_at"]),
            })
            settled = settled or item["state"] in SETTLED_STATES
        return settled


def listing(repo: Repository, kind: type[T], path: str, params: dict[str, Any], page: int = 1,
            headers: dict[str, str] | None = None) -> PaginatedList[T]:
    """A REST list of the repo starting at `page` (1-based), following GitHub's Link headers from there."""
    start = {"page": page} if page > 1 else {}
    return PaginatedList(kind, repo.requester, f"{repo.url}/{path}", {**params, **start},  # type: ignore[arg-type]
                         headers=headers)


def head_cursor(seen: dict[str, Row], parents_of: set[str], horizon: dt.datetime) -> str | None:
    """The commits cursor after listing history: the newest listed commit that no listed commit has as parent."""
    heads = [row for sha, row in seen.items() if sha not in parents_of]
    if not heads:
        return None
    head = max(heads, key=lambda row: row["committed_at"] or horizon)
    return json.dumps({"head": head["sha"], "committed_at": _iso(head["committed_at"] or horizon)})


def _commit_row(scope: str, data: dict[str, Any]) -> Row:
    """A commit (from the commits or PR-commits list) as a typed row."""
    commit = data.get("commit") or {}
    author = commit.get("author") or {}
    committer = commit.get("committer") or {}
    return {
        "repo": scope,
        "sha": data["sha"],
        "author_login": _login(data.get("author")),
        "author_name": author.get("name"),
        "authored_at": _ts(author.get("date")),
        "committed_at": _ts(committer.get("date")),
        "message": commit.get("message"),
    }


def _pull_row(scope: str, data: dict[str, Any]) -> Row:
    """A pull request list item as a typed row."""
    user = data.get("user")
    head = data.get("head") or {}
    base = data.get("base") or {}
    return {
        "repo": scope,
        "number": int(data["number"]),
        "id": data.get("id"),
        "title": data.get("title"),
        "author_login": _login(user),
        "author_type": _user_type(user),
        "state": data.get("state"),
        "draft": bool(data.get("draft")),
        "created_at": _ts(data.get("created_at")),
        "updated_at": _ts(data.get("updated_at")),
        "closed_at": _ts(data.get("closed_at")),
        "merged_at": _ts(data.get("merged_at")),
        "merge_commit_sha": data.get("merge_commit_sha") if data.get("merged_at") else None,
        "head_ref": head.get("ref"),
        "head_sha": head.get("sha"),
        "base_ref": base.get("ref"),
        "html_url": data.get("html_url"),
    }


def _deployment_row(scope: str, data: dict[str, Any]) -> Row:
    """A deployment list item as a typed row."""
    return {
        "repo": scope,
        "deployment_id": int(data["id"]),
        "environment": data.get("environment"),
        "sha": data.get("sha"),
        "ref": data.get("ref"),
        "task": data.get("task"),
        "creator_login": _login(data.get("creator")),
        "created_at": _ts(data.get("created_at")),
        "updated_at": _ts(data.get("updated_at")),
    }
