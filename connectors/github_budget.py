"""GitHub's rate limits as data: the remaining budget of every token per resource (REST `core`, `graphql`),
learned from response headers and GraphQL's `rateLimit`, shared by every repo collected at once.

A sync asks the budget for a token before each request; the budget hands out the token with the most left,
sleeps until the earliest reset when every token is spent (at most `max_wait` seconds), and otherwise stops
the sync with one line naming the reset time, so the next run resumes from the stored cursors.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# GitHub asks integrators to wait at least a minute after a secondary limit that names no Retry-After.
SECONDARY_DEFAULT_WAIT_S = 60.0


class BudgetExhausted(RuntimeError):
    """Every token's budget is spent and the reset is further away than the sync may wait."""


@dataclass
class _Quota:
    """What GitHub last said about one token and resource."""

    remaining: int | None = None
    limit: int | None = None
    reset_at: float | None = None  # epoch seconds


@dataclass
class TokenBudget:
    """One token: its variable name (the only name shown anywhere), secret and quotas per resource."""

    env: str
    token: str = field(repr=False)
    quotas: dict[str, _Quota] = field(default_factory=dict)
    paused_until: float = 0.0


class RateBudget:
    """The shared, thread-safe budget of a GitHub installation's tokens."""

    def __init__(self, tokens: Mapping[str, str], *, max_wait: float = 900.0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self._tokens = [TokenBudget(env, token) for env, token in tokens.items()]
        self._max_wait = max_wait
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self.waited_s = 0.0

    @property
    def tokens(self) -> list[TokenBudget]:
        """Every token, in configured order."""
        return list(self._tokens)

    def acquire(self, resource: str, cost: int = 1, endpoint: str | None = None) -> TokenBudget:
        """The token to send the next request with; waits (bounded) when every token is spent or paused.

        `endpoint` (the URL the request is for) is named when the budget stops the sync."""
        while True:
            with self._lock:
                now = self._clock()
                for budget in self._tokens:
                    quota = budget.quotas.get(resource)
                    if quota is not None and quota.reset_at is not None and quota.reset_at <= now:
                        quota.remaining = quota.limit  # the window has rolled over
                usable = [b for b in self._tokens if b.paused_until <= now and self._left(b, resource) >= cost]
                if usable:
                    best = max(usable, key=lambda b: self._left(b, resource))
                    quota = best.quotas.setdefault(resource, _Quota())
                    if quota.remaining is not None:
                        quota.remaining -= cost  # reserve it; the answer's own figure replaces this
                    return best
                wake = min(self._ready_at(b, resource, now, cost) for b in self._tokens) if self._tokens else now
                # every token held back by a secondary limit (not by a spent budget): say so, not "spent"
                paused = bool(self._tokens) and all(b.paused_until > now for b in self._tokens)
            wait = max(0.0, wake - now)
            if not self._tokens or wait > self._max_wait:
                raise BudgetExhausted(self._exhausted_message(resource, wake, wait, endpoint, paused))
            if paused:
                log.warning("github: %s paused on all %d token(s) by a secondary rate limit; waiting %.0fs",
                            resource, len(self._tokens), wait)
            else:
                log.warning("github: %s budget spent on all %d token(s); waiting %.0fs for the reset at %s",
                            resource, len(self._tokens), wait, _clock_text(wake))
            self.waited_s += wait
            self._sleep(wait + 0.5)

    def record(self, env: str, resource: str, *, remaining: int | None, limit: int | None = None,
               reset_at: float | None = None) -> None:
        """What GitHub reported for a token (headers or `rateLimit`)."""
        with self._lock:
            budget = self._by_env(env)
            quota = budget.quotas.setdefault(resource, _Quota())
            if remaining is not None:
                quota.remaining = remaining
            if limit is not None:
                quota.limit = limit
            if reset_at is not None:
                quota.reset_at = reset_at

    def record_headers(self, env: str, headers: Mapping[str, Any], default_resource: str = "core") -> None:
        """Read GitHub's X-RateLimit-* headers of one answer."""
        lowered = {str(k).lower(): v for k, v in headers.items()}
        if "x-ratelimit-remaining" not in lowered:
            return
        self.record(env, str(lowered.get("x-ratelimit-resource") or default_resource),
                    remaining=_int(lowered.get("x-ratelimit-remaining")),
                    limit=_int(lowered.get("x-ratelimit-limit")),
                    reset_at=_float(lowered.get("x-ratelimit-reset")))

    def record_graphql(self, env: str, rate_limit: Mapping[str, Any] | None) -> None:
        """Read GraphQL's `rateLimit { cost remaining resetAt limit }` of one answer."""
        if not rate_limit:
            return
        reset = rate_limit.get("resetAt")
        self.record(env, "graphql", remaining=_int(rate_limit.get("remaining")), limit=_int(rate_limit.get("limit")),
                    reset_at=dt.datetime.fromisoformat(reset).timestamp() if reset else None)

    def spent(self, env: str, resource: str, reset_at: float | None = None) -> None:
        """GitHub said the primary limit is reached for this token."""
        self.record(env, resource, remaining=0, reset_at=reset_at)

    def pause(self, env: str, seconds: float | None) -> float:
        """A secondary (abuse) limit on this token: no requests with it for `seconds` (or GitHub's minute)."""
        wait = SECONDARY_DEFAULT_WAIT_S if seconds is None else max(0.0, seconds)
        with self._lock:
            budget = self._by_env(env)
            budget.paused_until = max(budget.paused_until, self._clock() + wait)
        log.warning("github: secondary rate limit on %s; pausing it for %.0fs", env, wait)
        return wait

    def snapshot(self) -> list[dict[str, Any]]:
        """Per token and resource: remaining, limit and reset (for `vsm status` and the run log)."""
        with self._lock:
            return [{"token_env": b.env, "resource": resource, "remaining": q.remaining, "limit": q.limit,
                     "reset_at": dt.datetime.fromtimestamp(q.reset_at, dt.UTC) if q.reset_at else None}
                    for b in self._tokens for resource, q in sorted(b.quotas.items())]

    def remaining(self, resource: str) -> int | None:
        """Remaining budget of a resource over all tokens, None while unknown."""
        with self._lock:
            known = [q.remaining for b in self._tokens if (q := b.quotas.get(resource)) and q.remaining is not None]
        return sum(known) if known else None

    # -- internals ---------------------------------------------------------------------------------

    def _by_env(self, env: str) -> TokenBudget:
        for budget in self._tokens:
            if budget.env == env:
                return budget
        raise KeyError(env)

    @staticmethod
    def _left(budget: TokenBudget, resource: str) -> float:
        quota = budget.quotas.get(resource)
        return float("inf") if quota is None or quota.remaining is None else quota.remaining

    def _ready_at(self, budget: TokenBudget, resource: str, now: float, cost: int) -> float:
        """When this token can pay `cost` again for the resource: after its pause, and its reset if too little is left."""
        quota = budget.quotas.get(resource)
        short = self._left(budget, resource) < cost
        spent_until = quota.reset_at if quota and quota.reset_at and short else now
        if short and not (quota and quota.reset_at):
            spent_until = now + SECONDARY_DEFAULT_WAIT_S  # spent with no reset known: GitHub's minute
        return max(budget.paused_until, spent_until or now)

    def _exhausted_message(self, resource: str, wake: float, wait: float, endpoint: str | None = None,
                           paused: bool = False) -> str:
        names = ", ".join(b.env for b in self._tokens) or "no token"
        asked = f" (asked for {endpoint})" if endpoint else ""
        limit = f"{resource} rate budget spent on {names}{asked}; it resets at"
        if paused:
            limit = f"secondary rate limit on {names}{asked} ({resource}); it lifts at"
        return (f"GitHub {limit} {_clock_text(wake)} (in {_in(wait)}, more than max_rate_limit_wait = "
                f"{self._max_wait:.0f}s); the next run resumes from the stored cursors")


def _in(seconds: float) -> str:
    """A wait in words: '45s' or '60 min'."""
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _clock_text(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%S UTC")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
