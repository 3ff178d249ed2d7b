"""One GraphQL endpoint of GitHub, spoken over the shared retrying session under the shared rate budget.

GitHub's GraphQL differs from REST in how it fails: errors come as HTTP 200 with an `errors` list (and
maybe partial `data`), a spent budget is a `RATE_LIMITED` error, and secondary limits are 403s or 429s.
This client turns each of those into a wait, a retry or one exception, so no caller ever sees partial data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from connectors.github_budget import RateBudget
from connectors.http import RetryingSession, error_summary, is_timeout, retrying_session

log = logging.getLogger(__name__)

# Error types that a second try can clear; anything else (NOT_FOUND, a bad query) is final.
TRANSIENT_TYPES = frozenset({"SERVICE_UNAVAILABLE", "TIMEOUT", "INTERNAL", None})
# Transport failures urllib3 does not retry on its own once the headers have come: a body cut mid-read.
_CUT = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


class GraphQLFailure(RuntimeError):
    """A query GitHub could not answer completely; nothing of it is stored."""

    def __init__(self, message: str, types: tuple[str | None, ...] = (), passing: bool = False) -> None:
        super().__init__(message)
        self.types = types
        # whether the failure may go away on its own (the pipeline then restarts the repo from its last page)
        self.passing = passing


def graphql_url(base_url: str) -> str:
    """The GraphQL endpoint for a REST base URL: api.github.com/graphql, or /api/graphql on GitHub Enterprise."""
    split = urlsplit(base_url.rstrip("/"))
    path = split.path
    if path.endswith("/api/v3"):
        path = path[: -len("/v3")] + "/graphql"  # GitHub Enterprise Server: /api/v3 -> /api/graphql
    else:
        path = path + "/graphql"
    return urlunsplit((split.scheme, split.netloc, path, "", ""))


def _primary(response: requests.Response) -> bool:
    """The primary limit answered by status (403 or 429 with X-RateLimit-Remaining 0), not as RATE_LIMITED."""
    return response.status_code in (403, 429) and response.headers.get("X-RateLimit-Remaining") == "0"


def _secondary(response: requests.Response) -> bool:
    """A secondary (abuse) limit: 429, or a 403 whose message says so (a plain 403 is a permission error)."""
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    return "secondary rate limit" in (response.text or "").lower() or "abuse" in (response.text or "").lower()


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _reset_at(response: requests.Response) -> float:
    """When the primary limit of an answer resets (X-RateLimit-Reset), or in GitHub's minute when unsaid."""
    try:
        return float(response.headers["X-RateLimit-Reset"])
    except (KeyError, ValueError):
        return time.time() + 60


def _status(response: requests.Response) -> str:
    """'502 Bad Gateway, an HTML page (a proxy's error page?)' or '500: <GitHub's message>', for one line."""
    text = f"{response.status_code} {response.reason}".strip() if response.reason else str(response.status_code)
    if "html" in (response.headers.get("Content-Type") or "").lower():
        return f"{text}, an HTML page, not JSON (a proxy's error page?)"
    return f"{text}: {error_summary(response)}"


def _where(errors: list[Any]) -> str:
    """Where in the answer the errors are (`repository.pullRequests.nodes.3.reviews`), when GitHub says."""
    paths = {".".join(str(p) for p in e["path"]) for e in errors if isinstance(e, dict) and e.get("path")}
    return f" at {', '.join(sorted(paths)[:3])}" if paths else ""


class GraphQLClient:
    """Sends queries with the token that has the most points left; waits, retries or raises GraphQLFailure."""

    def __init__(self, url: str, budget: RateBudget, *, timeout: float = 30.0, retries: int = 4,
                 session: RetryingSession | None = None) -> None:
        self.url = url
        self.budget = budget
        # POST is retried on 5xx/429 too: a GraphQL query only reads
        self.session = session or retrying_session(
            timeout=timeout, retries=retries, methods=frozenset({"GET", "HEAD", "POST"}),
            headers={"Accept": "application/vnd.github+json"})
        # times one query is sent before its failure ends the repo's sync: the configured retries, once more
        # each for answers the session cannot judge (errors with partial data, a cut or garbled body, a limit)
        self.attempts = max(1, retries + 1)
        self.points = 0  # points spent by this client (the `cost` GitHub reported)
        self.path = urlsplit(url).path or "/"

    @property
    def requests_made(self) -> int:
        """POSTs sent, retries included."""
        return self.session.requests_made

    def query(self, text: str, variables: Mapping[str, Any] | None = None, *, cost: int = 1,
              tolerate: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The `data` of a query answered completely; `cost` is the expected points, to pick a token.

        Errors of a type in `tolerate` (e.g. NOT_FOUND for a deleted node among `nodes(ids:)`) leave a null
        where the object was and the rest of the answer counts as complete. Every failure is one
        GraphQLFailure line naming the endpoint and the cause, marked `passing` when another run may not
        meet it (a server error, a cut body, a timeout)."""
        last, passing = "no answer", True
        for attempt in range(1, self.attempts + 1):
            token = self.budget.acquire("graphql", cost, endpoint=self.url)
            headers = {"Authorization": f"Bearer {token.token}"} if token.token else {}
            try:
                response = self.session.post(self.url, json={"query": text, "variables": dict(variables or {})},
                                             headers=headers)
            except _CUT as exc:
                last = f"the connection broke off in the middle of the answer ({_cut_cause(exc)})"
                log.warning("github graphql: %s for %s (attempt %d of %d)", last, self.path, attempt, self.attempts)
                continue
            except requests.exceptions.RequestException as exc:
                raise GraphQLFailure(f"GitHub GraphQL at {self.url} {_transport(exc)}", passing=True) from None
            self.budget.record_headers(token.env, response.headers, "graphql")
            if _primary(response):
                # the points budget, said by status: mark the token spent; the budget waits for the reset or stops
                self.budget.spent(token.env, "graphql", _reset_at(response))
                last, passing = f"primary rate limit ({response.status_code}, X-RateLimit-Remaining 0)", False
                continue
            if _secondary(response):
                self.budget.pause(token.env, _retry_after(response))
                last, passing = f"secondary rate limit ({response.status_code})", True
                continue
            if response.status_code == 401:
                raise GraphQLFailure(f"GitHub GraphQL at {self.url} rejected the token in {token.env} "
                                     "(401 Bad credentials)")
            if response.status_code >= 400:
                again = " (still after retries)" if response.status_code >= 500 else ""
                raise GraphQLFailure(f"GitHub GraphQL at {self.url} answered {_status(response)}{again}",
                                     passing=response.status_code >= 500)
            try:
                body = response.json()
            except ValueError as exc:
                at = getattr(exc, "pos", None)
                last = (f"malformed JSON in the answer ({len(response.content)} bytes, cut short or garbled"
                        f"{f' at byte {at}' if at is not None else ''})")
                log.warning("github graphql: %s for %s (attempt %d of %d)", last, self.path, attempt, self.attempts)
                continue
            if not isinstance(body, dict):
                raise GraphQLFailure(f"GitHub GraphQL at {self.url} answered JSON of the wrong shape: "
                                     "not an object", passing=False)
            errors = body.get("errors") or []
            data = body.get("data")
            if isinstance(data, dict):
                self.budget.record_graphql(token.env, data.get("rateLimit"))
                spent = (data.get("rateLimit") or {}).get("cost")
                self.points += int(spent) if isinstance(spent, int) else 0
            if not errors and isinstance(data, dict):
                return data
            types = tuple(e.get("type") if isinstance(e, dict) else None for e in errors)
            if isinstance(data, dict) and types and all(kind in tolerate for kind in types):
                return data
            message = "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors)[:300]
            if "RATE_LIMITED" in types:
                # a spent points budget: mark the token spent until its reset and let the budget wait or stop
                reset = response.headers.get("X-RateLimit-Reset")
                self.budget.spent(token.env, "graphql", float(reset) if reset else time.time() + 60)
                last, passing = "points budget spent (RATE_LIMITED)", False
                continue
            transient = all(kind in TRANSIENT_TYPES for kind in types)
            described = f"errors{' with partial data' if isinstance(data, dict) else ''}{_where(errors)}: {message}"
            if transient and attempt < self.attempts:
                # partial data is dropped whole: the same query again, after a short pause
                log.warning("github graphql: %s (attempt %d of %d); retrying", described, attempt, self.attempts)
                time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
                last = described
                continue
            raise GraphQLFailure(f"GitHub GraphQL at {self.url} answered {described}", types, passing=transient)
        raise GraphQLFailure(f"GitHub GraphQL at {self.url} gave no complete answer after {self.attempts} "
                             f"attempts: {last}", passing=passing)


def _first_line(exc: BaseException) -> str:
    """An exception's message, first line only."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cut_cause(exc: BaseException) -> str:
    """Why a body broke off: the socket error at its root (connection reset), or how much was missing."""
    seen: list[BaseException] = []
    pending: list[Any] = [exc]
    while pending:
        item = pending.pop()
        if isinstance(item, BaseException) and item not in seen:
            seen.append(item)
            pending += [*item.args, item.__cause__, item.__context__]
    for item in seen:
        if isinstance(item, OSError) and item.strerror:
            return item.strerror.lower()
    incomplete = next((i for i in seen if type(i).__name__ == "IncompleteRead"), None)
    return f"the body ended early: {incomplete}" if incomplete is not None else _first_line(exc)[:120]


def _transport(exc: requests.exceptions.RequestException) -> str:
    """What went wrong on the wire, after the session's retries, as the end of a sentence."""
    if is_timeout(exc):
        return "did not answer in time (read timeout, still after retries)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        cause = _first_line(reason) if reason is not None else _first_line(exc)
        return f"could not be reached or cut the connection (still after retries: {cause[:160]})"
    return f"failed: {type(exc).__name__}: {_first_line(exc)[:160]}"
