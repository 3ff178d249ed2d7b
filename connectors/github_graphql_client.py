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
from connectors.http import RetryingSession, error_summary, retrying_session

log = logging.getLogger(__name__)

# Error types that a second try can clear; anything else (NOT_FOUND, a bad query) is final.
TRANSIENT_TYPES = frozenset({"SERVICE_UNAVAILABLE", "TIMEOUT", "INTERNAL", None})
# How many times one query is sent before its failure ends the repo's sync.
ATTEMPTS = 4


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
        self.points = 0  # points spent by this client (the `cost` GitHub reported)

    @property
    def requests_made(self) -> int:
        """POSTs sent, retries included."""
        return self.session.requests_made

    def query(self, text: str, variables: Mapping[str, Any] | None = None, *, cost: int = 1,
              tolerate: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The `data` of a query answered completely; `cost` is the expected points, to pick a token.

        Errors of a type in `tolerate` (e.g. NOT_FOUND for a deleted node among `nodes(ids:)`) leave a null
        where the object was and the rest of the answer counts as complete."""
        last = "no answer"
        for attempt in range(1, ATTEMPTS + 1):
            token = self.budget.acquire("graphql", cost)
            headers = {"Authorization": f"Bearer {token.token}"} if token.token else {}
            response = self.session.post(self.url, json={"query": text, "variables": dict(variables or {})},
                                         headers=headers)
            self.budget.record_headers(token.env, response.headers, "graphql")
            if _secondary(response):
                self.budget.pause(token.env, _retry_after(response))
                last = f"secondary rate limit ({response.status_code})"
                continue
            if response.status_code == 401:
                raise GraphQLFailure(f"GitHub GraphQL at {self.url} rejected the token in {token.env} "
                                     "(401 Bad credentials)")
            if response.status_code >= 400:
                raise GraphQLFailure(f"GitHub GraphQL answered {response.status_code}: {error_summary(response)}",
                                     passing=response.status_code >= 500 or response.status_code == 429)
            try:
                body = response.json()
            except ValueError:
                last = "malformed JSON in the answer"
                log.warning("github graphql: %s (attempt %d of %d)", last, attempt, ATTEMPTS)
                continue
            if not isinstance(body, dict):
                raise GraphQLFailure("malformed GitHub GraphQL answer: not a JSON object")
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
                last = "points budget spent (RATE_LIMITED)"
                continue
            if all(kind in TRANSIENT_TYPES for kind in types) and attempt < ATTEMPTS:
                # partial data is dropped whole: the same query again, after a short pause
                log.warning("github graphql: %s (attempt %d of %d); retrying", message, attempt, ATTEMPTS)
                time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
                last = message
                continue
            raise GraphQLFailure(f"GitHub GraphQL error: {message}", types,
                                 passing=all(kind in TRANSIENT_TYPES for kind in types))
        raise GraphQLFailure(f"GitHub GraphQL gave no complete answer after {ATTEMPTS} attempts: {last}",
                             passing="RATE_LIMITED" not in last and "points budget" not in last)
