"""The demo's numbers agree with the definitions, computed a second way: straight from the simulated world.

The oracle below reads the generator's own objects (never the database) and applies the issue's
definitions in plain Python; the pipeline gets the same world only through HTTP, PyGithub, DuckDB and
the mapper's SQL. Every merged pull request must come out the same both ways.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from collector.demo.github_server import GitHubSimulator
from collector.demo.world import PullRequest, RepoWorld, World
from collector.pipeline import collect, run_map
from collector.store import Store
from tests.conftest import load_config

BOTS = {"petclinic-ci"}


def is_bot(login: str | None, kind: str | None) -> bool:
    return kind == "Bot" or (login or "").endswith("[bot]") or login in BOTS


def reaches(rw: RepoWorld, start: str, target: str) -> bool:
    """Whether target is start or one of its ancestors."""
    seen, queue = {start}, deque([start])
    while queue:
        sha = queue.popleft()
        if sha == target:
            return True
        for parent in rw.commits[sha].parents if sha in rw.commits else ():
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return False


def expected_change(rw: RepoWorld, pr: PullRequest, end: dt.datetime) -> dict[str, Any]:
    """One merged PR's timeline by the written definitions."""
    assert pr.merged_at is not None
    human_reviews = sorted((r for r in pr.reviews if r.user_login != pr.author_login
                            and not is_bot(r.user_login, r.user_type)), key=lambda r: r.submitted_at)
    first_review = human_reviews[0].submitted_at if human_reviews else None
    approvals = [r.submitted_at for r in human_reviews
                 if r.state == "APPROVED" and (r.dismissed_at is None or r.dismissed_at > end)
                 and r.submitted_at <= pr.merged_at]
    ever_draft = pr.draft or any(e.event in ("ready_for_review", "convert_to_draft") for e in pr.events)
    ready = pr.created_at
    if ever_draft:
        limit = first_review if first_review is not None else pr.merged_at
        readies = [e.created_at for e in pr.events if e.event == "ready_for_review" and e.created_at <= limit]
        ready = max(readies) if readies else pr.created_at
    production = sorted(
        ((min(s.created_at for s in d.statuses if s.state == "success"), d) for d in rw.deployments
         if d.environment == "production" and any(s.state == "success" for s in d.statuses)),
        key=lambda pair: (pair[0], pair[1].id),
    )
    deployed_at = None
    for rank, (success_at, deployment) in enumerate(production):
        if reaches(rw, deployment.sha, pr.merge_commit_sha or ""):
            deployed_at = None if rank == 0 else success_at  # rank 0 is the seed
            break
    first_commit = min(c.authored_at for c in pr.commits)
    return _api_precision({
        "first_commit_at": first_commit, "opened_at": pr.created_at, "ready_at": ready,
        "first_review_at": first_review, "approved_at": max(approvals) if approvals else None,
        "merged_at": pr.merged_at, "deployed_at": deployed_at,
        "lead_time_s": (deployed_at - first_commit).total_seconds() if deployed_at else None,
        "is_bot": is_bot(pr.author_login, pr.author_type),
    })


def _api_precision(values: dict[str, Any]) -> dict[str, Any]:
    """GitHub's API gives timestamps to the second: drop the generator's microseconds, then derive."""
    out = {k: v.replace(microsecond=0) if isinstance(v, dt.datetime) else v for k, v in values.items()}
    if out["deployed_at"] is not None:
        out["lead_time_s"] = (out["deployed_at"] - out["first_commit_at"]).total_seconds()
    return out


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    """A database collected from the simulator over HTTP and mapped."""
    folder = tmp_path_factory.mktemp("oracle")
    with GitHubSimulator(world) as sim:
        config = load_config(folder, sim, world, extra='bots = ["petclinic-ci"]\n')
        with Store(config.db_path) as store:
            assert all(r.ok for r in collect(config, store))
            run_map(config, store)
    return config.db_path


def test_every_merged_change_matches_the_definitions(mapped: Path, world: World) -> None:
    columns = [
        "first_commit_at", "opened_at", "ready_at", "first_review_at", "approved_at", "merged_at",
        "deployed_at", "lead_time_s", "is_bot"]
    with Store(mapped, read_only=True) as store:
        _, rows = store.query(f"SELECT change_id, {', '.join(columns)} FROM changes")
    actual = {row[0]: dict(zip(columns, row[1:], strict=True)) for row in rows}
    expected = {f"{rw.full_name}#{pr.number}": expected_change(rw, pr, world.end)
                for rw in world.repos for pr in rw.pulls if pr.merged_at is not None}
    assert actual.keys() == expected.keys()
    mismatches = [(change, column, actual[change][column], want[column])
                  for change, want in expected.items() for column in columns
                  if not _same(actual[change][column], want[column])]
    assert not mismatches, mismatches[:5]
    # the comparison covers every interesting case the world contains
    assert sum(1 for e in expected.values() if e["deployed_at"] is None) > 10       # seed-contained or pending
    assert sum(1 for e in expected.values() if e["deployed_at"] is not None) > 100
    assert sum(1 for e in expected.values() if e["ready_at"] != e["opened_at"]) > 10  # drafts
    assert sum(1 for e in expected.values() if e["is_bot"]) > 10


def _same(left: Any, right: Any) -> bool:
    """Equal, with float seconds compared to the microsecond."""
    if isinstance(left, float) or isinstance(right, float):
        return left is not None and right is not None and abs(float(left) - float(right)) < 1e-3
    return bool(left == right)
