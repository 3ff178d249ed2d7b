"""Runs the connectors page by page into the store, then the mapper; one failing source or scope
never stops the others."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from collector.config import Config, parse_duration, secret
from collector.fanout import collect_concurrently
from collector.progress import Progress
from collector.scope_retry import (
    MAX_RESTARTS,
    SCOPE_RESTARTS,
    CursorBook,
    advances,
    is_passing,
    restart_pause,
)
from collector.store import Store
from connectors.base import Connector
from connectors.github import GitHubConnector
from connectors.github_deployed import SOURCE as DEPLOYED_SOURCE
from connectors.github_deployed import DeployedCommits
from connectors.github_graphql import GitHubGraphQLConnector
from connectors.github_issues import make_github_issues
from connectors.jenkins import make_connector as jenkins_connector
from connectors.jira import make_jira
from connectors.pagerduty import make_pagerduty
from connectors.scrub import scrub
from models.calendar import CalendarSettings
from models.mapper import MapResult, MapSettings, run_mapper
from models.records import Page

log = logging.getLogger(__name__)


@dataclass
class SourceResult:
    """How one source's collection run went."""

    source: str
    items: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rate_limit_remaining: int | None = None

    @property
    def ok(self) -> bool:
        """True when every scope of the source was collected."""
        return not self.errors


def _github(config: Config) -> Connector | None:
    """The GitHub connector, when the config has a [github] section."""
    gh = config.github
    if gh is None:
        return None
    common = {"base_url": gh.base_url, "horizon": gh.first_sync_horizon(), "timeout": gh.timeout,
              "retries": gh.retries, "max_rate_limit_wait": gh.max_rate_limit_wait, "ci_workflows": gh.ci_workflows,
              "concurrency": gh.concurrency}
    tokens = {name: secret(name) for name in gh.token_names()}
    if gh.api == "rest":
        return GitHubConnector(gh.repos, token=next(iter(tokens.values()), None), **common)
    return GitHubGraphQLConnector(gh.repos, tokens=tokens, **common)


def _jenkins(config: Config) -> Connector | None:
    """The Jenkins connector, when the config has a [jenkins] section."""
    if config.jenkins is None:
        return None
    return jenkins_connector(config.jenkins, known_repos=config.github.repos if config.github else ())


def _incidents(config: Config, source: str) -> object | None:
    """The [incidents.<source>] section, when configured."""
    return getattr(config.incidents, source, None) if config.incidents else None


# Every source vsm knows, in collection order: (name, is it configured?, factory from config).
SOURCES: list[tuple[str, Callable[[Config], bool], Callable[[Config], Connector | None]]] = [
    ("github", lambda c: c.github is not None, _github),
    ("jenkins", lambda c: c.jenkins is not None, _jenkins),
    ("github_issues", lambda c: c.github is not None and _incidents(c, "github") is not None, make_github_issues),
    ("jira", lambda c: _incidents(c, "jira") is not None, make_jira),
    ("pagerduty", lambda c: _incidents(c, "pagerduty") is not None, make_pagerduty),
]


def configured_sources(config: Config) -> list[str]:
    """Names of the sources the config enables."""
    return [name for name, enabled, _ in SOURCES if enabled(config)]


def collect(config: Config, store: Store, only: Iterable[str] | None = None,
            stop: threading.Event | None = None) -> list[SourceResult]:
    """Collect every configured source (or `only` those named); returns one result per source.

    When `stop` is set (SIGTERM), the running source finishes the page it is storing and stops; what
    was stored stays, and the next run resumes from the cursors.
    """
    wanted = set(only) if only else None
    results = []
    for name, enabled, factory in SOURCES:
        if stop is not None and stop.is_set():
            break
        if (wanted is None or name in wanted) and enabled(config):
            results.append(_collect_source(name, lambda f=factory: f(config), store, stop))  # type: ignore[misc]
    if config.github is not None and (wanted is None or "github" in wanted) and not (stop and stop.is_set()):
        deployed = _deployed_shas_wanted(store)
        if deployed:  # after every source: Jenkins deploys and builds name SHAs too
            results.append(_collect_source(DEPLOYED_SOURCE, lambda: _deployed(config, deployed), store, stop))
    return results


# Deployed or built SHAs of GitHub repos that the commit graph does not know and nobody asked about yet.
_WANTED_SQL = """
WITH shas AS (
    SELECT repo, sha FROM github_deployments
    UNION SELECT repo, sha FROM ci_deployments
    UNION SELECT repo, sha FROM ci_builds
)
SELECT s.repo, any_value(r.default_branch), list(DISTINCT s.sha ORDER BY s.sha)
FROM shas AS s
JOIN repos AS r ON r.repo = s.repo
WHERE regexp_full_match(s.sha, '[0-9a-f]{40}')
  AND NOT EXISTS (SELECT 1 FROM commits AS c WHERE c.repo = s.repo AND c.sha = s.sha)
  AND NOT EXISTS (SELECT 1 FROM commit_parents AS p WHERE p.repo = s.repo AND p.parent_sha = s.sha)
  AND NOT EXISTS (SELECT 1 FROM deployed_shas AS d WHERE d.repo = s.repo AND d.sha = s.sha)
GROUP BY s.repo
"""


def _deployed_shas_wanted(store: Store) -> dict[str, tuple[str, list[str]]]:
    """Per repo: its default branch and the deployed SHAs to look up."""
    return {repo: (branch, shas) for repo, branch, shas in store.query(_WANTED_SQL)[1]}


def _deployed(config: Config, wanted: dict[str, tuple[str, list[str]]]) -> Connector:
    """The connector that fetches the commits of deployed SHAs off the default branch."""
    gh = config.github
    assert gh is not None
    token = next((secret(name) for name in gh.token_names()), None)
    return DeployedCommits(wanted, base_url=gh.base_url, token=token, horizon=gh.first_sync_horizon(),
                           timeout=gh.timeout, retries=gh.retries, max_rate_limit_wait=gh.max_rate_limit_wait,
                           ci_workflows=gh.ci_workflows, concurrency=gh.concurrency)


def _collect_source(name: str, make: Callable[[], Connector | None], store: Store,
                    stop: threading.Event | None = None) -> SourceResult:
    """One source: every scope page by page, with the run recorded in sync_runs."""
    result = SourceResult(name)
    started = time.monotonic()
    run_id = store.start_run(name)
    connector: Connector | None = None
    try:
        connector = make()
        if connector is not None:
            book = CursorBook(store.cursors(name))
            prepare = getattr(connector, "prepare", None)  # e.g. GitHub expands `owner/*` patterns first
            if callable(prepare):
                for page in prepare(book.snapshot()):
                    store.write_page(page)
                    book.written(page)
            workers = int(getattr(connector, "concurrency", 1))
            scopes = connector.scopes()
            if workers > 1 and len(scopes) > 1:
                _collect_scopes_at_once(connector, scopes, book, store, result, workers, stop)
            else:
                for scope in scopes:
                    if stop is not None and stop.is_set():
                        result.errors.append("stopped before all scopes were collected")
                        break
                    _collect_scope(connector, scope, book, store, result, stop)
    except Exception as exc:  # noqa: BLE001 - a source that cannot even start must not stop the others
        message = scrub(connector.describe_error(exc) if connector else f"{type(exc).__name__}: {exc}")
        result.errors.append(message)
        log.error("%s: %s", name, message)
    except BaseException:
        _finish(store, run_id, result, connector, started, interrupted=True)
        raise
    _finish(store, run_id, result, connector, started)
    return result


def _collect_scopes_at_once(connector: Connector, scopes: list[str], book: CursorBook,
                            store: Store, result: SourceResult, workers: int,
                            stop: threading.Event | None = None) -> None:
    """Scopes fetched by a pool of `workers` threads, their pages stored here, one failure per scope."""
    def written(scope: str, page: Page, rows: int) -> None:
        result.items += rows
        if rows:
            log.debug("%s %s %s: +%d rows", connector.source, scope, page.stream, rows)

    for scope, error in collect_concurrently(connector, scopes, book, store, workers, written, stop).items():
        if error is not None:
            result.errors.append(f"{scope}: {error}")
            log.error("%s %s: %s", connector.source, scope, error)


def _collect_scope(connector: Connector, scope: str, book: CursorBook, store: Store, result: SourceResult,
                   stop: threading.Event | None = None) -> None:
    """One scope (repo, job): store each page as it arrives; on failure keep what was stored.

    A passing failure (network, 5xx, a cut body) restarts the scope from the cursors of the pages
    stored so far (collector/scope_retry.py) before the scope is declared failed.
    """
    source = connector.source
    scope_items = 0
    progress = Progress(f"{source} {scope}")
    in_a_row = restarts = 0
    began: dict[tuple[str, str], str] | None = None  # the cursors the current restart began from
    while True:
        try:
            cursors = book.snapshot()
            began = cursors if in_a_row else None
            for page in connector.pages(scope, cursors):
                written = store.write_page(page)
                book.written(page)
                if began is not None and advances(page, began):
                    in_a_row, began = 0, None
                scope_items += written
                result.items += written
                if written:
                    progress.update(f"{page.stream}: {scope_items} rows, {connector.requests_made} requests")
                    log.debug("%s %s %s: +%d rows (%d requests so far)", source, scope, page.stream, written,
                              connector.requests_made)
                if stop is not None and stop.is_set():
                    result.errors.append(f"{scope}: stopped after a stored page; the next run resumes")
                    log.warning("%s %s: stopping after the stored page (shutdown requested)", source, scope)
                    return
            break
        except Exception as exc:  # noqa: BLE001 - one failing scope (repo, job) must not stop the others
            message = f"{scope}: {scrub(connector.describe_error(exc))}"
            if is_passing(exc) and in_a_row < SCOPE_RESTARTS and restarts < MAX_RESTARTS \
                    and not (stop is not None and stop.is_set()):
                in_a_row, restarts = in_a_row + 1, restarts + 1
                log.warning("%s %s; starting %s again from its last stored page (restart %d of %d)", source,
                            message, scope, in_a_row, SCOPE_RESTARTS)
                time.sleep(restart_pause(in_a_row))
                continue
            progress.close()
            result.errors.append(message)
            log.error("%s %s", source, message)
            return
    progress.close()
    log.info("%s %s: done, %d rows, %d requests so far", source, scope, scope_items, connector.requests_made)


def _finish(store: Store, run_id: int, result: SourceResult, connector: Connector | None, started: float,
            interrupted: bool = False) -> None:
    """Record the run's outcome in sync_runs."""
    result.seconds = time.monotonic() - started
    if connector is not None:
        result.requests = connector.requests_made
        result.rate_limit_remaining = connector.rate_limit_remaining
        budget = getattr(connector, "rate_budget", None)  # sources with per-token budgets (GitHub) offer it
        if callable(budget):
            store.save_rate_budget(result.source, budget())
    if interrupted:
        result.errors.append("interrupted")
    status = "success" if result.ok else "failed"
    store.finish_run(run_id, status=status, items=result.items, requests=result.requests,
                     rate_limit_remaining=result.rate_limit_remaining,
                     error="; ".join(result.errors) or None)
    log.info("%s: %s, %d rows, %d requests in %.1fs", result.source, status, result.items, result.requests,
             result.seconds)


def map_settings(config: Config) -> MapSettings:
    """What the mapper needs from the config: bots, environments, the stream, the calendar."""
    calendar = config.calendar
    start, end = calendar.working_hours()
    github = config.github
    return MapSettings(
        bots=tuple(github.bots) if github else (),
        production_environments=tuple(github.production_environments) if github else ("production",),
        stages=config.value_stream(),
        calendar=CalendarSettings(timezone=calendar.timezone, workdays=tuple(calendar.workdays), start=start,
                                  end=end, holidays=tuple(calendar.holidays)),
        include_bots=config.stream.include_bots,
        link_window_s=parse_duration(config.incidents.link_window) if config.incidents else 7 * 86400.0,
        incident_services=tuple(sorted(config.incidents.service_map.items())) if config.incidents else (),
    )


def run_map(config: Config, store: Store, incremental: bool = False) -> MapResult:
    """Rebuild the mapped tables and views from what is stored (or, incrementally, the changes in flight)."""
    started = dt.datetime.now(dt.UTC)
    result = run_mapper(store.con, map_settings(config), incremental=incremental)
    log.info("map: %d changes, %d deployed, in %.2fs", result.changes, result.deployed,
             (dt.datetime.now(dt.UTC) - started).total_seconds())
    return result
