"""LocalSimulator: the small threaded JSON-over-HTTP server that the simulated Jira and PagerDuty build on.

Same ergonomics as the simulated GitHub: start/stop/context manager, base_url on a free 127.0.0.1 port, a
movable `clock` (only what had happened by then is served), a request log and injected faults. A concrete
simulator lists its GET endpoints in `routes` (path regex, handler method) and gives its error shape.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from collector.demo.incident_world import Incident, IncidentWorld
from collector.demo.served import ServedSimulator

logger = logging.getLogger(__name__)

Query = dict[str, list[str]]


class SimError(Exception):
    """An error answer: HTTP status and message, rendered in the simulated service's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class LocalSimulator(ServedSimulator):
    """A threaded JSON API on http://127.0.0.1:<free port> answering from `routes` as of a movable `clock`."""

    name = "simulator"
    server_header = "simulator"
    # (path regex, handler method name): every GET endpoint the simulator answers
    routes: tuple[tuple[str, str], ...] = ()

    def __init__(self, incidents: IncidentWorld) -> None:
        super().__init__()
        self.incidents = incidents
        self.clock: datetime = incidents.end
        self.request_log: list[tuple[str, str, int]] = []

        self._compiled = tuple((re.compile(pattern), handler) for pattern, handler in self.routes)

    # -- what a concrete simulator provides ------------------------------------------------------------
    def authorized(self, headers: Any) -> bool:
        """Whether the request's credentials are accepted."""
        return True

    def error_body(self, status: int, message: str) -> Any:
        """The service's error body."""
        return {"message": message}

    # -- request handling --------------------------------------------------------------------------------
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request, log it, write it to the wire."""
        try:
            status, body, headers = self._answer(request)
        except Exception:
            logger.exception("simulated %s failed on %s %s", self.name, request.command, request.path)
            status, body, headers = 500, self.error_body(500, "Internal server error"), {}
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        with self._lock:  # logged before the answer leaves, so a client never sees a request missing
            self.request_log.append((request.command, request.path, status))
        request.send_response(status)
        for name, value in {"Content-Type": "application/json;charset=UTF-8", **headers}.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _answer(self, request: BaseHTTPRequestHandler) -> tuple[int, Any, dict[str, str]]:
        split = urlsplit(request.path)
        if not self.authorized(request.headers):
            return 401, self.error_body(401, "Unauthorized"), {}
        fault = self._take_fault(request.path)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            body = fault.body if fault.body is not None else self.error_body(fault.status, "Injected failure")
            return fault.status, body, fault.headers
        try:
            if request.command != "GET":
                raise SimError(405, f"Method {request.command} is not allowed here")
            query = parse_qs(split.query, keep_blank_values=True)
            path = split.path.rstrip("/") or "/"
            for pattern, handler in self._compiled:
                match = pattern.fullmatch(path)
                if match is not None:
                    return 200, getattr(self, handler)(match.groupdict(), query), {}
            raise SimError(404, f"No resource at {path}")
        except SimError as error:
            return error.status, self.error_body(error.status, error.message), {}


    def visible(self, source: str) -> list[Incident]:
        """The incidents of a source as they stood at the clock."""
        return [now for i in self.incidents.of(source) if (now := i.as_of(self.clock)) is not None]


def first(query: Query, name: str, default: str | None = None) -> str | None:
    """The first value of a query parameter."""
    values = query.get(name)
    return values[0] if values else default


def integer(query: Query, name: str, default: int, lo: int = 0, hi: int | None = None) -> int:
    """An integer query parameter, clamped (400 when not a number)."""
    text = first(query, name)
    try:
        value = default if text in (None, "") else int(text)
    except ValueError:
        raise SimError(400, f"The value '{text}' is invalid for the {name} parameter") from None
    return max(lo, value if hi is None else min(hi, value))
