"""The Pet Clinic world: a seeded, deterministic history of a small team's repos, PRs and deployments.

Pure data (frozen dataclasses, UTC timestamps). The simulated GitHub serves it; the demo and the tests use
it as the ground truth. Each repo is generated in one chronological pass and cut at `end`; `as_of(t)` gives
exactly what GitHub would have shown at an earlier instant t.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import logging
import math
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.demo.actions_world import build_runs
from collector.demo.world_model import (
    Commit,
    Deployment,
    DeploymentStatus,
    Person,
    PullRequest,
    Repo,
    RepoWorld,
    Review,
    TimelineEvent,
    World,
)

DEFAULT_REPOS = ("petclinic/petclinic-web", "petclinic/petclinic-vets-service")
DATA = Path(__file__).with_name("data")
# the records are defined in world_model; importing them from here keeps working
__all__ = ["DATA", "DEFAULT_REPOS", "UTC", "Commit", "Deployment", "DeploymentStatus", "Person", "PullRequest",
           "Repo", "RepoWorld", "Review", "TimelineEvent", "World", "generate_world", "stable_int"]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Flavour:
    """Names and commit subjects taken from the real spring-petclinic history (data/petclinic)."""

    names: tuple[str, ...]
    subjects: tuple[str, ...]


_SKIPPED_SUBJECTS = ("merge", "revert", "bump", "release", "prepare")


def load_flavour(team_size: int = 6) -> Flavour:
    """Read the bundled petclinic commit list: the most active human authors and usable subjects."""
    text = (DATA / "petclinic" / "petclinic_commits.csv").read_text("utf-8")
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    subjects: list[str] = []
    for row in csv.DictReader(io.StringIO(text)):
        name = row["author_name"].strip()
        if " " in name and "bot" not in name.lower():
            key = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
            counts[key] += 1
            spellings.setdefault(key, Counter())[name] += 1
        subject = row["subject"].strip()
        if 12 <= len(subject) <= 72 and not subject.lower().startswith(_SKIPPED_SUBJECTS):
            subjects.append(subject[0].upper() + subject[1:])
    top = counts.most_common(team_size)
    names = tuple(max(spellings[key], key=lambda s: (len(s.encode()), s)) for key, _ in top)
    return Flavour(names=names, subjects=tuple(dict.fromkeys(subjects)))


# ------------------------------------------------------------------------------------------------------
# Generation: who the team is, when it works, and how one repository's history unfolds.

_BOTS = (
    *(Person(login, login, f"{ident}+{login}@users.noreply.github.com", ident, "Bot") for login, ident in
      (("dependabot[bot]", 49699333), ("sonarcloud[bot]", 39514782), ("github-actions[bot]", 41898282))),
    Person("web-flow", "GitHub", "noreply@github.com", 19864447),
)


@dataclass(frozen=True)
class _Profile:
    """How a repository's team works: PR rate, merge-method habits, PR numbering and touched files."""

    description: str
    rate: float
    methods: dict[str, float]
    first_number: int
    paths: tuple[str, ...]


_JAVA = "src/main/java/org/springframework/samples/petclinic/"
_PROFILES = (
    _Profile("Pet Clinic web front end (Spring Boot, Thymeleaf)", 0.36,
             {"merge": 0.6, "squash": 0.3, "rebase": 0.1}, 412,
             (_JAVA + "owner/OwnerController.java", _JAVA + "owner/PetController.java",
              _JAVA + "owner/VisitController.java", "src/main/resources/templates/owners/ownerDetails.html",
              "src/main/resources/messages/messages.properties", "pom.xml", "build.gradle",
              "src/test/java/org/springframework/samples/petclinic/owner/OwnerControllerTests.java")),
    _Profile("Vets microservice of the Pet Clinic", 0.2, {"squash": 0.6, "rebase": 0.25, "merge": 0.15}, 87,
             (_JAVA + "vet/VetController.java", _JAVA + "vet/Vet.java", _JAVA + "vet/VetRepository.java",
              "src/main/resources/application.properties", "src/main/resources/db/h2/data.sql", "pom.xml",
              "src/test/java/org/springframework/samples/petclinic/vet/VetControllerTests.java")),
)
_DEPENDENCIES = (
    ("maven", "org.springframework.boot:spring-boot-starter-parent", (3, 4, 1)),
    ("maven", "com.github.ben-manes.caffeine:caffeine", (3, 1, 8)),
    ("maven", "org.webjars.npm:bootstrap", (5, 3, 3)),
    ("maven", "io.spring.javaformat:spring-javaformat-maven-plugin", (0, 0, 41)),
    ("maven", "com.h2database:h2", (2, 3, 232)),
    ("github_actions", "actions/setup-java", (4, 5, 0)),
)
_FOLLOW_UPS = ("Address review comments", "Fix failing test", "Polish", "Apply suggestions from code review",
               "Fix checkstyle violations", "Add missing test", "Rename for clarity", "Update tests")
_BODIES = (None, "", "See commits for details.", "Small change, tested locally.",
           "This is a follow-up to the discussion in the team channel.")
_REVIEW_BODIES = {"APPROVED": ("", "LGTM", "Looks good, thanks!"),
                  "CHANGES_REQUESTED": ("Please add a test for the empty case.", "A few comments inline."),
                  "COMMENTED": ("Just a question about the naming.", "Nit: see inline comment.")}
_ID_EPOCH = 1_200_000_000


@cache
def _london() -> tzinfo:
    """The team's time zone; UTC when the tz database is missing (logged once)."""
    try:
        return ZoneInfo("Europe/London")
    except ZoneInfoNotFoundError:
        logger.warning("time zone database not found: the demo team's office hours fall back to UTC")
        return UTC


def _sec(t: datetime) -> datetime:
    """Truncate to whole seconds, as GitHub reports times."""
    return t.replace(microsecond=0)


def _lognormal(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    """A skewed duration (most short, a long tail) clamped to [lo, hi]."""
    return min(hi, max(lo, median * math.exp(rng.gauss(0.0, sigma))))


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    """One key drawn with the given weights."""
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _login(name: str) -> str:
    """A login derived from a display name: 'Stéphane Nicoll' -> 'stephane-nicoll'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")


def organisation(owner: str) -> Person:
    """The organisation account that owns repositories (`petclinic` by default)."""
    ident = 52_000_000 + stable_int(owner, digits=6)
    return Person(owner, owner.replace("-", " ").title(), f"team@{owner}.example", ident, "Organization")


def team_from_names(names: tuple[str, ...]) -> tuple[Person, ...]:
    """The human team members (the first is the lead who reviews most)."""
    return tuple(Person(_login(n), n, f"{_login(n)}@petclinic.example", 1_000_000 + stable_int(n, digits=7))
                 for n in names)


class _Calendar:
    """Office hours (Mon-Fri 09:00-18:00 Europe/London) that turn effort into wall-clock time."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tz = _london()

    def at(self, day: date, hour: float) -> datetime:
        """The UTC instant of a local wall-clock hour on a day."""
        minutes = int(hour * 60)
        return datetime.combine(day, time(minutes // 60, minutes % 60), self.tz).astimezone(UTC)

    def open_at(self, t: datetime) -> datetime:
        """The first office instant at or after t (people drift in between 09:00 and 09:40)."""
        day = t.astimezone(self.tz).date()
        while True:
            if day.weekday() < 5:
                if t < self.at(day, 9.0):
                    return self.at(day, 9.0) + timedelta(minutes=self.rng.uniform(0, 40))
                if t < self.at(day, 18.0):
                    return t
            day += timedelta(days=1)

    def after(self, t: datetime, hours: float) -> datetime:
        """t plus `hours` of office time, skipping nights and weekends."""
        remaining = timedelta(hours=hours)
        t = self.open_at(t)
        while True:
            closes = self.at(t.astimezone(self.tz).date(), 18.0)
            if t + remaining <= closes:
                return _sec(t + remaining)
            remaining -= closes - t
            t = self.open_at(closes)

    def human(self, t: datetime, hours: float) -> datetime:
        """Like after(), but now and then the work gets done the same evening instead of next morning."""
        done = self.after(t, hours)
        local = t.astimezone(self.tz)
        next_day = done.astimezone(self.tz).date() != local.date()
        if next_day and local.weekday() < 5 and self.rng.random() < 0.1:
            evening = self.at(local.date(), self.rng.uniform(19.0, 22.5))
            if evening > t:
                return _sec(evening)
        return done


class _Ids:
    """Allocates ids that grow with time, like GitHub's, and never repeat."""

    def __init__(self) -> None:
        self.used: set[int] = set()

    def take(self, base: int, t: datetime, step: int = 4) -> int:
        """A fresh id for an object created at t (`step` ids per second)."""
        candidate = base + (int(t.timestamp()) - _ID_EPOCH) * step
        while candidate in self.used:
            candidate += 1
        self.used.add(candidate)
        return candidate


_PR, _REVIEW, _EVENT = 1_000_000_000, 4_000_000_000, 20_000_000_000
_DEPLOYMENT, _STATUS = 500_000_000, 6_000_000_000


@dataclass
class _Plan:
    """A pull request while its history is being generated (mutable until frozen)."""

    author: Person
    created_at: datetime
    draft: bool
    title: str
    body: str | None
    branch: str
    commits: list[Commit]
    labels: tuple[str, ...] = ()
    reviews: list[Review] = field(default_factory=list)
    events: list[TimelineEvent] = field(default_factory=list)
    merged_at: datetime | None = None
    merged_by: Person | None = None
    method: str | None = None
    revert_of: _Plan | None = None
    number: int = 0
    merge_commit_sha: str | None = None

    def head_at(self, t: datetime) -> str:
        """The branch head at instant t."""
        return [c.sha for c in self.commits if c.committed_at <= t][-1]


class _RepoBuilder:
    """One repository's history: PR lifecycles, then the commit graph, then deployments, cut at `end`."""

    def __init__(self, *, seed: int, full_name: str, index: int, team: tuple[Person, ...], flavour: Flavour,
                 start: datetime, window_start: datetime, end: datetime, ids: _Ids) -> None:
        self.rng = random.Random(f"{seed}:{full_name}")
        self.cal = _Calendar(self.rng)
        self.full_name, self.team, self.flavour, self.ids = full_name, team, flavour, ids
        self.start, self.window_start, self.end = start, window_start, end
        self.profile = _PROFILES[index % len(_PROFILES)]
        self.bot = {p.login: p for p in _BOTS}
        self.versions = {name: version for _, name, version in _DEPENDENCIES}
        created = _sec(start - timedelta(days=400 + 200 * index))
        self.repo = Repo(full_name, 600_000_000 + stable_int(full_name), created, self.profile.description)

    def build(self) -> RepoWorld:
        """Generate and cut the repository's history at `end`."""
        plans, directs = self._plan_all()
        main = self._graph(plans, directs)
        pulls = [pr for plan in plans if (pr := self._freeze(plan).as_of(self.end)) is not None]
        deployments = [cut for d in self._deployments(main) if (cut := d.as_of(self.end)) is not None]
        main = [c for c in main if c.landed_at is not None and c.landed_at <= self.end]
        return RepoWorld(self.repo, tuple(main), tuple(pulls), tuple(deployments))

    # -- small builders ----------------------------------------------------------------------------------
    def _sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def _commit(self, who: Person, t: datetime, message: str, *, parents: tuple[str, ...] = (),
                committer: Person | None = None, committed_at: datetime | None = None) -> Commit:
        committer = committer or who
        files = tuple(self.rng.sample(self.profile.paths, self.rng.randint(1, 3)))
        login = who.login if who.type != "Organization" else None
        additions = int(_lognormal(self.rng, 25, 1.0, 1, 900))
        deletions = int(_lognormal(self.rng, 6, 1.0, 0, 400))
        return Commit(self._sha(), parents, login, who.name, who.email, _sec(t), committer.login,
                      committer.name, committer.email, _sec(committed_at or t), message, additions, deletions,
                      files)

    def _review(self, plan: _Plan, who: Person, state: str, t: datetime, body: str | None = None) -> Review:
        review = Review(self.ids.take(_REVIEW, t), who.login, who.type, state, _sec(t), plan.head_at(t),
                        body if body is not None else self.rng.choice(_REVIEW_BODIES[state]))
        plan.reviews.append(review)
        return review

    def _event(self, plan: _Plan, event: str, who: Person, t: datetime, **extra: object) -> None:
        ident = self.ids.take(_EVENT, t)
        plan.events.append(TimelineEvent(ident, event, who.login, who.type, _sec(t), **extra))

    def _reviewers(self, author: Person) -> list[Person]:
        others = [p for p in self.team if p != author]
        weights = [3.0 if p == self.team[0] else 1.0 for p in others]
        first = self.rng.choices(others, weights=weights)[0]
        if self.rng.random() < 0.35:
            return [first, self.rng.choice([p for p in others if p != first])]
        return [first]

    # -- planning ----------------------------------------------------------------------------------------
    def _plan_all(self) -> tuple[list[_Plan], list[Commit]]:
        """Walk the days from `start` to `end`: each member's PRs, weekly dependabot runs, direct pushes."""
        plans: list[_Plan] = []
        directs: list[Commit] = []
        day = self.start.astimezone(self.cal.tz).date()
        while day <= self.end.astimezone(self.cal.tz).date():
            if day.weekday() == 0:
                for _ in range(self.rng.choice((0, 1, 1, 2, 2, 3))):
                    early = datetime.combine(day, time(4), UTC)
                    created = _sec(early + timedelta(hours=self.rng.uniform(0, 2)))
                    plans.append(self._bot_pr(created))
                if self.rng.random() < 0.3:
                    t = self.cal.at(day + timedelta(days=self.rng.randint(0, 4)), self.rng.uniform(9.5, 17.5))
                    directs.append(self._commit(self.team[0], t, self.rng.choice(self.flavour.subjects)))
            if day.weekday() < 5:
                for member in self.team:
                    for _ in range(sum(self.rng.random() < self.profile.rate / 2 for _ in range(2))):
                        evening = self.rng.random() < 0.05
                        hour = self.rng.uniform(19.0, 22.0) if evening else self.rng.uniform(9.2, 17.3)
                        plans.append(self._human_pr(member, plans, self.cal.at(day, hour)))
            day += timedelta(days=1)
        plans = [p for p in plans if p.created_at <= self.end]
        plans.sort(key=lambda p: p.created_at)
        number = self.profile.first_number
        for plan in plans:
            number += 1 + (self.rng.random() < 0.12)
            plan.number = number
        for plan in plans:
            if plan.revert_of is not None:
                plan.branch = f"revert-{plan.revert_of.number}-{plan.revert_of.branch}"
                plan.body = f"Reverts {self.full_name}#{plan.revert_of.number}"
        return plans, [c for c in directs if c.committed_at >= self.start]

    def _human_pr(self, author: Person, earlier: list[_Plan], start: datetime) -> _Plan:
        """A teammate's PR: commits, maybe a draft phase, reviews in rounds, then merge or close."""
        rng, cal = self.rng, self.cal
        merged = [p for p in earlier if p.merged_at and start - timedelta(days=10) < p.merged_at < start
                  and p.revert_of is None and p.author.type == "User"]
        revert_of = rng.choice(merged) if merged and rng.random() < 0.03 else None
        title = f'Revert "{revert_of.title}"' if revert_of else rng.choice(self.flavour.subjects)
        draft = rng.random() < 0.22
        count = rng.choices((1, 2, 3, 4, 5), (30, 30, 20, 12, 8))[0]
        count = 1 if revert_of else max(2 if draft else 1, count)
        effort = _lognormal(rng, 3.0, 0.8, 0.25, 30.0)
        t, created, commits = start, start, []
        for i in range(count):
            t = cal.human(t, effort / count * rng.uniform(0.5, 1.5))
            commits.append(self._commit(author, t, title if i == 0 else rng.choice(_FOLLOW_UPS)))
            if i == 0 and draft:
                created = t = _sec(t + timedelta(minutes=rng.uniform(2, 15)))
        ready = _sec(t + timedelta(minutes=rng.uniform(2, 20)))
        if not draft:
            created = ready
            if rng.random() < 0.12:
                commits = [replace(c, committed_at=ready - timedelta(minutes=1)) for c in commits]
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-")
        branch = f"{author.login.split('-')[0]}/{slug}"
        plan = _Plan(author, created, draft, title, rng.choice(_BODIES), branch, commits, revert_of=revert_of)
        if draft and rng.random() < 0.2:
            plan.title = f"WIP: {title}"
            self._event(plan, "closed", author, cal.after(created, _lognormal(rng, 80, 0.5, 20, 400)))
            return plan
        if draft:
            self._event(plan, "ready_for_review", author, ready)
        reviewers = self._reviewers(author)
        for reviewer in reviewers:
            self._event(plan, "review_requested", author, ready + timedelta(seconds=2),
                        requested_reviewer=reviewer.login)
        if rng.random() < 0.7:
            self._review(plan, self.bot["sonarcloud[bot]"], "COMMENTED",
                         created + timedelta(minutes=rng.uniform(3, 9)), "Quality Gate passed")
        if rng.random() < 0.15:
            self._review(plan, author, "COMMENTED", cal.human(ready, rng.uniform(0.2, 1.5)),
                         "Note to reviewers: the interesting part is in the controller.")
        self._review_rounds(plan, reviewers, ready)
        return plan

    def _push(self, plan: _Plan, t: datetime, hours: float) -> datetime:
        """The author pushes a follow-up commit after `hours` of work; returns the push time."""
        t = self.cal.human(t, hours)
        plan.commits.append(self._commit(plan.author, t, self.rng.choice(_FOLLOW_UPS)))
        return t

    def _review_rounds(self, plan: _Plan, reviewers: list[Person], ready: datetime) -> None:
        """Review rounds until approved (changes requested -> fixes), close/reopen, dismissals, merge."""
        rng, cal, lead, author = self.rng, self.cal, reviewers[0], plan.author
        abandon = rng.random() < 0.12
        weights = {"APPROVED": 60, "CHANGES_REQUESTED": 28, "COMMENTED": 12}
        converted = False
        stalled = rng.random() < 0.04
        pickup = _lognormal(rng, 30, 0.6, 8, 200) if stalled else _lognormal(rng, 4.0, 1.1, 0.05, 60)
        t = cal.human(ready, pickup)
        for round_number in range(4):
            state = _pick(rng, weights) if round_number < 3 else "APPROVED"
            self._review(plan, lead, state, t)
            if state == "APPROVED":
                break
            if abandon:
                closed = cal.human(t, _lognormal(rng, 6, 1.0, 0.5, 60))
                self._event(plan, "closed", author, closed)
                if rng.random() < 0.65:
                    return
                t = cal.human(closed, _lognormal(rng, 8, 0.8, 1, 80))
                self._event(plan, "reopened", author, t)
                abandon = False
            weights = {"APPROVED": 80, "CHANGES_REQUESTED": 12, "COMMENTED": 8}
            if state == "CHANGES_REQUESTED" and not converted and rng.random() < 0.15:
                converted = True
                t = _sec(t + timedelta(minutes=rng.uniform(5, 90)))
                self._event(plan, "convert_to_draft", author, t)
            for _ in range(rng.randint(1, 2)):
                t = self._push(plan, t, _lognormal(rng, 1.5, 0.8, 0.1, 20))
            if converted and plan.events[-1].event == "convert_to_draft":
                self._event(plan, "ready_for_review", author, t + timedelta(minutes=2))
            if rng.random() < 0.5:
                self._event(plan, "review_requested", author, t + timedelta(minutes=3),
                            requested_reviewer=lead.login)
            t = cal.human(t + timedelta(minutes=3), _lognormal(rng, 1.5, 1.0, 0.05, 30))
        approvals = [t]
        if len(reviewers) > 1:
            second = cal.human(ready, _lognormal(rng, 3.0, 1.0, 0.1, 40))
            self._review(plan, reviewers[1], "APPROVED" if rng.random() < 0.85 else "COMMENTED", second)
            approvals.append(second)
        if rng.random() < 0.12:
            push = self._push(plan, max(approvals), _lognormal(rng, 0.6, 0.8, 0.05, 8))
            dismissed = push + timedelta(seconds=rng.randint(5, 40))
            for i, review in enumerate(plan.reviews):
                if review.state == "APPROVED" and review.dismissed_at is None and review.submitted_at < push:
                    plan.reviews[i] = replace(review, dismissed_at=dismissed)
                    self._event(plan, "review_dismissed", author, dismissed, commit_id=plan.commits[-1].sha,
                                dismissed_review_id=review.id, dismissed_review_state="approved")
            self._event(plan, "review_requested", author, dismissed + timedelta(seconds=30),
                        requested_reviewer=lead.login)
            approvals = [cal.human(dismissed, _lognormal(rng, 1.0, 1.0, 0.05, 20))]
            self._review(plan, lead, "APPROVED", approvals[0])
        plan.merged_at = cal.human(max(approvals), _lognormal(rng, 0.8, 1.2, 0.01, 30))
        plan.merged_by = author if rng.random() < 0.7 else lead
        plan.method = _pick(rng, self.profile.methods)

    def _bot_pr(self, created: datetime) -> _Plan:
        """A dependabot version bump: auto-merged after approval, merged by hand, or superseded and closed."""
        rng, bot = self.rng, self.bot["dependabot[bot]"]
        ecosystem, name, old = rng.choice(_DEPENDENCIES)
        new = (old[0], old[1] + 1, 0) if rng.random() < 0.2 else (old[0], old[1], old[2] + 1)
        self.versions[name] = new
        old_text, new_text = ".".join(map(str, old)), ".".join(map(str, new))
        title = f"Bump {name} from {old_text} to {new_text}"
        body = f"Bumps {name} from {old_text} to {new_text}."
        message = f"{title}\n\n{body}\n\nSigned-off-by: dependabot[bot] <support@github.com>"
        commit = self._commit(bot, created - timedelta(seconds=40), message)
        branch = f"dependabot/{ecosystem}/{name.replace(':', '-')}-{new_text}"
        labels = ("dependencies", "java" if ecosystem == "maven" else "github_actions")
        plan = _Plan(bot, created, False, title, body, branch, [commit], labels)
        if rng.random() < 0.5:
            scanned = created + timedelta(minutes=rng.uniform(3, 9))
            self._review(plan, self.bot["sonarcloud[bot]"], "COMMENTED", scanned, "Quality Gate passed")
        outcome = rng.random()
        if outcome < 0.85:
            approver = rng.choice(self.team)
            approved = self.cal.human(created, _lognormal(rng, 3.0, 1.0, 0.1, 40))
            self._review(plan, approver, "APPROVED", approved)
            plan.merged_at = (approved + timedelta(seconds=rng.randint(30, 180)) if outcome < 0.45
                              else self.cal.human(approved, _lognormal(rng, 1.0, 1.0, 0.02, 24)))
            plan.merged_by, plan.method = approver, _pick(rng, self.profile.methods)
        else:
            self._event(plan, "closed", bot, created + timedelta(days=7, minutes=rng.uniform(-90, 90)))
        return plan

    # -- the default branch ------------------------------------------------------------------------------
    def _graph(self, plans: list[_Plan], directs: list[Commit]) -> list[Commit]:
        """Replay branch points, merges and direct pushes in time order to build main's commit graph."""
        lead, flow = self.team[0], self.bot["web-flow"]
        main: list[Commit] = []
        t = self.repo.created_at
        for subject in ["Initial commit", *self.rng.sample(self.flavour.subjects, 5)]:
            t = t + (self.start - self.repo.created_at) / 7
            parents = (main[-1].sha,) if main else ()
            main.append(replace(self._commit(lead, t, subject, parents=parents), landed_at=_sec(t)))
        steps: list[tuple[datetime, int, object]] = [(p.commits[0].authored_at, 0, p) for p in plans]
        steps += [(p.merged_at, 1, p) for p in plans if p.merged_at]
        steps += [(c.committed_at, 1, c) for c in directs]
        for when, kind, item in sorted(steps, key=lambda s: (s[0], s[1])):
            tip = main[-1].sha
            if isinstance(item, Commit):
                main.append(replace(item, parents=(tip,), landed_at=when))
            elif kind == 0:
                parents = [tip] + [c.sha for c in item.commits[:-1]]
                item.commits = [replace(c, parents=(p,)) for c, p in zip(item.commits, parents, strict=True)]
            else:
                main.extend(self._merge(item, tip, flow, when))
                item.merge_commit_sha = main[-1].sha
        return main

    def _merge(self, plan: _Plan, tip: str, flow: Person, when: datetime) -> list[Commit]:
        """The commits a merge adds to main: merge commit (2 parents), squash (1 new) or rebased copies."""
        owner = self.full_name.split("/")[0]
        adds, dels = sum(c.additions for c in plan.commits), sum(c.deletions for c in plan.commits)
        files = tuple(dict.fromkeys(f for c in plan.commits for f in c.files))
        if plan.method == "merge":
            plan.commits = [replace(c, landed_at=when) for c in plan.commits]
            message = f"Merge pull request #{plan.number} from {owner}/{plan.branch}\n\n{plan.title}"
            parents = (tip, plan.commits[-1].sha)
            merge = self._commit(plan.merged_by, when, message, parents=parents, committer=flow)
            merge = replace(merge, additions=adds, deletions=dels, files=files, landed_at=when)
            return [*plan.commits, merge]
        if plan.method == "squash":
            bullets = "\n\n".join(f"* {c.message}" for c in plan.commits)
            message = f"{plan.title} (#{plan.number})\n\n{bullets}"
            squash = replace(self._commit(plan.author, when, message, parents=(tip,), committer=flow),
                             additions=adds, deletions=dels, files=files, landed_at=when)
            return [squash]
        rebased = []
        for commit in plan.commits:
            rebased.append(replace(commit, sha=self._sha(), parents=(tip,), committer_login=flow.login,
                                   committer_name=flow.name, committer_email=flow.email, committed_at=when,
                                   landed_at=when))
            tip = rebased[-1].sha
        return rebased

    def _freeze(self, plan: _Plan) -> PullRequest:
        """The immutable pull request, with merged/closed events added at merge time."""
        events = list(plan.events)
        if plan.merged_at and plan.merged_by:
            for name, sha in (("merged", plan.merge_commit_sha), ("closed", None)):
                events.append(TimelineEvent(self.ids.take(_EVENT, plan.merged_at), name, plan.merged_by.login,
                                            plan.merged_by.type, plan.merged_at, commit_id=sha))
        events.sort(key=lambda e: (e.created_at, e.id))
        closes = [e.created_at for e in events if e.event == "closed"]
        commits = tuple(replace(c, landed_at=None) if c.landed_at and c.landed_at > self.end else c
                        for c in plan.commits)
        pr = PullRequest(
            repo=self.full_name, number=plan.number, id=self.ids.take(_PR, plan.created_at), title=plan.title,
            body=plan.body, author_login=plan.author.login, author_type=plan.author.type,
            created_at=plan.created_at, draft=plan.draft, head_ref=plan.branch, commits=commits,
            reviews=tuple(sorted(plan.reviews, key=lambda r: (r.submitted_at, r.id))), events=tuple(events),
            merged_at=plan.merged_at, merge_commit_sha=plan.merge_commit_sha, merge_method=plan.method,
            merged_by=plan.merged_by.login if plan.merged_by else None, labels=plan.labels)
        return replace(pr, closed_at=closes[-1] if pr.state == "closed" else None)

    # -- deployments -------------------------------------------------------------------------------------
    def _deployments(self, main: list[Commit]) -> list[Deployment]:
        """Staging after merges (batched while a build runs), production 2-4 times a week on workdays."""
        rng, cal = self.rng, self.cal
        landed = [c.landed_at for c in main]
        drafts: list[dict] = []

        def tip(t: datetime) -> str:
            return main[bisect.bisect_right(landed, t) - 1].sha

        def deploy(env: str, creator: Person, created: datetime, fail: float) -> dict:
            created = _sec(created)
            started = created + timedelta(seconds=rng.randint(10, 180))
            minutes = rng.uniform(1.5, 5) if env == "staging" else rng.uniform(4, 15)
            finished = started + timedelta(minutes=minutes)
            failed = rng.random() < fail
            queued = created + timedelta(seconds=rng.randint(0, 5))
            outcome = (("failure", finished, "Health check failed") if failed
                       else ("success", finished, "Deployment finished successfully."))
            item = {"env": env, "creator": creator, "created": created, "sha": tip(created),
                    "statuses": [("queued", queued, "Deployment queued"),
                                 ("in_progress", started, "Deployment started"), outcome]}
            drafts.append(item)
            if failed:
                retry = (finished + timedelta(minutes=rng.uniform(10, 40)) if env == "staging"
                         else cal.human(finished, _lognormal(rng, 0.7, 0.8, 0.1, 6)))
                return deploy(env, creator, retry, 0.02)
            return item

        last_staging: datetime | None = None
        for when in sorted({t for t in landed if t and self.window_start <= t <= self.end}):
            if (last_staging and last_staging >= when) or rng.random() < 0.08:
                continue
            last_staging = deploy("staging", self.bot["github-actions[bot]"],
                                  when + timedelta(minutes=rng.uniform(8, 22)), 0.04)["created"]
        monday = self.window_start.astimezone(cal.tz).date()
        monday -= timedelta(days=monday.weekday())
        deployed_sha, week = "", 0
        while monday <= self.end.astimezone(cal.tz).date():
            days = [monday + timedelta(days=i) for i in range(5)]
            days = [d for d in days if self.window_start <= cal.at(d, 17.0) and cal.at(d, 10.0) <= self.end]
            captain, quota = self.team[week % len(self.team)], rng.choice((2, 3, 3, 4))
            for index, day in enumerate(days):  # a day with nothing new to ship passes its turn on
                when = max(cal.at(day, rng.uniform(10.0, 16.5)), self.window_start)
                if rng.random() < quota / (len(days) - index) and tip(when) != deployed_sha:
                    deployed_sha = deploy("production", captain, when, 0.08)["sha"]
                    quota -= 1
            monday += timedelta(days=7)
            week += 1
        return self._finish_deployments(drafts)

    def _finish_deployments(self, drafts: list[dict]) -> list[Deployment]:
        """Add inactive statuses to replaced deployments, then give ids that grow with time."""
        for env in ("staging", "production"):
            done = sorted(((s[1], i) for i, d in enumerate(drafts) if d["env"] == env
                           for s in d["statuses"] if s[0] == "success"))
            for (_, older), (replaced_at, _) in pairwise(done):
                inactive = ("inactive", replaced_at + timedelta(seconds=1), "Superseded by a newer deploy")
                drafts[older]["statuses"].append(inactive)
        drafts.sort(key=lambda d: d["created"])
        status_ids = {key: self.ids.take(_STATUS, key[1]) for key in
                      sorted(((i, s[1], s[0]) for i, d in enumerate(drafts) for s in d["statuses"]),
                             key=lambda k: (k[1], k[0]))}
        result = []
        for i, d in enumerate(drafts):
            statuses = tuple(DeploymentStatus(status_ids[(i, when, state)], state, when, text)
                             for state, when, text in sorted(d["statuses"], key=lambda s: s[1]))
            # deployment ids stay below 2**31, as GitHub's do: GraphQL exposes them only as a 32-bit databaseId
            ident = self.ids.take(_DEPLOYMENT, d["created"], step=1)
            result.append(Deployment(ident, self.full_name, d["sha"], "main", d["env"], d["creator"].login,
                                     d["creator"].type, d["created"], statuses,
                                     description=f"Deploy {d['sha'][:7]} to {d['env']}"))
        return result


def generate_world(seed: int = 7, end: datetime | None = None, weeks: int = 12,
                   repos: tuple[str, ...] = DEFAULT_REPOS, actions_repos: tuple[str, ...] = (),
                   archived_repos: tuple[str, ...] = ()) -> World:
    """The team's history: `weeks` of activity up to `end` (default now, UTC) plus three weeks before.

    Repos named in `actions_repos` also build every default-branch push with GitHub Actions (`build.yml`);
    the rest of the world is the same with or without them. Repos named in `archived_repos` are archived
    (same history, flagged). An owner that is a team member's login is that user, any other an organisation.
    """
    end = _sec((end or datetime.now(UTC)).astimezone(UTC))
    window_start = end - timedelta(weeks=weeks)
    start = window_start - timedelta(weeks=3)
    flavour = load_flavour()
    team = team_from_names(flavour.names)
    ids = _Ids()
    built = tuple(_RepoBuilder(seed=seed, full_name=name, index=i, team=team, flavour=flavour, start=start,
                               window_start=window_start, end=end, ids=ids).build()
                  for i, name in enumerate(repos))
    built = tuple(replace(rw, runs=build_runs(rw, seed, start, end)) if rw.full_name in actions_repos else rw
                  for rw in built)
    built = tuple(replace(rw, repo=replace(rw.repo, archived=True)) if rw.full_name in archived_repos else rw
                  for rw in built)
    logger.debug("generated world seed=%s end=%s: %s", seed, end.isoformat(),
                 {r.repo.full_name: len(r.pulls) for r in built})
    members = {person.login for person in (*team, *_BOTS)}
    owners = tuple(organisation(owner) for owner in dict.fromkeys(name.split("/")[0] for name in repos)
                   if owner not in members)
    return World(seed=seed, start=start, window_start=window_start, end=end, people=(*team, *_BOTS, *owners),
                 repos=built)


def stable_int(*parts: object, digits: int = 8) -> int:
    """A deterministic integer from the given parts (ids that do not depend on generation order)."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16) % (10 ** digits)
