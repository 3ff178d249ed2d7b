"""Unattended operation: `vsm run` (one pass, for cron) and `vsm daemon` (APScheduler 3.x)."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from collector import crontab
from collector.config import Config, parse_duration
from collector.pipeline import SourceResult, collect, configured_sources, run_map
from collector.present.views import NotMapped
from collector.present.weeks import last_complete_week, week_bounds
from collector.render.email.mail import MailError
from collector.store import Store
from collector.weekly_report import build_report, send_report, write_report

log = logging.getLogger(__name__)

EXIT_OK, EXIT_SOURCE_FAILED = 0, 1


@dataclass
class PassResult:
    """What one collect + map pass did."""

    sources: list[SourceResult] = field(default_factory=list)
    mapped: bool = False

    @property
    def ok(self) -> bool:
        """True when every source collected and the map ran."""
        return self.mapped and all(result.ok for result in self.sources)


def collect_and_map(config: Config, only: list[str] | None = None,
                    stop: threading.Event | None = None) -> PassResult:
    """Collect (all or some sources), map, and publish the readers' snapshot, holding the file meanwhile.

    The database is opened for this pass only, so between passes other processes can open it directly.
    The map runs even when a source failed: the others' fresh data is still worth mapping.
    """
    outcome = PassResult()
    with Store(config.db_path) as store:
        outcome.sources = collect(config, store, only=only, stop=stop)
        if stop is not None and stop.is_set():
            log.warning("shutdown requested: skipping the map; the next pass maps everything")
            return outcome
        run_map(config, store)
        outcome.mapped = True
        snapshot = store.publish_snapshot()
        log.info("published read-only snapshot %s", snapshot)
    return outcome


# After an outage, at most this many missed weekly reports are sent (the most recent ones).
MAX_CATCH_UP_REPORTS = 4


def due_weeks(config: Config, store: Store, now: dt.datetime) -> list[dt.date]:
    """Weeks whose report is due (the report schedule has fired since the week ended) and not yet sent.

    Nothing is skipped: every week after the last one sent is due in turn (the most recent few after a
    long outage); a database that never sent one starts with the last complete week.
    """
    fires = crontab.trigger(config.schedule.report, ZoneInfo(config.schedule.timezone))
    sent = {week for (week,) in store.query("SELECT week FROM report_sends")[1]}
    last = last_complete_week(now)
    first = max(sent) + dt.timedelta(days=7) if sent else last
    weeks = []
    week = first
    while week <= last:
        ended = week_bounds(week)[1]
        fire = fires.get_next_fire_time(None, ended)
        if week not in sent and fire is not None and fire <= now:
            weeks.append(week)
        week += dt.timedelta(days=7)
    if len(weeks) > MAX_CATCH_UP_REPORTS:
        log.warning("report: %d weekly reports were missed; sending the last %d", len(weeks), MAX_CATCH_UP_REPORTS)
    return weeks[-MAX_CATCH_UP_REPORTS:]


def send_due_reports(config: Config, store: Store, now: dt.datetime | None = None) -> list[dt.date]:
    """Write and mail every due weekly report, recording each send so it never goes out twice."""
    if config.report is None:
        return []
    sent = []
    for week in due_weeks(config, store, now or dt.datetime.now(dt.UTC)):
        report = build_report(store.con, week, config.report)
        path = write_report(report, config.report_folder)
        send_report(report, config.report)
        store.con.execute("INSERT INTO report_sends VALUES (?, now(), ?, ?)",
                          [week, ", ".join(config.report.to + config.report.cc), str(path)])
        log.info("report %s sent to %s (copy: %s)", report.label, ", ".join(config.report.to), path)
        sent.append(week)
    return sent


def run_once(config: Config, now: dt.datetime | None = None) -> int:
    """`vsm run`: one pass for cron, plus the weekly report when it is due and not yet sent.

    Exit 0 when every source collected (and a due report went out), 1 when something failed.
    """
    outcome = collect_and_map(config)
    for result in outcome.sources:
        if not result.ok:
            log.error("%s failed: %s", result.source, "; ".join(result.errors))
    mailed = _report_pass(config, now)
    return EXIT_OK if outcome.ok and mailed else EXIT_SOURCE_FAILED


def _report_pass(config: Config, now: dt.datetime | None = None) -> bool:
    """Send due reports; False (logged in one line) when one could not be built or mailed."""
    if config.report is None:
        return True
    try:
        with Store(config.db_path) as store:
            send_due_reports(config, store, now)
    except (MailError, NotMapped) as exc:
        log.error("report: %s", exc)
        return False
    return True


class Daemon:
    """The long-running scheduler: one collect job per source on its own cron, map after each collect."""

    def __init__(self, config: Config, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)):
        self.config = config
        self.stop = threading.Event()
        schedule = config.schedule
        self.timezone = ZoneInfo(schedule.timezone)
        self.scheduler = BlockingScheduler(
            timezone=self.timezone,
            # one worker: DuckDB has one writer, so passes never overlap (and queue behind each other)
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(parse_duration(schedule.misfire_grace))},
        )
        start = clock() if schedule.run_at_start else None
        for source in configured_sources(config):
            options = {"next_run_time": start} if start is not None else {}
            self.scheduler.add_job(self._collect_job, crontab.trigger(schedule.collect_for(source), self.timezone),
                                   args=[source], id=f"collect-{source}", name=f"collect {source}", **options)
        if config.report is not None:
            self.scheduler.add_job(self._report_job, crontab.trigger(schedule.report, self.timezone),
                                   id="report", name="weekly report")

    def _report_job(self) -> None:
        """The weekly report, when due and not yet sent (a failure is logged and retried next time)."""
        if not self.stop.is_set():
            _report_pass(self.config)

    def _collect_job(self, source: str) -> None:
        """One scheduled pass for a source; failures are logged, never raised into the scheduler."""
        if self.stop.is_set():
            return
        try:
            outcome = collect_and_map(self.config, only=[source], stop=self.stop)
        except Exception as exc:  # noqa: BLE001 - the daemon must outlive a bad pass (e.g. the disk is full)
            log.error("collect %s: %s: %s", source, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return
        state = "ok" if outcome.ok else "with errors"
        log.info("collect %s: pass finished %s", source, state)

    def jobs(self) -> list[tuple[str, dt.datetime | None]]:
        """The scheduled jobs and their next run times (for logs and tests)."""
        return [(job.id, getattr(job, "next_run_time", None)) for job in self.scheduler.get_jobs()]

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """SIGTERM/SIGINT: let the running job store its current page, then shut down cleanly."""
        if signum is not None:
            log.info("received %s: finishing the current page, then stopping", signal.Signals(signum).name)
        self.stop.set()
        # shutdown(wait=True) blocks until the running job returns; do it off the signal handler
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

    def run(self) -> int:
        """Block until stopped; returns the process exit code (0 after a clean SIGTERM)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        log.info("daemon started: %s", ", ".join(f"{job_id} next at {when}" for job_id, when in self.jobs())
                 or "no source configured")
        self.scheduler.start()
        log.info("daemon stopped")
        return EXIT_OK
