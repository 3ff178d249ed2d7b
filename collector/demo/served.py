"""The small threaded HTTP server every simulated service (GitHub, Jenkins, Jira, PagerDuty) runs on.

It speaks HTTP/1.1 keep-alive with Nagle off (PyGithub and requests reuse connections; without it each
request waits ~40 ms), sends errors to logging instead of stderr, and cuts open connections on stop so a
stopped simulator answers nothing, like a dead server.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import struct
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

logger = logging.getLogger(__name__)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 query value as an aware UTC instant (naive means UTC); ValueError when malformed."""
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler delegating every method to the simulator's `handle`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def version_string(self) -> str:
        """The Server header the simulated service sends."""
        return self.server.simulator.server_header

    def setup(self) -> None:
        """Track the keep-alive connection so that stop() can cut it."""
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        """Forget the connection once the client is done."""
        with self.server.lock:
            self.server.connections.discard(self.connection)
        super().finish()

    body: bytes = b""

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        # kept for simulators that read request bodies (GitHub's GraphQL POSTs)
        self.body = self.rfile.read(length) if length else b""
        self.server.simulator.handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon threads, tracked connections and errors sent to logging."""

    daemon_threads = True
    simulator: ServedSimulator

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, Handler)
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()

    def close_connections(self) -> None:
        """Cut open keep-alive connections."""
        with self.lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver calls this while the connection's exception is being handled
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)  # noqa: LOG014


@dataclass
class Fault:
    """An injected failure for the next `times` requests whose path (with query) matches.

    status None keeps the normal answer (useful with a delay, to cause client timeouts); a str body is
    sent as is (e.g. malformed JSON), anything else as the service's JSON error. `request_pattern` must
    also match the request body (GraphQL POSTs differ only there); the first `skip` matching requests
    pass untouched (the n-th request fails). `reset` sends the headers and half the body, then resets the
    connection; `truncate` sends half the body as a complete answer (Content-Length of the half). `hits`
    counts the requests the fault has answered so far, so a test can tell a delayed request has arrived.
    """

    pattern: re.Pattern[str]
    status: int | None
    times: int
    headers: dict[str, str]
    body: Any
    delay: float = 0.0
    request_pattern: re.Pattern[bytes] | None = None
    skip: int = 0
    reset: bool = False
    truncate: bool = False
    hits: int = 0

    def matches(self, path: str, body: bytes) -> bool:
        """Whether a request (path with query, and body) is one this fault is aimed at."""
        return bool(self.pattern.search(path)) and (
            self.request_pattern is None or bool(self.request_pattern.search(body)))

    def wire(self, data: bytes) -> tuple[bytes, int]:
        """The body bytes to write and the Content-Length to announce for an answer of `data`."""
        if self.reset:
            return data[: len(data) // 2], len(data)
        if self.truncate:
            return data[: len(data) // 2], len(data) // 2
        return data, len(data)


def hang_up(request: BaseHTTPRequestHandler) -> None:
    """Reset the request's connection (RST, not a clean close), as a crashing server or proxy does."""
    request.close_connection = True
    with contextlib.suppress(OSError):
        request.wfile.flush()
        request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.connection.close()


class ServedSimulator(ABC):
    """Lifecycle of a simulated service on http://127.0.0.1:<free port>: start/stop, context manager, base_url,
    and injected faults.

    A subclass implements `handle(request)` (taking faults with `_take_fault`) and may set `name`,
    `server_header` and `_on_start`.
    """

    name = "simulator"
    server_header = "simulator"
    _server: Server | None = None
    _thread: threading.Thread | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._stopped = threading.Event()

    def inject_fault(self, path_regex: str, status: int | None = 500, times: int = 1,
                     headers: dict[str, str] | None = None, body: Any = None, delay: float = 0.0, *,
                     request_regex: str | None = None, skip: int = 0, reset: bool = False,
                     truncate: bool = False) -> Fault:
        """Make the next `times` requests whose path+query matches `path_regex` (and whose body matches
        `request_regex`, when given) answer `status`; returns the fault, whose `hits` count its answers."""
        fault = Fault(re.compile(path_regex), status, times, dict(headers or {}), body, delay,
                      re.compile(request_regex.encode()) if request_regex is not None else None, skip, reset,
                      truncate)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget every injected fault: the service is healthy again."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str, body: bytes = b"") -> Fault | None:
        """The injected fault this request triggers, if any (each fault fires `times` times)."""
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.matches(path, body):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    fault.hits += 1
                    return fault
        return None

    def _pause(self, seconds: float) -> None:
        """Sleep for an injected delay, cut short when the simulator stops (a stopped server answers nothing)."""
        self._stopped.wait(seconds)

    @abstractmethod
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request: status, headers and body on the wire, and an entry in the request log."""

    def _on_start(self) -> None:
        """Called once the port is known (e.g. to build payloads whose URLs carry it)."""

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        self._stopped.clear()
        self._server = Server(("127.0.0.1", 0))
        self._server.simulator = self
        self._on_start()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-simulator", daemon=True)
        self._thread.start()
        logger.debug("simulated %s listening on %s", self.name, self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and release the port."""
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT, the base URL for clients (and of every URL in payloads)."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"
