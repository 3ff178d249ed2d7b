"""A simulated Jira (Cloud or Server/Data Center) serving the Pet Clinic world's Jira incidents on 127.0.0.1.

A German-speaking ops team: status names ('Offen', 'In Arbeit', 'Erledigt'), priorities and components are
localised, timestamps carry the user's time zone, and JQL date literals are read in it, as Jira does. Cloud
serves the enhanced search (`/rest/api/3/search/jql`, nextPageToken paging, ADF descriptions) and answers the
removed classic search with 410 Gone; Server serves `/rest/api/2/search` (startAt/maxResults/total). Shapes
come from recorded Jira responses (data/jira, see its MANIFEST.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from collector.demo.incident_world import (
    JIRA_COMPONENTS,
    JIRA_PROJECT,
    JIRA_PROJECT_NAME,
    JIRA_STATUSES,
    Incident,
    IncidentWorld,
)
from collector.demo.local_simulator import LocalSimulator, Query, SimError, first, integer
from collector.demo.payloads import render
from collector.demo.world import DATA

_STATUS_IDS = {category: (ident, name) for ident, name, category in JIRA_STATUSES}
_CATEGORIES = {
    "new": (2, "blue-gray", "To Do"),
    "indeterminate": (4, "yellow", "In Progress"),
    "done": (3, "green", "Done"),
}
_PRIORITIES = {"high": ("2", "Hoch", "high"), "low": ("4", "Niedrig", "low")}
_PROJECT_ID = "10200"
_JQL_CLAUSE = re.compile(r"^\s*(\w+)\s*(>=|<=|!=|=|>|<|\bin\b)\s*(.+?)\s*$", re.IGNORECASE)


@cache
def _template(name: str) -> Any:
    """A Jira payload template from data/jira."""
    return json.loads((DATA / "jira" / f"{name}.json").read_text("utf-8"))


class JiraSimulator(LocalSimulator):
    """Serves the world's Jira incidents like a Jira Cloud or Server/Data Center site."""

    name = "jira"
    routes = (
        (r"/rest/api/(?P<v>[23])/serverInfo", "server_info"),
        (r"/rest/api/(?P<v>[23])/status", "statuses"),
        (r"/rest/api/3/search/jql", "search_jql"),
        (r"/rest/api/(?P<v>[23])/search", "search"),
    )

    def __init__(
        self,
        incidents: IncidentWorld,
        *,
        deployment_type: str = "Cloud",
        user: str | None = None,
        token: str | None = None,
        time_zone: str = "Europe/Berlin",
    ) -> None:
        super().__init__(incidents)
        self.deployment_type = deployment_type
        self.user, self.token = user, token
        self.tz = ZoneInfo(time_zone)
        self.server_header = "AtlassianEdge" if self.cloud else "Apache-Coyote/1.1"

    @property
    def cloud(self) -> bool:
        """Jira Cloud (else Server / Data Center)."""
        return self.deployment_type == "Cloud"

    def authorized(self, headers: Any) -> bool:
        """Basic user:token (Cloud and Server) or a Bearer personal access token (Server)."""
        if self.token is None:
            return True
        given = headers.get("Authorization") or ""
        basic = "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        return given == basic or (not self.cloud and given == f"Bearer {self.token}")

    def error_body(self, status: int, message: str) -> Any:
        """Jira's error collection."""
        return render(_template("error"), {"messages": [message]})

    def _time(self, t: datetime | None) -> str | None:
        """Jira's timestamp format in the user's time zone: 2026-03-02T10:15:00.000+0100."""
        return None if t is None else t.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M:%S.000%z")

    # -- endpoints -------------------------------------------------------------------------------------
    def server_info(self, params: dict[str, str], query: Query) -> Any:
        """GET /rest/api/{2,3}/serverInfo."""
        version, numbers = ("1001.0.0-SNAPSHOT", [1001, 0, 0]) if self.cloud else ("9.12.4", [9, 12, 4])
        return render(
            _template("server_info"),
            {
                "api": self.base_url,
                "version": version,
                "version_numbers": numbers,
                "deployment_type": self.deployment_type,
                "build_number": 100256 if self.cloud else 9120004,
                "build_date": "2026-01-15T00:00:00.000+0000",
                "server_time": self._time(self.clock),
                "scm_info": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
                "title": "Pet Clinic Betrieb",
            },
        )

    def _status(self, category: str, version: str) -> Any:
        """The status object of a category's (localised) status."""
        ident, name = _STATUS_IDS[category]
        cat_id, color, cat_name = _CATEGORIES[category]
        cat = render(
            _template("status_category"),
            {
                "api": self.base_url,
                "version": version,
                "id": cat_id,
                "key": category,
                "color": color,
                "name": cat_name,
            },
        )
        return render(
            _template("status"),
            {
                "api": self.base_url,
                "version": version,
                "id": ident,
                "name": name,
                "description": "",
                "category": cat,
            },
        )

    def statuses(self, params: dict[str, str], query: Query) -> Any:
        """GET /rest/api/{2,3}/status: every status with its category."""
        return [self._status(category, params["v"]) for _, _, category in JIRA_STATUSES]

    def search(self, params: dict[str, str], query: Query) -> Any:
        """GET /rest/api/{2,3}/search: the classic search (Server); removed on Cloud (410 Gone)."""
        if self.cloud:
            raise SimError(
                410,
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql "
                "API. A full migration guideline is available at "
                "https://developer.atlassian.com/changelog/#CHANGE-2046",
            )
        if params["v"] == "3":
            raise SimError(404, "null for uri: /rest/api/3/search")
        found = self._find(first(query, "jql", "") or "")
        start = integer(query, "startAt", 0)
        size = integer(query, "maxResults", 50, 0, 100)
        shown = found[start : start + size]
        return render(
            _template("search"),
            {
                "start_at": start,
                "max_results": size,
                "total": len(found),
                "issues": [self._issue(i, query, "2", default_all=True) for i in shown],
            },
        )

    def search_jql(self, params: dict[str, str], query: Query) -> Any:
        """GET /rest/api/3/search/jql: Cloud's enhanced search, paged by nextPageToken (no total)."""
        if not self.cloud:
            raise SimError(404, "null for uri: /rest/api/3/search/jql")
        found = self._find(first(query, "jql", "") or "")
        token = first(query, "nextPageToken")
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except ValueError:
            raise SimError(400, "The provided next page token is invalid or expired.") from None
        size = integer(query, "maxResults", 50, 1, 100)
        shown = found[start : start + size]
        more = start + size < len(found)
        next_token = base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None
        body = render(
            _template("search_jql"),
            {
                "issues": [self._issue(i, query, "3") for i in shown],
                "next_page_token": next_token,
                "is_last": not more,
            },
        )
        if next_token is None:
            del body["nextPageToken"]
        return body

    # -- JQL -------------------------------------------------------------------------------------------
    def _find(self, jql: str) -> list[Incident]:
        """The incidents a (small subset of) JQL selects, in its ORDER BY order."""
        match = re.search(r"\border\s+by\b(.*)$", jql, re.IGNORECASE | re.DOTALL)
        text = jql[: match.start()] if match else jql
        order = match.group(1).strip() if match else "created ASC"
        tests = [
            self._clause(c)
            for c in re.split(r"\band\b", text.replace("(", " ").replace(")", " "), flags=re.IGNORECASE)
            if c.strip()
        ]
        found = [i for i in self.visible("jira") if all(test(i) for test in tests)]
        field, _, direction = order.partition(" ")
        key: Callable[[Incident], Any] = {
            "updated": lambda i: (i.updated_at, i.number),
            "created": lambda i: (i.created_at, i.number),
            "key": lambda i: i.number,
        }.get(field.lower(), lambda i: i.number)
        return sorted(found, key=key, reverse=direction.strip().lower() == "desc")

    def _clause(self, clause: str) -> Callable[[Incident], bool]:
        """One `field op value` clause as a test."""
        if re.search(r"\bor\b", clause, re.IGNORECASE):
            raise SimError(400, "The simulated Jira understands only AND between clauses.")
        match = _JQL_CLAUSE.match(clause)
        if match is None:
            raise SimError(400, f"Error in the JQL Query: '{clause.strip()}' is not a clause.")
        field, op, raw = match.group(1).lower(), match.group(2).lower(), match.group(3).strip().strip("\"'")
        if field in ("updated", "created"):
            when = self._date(raw)
            compare: dict[str, Callable[[datetime], bool]] = {
                ">=": lambda t: t >= when,
                ">": lambda t: t > when,
                "<=": lambda t: t <= when,
                "<": lambda t: t < when,
            }
            if op not in compare:
                raise SimError(400, f"The operator '{op}' is not supported by the '{field}' field.")
            return lambda i: compare[op](i.updated_at if field == "updated" else i.created_at)
        values = (
            {raw.lower()} if op in ("=", "!=") else {v.strip().strip("\"'").lower() for v in raw.split(",")}
        )
        fields: dict[str, Callable[[Incident], set[str]]] = {
            "project": lambda i: {JIRA_PROJECT.lower(), JIRA_PROJECT_NAME.lower()},
            "issuetype": lambda i: {"incident"},
            "component": lambda i: {self.incidents.component_of(i.repo).lower()},
        }
        if field not in fields:
            raise SimError(400, f"Field '{field}' does not exist or you do not have permission to view it.")
        if op == "!=":
            return lambda i: not fields[field](i) & values
        return lambda i: bool(fields[field](i) & values)

    def _date(self, text: str) -> datetime:
        """A JQL date literal ('yyyy/MM/dd HH:mm' or 'yyyy-MM-dd'), read in the user's time zone."""
        for pattern in ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d"):
            with contextlib.suppress(ValueError):
                return datetime.strptime(text, pattern).replace(tzinfo=self.tz)
        raise SimError(
            400, f"Date value '{text}' for field is invalid. Valid formats include: 'yyyy/MM/dd HH:mm'."
        )

    # -- payloads --------------------------------------------------------------------------------------
    def _user(self, login: str, version: str) -> Any:
        """A Jira user object for a team member's login."""
        return render(
            _template("user"),
            {
                "api": self.base_url,
                "version": version,
                "name": login,
                "email": f"{login}@petclinic.example",
                "display_name": login.replace("-", " ").title(),
                "time_zone": str(self.tz),
            },
        )

    def _history(self, incident: Incident, index: int, at: datetime, old: str, new: str, version: str) -> Any:
        """One changelog history: a status change by the reporter."""
        (from_id, from_name), (to_id, to_name) = _STATUS_IDS[old], _STATUS_IDS[new]
        item = render(
            _template("history_item"),
            {"from": from_id, "from_name": from_name, "to": to_id, "to_name": to_name},
        )
        return render(
            _template("history"),
            {
                "id": str(incident.number * 100 + index),
                "created": self._time(at),
                "author": self._user(incident.reporter, version),
                "items": [item],
            },
        )

    def _issue(self, incident: Incident, query: Query, version: str, default_all: bool = False) -> Any:
        """One issue as of the clock; only the requested fields (Cloud's search/jql defaults to none)."""
        category = incident.category()
        moves = [(incident.acknowledged_at, "indeterminate"), (incident.resolved_at, "done")]
        histories, state = [], "new"
        for index, (at, new) in enumerate(moves):
            if at is not None:
                histories.append(self._history(incident, index, at, state, new, version))
                state = new
        description: Any = incident.body
        if version == "3":
            description = {
                "type": "doc",
                "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": incident.body}]}],
            }
        ident, name = _PRIORITIES[incident.urgency][:2]
        component = self.incidents.component_of(incident.repo)
        resolution = render(
            _template("resolution"),
            {
                "api": self.base_url,
                "version": version,
                "id": "10000",
                "description": "Ein Fix wurde umgesetzt.",
                "name": "Behoben",
            },
        )
        issue = render(
            _template("issue"),
            {
                "api": self.base_url,
                "version": version,
                "id": str(10000 + incident.number),
                "key": incident.key,
                "issuetype_description": "Eine Störung im Betrieb.",
                "project_id": _PROJECT_ID,
                "project_key": JIRA_PROJECT,
                "project_name": JIRA_PROJECT_NAME,
                "resolution": resolution if category == "done" else None,
                "resolutiondate": self._time(incident.resolved_at),
                "created": self._time(incident.created_at),
                "priority_id": ident,
                "priority": name,
                "priority_icon": _PRIORITIES[incident.urgency][2],
                "labels": ["produktion"],
                "assignee": self._user(incident.reporter, version),
                "updated": self._time(incident.updated_at),
                "status": self._status(category, version),
                "summary": incident.title,
                "description": description,
                "components": [
                    render(
                        _template("component"),
                        {
                            "api": self.base_url,
                            "version": version,
                            "id": str(10300 + JIRA_COMPONENTS.index(component)),
                            "name": component,
                        },
                    )
                ],
                "reporter": self._user(incident.reporter, version),
                "changelog": render(
                    _template("changelog"), {"count": len(histories), "histories": histories}
                ),
            },
        )
        wanted = {f.strip() for f in ",".join(query.get("fields", [])).split(",") if f.strip()}
        if not ({"*all", "*navigable"} & wanted or (default_all and not wanted)):
            issue["fields"] = {k: v for k, v in issue["fields"].items() if k in wanted}
        if "changelog" not in ",".join(query.get("expand", [])):
            del issue["changelog"]
        return issue
