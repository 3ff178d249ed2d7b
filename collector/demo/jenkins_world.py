"""The Pet Clinic team's Jenkins: CI builds after merges and deploy jobs chained by upstream triggers.

Derived from a GitHub World and seeded by its seed, so one world always yields the same builds. Pure data
(frozen dataclasses, UTC datetimes with millisecond precision, durations in milliseconds): the simulated
Jenkins serves it and the tests use it as ground truth. The first repo builds and deploys through Jenkins
(`petclinic/build` -> `petclinic/deploy-staging` -> `petclinic/deploy-prod`, production behind an `input`
approval); the second repo only builds there (multibranch project `petclinic/vets-service`) and keeps
deploying through GitHub deployments. Builds may still be queued or running at the world's end.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from collector.demo.world import Commit, Person, RepoWorld, World, _Calendar, _lognormal

PIPELINE, FREESTYLE = "pipeline", "freestyle"
FOLDER, MULTIBRANCH = "folder", "multibranch"
SHA_PARAMETER = "GIT_COMMIT"
LIBRARY_URL = "https://github.com/petclinic/jenkins-pipeline-library.git"
QUIET_MS = 5_000
POLL_EVERY_MIN, POLL_OFFSET_MIN = 10, 7  # `H/10 * * * *` hashed to minutes 7, 17, 27, ...
CAUSES = {
    "scm": "hudson.triggers.SCMTrigger$SCMTriggerCause",
    "user": "hudson.model.Cause$UserIdCause",
    "upstream": "hudson.model.Cause$UpstreamCause",
    "timer": "hudson.triggers.TimerTrigger$TimerTriggerCause",
    "indexing": "jenkins.branch.BranchIndexingCause",
    "branch": "jenkins.branch.BranchEventCause",
}
# (stage name, median seconds) of the CI pipeline; a failure happens in Build or Test.
CI_STAGES = (("Declarative: Checkout SCM", 12), ("Build", 110), ("Test", 230), ("Publish", 35))
PROD_STAGES = (("Prepare", 20), ("Approve", 0), ("Deploy", 480), ("Smoke test", 100))


def ms(delta: timedelta) -> int:
    """A duration in whole milliseconds."""
    return round(delta.total_seconds() * 1000)


def after(t: datetime, millis: float) -> datetime:
    """t plus a number of milliseconds, kept at millisecond precision."""
    return t + timedelta(milliseconds=round(millis))


@dataclass(frozen=True)
class Stage:
    """A pipeline stage as wfapi/describe reports it; duration includes the pause of an `input` step."""

    id: str
    name: str
    started_at: datetime
    duration_ms: int
    status: str
    pause_ms: int = 0

    def as_of(self, t: datetime) -> Stage | None:
        """The stage as seen at instant t (None before it starts; running or paused while under way)."""
        if self.started_at > t:
            return None
        elapsed = ms(t - self.started_at)
        if elapsed >= self.duration_ms:
            return self
        paused = min(self.pause_ms, elapsed)
        status = "PAUSED_PENDING_INPUT" if elapsed < self.pause_ms else "IN_PROGRESS"
        return replace(self, duration_ms=elapsed, status=status, pause_ms=paused)


@dataclass(frozen=True)
class QueueTimes:
    """How long the queue item waited: quiet period, blocked by a running build, waiting for an executor."""

    waiting_ms: int
    blocked_ms: int
    buildable_ms: int

    @property
    def total_ms(self) -> int:
        """The whole time in the queue."""
        return self.waiting_ms + self.blocked_ms + self.buildable_ms


@dataclass(frozen=True)
class Revision:
    """One git checkout of a build (the BuildData action)."""

    remote_url: str
    sha: str
    branch: str


@dataclass(frozen=True)
class Build:
    """One build with its whole future: the server shows it as running until `finished_at` passes."""

    job: str
    number: int
    kind: str
    queued_at: datetime
    started_at: datetime
    duration_ms: int
    result: str
    causes: tuple[dict[str, Any], ...]
    queue: QueueTimes
    metrics: bool
    parameters: tuple[tuple[str, Any], ...] = ()
    revisions: tuple[Revision, ...] = ()
    changes: tuple[Commit, ...] = ()
    stages: tuple[Stage, ...] = ()
    sha: str | None = None
    repo: str | None = None
    queue_id: int = 0

    @property
    def finished_at(self) -> datetime:
        """Start plus duration, as Jenkins computes a build's end."""
        return after(self.started_at, self.duration_ms)

    def running_at(self, t: datetime) -> bool:
        """Whether the build had started and not finished at instant t."""
        return self.started_at <= t < self.finished_at

    def parameter(self, name: str) -> Any:
        """A build parameter's value (None when the build has no such parameter)."""
        return dict(self.parameters).get(name)


@dataclass(frozen=True)
class Job:
    """A buildable job; builds oldest first."""

    full_name: str
    kind: str
    description: str
    builds: tuple[Build, ...]
    primary: bool = False

    def visible(self, t: datetime) -> list[Build]:
        """Builds started by instant t, newest first (the order of the JSON API's allBuilds)."""
        return [b for b in reversed(self.builds) if b.started_at <= t]


@dataclass(frozen=True)
class Folder:
    """A folder or a multibranch project (whose children are branch and pull-request jobs)."""

    full_name: str
    kind: str
    description: str
    repo: str | None = None


@dataclass(frozen=True)
class JenkinsWorld:
    """The simulated Jenkins: jobs and folders by full name, plus what the demo config needs."""

    world: World
    jobs: dict[str, Job]
    folders: dict[str, Folder]
    metrics_since: datetime
    parameters_since: datetime
    ci_jobs: dict[str, str]
    deploy_jobs: dict[str, str]
    default_repo: str

    @property
    def end(self) -> datetime:
        """The world's end (the simulator's default clock)."""
        return self.world.end

    @property
    def deployed_repos(self) -> tuple[str, ...]:
        """Repos that deploy through Jenkins: their GitHub deployments are not part of this world."""
        return (self.default_repo,) if self.deploy_jobs else ()

    def item(self, full_name: str) -> Job | Folder | None:
        """The job or folder with that full name."""
        return self.jobs.get(full_name) or self.folders.get(full_name)

    def children(self, parent: str) -> list[str]:
        """Full names of the items directly inside a folder ('' for the root), in creation order."""
        prefix = f"{parent}/" if parent else ""
        names = [*self.folders, *self.jobs]
        return [n for n in names if n.startswith(prefix) and "/" not in n[len(prefix):]]

    def build(self, job: str, number: int) -> Build | None:
        """A build by job and number."""
        found = self.jobs.get(job)
        return next((b for b in found.builds if b.number == number), None) if found else None

    def all_builds(self) -> Iterator[Build]:
        """Every build of every job."""
        for job in self.jobs.values():
            yield from job.builds

    def config(self, url: str) -> dict[str, Any]:
        """The [jenkins] config table that collects this world from a server at url."""
        repos = {job: repo for repo, job in self.ci_jobs.items() if repo != self.default_repo}
        return {"url": url, "repo": self.default_repo, "jobs": list(self.ci_jobs.values()),
                "sha_parameter": SHA_PARAMETER, "deploy_jobs": dict(self.deploy_jobs), "repos": repos}


@dataclass
class _Trigger:
    """Something that asks a job to build: causes, parameters and (for deploys) the build it deploys."""

    at: datetime
    causes: list[dict[str, Any]]
    params: tuple[tuple[str, Any], ...] = ()
    upstream: Build | None = None


@dataclass
class _Item:
    """A queue item: triggers merged while it waited."""

    entered: datetime
    causes: list[dict[str, Any]]
    params: tuple[tuple[str, Any], ...]
    upstream: Build | None
    executor_wait_ms: int


def cause(kind: str, text: str, **extra: Any) -> dict[str, Any]:
    """A build cause as the CauseAction lists it."""
    return {"_class": CAUSES[kind], "shortDescription": text, **extra}


def user_cause(person: Person) -> dict[str, Any]:
    """'Started by user ...'."""
    return cause("user", f"Started by user {person.name}", userId=person.login, userName=person.name)


def upstream_cause(build: Build) -> dict[str, Any]:
    """'Started by upstream project ...' naming the triggering build."""
    url = "".join(f"job/{part}/" for part in build.job.split("/"))
    return cause("upstream", f'Started by upstream project "{build.job}" build number {build.number}',
                 upstreamBuild=build.number, upstreamProject=build.job, upstreamUrl=url)


class _JobQueue:
    """One non-concurrent job: triggers wait out the quiet period, are blocked while the previous build runs,
    then wait for an executor. A trigger with the same parameters as a waiting item joins it, which is how one
    build comes to cover several merges."""

    def __init__(self, rng: random.Random, end: datetime, quiet_ms: int = QUIET_MS) -> None:
        self.rng, self.end, self.quiet_ms = rng, end, quiet_ms

    def executor_wait(self) -> int:
        """Milliseconds until an agent is free: mostly seconds, sometimes minutes when agents are busy."""
        if self.rng.random() < 0.15:  # the shared agents are all busy with other teams' builds
            return round(self.rng.uniform(120, 2400) * 1000)
        return round(_lognormal(self.rng, 12, 1.0, 0.5, 300) * 1000)

    def run(self, triggers: list[_Trigger], start: Callable[[_Item, QueueTimes, datetime], Build],
            follow_up: Callable[[Build], list[_Trigger]] = lambda b: [],
            interrupt: Callable[[Build, datetime], Build | None] = lambda b, t: None) -> list[Build]:
        """Turn triggers (and what finished builds cause, e.g. re-runs) into builds, in time order."""
        order = itertools.count()
        heap: list[tuple[datetime, int, _Trigger | Build]] = [(t.at, next(order), t) for t in triggers
                                                              if t.at <= self.end]
        heapq.heapify(heap)
        waiting: list[_Item] = []
        builds: list[Build] = []
        busy_until: datetime | None = None
        while heap or waiting:
            if waiting:
                head = waiting[0]
                ready = after(head.entered, self.quiet_ms)
                begin = after(max(ready, busy_until or ready), head.executor_wait_ms)
                if not heap or begin <= heap[0][0]:
                    waiting.pop(0)
                    blocked = ms(busy_until - ready) if busy_until and busy_until > ready else 0
                    build = start(head, QueueTimes(self.quiet_ms, blocked, head.executor_wait_ms), begin)
                    builds.append(build)
                    busy_until = build.finished_at
                    heapq.heappush(heap, (build.finished_at, next(order), build))
                    continue
            at, _, event = heapq.heappop(heap)
            if isinstance(event, Build):  # finished as planned (not interrupted): what it causes happens now
                if event in builds:
                    for trigger in follow_up(event):
                        if trigger.at <= self.end:
                            heapq.heappush(heap, (trigger.at, next(order), trigger))
                continue
            if builds and (cut := interrupt(builds[-1], at)) is not None:
                builds[-1] = cut
                busy_until = cut.finished_at
            joined = next((w for w in waiting if w.params == event.params), None)
            if joined is None:
                wait = self.executor_wait()
                waiting.append(_Item(at, list(event.causes), event.params, event.upstream, wait))
            else:
                joined.causes += [c for c in event.causes if c not in joined.causes]
        return builds


@dataclass
class _Line:
    """A branch's history as it grew: commits in arrival order, for checkouts and change sets."""

    arrivals: list[tuple[datetime, Commit]]

    def tip(self, t: datetime) -> Commit | None:
        """The commit a checkout at instant t gets."""
        seen = [c for when, c in self.arrivals if when <= t]
        return seen[-1] if seen else None

    def between(self, start: datetime | None, end: datetime) -> tuple[Commit, ...]:
        """Commits that arrived after start and by end (a build's change set)."""
        if start is None:
            return ()
        return tuple(c for when, c in self.arrivals if start < when <= end)


class _Generator:
    """Builds every job of the Pet Clinic Jenkins from the GitHub world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.team = [p for p in world.people if p.email.endswith("@petclinic.example") and p.type == "User"]
        self.metrics_since = world.start + timedelta(days=10)
        self.parameters_since = world.start + timedelta(days=14)

    def rng(self, job: str) -> random.Random:
        """A generator of its own per job, so jobs do not shift each other's randomness."""
        return random.Random(f"{self.world.seed}:jenkins:{job}")

    @staticmethod
    def _stages(rng: random.Random, begin: datetime, plan: tuple[tuple[str, int], ...], failing: int | None,
                outcome: str, pause_at: dict[int, datetime] | None = None,
                ) -> tuple[tuple[Stage, ...], datetime]:
        """Run stages one after another; `failing` ends with `outcome`, later stages are NOT_EXECUTED."""
        stages, t = [], after(begin, rng.uniform(800, 4000))
        for index, (name, median) in enumerate(plan):
            ident = str(6 + 7 * index)
            if failing is not None and index > failing:
                stages.append(Stage(ident, name, t, rng.randint(15, 40), "NOT_EXECUTED"))
                continue
            if pause_at and index in pause_at:
                pause = max(ms(pause_at[index] - t), 50)
                duration, status = pause + rng.randint(20, 120), outcome if index == failing else "SUCCESS"
                stages.append(Stage(ident, name, t, duration, status, pause))
            else:
                duration = round(_lognormal(rng, median, 0.35, median / 4, median * 5) * 1000)
                status = "SUCCESS"
                if index == failing:
                    duration, status = round(duration * rng.uniform(0.2, 1.0)), outcome
                stages.append(Stage(ident, name, t, duration, status))
            t = after(t, stages[-1].duration_ms + rng.randint(30, 400))
        return tuple(stages), after(t, rng.uniform(300, 2000))

    # -- CI ----------------------------------------------------------------------------------------
    def ci_job(self, name: str, repo: RepoWorld, line: _Line, triggers: list[_Trigger], first_number: int,
               branch: str, library: bool, primary: bool = False) -> Job:
        """A CI pipeline building a branch; ~10% of builds fail and half of those are re-run by hand."""
        rng = self.rng(name)
        cal = _Calendar(rng)
        numbers = itertools.count(first_number)
        last_checkout: list[datetime] = []
        remote = f"https://github.com/{repo.full_name}.git"

        def start(item: _Item, queue: QueueTimes, begin: datetime) -> Build:
            tip = line.tip(begin)
            roll = rng.random()
            failing, result = (rng.choice((1, 2, 2)), "FAILURE") if roll < 0.09 else (None, "SUCCESS")
            stages, end = self._stages(rng, begin, CI_STAGES, failing, "FAILED")
            if roll > 0.98:  # flaky tests: the build goes on, marked unstable
                result, stages = "UNSTABLE", tuple(replace(s, status="UNSTABLE") if s.name == "Test" else s
                                                   for s in stages)
            revisions = [Revision(remote, tip.sha, branch)] if tip else []
            if library:
                revisions.insert(0, Revision(LIBRARY_URL, f"{rng.getrandbits(160):040x}", "main"))
            changes = line.between(last_checkout[-1] if last_checkout else None, begin)
            last_checkout.append(begin)
            return Build(name, next(numbers), PIPELINE, item.entered, begin, ms(end - begin), result,
                         tuple(item.causes), queue, begin >= self.metrics_since, revisions=tuple(revisions),
                         changes=changes, stages=stages, sha=tip.sha if tip else None, repo=repo.full_name)

        def rerun(build: Build) -> list[_Trigger]:
            if build.result != "FAILURE" or rng.random() < 0.5:
                return []
            who = rng.choice(self.team)
            at = cal.human(build.finished_at, _lognormal(rng, 0.3, 0.8, 0.03, 6))
            return [_Trigger(at, [user_cause(who)])]

        builds = _JobQueue(rng, self.world.end).run(triggers, start, rerun)
        return Job(name, PIPELINE, f"Builds and tests {repo.full_name} on {branch}", tuple(builds), primary)

    def poll_triggers(self, repo: RepoWorld) -> list[_Trigger]:
        """SCM polling every 10 minutes: merges landing between two polls share one trigger (and a weekly
        timer build)."""
        triggers: dict[datetime, _Trigger] = {}
        for commit in repo.main:
            if commit.landed_at and commit.landed_at >= self.world.start:
                poll = commit.landed_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
                poll += timedelta(minutes=(POLL_OFFSET_MIN - poll.minute) % POLL_EVERY_MIN)
                polled = [cause("scm", "Started by an SCM change")]
                triggers.setdefault(poll, _Trigger(after(poll, 2100), polled))
        cal = _Calendar(self.rng(f"{repo.full_name}:timer"))
        day = self.world.start.astimezone(cal.tz).date()
        while day <= self.world.end.date():
            if day.weekday() == 6:
                triggers[cal.at(day, 3.0)] = _Trigger(cal.at(day, 3.0), [cause("timer", "Started by timer")])
            day += timedelta(days=1)
        return sorted(triggers.values(), key=lambda t: t.at)

    def branch_triggers(self, line: _Line, branch: str) -> list[_Trigger]:
        """Multibranch events: the first build comes from branch indexing, later ones from pushes."""
        triggers: list[_Trigger] = []
        for when in sorted({w for w, _ in line.arrivals if w >= self.world.start}):
            event = cause("branch", f"Push event to branch {branch}") if triggers \
                else cause("indexing", "Branch indexing")
            triggers.append(_Trigger(after(when, 2500), [event]))
        return triggers

    # -- deploys -----------------------------------------------------------------------------------
    def _deploy_params(self, upstream: Build, at: datetime) -> tuple[tuple[str, Any], ...]:
        """GIT_COMMIT (once the job has that parameter) and a flag, as the upstream pipeline passes them."""
        if at < self.parameters_since or upstream.sha is None:
            return ()
        return ((SHA_PARAMETER, upstream.sha), ("RUN_MIGRATIONS", True))

    def downstream(self, upstream: list[Build], rng: random.Random) -> list[_Trigger]:
        """A trigger for each successful upstream build, seconds after it finished."""
        triggers = []
        for build in upstream:
            if build.result == "SUCCESS":
                at = after(build.finished_at, rng.uniform(1500, 9000))
                triggers.append(_Trigger(at, [upstream_cause(build)], self._deploy_params(build, at), build))
        return triggers

    def staging(self, name: str, ci: Job) -> Job:
        """A freestyle deploy job: no git checkout, the SHA comes as a parameter (or from the upstream)."""
        rng = self.rng(name)
        cal = _Calendar(rng)
        numbers = itertools.count(642)

        def start(item: _Item, queue: QueueTimes, begin: datetime) -> Build:
            failed = rng.random() < 0.04
            duration = round(rng.uniform(90, 300) * 1000)
            sha = dict(item.params).get(SHA_PARAMETER) or (item.upstream.sha if item.upstream else None)
            return Build(name, next(numbers), FREESTYLE, item.entered, begin, duration,
                         "FAILURE" if failed else "SUCCESS", tuple(item.causes), queue,
                         begin >= self.metrics_since, parameters=item.params, sha=sha,
                         repo=self.world.repos[0].full_name)

        def rerun(build: Build) -> list[_Trigger]:
            if build.result != "FAILURE" or not build.parameters:
                return []
            at = cal.human(build.finished_at, _lognormal(rng, 0.4, 0.7, 0.05, 6))
            return [_Trigger(at, [user_cause(rng.choice(self.team))], build.parameters)]

        triggers = self.downstream(list(ci.builds), rng)
        builds = _JobQueue(rng, self.world.end, quiet_ms=0).run(triggers, start, rerun)
        return Job(name, FREESTYLE, "Deploys a build of petclinic-web to staging", tuple(builds))

    def production(self, name: str, staging: Job) -> Job:
        """A pipeline whose `input` stage waits for a human approval; a newer candidate replaces a waiting
        one (it is aborted)."""
        rng = self.rng(name)
        cal = _Calendar(rng)
        numbers = itertools.count(391)
        approve = 1

        def start(item: _Item, queue: QueueTimes, begin: datetime) -> Build:
            prepare_end = after(begin, 25_000)
            manual = item.causes[0]["_class"] == CAUSES["user"]
            hours = _lognormal(rng, 0.05, 0.8, 0.01, 1) if manual else _lognormal(rng, 0.6, 1.1, 0.02, 30)
            decided = max(cal.human(prepare_end, hours), after(prepare_end, 60_000))
            decided = after(decided, rng.uniform(0, 999))
            roll = rng.random()
            failing, outcome, result = None, "SUCCESS", "SUCCESS"
            if roll < 0.03:
                failing, outcome, result = approve, "ABORTED", "ABORTED"
            elif roll < 0.09:
                failing, outcome, result = rng.choice((2, 2, 3)), "FAILED", "FAILURE"
            stages, end = self._stages(rng, begin, PROD_STAGES, failing, outcome, {approve: decided})
            sha = dict(item.params).get(SHA_PARAMETER) or (item.upstream.sha if item.upstream else None)
            return Build(name, next(numbers), PIPELINE, item.entered, begin, ms(end - begin), result,
                         tuple(item.causes), queue, begin >= self.metrics_since, parameters=item.params,
                         stages=stages, sha=sha, repo=self.world.repos[0].full_name)

        def supersede(build: Build, at: datetime) -> Build | None:
            gate = build.stages[approve]
            if not (gate.started_at <= at < after(gate.started_at, gate.pause_ms)):
                return None
            stages = [*build.stages[:approve],
                      replace(gate, duration_ms=ms(at - gate.started_at), pause_ms=ms(at - gate.started_at),
                              status="ABORTED")]
            stages += [replace(s, started_at=at, duration_ms=20, status="NOT_EXECUTED", pause_ms=0)
                       for s in build.stages[approve + 1:]]
            duration = ms(at - build.started_at) + 900
            return replace(build, stages=tuple(stages), result="ABORTED", duration_ms=duration)

        def rerun(build: Build) -> list[_Trigger]:
            if build.result != "FAILURE" or not build.parameters:
                return []
            at = cal.human(build.finished_at, _lognormal(rng, 0.3, 0.7, 0.05, 4))
            return [_Trigger(at, [user_cause(rng.choice(self.team))], build.parameters)]

        triggers = self.downstream(list(staging.builds), rng)
        builds = _JobQueue(rng, self.world.end, quiet_ms=0).run(triggers, start, rerun, supersede)
        return Job(name, PIPELINE, "Deploys petclinic-web to production after an approval", tuple(builds))


def _number_queue(jobs: dict[str, Job]) -> dict[str, Job]:
    """Queue ids grow with the time items entered the queue, across all jobs, like Jenkins's."""
    builds = sorted((b.queued_at, b.job, b.number) for job in jobs.values() for b in job.builds)
    ids = {(job, number): 23_500 + 3 * index for index, (_, job, number) in enumerate(builds)}
    return {name: replace(job, builds=tuple(replace(b, queue_id=ids[(b.job, b.number)]) for b in job.builds))
            for name, job in jobs.items()}


def generate_jenkins_world(world: World) -> JenkinsWorld:
    """The Jenkins history of a GitHub world (deterministic for the world's seed)."""
    gen = _Generator(world)
    web = world.repos[0]
    owner = web.full_name.split("/")[0]
    ci_name, staging_name, prod_name = f"{owner}/build", f"{owner}/deploy-staging", f"{owner}/deploy-prod"
    main = _Line([(c.landed_at, c) for c in web.main if c.landed_at])
    ci = gen.ci_job(ci_name, web, main, gen.poll_triggers(web), 1187, "refs/remotes/origin/main",
                    library=True)
    staging = gen.staging(staging_name, ci)
    jobs = {ci_name: ci, staging_name: staging, prod_name: gen.production(prod_name, staging)}
    folders = {owner: Folder(owner, FOLDER, "Pet Clinic delivery pipelines")}
    ci_jobs = {web.full_name: ci_name}
    for repo in world.repos[1:2]:
        project = f"{owner}/{repo.full_name.split('/')[1].removeprefix('petclinic-')}"
        folders[project] = Folder(project, MULTIBRANCH, f"Branches and pull requests of {repo.full_name}",
                                  repo.full_name)
        line = _Line([(c.landed_at, c) for c in repo.main if c.landed_at])
        jobs[f"{project}/main"] = gen.ci_job(f"{project}/main", repo, line, gen.branch_triggers(line, "main"),
                                             240, "main", library=False, primary=True)
        ci_jobs[repo.full_name] = f"{project}/main"
        for pr in repo.pulls:
            if pr.state == "open" and pr.merged_at is None and pr.commits:
                branch = f"PR-{pr.number}"
                line = _Line([(c.committed_at, c) for c in pr.commits])
                triggers = gen.branch_triggers(line, branch)
                job = gen.ci_job(f"{project}/{branch}", repo, line, triggers, 1, branch, library=False)
                jobs[job.full_name] = job
    return JenkinsWorld(world=world, jobs=_number_queue(jobs), folders=folders,
                        metrics_since=gen.metrics_since, parameters_since=gen.parameters_since,
                        ci_jobs=ci_jobs, deploy_jobs={staging_name: "staging", prod_name: "production"},
                        default_repo=web.full_name)
