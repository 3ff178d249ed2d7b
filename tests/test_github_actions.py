"""GitHub Actions runs as CI builds: collected through PyGithub from the simulated GitHub, then mapped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector import config as cfg
from collector.demo.actions_world import Attempt, WorkflowRun
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import RepoWorld, World
from collector.pipeline import collect, run_map
from collector.store import Store
from tests.conftest import ACTIONS_REPO, write_config

TABLES = ("github_workflow_runs", "github_workflow_jobs", "ci_builds")


@pytest.fixture
def asim(actions_world: World) -> Iterator[GitHubSimulator]:
    """A simulated GitHub over the world with Actions, clock at its end."""
    with GitHubSimulator(actions_world) as server:
        yield server


def actions_config(tmp_path: Path, sim: GitHubSimulator, db: str = "vsm.duckdb") -> cfg.Config:
    """A config for the Actions repo with `build.yml` as its CI workflow."""
    return cfg.load(write_config(tmp_path, sim.base_url, [ACTIONS_REPO], name=f"{db}.toml", db=db,
                                 extra='ci_workflows = ["build.yml"]\n'))


def collect_ok(config: cfg.Config, store: Store) -> int:
    """Collect, assert success, return the requests made."""
    (result,) = collect(config, store)
    assert result.ok, result.errors
    return result.requests


def rows(store: Store, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """All rows of a query."""
    return store.query(sql, params or [])[1]


def finished(attempt: Attempt) -> datetime:
    """When the attempt's last job completed."""
    times = [job.completed_at for job in attempt.jobs]
    assert all(times)
    return max(t for t in times if t)


def reaches(rw: RepoWorld, sha: str, target: str) -> bool:
    """Whether commit sha has target in its history."""
    stack, seen = [sha], set()
    while stack:
        top = stack.pop()
        if top == target:
            return True
        if top not in seen:
            seen.add(top)
            stack.extend(rw.commits[top].parents)
    return False


def test_collect_stores_runs_jobs_and_one_build_per_attempt(tmp_path: Path, asim: GitHubSimulator,
                                                            actions_world: World) -> None:
    rw = actions_world.repo(ACTIONS_REPO)
    config = actions_config(tmp_path, asim)
    with Store(config.db_path) as store:
        collect_ok(config, store)
        runs = {r[0]: r for r in rows(store, "SELECT run_id, run_attempt, head_sha, status, conclusion, created_at, "
                                             "run_started_at, updated_at FROM github_workflow_runs")}
        assert set(runs) == {run.id for run in rw.runs}
        jobs = rows(store, "SELECT job_id, created_at, started_at, completed_at FROM github_workflow_jobs")
        assert {j[0] for j in jobs} == {job.id for run in rw.runs for a in run.attempts for job in a.jobs}
        builds = {b[0]: b[1:] for b in rows(store, "SELECT build_id, sha, queued_at, started_at, finished_at, "
                                                  "status, job FROM ci_builds WHERE source = 'github-actions'")}
        assert len(builds) == sum(len(run.attempts) for run in rw.runs)

        # one run by hand: a first-time success
        run = next(r for r in rw.runs if len(r.attempts) == 1 and r.latest.conclusion == "success")
        attempt = run.latest
        assert runs[run.id][1:5] == (1, run.head_sha, "completed", "success")
        assert runs[run.id][5:] == (run.created_at, attempt.started_at, finished(attempt))
        assert builds[f"github-actions:{ACTIONS_REPO}/{run.id}#1"] == (
            run.head_sha, run.created_at, attempt.started_at, finished(attempt), "success", "build.yml")
        queue = {j[0]: (j[2] - j[1]).total_seconds() for j in jobs}
        for job in attempt.jobs:
            assert job.started_at is not None
            assert queue[job.id] == (job.started_at - job.created_at).total_seconds() > 0

        # a re-run: the failed first attempt and the successful second are two builds
        rerun = next(r for r in rw.runs if len(r.attempts) == 2 and r.latest.conclusion == "success")
        first, second = rerun.attempts
        assert first.conclusion == "failure"
        assert builds[f"github-actions:{ACTIONS_REPO}/{rerun.id}#1"][1:5] == (
            rerun.created_at, min(j.created_at for j in first.jobs), finished(first), "failure")
        assert builds[f"github-actions:{ACTIONS_REPO}/{rerun.id}#2"][1:5] == (
            second.started_at, second.started_at, finished(second), "success")
        raw = dict(rows(store, "SELECT kind, count(*) FROM raw_objects WHERE kind LIKE 'workflow_%' GROUP BY kind"))
        assert raw == {"workflow_run": len(rw.runs), "workflow_job": len(jobs)}


def test_incremental_collect_fetches_newer_runs_and_rechecks_unfinished_ones(
        tmp_path: Path, asim: GitHubSimulator, actions_world: World) -> None:
    rw = actions_world.repo(ACTIONS_REPO)
    # T1: one run has just been created and waits for a runner; a failed one will be re-run later
    running = next(r for r in rw.runs[len(rw.runs) // 2:] if len(r.attempts) == 1)
    t1 = running.latest.started_at + timedelta(seconds=1)
    asim.clock = t1
    config = actions_config(tmp_path, asim)
    with Store(config.db_path) as store:
        collect_ok(config, store)
        build = f"github-actions:{ACTIONS_REPO}/{running.id}#1"
        assert rows(store, "SELECT status, finished_at FROM ci_builds WHERE build_id = ?", [build]) == [
            ("queued", None)]
        assert rows(store, "SELECT status FROM github_workflow_runs WHERE run_id = ?", [running.id]) == [("queued",)]
        assert rows(store, "SELECT count(*) FROM github_workflow_jobs WHERE run_id = ?", [running.id]) == [(0,)]

        asim.clock = actions_world.end
        start = len(asim.request_log)
        collect_ok(config, store)
        paths = [path for _, path, _ in asim.request_log[start:] if "/actions/" in path]
        listing = [p for p in paths if "/workflows/build.yml/runs" in p]
        assert len(listing) == 1 and "created=%3E%3D" in listing[0]
        newer = [r for r in rw.runs if r.created_at > running.created_at]
        refetched = {int(p.rsplit("/", 1)[1]) for p in paths if p.split("?")[0].rsplit("/", 2)[1] == "runs"}
        assert running.id in refetched
        assert not refetched & {r.id for r in newer}, "a newer run is listed, never fetched by id"
        seen_at_t1 = {r.id for r in rw.runs if r.created_at <= t1}
        assert refetched <= seen_at_t1
        job_lists = {int(p.split("/runs/")[1].split("/")[0]) for p in paths if "/jobs" in p}
        assert job_lists <= {r.id for r in newer} | refetched
        assert rows(store, "SELECT status FROM ci_builds WHERE build_id = ?", [build]) == [
            (running.latest.conclusion,)]

        fresh = actions_config(tmp_path, asim, db="fresh.duckdb")
        with Store(fresh.db_path) as other:
            collect_ok(fresh, other)
            for table in TABLES:
                query = f"SELECT * FROM {table} ORDER BY ALL"
                assert rows(store, query) == rows(other, query), table


def test_build_stage_comes_from_the_first_successful_run_and_reruns_are_rework(
        tmp_path: Path, asim: GitHubSimulator, actions_world: World) -> None:
    rw = actions_world.repo(ACTIONS_REPO)
    config = actions_config(tmp_path, asim)
    successes: list[tuple[datetime, WorkflowRun, Attempt]] = [
        (finished(a), run, a) for run in rw.runs for a in run.attempts if a.conclusion == "success"]
    successes.sort(key=lambda s: (s[0], s[1].id))
    seed_sha = successes[0][1].head_sha

    def expected(merge_sha: str) -> tuple[Attempt, int] | None:
        """The delivering attempt and the failed attempts before it, as the mapper should find them."""
        if reaches(rw, seed_sha, merge_sha):
            return None
        hit = next((s for s in successes if reaches(rw, s[1].head_sha, merge_sha)), None)
        if hit is None:
            return None
        failed = sum(1 for run in rw.runs for a in run.attempts if a.conclusion == "failure"
                     and reaches(rw, run.head_sha, merge_sha) and a.started_at < hit[2].started_at)
        return hit[2], failed

    pr, (delivering, failures) = next(
        (pr, found) for pr in rw.pulls if pr.merge_commit_sha
        for run in rw.runs if run.head_sha == pr.merge_commit_sha and len(run.attempts) == 2
        if (found := expected(pr.merge_commit_sha)) is not None and found[1] > 0)
    with Store(config.db_path) as store:
        collect_ok(config, store)
        run_map(config, store)
        changes = rows(store, "SELECT build_started_at, build_finished_at FROM changes WHERE repo = ? "
                              "AND pr_number = ?", [ACTIONS_REPO, pr.number])
        assert changes == [(delivering.started_at, finished(delivering))]
        stage = rows(store, "SELECT rework, wait_s, process_s FROM stage_times WHERE repo = ? AND pr_number = ? "
                            "AND stage = 'build'", [ACTIONS_REPO, pr.number])
        assert pr.merged_at is not None
        assert stage == [(failures, (delivering.started_at - pr.merged_at).total_seconds(),
                          (finished(delivering) - delivering.started_at).total_seconds())]
        checked = 0
        for other in rw.pulls:
            if other.merge_commit_sha and (found := expected(other.merge_commit_sha)) is not None:
                got = rows(store, "SELECT build_started_at FROM changes WHERE repo = ? AND pr_number = ?",
                           [ACTIONS_REPO, other.number])
                assert got == [(found[0].started_at,)], other.number
                checked += 1
        assert checked > 50
