"""GitHub Actions history for the Pet Clinic world: one `build.yml` run per default-branch push.

Pure data like world.py: runs with their attempts and jobs, generated from a repo's landings with a
separate random stream (so asking for Actions leaves the rest of the world unchanged). Some first attempts
fail and are re-run; runs still going at the world's end stay in progress; `as_of(t)` is what GitHub showed.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.demo.world import RepoWorld

WORKFLOW = "build.yml"
JOB_NAMES = ("build", "test")
_RUN_BASE, _JOB_BASE = 9_000_000_000, 25_000_000_000
FAILURE_RATE = 0.15
RERUN_RATE = 0.75


@dataclass(frozen=True)
class WorkflowJob:
    """One job of one attempt; started/completed are None while queued/running."""

    id: int
    name: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    conclusion: str

    def as_of(self, t: datetime) -> WorkflowJob:
        """The job as GitHub showed it at t (the attempt already existed)."""
        started = self.started_at if self.started_at and self.started_at <= t else None
        completed = self.completed_at if self.completed_at and self.completed_at <= t else None
        return replace(self, started_at=started, completed_at=completed)

    @property
    def status(self) -> str:
        """queued, in_progress or completed."""
        return "completed" if self.completed_at else "in_progress" if self.started_at else "queued"


@dataclass(frozen=True)
class Attempt:
    """One attempt of a run: triggered at `started_at` (the run's run_started_at while it is the latest)."""

    number: int
    started_at: datetime
    jobs: tuple[WorkflowJob, ...]

    @property
    def status(self) -> str:
        """completed when every job completed, in_progress once one started, else queued."""
        states = {job.status for job in self.jobs}
        return "completed" if states == {"completed"} else "in_progress" if states - {"queued"} else "queued"

    @property
    def conclusion(self) -> str | None:
        """failure if a job failed, success when all succeeded; None until completed."""
        if self.status != "completed":
            return None
        return "failure" if any(job.conclusion == "failure" for job in self.jobs) else "success"

    @property
    def updated_at(self) -> datetime:
        """The attempt's latest visible change."""
        times = [t for job in self.jobs for t in (job.created_at, job.started_at, job.completed_at) if t]
        return max([self.started_at, *times])


@dataclass(frozen=True)
class WorkflowRun:
    """A run of a workflow on a pushed commit; attempts in order (a re-run adds one)."""

    id: int
    run_number: int
    workflow: str
    head_sha: str
    head_branch: str
    event: str
    created_at: datetime
    attempts: tuple[Attempt, ...]

    @property
    def latest(self) -> Attempt:
        """The current attempt (its status and conclusion are the run's)."""
        return self.attempts[-1]

    def as_of(self, t: datetime) -> WorkflowRun | None:
        """The run as GitHub showed it at t, or None before it was created."""
        if self.created_at > t:
            return None
        attempts = tuple(replace(a, jobs=tuple(j.as_of(t) for j in a.jobs)) for a in self.attempts
                         if a.started_at <= t)
        return replace(self, attempts=attempts)


def _sec(t: datetime) -> datetime:
    return t.replace(microsecond=0)


def _ident(base: int, *parts: object) -> int:
    """A stable id that grows with the creation time (the first part)."""
    digest = int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:6], 16) % 1000
    return base + int(parts[0].timestamp()) * 1000 + digest  # type: ignore[attr-defined]


def _jobs(rng: random.Random, run_key: str, number: int, start: datetime, end: datetime,
          fail: bool) -> tuple[WorkflowJob, ...]:
    """The parallel jobs of one attempt: created at its start, picked up by a runner after a queue."""
    jobs = []
    for index, name in enumerate(JOB_NAMES):
        created = _sec(start + timedelta(seconds=2 + index))
        queue = min(900.0, math.exp(rng.gauss(math.log(45), 0.9)))
        began = _sec(created + timedelta(seconds=queue))
        duration = min(3600.0, math.exp(rng.gauss(math.log(360 if name == "build" else 240), 0.4)))
        done = _sec(began + timedelta(seconds=duration))
        failed = fail and name == "test"
        jobs.append(WorkflowJob(_ident(_JOB_BASE, created, run_key, number, name), name, created,
                                began if began <= end else None, done if done <= end else None,
                                "failure" if failed else "success"))
    return tuple(jobs)


def build_runs(rw: RepoWorld, seed: int, start: datetime, end: datetime) -> tuple[WorkflowRun, ...]:
    """One `build.yml` run per push to the default branch since `start`, cut at `end`."""
    rng = random.Random(f"{seed}:{rw.full_name}:actions")
    heads: dict[datetime, str] = {}
    for commit in rw.main:
        if commit.landed_at is not None and start <= commit.landed_at <= end:
            heads[commit.landed_at] = commit.sha  # the last commit of a push is its head
    runs = []
    for number, (pushed, sha) in enumerate(sorted(heads.items()), start=1):
        created = _sec(pushed + timedelta(seconds=rng.randint(1, 4)))
        if created > end:
            continue
        key = f"{rw.full_name}:{number}"
        fail = rng.random() < FAILURE_RATE
        first_start = _sec(created + timedelta(seconds=rng.randint(1, 20)))
        attempts = [Attempt(1, first_start, _jobs(rng, key, 1, first_start, end, fail))]
        if fail and rng.random() < RERUN_RATE:
            finished = max(job.completed_at or end for job in attempts[0].jobs)
            rerun = _sec(finished + timedelta(minutes=rng.uniform(5, 90)))
            if rerun <= end:
                attempts.append(Attempt(2, rerun, _jobs(rng, key, 2, rerun, end, False)))
        runs.append(WorkflowRun(_ident(_RUN_BASE, created, key), number, WORKFLOW, sha,
                                rw.repo.default_branch, "push", created, tuple(attempts)))
    return tuple(runs)
