"""Loads and validates the TOML config; every mistake becomes one ConfigError line naming the key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector import crontab
from collector.config_schema import (
    FIELD_KEYS,
    NOT_A_KEY,
    ConfigError,
    SchemaKey,
    check_env_name,
    check_url,
    convert,
    file_fields,
    reject_unknown,
    resolve,
    schema_keys,
)
from connectors.base import read_secret
from models import stream as stream_model

# Config sections that are data sources, in collection order.
SOURCE_SECTIONS = ("github", "jenkins", "github_issues", "jira", "pagerduty")

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# owner/glob: every unarchived repo of the owner whose name matches (`petclinic/*`, `petclinic/svc-?`)
_REPO_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.*?\[\]!-]+$")
# Stage names: the same rule as models.stream.validate_stages, checked here to name the entry's key.
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# The only placeholder a report subject may hold.
_SUBJECT_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the DuckDB file lives (relative paths are relative to the config file)."""

    path: Path = Path("vsm.duckdb")


# GitHub transports: GraphQL (the default, a fraction of the requests) or REST (the fallback, same tables).
GITHUB_APIS = ("graphql", "rest")


@dataclass(frozen=True)
class GitHubConfig:
    """The GitHub (or GitHub Enterprise) source."""

    repos: tuple[str, ...] = ()
    base_url: str = "https://api.github.com"
    api: str = "graphql"
    token_env: str | None = None
    token_envs: tuple[str, ...] = ()
    since: dt.date | None = None
    production_environments: tuple[str, ...] = ("production",)
    bots: tuple[str, ...] = ()
    ci_workflows: tuple[str, ...] | None = None
    timeout: float = 30.0
    retries: int = 5
    max_rate_limit_wait: float = 900.0
    concurrency: int = 4

    def token_names(self) -> tuple[str, ...]:
        """The variables holding the tokens that share the load (token_envs, or the one token_env)."""
        return self.token_envs or ((self.token_env,) if self.token_env else ())

    def first_sync_horizon(self, today: dt.date | None = None) -> dt.datetime:
        """The oldest activity a first sync fetches: `since`, or 90 days ago."""
        start = self.since or ((today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=90))
        return dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)


@dataclass(frozen=True)
class JenkinsConfig:
    """One Jenkins server: CI jobs (the build stage) and deploy jobs (deployments per environment)."""

    url: str = ""
    user_env: str | None = None
    token_env: str | None = None
    repo: str | None = None
    jobs: tuple[str, ...] = ()
    sha_parameter: str = "GIT_COMMIT"
    deploy_jobs: dict[str, str] = field(default_factory=dict)
    repos: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    retries: int = 3


@dataclass(frozen=True)
class GitHubIncidentsConfig:
    """Incident tickets kept as GitHub issues in the [github] repos, recognised by label."""

    labels: tuple[str, ...] = ("incident",)


@dataclass(frozen=True)
class JiraConfig:
    """Incident tickets in Jira (Cloud or Server/Data Center)."""

    url: str = ""
    user_env: str | None = None
    token_env: str | None = None
    jql: str = "issuetype = Incident"
    timeout: float = 30.0


@dataclass(frozen=True)
class PagerDutyConfig:
    """Incidents from PagerDuty's REST API."""

    token_env: str | None = None
    service_ids: tuple[str, ...] = ()
    url: str = "https://api.pagerduty.com"
    timeout: float = 30.0


@dataclass(frozen=True)
class IncidentsConfig:
    """Where incidents come from and how they are linked to the deployments that caused them."""

    link_window: str = "7d"
    github: GitHubIncidentsConfig | None = None
    jira: JiraConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    service_map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmtpConfig:
    """The mail server the weekly report is sent through."""

    host: str = "localhost"
    port: int = 587
    security: str = "starttls"
    user_env: str | None = None
    password_env: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class ReportConfig:
    """The weekly flow report: who gets it and how it is sent."""

    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    sender: str = "vsm@localhost"
    subject: str = "Flow report {week}: where the delivery time went"
    folder: Path = Path("reports")
    smtp: SmtpConfig = field(default_factory=SmtpConfig)


@dataclass(frozen=True)
class ScheduleConfig:
    """When the daemon (or cron with `vsm run`) collects, maps and reports; crontab syntax and meaning."""

    collect: str = "*/30 * * * *"
    report: str = "0 8 * * mon"
    timezone: str = "UTC"
    run_at_start: bool = True
    stale_after: str = "2h"
    misfire_grace: str = "10m"
    sources: dict[str, str] = field(default_factory=dict)

    def collect_for(self, source: str) -> str:
        """The collect schedule of one source (its override, else the common one)."""
        return self.sources.get(source, self.collect)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class CalendarConfig:
    """The team's working time, so waits can also be told in working hours."""

    timezone: str = "UTC"
    workdays: tuple[str, ...] = WEEKDAYS[:5]
    hours: str = "09:00-17:30"
    holidays: tuple[dt.date, ...] = ()

    def working_hours(self) -> tuple[dt.time, dt.time]:
        """The start and end of the working day."""
        start, end = self.hours.split("-")
        return dt.time.fromisoformat(start), dt.time.fromisoformat(end)


@dataclass(frozen=True)
class StreamConfig:
    """Which changes the headline figures include."""

    include_bots: bool = False


@dataclass(frozen=True)
class StageConfig:
    """One configured stage: [start, end] event names; `a|b` means a, or b when the change has no a."""

    name: str
    wait: tuple[str, ...] | None = None
    process: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ServeConfig:
    """`vsm serve`: the variable holding a shared-link token that every request must then carry."""

    token_env: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    github: GitHubConfig | None = None
    jenkins: JenkinsConfig | None = None
    incidents: IncidentsConfig | None = None
    report: ReportConfig | None = None
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    stages: tuple[StageConfig, ...] = ()
    source_file: Path | None = field(default=None, metadata=NOT_A_KEY)

    def value_stream(self) -> tuple[stream_model.Stage, ...]:
        """The configured stages as the mapper's model, or the built-in stream."""
        if not self.stages:
            return stream_model.DEFAULT_STAGES
        return tuple(_stage(i, s) for i, s in enumerate(self.stages))

    @property
    def report_folder(self) -> Path:
        """Where reports are written, resolved against the config file's folder."""
        return self._resolve_path(self.report.folder if self.report else Path("reports"))

    def _resolve_path(self, path: Path) -> Path:
        """A configured path, relative ones taken from the config file's folder."""
        if not path.is_absolute() and self.source_file is not None:
            return self.source_file.parent / path
        return path

    @property
    def db_path(self) -> Path:
        """The database path, resolved against the config file's folder."""
        return self._resolve_path(self.database.path)


def secret(env_name: str | None) -> str | None:
    """Read a secret from the environment variable the config names (None when no name is configured)."""
    try:
        return read_secret(env_name, "the config")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load(path: str | Path, require_secrets: bool = True) -> Config:
    """Read, parse and validate a config file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return from_dict(data, source_file=file.resolve(), require_secrets=require_secrets)


def from_dict(data: dict[str, Any], source_file: Path | None = None, require_secrets: bool = True) -> Config:
    """Validate an already parsed TOML document."""
    reject_unknown(data, {f.name for f in file_fields(Config)}, "")
    values: dict[str, Any] = {"source_file": source_file}
    for f in file_fields(Config):
        if f.name in data:
            values[f.name] = convert(data[f.name], resolve(Config, f.name), f.name)
    config = Config(**values)
    _check(config)
    if require_secrets:
        for key, name in secret_names(config):
            # the web app's token is needed by `vsm serve` alone, which checks it itself
            if not os.environ.get(name) and not key.startswith("serve."):
                raise ConfigError(f"{key}: environment variable {name} is not set")
    return config


def config_keys() -> list[SchemaKey]:
    """Every key a config file may hold (sections included), e.g. for tests that must cover them all."""
    return schema_keys(Config)


def secret_names(config: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every configured `*_env` key with the environment variable it names (walks the dataclasses).

    Commands that talk to the sources need them all set; read-only commands (map, query, status,
    explain, report without --send) do not, so a teammate can query without holding the tokens.
    """
    found: list[tuple[str, str]] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        key = f"{prefix}{FIELD_KEYS.get(f.name, f.name)}"
        if f.name.endswith("_env") and isinstance(value, str):
            found.append((key, value))
        elif f.name.endswith("_envs") and isinstance(value, tuple):
            found += [(key, name) for name in value]
        elif dataclasses.is_dataclass(value):
            found += secret_names(value, f"{key}.")
    return found


def _stage(index: int, stage: StageConfig) -> stream_model.Stage:
    """Turn one [[stages]] entry into the model, naming the entry on error."""
    spans: dict[str, stream_model.Span | None] = {}
    for kind in ("wait", "process"):
        events = getattr(stage, kind)
        if events is None:
            spans[kind] = None
            continue
        if len(events) != 2:
            raise ConfigError(f"stages[{index}].{kind}: expected [start_event, end_event], got {list(events)}")
        try:
            spans[kind] = stream_model.span(events[0].split("|"), events[1].split("|"))
        except stream_model.StreamError as exc:
            raise ConfigError(f"stages[{index}].{kind}: {exc}") from None
    return stream_model.Stage(stage.name, wait=spans["wait"], process=spans["process"])


def _check_calendar(calendar: CalendarConfig) -> None:
    """The calendar's time zone, days and hours must be usable."""
    try:
        zoneinfo.ZoneInfo(calendar.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"calendar.timezone: unknown time zone {calendar.timezone!r} (e.g. Europe/London)") from None
    for day in calendar.workdays:
        if day not in WEEKDAYS:
            raise ConfigError(f"calendar.workdays: {day!r} is not one of {', '.join(WEEKDAYS)}")
    try:
        start, end = calendar.working_hours()
    except ValueError:
        raise ConfigError(f"calendar.hours: {calendar.hours!r} is not like 09:00-17:30") from None
    if start >= end:
        raise ConfigError(f"calendar.hours: the day must end after it starts, got {calendar.hours!r}")


def _check_jenkins(jenkins: JenkinsConfig) -> None:
    """The Jenkins section must name a server, some jobs and valid repos."""
    check_url("jenkins.url", jenkins.url)
    if not jenkins.jobs and not jenkins.deploy_jobs:
        raise ConfigError("jenkins.jobs: list at least one CI job (or configure jenkins.deploy_jobs)")
    named = [("jenkins.jobs", job) for job in jenkins.jobs]
    for key, job in named + [("jenkins.deploy_jobs", job) for job in jenkins.deploy_jobs]:
        if not job.strip("/ "):
            raise ConfigError(f"{key}: {job!r} is not a job name (folders as 'folder/job')")
    if not jenkins.sha_parameter.strip():
        raise ConfigError("jenkins.sha_parameter: name the build parameter holding the commit")
    check_env_name("jenkins.user_env", jenkins.user_env)
    check_env_name("jenkins.token_env", jenkins.token_env)
    if (jenkins.user_env is None) != (jenkins.token_env is None):
        raise ConfigError("jenkins.token_env: set both user_env and token_env, or neither (anonymous)")
    for key, repo in [("jenkins.repo", jenkins.repo)] + [(f"jenkins.repos.{j}", r) for j, r in jenkins.repos.items()]:
        if repo is not None and not _REPO.match(repo):
            raise ConfigError(f"{key}: {repo!r} is not of the form 'owner/name'")
    for job, env in jenkins.deploy_jobs.items():
        if not env:
            raise ConfigError(f"jenkins.deploy_jobs.{job}: name the environment this job deploys to")
    _check_positive("jenkins.timeout", jenkins.timeout)
    if jenkins.retries < 0:
        raise ConfigError("jenkins.retries: must be 0 or more")


def _check_positive(key: str, value: float) -> None:
    """Timeouts and waits must be greater than zero."""
    if value <= 0:
        raise ConfigError(f"{key}: must be greater than 0")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, key: str = "duration") -> float:
    """Seconds in a duration like 90s, 30m, 2h, 7d or 1w."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"{key}: {text!r} is not a duration like 90s, 30m, 2h, 7d or 1w")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _check_schedule(schedule: ScheduleConfig) -> None:
    """Every schedule must be a crontab expression crontab would accept."""
    try:
        zoneinfo.ZoneInfo(schedule.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"schedule.timezone: unknown time zone {schedule.timezone!r}") from None
    entries = [("schedule.collect", schedule.collect), ("schedule.report", schedule.report)]
    entries += [(f"schedule.sources.{name}", expr) for name, expr in schedule.sources.items()]
    for key, expr in entries:
        try:
            crontab.trigger(expr, schedule.timezone)
        except crontab.CrontabError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    for name in schedule.sources:
        if name not in SOURCE_SECTIONS:
            raise ConfigError(f"schedule.sources.{name}: unknown source (known: {', '.join(SOURCE_SECTIONS)})")
    parse_duration(schedule.stale_after, "schedule.stale_after")
    parse_duration(schedule.misfire_grace, "schedule.misfire_grace")


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _check_report(report: ReportConfig) -> None:
    """Recipients must be addresses, the SMTP security mode one vsm knows."""
    if not report.to:
        raise ConfigError("report.to: list at least one recipient address")
    for key, addresses in (("report.to", report.to), ("report.cc", report.cc), ("report.from", (report.sender,))):
        for address in addresses:
            if not _EMAIL.match(address):
                raise ConfigError(f"{key}: {address!r} is not an email address")
    unknown = [p for p in _SUBJECT_PLACEHOLDER.findall(report.subject) if p != "{week}"]
    if unknown:
        raise ConfigError(f"report.subject: unknown placeholder {unknown[0]} (only {{week}} is filled in)")
    smtp = report.smtp
    if not smtp.host.strip() or re.search(r"[\s/@]", smtp.host):
        raise ConfigError(f"report.smtp.host: {smtp.host!r} is not a host name or address")
    if smtp.security not in ("starttls", "ssl", "none"):
        raise ConfigError(f"report.smtp.security: {smtp.security!r} must be starttls, ssl or none")
    check_env_name("report.smtp.user_env", smtp.user_env)
    check_env_name("report.smtp.password_env", smtp.password_env)
    if not 0 < smtp.port < 65536:
        raise ConfigError(f"report.smtp.port: {smtp.port} is not a TCP port")
    _check_positive("report.smtp.timeout", smtp.timeout)


def _check_incidents(incidents: IncidentsConfig, has_github: bool) -> None:
    """Each incident source needs what it connects with."""
    parse_duration(incidents.link_window, "incidents.link_window")
    if incidents.github is not None:
        if not has_github:
            raise ConfigError("incidents.github: needs a [github] section (the repos whose issues are read)")
        if not incidents.github.labels:
            raise ConfigError("incidents.github.labels: list at least one label that marks an incident")
    if incidents.jira is not None:
        check_url("incidents.jira.url", incidents.jira.url)
        check_env_name("incidents.jira.user_env", incidents.jira.user_env)
        check_env_name("incidents.jira.token_env", incidents.jira.token_env)
        _check_positive("incidents.jira.timeout", incidents.jira.timeout)
    if incidents.pagerduty is not None:
        if incidents.pagerduty.token_env is None:
            raise ConfigError("incidents.pagerduty.token_env: PagerDuty needs an API token")
        check_env_name("incidents.pagerduty.token_env", incidents.pagerduty.token_env)
        if not incidents.pagerduty.service_ids:
            raise ConfigError("incidents.pagerduty.service_ids: list the services whose incidents count")
        check_url("incidents.pagerduty.url", incidents.pagerduty.url)
        _check_positive("incidents.pagerduty.timeout", incidents.pagerduty.timeout)
    for key, repo in incidents.service_map.items():
        if not _REPO.match(repo):
            raise ConfigError(f"incidents.service_map.{key}: {repo!r} is not of the form 'owner/name'")


def _check(config: Config) -> None:
    """Cross-field rules the types alone cannot express."""
    _check_calendar(config.calendar)
    if config.report is not None:
        _check_report(config.report)
    if config.incidents is not None:
        _check_incidents(config.incidents, config.github is not None)
    _check_schedule(config.schedule)
    check_env_name("serve.token_env", config.serve.token_env)
    if config.jenkins is not None:
        _check_jenkins(config.jenkins)
    for index, stage in enumerate(config.stages):
        if not _STAGE_NAME.match(stage.name):
            raise ConfigError(f"stages[{index}].name: {stage.name!r} must be lower_snake_case (like pickup)")
    try:
        stream_model.validate_stages(config.value_stream())
    except stream_model.StreamError as exc:
        raise ConfigError(f"stages: {exc}") from None
    gh = config.github
    if gh is None:
        return
    if not gh.repos:
        raise ConfigError("github.repos: list at least one repository as 'owner/name'")
    for repo in gh.repos:
        if not (_REPO.match(repo) or _REPO_PATTERN.match(repo)):
            raise ConfigError(f"github.repos: {repo!r} is not of the form 'owner/name' or 'owner/pattern*'")
    check_url("github.base_url", gh.base_url)
    check_env_name("github.token_env", gh.token_env)
    for name in gh.token_envs:
        check_env_name("github.token_envs", name)
    if gh.token_env and gh.token_envs:
        raise ConfigError("github.token_envs: set token_env (one token) or token_envs (several), not both")
    if gh.api not in GITHUB_APIS:
        raise ConfigError(f"github.api: {gh.api!r} is not one of {', '.join(GITHUB_APIS)}")
    if not gh.production_environments:
        raise ConfigError("github.production_environments: name at least one environment")
    _check_positive("github.timeout", gh.timeout)
    _check_positive("github.max_rate_limit_wait", gh.max_rate_limit_wait)
    if gh.retries < 0:
        raise ConfigError("github.retries: must be 0 or more")
    if not 1 <= gh.concurrency <= 16:
        raise ConfigError("github.concurrency: must be between 1 and 16 (repos fetched at once)")
