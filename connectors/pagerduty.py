"""PagerDuty source: incidents of the configured services, created -> acknowledged -> resolved, with the
times taken from each incident's log entries. Offset/limit paging; incremental by creation time, with
unresolved incidents re-polled until they resolve. Fetches and yields pages only."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from connectors.base import Cursors, read_secret
from connectors.http import (
    RetryingSession,
    describe_request_error,
    json_answer,
    retrying_session,
    wrong_shape,
)
from models.records import Page, RawObject, Row

if TYPE_CHECKING:
    from collector.config import Config

log = logging.getLogger(__name__)

SOURCE = "pagerduty"
STREAM = "incidents"
PAGE_SIZE = 100
# PagerDuty searches at most six months per request; longer histories are read in windows.
MAX_RANGE = dt.timedelta(days=179)
HEADERS = {"Accept": "application/vnd.pagerduty+json;version=2"}
# Incident status -> the status category vsm uses for every source.
STATUS_CATEGORIES = {"triggered": "new", "acknowledged": "indeterminate", "resolved": "done"}
# Log entry types that change an incident's status, and the category they move it to.
LOG_CATEGORIES = {
    "trigger_log_entry": "new",
    "acknowledge_log_entry": "indeterminate",
    "unacknowledge_log_entry": "new",
    "resolve_log_entry": "done",
}
# The endpoints this connector reads (paths relative to the API root).
ENDPOINTS = {
    "incidents": "/incidents",
    "incident": "/incidents/{id}",
    "log_entries": "/incidents/{id}/log_entries",
}


def _ts(value: str | None) -> dt.datetime | None:
    """Parse PagerDuty's ISO 8601 timestamps as aware UTC datetimes."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _iso(value: dt.datetime) -> str:
    """A timestamp as PagerDuty's query parameters take it."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _windows(since: dt.datetime, until: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Consecutive search windows of at most MAX_RANGE covering since..until."""
    start = since
    while True:
        end = min(start + MAX_RANGE, until)
        yield start, end
        if end >= until:
            return
        start = end


class PagerDutyConnector:
    """Collects the incidents of PagerDuty services, one scope per service id."""

    source = SOURCE

    def __init__(
        self,
        service_ids: Iterable[str],
        *,
        token: str,
        url: str = "https://api.pagerduty.com",
        horizon: dt.datetime,
        timeout: float = 30.0,
        retries: int = 4,
        page_size: int = PAGE_SIZE,
        backoff: float = 0.5,
    ) -> None:
        self._services = list(service_ids)
        self._url = url.rstrip("/")
        self._horizon = horizon
        self._page_size = page_size
        self._session: RetryingSession = retrying_session(
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers={**HEADERS, "Authorization": f"Token token={token}"},
        )
        self._current = "the incidents"

    # -- Connector protocol -------------------------------------------------------------------------

    def scopes(self) -> list[str]:
        """One scope per configured service id."""
        return list(self._services)

    @property
    def requests_made(self) -> int:
        """HTTP requests sent, retries included."""
        return self._session.requests_made

    @property
    def rate_limit_remaining(self) -> int | None:
        """PagerDuty publishes no per-token budget in its answers."""
        return None

    def describe_error(self, exc: BaseException) -> str:
        """One line naming the cause, never containing the token."""
        return (
            describe_request_error(exc, "PagerDuty", self._url, self._current)
            or f"{type(exc).__name__} for {self._current}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )

    def pages(self, scope: str, cursors: Cursors) -> Iterator[Page]:
        """Incidents created since the cursor (one page per API page), then the still-open ones re-polled.

        The cursor is {"since": newest created_at seen, "open": ids not yet resolved}. The list comes oldest
        first, so each page carries the cursor as it stands after it: a run cut off resumes after the last
        stored page (the open ids it holds still include those not yet re-polled).
        """
        cursor = cursors.get((scope, STREAM))
        state = json.loads(cursor) if cursor else {"since": self._horizon.isoformat(), "open": []}
        since = _ts(state["since"]) or self._horizon
        open_ids = set(state["open"])
        newest, seen = since, set()
        until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        for start, end in _windows(since, until):
            for incidents in self._list(scope, start, end):
                page = Page(SOURCE, scope, STREAM)
                for incident in incidents:
                    created = self._add(page, scope, incident, open_ids)
                    seen.add(incident["id"])
                    newest = max(newest, created)
                if page.rows:
                    state = {"since": newest.isoformat(), "open": sorted(open_ids)}
                    page.cursor = json.dumps(state)
                    yield page
        for incident_id in sorted(open_ids - seen):
            page = Page(SOURCE, scope, STREAM)
            body = self._get(ENDPOINTS["incident"].format(id=incident_id))
            if not isinstance(body.get("incident"), dict):
                raise wrong_shape("PagerDuty", self._current, "no 'incident' object")
            self._add(page, scope, body["incident"], open_ids)
            yield page
        new_state = {"since": newest.isoformat(), "open": sorted(open_ids)}
        if new_state != state:
            yield Page(SOURCE, scope, STREAM, cursor=json.dumps(new_state))

    # -- requests -----------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON object: HTTPError on an error status, MalformedAnswer on a body that is no JSON object
        (an HTML login page, a cut body, another shape)."""
        self._current = path
        response = self._session.get(self._url + path, params=params)
        response.raise_for_status()
        return json_answer(response, "PagerDuty")

    def _paged(self, path: str, key: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list endpoint: offset / limit until `more` is false."""
        offset = 0
        while True:
            body = self._get(path, {**params, "limit": self._page_size, "offset": offset})
            items = body.get(key)
            if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("id") for i in items):
                raise wrong_shape("PagerDuty", path, f"no '{key}' list of objects with ids")
            yield items
            offset += len(items)
            if not body.get("more") or not items:
                return

    def _list(self, service: str, since: dt.datetime, until: dt.datetime) -> Iterator[list[dict[str, Any]]]:
        """The service's incidents created in [since, until], oldest first."""
        params = {
            "service_ids[]": service,
            "since": _iso(since),
            "until": _iso(until),
            "time_zone": "UTC",
            "sort_by": "created_at:asc",
        }
        yield from self._paged(ENDPOINTS["incidents"], "incidents", params)

    def _log_entries(self, incident_id: str) -> list[dict[str, Any]]:
        """The incident's overview log entries (trigger, acknowledge, resolve, ...), all pages."""
        path = ENDPOINTS["log_entries"].format(id=incident_id)
        params = {"is_overview": "true", "time_zone": "UTC"}
        return [entry for batch in self._paged(path, "log_entries", params) for entry in batch]

    def _add(self, page: Page, scope: str, incident: dict[str, Any], open_ids: set[str]) -> dt.datetime:
        """Add one incident (and its log entries, once it was acknowledged or resolved) to the page."""
        incident_id = str(incident["id"])
        if incident.get("status") not in STATUS_CATEGORIES or not incident.get("created_at"):
            raise wrong_shape("PagerDuty", self._current, f"incident {incident_id} without a known status "
                              "or created_at")
        # a triggered incident has no acknowledgement or resolution to read from its log yet
        entries = self._log_entries(incident_id) if incident.get("status") != "triggered" else []
        try:
            record, changes = incident_rows(incident, entries)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise wrong_shape("PagerDuty", self._current, f"incident {incident_id}: {type(exc).__name__}: "
                              f"{exc}") from None
        page.raw.append(RawObject("incident", incident_id, incident, scope))
        page.raw.extend(RawObject("log_entry", f"{incident_id}/{e['id']}", e, scope) for e in entries)
        page.add("incident_records", record)
        for change in changes:
            page.add("incident_status_changes", change)
        if record["status_category"] == "done":
            open_ids.discard(incident_id)
        else:
            open_ids.add(incident_id)
        return record["created_at"]


def incident_rows(incident: dict[str, Any], entries: list[dict[str, Any]]) -> tuple[Row, list[Row]]:
    """One incident and its log entries as an incident_records row and its status changes."""
    incident_id = str(incident["id"])
    created = _ts(incident["created_at"])
    status = incident.get("status")
    category = STATUS_CATEGORIES.get(str(status))
    moves = sorted(
        (
            (_ts(e.get("created_at")), str(e.get("id")), LOG_CATEGORIES[e["type"]], e["type"])
            for e in entries
            if e.get("type") in LOG_CATEGORIES and e.get("created_at")
        ),
        key=lambda m: (m[0], m[1]),
    )
    if not any(kind == "trigger_log_entry" for *_, kind in moves):
        trigger = (incident.get("first_trigger_log_entry") or {}).get("id") or "trigger"
        moves.insert(0, (created, str(trigger), "new", "trigger_log_entry"))
    changes: list[Row] = []
    previous: str | None = None
    for at, entry_id, to_category, kind in moves:
        changes.append(
            {
                "source": SOURCE,
                "incident_id": incident_id,
                "change_id": entry_id,
                "changed_at": at,
                "from_status": None if previous is None else _STATUS_OF[previous],
                "to_status": _STATUS_OF[to_category],
                "from_category": previous,
                "to_category": to_category,
            }
        )
        previous = to_category
    acks = [at for at, _, _, kind in moves if kind == "acknowledge_log_entry"]
    acks += [_ts(a.get("at")) for a in incident.get("acknowledgements") or [] if a.get("at")]
    resolves = [at for at, _, _, kind in moves if kind == "resolve_log_entry"]
    resolved = None
    if category == "done":
        resolved = (
            max(resolves)
            if resolves
            else _ts(incident.get("resolved_at")) or _ts(incident.get("last_status_change_at"))
        )
    title = incident.get("title") or incident.get("summary")
    description = incident.get("description")
    service = incident.get("service") or {}
    record = {
        "source": SOURCE,
        "incident_id": incident_id,
        "repo": None,
        "title": title,
        "body": description if description and description != title else None,
        "url": incident.get("html_url"),
        "created_at": created,
        "acknowledged_at": min((a for a in acks if a is not None), default=None),
        "resolved_at": resolved,
        "updated_at": _ts(incident.get("last_status_change_at")) or created,
        "status": status,
        "status_category": category,
        "service": service.get("id"),
        "components": json.dumps([]),
        "urgency": incident.get("urgency"),
        "labels": json.dumps([]),
        "refs": json.dumps([incident["incident_key"]] if incident.get("incident_key") else []),
    }
    return record, changes


# The PagerDuty status each category stands for (status names of the changes table).
_STATUS_OF = {"new": "triggered", "indeterminate": "acknowledged", "done": "resolved"}


def make_pagerduty(config: Config) -> PagerDutyConnector | None:
    """The PagerDuty connector when the config has [incidents.pagerduty]."""
    incidents = config.incidents
    if incidents is None or incidents.pagerduty is None:
        return None
    pd = incidents.pagerduty
    token = read_secret(pd.token_env, "incidents.pagerduty.token_env")
    if token is None:
        raise ValueError("incidents.pagerduty.token_env: PagerDuty needs an API token")
    horizon = (
        config.github.first_sync_horizon()
        if config.github is not None
        else (dt.datetime.now(dt.UTC) - dt.timedelta(days=90))
    )
    return PagerDutyConnector(
        pd.service_ids, token=token, url=pd.url, horizon=horizon, timeout=pd.timeout, page_size=PAGE_SIZE
    )
