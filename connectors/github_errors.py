"""One line per failure of the REST connector, naming the endpoint and the cause.

PyGithub's exceptions rarely carry the URL they were raised for (a GithubException has status, body and
headers; a body cut mid-read or one that is not JSON carries nothing), so the connector tells this
module which endpoint each thread is reading, and the retry object remembers the last answer it retried
(a proxy's HTML error page is known only there: urllib3 keeps no body once its retries are used up).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.exceptions
from github import GithubException, GithubRetry
from github.GithubException import BadCredentialsException, RateLimitExceededException, UnknownObjectException

from connectors.http import describe_request_error


@dataclass(frozen=True)
class RetriedAnswer:
    """The status and content type of an answer the client retried."""

    status: int
    content_type: str

    @property
    def text(self) -> str:
        """'502' or '502, an HTML page, not JSON (a proxy's error page?)'."""
        if "html" in self.content_type.lower():
            return f"{self.status}, an HTML page, not JSON (a proxy's error page?)"
        return str(self.status)


class CountingRetry(GithubRetry):
    """GithubRetry that counts the HTTP requests it re-sends and remembers, per thread, the last answer
    it retried."""

    def __init__(self, tally: list[int] | None = None, answers: threading.local | None = None,
                 **kwargs: Any) -> None:
        self.tally = tally if tally is not None else [0]
        self.answers = answers if answers is not None else threading.local()
        super().__init__(**kwargs)

    def new(self, **kwargs: Any) -> CountingRetry:
        kwargs["tally"] = self.tally
        kwargs["answers"] = self.answers
        return super().new(**kwargs)

    def increment(self, *args: Any, **kwargs: Any) -> Any:
        self.tally[0] += 1
        response = kwargs.get("response", args[2] if len(args) > 2 else None)
        status = getattr(response, "status", None)
        self.answers.last = None if status is None else \
            RetriedAnswer(int(status), str(response.headers.get("Content-Type") or ""))
        return super().increment(*args, **kwargs)

    def last_answer(self) -> RetriedAnswer | None:
        """The last answer the calling thread's requests retried (None after a transport error)."""
        return getattr(self.answers, "last", None)


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A response header by name, whatever its case."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _reset_text(headers: Mapping[str, Any] | None) -> str:
    """'it resets at 13:05:00 UTC (in 59 min)' from X-RateLimit-Reset, or a plain hint when absent."""
    value = _header(headers, "X-RateLimit-Reset")
    try:
        reset = float(value) if value is not None else None
    except ValueError:
        reset = None
    if reset is None:
        return "it resets at the time GitHub did not say; the next run resumes from the stored cursors"
    wait = max(0.0, reset - time.time())
    clock = dt.datetime.fromtimestamp(reset, dt.UTC).strftime("%H:%M:%S UTC")
    left = f"{wait:.0f}s" if wait < 120 else f"{wait / 60:.0f} min"
    return f"it resets at {clock} (in {left}); the next run resumes from the stored cursors"


def _is_cut(exc: BaseException) -> bool:
    """Whether the connection broke off after the answer had begun (a reset or a short body)."""
    return isinstance(exc, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError)


def describe_rest_error(exc: BaseException, *, base_url: str, endpoint: str | None, doing: str,
                        retried: RetriedAnswer | None) -> str:
    """One line for a failure while reading `endpoint` (a path, when known) as part of `doing`."""
    path = endpoint or doing
    if isinstance(exc, BadCredentialsException):
        return f"GitHub at {base_url} rejected the token (401 Bad credentials) for {path}"
    if isinstance(exc, RateLimitExceededException):
        return (f"GitHub rate limit exhausted for {path} ({exc.status}, X-RateLimit-Remaining "
                f"{_header(exc.headers, 'X-RateLimit-Remaining') or '0'}); {_reset_text(exc.headers)}")
    if isinstance(exc, UnknownObjectException):
        return f"GitHub answered 404 Not Found for {path} (repo deleted, renamed or not visible)"
    if isinstance(exc, GithubException):
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        return f"GitHub answered {exc.status} for {path} ({doing}): {message or 'no message'}"
    if isinstance(exc, requests.exceptions.RetryError):
        # urllib3's own text ends in its reason only after the pool and URL: name the status instead
        status = retried.text if retried is not None else str(getattr(exc.args[0], "reason", exc))
        return f"GitHub answered {status} for {path} (still after retries)"
    if isinstance(exc, json.JSONDecodeError):
        return (f"GitHub's answer for {path} is not JSON ({exc.msg} at character {exc.pos} of "
                f"{len(exc.doc)}: cut short or garbled)")
    if _is_cut(exc):
        return f"GitHub reset the connection in the middle of its answer for {path} (still after retries)"
    transport = describe_request_error(exc, "GitHub", base_url)
    if transport is not None:
        return transport
    return f"{type(exc).__name__} while reading {path}: {str(exc).splitlines()[0] if str(exc) else ''}"
