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
        ('[github]\nrepos = ["a/b"]\ntoken_env = "NOT_SET_ANYWHERE_42"\n',
         "github.token_env: environment variable NOT_SET_ANYWHERE_42 is not set"),
        ('[github]\nrepos = ["a/b"]\ntoken_env = "ghp_abc-def"\n',
         "github.token_env: 'ghp_abc-def' must be the NAME of an environment variable"),
        ('[github]\nrepos = ["a/b"]\nbase_url = "api.github.com"\n',
         "github.base_url: 'api.github.com' is not an http(s) URL"),
        ("[database]\npath = 3\n", "database.path: expected a path string, got integer 3"),
        ("[github\n", "not valid TOML"),
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
    monkeypatch.setenv("GITHUB_TOKEN", "x")
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config = cfg.load(example)
    assert config.github is not None and config.github.repos == ("petclinic/petclinic-web",)
