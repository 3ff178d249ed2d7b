"""GitHub issues as incidents (GraphQL by default, PyGithub over REST): issues of the [github] repos that
carry one of the configured labels, with created, closed, labels, title and body. Pull requests, which the
REST issues list includes, are skipped.
Fetches and yields pages only; connection, retries and error lines are those of the GitHub connector."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from github.Repository import Repository

from connectors.base import Cursors, read_secret
from connectors.github import GitHubConnector, _batches, _payload, _ts
from connectors.github_budget import BudgetExhausted, RateBudget
from connectors.github_graphql import ANONYMOUS
from connectors.github_graphql_client import GraphQLClient, GraphQLFailure, graphql_url
from models.records import Page, RawObject, Row

if TYPE_CHECKING:
    from collector.config import Config

SOURCE = "github_issues"
# labelled issues, oldest update first; GraphQL's issues are never pull requests
ISSUES_QUERY = """
query Issues($owner: String!, $name: String!, $labels: [String!], $since: DateTime, $after: String) {
  rateLimit { cost remaining resetAt limit }
  repository(owner: $owner, name: $name) {
    issues(first: 100, after: $after, labels: $labels, filterBy: {since: $since},
           orderBy: {field: UPDATED_AT, direction: ASC}) {
      pageInfo { hasNextPage endCursor }
      nodes { number title body url state createdAt updatedAt closedAt labels(first: 20) { nodes { name } } }
    }
  }
}"""
INCIDENT_SOURCE = "github"


class GitHubIssuesConnector(GitHubConnector):
    """Collects labelled issues of GitHub repos; one stream (and cursor) per label and repo.

    GitHub's `labels` filter means "all of these labels", so each configured label is listed on its own
    and an issue with several of them is simply stored again (the upsert absorbs it).
    """

    source = SOURCE

    def __init__(
        self,
        repos: Iterable[str],
        *,
        labels: Iterable[str],
        base_url: str,
        token: str | None,
        horizon: dt.datetime,
        graphql: GraphQLClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(repos, base_url=base_url, token=token, horizon=horizon, **kwargs)
        self._labels = tuple(dict.fromkeys(labels))
        self._graphql = graphql  # when set, issues come over GraphQL, which (unlike REST) lists no PRs

    @property
    def requests_made(self) -> int:
        """REST requests of this connector's threads, plus the GraphQL POSTs."""
        return super().requests_made + (self._graphql.requests_made if self._graphql else 0)

    def describe_error(self, exc: BaseException) -> str:
        """GraphQL failures are already one line."""
        if isinstance(exc, GraphQLFailure | BudgetExhausted):
            return str(exc)
        return super().describe_error(exc)

    def pages(self, scope: str, cursors: Cursors) -> Iterator[Page]:
        """Every label's stream of one repo: over GraphQL when configured, else REST."""
        if self._graphql is None:
            yield from super().pages(scope, cursors)
            return
        self._enlist()
        for label in self._labels:
            self._current = f"incidents:{label} of {scope}"
            yield from self._graphql_issue_pages(label, scope, cursors.get((scope, f"incidents:{label}")))

    def _graphql_issue_pages(self, label: str, scope: str, cursor: str | None) -> Iterator[Page]:
        """Issues with the label updated since the cursor, oldest update first, 100 a query."""
        assert self._graphql is not None
        stream = f"incidents:{label}"
        since = _ts(cursor) if cursor else self._horizon
        owner, name = scope.split("/", 1)
        variables: dict[str, Any] = {"owner": owner, "name": name, "labels": [label],
                                     "since": since.isoformat() if since else None, "after": None}
        newest = since
        while True:
            data = self._graphql.query(ISSUES_QUERY, variables)
            repo = data.get("repository")
            if repo is None:
                raise GraphQLFailure(f"GitHub GraphQL answered no repository for {scope}")
            connection = repo["issues"]
            page = Page(SOURCE, scope, stream)
            for node in connection["nodes"]:
                rest_shaped = {"number": node["number"], "title": node.get("title"), "body": node.get("body"),
                               "html_url": node.get("url"), "state": str(node["state"]).lower(),
                               "created_at": node["createdAt"], "updated_at": node.get("updatedAt"),
                               "closed_at": node.get("closedAt"),
                               "labels": [{"name": n["name"]} for n in node["labels"]["nodes"]]}
                updated = _ts(node.get("updatedAt"))
                if updated is not None and (newest is None or updated > newest):
                    newest = updated
                record, changes = issue_rows(scope, rest_shaped)
                page.raw.append(RawObject("issue", record["incident_id"], node, scope))
                page.add("incident_records", record)
                for change in changes:
                    page.add("incident_status_changes", change)
            if newest is not None and newest != since:
                page.cursor = newest.isoformat()
            if page.rows or page.cursor:
                yield page
            info = connection["pageInfo"]
            if not info["hasNextPage"]:
                return
            variables["after"] = info["endCursor"]

    def _streams(self) -> list[tuple[str, Callable[[Repository, str, str | None], Iterator[Page]]]]:
        """One stream per configured label, e.g. 'incidents:incident'."""
        return [(f"incidents:{label}", functools.partial(self._issue_pages, label)) for label in self._labels]

    def _issue_pages(self, label: str, repo: Repository, scope: str, cursor: str | None) -> Iterator[Page]:
        """Issues with the label updated since the cursor, oldest update first; each page moves the cursor."""
        stream = f"incidents:{label}"
        since = _ts(cursor) if cursor else self._horizon
        newest = since
        issues = repo.get_issues(state="all", labels=[label], since=since, sort="updated", direction="asc")
        for batch in _batches(issues):
            page = Page(SOURCE, scope, stream)
            for issue in batch:
                data = _payload(issue)
                updated = _ts(data.get("updated_at"))
                if updated is not None and (newest is None or updated > newest):
                    newest = updated
                if data.get("pull_request") is not None:
                    continue  # the issues API lists pull requests too
                record, changes = issue_rows(scope, data)
                page.raw.append(RawObject("issue", record["incident_id"], data, scope))
                page.add("incident_records", record)
                for change in changes:
                    page.add("incident_status_changes", change)
            if newest is not None and newest != since:
                page.cursor = newest.isoformat()
            if page.rows or page.cursor:
                yield page


def issue_rows(repo: str, data: dict[str, Any]) -> tuple[Row, list[Row]]:
    """One issue as an incident_records row and its opened / closed status changes."""
    incident_id = f"{repo}#{int(data['number'])}"
    created = _ts(data["created_at"])
    closed = _ts(data.get("closed_at")) if data.get("state") == "closed" else None
    changes: list[Row] = [
        {
            "source": INCIDENT_SOURCE,
            "incident_id": incident_id,
            "change_id": "opened",
            "changed_at": created,
            "from_status": None,
            "to_status": "open",
            "from_category": None,
            "to_category": "new",
        }
    ]
    if closed is not None:
        changes.append(
            {
                "source": INCIDENT_SOURCE,
                "incident_id": incident_id,
                "change_id": "closed",
                "changed_at": closed,
                "from_status": "open",
                "to_status": "closed",
                "from_category": "new",
                "to_category": "done",
            }
        )
    record = {
        "source": INCIDENT_SOURCE,
        "incident_id": incident_id,
        "repo": repo,
        "title": data.get("title"),
        "body": data.get("body"),
        "url": data.get("html_url"),
        "created_at": created,
        "acknowledged_at": None,
        "resolved_at": closed,
        "updated_at": _ts(data.get("updated_at")),
        "status": data.get("state"),
        "status_category": "done" if closed is not None else "new",
        "service": None,
        "components": json.dumps([]),
        "urgency": None,
        "labels": json.dumps(
            [label["name"] for label in data.get("labels") or [] if isinstance(label, dict)]
        ),
        "refs": json.dumps([]),
    }
    return record, changes


def make_github_issues(config: Config) -> GitHubIssuesConnector | None:
    """The GitHub issues connector when the config has [incidents.github] (and so a [github] section)."""
    incidents = config.incidents
    gh = config.github
    if incidents is None or incidents.github is None or gh is None:
        return None
    names = gh.token_names()
    key = "github.token_envs" if gh.token_envs else "github.token_env"
    tokens = {name: read_secret(name, key) or "" for name in names}
    token = next(iter(tokens.values()), None)
    graphql = None
    if gh.api == "graphql":
        budget = RateBudget(tokens or {ANONYMOUS: ""}, max_wait=gh.max_rate_limit_wait)
        graphql = GraphQLClient(graphql_url(gh.base_url), budget, timeout=gh.timeout, retries=gh.retries)
    return GitHubIssuesConnector(
        gh.repos,
        graphql=graphql,
        labels=incidents.github.labels,
        base_url=gh.base_url,
        token=token,
        horizon=gh.first_sync_horizon(),
        timeout=gh.timeout,
        retries=gh.retries,
        max_rate_limit_wait=gh.max_rate_limit_wait,
    )
