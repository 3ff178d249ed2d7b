"""Page-level retry: a scope whose fetch failed for a passing reason starts again from its stored cursors.

The HTTP clients already retry each request with backoff. When a scope still fails (a server down for a
minute, a connection cut mid-body, a truncated page), the pipeline keeps every page stored so far and
restarts the scope from the cursors those pages wrote, after a pause, before it declares the scope failed.
The cursors are tracked here as pages are written, so a restart needs no read of the database.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping

import requests
import urllib3.exceptions
from github import GithubException, RateLimitExceededException

from models.records import Page

# restarts of one scope in a row without a page that advanced a cursor in between; progress resets the count
SCOPE_RESTARTS = 2
# pause before the first, second, ... restart (seconds)
RESTART_PAUSES_S = (1.0, 3.0)
# restarts of one scope in one run at most, progress or not (a server failing every few pages forever)
MAX_RESTARTS = 10
# an answer worth another try: throttled or the server failing for now
_PASSING_STATUSES = frozenset({429, 500, 502, 503, 504})
_PASSING_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                   requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                   requests.exceptions.RetryError, urllib3.exceptions.ProtocolError,
                   urllib3.exceptions.TimeoutError, ConnectionError, TimeoutError)


class CursorBook:
    """The cursors of one source as they stand after the pages written so far (thread-safe)."""

    def __init__(self, cursors: Mapping[tuple[str, str], str]) -> None:
        self._cursors = dict(cursors)
        self._lock = threading.Lock()

    def written(self, page: Page) -> None:
        """Note the cursor a stored page advanced."""
        if page.cursor is not None:
            with self._lock:
                self._cursors[(page.scope, page.stream)] = page.cursor

    def snapshot(self) -> dict[tuple[str, str], str]:
        """A copy of every cursor as it stands now."""
        with self._lock:
            return dict(self._cursors)


def advances(page: Page, began: Mapping[tuple[str, str], str]) -> bool:
    """Whether a stored page moves its stream's cursor past where a restart began (`began`: the book's
    snapshot then). A restarted scope re-stores pages before it meets its failure again (its repo page,
    a cursor page that did not move): those are no progress, or a lasting failure would restart forever."""
    return page.cursor is not None and began.get((page.scope, page.stream)) != page.cursor


def is_passing(exc: BaseException) -> bool:
    """Whether a failure may go away on its own (network, timeouts, 5xx, 429, a cut or garbled body).

    A connector can decide for its own errors with an attribute `passing` on the exception. Rejected
    credentials, a missing repo or job, a spent rate budget and malformed config are not passing.
    """
    marked = getattr(exc, "passing", None)
    if isinstance(marked, bool):
        return marked
    if isinstance(exc, RateLimitExceededException):
        return False  # the primary budget: the client already waited as long as it may
    if isinstance(exc, GithubException):
        return exc.status in _PASSING_STATUSES
    if isinstance(exc, requests.exceptions.HTTPError):
        return exc.response is not None and exc.response.status_code in _PASSING_STATUSES
    if isinstance(exc, _PASSING_ERRORS):
        return True  # connection refused or reset, timeouts, retries used up, a body cut short
    # a body that does not parse is most often one cut short in transit; a real format change fails again
    return isinstance(exc, json.JSONDecodeError)


def restart_pause(restarts_in_a_row: int) -> float:
    """Seconds to wait before the n-th restart in a row (1-based)."""
    return RESTART_PAUSES_S[min(restarts_in_a_row, len(RESTART_PAUSES_S)) - 1]
