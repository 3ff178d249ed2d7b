"""Cheap, exact resume: a collect cut short goes on from its last stored page, never from the top."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector import config as cfg
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World
from collector.pipeline import collect
from collector.store import Store
from connectors.github import PULLS_PER_STORE
from connectors.resume import checkpoint, open_walk
from tests.conftest import load_config, write_config
from tests.test_collect_github import snapshot

APIS = ("rest", "graphql")


def _counted(log: list[tuple[str, str, int]]) -> int:
    return sum(1 for _, _, status in log if status != 304)


def test_a_checkpoint_keeps_the_old_stop_point_and_belongs_to_its_transport() -> None:
    text = checkpoint("2026-11-01T00:00:00+00:00", "rest", [3, 5], newest="2026-11-18T10:00:00+00:00")
    assert open_walk(text, "rest") == ("2026-11-01T00:00:00+00:00",
                                       {"transport": "rest", "at": [3, 5], "newest": "2026-11-18T10:00:00+00:00"})
    # a REST page number means nothing to GraphQL: the walk starts over, stopping at the same old point
    assert open_walk(text, "graphql") == ("2026-11-01T00:00:00+00:00", None)
    # cursors of finished walks read as they always did
    assert open_walk("2026-11-01T00:00:00+00:00", "rest") == ("2026-11-01T00:00:00+00:00", None)
    plain = json.dumps({"max_id": 7, "open": [], "newest": {}})
    assert open_walk(plain, "graphql") == (plain, None)
    assert open_walk(None, "rest") == (None, None)


@pytest.mark.parametrize("api", APIS)
def test_kill_9_then_resume_refetches_almost_nothing(tmp_path: Path, sim: GitHubSimulator, world: World,
                                                      api: str) -> None:
    clean_config = load_config(tmp_path, sim, world, name="clean.toml", db="clean.duckdb", extra=f'api = "{api}"\n')
    with Store(clean_config.db_path) as store:
        (result,) = collect(clean_config, store)
        assert result.ok, result.errors
        expected = snapshot(store)
    clean = _counted(sim.request_log)
    assert clean > 0

    path = write_config(tmp_path, sim.base_url, [r.full_name for r in world.repos], extra=f'api = "{api}"\n')
    start = len(sim.request_log)
    sim.latency = 0.0 if api == "rest" else 0.2  # GraphQL needs few requests: slow them so the kill lands mid-way
    child = subprocess.Popen([sys.executable, "-m", "collector.cli", "-q", "collect", "--config", str(path)])
    deadline = time.monotonic() + 60
    while _counted(sim.request_log[start:]) < clean // 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    child.kill()
    assert child.wait() == -9, "the collect finished before it could be killed"
    time.sleep(0.3)  # what the child had sent is still answered and logged
    sim.latency = 0.0
    killed = _counted(sim.request_log[start:])
    middle = len(sim.request_log)
    config = cfg.load(path)
    with Store(config.db_path) as store:
        (resumed,) = collect(config, store)
        assert resumed.ok, resumed.errors
        assert snapshot(store) == expected
    refetched = killed + _counted(sim.request_log[middle:]) - clean
    # before checkpoints, a kill half-way re-fetched the whole walk of every stream begun (38% on REST);
    # now it is what was in flight: per repo (a worker each) the page being fetched, the one waiting for the
    # writer and the one being written, over REST PULLS_PER_STORE PRs of three detail requests each (plus the
    # repo and the list page read again), over GraphQL one query each
    per_repo = 3 * (3 * PULLS_PER_STORE + 1) + 5 if api == "rest" else 3
    assert refetched <= per_repo * len(world.repos), (refetched, clean)


@pytest.mark.parametrize("api", APIS)
def test_a_scope_failing_past_its_retries_starts_again_from_its_last_stored_page(
        tmp_path: Path, sim: GitHubSimulator, world: World, api: str) -> None:
    repo = world.repos[0].full_name
    clean_config = load_config(tmp_path, sim, world, name="clean.toml", db="clean.duckdb", extra=f'api = "{api}"\n')
    with Store(clean_config.db_path) as store:
        collect(clean_config, store)
        expected = snapshot(store)
    clean = _counted(sim.request_log)

    # the config allows 3 retries: four 502s in a row outlast them once, mid-way through the pull requests
    target = r"^/graphql" if api == "graphql" else rf"^/repos/{repo}/pulls/\d+/reviews"
    config = load_config(tmp_path, sim, world, extra=f'api = "{api}"\nconcurrency = 1\n')
    start = len(sim.request_log)
    sim.inject_fault(target, status=None, times=2 if api == "graphql" else 20)  # let a few answers through first
    sim.inject_fault(target, status=502, times=4)
    with Store(config.db_path) as store:
        (result,) = collect(config, store)
        assert result.ok, result.errors
        assert snapshot(store) == expected
    served = sim.request_log[start:]
    failed = sum(1 for _, _, status in served if status == 502)
    assert failed == 4
    # the restart re-fetches at most the page that failed, never the pages stored before it
    assert _counted(served) - failed - clean <= (1 if api == "graphql" else 16), (_counted(served), clean)
