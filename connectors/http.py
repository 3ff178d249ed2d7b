"""One retry policy for every HTTP client vsm uses (requests sessions for Jira, PagerDuty and GitHub GraphQL,
python-jenkins' session for Jenkins): a timeout on every request, backoff on 429, 5xx, timeouts and
connection resets, Retry-After honoured (capped), and an exact count of the requests put on the wire."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

# Answers worth another try: rate limited, or the server (or a proxy in front of it) failing for now.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A Retry-After longer than this is cut short: a sync should fail visibly rather than hang for an hour.
MAX_RETRY_AFTER_S = 120.0
READ_METHODS = frozenset({"GET", "HEAD"})


class RequestCount:
    """A thread-safe count of the HTTP requests sent: first attempts and every retry."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        """Count n more requests on the wire."""
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        """Requests counted so far."""
        return self._value


class CountingRetry(Retry):
    """urllib3 Retry that counts every request it sends again and caps how long a Retry-After may wait.

    Only a retry that really goes out is counted (increment returned a new state); the last attempt of an
    exhausted retry was already counted when it was sent, so counts stay exact whether a request ends in
    an answer, an error status or a connection failure.
    """

    def __init__(self, *args: Any, count: RequestCount | None = None,
                 max_retry_after: float = MAX_RETRY_AFTER_S, **kwargs: Any) -> None:
        self.count = count if count is not None else RequestCount()
        self.max_retry_after = max_retry_after
        super().__init__(*args, **kwargs)

    def new(self, **kwargs: Any) -> CountingRetry:
        """The next state of the retry (urllib3 copies it per attempt); shares the count and the cap."""
        kwargs.setdefault("count", self.count)
        kwargs.setdefault("max_retry_after", self.max_retry_after)
        return super().new(**kwargs)  # type: ignore[return-value]

    def increment(self, *args: Any, **kwargs: Any) -> CountingRetry:
        """Count the request about to be sent again (none when the retries are used up: this raises)."""
        retry = super().increment(*args, **kwargs)
        self.count.add()
        return retry  # type: ignore[return-value]

    def get_retry_after(self, response: Any) -> float | None:
        """The server's Retry-After in seconds, capped."""
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.max_retry_after)


def counting_retry(retries: int, *, count: RequestCount, backoff: float = 0.5,
                   methods: frozenset[str] = READ_METHODS,
                   max_retry_after: float = MAX_RETRY_AFTER_S) -> CountingRetry:
    """The retry policy every source shares: `retries` more tries on RETRY_STATUSES (only for `methods`),
    timeouts and connection failures, exponential backoff or the server's Retry-After (capped), counted.

    The last answer (e.g. the final 429) comes back to the caller, which raises a readable error.
    """
    return CountingRetry(
        total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
        status_forcelist=sorted(RETRY_STATUSES), allowed_methods=methods, respect_retry_after_header=True,
        raise_on_status=False, count=count, max_retry_after=max_retry_after)


@dataclass(frozen=True)
class Answer:
    """What the server last answered through an adapter: enough to describe a failure in one line."""

    status: int
    reason: str
    content_type: str
    url: str
    asked: str  # the URL first asked for: differs from `url` when redirects led there

    @property
    def path(self) -> str:
        """The path asked for, and where redirects led (a login page), for messages."""
        asked = urlsplit(self.asked).path or "/"
        final = urlsplit(self.url).path or "/"
        return asked if final == asked else f"{asked}, redirected to {final}"

    @property
    def is_html(self) -> bool:
        """Whether the body is an HTML page (a login page or a proxy's error page, not an API answer)."""
        return "html" in self.content_type.lower()


class CountingAdapter(HTTPAdapter):
    """An HTTPAdapter that retries with a CountingRetry, counts each request it sends and remembers the
    last answer (per thread, as threads may share a session)."""

    def __init__(self, retry: CountingRetry) -> None:
        self.count = retry.count
        self._last = threading.local()
        super().__init__(max_retries=retry)

    @property
    def last_answer(self) -> Answer | None:
        """The last answer this thread received (None after a request that got no answer)."""
        return getattr(self._last, "answer", None)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        """Send (retries included) and note the answer; a redirect's target keeps the URL first asked."""
        self.count.add()
        previous = self.last_answer
        asked = previous.asked if previous is not None and 300 <= previous.status < 400 else request.url or ""
        self._last.answer = None
        response = super().send(request, *args, **kwargs)
        self._last.answer = Answer(response.status_code, response.reason or "",
                                   response.headers.get("Content-Type") or "", response.url or "", asked)
        return response


class RetryingSession(requests.Session):
    """A Session with a default timeout, retries and a request counter; see `retrying_session`."""

    def __init__(self, timeout: float, retry: CountingRetry) -> None:
        super().__init__()
        self.timeout = timeout
        self.adapter = CountingAdapter(retry)
        self.mount("https://", self.adapter)
        self.mount("http://", self.adapter)

    @property
    def requests_made(self) -> int:
        """Requests sent so far, retries included."""
        return self.adapter.count.value

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
    methods: frozenset[str] = READ_METHODS,
) -> RetryingSession:
    """A session for one connector: every request times out, 429/5xx and connection failures are retried
    with exponential backoff (or after the server's Retry-After), and `requests_made` counts the wire.

    Only `methods` are retried on a status (GETs by default: the connectors only read; GraphQL reads
    by POST and passes it). Headers and auth are set on the session,
    so secrets travel in headers and never appear in a URL that an exception message could show.
    """
    retry = counting_retry(retries, count=RequestCount(), backoff=backoff, methods=methods,
                           max_retry_after=max_retry_after)
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


class MalformedAnswer(ValueError):
    """An answer that is not the JSON its endpoint documents; str() is one line naming the service, the
    endpoint and the cause. `passing` tells the pipeline whether another try may help (a body cut short)."""

    def __init__(self, message: str, *, passing: bool = False) -> None:
        super().__init__(message)
        self.passing = passing


def json_answer(response: requests.Response, service: str, expect: type = dict) -> Any:
    """The JSON body of a successful answer, checked to be an `expect` (object or list).

    An HTML page (a login page or redirect, a proxy's error page) and JSON of another shape are not passing:
    the next try would get the same. Invalid JSON is passing: most often a body cut short in transit.
    """
    asked = response.history[0].url if response.history else response.url
    path = requests.utils.urlparse(asked).path or "/"
    kind = response.headers.get("Content-Type") or ""
    if "html" in kind.lower():
        final = requests.utils.urlparse(response.url).path or "/"
        where = path if final == path else f"{path}, redirected to {final}"
        raise MalformedAnswer(f"{service} answered an HTML page, not JSON, for {where}: "
                              "wrong credentials or a login redirect?")
    try:
        body = response.json()
    except ValueError as exc:
        raise MalformedAnswer(f"{service} answered malformed JSON for {path}: {str(exc).splitlines()[0][:120]}",
                              passing=True) from None
    if not isinstance(body, expect):
        raise MalformedAnswer(f"{service} answered JSON of the wrong shape for {path}: "
                              f"{'an object' if expect is dict else 'a list'} expected, got {_json_kind(body)}")
    return body


def wrong_shape(service: str, path: str, what: str) -> MalformedAnswer:
    """The error for an answer whose envelope or items lack what the endpoint documents."""
    return MalformedAnswer(f"{service} answered JSON of the wrong shape for {path}: {what}")


def _json_kind(value: Any) -> str:
    """A JSON value's type in words, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def request_path(exc: BaseException) -> str:
    """The URL path a failed request asked for, or '' when unknown (a body cut mid-read carries none)."""
    if not isinstance(exc, requests.exceptions.RequestException):
        return ""
    url = exc.response.url if exc.response is not None else getattr(exc.request, "url", None)
    return requests.utils.urlparse(url).path if url else ""


def safe_url(url: str) -> str:
    """The server URL without any user:password@ part, for messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))) \
        if parts.hostname else url


def is_timeout(exc: BaseException) -> bool:
    """Whether a requests error was a read or connect timeout (retries wrap it in MaxRetryError)."""
    if isinstance(exc, requests.exceptions.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # urllib3 derives "connection refused" (NewConnectionError) from its connect-timeout error
    return isinstance(reason, urllib3.exceptions.TimeoutError) and \
        not isinstance(reason, urllib3.exceptions.NewConnectionError)


def describe_request_error(exc: BaseException, service: str, base_url: str, where: str | None = None) -> str | None:
    """One line for the failures every requests-based connector shares (naming the endpoint), else None."""
    if isinstance(exc, MalformedAnswer):
        return str(exc)
    path = request_path(exc)
    at = f" for {path}" if path else ""
    if isinstance(exc, requests.exceptions.RetryError):
        # urllib3's text names the pool and URL first and its reason ('too many 502 error responses') last
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return f"{service} at {base_url} kept failing after retries{at} ({str(reason or exc).splitlines()[0][:160]})"
    if is_timeout(exc):  # a read timeout that outlasts the retries comes wrapped in a ConnectionError
        retried = "" if isinstance(exc, requests.exceptions.Timeout) else ", still after retries"
        return f"{service} at {base_url} did not answer {path or 'the request'} in time (timeout{retried})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"{service} at {base_url} reset the connection in the middle of its answer{at} (still after retries)"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS handshake with {service} at {base_url} failed"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect to {service} at {base_url}"
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        response = exc.response
        status = response.status_code
        if status == 401:
            return f"{service} at {base_url} rejected the credentials (401 Unauthorized){at}"
        if status == 403:
            return f"{service} at {base_url} refused access (403){at}: {error_summary(response)}"
        if status == 429:
            return f"{service} rate limit exhausted at {base_url} (429{at}, still after retries); try again later"
        again = " (still after retries)" if status in RETRY_STATUSES else ""
        return f"{service} answered {status} for {path}{again}: {error_summary(response)}"
    if isinstance(exc, KeyError | TypeError | ValueError | AttributeError):
        text = str(exc).splitlines()[0] if str(exc) else ""
        return f"malformed {service} payload{f' from {where}' if where else ''}: {type(exc).__name__}: {text}"
    return None
