"""Shared fixtures: one simulated Pet Clinic world per session, a fresh simulator per test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import config as cfg
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World, generate_world

# A fixed end keeps every test run on the same history; a Wednesday noon, mid-week.
WORLD_END = dt.datetime(2026, 11, 18, 12, 0, tzinfo=dt.UTC)
ACTIONS_REPO = "petclinic/petclinic-web"


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's database, read-only for its users: every source collected over HTTP, then mapped."""
    from collector import demo

    folder = tmp_path_factory.mktemp("demo-db")
    demo.run(folder / "vsm.duckdb")
    return folder / "vsm.duckdb"


@pytest.fixture(scope="session")
def world() -> World:
    """The default Pet Clinic history (seed 7), ending at WORLD_END."""
    return generate_world(seed=7, end=WORLD_END)


@pytest.fixture(scope="session")
def actions_world() -> World:
    """The same history with GitHub Actions builds (`build.yml`) in ACTIONS_REPO."""
    return generate_world(seed=7, end=WORLD_END, actions_repos=(ACTIONS_REPO,))


@pytest.fixture
def sim(world: World) -> Iterator[GitHubSimulator]:
    """A running simulated GitHub over the world, clock at its end."""
    with GitHubSimulator(world) as server:
        yield server


def write_config(tmp_path: Path, base_url: str, repos: list[str], *, name: str = "vsm.toml",
                 db: str = "vsm.duckdb", extra: str = "") -> Path:
    """A config file pointing at a simulator; `since` reaches back before the world begins."""
    path = tmp_path / name
    repo_list = ", ".join(f'"{r}"' for r in repos)
    path.write_text(
        f'[database]\npath = "{db}"\n\n[github]\nbase_url = "{base_url}"\nrepos = [{repo_list}]\n'
        f'since = "2026-01-01"\nretries = 3\n{extra}',
        encoding="utf-8",
    )
    return path


def load_config(tmp_path: Path, sim: GitHubSimulator, world: World, **kwargs: str) -> cfg.Config:
    """Write and load a config for the simulator's repos."""
    return cfg.load(write_config(tmp_path, sim.base_url, [r.full_name for r in world.repos], **kwargs))
