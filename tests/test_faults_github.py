"""The GitHub fault matrix: each fault of the simulated GitHub, over both transports, through `vsm collect`.

Every case is compared with a clean run of the same small world (two repos, plus PagerDuty as another
configured source): every stored table and every public view the mapper builds equal it row for row
(tests/fault_helpers.py names the few run-specific columns left out), so nothing is lost, duplicated or wrong.
A fault that passes is retried away and the run equals the clean one. A fault that persists beyond the
retries ends the failing repo with one line naming the source, the repo, the endpoint and the cause;
`vsm collect` exits 1, the other repo and PagerDuty still collect exactly, what the failing repo stored is
part of the clean run, and a re-run once the fault has cleared gives exactly the clean tables.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from collector import scope_retry
from collector.demo import to_toml
from collector.demo.github_graphql import github_schema
from collector.demo.github_server import GitHubSimulator
from collector.demo.incident_world import IncidentWorld, build_incidents
from collector.demo.pagerduty_server import PagerDutySimulator
from collector.demo.served import Fault
from collector.demo.world import World, generate_world
from tests.conftest import WORLD_END
from tests.fault_helpers import (
    Outcome,
    Snapshot,
    assert_part_of,
    differences,
    one_line,
    server_names,
    snapshot,
    vsm,
)

APIS = ("graphql", "rest")
# REST costs three requests a PR: its history starts later (GraphQL's needs two rounds of the failing repo)
SINCE = {"graphql": "2026-01-01", "rest": "2026-11-13"}
# the failing repo needs two GraphQL rounds (its history is longer than a page), so that a fault can meet it
# after its first round is stored
FAILING, HEALTHY = "petclinic/web", "petclinic/vets"
PD_TOKEN_ENV, PD_TOKEN = "FAULTS_GITHUB_PD_TOKEN", "pd-token"
# small on purpose: read timeouts wait this long, and every retry, restart and rate-limit wait is short
TIMEOUT_S, RETRIES, MAX_RATE_LIMIT_WAIT_S = 1.5, 1, 5
NGINX_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
             "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
SECONDARY = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you "
             "reach out to GitHub Support for help, please include the request ID SIM:0001.")
PRIMARY = ("API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include "
           "the request ID SIM:0002.")
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"


@dataclass(frozen=True)
class Case:
    """One fault: how the simulator injects it and the words a line about it names."""

    name: str
    fault: dict[str, Any] = field(default_factory=dict)  # inject_fault keywords (status, headers, body, ...)
    cause: tuple[str, ...] = ()
    # a limit of the token rather than of one answer: when it persists, every request of every repo meets it
    token_wide: bool = False
    # when it persists it fails the repo's first request (else a later page, after some pages are stored):
    # faults that cost seconds per try, so that the restarts of a repo that stored nothing stay few
    at_start: bool = False

    def keywords(self, persistent: bool) -> dict[str, Any]:
        """inject_fault's keywords; a primary limit resets a moment ahead, or in an hour when it persists."""
        fault = dict(self.fault)
        if self.name == "primary rate limit":
            reset = int(time.time()) + (3600 if persistent else 2)
            fault["headers"] = {**fault["headers"], "X-RateLimit-Reset": str(reset)}
        return fault

    def inject(self, sim: GitHubSimulator, api: str, target: str = FAILING, *, skip: int = 0,
               persistent: bool = False) -> Fault | None:
        """Aim the fault at one request: over GraphQL the (skip+1)-th round of the repo `target`, over REST
        the first request whose path matches `target`. Persistent, it meets every try of the failing repo
        (its first request, or once some of its pages are stored), or of every repo for a token's limit.
        Returns the fault (None for partial data: a knob of the simulated GraphQL endpoint)."""
        times = 10_000 if persistent else 1
        if self.name == "GraphQL errors with partial data":
            assert sim.graphql is not None
            newest = max(sim.world.repo(target).pulls, key=lambda p: (p.updated_at, p.number))
            sim.graphql.fail_reviews_of = {newest.number}  # in the first page: its round never stores
            sim.graphql.fail_reviews_times = None if persistent else 1
            return None
        fault = self.keywords(persistent)
        if persistent and self.token_wide:
            return sim.inject_fault(r"^/", times=times, **fault)
        if api == "graphql":  # every round of a repo names it in its variables
            if persistent:
                skip = 0 if self.at_start else 1
            return sim.inject_fault(r"^/graphql", times=times, request_regex=rf'"name": "{target.split("/")[1]}"',
                                    skip=skip, **fault)
        if persistent:
            target = rf"^/repos/{FAILING}(\?|$)" if self.at_start else rf"^/repos/{FAILING}/pulls\?"
        return sim.inject_fault(target, times=times, **fault)

    def endpoint(self, api: str, scope: str = FAILING) -> str:
        """The endpoint a line about the persistent fault names."""
        if api == "graphql":
            return "/graphql"
        return f"/repos/{scope}" if self.at_start or self.token_wide else f"/repos/{scope}/pulls"


CASES = {case.name: case for case in (
    Case("500", {"status": 500}, ("500",)),
    Case("502 with an HTML page", {"status": 502, "body": NGINX_502}, ("502", "HTML")),
    Case("read timeout", {"status": None, "delay": TIMEOUT_S + 0.5}, ("timeout",), at_start=True),
    Case("connection reset mid-body", {"status": None, "reset": True}, ("reset",)),
    Case("primary rate limit", {"status": 403, "body": {"message": PRIMARY, "documentation_url": RATE_DOCS},
                                "headers": {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000"}},
         ("rate", "resets at"), token_wide=True),
    Case("secondary rate limit 403", {"status": 403, "body": {"message": SECONDARY, "documentation_url": RATE_DOCS},
                                      "headers": {"Retry-After": "1"}}, ("secondary rate limit",), at_start=True),
    Case("429 with Retry-After", {"status": 429, "headers": {"Retry-After": "1"}}, ("429",), at_start=True),
    Case("malformed JSON", {"status": 200, "body": '{"data": {"repository": {"nameWithOwner": '}, ("JSON",)),
    Case("truncated page", {"status": None, "truncate": True}, ("JSON",)),
    Case("GraphQL errors with partial data", cause=("partial data", "Something went wrong")),
)}

# Passing faults, several to a run, each on a request of its own: (case, target, skip). Over GraphQL a target
# is a repo whose (skip+1)-th round the fault meets (FAILING has two rounds, HEALTHY one); over REST a path.
_WEB, _VETS = f"^/repos/{FAILING}", f"^/repos/{HEALTHY}"
PASSING: dict[str, dict[str, list[tuple[str, str, int]]]] = {
    "graphql": {
        "server errors": [("500", FAILING, 0), ("502 with an HTML page", FAILING, 1),
                          ("429 with Retry-After", HEALTHY, 0)],
        "broken answers": [("read timeout", FAILING, 0), ("truncated page", FAILING, 1),
                           ("malformed JSON", HEALTHY, 0)],
        "rate limits and a reset": [("primary rate limit", FAILING, 0), ("secondary rate limit 403", FAILING, 1),
                                    ("connection reset mid-body", HEALTHY, 0)],
        "errors with partial data": [("GraphQL errors with partial data", FAILING, 0)],
    },
    "rest": {
        "server errors and rate limits": [
            ("500", rf"{_WEB}/pulls\?", 0), ("502 with an HTML page", rf"{_VETS}/pulls\?", 0),
            ("primary rate limit", rf"{_WEB}/commits\?", 0), ("secondary rate limit 403", rf"{_VETS}/commits\?", 0),
            ("429 with Retry-After", rf"{_WEB}/actions/runs\?", 0)],
        "broken answers": [
            ("read timeout", rf"{_WEB}/deployments\?", 0), ("connection reset mid-body", rf"{_VETS}/deployments\?", 0),
            ("malformed JSON", rf"{_VETS}/pulls/\d+/reviews", 0), ("truncated page", rf"{_WEB}/pulls/\d+/commits", 0)],
    },
}
# Faults that persist, per transport: every kind of failure line each transport has (a server error, the
# connection cut, a body that is no JSON, the primary limit, ...), leaving out one that takes the same path
# to the same line as another (a REST 500 fails like its 502, through urllib3's RetryError; a malformed
# GraphQL body like a truncated one). The slow ones (a timeout, a secondary limit: seconds a try, two tries
# a restart, three runs of the repo) persist over REST, where the timeout and the 429 take paths of their own.
PERSISTENT = {
    "graphql": ("502 with an HTML page", "connection reset mid-body", "primary rate limit", "truncated page",
                "GraphQL errors with partial data"),
    "rest": ("502 with an HTML page", "read timeout", "connection reset mid-body", "primary rate limit",
             "429 with Retry-After", "malformed JSON"),
}


def github_scope(table: str, row: dict[str, Any]) -> str | None:
    """The repo a stored row of the GitHub source belongs to (None for the rows of other sources)."""
    if row.get("source", "github") not in ("github", "github-actions"):
        return None
    return row.get("scope", row.get("repo"))


# -- the world, its clean runs and the servers ------------------------------------------------------------------
@dataclass
class Servers:
    """One test's simulated GitHub and PagerDuty, with the config that points at them."""

    github: GitHubSimulator
    pagerduty: PagerDutySimulator
    config: Path

    def snapshot(self, *, views: bool = True) -> Snapshot:
        """Everything the database holds, each server named by its name rather than its port."""
        names = server_names({"github": self.github.base_url, "pagerduty": self.pagerduty.base_url})
        return snapshot(self.config.parent / "vsm.duckdb", replacements=names, views=views)

    def collect(self) -> Outcome:
        """`vsm collect` of every configured source."""
        return vsm("collect", "--config", str(self.config))

    def collect_and_map(self) -> Outcome:
        """`vsm collect`, then `vsm map` (the views), as a pass does."""
        outcome = self.collect()
        assert vsm("-q", "map", "--config", str(self.config)).code == 0
        return outcome


@pytest.fixture(scope="module")
def small_world() -> World:
    """Two repos, one week of activity (and three before it), with Actions builds in one of them."""
    github_schema()  # built once before any timed request: building it takes longer than the timeout
    return generate_world(seed=7, end=WORLD_END, weeks=1, repos=(FAILING, HEALTHY), actions_repos=(FAILING,))


@pytest.fixture(scope="module")
def incidents(small_world: World) -> IncidentWorld:
    """The world's incidents (PagerDuty's, and GitHub's incident issues, served but not configured)."""
    return build_incidents(small_world)


@pytest.fixture(scope="module", autouse=True)
def short_restart_pauses() -> Iterator[None]:
    """A repo that fails for a passing reason restarts after a pause of a second or more: keep it short."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scope_retry, "RESTART_PAUSES_S", (0.05, 0.05))
        mp.setenv(PD_TOKEN_ENV, PD_TOKEN)
        yield


def write_config(folder: Path, github: str, pagerduty: str, incidents: IncidentWorld, api: str) -> Path:
    """GitHub over one transport for the two repos (short timeout, one retry) and PagerDuty."""
    folder.mkdir(parents=True, exist_ok=True)
    sections = {
        "database": {"path": (folder / "vsm.duckdb").as_posix()},
        "github": {"base_url": github, "repos": [FAILING, HEALTHY], "since": SINCE[api], "api": api,
                   "timeout": TIMEOUT_S, "retries": RETRIES, "max_rate_limit_wait": MAX_RATE_LIMIT_WAIT_S},
        "incidents": {"pagerduty": {"url": pagerduty, "token_env": PD_TOKEN_ENV,
                                    "service_ids": list(incidents.services)}},
    }
    path = folder / "vsm.toml"
    path.write_text(to_toml(sections), encoding="utf-8")
    return path


@contextlib.contextmanager
def serve(world: World, incidents: IncidentWorld, folder: Path, api: str) -> Iterator[Servers]:
    """Fresh simulators of the world and a config pointing at them over one transport."""
    with GitHubSimulator(world, incidents=incidents) as github, \
            PagerDutySimulator(incidents, token=PD_TOKEN) as pagerduty:
        yield Servers(github, pagerduty, write_config(folder, github.base_url, pagerduty.base_url, incidents, api))


@dataclass
class Clean:
    """What a clean first run stores, and what a clean second run of the same world leaves."""

    once: Snapshot
    twice: Snapshot


@pytest.fixture(scope="module")
def clean(small_world: World, incidents: IncidentWorld, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clean]:
    """The clean runs of each transport: what every faulty run is compared with."""
    found = {}
    for api in APIS:
        with serve(small_world, incidents, tmp_path_factory.mktemp(f"clean-{api}"), api) as servers:
            first = servers.collect_and_map()
            assert (first.code, first.errors, first.warnings) == (0, [], [])
            once = servers.snapshot()
            again = servers.collect_and_map()
            assert (again.code, again.errors) == (0, [])
            found[api] = Clean(once, servers.snapshot())
    for table in ("pull_requests", "pr_reviews", "github_deployment_statuses", "github_workflow_jobs",
                  "incident_records", "changes", "deployments"):
        assert found["rest"].once.rows[table], table  # the world fills every kind of row the cases compare
    return found


def assert_clean_history(got: Snapshot, clean: Clean) -> None:
    """The tables and views of a clean run; each cursor as a clean first or second run leaves it (a second
    run adds what it re-polled, e.g. the ETags of watched Actions runs)."""
    problems = differences(clean.once.where(lambda t, _: t != "sync_cursors"),
                           got.where(lambda t, _: t != "sync_cursors"))
    assert not problems, "\n".join(problems)
    keys = {row[:3]: row for row in got.rows["sync_cursors"]}
    once = {row[:3]: row for row in clean.once.rows["sync_cursors"]}
    twice = {row[:3]: row for row in clean.twice.rows["sync_cursors"]}
    assert set(keys) == set(once) == set(twice)
    for key, row in keys.items():
        assert row in (once[key], twice[key]), (key, row[3][:300], once[key][3][:300])


# -- faults that pass ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("api", "group"), [pytest.param(api, group, id=f"{api}-{group}")
                                            for api, groups in PASSING.items() for group in groups])
def test_passing_faults_are_retried_away_and_the_run_equals_the_clean_one(
        api: str, group: str, small_world: World, incidents: IncidentWorld, tmp_path: Path,
        clean: dict[str, Clean]) -> None:
    with serve(small_world, incidents, tmp_path, api) as servers:
        faults = {name: CASES[name].inject(servers.github, api, target, skip=skip)
                  for name, target, skip in PASSING[api][group]}
        outcome = servers.collect_and_map()
        got = servers.snapshot()
        for name, fault in faults.items():  # each met its one request, which was then sent again
            if fault is not None:
                assert fault.hits == 1, name
            else:
                assert servers.github.graphql is not None and servers.github.graphql.fail_reviews_times == 0
    assert (outcome.code, outcome.errors) == (0, [])
    problems = differences(clean[api].once, got)
    assert not problems, "\n".join(problems)


def test_the_matrix_meets_every_fault_once_over_each_transport() -> None:
    """Every fault passes once over each transport it applies to (partial data is GraphQL's own)."""
    for api, groups in PASSING.items():
        met = [name for cases in groups.values() for name, _, _ in cases]
        expected = set(CASES) - ({"GraphQL errors with partial data"} if api == "rest" else set())
        assert sorted(met) == sorted(expected), api
    assert all(set(names) <= set(CASES) for names in PERSISTENT.values())


# -- a fault that persists ------------------------------------------------------------------------------------------
@dataclass
class Persisted:
    """A run under a persistent fault, and the re-run once it has cleared."""

    case: Case
    api: str
    failed: Outcome
    partial: Snapshot
    rerun: Outcome
    after: Snapshot

    @property
    def failing(self) -> tuple[str, ...]:
        """The repos the fault fails."""
        return (HEALTHY, FAILING) if self.case.token_wide else (FAILING,)


@pytest.fixture(scope="module", params=[pytest.param((CASES[name], api), id=f"{name}-{api}")
                                        for api, names in PERSISTENT.items() for name in names])
def persisted(request: pytest.FixtureRequest, small_world: World, incidents: IncidentWorld,
              tmp_path_factory: pytest.TempPathFactory) -> Persisted:
    """Collect under the fault (every try of the failing repo meets it), then collect again once it cleared."""
    case, api = request.param
    with serve(small_world, incidents, tmp_path_factory.mktemp("persisted"), api) as servers:
        case.inject(servers.github, api, persistent=True)
        failed = servers.collect()
        partial = servers.snapshot(views=False)
        servers.github.clear_faults()
        assert servers.github.graphql is not None
        servers.github.graphql.fail_reviews_of = set()
        rerun = servers.collect_and_map()
        return Persisted(case, api, failed, partial, rerun, servers.snapshot())


def test_a_persistent_fault_fails_only_its_repo_and_a_rerun_is_exact(persisted: Persisted,
                                                                     clean: dict[str, Clean]) -> None:
    run, reference = persisted, clean[persisted.api]
    assert run.failed.code == 1
    assert run.failed.errors_of("pagerduty") == []
    assert len(run.failed.errors_of("github")) == len(run.failing)  # one line per failing repo
    # the other repo and the other source collected exactly what the clean run did
    def healthy(table: str, row: dict[str, Any]) -> bool:
        return github_scope(table, row) not in run.failing

    first = reference.once.only(run.partial.rows)  # the tables (the views are built by `vsm map`)
    problems = differences(first.where(healthy), run.partial.where(healthy))
    assert not problems, "\n".join(problems)

    # what the failing repo stored before the fault is part of the clean run (its cursors are checkpoints)
    def failing(table: str, row: dict[str, Any]) -> bool:
        return github_scope(table, row) in run.failing and table != "sync_cursors"

    assert assert_part_of(first.where(failing), run.partial.where(failing)) > 0
    assert (run.rerun.code, run.rerun.errors) == (0, [])
    assert_clean_history(run.after, reference)


def test_a_persistent_fault_is_one_clear_line(persisted: Persisted) -> None:
    run = persisted
    lines = run.failed.errors_of("github")
    summary = next(line for line in run.failed.stdout.splitlines() if line.startswith("github:"))
    for scope in run.failing:
        [line] = [line for line in lines if line.startswith(f"github {scope}:")]
        one_line(line, "GitHub", run.case.endpoint(run.api, scope), *run.case.cause)
        assert line.removeprefix("github ") in summary  # `vsm collect` prints it with the source's FAILED
    assert "FAILED" in summary


# A repo failing for a passing reason restarts from its stored cursors at most SCOPE_RESTARTS times in a row:
# pages re-stored on the way back to the failure (its repo page, a cursor page that does not move) are no
# progress.
def test_a_persistent_fault_restarts_its_repo_at_most_scope_restarts_times(persisted: Persisted) -> None:
    run = persisted
    restarts = [w for w in run.failed.warnings if "again from its last stored page" in w]
    expected = 0 if run.case.name == "primary rate limit" else scope_retry.SCOPE_RESTARTS  # a spent budget waits
    for scope in run.failing:
        assert len([w for w in restarts if f" {scope}" in w]) == expected, restarts
