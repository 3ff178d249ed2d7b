"""`vsm demo`: the real pipeline against a simulated Pet Clinic team served on 127.0.0.1."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector import config as config_module
from collector.pipeline import collect, run_map
from collector.present.weeks import last_complete_week
from collector.store import Store
from collector.weekly_report import build_report, write_report

log = logging.getLogger(__name__)

DEMO_PAGERDUTY_TOKEN_ENV = "VSM_DEMO_PAGERDUTY_TOKEN"

CONFIG_HEADER = """\
# Written by `vsm demo`: a config pointing at the simulated Pet Clinic world.
# The simulated servers below answer only while `vsm demo --serve` runs; the database works any time.
"""

# Sections every demo config carries besides the simulated sources.
DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "calendar": {"timezone": "Europe/London", "workdays": ["mon", "tue", "wed", "thu", "fri"],
                 "hours": "09:00-17:30", "holidays": ["2026-08-31", "2026-12-25", "2026-12-28"]},
    "report": {"to": ["brenda@petclinic.example"], "from": "vsm@petclinic.example"},
}


def _toml_value(value: Any) -> str:
    """A TOML literal for the simple values a demo config holds (JSON strings are valid TOML strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    """Render nested tables (one level of sub-tables, e.g. [jenkins.deploy_jobs]) as TOML text."""
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"\n[{name}]")
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items() if key not in subtables]
        for key, sub in subtables.items():
            lines.append(f"\n[{name}.{key}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in sub.items()]
    return "\n".join(lines) + "\n"


@dataclass
class DemoServers:
    """The running simulated sources of one demo world and the config that points at them."""

    world: Any
    sections: dict[str, dict[str, Any]]

    def write_config(self, path: Path, db: Path) -> Path:
        """Write a ready-to-use vsm.toml for these servers."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"database": {"path": db.resolve().as_posix()}, **self.sections, **DEMO_SETTINGS}
        path.write_text(CONFIG_HEADER + to_toml(body), encoding="utf-8")
        return path


def incidents_section(incidents: Any, jira_url: str, pagerduty_url: str, token_env: str) -> dict[str, Any]:
    """The [incidents] table that collects the demo's incidents from GitHub issues, Jira and PagerDuty."""
    from collector.demo import incident_world

    return {
        "link_window": f"{incidents.link_window.total_seconds() / 86400:g}d",
        "github": {"labels": [incident_world.LABEL]},
        "jira": {"url": jira_url, "jql": f"project = {incident_world.JIRA_PROJECT} AND issuetype = Incident"},
        "pagerduty": {"url": pagerduty_url, "token_env": token_env, "service_ids": list(incidents.services)},
        "service_map": incidents.service_map,
    }


@contextlib.contextmanager
def demo_servers(seed: int = 7) -> Iterator[DemoServers]:
    """Generate the Pet Clinic world and serve it: GitHub for both repos, Jenkins for builds and for the
    deployments of the repo that deploys with Jenkins (whose GitHub deployments are then left out, so no
    deployment is reported twice)."""
    from collector.demo import incident_world
    from collector.demo.github_server import GitHubSimulator
    from collector.demo.jenkins_server import JenkinsSimulator
    from collector.demo.jenkins_world import generate_jenkins_world
    from collector.demo.jira_server import JiraSimulator
    from collector.demo.pagerduty_server import PagerDutySimulator
    from collector.demo.world import generate_world

    world = generate_world(seed=seed)
    jenkins_world = generate_jenkins_world(world)
    incidents = incident_world.build_incidents(world)
    github_world = dataclasses.replace(world, repos=tuple(
        dataclasses.replace(rw, deployments=()) if rw.full_name in jenkins_world.deployed_repos else rw
        for rw in world.repos))
    # the simulated PagerDuty wants a token like the real one; the demo's is no secret
    os.environ.setdefault(DEMO_PAGERDUTY_TOKEN_ENV, "demo-pagerduty-token")
    with (GitHubSimulator(github_world, incidents=incidents) as github, JenkinsSimulator(jenkins_world) as jenkins,
          JiraSimulator(incidents) as jira,
          PagerDutySimulator(incidents, token=os.environ[DEMO_PAGERDUTY_TOKEN_ENV]) as pagerduty):
        log.info("simulated GitHub at %s, Jenkins at %s, Jira at %s, PagerDuty at %s", github.base_url,
                 jenkins.base_url, jira.base_url, pagerduty.base_url)
        sections = {
            "github": {"base_url": github.base_url, "repos": [rw.full_name for rw in world.repos],
                       "since": world.start.date().isoformat(), "production_environments": ["production"]},
            "jenkins": jenkins_world.config(jenkins.base_url),
            "incidents": incidents_section(incidents, jira.base_url, pagerduty.base_url, DEMO_PAGERDUTY_TOKEN_ENV),
        }
        yield DemoServers(world, sections)


def _fresh(db: Path) -> None:
    """Remove an earlier demo database: each demo run simulates a new history ending now."""
    for file in (db, db.with_name(db.name + ".wal")):
        file.unlink(missing_ok=True)


def run(db: Path, seed: int = 7, on_result: Callable[[str], None] = log.info) -> Path:
    """Generate the world, serve it, collect it over HTTP, map it, write the last week's report."""
    _fresh(db)
    with demo_servers(seed) as servers:
        return _collect_and_map(servers, db, on_result)


def _collect_and_map(servers: DemoServers, db: Path, on_result: Callable[[str], None]) -> Path:
    """Collect the served world into db over HTTP, map it and write the last simulated week's report."""
    config_path = servers.write_config(db.parent / "vsm.toml", db)
    config = config_module.load(config_path)
    with Store(config.db_path) as store:
        results = collect(config, store)
        for result in results:
            state = "ok" if result.ok else "FAILED: " + "; ".join(result.errors)
            on_result(f"collected {result.source}: {result.items} rows with {result.requests} HTTP requests "
                      f"in {result.seconds:.1f}s - {state}")
        pulls, merged = store.query("SELECT count(*), count(merged_at) FROM pull_requests")[1][0]
        # every GitHub request: the repos over GraphQL (plus Actions over REST) and the incident issues
        github = sum(r.requests for r in results if r.source.startswith("github"))
        if merged:
            on_result(f"{pulls} pull requests ({merged} merged): {github} GitHub requests, "
                      f"{github / merged:.3f} per merged PR ({config.github.api if config.github else '-'})")
        mapped = run_map(config, store)
        on_result(f"mapped {mapped.changes} merged changes, {mapped.deployed} deployed to production")
        report = build_report(store.con, last_complete_week(servers.world.end), config.report)
        path = write_report(report, config.report_folder)
        on_result(f"weekly flow report for {report.label} (the last complete simulated week): {path}")
    return config_path


def serve(folder: Path, seed: int = 7, host: str = "127.0.0.1", port: int = 8765,
          on_result: Callable[[str], None] = log.info) -> int:
    """Collect and map the world into folder/vsm.duckdb, then serve the web app over it and keep the
    simulated servers up (for `vsm collect` against folder/vsm.toml) until Ctrl-C or SIGTERM."""
    from waitress import create_server

    from collector.serve import create_app

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    db = folder / "vsm.duckdb"
    _fresh(db)
    with demo_servers(seed) as servers:
        config_path = _collect_and_map(servers, db, on_result)
        try:
            web = create_server(create_app(db), host=host, port=port, threads=4)
        except OSError as exc:
            log.error("cannot start the web app on %s:%d: %s", host, port, exc.strerror or exc)
            return 2
        thread = threading.Thread(target=web.run, name="vsm-serve", daemon=True)
        thread.start()
        on_result(f"the value stream in a browser: http://{host}:{web.effective_port}/map   (Ctrl-C stops)")
        log.info("simulated servers stay up for: export %s=%s && vsm collect --config %s",
                 DEMO_PAGERDUTY_TOKEN_ENV, os.environ[DEMO_PAGERDUTY_TOKEN_ENV], config_path)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        web.close()
        thread.join(timeout=5)
    log.info("simulated servers stopped")
    return 0
