"""Every config key, three ways wrong (type, value, spelling): `vsm collect` exits 2 with one stderr line
naming the key. The keys come from the config schema, so a new key without a row here fails the suite."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collector import config as cfg
from collector.cli import main
from connectors import scrub

# Nothing listens on port 9: a config that wrongly passes validation fails fast instead of reaching a server.
DEAD = "http://127.0.0.1:9"
ENV = {"VSM_KEYS_GH": "gh-value", "VSM_KEYS_GH_B": "gh-b-value", "VSM_KEYS_JENKINS_USER": "ci",
       "VSM_KEYS_JENKINS": "jenkins-value", "VSM_KEYS_JIRA_USER": "ops@petclinic.example",
       "VSM_KEYS_JIRA": "jira-value", "VSM_KEYS_PD": "pd-value", "VSM_KEYS_SMTP_USER": "mailer",
       "VSM_KEYS_SMTP": "smtp-value", "VSM_KEYS_SERVE": "serve-value"}

# A valid config holding every key of the schema, so each case changes exactly one thing.
BASE: dict[str, Any] = {
    "database": {"path": "vsm.duckdb"},
    "github": {"repos": ["petclinic/petclinic-web"], "base_url": DEAD, "api": "graphql",
               "token_env": "VSM_KEYS_GH", "token_envs": [], "since": dt.date(2026, 1, 1),
               "production_environments": ["production"], "bots": ["ci-robot"], "ci_workflows": [],
               "timeout": 1, "retries": 0, "max_rate_limit_wait": 5, "concurrency": 2},
    "jenkins": {"url": DEAD, "user_env": "VSM_KEYS_JENKINS_USER", "token_env": "VSM_KEYS_JENKINS",
                "repo": "petclinic/petclinic-web", "jobs": ["petclinic/build"], "sha_parameter": "GIT_COMMIT",
                "deploy_jobs": {"petclinic/deploy-prod": "production"},
                "repos": {"petclinic/build": "petclinic/petclinic-web"}, "timeout": 1, "retries": 0},
    "incidents": {"link_window": "7d", "github": {"labels": ["incident"]},
                  "jira": {"url": DEAD, "user_env": "VSM_KEYS_JIRA_USER", "token_env": "VSM_KEYS_JIRA",
                           "jql": "project = OPS", "timeout": 1},
                  "pagerduty": {"token_env": "VSM_KEYS_PD", "service_ids": ["PXYZ123"], "url": DEAD,
                                "timeout": 1},
                  "service_map": {"PXYZ123": "petclinic/petclinic-web"}},
    "report": {"to": ["brenda@petclinic.example"], "cc": ["team@petclinic.example"],
               "from": "vsm@petclinic.example", "subject": "Flow report {week}", "folder": "reports",
               "smtp": {"host": "127.0.0.1", "port": 9, "security": "none", "user_env": "VSM_KEYS_SMTP_USER",
                        "password_env": "VSM_KEYS_SMTP", "timeout": 1}},
    "calendar": {"timezone": "Europe/London", "workdays": ["mon", "tue", "wed", "thu", "fri"],
                 "hours": "09:00-17:30", "holidays": [dt.date(2026, 12, 25)]},
    "stream": {"include_bots": False},
    "schedule": {"collect": "*/30 * * * *", "report": "0 8 * * mon", "timezone": "Europe/London",
                 "run_at_start": True, "stale_after": "2h", "misfire_grace": "10m",
                 "sources": {"jenkins": "*/10 * * * *"}},
    "serve": {"token_env": "VSM_KEYS_SERVE"},
    "stages": [{"name": "review", "wait": ["pr_ready", "review_first"],
                "process": ["review_first", "review_approved|pr_merged"]}],
}


class NoRange:
    """Marks a key whose every value of the right type is valid (a free name, a flag, a table of sections)."""

    def __repr__(self) -> str:
        return "NO_RANGE"


NO_RANGE = NoRange()


@dataclass(frozen=True)
class Row:
    """How to get one key wrong: a value of the wrong type, an out-of-range one, and a misspelt name."""

    wrong: Any
    invalid: Any
    typo: str


TABLE: dict[str, Row] = {
    "database": Row("vsm.duckdb", NO_RANGE, "databse"),
    "database.path": Row(3, "", "pth"),
    "github": Row("petclinic/petclinic-web", NO_RANGE, "githb"),
    "github.repos": Row("petclinic/petclinic-web", ["petclinic"], "repoz"),
    "github.base_url": Row(["https://api.github.com"], "api.github.com", "base_ur"),
    "github.api": Row(True, "soap", "apis"),
    "github.token_env": Row(1, "GH-TOKEN", "tokn_env"),
    "github.token_envs": Row("VSM_KEYS_GH_B", ["gh-b"], "token_env_s"),
    "github.since": Row(2026, "last year", "snce"),
    "github.production_environments": Row("production", [], "production_enviroments"),
    "github.bots": Row("ci-robot", NO_RANGE, "bot"),
    "github.ci_workflows": Row("build.yml", NO_RANGE, "ci_workflow"),
    "github.timeout": Row("30", 0, "timout"),
    "github.retries": Row(2.5, -1, "retry"),
    "github.max_rate_limit_wait": Row("15m", 0, "max_rate_limit_wiat"),
    "github.concurrency": Row("4", 17, "concurency"),
    "jenkins": Row(["petclinic/build"], NO_RANGE, "jenkin"),
    "jenkins.url": Row(8080, "jenkins.petclinic.example", "ulr"),
    "jenkins.user_env": Row(["VSM_KEYS_JENKINS_USER"], "jenkins user", "user_evn"),
    "jenkins.token_env": Row(7, "JENKINS-TOKEN", "tokenenv"),
    "jenkins.repo": Row(["petclinic/petclinic-web"], "petclinic-web", "rpeo"),
    "jenkins.jobs": Row("petclinic/build", [""], "jobz"),
    "jenkins.sha_parameter": Row(1, " ", "sha_paramter"),
    "jenkins.deploy_jobs": Row(["petclinic/deploy-prod"], {"petclinic/deploy-prod": ""}, "deploy_job"),
    "jenkins.repos": Row(["petclinic/petclinic-web"], {"petclinic/build": "web"}, "reposs"),
    "jenkins.timeout": Row("30s", -1, "timeuot"),
    "jenkins.retries": Row("3", -2, "retires"),
    "incidents": Row("7d", NO_RANGE, "incident"),
    "incidents.link_window": Row(7, "7 days", "link_windw"),
    "incidents.github": Row(["incident"], NO_RANGE, "githb"),
    "incidents.github.labels": Row("incident", [], "lables"),
    "incidents.jira": Row("https://petclinic.atlassian.net", NO_RANGE, "jra"),
    "incidents.jira.url": Row(1, "petclinic.atlassian.net", "urll"),
    "incidents.jira.user_env": Row(False, "jira.user", "usr_env"),
    "incidents.jira.token_env": Row(["VSM_KEYS_JIRA"], "JIRA TOKEN", "token_nev"),
    "incidents.jira.jql": Row(["project = OPS"], NO_RANGE, "jq"),
    "incidents.jira.timeout": Row("30", 0, "timeot"),
    "incidents.pagerduty": Row(True, NO_RANGE, "pagerduti"),
    "incidents.pagerduty.token_env": Row(12, "PD-TOKEN", "tokn_env"),
    "incidents.pagerduty.service_ids": Row("PXYZ123", [], "service_id"),
    "incidents.pagerduty.url": Row(["https://api.pagerduty.com"], "api.pagerduty.com", "rul"),
    "incidents.pagerduty.timeout": Row([30], -5, "timoeut"),
    "incidents.service_map": Row(["PXYZ123"], {"PXYZ123": "petclinic-web"}, "service_mapp"),
    "report": Row(["brenda@petclinic.example"], NO_RANGE, "reprot"),
    "report.to": Row("brenda@petclinic.example", ["brenda"], "too"),
    "report.cc": Row("team@petclinic.example", ["team at petclinic"], "ccc"),
    "report.from": Row(["vsm@petclinic.example"], "vsm", "form"),
    "report.subject": Row(42, "Flow report {weak}", "subjet"),
    "report.folder": Row(False, " ", "foldr"),
    "report.smtp": Row("smtp.petclinic.example", NO_RANGE, "smpt"),
    "report.smtp.host": Row(["smtp.petclinic.example"], "smtp petclinic example", "hots"),
    "report.smtp.port": Row("587", 70000, "prot"),
    "report.smtp.security": Row(True, "tls", "securty"),
    "report.smtp.user_env": Row(3, "smtp-user", "user_envv"),
    "report.smtp.password_env": Row(["VSM_KEYS_SMTP"], "SMTP PASSWORD", "pasword_env"),
    "report.smtp.timeout": Row("30", 0, "tmeout"),
    "calendar": Row("Europe/London", NO_RANGE, "calender"),
    "calendar.timezone": Row(1, "Mars/Olympus", "timezon"),
    "calendar.workdays": Row("mon-fri", ["monday"], "workday"),
    "calendar.hours": Row(9, "17:30-09:00", "huors"),
    "calendar.holidays": Row(dt.date(2026, 12, 25), ["25/12/2026"], "holidyas"),
    "stream": Row(False, NO_RANGE, "streem"),
    "stream.include_bots": Row("no", NO_RANGE, "include_bot"),
    "schedule": Row("*/30 * * * *", NO_RANGE, "schedul"),
    "schedule.collect": Row(30, "*/30 * * *", "colect"),
    "schedule.report": Row(["0 8 * * mon"], "0 25 * * mon", "reprt"),
    "schedule.timezone": Row(0, "Europe/Lndon", "timzone"),
    "schedule.run_at_start": Row("yes", NO_RANGE, "run_at_stat"),
    "schedule.stale_after": Row(7200, "2 hours", "stale_afer"),
    "schedule.misfire_grace": Row(600, "ten minutes", "misfire_grase"),
    "schedule.sources": Row("jenkins", {"gitlab": "*/10 * * * *"}, "source"),
    "serve": Row("VSM_KEYS_SERVE", NO_RANGE, "serv"),
    "serve.token_env": Row(1, "VSM SERVE TOKEN", "token_evn"),
    "stages": Row("review", NO_RANGE, "stage"),
    "stages[].name": Row(1, "Review", "nme"),
    "stages[].wait": Row("pr_ready", ["pr_ready", "lunch"], "wiat"),
    "stages[].process": Row({"start": "review_first"}, ["review_first"], "proces"),
}


def toml_value(value: Any) -> str:
    """A TOML literal: scalars, arrays and inline tables (one line per section, arrays of tables too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(document: dict[str, Any]) -> str:
    """The whole document, one top-level key per line."""
    return "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in document.items())


def path_of(key: str) -> list[str | int]:
    """A schema key as steps into the document: `stages[].name` is the first [[stages]] entry's name."""
    steps: list[str | int] = []
    for part in key.split("."):
        if part.endswith("[]"):
            steps += [part[:-2], 0]
        else:
            steps.append(part)
    return steps


def shown(key: str) -> str:
    """How messages name a key: `stages[0].name` for the first entry's name."""
    return key.replace("[]", "[0]")


def changed(key: str, case: str, row: Row) -> dict[str, Any]:
    """BASE with one key given the wrong type, an invalid value, or a misspelt name."""
    document = copy.deepcopy(BASE)
    *parents, last = path_of(key)
    table: Any = document
    for step in parents:
        table = table[step]
    if case == "typo":
        table[row.typo] = table.pop(last)
    else:
        table[last] = row.wrong if case == "wrong" else row.invalid
    return document


def cases() -> list[Any]:
    """(key, case) for every row: wrong type, typo, and an invalid value where the key has a range."""
    found = []
    for key, row in TABLE.items():
        for case in ("wrong", "invalid", "typo"):
            if case == "invalid" and row.invalid is NO_RANGE:
                continue
            found.append(pytest.param(key, case, id=f"{key}-{case}"))
    return found


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every variable the base config names is set, so each case fails on its one mistake only; the CLI's
    log handler (bound to this test's captured stderr) is removed afterwards, as are remembered secrets."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    scrub.forget_all()


def test_every_schema_key_has_a_row() -> None:
    schema = [k.key for k in cfg.config_keys()]
    assert len(schema) == len(set(schema))
    assert sorted(set(schema) - set(TABLE)) == [], "keys of the schema without a row in TABLE"
    assert sorted(set(TABLE) - set(schema)) == [], "rows for keys the schema no longer has"


def test_the_base_holds_every_key_and_is_valid(tmp_path: Path, secrets: None) -> None:
    path = tmp_path / "vsm.toml"
    path.write_text(to_toml(BASE), encoding="utf-8")
    assert tomllib.loads(path.read_text(encoding="utf-8")) == BASE  # the writer round-trips
    for key in TABLE:
        table: Any = BASE
        for step in path_of(key):
            table = table[step]  # raises when the base lacks the key, so each case changes only it
    config = cfg.load(path)
    assert config.jenkins is not None
    assert config.jenkins.deploy_jobs == {"petclinic/deploy-prod": "production"}
    assert config.report is not None and config.report.sender == "vsm@petclinic.example"
    assert [s.name for s in config.value_stream()] == ["review"]


def test_every_key_of_the_example_config_is_in_the_schema() -> None:
    example_file = Path(__file__).resolve().parent.parent / "config.example.toml"
    example = tomllib.loads(example_file.read_text("utf-8"))
    schema = {k.key: k for k in cfg.config_keys()}

    def walk(table: dict[str, Any], prefix: str) -> list[str]:
        found = []
        for name, value in table.items():
            key = f"{prefix}{name}"
            found.append(key)
            if isinstance(value, dict) and key in schema and schema[key].is_section:
                found += walk(value, f"{key}.")
        return found

    assert [k for k in walk(example, "") if k not in schema] == []


@pytest.mark.parametrize(("key", "case"), cases())
def test_a_bad_key_exits_2_with_one_line_naming_it(key: str, case: str, tmp_path: Path, secrets: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    row = TABLE[key]
    path = tmp_path / "vsm.toml"
    path.write_text(to_toml(changed(key, case, row)), encoding="utf-8")
    code = main(["collect", "--config", str(path)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, lines
    assert captured.out == ""
    parent = shown(key).rpartition(".")[0]
    named = shown(key) if case != "typo" else (f"{parent}." if parent else "") + row.typo
    assert re.search(rf"config error: {re.escape(named)}[:.\[]", lines[0]), lines[0]
    if case == "typo":
        assert f"(did you mean {shown(key)}?)" in lines[0]
    assert not (tmp_path / "vsm.duckdb").exists()  # nothing was opened, let alone collected


def test_the_example_config_shows_every_key_of_the_schema() -> None:
    """A user learns the keys from config.example.toml: each is set there, or shown as a commented line in
    its section (`# key = ...`, `# [[stages]]`)."""
    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text("utf-8")
    example = tomllib.loads(text)
    blocks: dict[str, str] = {"": ""}  # section -> its text, comments included
    section = ""
    for line in text.splitlines():
        header = re.match(r"^\[\[?([\w.]+)\]\]?\s*$", line)
        if header:
            section = header.group(1)
        blocks[section] = blocks.get(section, "") + line + "\n"

    def shown(key: str) -> bool:
        parts = key.replace("[]", "").split(".")
        value: Any = example
        for part in parts:
            value = value[0] if isinstance(value, list) and value else value
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            return True
        owner, leaf = ".".join(parts[:-1]), parts[-1]
        # a commented [[stages]] table is no section header, so its lines sit in the block before it
        where = text if key.startswith("stages") else blocks.get(owner, "")
        return re.search(rf"^#\s*(\[\[{leaf}\]\]|{leaf}\s*=)", where, re.MULTILINE) is not None

    assert [k.key for k in cfg.config_keys() if not shown(k.key)] == []
