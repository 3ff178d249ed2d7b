"""GitHub over GraphQL (the default transport): the same streams and rows as the REST connector for a
fraction of the requests.

Each round is one query per repo carrying the next page of every stream still open: default-branch history,
pull requests (50 a page, newest update first, each with its reviews, commits and flow events nested) and
deployments with their statuses. A nested list longer than its page is continued with its own cursor
through `node(id:)` before the page is yielded, so a stored pull request is always complete. Actions runs
and the rare commit comparison stay on REST (GraphQL has neither).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from github.Repository import Repository

from connectors.base import Cursors
from connectors.github import (
    OPEN_DEPLOYMENT_MAX_AGE,
    SETTLED_STATES,
    SOURCE,
    GitHubConnector,
    _deployment_row,
    _iso,
    _ts,
    head_cursor,
)
from connectors.github_budget import BudgetExhausted, RateBudget
from connectors.github_graphql_client import GraphQLClient, GraphQLFailure, graphql_url
from connectors.resume import checkpoint, open_walk
from models.records import Page, RawObject, Row

log = logging.getLogger(__name__)

PULLS_PER_PAGE = 50
# how the budget names the one token-less "token" when the config names none (public data only)
ANONYMOUS = "(no token)"
# The flow events the mapper reads (the REST connector's FLOW_EVENTS), by GraphQL type.
EVENT_NAMES = {"ReadyForReviewEvent": "ready_for_review", "ConvertToDraftEvent": "convert_to_draft",
               "ReviewRequestedEvent": "review_requested", "ReviewRequestRemovedEvent": "review_request_removed",
               "MergedEvent": "merged", "ClosedEvent": "closed", "ReopenedEvent": "reopened"}
ITEM_TYPES = ", ".join(re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper() for name in EVENT_NAMES)
# a bot's commits carry GitHub's noreply address; GraphQL gives no user for them, REST does
NOREPLY = re.compile(r"^(?:\d+\+)?(?P<login>[^@]+)@users\.noreply\.github\.com$", re.IGNORECASE)

ACTOR = "__typename login"
COMMIT = "oid message authoredDate committedDate author { name email user { login } }"
REVIEWS = f"pageInfo {{ hasNextPage endCursor }} nodes {{ fullDatabaseId state submittedAt commit {{ oid }} author {{ {ACTOR} }} }}"
COMMITS = f"pageInfo {{ hasNextPage endCursor }} nodes {{ commit {{ {COMMIT} }} }}"
EVENTS = ("pageInfo { hasNextPage endCursor } nodes { __typename "
          + " ".join(f"... on {name} {{ id createdAt actor {{ {ACTOR} }} }}" for name in EVENT_NAMES) + " }")
STATUSES = "pageInfo { hasNextPage endCursor } nodes { id state createdAt }"
# nested lists of a pull request or deployment: (field, first page size, selection)
NESTED = {
    "reviews": ("reviews", 20, REVIEWS),
    "commits": ("commits", 30, COMMITS),
    "timelineItems": ("timelineItems", 30, EVENTS),
    "statuses": ("statuses", 10, STATUSES),
}
PULL = ("id number fullDatabaseId title state isDraft createdAt updatedAt closedAt mergedAt url headRefName "
        f"headRefOid baseRefName mergeCommit {{ oid }} author {{ {ACTOR} }} "
        f"reviews(first: 20) {{ {REVIEWS} }} commits(first: 30) {{ {COMMITS} }} "
        f"timelineItems(first: 30, itemTypes: [{ITEM_TYPES}]) {{ {EVENTS} }}")
DEPLOYMENT = (f"id databaseId environment commitOid ref {{ name }} task createdAt updatedAt creator {{ {ACTOR} }} "
              f"statuses(first: 10) {{ {STATUSES} }}")
HISTORY = (f"pageInfo {{ hasNextPage endCursor }} nodes {{ {COMMIT} parents(first: 10) "
           "{ totalCount nodes { oid } } }")
PAGE_OF_HISTORY = "first: 100, after: $historyAfter, since: $since"
ROUND = f"""
query Round($owner: String!, $name: String!, $since: GitTimestamp, $tip: GitObjectID!,
            $headHistory: Boolean!, $tipHistory: Boolean!, $historyAfter: String,
            $pulls: Boolean!, $pullsAfter: String, $deployments: Boolean!, $deploymentsAfter: String) {{
  rateLimit {{ cost remaining resetAt limit }}
  repository(owner: $owner, name: $name) {{
    nameWithOwner url
    defaultBranchRef {{ name target {{ oid ... on Commit {{
      headHistory: history({PAGE_OF_HISTORY}) @include(if: $headHistory) {{ {HISTORY} }} }} }} }}
    object(oid: $tip) @include(if: $tipHistory) {{ ... on Commit {{ history({PAGE_OF_HISTORY}) {{ {HISTORY} }} }} }}
    pullRequests(first: {PULLS_PER_PAGE}, after: $pullsAfter, orderBy: {{field: UPDATED_AT, direction: DESC}})
      @include(if: $pulls) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {PULL} }} }}
    deployments(first: 50, after: $deploymentsAfter, orderBy: {{field: CREATED_AT, direction: DESC}})
      @include(if: $deployments) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {DEPLOYMENT} }} }}
  }}
}}"""
RATE = "rateLimit { cost remaining resetAt limit }"
# how many node(id:) continuations or re-polled deployments go in one query
BATCH = 20


def _login(actor: Mapping[str, Any] | None) -> str | None:
    """REST's login: a bot's GraphQL login is its app slug, REST adds `[bot]`."""
    if not actor or not actor.get("login"):
        return None
    return f"{actor['login']}[bot]" if actor.get("__typename") == "Bot" else actor["login"]


def _type(actor: Mapping[str, Any] | None) -> str | None:
    return actor.get("__typename") if actor else None


def _commit_login(author: Mapping[str, Any] | None) -> str | None:
    """The account of a commit author: the linked user, or the one named by a noreply address (bots)."""
    if not author:
        return None
    if author.get("user"):
        return author["user"].get("login")
    match = NOREPLY.match(author.get("email") or "")
    return match.group("login") if match else None


def _commit_row(scope: str, node: Mapping[str, Any]) -> Row:
    return {"repo": scope, "sha": node["oid"], "author_login": _commit_login(node.get("author")),
            "author_name": (node.get("author") or {}).get("name"), "authored_at": _ts(node.get("authoredDate")),
            "committed_at": _ts(node.get("committedDate")), "message": node.get("message")}


class GitHubGraphQLConnector(GitHubConnector):
    """The GitHub source over GraphQL; REST (PyGithub) only for Actions and commit comparisons."""

    def __init__(self, repos: Any, *, base_url: str, tokens: Mapping[str, str | None], horizon: dt.datetime,
                 timeout: float = 30.0, retries: int = 5, max_rate_limit_wait: float = 900.0,
                 **kwargs: Any) -> None:
        first = next(iter(tokens.values()), None) if tokens else None
        super().__init__(repos, base_url=base_url, token=first, horizon=horizon, timeout=timeout, retries=retries,
                         max_rate_limit_wait=max_rate_limit_wait, **kwargs)
        self.budget = RateBudget({env: token or "" for env, token in (tokens or {ANONYMOUS: None}).items()},
                                 max_wait=max_rate_limit_wait)
        self.client = GraphQLClient(graphql_url(base_url), self.budget, timeout=timeout, retries=retries)

    @property
    def requests_made(self) -> int:
        """REST requests of this thread plus every GraphQL POST."""
        return super().requests_made + self.client.requests_made

    @property
    def rate_limit_remaining(self) -> int | None:
        """GraphQL points left over all tokens (REST's core budget is hardly touched)."""
        remaining = self.budget.remaining("graphql")
        return remaining if remaining is not None else super().rate_limit_remaining

    def rate_budget(self) -> list[Row]:
        """Per token and resource, what GitHub last said is left (token variable names only)."""
        rows = self.budget.snapshot()
        remaining = GitHubConnector.rate_limit_remaining.fget(self)  # type: ignore[attr-defined]
        envs = [b.env for b in self.budget.tokens]
        if remaining is not None and envs:  # the REST clients (Actions, comparisons) send the first token
            limit = max(c.requester.rate_limiting[1] for c in self._clients)
            reset = max(c.requester.rate_limiting_resettime for c in self._clients)
            rows.append({"token_env": envs[0], "resource": "core", "remaining": remaining, "limit": limit,
                         "reset_at": dt.datetime.fromtimestamp(reset, dt.UTC) if reset else None})
        return rows

    def describe_error(self, exc: BaseException) -> str:
        """GraphQL failures are already one line."""
        if isinstance(exc, GraphQLFailure):
            return str(exc) if "NOT_FOUND" in exc.types else f"{exc} (while syncing {self._current})"
        if isinstance(exc, BudgetExhausted):
            return str(exc)
        return super().describe_error(exc)

    # -- streams ------------------------------------------------------------------------------------

    def pages(self, scope: str, cursors: Cursors) -> Iterator[Page]:
        """Rounds of one query until every stream is done, then the open deployments and Actions over REST."""
        self._enlist()
        self._current = scope
        owner, name = scope.split("/", 1)
        commits_done, commits_resume = open_walk(cursors.get((scope, "commits")), "graphql")
        commits_state = json.loads(commits_done) if commits_done else None
        pulls_done, pulls_resume = open_walk(cursors.get((scope, "pulls")), "graphql")
        deploys_done, deploys_resume = open_walk(cursors.get((scope, "deployments")), "graphql")
        deploy_state = json.loads(deploys_done) if deploys_done else {"max_id": 0, "open": [], "newest": {}}
        variables: dict[str, Any] = {"owner": owner, "name": name, "since": _iso(self._horizon), "tip": "0" * 40,
                                     "headHistory": commits_state is None and commits_resume is None,
                                     "tipHistory": False, "historyAfter": None, "pulls": True,
                                     "pullsAfter": pulls_resume["at"] if pulls_resume else None,
                                     "deployments": True,
                                     "deploymentsAfter": deploys_resume["at"] if deploys_resume else None}
        history = _History(scope, commits_done)
        if commits_resume is not None:  # an unfinished first walk of history goes on from its pinned tip
            history.head = commits_resume["head"]
            variables.update(tipHistory=True, tip=commits_resume["tip"], historyAfter=commits_resume["at"])
        pulls = _Pulls(_ts(pulls_done) or self._horizon, pulls_done, pulls_resume)
        deploys = _Deployments(deploy_state, self._horizon if deploys_done is None else None, deploys_done,
                               deploys_resume)
        first_round = True
        while variables["headHistory"] or variables["tipHistory"] or variables["pulls"] or variables["deployments"]:
            self._current = f"{scope} (GraphQL)"
            try:
                data = self.client.query(ROUND, variables, cost=3)
            except GraphQLFailure as exc:
                if exc.types == ("NOT_FOUND",):
                    raise GraphQLFailure(f"GitHub has no repository {scope} (NOT_FOUND, the GraphQL 404: deleted, "
                                         "renamed or not visible to the token)", exc.types) from None
                raise
            repo = data.get("repository")
            if repo is None:
                raise GraphQLFailure(f"GitHub GraphQL answered no repository for {scope}")
            branch = repo.get("defaultBranchRef")
            if first_round:
                first_round = False
                yield self._repo_page(scope, repo)
                if branch is None:  # an empty repository has no default branch yet
                    variables.update(headHistory=False)
                    history.empty = True
                elif commits_state is not None:
                    yield from self._commits_since(scope, branch, commits_state)
            if variables["headHistory"] or variables["tipHistory"]:
                target = (branch or {}).get("target") or {}
                connection = target.get("headHistory") if variables["headHistory"] else (repo.get("object") or {}).get("history")
                tip = target.get("oid") if variables["headHistory"] else variables["tip"]
                page, after = history.take(connection, self, tip, self._horizon)
                yield page
                variables.update(headHistory=False, tipHistory=after is not None, historyAfter=after, tip=tip)
            if variables["pulls"]:
                page, after = pulls.take(scope, repo.get("pullRequests"), self)
                if page.rows or page.cursor:
                    yield page
                variables.update(pulls=after is not None, pullsAfter=after)
            if variables["deployments"]:
                page, after = deploys.take(scope, repo.get("deployments"), self)
                if page.rows:
                    yield page
                variables.update(deployments=after is not None, deploymentsAfter=after)
        yield from self._repoll_deployments(scope, deploys)
        rest_repo = self._rest_repo(scope, branch["name"] if branch else "main")
        for stream, fetch in self._actions_streams():
            self._current = f"{stream} of {scope}"
            yield from fetch(rest_repo, scope, cursors.get((scope, stream)))

    def _rest_repo(self, scope: str, default_branch: str) -> Repository:
        """A lazy PyGithub repo that needs no request of its own (GraphQL already said its default branch)."""
        url = f"{self._gh.requester.base_url}/repos/{scope}"
        return Repository(self._gh.requester, {}, {"url": url, "full_name": scope, "name": scope.split("/")[1],
                                                   "default_branch": default_branch}, completed=False)

    @staticmethod
    def _repo_page(scope: str, repo: Mapping[str, Any]) -> Page:
        branch = repo.get("defaultBranchRef") or {}
        page = Page(SOURCE, scope, "repo")
        raw = {"nameWithOwner": repo.get("nameWithOwner"), "url": repo.get("url"), "defaultBranch": branch.get("name")}
        page.raw.append(RawObject("repo", scope, raw, scope))
        page.add("repos", {"repo": scope, "default_branch": branch.get("name"), "html_url": repo.get("url")})
        return page

    def _commits_since(self, scope: str, branch: Mapping[str, Any], state: dict[str, str]) -> Iterator[Page]:
        """A later sync: nothing when the branch still points at the stored head, else REST's comparison."""
        tip = (branch.get("target") or {}).get("oid")
        if tip == state.get("head"):
            return
        rest_repo = self._rest_repo(scope, branch["name"])
        self._current = f"commits of {scope}"
        yield from self._commit_pages(rest_repo, scope, json.dumps(state))

    def continue_nested(self, owner_id: str, field: str, after: str) -> list[Mapping[str, Any]]:
        """Every further node of one nested list (reviews, commits, timeline items, statuses) of one object."""
        name, _size, selection = NESTED[field]
        args = f"first: 100, after: {json.dumps(after)}"
        if field == "timelineItems":
            args += f", itemTypes: [{ITEM_TYPES}]"
        kind = "Deployment" if field == "statuses" else "PullRequest"
        nodes: list[Mapping[str, Any]] = []
        while after is not None:
            text = (f"query More {{ {RATE} node(id: {json.dumps(owner_id)}) {{ ... on {kind} {{ "
                    f"{name}({args}) {{ {selection} }} }} }} }}")
            data = self.client.query(text, cost=1)
            connection = (data.get("node") or {}).get(name)
            if connection is None:
                raise GraphQLFailure(f"GitHub GraphQL lost {kind} {owner_id} while reading its {name}")
            nodes += connection["nodes"]
            after = connection["pageInfo"]["endCursor"] if connection["pageInfo"]["hasNextPage"] else None
            args = f"first: 100, after: {json.dumps(after)}" + (f", itemTypes: [{ITEM_TYPES}]"
                                                                 if field == "timelineItems" else "")
        return nodes

    def parents_of(self, sha: str, scope: str) -> list[str]:
        """Every parent of a commit with more than ten (an octopus merge)."""
        owner, name = scope.split("/", 1)
        text = (f"query Parents($owner: String!, $name: String!, $oid: GitObjectID!) {{ {RATE} repository("
                "owner: $owner, name: $name) { object(oid: $oid) { ... on Commit { parents(first: 100) "
                "{ nodes { oid } } } } } }")
        data = self.client.query(text, {"owner": owner, "name": name, "oid": sha})
        return [p["oid"] for p in data["repository"]["object"]["parents"]["nodes"]]

    def _repoll_deployments(self, scope: str, deploys: _Deployments) -> Iterator[Page]:
        """Deployments that had not settled: their statuses again, batched through `nodes(ids:)`."""
        state = deploys.state
        old_max = int(state["max_id"])
        still_open: list[list[Any]] = []
        due = [entry for entry in deploys.open_entries() if entry[0] <= old_max]
        fresh = [entry for entry in deploys.open_entries() if entry[0] > old_max]
        for start in range(0, len(due), BATCH):
            batch = due[start:start + BATCH]
            with_ids = [e for e in batch if len(e) > 3 and e[3]]
            page = Page(SOURCE, scope, "deployments")
            settled_ids: set[int] = set()
            if with_ids:
                ids = ", ".join(json.dumps(e[3]) for e in with_ids)
                data = self.client.query(f"query Open {{ {RATE} nodes(ids: [{ids}]) {{ ... on Deployment {{ "
                                         f"{DEPLOYMENT} }} }} }}", cost=1,
                                         tolerate=frozenset({"NOT_FOUND"}))
                for node in data.get("nodes") or []:
                    if node and deploys.add(scope, page, node, self):
                        settled_ids.add(int(node["databaseId"]))
            for entry in batch:
                if len(entry) <= 3 or not entry[3]:  # stored by the REST transport: no node id, ask REST
                    settled = self._rest_repoll(scope, entry[0], page)
                    if settled:
                        settled_ids.add(entry[0])
            if page.rows:
                yield page
            for entry in batch:
                if entry[0] not in settled_ids and deploys.recent(entry):
                    still_open.append(entry)
        still_open += [entry for entry in fresh if deploys.recent(entry)]
        new_state = {"max_id": deploys.new_max, "open": sorted(still_open),
                     "newest": dict(sorted(deploys.newest.items()))}
        if new_state != state or deploys.resumed:
            yield Page(SOURCE, scope, "deployments", cursor=json.dumps(new_state))

    def _rest_repoll(self, scope: str, deployment_id: int, page: Page) -> bool:
        """One open deployment over REST (a cursor written by the REST transport has no node ids)."""
        rest_repo = self._rest_repo(scope, "main")
        deployment = rest_repo.get_deployment(deployment_id)
        data = deployment.raw_data
        page.raw.append(RawObject("deployment", f"{scope}/{deployment_id}", data, scope))
        page.add("github_deployments", _deployment_row(scope, data))
        return self._add_statuses(page, scope, deployment_id, deployment.get_statuses())


class _History:
    """First-sync history pages from a pinned tip, each a checkpoint; the last one ends in the head cursor."""

    def __init__(self, scope: str, done: str | None) -> None:
        self.scope = scope
        self.done = done
        self.seen: dict[str, Row] = {}
        self.parents: set[str] = set()
        self.head: str | None = None  # the commits cursor the walk ends with (pinned by its first page)
        self.empty = False

    def take(self, connection: Mapping[str, Any] | None, connector: GitHubGraphQLConnector, tip: str,
             horizon: dt.datetime) -> tuple[Page, str | None]:
        page = Page(SOURCE, self.scope, "commits")
        if connection is None:
            return page, None
        for node in connection["nodes"]:
            row = _commit_row(self.scope, node)
            self.seen[row["sha"]] = row
            page.add("commits", row)
            parents = node["parents"]
            shas = [p["oid"] for p in parents["nodes"]]
            if parents["totalCount"] > len(shas):
                shas = connector.parents_of(row["sha"], self.scope)
            for index, sha in enumerate(shas):
                self.parents.add(sha)
                page.add("commit_parents", {"repo": self.scope, "sha": row["sha"], "parent_index": index,
                                            "parent_sha": sha})
            page.raw.append(RawObject("commit", f"{self.scope}@{row['sha']}", node, self.scope))
        self.head = self.head or head_cursor(self.seen, self.parents, horizon)
        info = connection["pageInfo"]
        after = info["endCursor"] if info["hasNextPage"] else None
        if after is not None and self.head is not None:
            page.cursor = checkpoint(self.done, "graphql", after, tip=tip, head=self.head)
        elif after is None:
            page.cursor = self.head
        return page, after


class _Pulls:
    """Pull request pages down to the stored cursor, each PR complete before it is yielded."""

    def __init__(self, stop_at: dt.datetime, done: str | None, resume: Mapping[str, Any] | None) -> None:
        self.stop_at = stop_at
        self.done = done
        self.newest: dt.datetime | None = _ts(resume["newest"]) if resume else None

    def take(self, scope: str, connection: Mapping[str, Any] | None, connector: GitHubGraphQLConnector
             ) -> tuple[Page, str | None]:
        """One page; its cursor is a checkpoint while the walk goes on, the newest update once it ends."""
        page = Page(SOURCE, scope, "pulls")
        after: str | None = None
        if connection is not None:
            info = connection["pageInfo"]
            after = info["endCursor"] if info["hasNextPage"] else None
            for node in connection["nodes"]:
                updated = _ts(node["updatedAt"])
                if updated is None or updated < self.stop_at:
                    after = None
                    break
                self.newest = updated if self.newest is None else max(self.newest, updated)
                self._add(scope, page, node, connector)
        if self.newest is not None:
            page.cursor = (_iso(self.newest) if after is None
                           else checkpoint(self.done, "graphql", after, newest=_iso(self.newest)))
        return page, after

    @staticmethod
    def _nodes(node: Mapping[str, Any], field: str, connector: GitHubGraphQLConnector) -> list[Mapping[str, Any]]:
        connection = node[field]
        nodes = list(connection["nodes"])
        if connection["pageInfo"]["hasNextPage"]:
            nodes += connector.continue_nested(node["id"], field, connection["pageInfo"]["endCursor"])
        return nodes

    def _add(self, scope: str, page: Page, node: Mapping[str, Any], connector: GitHubGraphQLConnector) -> None:
        number = int(node["number"])
        page.raw.append(RawObject("pull", f"{scope}#{number}", node, scope))
        author = node.get("author")
        merged = node.get("mergedAt")
        page.add("pull_requests", {
            "repo": scope, "number": number, "id": int(node["fullDatabaseId"]), "title": node.get("title"),
            "author_login": _login(author), "author_type": _type(author),
            "state": "open" if node["state"] == "OPEN" else "closed", "draft": bool(node.get("isDraft")),
            "created_at": _ts(node.get("createdAt")), "updated_at": _ts(node.get("updatedAt")),
            "closed_at": _ts(node.get("closedAt")), "merged_at": _ts(merged),
            "merge_commit_sha": (node.get("mergeCommit") or {}).get("oid") if merged else None,
            "head_ref": node.get("headRefName"), "head_sha": node.get("headRefOid"),
            "base_ref": node.get("baseRefName"), "html_url": node.get("url")})
        for review in self._nodes(node, "reviews", connector):
            review_id = int(review["fullDatabaseId"])
            page.raw.append(RawObject("review", f"{scope}#{number}/{review_id}", review, scope))
            page.add("pr_reviews", {
                "repo": scope, "pr_number": number, "review_id": review_id,
                "reviewer_login": _login(review.get("author")), "reviewer_type": _type(review.get("author")),
                "state": review.get("state"), "submitted_at": _ts(review.get("submittedAt")),
                "commit_id": (review.get("commit") or {}).get("oid")})
        for item in self._nodes(node, "commits", connector):
            commit = item["commit"]
            page.raw.append(RawObject("pr_commit", f"{scope}#{number}@{commit['oid']}", commit, scope))
            row = _commit_row(scope, commit)
            del row["author_name"]
            page.add("pr_commits", {**row, "pr_number": number})
        for event in self._nodes(node, "timelineItems", connector):
            kind = EVENT_NAMES.get(event.get("__typename", ""))
            if kind is None or not event.get("id"):
                continue
            page.raw.append(RawObject("pr_event", f"{scope}#{number}/{event['id']}", event, scope))
            page.add("pr_events", {
                "repo": scope, "pr_number": number, "event_id": event["id"], "event": kind,
                "actor_login": _login(event.get("actor")), "actor_type": _type(event.get("actor")),
                "created_at": _ts(event.get("createdAt"))})


class _Deployments:
    """New deployments (ids above the cursor) newest first, and which of them are still unsettled."""

    def __init__(self, state: dict[str, Any], horizon: dt.datetime | None, done: str | None,
                 resume: Mapping[str, Any] | None) -> None:
        self.state = state
        self.done = done
        self.resumed = resume is not None
        self.max_id = int(state["max_id"])
        self.new_max = self.max_id
        self.horizon = horizon
        self.newest: dict[str, str] = dict(state["newest"])
        # [id, created, environment, node id]; node id is missing in cursors the REST transport wrote
        self.open: dict[int, list[Any]] = {int(e[0]): [int(e[0]), *e[1:]] for e in state["open"]}
        if resume is not None:  # an unfinished walk: what it had found so far
            self.open.update((int(e[0]), [int(e[0]), *e[1:]]) for e in resume["open"])
            self.newest, self.new_max = dict(resume["newest"]), int(resume["new_max"])

    def take(self, scope: str, connection: Mapping[str, Any] | None, connector: GitHubGraphQLConnector
             ) -> tuple[Page, str | None]:
        """New deployments of one page; the page checkpoints the walk while it goes on."""
        page = Page(SOURCE, scope, "deployments")
        if connection is None:
            return page, None
        for node in connection["nodes"]:
            deployment_id, created = int(node["databaseId"]), node["createdAt"]
            if deployment_id <= self.max_id or (self.horizon is not None and _ts(created) < self.horizon):
                return page, None
            env = node.get("environment") or ""
            self.new_max = max(self.new_max, deployment_id)
            # createdAt has the text REST gives created_at (...Z), so the cursor reads the same either way
            self.newest[env] = max(self.newest.get(env, created), created)
            if not self.add(scope, page, node, connector):
                self.open[deployment_id] = [deployment_id, created, env, node["id"]]
        info = connection["pageInfo"]
        after = info["endCursor"] if info["hasNextPage"] else None
        if after is not None and page.rows:
            fresh = [entry for entry in self.open_entries() if entry[0] > self.max_id]
            page.cursor = checkpoint(self.done, "graphql", after, new_max=self.new_max, open=fresh,
                                     newest=dict(sorted(self.newest.items())))
        return page, after

    def add(self, scope: str, page: Page, node: Mapping[str, Any], connector: GitHubGraphQLConnector) -> bool:
        """A deployment and all its statuses as rows; True when one of them settles it."""
        deployment_id = int(node["databaseId"])
        page.raw.append(RawObject("deployment", f"{scope}/{deployment_id}", node, scope))
        page.add("github_deployments", {
            "repo": scope, "deployment_id": deployment_id, "environment": node.get("environment"),
            "sha": node.get("commitOid"), "ref": (node.get("ref") or {}).get("name") or node.get("commitOid"),
            "task": node.get("task"), "creator_login": _login(node.get("creator")),
            "created_at": _ts(node.get("createdAt")), "updated_at": _ts(node.get("updatedAt"))})
        statuses = node["statuses"] or {"nodes": [], "pageInfo": {"hasNextPage": False}}
        items = list(statuses["nodes"])
        if statuses["pageInfo"]["hasNextPage"]:
            items += connector.continue_nested(node["id"], "statuses", statuses["pageInfo"]["endCursor"])
        settled = False
        for status in items:
            state = str(status["state"]).lower()
            page.raw.append(RawObject("deployment_status", f"{scope}/{deployment_id}/{status['id']}", status, scope))
            page.add("github_deployment_statuses", {
                "repo": scope, "deployment_id": deployment_id, "status_id": status["id"], "state": state,
                "created_at": _ts(status["createdAt"])})
            settled = settled or state in SETTLED_STATES
        return settled

    def open_entries(self) -> list[list[Any]]:
        return [self.open[key] for key in sorted(self.open)]

    def recent(self, entry: list[Any]) -> bool:
        """Still worth re-polling: not left behind for a week by a newer deployment to its environment."""
        created, env = entry[1], entry[2]
        return _ts(self.newest.get(env, created)) - _ts(created) < OPEN_DEPLOYMENT_MAX_AGE  # type: ignore[operator]

