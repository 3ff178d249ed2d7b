"""Jira source (Cloud or Server/Data Center): incident tickets found by a JQL search, with their status
history from the changelog. Status names are localised and customised, so only status ids and their
`statusCategory.key` (new / indeterminate / done) are interpreted. Fetches and yields pages only."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from connectors.base import Cursors, read_secret
from connectors.http import (
    RetryingSession,
    describe_request_error,
    error_summary,
    json_answer,
    retrying_session,
    wrong_shape,
)
from models.records import Page, RawObject, Row

if TYPE_CHECKING:
    from collector.config import Config

log = logging.getLogger(__name__)

SOURCE = "jira"
STREAM = "issues"
PAGE_SIZE = 100
FIELDS = (
    "summary",
    "description",
    "status",
    "created",
    "updated",
    "resolutiondate",
    "components",
    "labels",
    "priority",
    "project",
)
# JQL reads a date literal in the Jira user's own time zone, which the API does not tell for sure: an
# incremental search starts one day before the cursor, and the upserts absorb what is read again.
OVERLAP = dt.timedelta(days=1)
_ORDER_BY = re.compile(r"\border\s+by\b.*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class SearchApi:
    """One flavour of Jira's issue search: its path, how it pages, where the status list lives."""

    name: str
    path: str
    paging: str  # 'token' (nextPageToken, Cloud's enhanced search) or 'offset' (startAt / maxResults / total)
    statuses: str


# Jira Cloud removed /rest/api/{2,3}/search in 2025 (410 Gone, CHANGE-2046); its replacement pages by token.
# Server and Data Center keep the classic search. A Cloud site without the new endpoint (404) gets the old one.
APIS: dict[str, SearchApi] = {
    "cloud": SearchApi("cloud", "/rest/api/3/search/jql", "token", "/rest/api/3/status"),
    "cloud-classic": SearchApi("cloud-classic", "/rest/api/3/search", "offset", "/rest/api/3/status"),
    "server": SearchApi("server", "/rest/api/2/search", "offset", "/rest/api/2/status"),
}
SERVER_INFO = "/rest/api/2/serverInfo"


def _ts(value: str | None) -> dt.datetime | None:
    """Parse Jira's timestamps ('2026-03-02T10:15:00.000+0100') as aware UTC datetimes."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _adf_text(node: Any) -> str:
    """Plain text of an Atlassian Document Format node (API v3 descriptions), blocks on their own lines."""
    if isinstance(node, list):
        return "".join(_adf_text(child) for child in node)
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text") or "")
    if node.get("type") == "hardBreak":
        return "\n"
    inner = _adf_text(node.get("content") or [])
    block = node.get("type") in ("paragraph", "heading", "listItem", "codeBlock", "blockquote", "rule")
    return inner + "\n" if block else inner


def jql_since(jql: str, since: dt.datetime | None) -> str:
    """The configured JQL (its own ORDER BY dropped), restricted to updates since `since`, oldest first."""
    base = _ORDER_BY.sub("", jql).strip()
    clauses = [f"({base})"] if base else []
    if since is not None:
        clauses.append(f'updated >= "{(since - OVERLAP).astimezone(dt.UTC):%Y/%m/%d %H:%M}"')
    return f"{' AND '.join(clauses)} ORDER BY updated ASC".strip()


class JiraConnector:
    """Collects the incident tickets one JQL finds on one Jira site."""

    source = SOURCE

    def __init__(
        self,
        url: str,
        *,
        jql: str,
        user: str | None = None,
        token: str | None = None,
        horizon: dt.datetime | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        page_size: int = PAGE_SIZE,
        backoff: float = 0.5,
        ref_fields: Iterable[str] = (),
    ) -> None:
        self._url = url.rstrip("/")
        self._jql = jql
        # extra fields (e.g. a custom field holding the deployed version or SHA) searched for references
        self._ref_fields = tuple(ref_fields)
        self._horizon = horizon
        self._page_size = page_size
        headers = {"Authorization": f"Bearer {token}"} if token and not user else None
        self._session: RetryingSession = retrying_session(
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers=headers,
            auth=(user, token) if user and token else None,
        )
        self._api: SearchApi | None = None
        self._current = "the search"

    # -- Connector protocol -------------------------------------------------------------------------

    def scopes(self) -> list[str]:
        """One scope: the configured JQL (a changed JQL starts a fresh cursor)."""
        return [self._jql]

    @property
    def requests_made(self) -> int:
        """HTTP requests sent, retries included."""
        return self._session.requests_made

    @property
    def rate_limit_remaining(self) -> int | None:
        """Jira publishes no request budget to count down."""
        return None

    def describe_error(self, exc: BaseException) -> str:
        """One line naming the cause, never containing the credentials."""
        if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
            response = exc.response
            if response.status_code == 400 and "/search" in response.url:
                return f"Jira at {self._url} rejected the JQL {self._jql!r}: {error_summary(response)}"
            if response.status_code == 410:
                return f"Jira at {self._url} no longer offers {self._current} (410 Gone): {error_summary(response)}"
        return (
            describe_request_error(exc, "Jira", self._url, self._current)
            or f"{type(exc).__name__} for {self._current}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )

    def pages(self, scope: str, cursors: Cursors) -> Iterator[Page]:
        """Issues updated since the cursor, oldest update first; each page advances the cursor."""
        api = self._search_api()
        categories = self._status_categories(api)
        cursor = cursors.get((scope, STREAM))
        since = _ts(cursor) if cursor else self._horizon
        jql = jql_since(scope, since)
        newest = since
        for issues in self._search(jql):
            page = Page(SOURCE, scope, STREAM)
            for issue in issues:
                record, changes = self._issue_rows(issue, categories)
                page.raw.append(RawObject("issue", record["incident_id"], issue, scope))
                page.add("incident_records", record)
                for change in changes:
                    page.add("incident_status_changes", change)
                updated = record["updated_at"]
                if updated is not None and (newest is None or updated > newest):
                    newest = updated
            if newest is not None and (cursor is None or newest.isoformat() != cursor):
                page.cursor = newest.isoformat()
            if page.rows or page.cursor:
                yield page

    # -- requests -----------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None, expect: type = dict) -> Any:
        """GET a JSON answer of the `expect` shape: HTTPError on an error status, MalformedAnswer on a body
        that is no such JSON (an HTML login page, a cut body, another shape)."""
        self._current = path
        response = self._session.get(self._url + path, params=params)
        response.raise_for_status()
        return json_answer(response, "Jira", expect)

    def _issues(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The issues of a search answer, which must be a list of objects."""
        issues = body.get("issues")
        if not isinstance(issues, list) or not all(isinstance(i, dict) for i in issues):
            raise wrong_shape("Jira", self._current, "no 'issues' list of objects in the search answer")
        return issues

    def _issue_rows(self, issue: dict[str, Any], categories: dict[str, str]) -> tuple[Row, list[Row]]:
        """issue_rows, with an issue that lacks what every Jira issue has named in one line."""
        try:
            return issue_rows(issue, categories, self._url, self._ref_fields)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"issue {issue.get('key', '(no key)')}: {type(exc).__name__}: {exc}"
            raise wrong_shape("Jira", self._current, what) from None

    def _search_api(self) -> SearchApi:
        """Cloud or Server/Data Center, from serverInfo's deploymentType (asked once per connector)."""
        if self._api is None:
            info = self._get(SERVER_INFO)
            kind = "cloud" if str(info.get("deploymentType", "")).lower() == "cloud" else "server"
            self._api = APIS[kind]
            log.debug(
                "jira %s: %s %s, searching with %s",
                self._url,
                info.get("deploymentType"),
                info.get("version"),
                self._api.path,
            )
        return self._api

    def _status_categories(self, api: SearchApi) -> dict[str, str]:
        """Status id -> statusCategory.key for every status of the site (names are never compared)."""
        statuses = self._get(api.statuses, expect=list)
        try:
            return {
                str(s["id"]): str((s.get("statusCategory") or {}).get("key") or "undefined") for s in statuses
            }
        except (KeyError, TypeError, AttributeError):
            raise wrong_shape("Jira", api.statuses, "a status without an id") from None

    def _search(self, jql: str) -> Iterator[list[dict[str, Any]]]:
        """The search's pages of issues, with changelogs."""
        assert self._api is not None
        params: dict[str, Any] = {
            "jql": jql,
            "fields": ",".join((*FIELDS, *self._ref_fields)),
            "expand": "changelog",
            "maxResults": self._page_size,
        }
        if self._api.paging == "token":
            try:
                yield from self._token_pages(params)
                return
            except requests.exceptions.HTTPError as exc:
                if exc.response is None or exc.response.status_code != 404:
                    raise
                log.info("jira %s: no enhanced search (404); using %s", self._url, APIS["cloud-classic"].path)
                self._api = APIS["cloud-classic"]
        yield from self._offset_pages(params)

    def _token_pages(self, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Cloud's enhanced search: follow nextPageToken until isLast."""
        assert self._api is not None
        token: str | None = None
        while True:
            body = self._get(self._api.path, {**params, **({"nextPageToken": token} if token else {})})
            issues = self._issues(body)
            yield issues
            token = body.get("nextPageToken")
            if body.get("isLast", token is None) or not token or not issues:
                return

    def _offset_pages(self, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Classic search: startAt / maxResults until total is reached (the server may shrink a page)."""
        assert self._api is not None
        start = 0
        while True:
            body = self._get(self._api.path, {**params, "startAt": start})
            issues = self._issues(body)
            yield issues
            start += len(issues)
            if not issues or start >= int(body.get("total") or 0):
                return


def _field_text(value: Any) -> str:
    """A field's value as text: strings as they are, option and version objects by value or name, lists joined."""
    if isinstance(value, list):
        return " ".join(_field_text(v) for v in value)
    if isinstance(value, dict):
        if value.get("type") == "doc":
            return _adf_text(value)
        return str(value.get("value") or value.get("name") or "")
    return "" if value is None else str(value)


def issue_rows(
    issue: dict[str, Any], categories: dict[str, str], site: str, ref_fields: Iterable[str] = ()
) -> tuple[Row, list[Row]]:
    """One issue as an incident_records row and its status changes (categories by status id)."""
    key = str(issue["key"])
    fields = issue.get("fields") or {}
    status = fields.get("status") or {}
    category = (status.get("statusCategory") or {}).get("key") or categories.get(str(status.get("id")))
    changes: list[Row] = []
    histories = sorted(
        (issue.get("changelog") or {}).get("histories") or [],
        key=lambda h: (_ts(h.get("created")) or dt.datetime.min.replace(tzinfo=dt.UTC), str(h.get("id"))),
    )
    for history in histories:
        for index, item in enumerate(history.get("items") or []):
            if (item.get("fieldId") or item.get("field")) != "status":
                continue
            changes.append(
                {
                    "source": SOURCE,
                    "incident_id": key,
                    "change_id": f"{history.get('id')}/{index}",
                    "changed_at": _ts(history["created"]),
                    "from_status": item.get("fromString"),
                    "to_status": item.get("toString"),
                    "from_category": categories.get(str(item.get("from"))),
                    "to_category": categories.get(str(item.get("to"))),
                }
            )
    description = fields.get("description")
    body = _adf_text(description).strip() if isinstance(description, dict | list) else description
    resolved = _ts(fields.get("resolutiondate"))
    if category == "done" and resolved is None:
        # workflows without a resolution field: resolved when it last entered a 'done' status
        resolved = max((c["changed_at"] for c in changes if c["to_category"] == "done"), default=None)
    acknowledged = min(
        (c["changed_at"] for c in changes if c["to_category"] == "indeterminate"), default=None
    )
    record = {
        "source": SOURCE,
        "incident_id": key,
        "repo": None,
        "title": fields.get("summary"),
        "body": body,
        "url": f"{site}/browse/{key}",
        "created_at": _ts(fields["created"]),
        "acknowledged_at": acknowledged,
        "resolved_at": resolved if category == "done" else None,
        "updated_at": _ts(fields.get("updated")),
        "status": status.get("name"),
        "status_category": category,
        "service": (fields.get("project") or {}).get("key"),
        "components": json.dumps([c.get("name") for c in fields.get("components") or [] if c.get("name")]),
        "urgency": (fields.get("priority") or {}).get("name"),
        "labels": json.dumps(list(fields.get("labels") or [])),
        "refs": json.dumps([text for name in ref_fields if (text := _field_text(fields.get(name)).strip())]),
    }
    return record, changes


def make_jira(config: Config) -> JiraConnector | None:
    """The Jira connector when the config has [incidents.jira]."""
    incidents = config.incidents
    if incidents is None or incidents.jira is None:
        return None
    jira = incidents.jira
    horizon = (
        config.github.first_sync_horizon()
        if config.github is not None
        else (dt.datetime.now(dt.UTC) - dt.timedelta(days=90))
    )
    return JiraConnector(
        jira.url,
        jql=jira.jql,
        user=read_secret(jira.user_env, "incidents.jira.user_env"),
        token=read_secret(jira.token_env, "incidents.jira.token_env"),
        horizon=horizon,
        timeout=jira.timeout,
        page_size=PAGE_SIZE,
        ref_fields=getattr(jira, "ref_fields", ()),
    )
