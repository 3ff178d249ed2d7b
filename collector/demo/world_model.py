"""The records of the simulated Pet Clinic world: people, repos, commits, pull requests, reviews, events,
deployments, and the as-of-a-time views of them that the simulated servers show.

Plain frozen dataclasses: collector/demo/world.py generates them, the simulators only read them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property

from collector.demo.actions_world import WorkflowRun


@dataclass(frozen=True)
class Person:
    """A GitHub account: a team member, a bot or the organisation."""

    login: str
    name: str
    email: str
    id: int
    type: str = "User"


@dataclass(frozen=True)
class Repo:
    """A repository of the world (owned by an organisation, or by a team member named as its owner)."""

    full_name: str
    id: int
    created_at: datetime
    description: str
    default_branch: str = "main"
    archived: bool = False


@dataclass(frozen=True)
class Commit:
    """A git commit; `landed_at` is when it became reachable from the default branch (None: never)."""

    sha: str
    parents: tuple[str, ...]
    author_login: str | None
    author_name: str
    author_email: str
    authored_at: datetime
    committer_login: str | None
    committer_name: str
    committer_email: str
    committed_at: datetime
    message: str
    additions: int = 10
    deletions: int = 2
    files: tuple[str, ...] = ()
    landed_at: datetime | None = None


@dataclass(frozen=True)
class Review:
    """A submitted pull request review; once `dismissed_at` has passed the API shows it as DISMISSED."""

    id: int
    user_login: str
    user_type: str
    state: str
    submitted_at: datetime
    commit_id: str
    body: str = ""
    dismissed_at: datetime | None = None

    @property
    def dismissed(self) -> bool:
        """Whether the review was dismissed (e.g. an approval made stale by a later push)."""
        return self.dismissed_at is not None

    def state_at(self, t: datetime) -> str:
        """The review state the API reports at instant t."""
        return "DISMISSED" if self.dismissed_at is not None and self.dismissed_at <= t else self.state


@dataclass(frozen=True)
class TimelineEvent:
    """An issue event on a pull request's timeline (ready_for_review, merged, closed, ...)."""

    id: int
    event: str
    actor_login: str
    actor_type: str
    created_at: datetime
    commit_id: str | None = None
    requested_reviewer: str | None = None
    dismissed_review_id: int | None = None
    dismissed_review_state: str | None = None


@dataclass(frozen=True)
class PullRequest:
    """A pull request with its full history; `as_of(t)` gives the state GitHub showed at instant t."""

    repo: str
    number: int
    id: int
    title: str
    body: str
    author_login: str
    author_type: str
    created_at: datetime
    draft: bool
    head_ref: str
    commits: tuple[Commit, ...]
    reviews: tuple[Review, ...] = ()
    events: tuple[TimelineEvent, ...] = ()
    base_ref: str = "main"
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None
    merge_method: str | None = None
    merged_by: str | None = None
    labels: tuple[str, ...] = ()

    @property
    def head_sha(self) -> str:
        """The sha of the branch head (last pushed commit)."""
        return self.commits[-1].sha

    @property
    def state(self) -> str:
        """open or closed, following closed/reopened events."""
        state = "open"
        for event in self.events:
            if event.event in ("closed", "reopened"):
                state = "closed" if event.event == "closed" else "open"
        return state

    @property
    def is_draft(self) -> bool:
        """Whether the PR is a draft now (draft at creation, toggled by ready/convert events)."""
        draft = self.draft
        for event in self.events:
            if event.event in ("ready_for_review", "convert_to_draft"):
                draft = event.event == "convert_to_draft"
        return draft

    @property
    def updated_at(self) -> datetime:
        """Latest activity of the PR itself: commits, reviews, dismissals and events."""
        dismissals = [r.dismissed_at for r in self.reviews if r.dismissed_at]
        reviewed = [r.submitted_at for r in self.reviews]
        return max([self.created_at, *(c.committed_at for c in self.commits), *reviewed, *dismissals,
                    *(e.created_at for e in self.events)])

    def as_of(self, t: datetime) -> PullRequest | None:
        """The PR as GitHub showed it at instant t, or None if it did not exist yet."""
        if self.created_at > t:
            return None
        if self.updated_at <= t:
            return self
        merged = self.merged_at is not None and self.merged_at <= t
        events = tuple(e for e in self.events if e.created_at <= t)
        closes = [e.created_at for e in events if e.event == "closed"]
        reviews = tuple(r if r.dismissed_at is None or r.dismissed_at <= t else replace(r, dismissed_at=None)
                        for r in self.reviews if r.submitted_at <= t)
        pr = replace(
            self,
            commits=tuple(c for c in self.commits if c.committed_at <= t),
            reviews=reviews,
            events=events,
            merged_at=self.merged_at if merged else None,
            merge_commit_sha=self.merge_commit_sha if merged else None,
            merge_method=self.merge_method if merged else None,
            merged_by=self.merged_by if merged else None,
        )
        return replace(pr, closed_at=closes[-1] if pr.state == "closed" else None)


@dataclass(frozen=True)
class DeploymentStatus:
    """One status of a deployment (queued, in_progress, success, failure, inactive)."""

    id: int
    state: str
    created_at: datetime
    description: str = ""


@dataclass(frozen=True)
class Deployment:
    """A GitHub deployment of a sha to an environment, with its statuses in chronological order."""

    id: int
    repo: str
    sha: str
    ref: str
    environment: str
    creator_login: str
    creator_type: str
    created_at: datetime
    statuses: tuple[DeploymentStatus, ...]
    task: str = "deploy"
    description: str = ""

    @property
    def updated_at(self) -> datetime:
        """Time of the latest status (GitHub bumps updated_at on every status)."""
        return max([self.created_at, *(s.created_at for s in self.statuses)])

    def as_of(self, t: datetime) -> Deployment | None:
        """The deployment as GitHub showed it at instant t, or None if not created yet."""
        if self.created_at > t:
            return None
        return replace(self, statuses=tuple(s for s in self.statuses if s.created_at <= t))


@dataclass(frozen=True)
class RepoWorld:
    """Everything about one repository: default-branch graph, pull requests, deployments, Actions runs."""

    repo: Repo
    main: tuple[Commit, ...]
    pulls: tuple[PullRequest, ...]
    deployments: tuple[Deployment, ...]
    runs: tuple[WorkflowRun, ...] = ()
    # commits only other branches reach (release, hotfix), by when they exist; a later merge may bring
    # them into the default branch's history
    branches: tuple[Commit, ...] = ()

    @property
    def full_name(self) -> str:
        """owner/name of the repository."""
        return self.repo.full_name

    @cached_property
    def commits(self) -> dict[str, Commit]:
        """Every commit by sha: default branch, other branches and PR commits (squashed/rebased originals too)."""
        index = {c.sha: c for pr in self.pulls for c in pr.commits}
        index.update((c.sha, c) for c in self.branches)
        index.update((c.sha, c) for c in self.main)
        return index

    @cached_property
    def _landed(self) -> list[datetime]:
        return [c.landed_at or datetime.max.replace(tzinfo=UTC) for c in self.main]

    def tip_at(self, t: datetime) -> Commit | None:
        """The default-branch head at instant t (None before the first commit)."""
        index = bisect.bisect_right(self._landed, t) - 1
        return self.main[index] if index >= 0 else None

    def main_as_of(self, t: datetime) -> list[Commit]:
        """Default-branch commits reachable at instant t, in the order they landed."""
        return [c for c in self.main if c.landed_at is not None and c.landed_at <= t]

    def pull(self, number: int) -> PullRequest | None:
        """The pull request with that number, if any."""
        return next((pr for pr in self.pulls if pr.number == number), None)


@dataclass(frozen=True)
class World:
    """The whole simulated organisation between `start` (history begins) and `end` (now)."""

    seed: int
    start: datetime
    window_start: datetime
    end: datetime
    people: tuple[Person, ...]
    repos: tuple[RepoWorld, ...]

    def repo(self, full_name: str) -> RepoWorld:
        """The repository with that owner/name (case-insensitive, like GitHub)."""
        for item in self.repos:
            if item.repo.full_name.lower() == full_name.lower():
                return item
        raise KeyError(full_name)

    def person(self, login: str) -> Person:
        """The user or bot with that login."""
        for person in self.people:
            if person.login == login:
                return person
        raise KeyError(login)
