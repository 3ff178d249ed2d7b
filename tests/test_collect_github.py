"""The GitHub connector and pipeline against the simulated GitHub, through the real PyGithub client."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from collector import config as cfg
from collector.cli import main
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World
from collector.pipeline import collect
from collector.store import Store
from tests.conftest import WORLD_END, load_config, write_config

APIS = ("rest", "graphql")
REST = 'api = "rest"\n'
TYPED_TABLES = ["repos", "commits", "commit_parents", "pull_requests", "pr_commits", "pr_reviews", "pr_events",
                "github_deployments", "github_deployment_statuses"]


def snapshot(store: Store, tables: list[str] = TYPED_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the given tables, in a stable order."""
    return {t: store.query(f"SELECT * FROM {t} ORDER BY ALL")[1] for t in tables}


def api_list(sim: GitHubSimulator, path: str, **params: Any) -> list[dict[str, Any]]:
    """Everything a list endpoint of the simulator returns, following Link headers (test oracle)."""
    items: list[dict[str, Any]] = []
    url: str | None = f"{sim.base_url}{path}"
    query: dict[str, Any] | None = {"per_page": 100, **params}
    while url:
        response = requests.get(url, params=query, timeout=10)
        response.raise_for_status()
        items.extend(response.json())
        url = response.links.get("next", {}).get("url")
        query = None
    return items


def test_full_collect_stores_everything_the_api_shows(tmp_path: Path, sim: GitHubSimulator, world: World) -> None:
    config = load_config(tmp_path, sim, world)
    with Store(config.db_path) as store:
        (result,) = collect(config, store)
        assert result.ok, result.errors
        for repo in world.repos:
            name = repo.full_name
            pulls = api_list(sim, f"/repos/{name}/pulls", state="all")
            stored = store.query("SELECT count(*) FROM pull_requests WHERE repo = ?", [name])[1][0][0]
            assert stored == len(pulls) > 0
            merged = [p for p in pulls if p["merged_at"]]
            assert store.query("SELECT count(*) FROM pull_requests WHERE repo = ? AND merged_at IS NOT NULL",
                               [name])[1][0][0] == len(merged)
            deployments = api_list(sim, f"/repos/{name}/deployments")
            assert store.query("SELECT count(*) FROM github_deployments WHERE repo = ?", [name])[1][0][0] \
                == len(deployments) > 0
            commits = api_list(sim, f"/repos/{name}/commits", sha="main", since="2026-01-01T00:00:00Z")
            assert store.query("SELECT count(*) FROM commits WHERE repo = ?", [name])[1][0][0] == len(commits)
            sample = pulls[len(pulls) // 2]
            reviews = api_list(sim, f"/repos/{name}/pulls/{sample['number']}/reviews")
            assert store.query("SELECT count(*) FROM pr_reviews WHERE repo = ? AND pr_number = ?",
                               [name, sample["number"]])[1][0][0] == len(reviews)
        # every stored object also sits in the raw layer, keyed by source/kind/id
        kinds = dict(store.query("SELECT kind, count(*) FROM raw_objects GROUP BY kind")[1])
        assert kinds["pull"] == store.query("SELECT count(*) FROM pull_requests")[1][0][0]
        assert kinds["deployment_status"] == store.query("SELECT count(*) FROM github_deployment_statuses")[1][0][0]
        run = store.query("SELECT status, items, requests FROM sync_runs")[1]
        assert run[0][0] == "success" and run[0][1] == result.items and run[0][2] == result.requests


def test_request_count_matches_the_server_log(tmp_path: Path, sim: GitHubSimulator, world: World) -> None:
    config = load_config(tmp_path, sim, world, extra=REST)
    with Store(config.db_path) as store:
        (result,) = collect(config, store)
        pulls = store.query("SELECT count(*) FROM pull_requests")[1][0][0]
        deployments = store.query("SELECT count(*) FROM github_deployments")[1][0][0]
    assert result.requests == len(sim.request_log)
    # per PR: reviews + commits + timeline; per deployment: its statuses; the rest are list pages
    # (one repo request and a few pages of commits, pulls and deployments per repo)
    list_pages = result.requests - 3 * pulls - deployments
    assert 2 * len(world.repos) <= list_pages <= 15 * len(world.repos)


@pytest.mark.parametrize("api", APIS)
def test_second_collect_changes_nothing(tmp_path: Path, sim: GitHubSimulator, world: World, api: str) -> None:
    config = load_config(tmp_path, sim, world, extra=f'api = "{api}"\n')
    with Store(config.db_path) as store:
        collect(config, store)
        first = snapshot(store, TYPED_TABLES + ["raw_objects", "sync_cursors"])
        requests_before = len(sim.request_log)
        (again,) = collect(config, store)
        assert again.ok
        second = snapshot(store, TYPED_TABLES + ["raw_objects"])
        cursors = store.query("SELECT source, scope, stream, value FROM sync_cursors ORDER BY ALL")[1]
    assert second == {k: v for k, v in first.items() if k != "sync_cursors"}
    assert cursors == [row[:4] for row in first["sync_cursors"]]
    again_requests = len(sim.request_log) - requests_before
    if api == "rest":  # incremental: far fewer requests than the first run (only the boundary PRs are re-read)
        assert again_requests < requests_before / 5
    else:  # per repo: one round query, one for its unsettled deployments; the Actions list answers 304
        counted = [s for _, _, s in sim.request_log[requests_before:] if s != 304]
        assert len(counted) <= 2 * len(world.repos)


@pytest.mark.parametrize("api", APIS)
def test_incremental_collect_equals_a_fresh_full_collect(tmp_path: Path, sim: GitHubSimulator,
                                                         world: World, api: str) -> None:
    config = load_config(tmp_path, sim, world, extra=f'api = "{api}"\n')
    sim.clock = WORLD_END - dt.timedelta(days=7)
    with Store(config.db_path) as store:
        collect(config, store)
        cursor = {scope: value for (scope, stream), value in store.cursors("github").items() if stream == "pulls"}
        sim.clock = WORLD_END
        start = len(sim.request_log)
        collect(config, store)
        incremental = snapshot(store)
    second_run = sim.request_log[start:]
    expected = set()
    for repo in world.repos:
        for pull in api_list(sim, f"/repos/{repo.full_name}/pulls", state="all"):
            if pull["updated_at"].replace("Z", "+00:00") >= cursor[repo.full_name]:
                expected.add((repo.full_name, pull["number"]))
    assert len(expected) > 0
    if api == "rest":
        fetched = {(m.group(1), int(m.group(2))) for _, path, _ in second_run
                   if (m := re.match(r"/repos/([^/]+/[^/]+)/pulls/(\d+)/reviews", path))}
        assert fetched == expected  # only new or updated PRs had their details read
    else:  # per repo: a round (a week of PRs fits one page, details nested), the commit comparison,
        # the unsettled deployments, the Actions list
        assert len(second_run) <= 4 * len(world.repos) + len(expected) // 50

    fresh_config = load_config(tmp_path, sim, world, name="fresh.toml", db="fresh.duckdb",
                               extra=f'api = "{api}"\n')
    with Store(fresh_config.db_path) as fresh:
        collect(fresh_config, fresh)
        assert snapshot(fresh) == incremental


@pytest.mark.parametrize(("api", "endpoint"), [("rest", r"/pulls\?"), ("graphql", r"^/graphql")])
def test_server_errors_are_retried_and_counted(tmp_path: Path, sim: GitHubSimulator, world: World, api: str,
                                               endpoint: str) -> None:
    config = load_config(tmp_path, sim, world, extra=f'api = "{api}"\n')
    sim.inject_fault(endpoint, 502, times=2)
    with Store(config.db_path) as store:
        (result,) = collect(config, store)
    assert result.ok, result.errors
    assert [s for _, _, s in sim.request_log].count(502) == 2
    assert result.requests == len(sim.request_log)


@pytest.mark.parametrize(("api", "endpoint"), [("rest", r"/deployments\?"), ("graphql", r"^/graphql")])
def test_rate_limit_waits_for_retry_after(tmp_path: Path, sim: GitHubSimulator, world: World, api: str,
                                          endpoint: str) -> None:
    config = load_config(tmp_path, sim, world, extra=f'api = "{api}"\n')
    sim.inject_fault(endpoint, 429, times=1, headers={"Retry-After": "1"},
                     body={"message": "API rate limit exceeded"})
    with Store(config.db_path) as store:
        (result,) = collect(config, store)
    assert result.ok, result.errors
    assert [s for _, _, s in sim.request_log].count(429) == 1


@pytest.mark.parametrize(("api", "cause"), [("rest", "404"), ("graphql", "NOT_FOUND")])
def test_one_missing_repo_does_not_stop_the_others(tmp_path: Path, sim: GitHubSimulator, world: World,
                                                   capsys: pytest.CaptureFixture[str], api: str, cause: str) -> None:
    real = world.repos[0].full_name
    path = write_config(tmp_path, sim.base_url, ["petclinic/deleted-repo", real], extra=f'api = "{api}"\n')
    assert main(["collect", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "petclinic/deleted-repo" in errors[0] and cause in errors[0]
    with Store(tmp_path / "vsm.duckdb") as store:
        assert store.query("SELECT DISTINCT repo FROM pull_requests")[1] == [(real,)]
        assert store.query("SELECT status, error FROM sync_runs")[1][0][0] == "failed"


@pytest.mark.parametrize("api", APIS)
def test_bad_token_is_one_clear_line_and_never_logged(tmp_path: Path, world: World,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture, api: str) -> None:
    secret_value = "wrong-token-0123456789"
    monkeypatch.setenv("VSM_TEST_GH_TOKEN", secret_value)
    with GitHubSimulator(world, token="the-right-token") as sim:
        path = write_config(tmp_path, sim.base_url, [world.repos[0].full_name],
                            extra=f'token_env = "VSM_TEST_GH_TOKEN"\napi = "{api}"\n')
        with caplog.at_level(logging.DEBUG):
            assert main(["-v", "collect", "--config", str(path)]) == 1
    messages = [r.getMessage() for r in caplog.records]
    named = "rejected the token (401" if api == "rest" else "rejected the token in VSM_TEST_GH_TOKEN (401"
    assert any(named in m and "Bad credentials" in m for m in messages)
    assert not any(secret_value in m for m in messages)
    assert secret_value.encode() not in (tmp_path / "vsm.duckdb").read_bytes()


@pytest.mark.parametrize("api", APIS)
def test_token_is_sent_and_never_stored(tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture, api: str) -> None:
    token = "right-token-9876543210"
    monkeypatch.setenv("VSM_TEST_GH_TOKEN", token)
    with GitHubSimulator(world, token=token) as sim:
        path = write_config(tmp_path, sim.base_url, [world.repos[0].full_name],
                            extra=f'token_env = "VSM_TEST_GH_TOKEN"\napi = "{api}"\n')
        with caplog.at_level(logging.DEBUG):
            assert main(["-v", "collect", "--config", str(path)]) == 0
        assert all(status == 200 for _, _, status in sim.request_log)
    assert not any(token in r.getMessage() for r in caplog.records)
    assert token.encode() not in (tmp_path / "vsm.duckdb").read_bytes()


def test_unreachable_server_is_a_clear_error(tmp_path: Path, world: World) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9", [world.repos[0].full_name], extra="timeout = 2\n")
    config = cfg.load(path)
    with Store(config.db_path) as store:
        (result,) = collect(config, store)
    assert not result.ok
    assert "http://127.0.0.1:9" in result.errors[0]
    assert "could not be reached" in result.errors[0] or "cannot connect to GitHub" in result.errors[0]


@pytest.mark.parametrize(("api", "kill_after"), [("rest", 400), ("graphql", 5)])
def test_kill_9_mid_sync_then_resume_loses_and_duplicates_nothing(tmp_path: Path, sim: GitHubSimulator,
                                                                   world: World, api: str, kill_after: int) -> None:
    import subprocess
    import sys
    import time

    path = write_config(tmp_path, sim.base_url, [r.full_name for r in world.repos], extra=f'api = "{api}"\n')
    sim.latency = 0.0 if api == "rest" else 0.3  # GraphQL needs few requests: slow them so the kill lands mid-sync
    child = subprocess.Popen([sys.executable, "-m", "collector.cli", "-q", "collect", "--config", str(path)])
    deadline = time.monotonic() + 60
    while len(sim.request_log) < kill_after and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.kill()
    assert child.wait() == -9, "the collect finished before it could be killed"

    config = cfg.load(path)
    with Store(config.db_path) as store:
        partial = store.query("SELECT count(*) FROM pull_requests")[1][0][0]
        (result,) = collect(config, store)
        assert result.ok, result.errors
        resumed = snapshot(store)
        runs = store.query("SELECT status FROM sync_runs ORDER BY run_id")[1]
    assert runs == [("interrupted",), ("success",)]
    assert partial < len(resumed["pull_requests"])

    sim.latency = 0.0
    fresh_config = load_config(tmp_path, sim, world, name="fresh.toml", db="fresh.duckdb", extra=f'api = "{api}"\n')
    with Store(fresh_config.db_path) as fresh:
        collect(fresh_config, fresh)
        assert snapshot(fresh) == resumed
