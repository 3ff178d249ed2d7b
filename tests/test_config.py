"""Config validation: every mistake is one clear line naming the key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from collector import config as cfg
from collector.cli import main

VALID = """
[database]
path = "data/vsm.duckdb"

[github]
base_url = "https://ghe.example.com/api/v3"
token_env = "VSM_TEST_TOKEN"
repos = ["petclinic/petclinic-web", "petclinic/vets"]
since = 2026-01-01
production_environments = ["production", "prod-eu"]
bots = ["ci-robot"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vsm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_is_parsed_with_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSM_TEST_TOKEN", "s3cret")
    config = cfg.load(write(tmp_path, VALID))
    assert config.github is not None
    assert config.github.repos == ("petclinic/petclinic-web", "petclinic/vets")
    assert config.github.since == dt.date(2026, 1, 1)
    assert config.github.production_environments == ("production", "prod-eu")
    assert config.db_path == tmp_path.resolve() / "data" / "vsm.duckdb"
    assert cfg.secret(config.github.token_env) == "s3cret"
    assert "s3cret" not in repr(config)


def test_defaults(tmp_path: Path) -> None:
    config = cfg.load(write(tmp_path, '[github]\nrepos = ["a/b"]\n'))
    assert config.github is not None
    assert config.github.base_url == "https://api.github.com"
    assert config.github.production_environments == ("production",)
    assert config.github.token_env is None
    assert config.github.api == "graphql" and config.github.concurrency == 4 and config.github.token_names() == ()
    assert config.github.ci_workflows is None  # Actions: the push-triggered workflows count as CI
    horizon = config.github.first_sync_horizon(today=dt.date(2026, 11, 25))
    assert horizon == dt.datetime(2026, 8, 27, tzinfo=dt.UTC)  # 2026-11-25 minus 90 days
    assert config.db_path.name == "vsm.duckdb"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[github]\nrepos = ["a/b"]\nrepo = "x"\n', "github.repo: unknown key (did you mean github.repos?)"),
        ('[githb]\nrepos = ["a/b"]\n', "githb: unknown key (did you mean github?)"),
        ('[github]\nrepos = "a/b"\n', "github.repos: expected an array, got string 'a/b'"),
        ('[github]\nrepos = [1]\n', "github.repos[0]: expected a string, got integer 1"),
        ('[github]\nrepos = ["a/b"]\nsince = "last year"\n', "github.since: 'last year' is not a date like 2026-01-01"),
        ('[github]\nrepos = ["a/b"]\ntimeout = "30"\n', "github.timeout: expected a number, got string '30'"),
        ('[github]\nrepos = []\n', "github.repos: list at least one repository as 'owner/name'"),
        ('[github]\nrepos = ["petclinic"]\n', "github.repos: 'petclinic' is not of the form 'owner/name'"),
        ('[github]\nrepos = ["*/web"]\n', "github.repos: '*/web' is not of the form 'owner/name' or 'owner/pattern*'"),
        ('[github]\nrepos = ["a/b"]\napi = "soap"\n', "github.api: 'soap' is not one of graphql, rest"),
        ('[github]\nrepos = ["a/b"]\napi = "graphq"\n', "github.api: 'graphq' is not one of graphql, rest"),
        ('[github]\nrepos = ["a/b"]\nconcurrency = 0\n', "github.concurrency: must be between 1 and 16"),
        ('[github]\nrepos = ["a/b"]\nconcurrency = "4"\n', "github.concurrency: expected an integer"),
        ('[github]\nrepos = ["a/b"]\ntoken_envs = "GH_A"\n', "github.token_envs: expected an array"),
        ('[github]\nrepos = ["a/b"]\ntoken_envs = ["gh-a"]\n',
         "github.token_envs: 'gh-a' must be the NAME of an environment variable"),
        ('[github]\nrepos = ["a/b"]\ntoken_env = "GH_A"\ntoken_envs = ["GH_B"]\n',
         "github.token_envs: set token_env (one token) or token_envs (several), not both"),
        ('[github]\nrepos = ["a/b"]\ntoken_env = "X"\ntoken_env_s = ["GH_B"]\n',
         "github.token_env_s: unknown key (did you mean github.token_envs?)"),
        ('[github]\nrepos = ["a/b"]\nci_workflows = "build.yml"\n', "github.ci_workflows: expected an array"),
        ('[github]\nrepos = ["a/b"]\ntoken_env = "NOT_SET_ANYWHERE_42"\n',
         "github.token_env: environment variable NOT_SET_ANYWHERE_42 is not set"),
        ('[github]\nrepos = ["a/b"]\ntoken_env = "ghp_abc-def"\n',
         "github.token_env: 'ghp_abc-def' must be the NAME of an environment variable"),
        ('[github]\nrepos = ["a/b"]\nbase_url = "api.github.com"\n',
         "github.base_url: 'api.github.com' is not an http(s) URL"),
        ("[database]\npath = 3\n", "database.path: expected a path string, got integer 3"),
        ("[github\n", "not valid TOML"),
        ('[calendar]\ntimezone = "Mars/Olympus"\n', "calendar.timezone: unknown time zone 'Mars/Olympus'"),
        ('[calendar]\nworkdays = ["monday"]\n', "calendar.workdays: 'monday' is not one of mon, tue"),
        ('[calendar]\nhours = "17:00-09:00"\n', "calendar.hours: the day must end after it starts"),
        ('[calendar]\nholidays = ["25/12/2026"]\n', "calendar.holidays[0]: '25/12/2026' is not a date"),
        ('[[stages]]\nwait = ["pr_ready", "review_first"]\n', "stages[0].name: missing (required)"),
        ('[schedule]\ncollect = "*/30 * * *"\n', "schedule.collect: '*/30 * * *': a crontab expression has 5 fields"),
        ('[schedule]\nreport = "0 8 * * funday"\n', "schedule.report: '0 8 * * funday': 'funday' is not a day"),
        ('[schedule]\nreport = "0 25 * * 1"\n', "schedule.report: '0 25 * * 1'"),
        ('[schedule]\nstale_after = "2 hours"\n', "schedule.stale_after: '2 hours' is not a duration"),
        ('[schedule.sources]\ngitlab = "* * * * *"\n', "schedule.sources.gitlab: unknown source"),
        ('[schedule]\ntimezone = "Europe/Lndon"\n', "schedule.timezone: unknown time zone"),
        ('[[stages]]\nname = "x"\nwait = ["pr_ready"]\n', "stages[0].wait: expected [start_event, end_event]"),
        ('[[stages]]\nname = "x"\nwait = ["pr_ready", "lunch"]\n', "stages[0].wait: unknown event 'lunch'"),
        ('[[stages]]\nname = "x"\nprocess = ["deploy_started", "deploy_finished:prod"]\n',
         "deploy_started needs an environment"),
        ('[[stages]]\nname = "x"\n', "stages: stage 'x' needs a wait or a process span"),
        (('[[stages]]\nname = "x"\nwait = ["pr_ready", "pr_merged"]\n[[stages]]\nname = "x"\n'
          'wait = ["pr_ready", "pr_merged"]\n'), "stages: stage 'x' is defined twice"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(cfg.ConfigError) as error:
        cfg.load(write(tmp_path, text))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.load(tmp_path / "nope.toml")


def test_cli_exits_2_with_one_line_on_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[github]\nrepos = ["a/b"]\nrepo = "x"\n')
    assert main(["collect", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "config error: github.repo: unknown key" in err[0]


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_TOKEN", "JENKINS_USER", "JENKINS_TOKEN", "JIRA_USER", "JIRA_TOKEN", "PAGERDUTY_TOKEN",
                 "SMTP_USER", "SMTP_PASSWORD"):
        monkeypatch.setenv(name, "x")
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config = cfg.load(example)
    assert config.github is not None and config.github.repos == ("petclinic/petclinic-web",)


def test_custom_stream_and_calendar(tmp_path: Path) -> None:
    text = """
[calendar]
timezone = "Europe/London"
workdays = ["mon", "tue", "wed", "thu"]
hours = "08:30-16:00"
holidays = [2026-12-25, "2026-12-28"]

[[stages]]
name = "pickup"
wait = ["pr_ready", "review_first"]

[[stages]]
name = "approval"
process = ["review_first", "review_approved|pr_merged"]
"""
    config = cfg.load(write(tmp_path, text))
    assert config.calendar.holidays == (dt.date(2026, 12, 25), dt.date(2026, 12, 28))
    assert config.calendar.working_hours() == (dt.time(8, 30), dt.time(16, 0))
    stages = config.value_stream()
    assert [s.name for s in stages] == ["pickup", "approval"]
    assert stages[1].process is not None and stages[1].process.end == ("review_approved", "pr_merged")
    assert stages[0].process is None


def test_default_stream_is_the_public_one(tmp_path: Path) -> None:
    config = cfg.load(write(tmp_path, ""))
    assert [s.name for s in config.value_stream()] == ["code", "review", "merge", "build", "staging", "release"]


def test_read_only_commands_need_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VSM_TEST_TOKEN", raising=False)
    path = write(tmp_path, '[github]\nrepos = ["a/b"]\ntoken_env = "VSM_TEST_TOKEN"\n\n[report]\nto = ["b@x.example"]'
                           '\n[report.smtp]\npassword_env = "VSM_TEST_SMTP"\n')
    with pytest.raises(cfg.ConfigError, match="github.token_env: environment variable VSM_TEST_TOKEN is not set"):
        cfg.load(path)
    config = cfg.load(path, require_secrets=False)
    assert cfg.secret_names(config) == [("github.token_env", "VSM_TEST_TOKEN"),
                                        ("report.smtp.password_env", "VSM_TEST_SMTP")]
    # a teammate without the tokens can still query
    assert main(["query", "--config", str(path), "SELECT 1"]) == 1  # fails only because no database exists yet
