"""Running unattended: `vsm run` exit codes, `vsm status`, the daemon's wiring, SIGTERM, and queries
from a second process while vsm writes."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector import config as cfg
from collector.cli import main
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World
from collector.present.health import source_status
from collector.scheduler import Daemon
from collector.store import Store, snapshot_path
from tests.conftest import write_config

VSM = [sys.executable, "-m", "collector.cli"]


def test_run_exits_1_when_a_source_fails_but_maps_the_rest(tmp_path: Path, sim: GitHubSimulator,
                                                          world: World) -> None:
    good = world.repos[1].full_name
    path = write_config(tmp_path, sim.base_url, [good, "petclinic/gone"])
    assert main(["run", "--config", str(path)]) == 1
    with Store(tmp_path / "vsm.duckdb", read_only=True) as store:
        assert store.query("SELECT DISTINCT repo FROM changes")[1] == [(good,)]  # mapped despite the failure
    assert snapshot_path(tmp_path / "vsm.duckdb").exists()


def test_run_exits_0_when_all_good_and_2_on_config_error(tmp_path: Path, sim: GitHubSimulator,
                                                        world: World) -> None:
    path = write_config(tmp_path, sim.base_url, [world.repos[1].full_name])
    assert main(["run", "--config", str(path)]) == 0
    broken = write_config(tmp_path, sim.base_url, [world.repos[1].full_name], name="bad.toml",
                          extra='colect = "* * * * *"\n')
    assert main(["run", "--config", str(broken)]) == 2


def test_status_reports_freshness_and_staleness(tmp_path: Path, sim: GitHubSimulator, world: World,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, sim.base_url, [world.repos[1].full_name])
    assert main(["run", "--config", str(path)]) == 0
    capsys.readouterr()
    assert main(["status", "--config", str(path), "--json"]) == 0
    (github,) = json.loads(capsys.readouterr().out)
    assert github["source"] == "github" and github["stale"] is False and github["last_status"] == "success"
    # GraphQL by default: a handful of queries, and the points budget they left
    assert 0 < github["last_requests"] < 20 and github["rate_limit_remaining"] < 5000

    config = cfg.load(path)
    with Store(config.db_path, read_only=True) as store:
        (later,) = source_status(config, store, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=3))
    assert later.stale and later.age_s is not None and later.age_s > 2 * 3600  # default stale_after = 2h
    never = write_config(tmp_path, sim.base_url, [world.repos[0].full_name], name="never.toml", db="never.duckdb")
    Store(tmp_path / "never.duckdb").close()
    assert main(["status", "--config", str(never)]) == 3
    assert "STALE" in capsys.readouterr().out


def test_daemon_wiring(tmp_path: Path) -> None:
    path = tmp_path / "vsm.toml"
    path.write_text('[github]\nrepos = ["a/b"]\n\n[schedule]\ncollect = "*/15 * * * *"\nrun_at_start = false\n'
                    'timezone = "Europe/London"\n[schedule.sources]\ngithub = "0 6 * * 1"\n', encoding="utf-8")
    daemon = Daemon(cfg.load(path))
    (job,) = daemon.scheduler.get_jobs()
    assert job.id == "collect-github"
    assert daemon.scheduler._job_defaults == {"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}
    # the per-source override, in crontab's meaning: day 1 is Monday
    wednesday = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    fire = job.trigger.get_next_fire_time(None, wednesday)
    assert fire.weekday() == 0 and (fire.hour, fire.minute) == (6, 0)

    path.write_text('[github]\nrepos = ["a/b"]\n', encoding="utf-8")
    eager = Daemon(cfg.load(path), clock=lambda: wednesday)
    assert [(job_id, when) for job_id, when in eager.jobs()] == [("collect-github", wednesday)]

    # with a [report] section the weekly report is a job of its own, on `report` in crontab's meaning
    path.write_text('[github]\nrepos = ["a/b"]\n\n[report]\nto = ["brenda@petclinic.example"]\n\n'
                    '[schedule]\nreport = "30 7 * * 1"\ntimezone = "Europe/London"\n', encoding="utf-8")
    reporting = Daemon(cfg.load(path), clock=lambda: wednesday)
    report_job = reporting.scheduler.get_job("report")
    assert report_job is not None
    fire = report_job.trigger.get_next_fire_time(None, wednesday)
    assert (fire.date(), fire.hour, fire.minute) == (dt.date(2026, 11, 30), 7, 30)  # next Monday 07:30 London


def _wait_for(predicate: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def test_daemon_collects_queries_keep_working_and_sigterm_exits_cleanly(tmp_path: Path, sim: GitHubSimulator,
                                                                       world: World) -> None:
    # over REST, whose many requests keep the daemon's collect busy long enough to query beside it
    path = write_config(tmp_path, sim.base_url, [r.full_name for r in world.repos], extra='api = "rest"\n')
    # a first pass publishes the snapshot teammates read while the daemon holds the file
    sim.clock = world.end - dt.timedelta(days=14)
    assert main(["run", "--config", str(path)]) == 0
    with Store(tmp_path / "vsm.duckdb", read_only=True) as store:
        before = store.query("SELECT count(*) FROM pull_requests")[1][0][0]

    sim.clock = world.end
    sim.latency = 0.01  # a slow API: the daemon's collect takes seconds, holding the database
    first = len(sim.request_log)
    daemon = subprocess.Popen([*VSM, "daemon", "--config", str(path)], stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(sim.request_log) > first + 40)
        assert daemon.poll() is None
        query = subprocess.run([*VSM, "query", "--config", str(path), "--format", "csv",
                                "SELECT count(*) AS n FROM pull_requests"], capture_output=True, text=True,
                               timeout=60, check=False)
        assert query.returncode == 0, query.stderr
        assert query.stdout.strip() == f"n\n{before}"  # the published snapshot, not a half-written state
        assert "snapshot" in query.stderr
        _wait_for(lambda: len(sim.request_log) > first + 200)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "finishing the current page" in err and "daemon stopped" in err

    with Store(tmp_path / "vsm.duckdb", read_only=True) as store:
        runs = store.query("SELECT status, finished_at IS NOT NULL FROM sync_runs ORDER BY run_id")[1]
        orphans = store.query("SELECT count(*) FROM pull_requests AS p WHERE NOT EXISTS "
                              "(SELECT 1 FROM pr_commits AS c WHERE c.repo = p.repo AND c.pr_number = p.number)")
        raw_without_row = store.query("SELECT count(*) FROM raw_objects AS r WHERE r.kind = 'pull' AND NOT EXISTS "
                                      "(SELECT 1 FROM pull_requests AS p WHERE r.id = p.repo || '#' || p.number)")
    assert runs[0] == ("success", True) and runs[-1][1] is True  # the interrupted run was closed, not left running
    assert orphans[1] == [(0,)] and raw_without_row[1] == [(0,)]  # pages are all-or-nothing
