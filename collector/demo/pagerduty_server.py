"""A simulated PagerDuty REST API serving the Pet Clinic world's PagerDuty incidents on 127.0.0.1.

Incidents of two services (one per repo), listed with service_ids[], since/until (at most six months),
offset/limit paging and `more`; each incident's log entries (trigger, assign, notify, acknowledge,
resolve; `is_overview` keeps the status changes) newest first. `Authorization: Token token=...` is checked
when a token is set. Shapes come from recorded PagerDuty incidents (data/pagerduty, see its MANIFEST.md);
the list envelope and the log-entry endpoint follow PagerDuty's REST API reference.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from collector.demo.incident_world import PAGERDUTY_SERVICES, Incident, IncidentWorld
from collector.demo.local_simulator import LocalSimulator, Query, SimError, first, integer
from collector.demo.payloads import render
from collector.demo.served import parse_instant
from collector.demo.world import DATA, UTC

WEB = "https://petclinic.pagerduty.com"
MAX_RANGE = timedelta(days=183)
# PagerDuty error codes for the answers this simulator gives.
ERROR_CODES = {400: 2001, 401: 2006, 404: 2100, 429: 2020}
ESCALATION_POLICY = ("PPETPOL", "Pet Clinic on call")
# Log entry types, the channel they arrive through, their summary, and whether `is_overview` keeps them.
LOG_TYPES = {
    "trigger_log_entry": ("api", "Triggered through the API.", True),
    "assign_log_entry": ("auto", "Assigned to {name}.", False),
    "notify_log_entry": ("auto", "Notified {name} by push notification.", False),
    "acknowledge_log_entry": ("mobile", "Acknowledged by {name}.", True),
    "resolve_log_entry": ("website", "Resolved by {name}.", True),
}


@cache
def _template(name: str) -> Any:
    """A PagerDuty payload template from data/pagerduty."""
    return json.loads((DATA / "pagerduty" / f"{name}.json").read_text("utf-8"))


def _pd_id(prefix: str, *parts: object, length: int = 7) -> str:
    """A PagerDuty-style id (upper-case letters and digits) derived from the parts."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest().upper()
    return (prefix + digest)[:length]


def _time(t: datetime | None) -> str | None:
    """PagerDuty's timestamp format (UTC, as with time_zone=UTC)."""
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 query parameter (400 when malformed)."""
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise SimError(400, f"Invalid '{name}' parameter value: {text}") from None


class PagerDutySimulator(LocalSimulator):
    """Serves the world's PagerDuty incidents like api.pagerduty.com."""

    name = "pagerduty"
    server_header = "nginx"
    routes = (
        (r"/incidents", "list_incidents"),
        (r"/incidents/(?P<id>[A-Z0-9]+)", "get_incident"),
        (r"/incidents/(?P<id>[A-Z0-9]+)/log_entries", "log_entries"),
    )

    def __init__(self, incidents: IncidentWorld, *, token: str | None = None) -> None:
        super().__init__(incidents)
        self.token = token

    def authorized(self, headers: Any) -> bool:
        """`Authorization: Token token=<key>` when a token is set."""
        return self.token is None or headers.get("Authorization") == f"Token token={self.token}"

    def error_body(self, status: int, message: str) -> Any:
        """PagerDuty's error object."""
        return render(
            _template("error"),
            {
                "message": message,
                "code": ERROR_CODES.get(status, 2001),
                "errors": [message] if status == 400 else [],
            },
        )

    # -- references --------------------------------------------------------------------------------------
    def _ref(self, kind: str, ident: str, summary: str, collection: str, web_path: str) -> Any:
        return render(
            _template("reference"),
            {
                "api": self.base_url,
                "web": WEB,
                "id": ident,
                "type": kind,
                "summary": summary,
                "collection": collection,
                "web_path": web_path,
            },
        )

    def _user(self, login: str) -> Any:
        return self._ref(
            "user_reference", _pd_id("P", "user", login), login.replace("-", " ").title(), "users", "users"
        )

    def _service(self, incident: Incident) -> Any:
        sid, name = self.incidents.service_of(incident.repo)
        return self._ref("service_reference", sid, name, "services", "service-directory")

    def _incident_ref(self, incident: Incident) -> Any:
        return self._ref(
            "incident_reference",
            incident.key,
            f"[#{incident.number}] {incident.title}",
            "incidents",
            "incidents",
        )

    # -- payloads ----------------------------------------------------------------------------------------
    def _entries(self, incident: Incident) -> list[tuple[datetime, str, str]]:
        """(time, type, agent login or '' for the service) of the incident's log, oldest first."""
        entries = [
            (incident.created_at, "trigger_log_entry", ""),
            (incident.created_at, "assign_log_entry", ""),
            (incident.created_at + timedelta(seconds=1), "notify_log_entry", ""),
        ]
        if incident.acknowledged_at:
            entries.append((incident.acknowledged_at, "acknowledge_log_entry", incident.reporter))
        if incident.resolved_at:
            entries.append((incident.resolved_at, "resolve_log_entry", incident.reporter))
        return entries

    def _log_entry(self, incident: Incident, at: datetime, kind: str, agent: str) -> Any:
        ident = _pd_id("R", incident.key, kind, at.isoformat(), length=26)
        channel, summary, _ = LOG_TYPES[kind]
        return render(
            _template("log_entry"),
            {
                "api": self.base_url,
                "id": ident,
                "type": kind,
                "summary": summary.format(name=incident.reporter.replace("-", " ").title()),
                "html_url": f"{WEB}/incidents/{incident.key}/log_entries/{ident}"
                if kind == "trigger_log_entry"
                else None,
                "created_at": _time(at),
                "agent": self._user(agent) if agent else self._service(incident),
                "channel": channel,
                "incident": self._incident_ref(incident),
                "event_details": {"description": incident.title} if kind == "trigger_log_entry" else {},
            },
        )

    def _incident(self, incident: Incident) -> Any:
        status = {"new": "triggered", "indeterminate": "acknowledged", "done": "resolved"}[
            incident.category()
        ]
        user = self._user(incident.reporter)
        changed = incident.resolved_at or incident.acknowledged_at or incident.created_at
        trigger = _pd_id("R", incident.key, "trigger_log_entry", incident.created_at.isoformat(), length=26)
        return render(
            _template("incident"),
            {
                "api": self.base_url,
                "web": WEB,
                "id": incident.key,
                "number": incident.number,
                "title": incident.title,
                "description": incident.body,
                "created_at": _time(incident.created_at),
                "status": status,
                "incident_key": incident.incident_key or _pd_id("", "key", incident.key, length=32).lower(),
                "service": self._service(incident),
                "assignments": []
                if status == "resolved"
                else [render(_template("assignment"), {"at": _time(incident.created_at), "assignee": user})],
                "last_status_change_at": _time(changed),
                "trigger_id": trigger,
                "trigger_summary": LOG_TYPES["trigger_log_entry"][1],
                "escalation_policy": self._ref(
                    "escalation_policy_reference",
                    *ESCALATION_POLICY,
                    "escalation_policies",
                    "escalation_policies",
                ),
                "acknowledgements": [
                    render(
                        _template("acknowledgement"),
                        {"at": _time(incident.acknowledged_at), "acknowledger": user},
                    )
                ]
                if status == "acknowledged"
                else [],
                "last_status_change_by": user if status != "triggered" else self._service(incident),
                "urgency": incident.urgency,
            },
        )

    def _find(self, ident: str) -> Incident:
        for incident in self.visible("pagerduty"):
            if incident.key == ident:
                return incident
        raise SimError(404, "Incident Not Found")

    @staticmethod
    def _envelope(key: str, items: list[Any], query: Query, default_limit: int = 25) -> Any:
        """One page of a list: offset/limit, `more`, and `total` only when asked for."""
        limit = integer(query, "limit", default_limit, 1, 100)
        offset = integer(query, "offset", 0)
        shown = items[offset : offset + limit]
        body = render(
            _template("list"),
            {
                "limit": limit,
                "offset": offset,
                "more": offset + limit < len(items),
                "total": len(items) if first(query, "total") == "true" else None,
            },
        )
        return {key: shown, **body}

    # -- endpoints ---------------------------------------------------------------------------------------
    def list_incidents(self, params: dict[str, str], query: Query) -> Any:
        """GET /incidents: service_ids[], since/until (default the last month), statuses[], sort_by."""
        services = set(query.get("service_ids[]", []))
        unknown = services - {sid for sid, _ in PAGERDUTY_SERVICES}
        if unknown:
            raise SimError(400, f"Invalid service_ids: {', '.join(sorted(unknown))}")
        if first(query, "date_range") == "all":
            since, until = None, None
        else:
            until = _parse(first(query, "until"), "until") or self.clock
            since = _parse(first(query, "since"), "since") or until - timedelta(days=30)
            if since > until or until - since > MAX_RANGE:
                raise SimError(400, "Date range must be positive and not longer than 6 months")
        statuses = set(query.get("statuses[]", []))
        found = [
            i
            for i in self.visible("pagerduty")
            if (not services or self.incidents.service_of(i.repo)[0] in services)
            and (since is None or since <= i.created_at)
            and (until is None or i.created_at < until)
        ]
        rendered = [self._incident(i) for i in found]
        rendered = [r for r in rendered if not statuses or r["status"] in statuses]
        field, _, direction = (first(query, "sort_by") or "created_at:asc").partition(":")
        if field not in ("created_at", "incident_number", "resolved_at", "urgency"):
            raise SimError(400, f"Invalid sort_by: {field}")
        key = "incident_number" if field == "incident_number" else "created_at"
        rendered.sort(key=lambda r: (r[key], r["incident_number"]), reverse=direction == "desc")
        return self._envelope("incidents", rendered, query)

    def get_incident(self, params: dict[str, str], query: Query) -> Any:
        """GET /incidents/{id}."""
        return {"incident": self._incident(self._find(params["id"]))}

    def log_entries(self, params: dict[str, str], query: Query) -> Any:
        """GET /incidents/{id}/log_entries: newest first; is_overview=true keeps the status changes."""
        incident = self._find(params["id"])
        overview = first(query, "is_overview") == "true"
        entries = [
            self._log_entry(incident, at, kind, agent)
            for at, kind, agent in self._entries(incident)
            if LOG_TYPES[kind][2] or not overview
        ]
        entries.reverse()
        return self._envelope("log_entries", entries, query)
