"""The weekly report goes out when due, exactly once, through `vsm run` (cron) to a real SMTP server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from collector import config as cfg
from collector.cli import main
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World
from collector.scheduler import due_weeks, run_once
from collector.store import Store
from tests.conftest import write_config
from tests.test_mail import free_port


class Inbox:
    """Collects every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


# A schedule that fires the instant a week ends (Monday 00:00 UTC), so the last complete week's report is
# due whenever a test that reads the wall clock runs; Monday 08:00 London would not be before 08:00 Mondays.
AT_WEEK_END = 'report = "0 0 * * 1"\ntimezone = "UTC"'


def report_config(tmp_path: Path, sim: GitHubSimulator, world: World, port: int,
                  schedule: str = 'report = "0 8 * * 1"\ntimezone = "Europe/London"') -> Path:
    extra = (f'\n[report]\nto = ["brenda@petclinic.example"]\ncc = ["team@petclinic.example"]\n'
             f'from = "vsm@petclinic.example"\n\n[report.smtp]\nhost = "127.0.0.1"\nport = {port}\n'
             f'security = "none"\n\n[schedule]\n{schedule}\n')
    return write_config(tmp_path, sim.base_url, [world.repos[1].full_name], extra=extra)


def test_due_only_after_the_monday_fire_time(tmp_path: Path, sim: GitHubSimulator, world: World,
                                             smtp: tuple[Inbox, int]) -> None:
    config = cfg.load(report_config(tmp_path, sim, world, smtp[1]))
    with Store(config.db_path) as store:
        # Monday 2026-11-23 07:59 London (= UTC in winter): week 2026-W47 ended, but the 08:00 report has not fired
        assert due_weeks(config, store, dt.datetime(2026, 11, 23, 7, 59, tzinfo=dt.UTC)) == []
        assert due_weeks(config, store, dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)) == [dt.date(2026, 11, 16)]
        # already sent: nothing; the following week becomes due a week later, none skipped in between
        store.con.execute("INSERT INTO report_sends VALUES (DATE '2026-11-16', now(), 'x', NULL)")
        assert due_weeks(config, store, dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)) == []
        assert due_weeks(config, store, dt.datetime(2026, 12, 14, 9, tzinfo=dt.UTC)) == [
            dt.date(2026, 11, 23), dt.date(2026, 11, 30), dt.date(2026, 12, 7)]


def test_run_sends_the_weekly_report_once(tmp_path: Path, sim: GitHubSimulator, world: World,
                                          smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    path = report_config(tmp_path, sim, world, port)
    config = cfg.load(path)
    monday_nine = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    assert run_once(config, now=monday_nine) == 0
    assert run_once(config, now=monday_nine + dt.timedelta(hours=1)) == 0  # the next cron run sends nothing
    assert len(inbox.messages) == 1
    recipients, content = inbox.messages[0]
    assert sorted(recipients) == ["brenda@petclinic.example", "team@petclinic.example"]
    assert b"Flow report 2026-W47" in content
    assert (tmp_path / "reports" / "2026-W47.html").exists()
    with Store(config.db_path, read_only=True) as store:
        assert store.query("SELECT week FROM report_sends")[1] == [(dt.date(2026, 11, 16),)]


def test_run_exits_1_when_the_mail_server_is_down_and_keeps_the_file(tmp_path: Path, sim: GitHubSimulator,
                                                                     world: World,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    from collector import scheduler

    # the retries themselves are tested with the mailer; here they only need to end quickly
    monkeypatch.setattr(scheduler, "send_report", functools.partial(scheduler.send_report, backoff_s=0.01))
    path = report_config(tmp_path, sim, world, free_port(), AT_WEEK_END)  # nobody listens there
    text = path.read_text(encoding="utf-8").replace('security = "none"\n', 'security = "none"\ntimeout = 2\n')
    path.write_text(text, encoding="utf-8")
    assert main(["run", "--config", str(path)]) == 1
    assert list((tmp_path / "reports").glob("*.html"))  # the report was written before mailing failed
    with Store(tmp_path / "vsm.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM report_sends")[1] == [(0,)]  # so it is retried next run


def test_the_daemons_report_job_sends_when_due_and_only_once(tmp_path: Path, sim: GitHubSimulator, world: World,
                                                             smtp: tuple[Inbox, int]) -> None:
    from collector.scheduler import Daemon, collect_and_map

    inbox, port = smtp
    config = cfg.load(report_config(tmp_path, sim, world, port, AT_WEEK_END))
    collect_and_map(config)
    daemon = Daemon(config)
    daemon._report_job()  # what the scheduler runs on `[schedule] report`
    daemon._report_job()  # a second firing in the same week sends nothing more
    assert len(inbox.messages) == 1
    with Store(config.db_path, read_only=True) as store:
        (week,) = store.query("SELECT week FROM report_sends")[1][0]
    assert week.weekday() == 0 and week < dt.date.today()
