"""Secrets never leak: a whole pipeline (collect, map, the mailed weekly report, a daemon pass, status) runs
against the simulated GitHub, Jenkins, Jira and PagerDuty with distinctive tokens and injected faults, and
not one token (nor its Basic/SMTP base64 form) shows in the database, a log line, the report, the mail
or the status JSON. The scan itself is proven by tokens planted in copies."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from collector.cli import main
from collector.demo import incidents_section
from collector.demo.github_server import GitHubSimulator
from collector.demo.incident_world import IncidentWorld, build_incidents
from collector.demo.jenkins_server import JenkinsSimulator
from collector.demo.jenkins_world import JenkinsWorld, generate_jenkins_world
from collector.demo.jira_server import JiraSimulator
from collector.demo.pagerduty_server import PagerDutySimulator
from collector.demo.world import World
from connectors import scrub
from tests.test_config_keys import to_toml
from tests.test_mail import free_port

# variable -> value; users are not secret, but their Basic-auth pairing with a token is
ENV = {
    "VSM_S_GITHUB": "ghp_SECRETgithub0123456789",
    "VSM_S_JENKINS_USER": "jenkins-robot",
    "VSM_S_JENKINS": "11SECRETjenkins0123456789abcdef",
    "VSM_S_JIRA_USER": "ops@petclinic.example",
    "VSM_S_JIRA": "ATATT3xSECRETjira0123456789",
    "VSM_S_PAGERDUTY": "u+SECRETpagerduty0123",
    "VSM_S_SMTP_USER": "vsm-mailer",
    "VSM_S_SMTP": "SECRETsmtp-Pa55word!",
}
PAIRS = {"VSM_S_JENKINS": "VSM_S_JENKINS_USER", "VSM_S_JIRA": "VSM_S_JIRA_USER",
         "VSM_S_SMTP": "VSM_S_SMTP_USER"}
REPORT_WEEK = "2026-W46"  # the last complete week of the session's world (it ends Wednesday 2026-11-18)
SOURCES = ("github", "jenkins", "github_issues", "jira", "pagerduty")


def forms() -> dict[str, str]:
    """Every form a secret could leak in, labelled: the token, its base64, Basic user:token, AUTH PLAIN."""
    found = {}
    for name in ("VSM_S_GITHUB", "VSM_S_JENKINS", "VSM_S_JIRA", "VSM_S_PAGERDUTY", "VSM_S_SMTP"):
        secret, user = ENV[name], ENV.get(PAIRS.get(name, ""))
        labels = ["raw", "base64", "basic user:token", "smtp auth plain"]
        found.update({f"{name} {label}": form for label, form in zip(labels, scrub.secret_forms(secret, user),
                                                                      strict=False)})
    return found


def leaks(content: str | bytes) -> list[str]:
    """Labels of the secret forms found in some text or bytes."""
    data = content.encode("utf-8", "replace") if isinstance(content, str) else content
    return [label for label, form in forms().items() if form.encode() in data]


def database_leaks(path: Path) -> list[str]:
    """Secret forms in a DuckDB file: its bytes, its WAL, and every value of every table read back (the file
    compresses strings, so the bytes alone could hide one)."""
    found = leaks(path.read_bytes())
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        found += leaks(wal.read_bytes())
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema = 'main'").fetchall()]
        assert tables, f"{path} holds no tables"
        for table in tables:
            rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
            found += [f"{table}: {label}" for label in leaks(repr(rows))]
    finally:
        con.close()
    return found


class Inbox:
    """The SMTP server's handler: keeps the raw bytes of every message."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message as it arrived."""
        self.messages.append(bytes(envelope.content))
        return "250 OK"


class Authenticator:
    """Accepts only the configured SMTP user and password and remembers each attempt."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        """Check LOGIN/PLAIN credentials."""
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.attempts.append((login, password))
        expected = (ENV["VSM_S_SMTP_USER"], ENV["VSM_S_SMTP"])
        return AuthResult(success=(login, password) == expected, handled=False)


class Records(logging.Handler):
    """Keeps every record's message and traceback as the code produced them, before any scrubbing."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the message (and its traceback, if any)."""
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def isolated_logging() -> Iterator[Records]:
    """A DEBUG capture on the root logger (and the client loggers that do not propagate); the CLI's handler,
    bound to this test's stderr, and the remembered secrets are dropped afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    records = Records()
    quiet = [logging.getLogger(name) for name in ("github.Requester",)]
    root.addHandler(records)
    for logger in quiet:
        logger.addHandler(records)
    yield records
    for logger in quiet:
        logger.removeHandler(records)
    root.handlers[:] = handlers
    root.setLevel(level)
    scrub.forget_all()


@pytest.fixture(scope="module")
def jworld(world: World) -> JenkinsWorld:
    """The Jenkins history of the session's world."""
    return generate_jenkins_world(world)


@pytest.fixture(scope="module")
def incidents(world: World) -> IncidentWorld:
    """The session world's incidents."""
    return build_incidents(world)


def write_config(path: Path, github: str, jenkins: dict[str, Any], jira: str, pagerduty: str,
                 incidents: IncidentWorld, repos: list[str], smtp_port: int) -> Path:
    """A config naming every secret by variable, pointing at the simulators and the local SMTP server."""
    section = incidents_section(incidents, jira, pagerduty, "VSM_S_PAGERDUTY")
    section["jira"].update(user_env="VSM_S_JIRA_USER", token_env="VSM_S_JIRA", timeout=10)
    document = {
        "database": {"path": "vsm.duckdb"},
        "github": {"base_url": github, "repos": repos, "since": "2026-01-01", "token_env": "VSM_S_GITHUB",
                   "retries": 2, "timeout": 10},
        "jenkins": {**jenkins, "user_env": "VSM_S_JENKINS_USER", "token_env": "VSM_S_JENKINS", "retries": 1,
                    "timeout": 10},
        "incidents": section,
        "report": {"to": ["brenda@petclinic.example"], "from": "vsm@petclinic.example",
                   "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": 10,
                            "user_env": "VSM_S_SMTP_USER", "password_env": "VSM_S_SMTP"}},
        "schedule": {"run_at_start": True, "timezone": "Europe/London"},
    }
    path.write_text(to_toml(document), encoding="utf-8")
    return path


def run_cli(capsys: pytest.CaptureFixture[str], output: list[str], *argv: str) -> tuple[int, str]:
    """One in-process `vsm` command; its stdout and stderr are kept for the scan. Returns (code, stdout)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    output += [captured.out, captured.err]
    return code, captured.out


def daemon_pass(config: Path, cwd: Path) -> str:
    """`vsm -v daemon` in its own process until every source finished one pass, then SIGTERM; its output."""
    log_file = cwd / "daemon.log"
    with log_file.open("w", encoding="utf-8") as sink:
        command = [sys.executable, "-m", "collector.cli", "-v", "daemon", "--config", str(config)]
        daemon = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd,
                                  env=dict(os.environ))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and daemon.poll() is None:
                text = log_file.read_text(encoding="utf-8")
                if all(f"collect {source}: pass finished" in text for source in SOURCES):
                    break
                time.sleep(0.1)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    text = log_file.read_text(encoding="utf-8")
    assert daemon.returncode == 0, text[-3000:]
    assert all(f"collect {source}: pass finished" in text for source in SOURCES), text[-3000:]
    return text


def test_no_secret_leaks_from_a_whole_pipeline_with_faults(
        tmp_path: Path, world: World, jworld: JenkinsWorld, incidents: IncidentWorld,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        isolated_logging: Records) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    inbox, authenticator, port = Inbox(), Authenticator(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                      auth_require_tls=False)
    smtp.start()
    output: list[str] = []
    try:
        with (GitHubSimulator(world, token=ENV["VSM_S_GITHUB"], incidents=incidents) as github,
              JenkinsSimulator(jworld, user=ENV["VSM_S_JENKINS_USER"], token=ENV["VSM_S_JENKINS"]) as jenkins,
              JiraSimulator(incidents, user=ENV["VSM_S_JIRA_USER"], token=ENV["VSM_S_JIRA"]) as jira,
              PagerDutySimulator(incidents, token="the-token-pagerduty-expects") as pagerduty):
            # faults: a 502 GitHub retries; a Jenkins job answering 500 past its retries (the scope starts
            # again), another refused (403) for good; a Jira 500 retried; PagerDuty refusing our token (401)
            github.inject_fault(r"^/graphql", 502, times=1)
            jenkins.inject_fault(r"^/job/petclinic/job/build/", 500, times=2)
            jenkins.inject_fault(r"^/job/petclinic/job/deploy-staging/", 403, times=1000,
                                 body="<html><body>Access denied</body></html>")
            jira.inject_fault(r"^/rest/api/3/search", 500, times=1)
            config = write_config(tmp_path / "vsm.toml", github.base_url, jworld.config(jenkins.base_url),
                                  jira.base_url, pagerduty.base_url, incidents,
                                  [r.full_name for r in world.repos], port)

            code, out = run_cli(capsys, output, "-v", "collect", "--config", str(config))
            assert code == 1, output[-1][-3000:]  # PagerDuty and one Jenkins job failed, the rest collected
            assert "pagerduty:" in out and "FAILED" in out and "github:" in out
            assert run_cli(capsys, output, "-v", "map", "--config", str(config))[0] == 0
            code, out = run_cli(capsys, output, "-v", "report", "--config", str(config),
                                "--week", REPORT_WEEK, "--send")
            assert code == 0, output[-1][-3000:]
            output.append(daemon_pass(config, tmp_path))
            code, status_json = run_cli(capsys, output, "status", "--config", str(config), "--json")
    finally:
        smtp.stop()

    # the run really used every secret and really failed where the faults were
    assert authenticator.attempts == [(ENV["VSM_S_SMTP_USER"], ENV["VSM_S_SMTP"])]
    assert len(inbox.messages) == 1
    assert code == 3  # PagerDuty never succeeded: stale
    status = {s["source"]: s for s in json.loads(status_json)}
    assert set(status) == set(SOURCES)
    assert "rejected the credentials (401" in (status["pagerduty"]["last_error"] or "")
    assert "(403" in (status["jenkins"]["last_error"] or "")
    assert status["github"]["last_status"] == "success" and status["jira"]["last_status"] == "success"
    logs = "\n".join([*isolated_logging.lines, *output])
    # error lines (the 500 and the refusals) and DEBUG lines were written
    assert "Jenkins answered 500" in logs and "rejected the credentials" in logs and " DEBUG " in logs

    reports = sorted((tmp_path / "reports").glob("*.html"))
    assert reports
    databases = sorted(tmp_path.glob("*.duckdb"))
    assert {p.name for p in databases} == {"vsm.duckdb", "vsm.snapshot.duckdb"}
    artifacts: dict[str, list[str]] = {
        "log records": leaks("\n".join(isolated_logging.lines)),
        "cli and daemon output": leaks("\n".join(output)),
        "status json": leaks(status_json),
        "report html": [label for path in reports for label in leaks(path.read_bytes())],
        "mail": [label for message in inbox.messages for label in leaks(message)],
        **{path.name: database_leaks(path) for path in databases},
    }
    assert artifacts == {name: [] for name in artifacts}

    # the scan would see a leak: a token planted in a copy of each artifact is found
    planted_db = tmp_path / "planted.duckdb"
    shutil.copy(tmp_path / "vsm.duckdb", planted_db)
    con = duckdb.connect(str(planted_db))
    con.execute("UPDATE sync_runs SET error = coalesce(error, '') || ? WHERE run_id = (SELECT max(run_id) "
                "FROM sync_runs)", [f" Authorization: token {ENV['VSM_S_GITHUB']}"])
    con.close()
    assert any("VSM_S_GITHUB raw" in label for label in database_leaks(planted_db))
    basic = base64.b64encode(f"{ENV['VSM_S_JIRA_USER']}:{ENV['VSM_S_JIRA']}".encode()).decode()
    assert leaks(reports[0].read_bytes() + f"<p>{basic}</p>".encode()) == ["VSM_S_JIRA basic user:token"]
    plain = base64.b64encode(f"\0{ENV['VSM_S_SMTP_USER']}\0{ENV['VSM_S_SMTP']}".encode())
    assert "VSM_S_SMTP smtp auth plain" in leaks(inbox.messages[0] + b"\r\nX-Debug: " + plain)
    assert leaks(status_json.replace('"pagerduty"', f'"{ENV["VSM_S_PAGERDUTY"]}"', 1)) == [
        "VSM_S_PAGERDUTY raw"]


def test_the_cli_log_filter_scrubs_secrets_urls_and_headers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        isolated_logging: Records) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "vsm.toml"
    config.write_text(to_toml({"jenkins": {"url": "http://127.0.0.1:9", "jobs": ["build"],
                                           "user_env": "VSM_S_JENKINS_USER", "token_env": "VSM_S_JENKINS"},
                               "report": {"to": ["b@petclinic.example"], "smtp": {
                                   "user_env": "VSM_S_SMTP_USER", "password_env": "VSM_S_SMTP"}}}), "utf-8")
    assert main(["-v", "status", "--config", str(config)]) == 1  # no database yet; the config was read
    capsys.readouterr()
    basic = base64.b64encode(f"{ENV['VSM_S_JENKINS_USER']}:{ENV['VSM_S_JENKINS']}".encode()).decode()
    log = logging.getLogger("vsm.test")
    log.error("jenkins said no to %s", ENV["VSM_S_JENKINS"])
    log.error("headers %s", {"Authorization": f"Basic {basic}", "Accept": "application/json"})
    log.warning("GET https://%s:%s@jenkins.example/api/json?token=%s&tree=jobs", ENV["VSM_S_JENKINS_USER"],
                "hunter2-password", "abc123def")
    try:
        raise RuntimeError(f"smtp login {ENV['VSM_S_SMTP']} refused")
    except RuntimeError:
        log.exception("mail failed")
    err = capsys.readouterr().err
    assert leaks(err) == [] and "hunter2-password" not in err and "abc123def" not in err
    assert err.count("***") >= 5
    assert "jenkins.example/api/json?token=***&tree=jobs" in err and "'Accept': 'application/json'" in err
    assert "Traceback" in err and "RuntimeError: smtp login *** refused" in err
    # the raw records did carry them: the filter, not luck, kept them off stderr
    assert leaks("\n".join(isolated_logging.lines))


@pytest.mark.parametrize(("table", "key"), [
    ({"github": {"repos": ["a/b"], "token_env": ENV["VSM_S_GITHUB"]}}, "github.token_env"),
    ({"jenkins": {"url": "http://127.0.0.1:9", "jobs": ["b"], "user_env": "VSM_S_JENKINS_USER",
                  "token_env": ENV["VSM_S_JENKINS"]}}, "jenkins.token_env"),
    ({"incidents": {"pagerduty": {"token_env": ENV["VSM_S_PAGERDUTY"], "service_ids": ["P1"]}}},
     "incidents.pagerduty.token_env"),
    ({"report": {"to": ["b@petclinic.example"], "smtp": {"password_env": ENV["VSM_S_SMTP"]}}},
     "report.smtp.password_env"),
    ({"jenkins": {"url": f"https://{ENV['VSM_S_JENKINS_USER']}:{ENV['VSM_S_JENKINS']}@jenkins.example",
                  "jobs": ["b"]}}, "jenkins.url"),
    ({"incidents": {"jira": {"url": f"https://ops:{ENV['VSM_S_JIRA']}@petclinic.atlassian.net"}}},
     "incidents.jira.url"),
    ({"incidents": {"pagerduty": {"token_env": "VSM_S_PAGERDUTY", "service_ids": ["P1"],
                                  "url": f"https://api.pagerduty.com/?token={ENV['VSM_S_PAGERDUTY']}"}}},
     "incidents.pagerduty.url"),
    ({"github": {"repos": ["a/b"], "base_url": f"https://x:{ENV['VSM_S_GITHUB']}@api.github.com"}},
     "github.base_url"),
])
def test_a_secret_pasted_into_the_config_is_refused_and_never_echoed(
        table: dict[str, Any], key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], isolated_logging: Records) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "vsm.toml"
    config.write_text(to_toml(table), encoding="utf-8")
    assert main(["collect", "--config", str(config)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"config error: {key}: " in line
    assert leaks(line) == [] and leaks("\n".join(isolated_logging.lines)) == []
    assert not (tmp_path / "vsm.duckdb").exists()


def test_scrub_keeps_ordinary_text_and_removes_what_looks_secret() -> None:
    assert scrub.scrub("GitHub answered 404 for petclinic/web: Not Found") == (
        "GitHub answered 404 for petclinic/web: Not Found")
    assert scrub.scrub_url("https://u:p@jira.example:8443/rest?jql=a%3Db&api_key=k1") == (
        "https://***@jira.example:8443/rest?jql=a%3Db&api_key=***")
    assert scrub.scrub("Authorization: Token token=abcdef123456\nnext") == "Authorization: ***\nnext"
    assert scrub.scrub("sent Bearer eyJhbGciOi.payload.sig") == "sent Bearer ***"
    assert scrub.scrub("the value s3cret-value leaked", secrets=["s3cret-value"]) == "the value *** leaked"
    assert scrub.looks_like_secret(ENV["VSM_S_GITHUB"]) and scrub.looks_like_secret(ENV["VSM_S_PAGERDUTY"])
    assert scrub.looks_like_secret("0123456789abcdef0123456789abcdef")
    for name in ("GITHUB_TOKEN", "VSM_S_JENKINS", "petclinic/petclinic-web", "brenda@petclinic.example",
                 "gh-a"):
        assert not scrub.looks_like_secret(name), name
