"""Faults of the process itself: `vsm collect` killed with SIGKILL mid-sync, two collects on one file, and a
reader querying while the writer works, against the simulated Jenkins, Jira and PagerDuty over HTTP.

Each case ends compared with a clean collect of the same world: every typed table of the source equal row for
row (nothing lost, nothing duplicated). The GitHub transports' kill -9 cases are in tests/test_collect_github.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.cli import main
from collector.demo.incident_world import IncidentWorld
from collector.demo.jenkins_world import JenkinsWorld
from collector.demo.served import Fault
from collector.demo.world import World
from collector.store import Store
from tests.test_faults_sources import (
    SOURCES,
    Outcome,
    Servers,
    _config,
    _credentials,
    incidents,
    jworld,
    serve,
    vsm_collect,
)

__all__ = ["incidents", "jworld"]  # module fixtures shared with the source fault tests

ROOT = Path(__file__).resolve().parent.parent
# a held request waits this long for its answer: the kill, or a second process, lands meanwhile
HOLD_S = 3.0


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory, world: World, jworld: JenkinsWorld,
              incidents: IncidentWorld) -> Outcome:
    """A clean `vsm collect` of the three sources: the tables and request counts faulty runs are held to."""
    with pytest.MonkeyPatch.context() as mp, serve(jworld, incidents) as sims:
        _credentials(mp)
        outcome = vsm_collect(_config(tmp_path_factory.mktemp("clean"), sims, jworld, incidents, world), sims)
    assert (outcome.code, outcome.errors, outcome.warnings) == (0, [], [])
    assert all(outcome.requests[source] >= 2 for source in SOURCES)  # more than one page each: a middle exists
    return outcome


@pytest.fixture
def sims(jworld: JenkinsWorld, incidents: IncidentWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    """Fresh simulators of the same world, the right credentials in the environment (children inherit it)."""
    _credentials(monkeypatch)
    with serve(jworld, incidents) as servers:
        yield servers


@pytest.fixture
def config(tmp_path: Path, sims: Servers, jworld: JenkinsWorld, incidents: IncidentWorld, world: World) -> Path:
    """The config pointing at this test's simulators."""
    return _config(tmp_path, sims, jworld, incidents, world)


def hold(sims: Servers, source: str, request: int) -> Fault:
    """Hold the source's `request`-th request (1-based) for HOLD_S before it is answered as usual."""
    return sims.of(source).inject_fault(r"", status=None, delay=HOLD_S, skip=request - 1)


def start_collect(config: Path, *sources: str) -> subprocess.Popen[bytes]:
    """`vsm collect` of some sources in a child process, as cron would start it."""
    argv = [sys.executable, "-m", "collector.cli", "-q", "collect", "--config", str(config)]
    return subprocess.Popen([*argv, *(a for s in sources for a in ("--source", s))], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until_held(held: Fault, child: subprocess.Popen[bytes]) -> None:
    """Until the held request has arrived (the child must still be running, waiting for its answer)."""
    deadline = time.monotonic() + 60
    while not held.hits and time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        time.sleep(0.01)
    assert held.hits, "the collect never reached the held request"


def run_statuses(db: Path, source: str) -> list[str]:
    """The status of each recorded run of a source, oldest first."""
    with Store(db, read_only=True) as store:
        return [row[0] for row in store.query(
            "SELECT status FROM sync_runs WHERE source = ? ORDER BY run_id", [source])[1]]


def cli(*argv: str) -> tuple[int, str]:
    """`vsm ARGV` in this process: its exit code and stdout."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(list(argv))
    return code, stdout.getvalue()


@pytest.mark.parametrize("source", SOURCES)
def test_kill_9_mid_sync_then_resume_equals_a_clean_run(source: str, config: Path, sims: Servers,
                                                         clean_run: Outcome) -> None:
    # killed while its last request is in flight: the pages before it are stored, the last one is not
    held = hold(sims, source, clean_run.requests[source])
    child = start_collect(config, source)
    wait_until_held(held, child)
    child.kill()
    assert child.wait() == -9, "the collect finished before it could be killed"
    time.sleep(HOLD_S + 0.5)  # the held answer goes out to no one and reaches the request log

    resumed = vsm_collect(config, sims, (source,))
    assert (resumed.code, resumed.errors) == (0, [])
    assert resumed.tables[source] == clean_run.tables[source]
    # the cut run is marked as such by the next one, which then succeeds; nothing of it was committed twice
    assert run_statuses(config.parent / "vsm.duckdb", source) == ["interrupted", "success"]
    # the resumed run starts after the stored pages: Jira by design searches again from a day before its
    # cursor (the whole of this small world), the others ask less than a whole sync
    if source == "jira":
        assert resumed.requests[source] <= clean_run.requests[source]
    else:
        assert resumed.requests[source] < clean_run.requests[source]


def test_a_second_collect_on_the_same_file_refuses_with_one_line_and_the_first_is_exact(
        config: Path, sims: Servers, clean_run: Outcome, caplog: pytest.LogCaptureFixture) -> None:
    held = hold(sims, "jenkins", 2)
    first = start_collect(config, "jenkins")
    wait_until_held(held, first)  # it has opened the database and holds it while it waits

    code, _ = cli("collect", "--config", str(config), "--source", "jira")
    db = config.parent / "vsm.duckdb"
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert code == 1
    assert str(db) in line and "in use by another vsm process" in line and "\n" not in line

    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    after = vsm_collect(config, sims, ("jira",))  # the refused source collects once the file is free
    assert after.code == 0
    assert after.tables["jenkins"] == clean_run.tables["jenkins"]
    assert after.tables["jira"] == clean_run.tables["jira"]
    assert run_statuses(db, "jenkins") == ["success"] and run_statuses(db, "jira") == ["success"]


def test_a_reader_answers_from_the_snapshot_while_the_writer_works(config: Path, sims: Servers,
                                                                   clean_run: Outcome) -> None:
    db = config.parent / "vsm.duckdb"
    assert vsm_collect(config, sims, ("jira",)).code == 0
    with Store(db) as store:
        store.publish_snapshot()
        jira_rows = store.query("SELECT count(*) FROM incident_records WHERE source = 'jira'")[1][0][0]
    assert jira_rows == len(clean_run.tables["jira"]["incident_records"]) > 0

    held = hold(sims, "pagerduty", 2)
    writer = start_collect(config, "pagerduty")
    wait_until_held(held, writer)
    started = time.monotonic()
    code, answer = cli("query", "--config", str(config), "--format", "json", "--wait", "0",
                       "SELECT count(*) AS n FROM incident_records WHERE source = 'jira'")
    assert code == 0 and json.loads(answer) == {"n": jira_rows}
    code, status = cli("status", "--config", str(config), "--json", "--wait", "0")
    assert code in (0, 3) and "jira" in [s["source"] for s in json.loads(status)]
    assert time.monotonic() - started < 5  # answered at once, not after waiting for the writer
    assert writer.poll() is None  # the writer was never stopped or blocked by the reader

    _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err.decode()
    with Store(db, read_only=True) as store:
        rows = store.query("SELECT count(*) FROM incident_records WHERE source = 'pagerduty'")[1][0][0]
    assert rows == len(clean_run.tables["pagerduty"]["incident_records"])
