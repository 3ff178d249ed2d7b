"""One retrying `requests` session for the requests-based connectors (Jira, PagerDuty): a timeout on every
request, backoff on 429 and 5xx that honours Retry-After, and a count of the requests actually sent."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

# Answers worth another try: rate limited, or the server (or a proxy in front of it) failing for now.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A Retry-After longer than this is cut short: a sync should fail visibly rather than hang for an hour.
MAX_RETRY_AFTER_S = 120.0


class _CountingRetry(Retry):
    """urllib3 Retry that counts every re-sent request and caps how long a Retry-After may make it wait."""

    def __init__(
        self,
        *args: Any,
        tally: list[int] | None = None,
        max_retry_after: float = MAX_RETRY_AFTER_S,
        **kwargs: Any,
    ) -> None:
        self.tally = tally if tally is not None else [0]
        self.max_retry_after = max_retry_after
        super().__init__(*args, **kwargs)

    def new(self, **kwargs: Any) -> _CountingRetry:
        """The next state of the retry (urllib3 copies it per attempt); shares the tally."""
        kwargs.setdefault("tally", self.tally)
        kwargs.setdefault("max_retry_after", self.max_retry_after)
        return super().new(**kwargs)  # type: ignore[return-value]

    def increment(self, *args: Any, **kwargs: Any) -> Retry:
        """Count the failed attempt that is about to be retried."""
        self.tally[0] += 1
        return super().increment(*args, **kwargs)

    def get_retry_after(self, response: Any) -> float | None:
        """The server's Retry-After in seconds, capped."""
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.max_retry_after)


class RetryingSession(requests.Session):
    """A Session with a default timeout, retries and a request counter; see `retrying_session`."""

    def __init__(self, timeout: float, retry: _CountingRetry) -> None:
        super().__init__()
        self.timeout = timeout
        self._retry = retry
        self._responses = 0
        self._count_lock = threading.Lock()
        adapter = HTTPAdapter(max_retries=retry)
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.hooks["response"].append(self._count)

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """Response hook: one more request reached the server and was answered (threads may share a session)."""
        with self._count_lock:
            self._responses += 1
        return response

    @property
    def requests_made(self) -> int:
        """Requests sent so far: answered ones plus the attempts that were retried."""
        return self._responses + self._retry.tally[0]

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Send with the session's timeout unless the call gives its own."""
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def retrying_session(
    *,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 0.5,
    headers: Mapping[str, str] | None = None,
    auth: Any = None,
    max_retry_after: float = MAX_RETRY_AFTER_S,
    methods: frozenset[str] = frozenset({"GET", "HEAD"}),
) -> RetryingSession:
    """A session for one connector: every request times out, 429/5xx and connection failures are retried
    with exponential backoff (or after the server's Retry-After), and `requests_made` counts the wire.

    Only `methods` are retried on a status (GETs by default: the connectors only read; GraphQL reads
    by POST and passes it). Headers and auth are set on the session,
    so secrets travel in headers and never appear in a URL that an exception message could show.
    """
    retry = _CountingRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=sorted(RETRY_STATUSES),
        allowed_methods=methods,
        respect_retry_after_header=True,
        # the last answer (e.g. the final 429) comes back to the caller, which raises a readable error
        raise_on_status=False,
        max_retry_after=max_retry_after,
    )
    session = RetryingSession(timeout, retry)
    session.headers.update({"Accept": "application/json", "User-Agent": "vsm-collector"})
    if headers:
        session.headers.update(headers)
    session.auth = auth
    return session


def error_summary(response: requests.Response) -> str:
    """The first useful line of an error answer's body (JSON error messages of Jira and PagerDuty)."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip().splitlines()
        return text[0][:200] if text else response.reason or "no message"
    messages: list[str] = []
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            messages.append(str(error.get("message") or ""))
            messages += [str(e) for e in error.get("errors") or []]
        elif isinstance(error, str):
            messages.append(error)
        messages += [str(m) for m in body.get("errorMessages") or []]
        errors = body.get("errors")
        if isinstance(errors, dict):
            messages += [f"{k}: {v}" for k, v in errors.items()]
        if body.get("message"):
            messages.append(str(body["message"]))
    text = "; ".join(m for m in messages if m)
    return (text or response.reason or "no message").splitlines()[0][:200]


def describe_request_error(exc: BaseException, service: str, base_url: str) -> str | None:
    """One line for the transport-level failures every requests-based connector shares, else None."""
    if isinstance(exc, requests.exceptions.RetryError):
        return f"{service} at {base_url} kept failing after retries ({str(exc).splitlines()[0][:160]})"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{service} at {base_url} did not answer in time (timeout)"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS handshake with {service} at {base_url} failed"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect to {service} at {base_url}"
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        response = exc.response
        status = response.status_code
        if status == 401:
            return f"{service} at {base_url} rejected the credentials (401 Unauthorized)"
        if status == 403:
            return f"{service} at {base_url} refused access (403): {error_summary(response)}"
        if status == 429:
            return f"{service} rate limit exhausted at {base_url} (429); try again later"
        path = requests.utils.urlparse(response.url).path
        return f"{service} answered {status} for {path}: {error_summary(response)}"
    if isinstance(exc, KeyError | TypeError | ValueError):
        return f"malformed {service} payload: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None
