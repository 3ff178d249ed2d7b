"""The GraphQL transport against the simulated GitHub: the same tables as REST for a fraction of the requests,
nested lists continued past their page, bots named as REST names them, and every budget and error path."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from collector import config as cfg
from collector.cli import main
from collector.demo.github_server import GitHubSimulator
from collector.demo.payloads import derived_sha
from collector.demo.world import DeploymentStatus, TimelineEvent, World, generate_world
from collector.pipeline import collect, run_map
from collector.store import Store
from connectors.github_graphql_client import graphql_url
from tests.conftest import write_config
from tests.test_collect_github import TYPED_TABLES, snapshot

MAPPED = ["changes", "stage_times", "deployments"]


def _collect(tmp_path: Path, sim: GitHubSimulator, world: World, api: str, name: str, extra: str = "",
             ) -> tuple[dict[str, Any], Any]:
    """Collect and map the world over one transport into a fresh database; its tables and the result."""
    path = write_config(tmp_path, sim.base_url, [r.full_name for r in world.repos], name=f"{name}.toml",
                        db=f"{name}.duckdb", extra=f'api = "{api}"\n{extra}')
    config = cfg.load(path)
    with Store(config.db_path) as store:
        (result,) = collect(config, store)
        run_map(config, store)
        tables = snapshot(store, TYPED_TABLES + MAPPED)
    return tables, result


def test_graphql_and_rest_give_identical_tables_for_a_fraction_of_the_requests(
        tmp_path: Path, sim: GitHubSimulator, world: World) -> None:
    rest, rest_result = _collect(tmp_path, sim, world, "rest", "rest")
    start = len(sim.request_log)
    graphql, result = _collect(tmp_path, sim, world, "graphql", "graphql")
    assert result.ok and rest_result.ok
    for table in TYPED_TABLES + MAPPED:
        assert graphql[table] == rest[table], table
        assert len(graphql[table]) > 0, table
    served = sim.request_log[start:]
    assert result.requests == len(served)
    merged = sum(1 for pr in (p for rw in world.repos for p in rw.pulls) if pr.merged_at is not None)
    # one query a round carries 50 PRs, 50 deployments and 100 commits of each repo, all nested details included
    assert result.requests / merged < 0.05
    # besides GraphQL only the Actions runs list, once per repo (GraphQL has no Actions)
    rest_paths = [path for _, path, _ in served if path != "/graphql"]
    assert len(rest_paths) == len(world.repos) and all("/actions/runs?" in path for path in rest_paths)


def _big_world(world: World) -> tuple[World, str, int, int]:
    """The world with one PR of 45 reviews, 70 commits and 40 extra review requests, and one deployment of
    25 statuses: each more than one page of its nested list."""
    rw = world.repos[0]
    pr = next(p for p in rw.pulls if p.merged_at is not None and p.reviews)
    base = pr.reviews[0]
    reviews = tuple(dataclasses.replace(base, id=base.id + 10 * (i + 1), state="COMMENTED",
                                        submitted_at=base.submitted_at + dt.timedelta(seconds=i + 1))
                    for i in range(44))
    first = pr.commits[0]
    commits = tuple(dataclasses.replace(first, sha=derived_sha("extra", pr.number, i),
                                        committed_at=first.committed_at - dt.timedelta(minutes=70 - i),
                                        authored_at=first.authored_at - dt.timedelta(minutes=70 - i))
                    for i in range(70 - len(pr.commits)))
    events = tuple(TimelineEvent(pr.events[0].id + 3 * (i + 1), "review_requested", pr.author_login, "User",
                                 pr.created_at + dt.timedelta(seconds=i + 1), requested_reviewer=base.user_login)
                   for i in range(40))
    big = dataclasses.replace(pr, reviews=(*pr.reviews, *reviews), commits=(*commits, *pr.commits),
                              events=tuple(sorted((*pr.events, *events), key=lambda e: e.created_at)))
    dep = next(d for d in rw.deployments if len(d.statuses) >= 2)
    extra = tuple(DeploymentStatus(dep.statuses[0].id + 2 * (i + 1), "in_progress",
                                   dep.statuses[0].created_at + dt.timedelta(milliseconds=0), "still going")
                  for i in range(25 - len(dep.statuses)))
    deep = dataclasses.replace(dep, statuses=(dep.statuses[0], *extra, *dep.statuses[1:]))
    repo = dataclasses.replace(rw, pulls=tuple(big if p is pr else p for p in rw.pulls),
                               deployments=tuple(deep if d is dep else d for d in rw.deployments))
    return dataclasses.replace(world, repos=(repo,)), rw.full_name, pr.number, dep.id


def test_nested_lists_longer_than_a_page_are_continued_never_truncated(tmp_path: Path, world: World) -> None:
    big, repo, number, deployment = _big_world(world)
    with GitHubSimulator(big) as sim:
        rest, _ = _collect(tmp_path, sim, big, "rest", "rest")
        graphql, result = _collect(tmp_path, sim, big, "graphql", "graphql")
        config = cfg.load(tmp_path / "graphql.toml")
    assert result.ok, result.errors
    for table in TYPED_TABLES + MAPPED:
        assert graphql[table] == rest[table], table
    pr = next(p for p in big.repos[0].pulls if p.number == number)
    with Store(config.db_path, read_only=True) as store:
        def count(sql: str) -> int:
            return store.query(sql, [repo, number])[1][0][0]
        assert count("SELECT count(*) FROM pr_reviews WHERE repo = ? AND pr_number = ?") == len(pr.reviews) > 45
        assert count("SELECT count(*) FROM pr_commits WHERE repo = ? AND pr_number = ?") == 70
        expected_events = sum(1 for e in pr.events if e.event != "review_dismissed")
        assert count("SELECT count(*) FROM pr_events WHERE repo = ? AND pr_number = ?") == expected_events > 40
        statuses = store.query("SELECT count(*) FROM github_deployment_statuses WHERE repo = ? AND "
                               "deployment_id = ?", [repo, deployment])[1][0][0]
    assert statuses == 25


def test_bots_are_named_as_rest_names_them(tmp_path: Path, sim: GitHubSimulator, world: World) -> None:
    _collect(tmp_path, sim, world, "graphql", "graphql")
    with Store(tmp_path / "graphql.duckdb", read_only=True) as store:
        bot_prs = store.query("SELECT DISTINCT author_login, author_type FROM pull_requests "
                              "WHERE author_type = 'Bot'")[1]
        bot_reviews = store.query("SELECT DISTINCT reviewer_login, reviewer_type FROM pr_reviews "
                                  "WHERE reviewer_type = 'Bot'")[1]
        bot_commits = store.query("SELECT DISTINCT c.author_login FROM pr_commits c JOIN pull_requests p "
                                  "ON p.repo = c.repo AND p.number = c.pr_number WHERE p.author_type = 'Bot'")[1]
        raw = store.query("SELECT payload FROM raw_objects WHERE kind = 'pull' "
                          "AND payload -> 'author' ->> '__typename' = 'Bot' LIMIT 1")[1]
    assert bot_prs == [("dependabot[bot]", "Bot")]
    assert bot_reviews == [("sonarcloud[bot]", "Bot")]
    # GitActor.user is null for a bot's commits: the login comes from its noreply address
    assert bot_commits == [("dependabot[bot]",)]
    author = json.loads(raw[0][0])["author"]
    assert author == {"__typename": "Bot", "login": "dependabot"}  # GraphQL's own spelling, kept raw


def test_a_points_budget_that_runs_out_mid_sync_is_waited_for(tmp_path: Path, sim: GitHubSimulator,
                                                              world: World, caplog: pytest.LogCaptureFixture) -> None:
    clean, _ = _collect(tmp_path, sim, world, "graphql", "clean")
    assert sim.graphql is not None
    sim.graphql.points_limit, sim.graphql.reset_after = 9, 2.0
    sim.graphql._budgets.clear()
    with caplog.at_level(logging.WARNING):
        tables, result = _collect(tmp_path, sim, world, "graphql", "waited", extra="max_rate_limit_wait = 30\n")
    assert result.ok, result.errors
    assert tables == clean
    assert any("budget spent" in r.getMessage() and "waiting" in r.getMessage() for r in caplog.records)


def test_a_points_budget_too_far_from_its_reset_stops_cleanly_and_the_next_run_resumes(
        tmp_path: Path, sim: GitHubSimulator, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    clean, _ = _collect(tmp_path, sim, world, "graphql", "clean")
    assert sim.graphql is not None
    sim.graphql.points_limit, sim.graphql.reset_after = 8, 4.0
    sim.graphql._budgets.clear()
    path = write_config(tmp_path, sim.base_url, [r.full_name for r in world.repos],
                        extra="max_rate_limit_wait = 1\n")
    assert main(["collect", "--config", str(path)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert errors and all("rate budget spent on (no token)" in line and "resets at" in line for line in errors)
    with Store(tmp_path / "vsm.duckdb", read_only=True) as store:
        partial = store.query("SELECT count(*) FROM pull_requests")[1][0][0]
    assert 0 < partial < len(clean["pull_requests"])
    time.sleep(4.5)
    sim.graphql.points_limit = 5000
    sim.graphql._budgets.clear()
    assert main(["collect", "--config", str(path)]) == 0
    config = cfg.load(path)
    with Store(config.db_path) as store:
        run_map(config, store)
        assert snapshot(store, TYPED_TABLES + MAPPED) == clean


@pytest.mark.parametrize(("status", "headers", "message"), [
    (403, {"Retry-After": "1"}, "You have exceeded a secondary rate limit. Please wait a few minutes."),
    (403, {}, "You have exceeded a secondary rate limit and have been temporarily blocked."),
])
def test_a_secondary_limit_pauses_the_token_and_the_query_is_sent_again(
        tmp_path: Path, sim: GitHubSimulator, world: World, monkeypatch: pytest.MonkeyPatch, status: int,
        headers: dict[str, str], message: str) -> None:
    clean, _ = _collect(tmp_path, sim, world, "graphql", "clean")
    # without Retry-After GitHub asks for a minute; the test shortens that minute, not the logic
    monkeypatch.setattr("connectors.github_budget.SECONDARY_DEFAULT_WAIT_S", 1.0)
    sim.inject_fault(r"^/graphql", status, times=1, headers=headers, body={"message": message,
                     "documentation_url": "https://docs.github.com/graphql/overview/rate-limits-and-node-limits"})
    started = time.monotonic()
    tables, result = _collect(tmp_path, sim, world, "graphql", "limited")
    assert result.ok, result.errors
    assert tables == clean
    assert [s for _, _, s in sim.request_log].count(403) == 1
    assert time.monotonic() - started >= 1.0


def test_errors_with_partial_data_are_never_stored(tmp_path: Path, sim: GitHubSimulator, world: World,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    clean, _ = _collect(tmp_path, sim, world, "graphql", "clean")
    assert sim.graphql is not None
    victim = world.repos[0]
    newest = max(victim.pulls, key=lambda p: (p.updated_at, p.number))
    sim.graphql.fail_reviews_of = {newest.number}  # its reviews fail: the answer has data, with a hole in it
    path = write_config(tmp_path, sim.base_url, [r.full_name for r in world.repos])
    assert main(["collect", "--config", str(path)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and victim.full_name in errors[0] and "Something went wrong" in errors[0]
    with Store(tmp_path / "vsm.duckdb", read_only=True) as store:
        # the first page of PRs carried the hole: none of it is stored; the other repo is complete
        stored = dict(store.query("SELECT repo, count(*) FROM pull_requests GROUP BY repo")[1])
    assert victim.full_name not in stored
    assert stored[world.repos[1].full_name] == len(world.repos[1].pulls)
    sim.graphql.fail_reviews_of = set()
    assert main(["collect", "--config", str(path)]) == 0
    config = cfg.load(path)
    with Store(config.db_path) as store:
        run_map(config, store)
        assert snapshot(store, TYPED_TABLES + MAPPED) == clean


def test_a_transient_error_answer_is_retried_whole(tmp_path: Path, sim: GitHubSimulator, world: World) -> None:
    clean, _ = _collect(tmp_path, sim, world, "graphql", "clean")
    partial = {"data": {"rateLimit": None, "repository": None},
               "errors": [{"message": "Something went wrong while executing your query. This may be the result "
                                      "of a timeout, or it could be a GitHub bug.", "path": ["repository"]}]}
    sim.inject_fault(r"^/graphql", 200, times=1, body=partial)
    tables, result = _collect(tmp_path, sim, world, "graphql", "retried")
    assert result.ok, result.errors
    assert tables == clean


def test_several_tokens_share_the_points(tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VSM_GH_A", "token-aaaa-1111")
    monkeypatch.setenv("VSM_GH_B", "token-bbbb-2222")
    with GitHubSimulator(world, token=("token-aaaa-1111", "token-bbbb-2222")) as sim:
        assert sim.graphql is not None
        _collect(tmp_path, sim, world, "graphql", "probe", extra='token_env = "VSM_GH_A"\n')
        needed = sim.graphql._budgets["token-aaaa-1111"].used
        sim.graphql._budgets.clear()
        sim.graphql.points_limit = limit = needed * 2 // 3  # one token alone cannot do the whole sync
        assert limit > 5
        path = write_config(tmp_path, sim.base_url, [r.full_name for r in world.repos],
                            extra='token_envs = ["VSM_GH_A", "VSM_GH_B"]\nmax_rate_limit_wait = 1\n')
        assert main(["collect", "--config", str(path)]) == 0
        used = {token: budget.used for token, budget in sim.graphql._budgets.items()}
    assert set(used) == {"token-aaaa-1111", "token-bbbb-2222"} and all(u > 0 for u in used.values())
    capsys.readouterr()
    assert main(["status", "--config", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    (github,) = json.loads(out)
    budgets = {(b["token_env"], b["resource"]): b for b in github["rate_budget"]}
    assert budgets[("VSM_GH_A", "graphql")]["remaining"] == limit - used["token-aaaa-1111"]
    assert budgets[("VSM_GH_B", "graphql")]["remaining"] == limit - used["token-bbbb-2222"]
    assert "token-aaaa" not in out and "token-bbbb" not in out


@pytest.mark.parametrize(("base", "endpoint"), [
    ("https://api.github.com", "https://api.github.com/graphql"),
    ("https://github.example.com/api/v3", "https://github.example.com/api/graphql"),
    ("https://github.example.com/api/v3/", "https://github.example.com/api/graphql"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/graphql"),
])
def test_graphql_endpoint_of_a_base_url(base: str, endpoint: str) -> None:
    assert graphql_url(base) == endpoint


def test_an_org_pattern_collects_every_unarchived_repo_and_polls_the_listing_by_etag(tmp_path: Path) -> None:
    end = dt.datetime(2026, 11, 18, 12, tzinfo=dt.UTC)
    org = generate_world(seed=7, end=end, weeks=2, repos=("petclinic/web", "petclinic/vets", "petclinic/legacy"),
                         archived_repos=("petclinic/legacy",))
    with GitHubSimulator(org) as sim:
        path = write_config(tmp_path, sim.base_url, ["petclinic/*"])
        assert main(["collect", "--config", str(path)]) == 0
        listings = [status for _, p, status in sim.request_log if p.startswith("/orgs/petclinic/repos")]
        start = len(sim.request_log)
        assert main(["collect", "--config", str(path)]) == 0
        again = [status for _, p, status in sim.request_log[start:] if p.startswith("/orgs/petclinic/repos")]
    assert listings == [200] and again == [304]  # listed once per run; unchanged, it costs nothing
    with Store(tmp_path / "vsm.duckdb", read_only=True) as store:
        repos = [r for (r,) in store.query("SELECT DISTINCT repo FROM pull_requests ORDER BY repo")[1]]
    assert repos == ["petclinic/vets", "petclinic/web"]
