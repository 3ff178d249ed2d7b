"""GitHub Actions runs as CI builds: collected through PyGithub from the simulated GitHub, then mapped."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from github import Github
from github.Repository import Repository

from collector import config as cfg
from collector.demo.actions_world import Attempt, WorkflowRun
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import RepoWorld, World
from collector.pipeline import collect, run_map
from collector.store import Store
from connectors.github_actions import push_run_pages, workflow_file, workflow_pages
from models.records import Page
from tests.conftest import ACTIONS_REPO, write_config
from tests.test_github_simulator import SPEC_PATH, schema_errors

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
        # each build links to its attempt's page: the run's html_url shows the latest attempt only
        urls = dict(rows(store, "SELECT build_id, url FROM ci_builds WHERE source = 'github-actions'"))
        page = rows(store, "SELECT html_url FROM github_workflow_runs WHERE run_id = ?", [rerun.id])[0][0]
        assert page.endswith(f"/{ACTIONS_REPO}/actions/runs/{rerun.id}")
        assert urls[f"github-actions:{ACTIONS_REPO}/{rerun.id}#2"] == page
        assert urls[f"github-actions:{ACTIONS_REPO}/{rerun.id}#1"] == f"{page}/attempts/1"
        assert all(urls.values())
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


# -- the push stream and conditional requests, through the connector functions (no database) -------------
HORIZON = datetime(2026, 1, 1, tzinfo=UTC)
Stream = Callable[[Repository, str | None], Iterator[Page]]
STREAMS: dict[str, Stream] = {
    "push": lambda repo, cursor: push_run_pages(repo, repo.full_name, cursor, HORIZON),
    "configured": lambda repo, cursor: workflow_pages(repo, repo.full_name, "build.yml", cursor, HORIZON),
}


def client(sim: GitHubSimulator, name: str = ACTIONS_REPO) -> Repository:
    """A PyGithub repo on the simulator, built lazily (no request until a field is read)."""
    return Github(base_url=sim.base_url, per_page=100, seconds_between_requests=0, lazy=True).get_repo(name)


def drain(pages: Iterable[Page]) -> tuple[dict[str, list[dict[str, Any]]], list[Any], str | None, int]:
    """Rows by table, raw payloads, the last cursor and how many pages the stream yielded."""
    tables: dict[str, list[dict[str, Any]]] = {}
    raw: list[Any] = []
    cursor, count = None, 0
    for page in pages:
        count += 1
        for table, items in page.rows.items():
            tables.setdefault(table, []).extend(items)
        raw.extend((obj.kind, obj.id, obj.payload) for obj in page.raw)
        cursor = page.cursor or cursor
    return tables, raw, cursor, count


def statuses(sim: GitHubSimulator, start: int) -> list[tuple[str, int]]:
    """(path, status) of the requests since index start."""
    return [(path, status) for _, path, status in sim.request_log[start:]]


def test_push_stream_rows_equal_those_of_the_configured_workflow(asim: GitHubSimulator) -> None:
    repo = client(asim)
    repo.default_branch  # noqa: B018 - completes the lazy repo before the request log is read
    start = len(asim.request_log)
    push, push_raw, push_cursor, _ = drain(STREAMS["push"](repo, None))
    listing = [p for p, _ in statuses(asim, start) if p.split("?")[0].endswith("/actions/runs")]
    assert listing and all("event=push" in p and "branch=main" in p for p in listing)
    assert "page=" not in listing[0].replace("per_page=", "") and len(listing) == len({*listing})
    configured, configured_raw, configured_cursor, _ = drain(STREAMS["configured"](repo, None))
    assert set(push) == set(TABLES)
    for table in TABLES:
        assert push[table] == configured[table], table
    assert {row["workflow"] for row in push["github_workflow_runs"]} == {"build.yml"}
    assert {row["job"] for row in push["ci_builds"]} == {"build.yml"}
    assert push_raw == configured_raw
    assert push_cursor is not None and configured_cursor is not None
    assert json.loads(push_cursor)["max_id"] == json.loads(configured_cursor)["max_id"]


def test_workflow_file_is_the_path_without_directory_and_ref() -> None:
    assert workflow_file({"path": ".github/workflows/build.yml@main"}) == "build.yml"
    assert workflow_file({"path": ".github/workflows/ci.yaml@refs/heads/release/1.x"}) == "ci.yaml"
    assert workflow_file({"path": "dynamic/pages/pages-build-deployment"}) == "pages-build-deployment"
    assert workflow_file({"path": None, "name": "Build"}) == "Build"


@pytest.mark.parametrize("kind", sorted(STREAMS))
def test_unchanged_polls_answer_304_and_later_runs_arrive_once(kind: str, asim: GitHubSimulator,
                                                                actions_world: World) -> None:
    rw = actions_world.repo(ACTIONS_REPO)
    stream = STREAMS[kind]
    t1 = rw.runs[len(rw.runs) // 2].created_at + timedelta(seconds=30)
    asim.clock = t1
    repo = client(asim)
    first, _, cursor, _ = drain(stream(repo, None))
    assert cursor is not None
    # the next poll learns the ETags of the requests that follow (the `created` bound moved): no rows
    again, _, settled, _ = drain(stream(repo, cursor))
    assert again == {}
    state = json.loads(settled or cursor)
    watched = {str(entry[0]) for entry in state["watch"]}
    assert watched and set(state["etags"]) == {"runs"} | watched
    start = len(asim.request_log)
    assert drain(stream(repo, settled or cursor)) == ({}, [], None, 0), "unchanged: nothing yielded"
    answered = statuses(asim, start)
    assert len(answered) == 1 + len(watched) and {status for _, status in answered} == {304}

    asim.clock = actions_world.end
    later, _, cursor, _ = drain(stream(repo, settled or cursor))
    first_ids = {row["run_id"] for row in first["github_workflow_runs"]}
    later_ids = [row["run_id"] for row in later["github_workflow_runs"]]
    assert len(later_ids) == len(set(later_ids)), "each run once per sync"
    assert set(later_ids) & first_ids <= {int(run_id) for run_id in watched}, "only watched runs come again"
    fresh, _, _, _ = drain(stream(client(asim), None))
    for table, key in (("github_workflow_runs", "run_id"), ("github_workflow_jobs", "job_id"),
                       ("ci_builds", "build_id")):
        merged = {row[key]: row for row in first.get(table, []) + later.get(table, [])}
        assert sorted(merged.values(), key=lambda r: r[key]) == sorted(fresh[table], key=lambda r: r[key]), table
    assert {r["run_id"] for r in fresh["github_workflow_runs"]} == {r.id for r in rw.runs}


def test_a_repo_without_runs_costs_one_request_then_one_304(sim: GitHubSimulator) -> None:
    repo = client(sim, "petclinic/petclinic-vets-service")
    repo.default_branch  # noqa: B018 - completes the lazy repo before the request log is read
    start = len(sim.request_log)
    tables, raw, cursor, count = drain(push_run_pages(repo, repo.full_name, None, HORIZON))
    assert (tables, raw, count) == ({}, [], 1) and cursor is not None
    assert [status for _, status in statuses(sim, start)] == [200]
    start = len(sim.request_log)
    assert drain(push_run_pages(repo, repo.full_name, cursor, HORIZON)) == ({}, [], None, 0)
    assert [status for _, status in statuses(sim, start)] == [304]
    # without ETags the same poll is a full answer, and the cursor then carries none
    start = len(sim.request_log)
    _, _, plain, _ = drain(push_run_pages(repo, repo.full_name, cursor, HORIZON, etags=False))
    assert [status for _, status in statuses(sim, start)] == [200]
    assert plain is not None and json.loads(plain)["etags"] == {}


def test_a_cursor_from_before_etags_still_loads(asim: GitHubSimulator, actions_world: World) -> None:
    rw = actions_world.repo(ACTIONS_REPO)
    asim.clock = rw.runs[len(rw.runs) // 2].created_at + timedelta(seconds=30)
    repo = client(asim)
    _, _, cursor, _ = drain(STREAMS["configured"](repo, None))
    assert cursor is not None
    state = json.loads(cursor)
    old = json.dumps({"created": state["created"], "max_id": state["max_id"],
                      "watch": [entry[:4] for entry in state["watch"]]})
    tables, _, upgraded, _ = drain(STREAMS["configured"](repo, old))
    assert tables == {}, "the watched runs are unchanged"
    assert upgraded is not None
    new = json.loads(upgraded)
    assert new["watch"] == state["watch"] and new["max_id"] == state["max_id"] and "etags" in new


def test_simulated_repo_runs_list_filters_like_a_workflows_runs(asim: GitHubSimulator, actions_world: World) -> None:
    rw = actions_world.repo(ACTIONS_REPO)
    base = f"{asim.base_url}/repos/{ACTIONS_REPO}/actions"

    def listed(url: str, **query: str) -> dict[str, Any]:
        answer = requests.get(url, params={"per_page": "100", **query}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    run = rw.runs[10]
    for query in ({"head_sha": run.head_sha}, {"status": "failure"}, {"event": "push", "branch": "main"},
                  {"created": f"{run.created_at:%Y-%m-%d}"}, {"created": f"<{run.created_at:%Y-%m-%dT%H:%M:%SZ}"}):
        everything = listed(f"{base}/runs", **query)
        one = listed(f"{base}/workflows/build.yml/runs", **query)
        assert everything["total_count"] == one["total_count"] > 0, query
        assert everything["workflow_runs"] == one["workflow_runs"], query
    assert listed(f"{base}/runs", branch="other")["total_count"] == 0
    empty = listed(f"{asim.base_url}/repos/petclinic/petclinic-vets-service/actions/runs")
    assert empty == {"total_count": 0, "workflow_runs": []}


def test_simulated_repo_runs_list_matches_the_documented_schema(asim: GitHubSimulator) -> None:
    spec = json.loads(SPEC_PATH.read_text("utf-8"))
    errors = []
    for query in ("branch=main&event=push&created=>=2026-10-01", "status=failure", "per_page=100&page=2"):
        body = requests.get(f"{asim.base_url}/repos/{ACTIONS_REPO}/actions/runs?{query}", timeout=10).json()
        assert body["workflow_runs"], query
        errors += [f"{query}: {e}" for e in schema_errors(spec, body, path="/repos/{owner}/{repo}/actions/runs")]
    assert not errors, errors[:10]
