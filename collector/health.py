"""`vsm status`: per source, how fresh the data is, how the last run went, and whether it is stale."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from collector.config import Config, parse_duration
from collector.pipeline import configured_sources
from collector.store import Store

STATUS_SQL = """
WITH ranked AS (
    SELECT *, row_number() OVER (PARTITION BY source ORDER BY run_id DESC) AS newest
    FROM sync_runs
)
SELECT
    s.source,
    (SELECT max(finished_at) FROM sync_runs AS r WHERE r.source = s.source AND r.status = 'success'),
    (SELECT error FROM sync_runs AS r WHERE r.source = s.source AND r.error IS NOT NULL
     ORDER BY run_id DESC LIMIT 1),
    last.status, last.started_at, last.finished_at, last.items, last.requests, last.rate_limit_remaining
FROM (SELECT unnest(?::VARCHAR[]) AS source) AS s
LEFT JOIN ranked AS last ON last.source = s.source AND last.newest = 1
ORDER BY s.source
"""


BUDGET_SQL = """
SELECT source, token_env, resource, remaining, "limit", reset_at, observed_at
FROM rate_budgets ORDER BY source, token_env, resource
"""


@dataclass(frozen=True)
class SourceStatus:
    """The health of one configured source."""

    source: str
    last_success_at: dt.datetime | None
    last_error: str | None
    last_status: str | None
    last_started_at: dt.datetime | None
    last_finished_at: dt.datetime | None
    last_items: int | None
    last_requests: int | None
    rate_limit_remaining: int | None
    age_s: float | None
    stale: bool
    rate_budget: tuple[dict[str, Any], ...] = ()

    def as_json(self) -> dict[str, Any]:
        """JSON-ready fields (timestamps as ISO 8601 UTC)."""
        fields = {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in asdict(self).items()}
        fields["rate_budget"] = [{k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in b.items()}
                                 for b in self.rate_budget]
        return fields


def source_status(config: Config, store: Store, now: dt.datetime | None = None) -> list[SourceStatus]:
    """The status of every configured source; stale = no success within [schedule] stale_after."""
    now = now or dt.datetime.now(dt.UTC)
    limit = parse_duration(config.schedule.stale_after, "schedule.stale_after")
    rows = store.query(STATUS_SQL, [configured_sources(config)])[1]
    statuses = []
    columns, budgets = store.query(BUDGET_SQL)
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in budgets:
        item = dict(zip(columns, row, strict=True))
        by_source.setdefault(item.pop("source"), []).append(item)
    for source, success, error, status, started, finished, items, requests, remaining in rows:
        age = (now - success).total_seconds() if success is not None else None
        statuses.append(SourceStatus(source, success, error, status, started, finished, items, requests,
                                     remaining, age, stale=age is None or age > limit,
                                     rate_budget=tuple(by_source.get(source, ()))))
    return statuses
