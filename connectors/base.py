"""What every connector offers the pipeline: scopes to sync, pages of records, request counts."""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Protocol

from connectors.scrub import remember
from models.records import Page

Cursors = Mapping[tuple[str, str], str]


def read_secret(name: str | None, key: str, env: Mapping[str, str] = os.environ) -> str | None:
    """The secret in the environment variable a config key names (None when no name is configured).

    The one place vsm reads a secret; the error names the config key and the variable, never a value.
    """
    if name is None:
        return None
    value = env.get(name)
    if not value:
        raise ValueError(f"environment variable {name} is not set (named by {key})")
    remember(value)  # from now on every error line and log record has it scrubbed
    return value


class Connector(Protocol):
    """A source of delivery data. It only talks HTTP and yields pages; it never touches the database."""

    source: str

    def scopes(self) -> list[str]:
        """The independent units of work (repos, jobs); one failing scope does not stop the others."""
        ...

    def pages(self, scope: str, cursors: Cursors) -> Iterator[Page]:
        """Yield pages for one scope, starting from the stored cursors (keyed by (scope, stream))."""
        ...

    @property
    def requests_made(self) -> int:
        """HTTP requests made so far, retries included."""
        ...

    @property
    def rate_limit_remaining(self) -> int | None:
        """The API's remaining request budget as last reported, if the source has one."""
        ...

    def describe_error(self, exc: BaseException) -> str:
        """One line naming the cause of a failure, never containing a secret."""
        ...


class RequestTally(logging.Handler):
    """Counts, per thread, the records an HTTP client logs once per request.

    Used where a client library logs each request but offers no hook for counting. The handler only
    counts and never formats a record, so no request detail (or secret) is written anywhere by it.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._counts: dict[int, int] = defaultdict(int)

    def emit(self, record: logging.LogRecord) -> None:
        """Count one request of the record's thread."""
        self._counts[record.thread or 0] += 1

    def current_thread(self) -> int:
        """Requests counted so far for the calling thread."""
        return self._counts[threading.get_ident()]

    def count(self, ident: int) -> int:
        """Requests counted so far for one thread."""
        return self._counts.get(ident, 0)


_tallies: dict[str, RequestTally] = {}
_tallies_lock = threading.Lock()


def request_tally(logger_name: str) -> RequestTally:
    """The process-wide tally attached to a client's per-request DEBUG logger (installed once)."""
    with _tallies_lock:
        if logger_name not in _tallies:
            tally = RequestTally()
            logger = logging.getLogger(logger_name)
            logger.addHandler(tally)
            logger.setLevel(logging.DEBUG)
            # the client's per-request DEBUG lines carry whole response bodies: count them, never show them
            logger.propagate = False
            _tallies[logger_name] = tally
        return _tallies[logger_name]
