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
from collector.store import Store

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


def run_once(config: Config) -> int:
    """`vsm run`: one pass for cron; exit 0 when every source collected, 1 when some failed."""
    outcome = collect_and_map(config)
    for result in outcome.sources:
        if not result.ok:
            log.error("%s failed: %s", result.source, "; ".join(result.errors))
    return EXIT_OK if outcome.ok else EXIT_SOURCE_FAILED


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

    def _collect_job(self, source: str) -> None:
        """One scheduled pass for a source; failures are logged, never raised into the scheduler."""
        if self.stop.is_set():
            return
        try:
            outcome = collect_and_map(self.config, only=[source], stop=self.stop)
        except Exception as exc:  # the daemon must outlive a bad pass (e.g. the disk is full)
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
