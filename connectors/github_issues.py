"""GitHub issues as incidents (PyGithub): issues of the [github] repos that carry one of the configured
labels, with created, closed, labels, title and body. Pull requests in the issues list are skipped.
Fetches and yields pages only; connection, retries and error lines are those of the GitHub connector."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from github.Repository import Repository

from connectors.base import read_secret
from connectors.github import GitHubConnector, _batches, _payload, _ts
from models.records import Page, RawObject, Row

if TYPE_CHECKING:
    from collector.config import Config

SOURCE = "github_issues"
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
        **kwargs: Any,
    ) -> None:
        super().__init__(repos, base_url=base_url, token=token, horizon=horizon, **kwargs)
        self._labels = tuple(dict.fromkeys(labels))

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
    token = read_secret(names[0], "github.token_envs" if gh.token_envs else "github.token_env") if names else None
    return GitHubIssuesConnector(
        gh.repos,
        labels=incidents.github.labels,
        base_url=gh.base_url,
        token=token,
        horizon=gh.first_sync_horizon(),
        timeout=gh.timeout,
        retries=gh.retries,
        max_rate_limit_wait=gh.max_rate_limit_wait,
    )
