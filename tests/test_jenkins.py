"""The Jenkins connector against the simulated Jenkins, through the real python-jenkins client and store."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from collector import config as cfg
from collector.demo.jenkins_server import JenkinsSimulator
from collector.demo.jenkins_tree import Hidden, Nested, TreeError, parse_tree, pick, visible
from collector.demo.jenkins_world import PIPELINE, SHA_PARAMETER, Build, JenkinsWorld, generate_jenkins_world
from collector.demo.world import DATA, World
from collector.store import Store
from connectors.jenkins import JenkinsConnector, make_connector
from models.records import Page
from tests.conftest import WORLD_END

WEB, VETS = "petclinic/petclinic-web", "petclinic/petclinic-vets-service"
CI, VETS_MAIN = "petclinic/build", "petclinic/vets-service/main"
STAGING, PROD = "petclinic/deploy-staging", "petclinic/deploy-prod"
CONFIGURED = [CI, VETS_MAIN, STAGING, PROD]  # the jobs the demo config collects
TABLES = ["jenkins_builds", "jenkins_build_changes", "jenkins_stages"]


@pytest.fixture(scope="module")
def jworld(world: World) -> JenkinsWorld:
    """The Jenkins history of the session's Pet Clinic world."""
    return generate_jenkins_world(world)


@pytest.fixture
def jsim(jworld: JenkinsWorld) -> Iterator[JenkinsSimulator]:
    """A running simulated Jenkins, clock at the world's end."""
    with JenkinsSimulator(jworld) as server:
        yield server


@dataclass
class Run:
    """What one collection run of the connector did."""

    requests: int
    errors: list[str]
    warnings: list[str]


def connector(sim: JenkinsSimulator, jworld: JenkinsWorld, env: dict[str, str] | None = None,
              **overrides: Any) -> JenkinsConnector:
    """A connector built the way the pipeline will: from a validated [jenkins] config section."""
    table = {**jworld.config(sim.base_url), "timeout": 5, "retries": 1, **overrides}
    config = cfg.from_dict({"jenkins": table}).jenkins
    assert config is not None
    return make_connector(config, env=env or {})


def collect(conn: JenkinsConnector, store: Store) -> Run:
    """Every scope page by page into the store; a failing scope does not stop the others (as the pipeline)."""
    cursors = store.cursors("jenkins")
    errors = []
    for scope in conn.scopes():
        try:
            for page in conn.pages(scope, cursors):
                store.write_page(page)
        except Exception as exc:  # noqa: BLE001 - the pipeline's contract: describe and go on
            errors.append(f"{scope}: {conn.describe_error(exc)}")
    return Run(conn.requests_made, errors, list(conn.warnings))


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the Jenkins tables, in a stable order."""
    return {t: store.query(f"SELECT * FROM {t} ORDER BY ALL")[1] for t in TABLES}


def seen(jworld: JenkinsWorld, clock: dt.datetime) -> list[Build]:
    """Builds of the configured jobs visible at a clock."""
    return [b for name in CONFIGURED for b in jworld.jobs[name].visible(clock)]


def sha_route(build: Build) -> str | None:
    """Where the connector must find a build's SHA."""
    if build.revisions:
        return "build_data"
    if build.parameter(SHA_PARAMETER):
        return "parameter"
    return "upstream" if any("upstreamProject" in c for c in build.causes) else None


def listings(sim: JenkinsSimulator, start: int = 0) -> Counter[str]:
    """allBuilds requests per job path in the request log (from entry `start`)."""
    return Counter(m.group(1) for _, path, _ in sim.request_log[start:]
                   if (m := re.match(r"(/job/.+?)/api/json\?tree=.*allBuilds", path)))


def wfapi(sim: JenkinsSimulator, start: int = 0) -> set[tuple[str, int]]:
    """(job path, build number) of every wfapi/describe request (from entry `start`)."""
    return {(m.group(1), int(m.group(2))) for _, path, _ in sim.request_log[start:]
            if (m := re.match(r"(/job/.+)/(\d+)/wfapi/describe", path))}


def path(job: str) -> str:
    return "".join(f"/job/{part}" for part in job.split("/"))


# -- the whole history ---------------------------------------------------------------------------------------
def test_full_collect_stores_every_build_as_jenkins_reports_it(tmp_path: Path, jsim: JenkinsSimulator,
                                                                jworld: JenkinsWorld) -> None:
    with Store(tmp_path / "vsm.duckdb") as store:
        run = collect(connector(jsim, jworld), store)
        assert run.errors == [] and run.warnings == []
        names, rows = store.query("SELECT * FROM jenkins_builds")
        stored = {(r["job"], r["number"]): r for r in (dict(zip(names, row, strict=True)) for row in rows)}
        stages = store.query("SELECT job, number, name, status, started_at, duration_s, pause_s "
                             "FROM jenkins_stages")[1]
        changes = store.query("SELECT job, number, sha FROM jenkins_build_changes")[1]
        links = dict(store.query("SELECT build_id, url FROM ci_builds UNION ALL"
                                 " SELECT deployment_id, url FROM ci_deployments")[1])
    builds = seen(jworld, WORLD_END)
    assert set(stored) == {(b.job, b.number) for b in builds}
    routes: Counter[str | None] = Counter()
    for build in builds:
        row = stored[(build.job, build.number)]
        assert row["result"] == build.result and row["building"] is False
        assert row["started_at"] == build.started_at  # the `timestamp`, to the millisecond
        assert row["finished_at"] == build.finished_at and row["duration_s"] == build.duration_ms / 1000
        queue = build.queue if build.metrics else None  # only what TimeInQueueAction reports, never invented
        assert row["queue_s"] == (queue.total_ms / 1000 if queue else None)
        assert row["queue_blocked_s"] == (queue.blocked_ms / 1000 if queue else None)
        assert row["queue_buildable_s"] == (queue.buildable_ms / 1000 if queue else None)
        queued = build.started_at - dt.timedelta(milliseconds=queue.total_ms) if queue else None
        assert row["queued_at"] == queued
        assert row["sha"] == build.sha and row["sha_source"] == sha_route(build)
        routes[row["sha_source"]] += 1
        assert row["repo"] == (VETS if build.job == VETS_MAIN else WEB)
        assert row["kind"] == ("deploy" if build.job in (STAGING, PROD) else "ci")
        assert row["environment"] == {STAGING: "staging", PROD: "production"}.get(build.job)
        assert json.loads(row["causes"]) == list(build.causes)
        assert json.loads(row["parameters"]) == dict(build.parameters)
        upstream = next((c for c in build.causes if "upstreamProject" in c), None)
        assert (row["upstream_job"], row["upstream_number"]) == \
            ((upstream["upstreamProject"], upstream["upstreamBuild"]) if upstream else (None, None))
        pause = sum(s.pause_ms for s in build.stages) / 1000 if build.kind == PIPELINE else None
        assert row["pause_s"] == pause
        if row["repo"] is not None:  # the normalised build or deployment links back to the build page
            assert row["url"].endswith(f"/{build.number}/")
            assert links[f"jenkins:{build.job}#{build.number}"] == row["url"]
    assert routes["build_data"] and routes["parameter"] and routes["upstream"] and None not in routes
    assert Counter(b.metrics for b in builds)[False] > 0  # builds from before the Metrics plugin
    assert len(changes) == sum(len(b.changes) for b in builds) > 0
    assert len(stages) == sum(len(b.stages) for b in builds)
    approvals = [s for s in stages if s[0] == PROD and s[2] == "Approve"]
    assert len(approvals) == len(jworld.jobs[PROD].builds) and all(s[6] > 0 for s in approvals)
    expected = {(b.number, s.name): (s.status, s.started_at, s.duration_ms / 1000, s.pause_ms / 1000)
                for b in jworld.jobs[PROD].builds for s in b.stages}
    assert {(s[1], s[2]): s[3:] for s in stages if s[0] == PROD} == expected


def test_one_request_per_job_per_100_builds_plus_one_wfapi_per_pipeline_build(
        tmp_path: Path, jsim: JenkinsSimulator, jworld: JenkinsWorld) -> None:
    with Store(tmp_path / "vsm.duckdb") as store:
        run = collect(connector(jsim, jworld), store)
    builds = seen(jworld, WORLD_END)
    per_job = Counter(b.job for b in builds)
    assert listings(jsim) == {path(job): math.ceil(count / 100) for job, count in per_job.items()}
    assert max(per_job.values()) > 100  # some job really pages
    assert wfapi(jsim) == {(path(b.job), b.number) for b in builds if b.kind == PIPELINE}
    crumbs = [p for _, p, _ in jsim.request_log if p.startswith("/crumbIssuer")]
    assert len(crumbs) == 1
    # the upstream builds of deploy builds without a SHA were collected in the same run: no extra request
    assert not [p for _, p, _ in jsim.request_log if re.search(r"/\d+/api/json", p)]
    assert run.requests == len(jsim.request_log) == 1 + sum(listings(jsim).values()) + len(wfapi(jsim))


def test_second_collect_changes_nothing_and_costs_one_request_per_job(tmp_path: Path, jsim: JenkinsSimulator,
                                                                      jworld: JenkinsWorld) -> None:
    with Store(tmp_path / "vsm.duckdb") as store:
        collect(connector(jsim, jworld), store)
        first = snapshot(store)
        cursors = store.cursors("jenkins")
        raw = store.query("SELECT kind, id, payload_hash, fetched_at FROM raw_objects ORDER BY ALL")[1]
        start = len(jsim.request_log)
        again = collect(connector(jsim, jworld), store)
        assert again.errors == []
        assert snapshot(store) == first and store.cursors("jenkins") == cursors
        assert store.query("SELECT kind, id, payload_hash, fetched_at FROM raw_objects ORDER BY ALL")[1] \
            == raw
    assert again.requests == len(jsim.request_log) - start == 1 + len(CONFIGURED)


def test_incremental_collect_fetches_new_builds_and_refetches_running_ones(
        tmp_path: Path, jsim: JenkinsSimulator, jworld: JenkinsWorld) -> None:
    ci, prod = jworld.jobs[CI], jworld.jobs[PROD]
    # a moment in the last two weeks when a production deploy waits for approval while a CI build runs
    moments = [(p, c, s.started_at + dt.timedelta(milliseconds=s.pause_ms // 2))
               for p in prod.builds for s in p.stages[1:2] if s.pause_ms > 600_000 for c in ci.builds]
    recent = [m for m in moments if m[1].running_at(m[2]) and m[2] > WORLD_END - dt.timedelta(days=14)]
    paused, running, t1 = max(recent, key=lambda m: m[2])
    jsim.clock = t1
    with Store(tmp_path / "vsm.duckdb") as store:
        assert collect(connector(jsim, jworld), store).errors == []
        query = ("SELECT building, result, finished_at, pause_s FROM jenkins_builds "
                 "WHERE job = ? AND number = ?")
        for build in (paused, running):
            assert store.query(query, [build.job, build.number])[1] == [(True, None, None, None)]
        assert store.query("SELECT count(*) FROM jenkins_stages WHERE job = ? AND number = ?",
                           [PROD, paused.number])[1] == [(0,)]
        assert json.loads(store.cursors("jenkins")[(PROD, "builds")])["running"] == [paused.number]
        jsim.clock = WORLD_END
        start = len(jsim.request_log)
        assert collect(connector(jsim, jworld), store).errors == []
        incremental = snapshot(store)
        assert store.query(query, [PROD, paused.number])[1] == [
            (False, paused.result, paused.finished_at, sum(s.pause_ms for s in paused.stages) / 1000)]
    assert listings(jsim, start) == {path(job): 1 for job in CONFIGURED}
    finished_since = {(path(b.job), b.number) for b in seen(jworld, WORLD_END)
                      if b.kind == PIPELINE and not (b.started_at <= t1 and not b.running_at(t1))}
    assert wfapi(jsim, start) == finished_since and (path(PROD), paused.number) in finished_since
    with Store(tmp_path / "fresh.duckdb") as fresh:
        collect(connector(jsim, jworld), fresh)
        assert snapshot(fresh) == incremental


def test_a_pass_cut_mid_job_resumes_after_its_last_stored_page_and_loses_nothing(
        tmp_path: Path, jsim: JenkinsSimulator, jworld: JenkinsWorld) -> None:
    ci = jworld.jobs[CI]
    # a moment when a CI build runs and the job lists over 100 builds: a pass needs two listing pages
    t1 = next(b.started_at + dt.timedelta(seconds=1) for b in ci.builds
              if 100 < len(ci.visible(b.started_at)) < 190 and b.running_at(b.started_at + dt.timedelta(seconds=1)))
    listed = ci.visible(t1)
    running = [b.number for b in listed if b.running_at(t1)]
    jsim.clock = t1
    jsim.inject_fault(r"allBuilds.*%7B100,200%7D", 503, times=2)  # the second page, and its one retry
    conn = connector(jsim, jworld, jobs=[CI], deploy_jobs={})
    with Store(tmp_path / "vsm.duckdb") as store:
        cut = collect(conn, store)
        assert len(cut.errors) == 1 and "503" in cut.errors[0]
        state = json.loads(store.cursors("jenkins")[(CI, "builds")])
        stored = {n for (n,) in store.query("SELECT number FROM jenkins_builds")[1]}
        # the first page is stored with a cursor that claims exactly what it holds
        assert stored == {b.number for b in listed[:100]}
        assert (state["last"], state["running"]) == (0, [])
        assert state["pass"] == {"high": max(n for n in stored if n not in running), "low": min(stored),
                                 "running": running}
        jsim.clock = WORLD_END  # builds started meanwhile, the running one finished
        start = len(jsim.request_log)
        resumed = collect(connector(jsim, jworld, jobs=[CI], deploy_jobs={}), store)
        assert resumed.errors == []
        # the old pass is finished: no stored build is fetched again, none started since is taken yet
        assert wfapi(jsim, start) == {(path(CI), b.number) for b in listed[100:] if b.kind == PIPELINE}
        assert {n for (n,) in store.query("SELECT number FROM jenkins_builds")[1]} == {b.number for b in listed}
        assert json.loads(store.cursors("jenkins")[(CI, "builds")]) == {
            "job": CI, "last": state["pass"]["high"], "running": running}
        start = len(jsim.request_log)
        assert collect(connector(jsim, jworld, jobs=[CI], deploy_jobs={}), store).errors == []
        newer = {b.number for b in ci.visible(WORLD_END)} - {b.number for b in listed}
        assert newer and wfapi(jsim, start) == {(path(CI), n) for n in newer | set(running)}
        incremental = snapshot(store)
    with Store(tmp_path / "fresh.duckdb") as fresh:
        assert collect(connector(jsim, jworld, jobs=[CI], deploy_jobs={}), fresh).errors == []
        assert snapshot(fresh) == incremental


def test_an_upstream_sha_is_fetched_when_the_upstream_job_is_not_collected(
        tmp_path: Path, jsim: JenkinsSimulator, jworld: JenkinsWorld) -> None:
    conn = connector(jsim, jworld, jobs=[], deploy_jobs={PROD: "production"})
    with Store(tmp_path / "vsm.duckdb") as store:
        assert collect(conn, store).errors == []
        shas = dict(store.query("SELECT number, sha FROM jenkins_builds")[1])
    builds = jworld.jobs[PROD].builds
    assert shas == {b.number: b.sha for b in builds}
    # each upstream build is fetched once, following the chain deploy-prod -> deploy-staging -> build
    needed: set[tuple[str, int]] = set()
    for build in builds:
        upstream = next((c for c in build.causes if "upstreamProject" in c), None)
        while upstream is not None and not build.parameter(SHA_PARAMETER) and not build.revisions:
            needed.add((upstream["upstreamProject"], upstream["upstreamBuild"]))
            build = jworld.build(upstream["upstreamProject"], upstream["upstreamBuild"])
            upstream = next((c for c in build.causes if "upstreamProject" in c), None)
    fetched = [(m.group(1), int(m.group(2))) for _, url, _ in jsim.request_log
               if (m := re.match(r"(/job/.+)/(\d+)/api/json", url))]
    assert len(fetched) == len(set(fetched)) and set(fetched) == {(path(j), n) for j, n in needed}
    assert {j for j, _ in needed} == {STAGING, CI}


# -- folders, multibranch, configuration -------------------------------------------------------------------
def test_a_multibranch_project_name_means_its_default_branch(tmp_path: Path, jsim: JenkinsSimulator,
                                                             jworld: JenkinsWorld) -> None:
    conn = connector(jsim, jworld, jobs=["petclinic/vets-service"], deploy_jobs={},
                     repos={"petclinic/vets-service": VETS})
    with Store(tmp_path / "vsm.duckdb") as store:
        assert collect(conn, store).errors == []
        rows = store.query("SELECT job, repo, count(*) FROM jenkins_builds GROUP BY ALL")[1]
        cursor = store.cursors("jenkins")[("petclinic/vets-service", "builds")]
    assert rows == [(VETS_MAIN, VETS, len(jworld.jobs[VETS_MAIN].builds))]
    assert json.loads(cursor)["job"] == VETS_MAIN
    listed = [p.split("?")[0] for _, p, _ in jsim.request_log if "allBuilds" in p]
    project = "/job/petclinic/job/vets-service"
    assert listed == [f"{project}/api/json", f"{project}/job/main/api/json", f"{project}/job/main/api/json"]


def test_a_build_repo_comes_from_its_remote_url_then_the_mapping_then_the_default(
        tmp_path: Path, jsim: JenkinsSimulator, jworld: JenkinsWorld) -> None:
    elsewhere = "petclinic/somewhere-else"
    conn = connector(jsim, jworld, repo=elsewhere, repos={STAGING: WEB})
    with Store(tmp_path / "vsm.duckdb") as store:
        assert collect(conn, store).errors == []
        repos = dict(store.query("SELECT job, list(DISTINCT repo) FROM jenkins_builds GROUP BY job")[1])
        shas = dict(store.query("SELECT number, sha FROM jenkins_builds WHERE job = ?", [VETS_MAIN])[1])
    # CI builds: the configured repo named by the remote URL (the pipeline library's checkout is ignored);
    # staging: the mapping; production and vets (its remote names no configured repo): the default
    assert repos == {CI: [WEB], STAGING: [WEB], PROD: [elsewhere], VETS_MAIN: [elsewhere]}
    assert shas == {b.number: b.sha for b in jworld.jobs[VETS_MAIN].builds}


def test_a_plain_folder_is_a_clear_error(tmp_path: Path, jsim: JenkinsSimulator,
                                         jworld: JenkinsWorld) -> None:
    conn = connector(jsim, jworld, jobs=["petclinic"], deploy_jobs={})
    with Store(tmp_path / "vsm.duckdb") as store:
        run = collect(conn, store)
    assert run.errors == [("petclinic: petclinic is a folder (com.cloudbees.hudson.plugins.folder.Folder), "
                          "not a job: name a job inside it")]


def test_a_deleted_job_is_a_warning_and_the_others_still_collect(tmp_path: Path, jsim: JenkinsSimulator,
                                                                 jworld: JenkinsWorld,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    conn = connector(jsim, jworld, jobs=["petclinic/old-build", CI])
    with caplog.at_level(logging.WARNING), Store(tmp_path / "vsm.duckdb") as store:
        run = collect(conn, store)
        jobs = dict(store.query("SELECT job, count(*) FROM jenkins_builds GROUP BY job")[1])
    assert run.errors == []
    assert run.warnings == [("Jenkins job petclinic/old-build was not found (404): deleted or renamed? "
                            "The other jobs still collect")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "petclinic/old-build" in warnings[0] and "\n" not in warnings[0]
    assert set(jobs) == {CI, STAGING, PROD} and jobs[CI] == len(jworld.jobs[CI].builds)


# -- failures ----------------------------------------------------------------------------------------------
def test_a_server_error_is_one_line_and_the_other_jobs_collect(tmp_path: Path, jsim: JenkinsSimulator,
                                                               jworld: JenkinsWorld) -> None:
    # the try and its one retry both fail: the retry policy cannot help, the job ends with one line
    jsim.inject_fault(r"^/job/petclinic/job/build/api/json", 500, times=2, body="<html><body>java.lang."
                      "NullPointerException\n\tat hudson.model.Job</body></html>")
    with Store(tmp_path / "vsm.duckdb") as store:
        run = collect(connector(jsim, jworld), store)
        jobs = {j for (j,) in store.query("SELECT DISTINCT job FROM jenkins_builds")[1]}
    assert run.errors == [(f"{CI}: Jenkins answered 500 Internal Server Error for builds 0-99 of job {CI} "
                           "(still after 1 retry)")]
    assert jobs == {VETS_MAIN, STAGING, PROD}
    assert run.requests == len(jsim.request_log)


def test_bad_gateways_are_retried_and_counted(tmp_path: Path, jsim: JenkinsSimulator,
                                              jworld: JenkinsWorld) -> None:
    jsim.inject_fault(r"/deploy-prod/api/json", 502, times=1)
    jsim.inject_fault(r"/vets-service/job/main/\d+/wfapi", 503, times=1, headers={"Retry-After": "0"})
    with Store(tmp_path / "vsm.duckdb") as store:
        run = collect(connector(jsim, jworld), store)
    assert run.errors == []
    assert Counter(s for _, _, s in jsim.request_log)[502] == 1
    assert run.requests == len(jsim.request_log)


def test_a_timeout_is_one_line(tmp_path: Path, jsim: JenkinsSimulator, jworld: JenkinsWorld) -> None:
    jsim.inject_fault(r"/deploy-staging/api/json", None, times=2, delay=1.2)  # the try and its one retry
    conn = connector(jsim, jworld, jobs=[], deploy_jobs={STAGING: "staging"}, timeout=0.4)
    with Store(tmp_path / "vsm.duckdb") as store:
        run = collect(conn, store)
    assert run.errors == [(f"{STAGING}: Jenkins at {jsim.base_url} did not answer builds 0-99 of job "
                          f"{STAGING} within 0.4s (timeout)")]
    assert run.requests == 3  # crumb, then the listing twice


def test_an_unreachable_server_is_one_line(tmp_path: Path, jworld: JenkinsWorld) -> None:
    table = {**jworld.config("http://127.0.0.1:9"), "jobs": [CI], "deploy_jobs": {}, "timeout": 2,
             "retries": 1}
    config = cfg.from_dict({"jenkins": table}).jenkins
    assert config is not None
    with Store(tmp_path / "vsm.duckdb") as store:
        run = collect(make_connector(config, env={}), store)
    assert run.errors == [f"{CI}: cannot connect to Jenkins at http://127.0.0.1:9 (builds 0-99 of job {CI})"]
    assert run.requests == 2  # the try and its retry


def test_malformed_json_is_one_line(tmp_path: Path, jsim: JenkinsSimulator, jworld: JenkinsWorld) -> None:
    number = jworld.jobs[VETS_MAIN].builds[-1].number
    jsim.inject_fault(rf"/vets-service/job/main/{number}/wfapi", 200, body='{"stages": [{"id": ',
                      headers={"Content-Type": "application/json;charset=utf-8"})  # a JSON body cut short
    conn = connector(jsim, jworld, jobs=[VETS_MAIN], deploy_jobs={})
    with Store(tmp_path / "vsm.duckdb") as store:
        run = collect(conn, store)
    assert run.errors == [(f"{VETS_MAIN}: malformed JSON from Jenkins at {jsim.base_url} "
                           f"for wfapi/describe of {VETS_MAIN} #{number}")]


def test_credentials_are_sent_and_never_logged_or_stored(tmp_path: Path, jworld: JenkinsWorld,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    user, token = "vsm-reader", "11a9e0c2f7d4b3a8c5e6f1d2"
    monkeypatch.setenv("VSM_JENKINS_USER", user)
    monkeypatch.setenv("VSM_JENKINS_TOKEN", token)
    creds = {"user_env": "VSM_JENKINS_USER", "token_env": "VSM_JENKINS_TOKEN", "jobs": [VETS_MAIN],
             "deploy_jobs": {}}
    with JenkinsSimulator(jworld, user=user, token=token) as sim, caplog.at_level(logging.DEBUG):
        with Store(tmp_path / "vsm.duckdb") as store:
            assert collect(connector(sim, jworld, dict(os.environ), **creds), store).errors == []
            monkeypatch.setenv("VSM_JENKINS_TOKEN", "not-the-token")
            wrong = collect(connector(sim, jworld, dict(os.environ), **creds), store)
        assert wrong.errors == [(f"{VETS_MAIN}: Jenkins at {sim.base_url} rejected the credentials "
                                f"(401 Unauthorized) for builds 0-99 of job {VETS_MAIN}")]
    assert not any(token in r.getMessage() for r in caplog.records)
    assert token.encode() not in (tmp_path / "vsm.duckdb").read_bytes()
    config = cfg.from_dict({"jenkins": {"url": "https://jenkins.example", "jobs": [CI], **creds}}).jenkins
    assert config is not None
    with pytest.raises(ValueError, match="environment variable VSM_JENKINS_USER is not set"):
        make_connector(config, env={})


# -- pipeline stages and the simulator's JSON API ------------------------------------------------------------
def test_stage_figures_from_recorded_wfapi_payloads() -> None:
    recorded = DATA / "jenkins"
    page = Page("jenkins", "job", "builds")
    detail = json.loads((recorded / "metrik/pipeline/jenkins/raw-build-detail-1.json").read_text())
    assert JenkinsConnector._add_stages(page, "4km-backend", 82, detail) == 0.0
    stage = page.rows["jenkins_stages"][1]
    assert (stage["stage_id"], stage["name"], stage["status"]) == ("21", "Build Docker image", "FAILED")
    # 1610949324441 ms after the epoch, 53584 ms long, no pause
    assert stage["started_at"] == dt.datetime(2021, 1, 18, 5, 55, 24, 441000, tzinfo=dt.UTC)
    assert (stage["duration_s"], stage["pause_s"]) == (53.584, 0.0)
    older = json.loads((recorded / "jenkins-rest/workflow.json").read_text())  # a stage view without pauses
    page = Page("jenkins", "job", "builds")
    assert JenkinsConnector._add_stages(page, "Test Workflow", 16, older) is None
    waiting = page.rows["jenkins_stages"][2]
    assert (waiting["name"], waiting["status"], waiting["duration_s"], waiting["pause_s"]) == \
        ("Deploy", "PAUSED_PENDING_INPUT", 0.007, None)
    assert waiting["started_at"] == dt.datetime(2014, 10, 16, 12, 8, 5, 992000, tzinfo=dt.UTC)


def test_tree_expressions_select_fields_ranges_and_hidden_properties() -> None:
    builds = [{"_class": "Run", "number": n, "result": "SUCCESS", "actions": [
        {"_class": "TimeInQueueAction", "waitingDurationMillis": Hidden(5000)}, {}]} for n in (9, 8, 7, 6)]
    every = Nested(builds, lambda b: b, lambda b: b["number"])
    job = {"_class": "Job", "name": "build", "allBuilds": Hidden(every)}
    assert visible(job) == {"_class": "Job", "name": "build"}
    picked = pick(job, parse_tree("name,allBuilds[number,actions[waitingDurationMillis]]{1,3}"))
    assert picked == {"_class": "Job", "name": "build", "allBuilds": [
        {"_class": "Run", "number": n,
         "actions": [{"_class": "TimeInQueueAction", "waitingDurationMillis": 5000}, {}]} for n in (8, 7)]}
    for spec, numbers in (("{2,}", [7, 6]), ("{,1}", [9]), ("{3}", [6]), ("", [9, 8, 7, 6])):
        picked = pick(job, parse_tree(f"allBuilds[number]{spec}"))
        assert [b["number"] for b in picked["allBuilds"]] == numbers
    assert pick(job, parse_tree("allBuilds{0,1}")) == {"_class": "Job", "allBuilds": [{"_class": "Run"}]}
    for bad in ("allBuilds[number", "a,,b", "allBuilds{x}", "a]"):
        with pytest.raises(TreeError):
            parse_tree(bad)


def test_the_simulator_shows_running_and_queued_builds_at_its_clock(jsim: JenkinsSimulator,
                                                                   jworld: JenkinsWorld) -> None:
    def get(url_path: str, **params: str) -> requests.Response:
        return requests.get(f"{jsim.base_url}{url_path}", params=params, timeout=5)

    queued = next(b for b in jworld.jobs[CI].builds if b.queue.blocked_ms > 60_000 and b.metrics)
    phases = [(0, "WaitingItem"), (queued.queue.waiting_ms + 1000, "BlockedItem"),
              (queued.queue.waiting_ms + queued.queue.blocked_ms + 1, "BuildableItem")]
    for offset, phase in phases:
        jsim.clock = queued.queued_at + dt.timedelta(milliseconds=offset)
        items = [i for i in get("/queue/api/json").json()["items"] if i["id"] == queued.queue_id]
        assert [i["_class"] for i in items] == [f"hudson.model.Queue${phase}"]
        assert get(f"{path(CI)}/{queued.number}/api/json").status_code == 404  # not started yet
    jsim.clock = queued.queued_at + dt.timedelta(milliseconds=queued.queue.waiting_ms + 1000)
    blocker = next(b for b in jworld.jobs[CI].builds if b.running_at(jsim.clock))
    build = get(f"{path(CI)}/{blocker.number}/api/json").json()
    assert (build["building"], build["result"], build["duration"]) == (True, None, 0)
    gate = next(b for b in jworld.jobs[PROD].builds if b.stages[1].pause_ms > 60_000)
    jsim.clock = gate.stages[1].started_at + dt.timedelta(seconds=30)
    stages = get(f"{path(PROD)}/{gate.number}/wfapi/describe").json()
    assert stages["status"] == stages["stages"][1]["status"] == "PAUSED_PENDING_INPUT"
    assert stages["stages"][1]["pauseDurationMillis"] == 30_000 and "pendingInputActions" in stages["_links"]
    assert get(f"{path(STAGING)}/api/json", tree="allBuilds[number").status_code == 400
    assert get(f"{path(STAGING)}/{jworld.jobs[STAGING].builds[0].number}/wfapi/describe").status_code == 404


def test_simulated_answers_have_the_recorded_shapes(jsim: JenkinsSimulator) -> None:
    recorded = DATA / "jenkins"
    summary = json.loads((recorded / "metrik/pipeline/jenkins/raw-build-summary-1.json").read_text())
    tree = ("allBuilds[building,duration,number,result,timestamp,url,"
            "changeSets[items[commitId,timestamp,date,msg]]]")
    answer = requests.get(f"{jsim.base_url}{path(CI)}/api/json", params={"tree": tree}, timeout=5).json()
    build = next(b for b in answer["allBuilds"] if b["changeSets"])
    assert set(answer) == set(summary) and set(build) == set(summary["allBuilds"][0])
    recorded_item = summary["allBuilds"][0]["changeSets"][0]["items"][0]
    assert set(build["changeSets"][0]["items"][0]) == set(recorded_item)
    detail = json.loads((recorded / "metrik/pipeline/jenkins/raw-build-detail-1.json").read_text())
    described = requests.get(f"{jsim.base_url}{path(CI)}/{build['number']}/wfapi/describe", timeout=5).json()
    assert list(described) == list(detail) and list(described["stages"][0]) == list(detail["stages"][0])
    depth0 = json.loads((recorded / "jenkins-rest/build-info-no-params.json").read_text())
    queue_action = next(a for a in depth0["actions"] if a.get("_class", "").endswith("TimeInQueueAction"))
    plain = requests.get(f"{jsim.base_url}{path(CI)}/{build['number']}/api/json", timeout=5).json()
    assert queue_action in plain["actions"]  # the Metrics plugin's fields are hidden at depth 0


def test_the_jenkins_world_is_deterministic_and_realistic(world: World, jworld: JenkinsWorld) -> None:
    again = generate_jenkins_world(replace(world))
    assert [(b.job, b.number, b.started_at, b.sha) for b in again.all_builds()] == \
        [(b.job, b.number, b.started_at, b.sha) for b in jworld.all_builds()]
    ci = jworld.jobs[CI].builds
    results = Counter(b.result for b in ci)
    assert 0.04 < results["FAILURE"] / len(ci) < 0.16
    assert any(len({c.landed_at for c in b.changes}) > 1 for b in ci)  # one build for several merges
    assert any(c["_class"].endswith("UserIdCause") for b in ci for c in b.causes)  # re-runs by hand
    prod = jworld.jobs[PROD].builds
    pauses = sorted(b.stages[1].pause_ms / 60_000 for b in prod if b.result == "SUCCESS")
    assert 1 < pauses[len(pauses) // 2] < 240 and pauses[-1] > 240  # minutes, sometimes overnight
    assert all(c["_class"].endswith(("UpstreamCause", "UserIdCause")) for b in prod for c in b.causes)
