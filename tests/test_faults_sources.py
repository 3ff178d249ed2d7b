"""Faults of Jenkins, Jira and PagerDuty, injected into the simulated servers, through the real `vsm collect`.

Each case is compared with a clean run of the same world: the typed tables of every source equal it row for
row (sorted full rows, so nothing lost, nothing duplicated, nothing wrong), or the faulty source ends with
one clear line naming it, the endpoint and the cause while the others still collect exactly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from collector.cli import main
from collector.demo import incidents_section, to_toml
from collector.demo.incident_world import IncidentWorld, build_incidents
from collector.demo.jenkins_server import JenkinsSimulator
from collector.demo.jenkins_world import PIPELINE, JenkinsWorld, generate_jenkins_world
from collector.demo.jira_server import JiraSimulator
from collector.demo.pagerduty_server import PagerDutySimulator
from collector.demo.served import Fault
from collector.demo.world import World
from collector.store import Store
from connectors import jira as jira_module
from connectors import pagerduty as pagerduty_module
from tests.conftest import write_config

SOURCES = ("jenkins", "jira", "pagerduty")
# The typed tables each source fills, with the filter that selects its rows in the shared ones.
TABLES = {
    "jenkins": {"jenkins_builds": "", "jenkins_build_changes": "", "jenkins_stages": "",
                "ci_builds": "WHERE source = 'jenkins'", "ci_deployments": "WHERE source = 'jenkins'"},
    "jira": {"incident_records": "WHERE source = 'jira'", "incident_status_changes": "WHERE source = 'jira'"},
    "pagerduty": {"incident_records": "WHERE source = 'pagerduty'",
                  "incident_status_changes": "WHERE source = 'pagerduty'"},
}
PD_TOKEN_ENV, PD_TOKEN = "FAULTS_PD_TOKEN", "pd-token"
JIRA_USER_ENV, JIRA_TOKEN_ENV, JIRA_USER = "FAULTS_JIRA_USER", "FAULTS_JIRA_TOKEN", "ops@petclinic.example"
PROD, VETS_MAIN = "petclinic/deploy-prod", "petclinic/vets-service/main"
LOGIN_PAGE = ("<!DOCTYPE html><html><head><title>Sign in [Jenkins]</title></head><body>"
              "<form method='post' action='j_spring_security_check'>...</form></body></html>")

Rows = list[dict[str, Any]]
Tables = dict[str, dict[str, Rows]]  # source -> table -> rows, sorted


class Instrumented:
    """Mixin for a simulator: stamps every request with the time it arrived (the request log has none) and,
    with `every` set, answers `status` to every `every`-th request that no injected fault already takes."""

    every = 0
    status = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: list[tuple[float, str, int | None]] = []
        self._answers = 0

    def _take_fault(self, path: str) -> Fault | None:
        """The injected fault (or the periodic one) for this request, stamped."""
        fault = super()._take_fault(path)  # type: ignore[misc]
        self._answers += 1  # the simulated clients are sequential: one request at a time
        if fault is None and self.every and self._answers % self.every == 0:
            fault = Fault(re.compile(""), self.status, 1, {}, None)
        self.stamps.append((time.monotonic(), path, fault.status if fault else None))
        return fault


class Jenkins(Instrumented, JenkinsSimulator):
    """The simulated Jenkins, instrumented."""


class Jira(Instrumented, JiraSimulator):
    """The simulated Jira, instrumented."""


class PagerDuty(Instrumented, PagerDutySimulator):
    """The simulated PagerDuty, instrumented."""


@dataclass
class Servers:
    """The three simulated sources of one test."""

    jenkins: Jenkins
    jira: Jira
    pagerduty: PagerDuty

    def of(self, source: str) -> Jenkins | Jira | PagerDuty:
        """The simulator of a source."""
        return {"jenkins": self.jenkins, "jira": self.jira, "pagerduty": self.pagerduty}[source]


@dataclass
class Outcome:
    """What one `vsm collect` did: exit code, stdout, the ERROR log lines, tables, requests per source."""

    code: int
    stdout: str
    errors: list[str]
    warnings: list[str]
    tables: Tables
    requests: dict[str, int]

    def errors_of(self, source: str) -> list[str]:
        """The ERROR lines the pipeline logged for a source."""
        return [e for e in self.errors if e.startswith(source)]


@pytest.fixture(scope="module")
def jworld(world: World) -> JenkinsWorld:
    """The Jenkins history of the session's Pet Clinic world."""
    return generate_jenkins_world(world)


@pytest.fixture(scope="module")
def incidents(world: World) -> IncidentWorld:
    """The Pet Clinic world's incidents (Jira and PagerDuty)."""
    return build_incidents(world)


def _config(tmp_path: Path, sims: Servers, jworld: JenkinsWorld, incidents: IncidentWorld, world: World) -> Path:
    """A config for the three simulators (the [github] section only dates the first sync: not collected)."""
    section = incidents_section(incidents, sims.jira.base_url, sims.pagerduty.base_url, PD_TOKEN_ENV)
    section["jira"] |= {"user_env": JIRA_USER_ENV, "token_env": JIRA_TOKEN_ENV}
    extra = to_toml({"jenkins": jworld.config(sims.jenkins.base_url), "incidents": section})
    return write_config(tmp_path, "http://127.0.0.1:9", [r.full_name for r in world.repos],
                        db=(tmp_path / "vsm.duckdb").as_posix(), extra=extra)


@contextlib.contextmanager
def serve(jworld: JenkinsWorld, incidents: IncidentWorld) -> Iterator[Servers]:
    """The simulated Jenkins, Jira (user and token required) and PagerDuty (token required), running."""
    with (Jenkins(jworld) as jenkins, Jira(incidents, user=JIRA_USER, token="jira-token") as jira,
          PagerDuty(incidents, token=PD_TOKEN) as pagerduty):
        yield Servers(jenkins, jira, pagerduty)


def _credentials(mp: pytest.MonkeyPatch) -> None:
    """The right credentials in the variables the config names."""
    mp.setenv(PD_TOKEN_ENV, PD_TOKEN)
    mp.setenv(JIRA_USER_ENV, JIRA_USER)
    mp.setenv(JIRA_TOKEN_ENV, "jira-token")


class _Lines(logging.Handler):
    """Keeps the WARNING and ERROR records logged while `vsm collect` runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def tables(db: Path, sims: Servers) -> Tables:
    """Every typed table of each source, as sorted full rows; URLs name the server by its source, not its
    port, as each test's simulators listen on ports of their own."""
    bases = {sims.of(source).base_url: f"http://{source}.simulated" for source in SOURCES}

    def same_world(value: Any) -> Any:
        if isinstance(value, str):
            for base, name in bases.items():
                value = value.replace(base, name)
        return value

    with Store(db, read_only=True) as store:
        found: Tables = {}
        for source, wanted in TABLES.items():
            found[source] = {}
            for table, where in wanted.items():
                names, rows = store.query(f"SELECT * FROM {table} {where} ORDER BY ALL")
                found[source][table] = sorted(
                    ({n: same_world(v) for n, v in zip(names, row, strict=True)} for row in rows),
                    key=lambda r: tuple((v is None, str(v)) for v in r.values()))
        return found


def vsm_collect(config: Path, sims: Servers, sources: tuple[str, ...] = SOURCES) -> Outcome:
    """`vsm collect --config F --source ...` in this process, with its log lines, output and results."""
    before = {s: len(sims.of(s).request_log) for s in sources}
    lines, stdout = _Lines(), io.StringIO()
    logging.getLogger().addHandler(lines)
    try:
        with contextlib.redirect_stdout(stdout):
            code = main(["collect", "--config", str(config), *(a for s in sources for a in ("--source", s))])
    finally:
        logging.getLogger().removeHandler(lines)
    db = config.parent / "vsm.duckdb"
    with Store(db, read_only=True) as store:
        latest = dict(store.query("SELECT source, requests FROM sync_runs WHERE run_id IN "
                                  "(SELECT max(run_id) FROM sync_runs GROUP BY source)")[1])
    for source in sources:  # the requests each source reports are the requests its server received
        assert latest[source] == len(sims.of(source).request_log) - before[source], source
    return Outcome(code, stdout.getvalue(),
                   [r.getMessage() for r in lines.records if r.levelno >= logging.ERROR],
                   [r.getMessage() for r in lines.records if r.levelno == logging.WARNING],
                   tables(db, sims), latest)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, world: World, jworld: JenkinsWorld,
          incidents: IncidentWorld) -> Tables:
    """The tables of a clean `vsm collect` of the world: what every faulty run is compared with."""
    with pytest.MonkeyPatch.context() as mp, serve(jworld, incidents) as sims:
        _credentials(mp)
        outcome = vsm_collect(_config(tmp_path_factory.mktemp("clean"), sims, jworld, incidents, world), sims)
    assert outcome.code == 0 and outcome.errors == [] and outcome.warnings == []
    assert all(rows for source in outcome.tables.values() for rows in source.values())
    return outcome.tables


@pytest.fixture
def sims(jworld: JenkinsWorld, incidents: IncidentWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    """Fresh simulators of the same world, with the right credentials in the environment."""
    _credentials(monkeypatch)
    with serve(jworld, incidents) as servers:
        yield servers


@pytest.fixture
def config(tmp_path: Path, sims: Servers, jworld: JenkinsWorld, incidents: IncidentWorld, world: World) -> Path:
    """The config pointing at this test's simulators."""
    return _config(tmp_path, sims, jworld, incidents, world)


def waited_after(sim: Instrumented, status: int) -> float:
    """Seconds between the request answered `status` by a fault and the next request (its retry)."""
    index = next(i for i, (_, _, s) in enumerate(sim.stamps) if s == status)
    return sim.stamps[index + 1][0] - sim.stamps[index][0]


def job_path(job: str) -> str:
    """The URL path of a Jenkins job."""
    return "".join(f"/job/{part}" for part in job.split("/"))


def one_line(message: str, *words: str) -> None:
    """A clear line: one line, short, naming every word given."""
    assert "\n" not in message and len(message) < 400, message
    for word in words:
        assert word in message, (word, message)


# -- Jenkins -------------------------------------------------------------------------------------------------
def test_jenkins_500_on_every_ninth_answer_still_collects_exactly(config: Path, sims: Servers,
                                                                  clean: Tables) -> None:
    sims.jenkins.every = 9
    outcome = vsm_collect(config, sims)
    statuses = Counter(status for _, _, status in sims.jenkins.request_log)
    assert statuses[500] == len(sims.jenkins.request_log) // 9 > 10  # every 500 retried, none stored
    assert (outcome.code, outcome.errors) == (0, [])
    assert outcome.tables == clean


def test_jenkins_429_waits_for_retry_after_and_collects_exactly(config: Path, sims: Servers,
                                                                clean: Tables) -> None:
    sims.jenkins.inject_fault(rf"^{job_path(PROD)}/api/json", 429, times=1, headers={"Retry-After": "1"})
    outcome = vsm_collect(config, sims, ("jenkins",))
    assert waited_after(sims.jenkins, 429) >= 1.0
    assert (outcome.code, outcome.errors) == (0, [])
    assert outcome.tables["jenkins"] == clean["jenkins"]


def test_a_deleted_jenkins_job_is_one_warning_and_the_other_jobs_collect_exactly(
        config: Path, sims: Servers, clean: Tables) -> None:
    sims.jenkins.inject_fault(r"^/job/petclinic/job/vets-service/", 404, times=10_000)
    outcome = vsm_collect(config, sims, ("jenkins",))
    assert (outcome.code, outcome.errors) == (0, [])
    assert len(outcome.warnings) == 1
    one_line(outcome.warnings[0], "Jenkins", VETS_MAIN, "404")
    expected = {t: [r for r in rows if r.get("job") != VETS_MAIN] for t, rows in clean["jenkins"].items()}
    assert expected["jenkins_builds"] != clean["jenkins"]["jenkins_builds"]  # the job had builds
    assert outcome.tables["jenkins"] == expected


def test_a_build_gone_before_its_stages_are_read_is_stored_as_listed_without_stages(
        config: Path, sims: Servers, jworld: JenkinsWorld, clean: Tables) -> None:
    """Jenkins listed the build, then answered 404 for its wfapi/describe (deleted meanwhile). The build
    ran, so it is stored as the listing showed it, only without stages and their pause (a deployment then
    counts no approval pause); retrying would lose the build for good once Jenkins stops listing it."""
    gone = next(b for b in reversed(jworld.jobs[PROD].builds) if b.kind == PIPELINE and b.stages
                and sum(s.pause_ms for s in b.stages) > 0)
    sims.jenkins.inject_fault(rf"^{job_path(PROD)}/{gone.number}/wfapi/describe", 404, times=1)
    outcome = vsm_collect(config, sims, ("jenkins",))
    assert (outcome.code, outcome.errors) == (0, [])

    def without_stages(table: str, row: dict[str, Any]) -> dict[str, Any] | None:
        mine = (row.get("job"), row.get("number")) == (PROD, gone.number) or \
            row.get("deployment_id") == f"jenkins:{PROD}#{gone.number}"
        if not mine:
            return row
        if table == "jenkins_stages":
            return None
        assert row["pause_s"] > 0  # the clean run knew the pause
        return {**row, "pause_s": 0.0 if table == "ci_deployments" else None}

    expected = {t: [r for row in rows if (r := without_stages(t, row)) is not None]
                for t, rows in clean["jenkins"].items()}
    assert outcome.tables["jenkins"] == expected


@pytest.mark.parametrize("how", ["login page", "redirect to the login page"])
def test_an_html_login_page_fails_jenkins_with_one_line_and_the_others_collect(
        how: str, config: Path, sims: Servers, clean: Tables) -> None:
    if how == "login page":
        sims.jenkins.inject_fault(r"^/", 200, times=10_000, body=LOGIN_PAGE)
    else:
        sims.jenkins.inject_fault(r"^/login", 200, times=10_000, body=LOGIN_PAGE)
        sims.jenkins.inject_fault(r"^/", 302, times=10_000,
                                  headers={"Location": f"{sims.jenkins.base_url}/login?from=%2F"})
    outcome = vsm_collect(config, sims)
    assert outcome.code == 1
    [line] = outcome.errors_of("jenkins")
    asked = urlsplit(sims.jenkins.request_log[0][1]).path
    one_line(line, "Jenkins", asked, "answered an HTML page, not JSON", "wrong credentials or a login redirect?")
    summary = next(o for o in outcome.stdout.splitlines() if o.startswith("jenkins:"))
    assert summary.endswith(f"FAILED: {line.removeprefix('jenkins: ')}")
    assert all(not rows for rows in outcome.tables["jenkins"].values())
    assert {s: outcome.tables[s] for s in ("jira", "pagerduty")} == {s: clean[s] for s in ("jira", "pagerduty")}


# -- Jira and PagerDuty ---------------------------------------------------------------------------------------
INCIDENT_SOURCES = ("jira", "pagerduty")
NAMES = {"jira": "Jira", "pagerduty": "PagerDuty"}


@pytest.mark.parametrize("source", INCIDENT_SOURCES)
def test_rejected_credentials_are_one_line_and_the_other_source_collects(
        source: str, config: Path, sims: Servers, clean: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JIRA_TOKEN_ENV if source == "jira" else PD_TOKEN_ENV, "wrong-secret-value")
    outcome = vsm_collect(config, sims, INCIDENT_SOURCES)
    assert outcome.code == 1
    answers = [(urlsplit(p).path, status) for _, p, status in sims.of(source).request_log]
    rejected = {path for path, status in answers if status == 401}
    lines = outcome.errors_of(source)
    # one line per scope (Jira: the JQL; PagerDuty: each service), each after one request: 401 is not retried
    assert lines and len(lines) == len(answers) == sum(status == 401 for _, status in answers)
    for line in lines:
        one_line(line, NAMES[source], "rejected the credentials (401 Unauthorized)")
        assert any(path in line for path in rejected), line
    assert "wrong-secret-value" not in outcome.stdout + "".join(outcome.errors)
    assert all(not rows for rows in outcome.tables[source].values())
    other = next(s for s in INCIDENT_SOURCES if s != source)
    assert outcome.tables[other] == clean[other]


@pytest.mark.parametrize("source", INCIDENT_SOURCES)
def test_429_waits_for_retry_after_and_collects_exactly(source: str, config: Path, sims: Servers,
                                                        clean: Tables) -> None:
    listing = r"^/rest/api/3/search/jql\?" if source == "jira" else r"^/incidents\?"
    body = {"errorMessages": ["Rate limit exceeded"]} if source == "jira" else \
        {"error": {"message": "Rate Limit Exceeded", "code": 2020}}
    sims.of(source).inject_fault(listing, 429, times=1, headers={"Retry-After": "1"}, body=body)
    outcome = vsm_collect(config, sims, INCIDENT_SOURCES)
    assert waited_after(sims.of(source), 429) >= 1.0
    assert (outcome.code, outcome.errors) == (0, [])
    assert {s: outcome.tables[s] for s in INCIDENT_SOURCES} == {s: clean[s] for s in INCIDENT_SOURCES}


@pytest.mark.parametrize("source", INCIDENT_SOURCES)
def test_a_malformed_page_is_one_line_keeps_the_pages_before_and_a_rerun_is_exact(
        source: str, config: Path, sims: Servers, clean: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    records = clean[source]["incident_records"]
    if source == "jira":
        # pages of two issues, oldest update first; the second page is a JSON string, not a search answer
        monkeypatch.setattr(jira_module, "PAGE_SIZE", 2)
        sims.jira.inject_fault(r"^/rest/api/3/search/jql\?.*nextPageToken=", 200, times=1,
                               body="<html><body>502 Bad Gateway</body></html>")
        kept = {r["incident_id"] for r in sorted(records, key=lambda r: r["updated_at"])[:2]}
    else:
        # pages of one incident, oldest first; a service's second page holds an incident of another shape
        monkeypatch.setattr(pagerduty_module, "PAGE_SIZE", 1)
        service = Counter(r["service"] for r in records).most_common(1)[0][0]
        sims.pagerduty.inject_fault(rf"^/incidents\?service_ids%5B%5D={service}&.*&offset=1(&|$)", 200, times=1,
                                    body={"incidents": [{"id": "Q0BROKEN", "type": "incident"}], "limit": 1,
                                          "offset": 1, "more": False})
        first = min((r for r in records if r["service"] == service), key=lambda r: r["created_at"])
        kept = {r["incident_id"] for r in records if r["service"] != service} | {first["incident_id"]}
    outcome = vsm_collect(config, sims, INCIDENT_SOURCES)
    assert outcome.code == 1
    [line] = outcome.errors_of(source)
    [broken] = [urlsplit(p).path for _, p, status in sims.of(source).stamps if status == 200]
    one_line(line, NAMES[source], broken, "JSON of the wrong shape")
    assert outcome.tables[source] == {t: [r for r in rows if r["incident_id"] in kept]
                                      for t, rows in clean[source].items()}
    other = next(s for s in INCIDENT_SOURCES if s != source)
    assert outcome.tables[other] == clean[other]
    again = vsm_collect(config, sims, INCIDENT_SOURCES)  # the fault has cleared
    assert (again.code, again.errors) == (0, [])
    assert {s: again.tables[s] for s in INCIDENT_SOURCES} == {s: clean[s] for s in INCIDENT_SOURCES}
