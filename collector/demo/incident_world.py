"""Incidents of the Pet Clinic world: production trouble after some of its deployments, reported as GitHub
issues (label `incident`), Jira tickets (a German-speaking ops team: localised status names) and PagerDuty
incidents. Pure, deterministic data derived from a World; each incident records the deployment its
generator meant it to be linked to, and how, so a test can check the mapper's links against it.

Kinds of incident: some name the PR, the SHA or the deployment that caused them, some only follow a
deployment in time, one comes before the first production deployment and one comes after a quiet spell
longer than the link window (neither is linked to anything).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise

from collector.demo.world import Deployment, RepoWorld, World

# The demo's [incidents] link_window: the team deploys several times a week, so an incident three days
# after the last deployment is no longer blamed on it (and the world has quieter spells than that).
LINK_WINDOW = timedelta(days=3)
LABEL = "incident"
JIRA_PROJECT = "OPS"
JIRA_PROJECT_NAME = "Betrieb"
# Jira statuses of the ops project: (id, localised name, statusCategory.key). Names are never interpreted.
JIRA_STATUSES = (
    ("10100", "Offen", "new"),
    ("10101", "In Arbeit", "indeterminate"),
    ("10102", "Erledigt", "done"),
)
JIRA_COMPONENTS = ("Web-Oberfläche", "Tierarzt-Dienst")
PAGERDUTY_SERVICES = (("PWEB3K7", "petclinic-web production"), ("PVET9Q2", "vets-service production"))
SOURCES = ("github", "jira", "pagerduty")
# How a caused incident refers to its deployment, in turn (time_window most often, as in real life).
METHODS = ("time_window", "explicit_pr", "time_window", "explicit_sha", "time_window", "explicit_deployment")
CAUSE_RATE = 0.16
_TITLES = (
    "Owner search returns 500",
    "Visit form loses the selected date",
    "Vets list is empty",
    "Pet photos fail to upload",
    "Login page times out",
    "Appointment emails not sent",
    "Owner details show the wrong pets",
    "Vet specialties missing after update",
    "Slow responses on the owners page",
    "New visits not saved",
)
_SYMPTOMS = (
    "Customers report errors on the site.",
    "The error rate alert fired twice in ten minutes.",
    "Support forwarded several complaints.",
    "Synthetic checks are failing.",
)


@dataclass(frozen=True)
class Incident:
    """One incident ticket with its lifecycle and the link its generator intended."""

    source: str
    key: str
    number: int
    repo: str
    title: str
    body: str
    reporter: str
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    urgency: str = "high"
    incident_key: str | None = None
    intended_deployment: int | None = None
    intended_method: str | None = None

    @property
    def incident_id(self) -> str:
        """The id the `incidents` view gives it: '<source>:<key>'."""
        return f"{self.source}:{self.key}"

    @property
    def updated_at(self) -> datetime:
        """The latest change of the ticket."""
        return max(t for t in (self.created_at, self.acknowledged_at, self.resolved_at) if t is not None)

    def as_of(self, t: datetime) -> Incident | None:
        """The incident as its source showed it at instant t, or None before it was created."""
        if self.created_at > t:
            return None
        return replace(
            self,
            acknowledged_at=self.acknowledged_at
            if self.acknowledged_at and self.acknowledged_at <= t
            else None,
            resolved_at=self.resolved_at if self.resolved_at and self.resolved_at <= t else None,
        )

    def category(self) -> str:
        """new / indeterminate / done, from what has happened."""
        return "done" if self.resolved_at else "indeterminate" if self.acknowledged_at else "new"


@dataclass(frozen=True)
class IncidentWorld:
    """All incidents of a world, with the Jira and PagerDuty set-up they are reported in."""

    incidents: tuple[Incident, ...]
    repos: tuple[str, ...]
    link_window: timedelta
    end: datetime

    def of(self, source: str) -> list[Incident]:
        """The incidents of one source, oldest first."""
        return [i for i in self.incidents if i.source == source]

    @property
    def components(self) -> dict[str, str]:
        """Jira component -> repo."""
        return dict(zip(JIRA_COMPONENTS, self.repos, strict=False))

    @property
    def services(self) -> dict[str, str]:
        """PagerDuty service id -> repo."""
        return {sid: repo for (sid, _), repo in zip(PAGERDUTY_SERVICES, self.repos, strict=False)}

    @property
    def service_map(self) -> dict[str, str]:
        """[incidents.service_map] for the demo config: PagerDuty services and Jira components."""
        return {**self.services, **self.components}

    def component_of(self, repo: str) -> str:
        """The Jira component of a repo."""
        return next(c for c, r in self.components.items() if r == repo)

    def service_of(self, repo: str) -> tuple[str, str]:
        """The PagerDuty service (id, name) of a repo."""
        return next((sid, name) for sid, name in PAGERDUTY_SERVICES if self.services.get(sid) == repo)


def production(rw: RepoWorld) -> list[tuple[Deployment, datetime]]:
    """A repo's successful production deployments with their finish (first success) time, in order."""
    done = [
        (d, min(s.created_at for s in d.statuses if s.state == "success"))
        for d in rw.deployments
        if d.environment == "production" and any(s.state == "success" for s in d.statuses)
    ]
    return sorted(done, key=lambda item: (item[1], item[0].id))


def _ancestors(rw: RepoWorld, sha: str) -> set[str]:
    """Every commit reachable from sha."""
    seen: set[str] = set()
    stack = [sha]
    while stack:
        top = stack.pop()
        if top not in seen and top in rw.commits:
            seen.add(top)
            stack.extend(rw.commits[top].parents)
    return seen


def _delivered_pr(rw: RepoWorld, sha: str, previous: str | None) -> int | None:
    """A human PR the deployment of sha delivered (merged, reachable from it and not from the previous one)."""
    new = _ancestors(rw, sha) - (_ancestors(rw, previous) if previous else set())
    prs = [pr for pr in rw.pulls if pr.merge_commit_sha in new and pr.author_type == "User"]
    return max(prs, key=lambda pr: pr.merged_at).number if prs else None  # type: ignore[arg-type, return-value]


def _minutes(rng: random.Random, median: float, lo: float, hi: float) -> timedelta:
    """A skewed duration in minutes, clamped."""
    return timedelta(minutes=round(min(hi, max(lo, median * math.exp(rng.gauss(0.0, 0.9))))))


class _Builder:
    """Draws the incidents of one world, repo by repo, in one deterministic pass."""

    def __init__(self, world: World, link_window: timedelta) -> None:
        self.world, self.window = world, link_window
        self.rng = random.Random(f"{world.seed}:incidents")
        self.team = [
            p.login for p in world.people if p.type == "User" and p.email.endswith("@petclinic.example")
        ]
        self.drafts: list[dict] = []

    def add(
        self,
        repo: str,
        created: datetime,
        title: str,
        body: str,
        deployment: int | None,
        method: str | None,
        incident_key: str | None = None,
        source: str | None = None,
    ) -> None:
        """Queue one incident: lifecycle drawn here, source in turn unless given."""
        ack = created + _minutes(self.rng, 12, 2, 90)
        resolved = ack + _minutes(self.rng, 150, 20, 3 * 1440)
        self.drafts.append(
            {
                "repo": repo,
                "created": created.replace(microsecond=0),
                "title": title,
                "body": body,
                "deployment": deployment,
                "method": method,
                "incident_key": incident_key,
                "source": source,
                "ack": ack.replace(microsecond=0),
                "resolved": resolved.replace(microsecond=0),
                "reporter": self.rng.choice(self.team),
                "urgency": "high" if self.rng.random() < 0.7 else "low",
            }
        )

    def caused(self, rw: RepoWorld) -> None:
        """Incidents after some production deployments (never the seed), each linked by its method."""
        prod = production(rw)
        for k in range(1, len(prod)):
            if self.rng.random() >= CAUSE_RATE:
                continue
            (dep, finished), previous = prod[k], prod[k - 1][0]
            following = prod[k + 1][1] if k + 1 < len(prod) else self.world.end
            method = METHODS[len(self.drafts) % len(METHODS)]
            pr = _delivered_pr(rw, dep.sha, previous.sha) if method == "explicit_pr" else None
            if method == "explicit_pr" and pr is None:
                method = "explicit_sha"
            title = self.rng.choice(_TITLES)
            if method == "time_window":
                room = min(following - finished, self.window) - timedelta(minutes=10)
                if room < timedelta(minutes=30):
                    continue
                created = (
                    finished + timedelta(minutes=20) + (room - timedelta(minutes=20)) * self.rng.random()
                )
                self.add(rw.full_name, created, title, self.rng.choice(_SYMPTOMS), dep.id, method)
                continue
            # explicit references outlive the next deployment: reported after it, still linked to this one
            start = following if following < self.world.end - timedelta(hours=6) else finished
            created = start + _minutes(self.rng, 60, 10, 300)
            if created >= self.world.end:
                continue
            body, key = {
                "explicit_pr": (f"Started right after {rw.full_name}#{pr} went out.", None),
                "explicit_sha": (
                    f"Error rate jumped after {dep.sha[:10]} was deployed.",
                    f"{rw.full_name.split('/')[1]}/{dep.sha[:12]}/error-rate",
                ),
                "explicit_deployment": (f"Broken since deployment {dep.id} to production.", None),
            }[method]
            self.add(rw.full_name, created, title, body, dep.id, method, incident_key=key)

    def unlinked(self) -> None:
        """One incident before any production deployment, one after a spell longer than the link window."""
        first = self.world.repos[0]
        prod = production(first)
        if prod:
            created = max(prod[0][1] - timedelta(hours=3), self.world.start + timedelta(hours=1))
            self.add(
                first.full_name,
                created,
                "Staging data leaked into the demo site",
                "Noticed while preparing the first release.",
                None,
                None,
                source="github",
            )
        for rw in self.world.repos:
            finishes = [f for _, f in production(rw)]
            gaps = [(b - a, a) for a, b in pairwise(finishes) if b - a > self.window + timedelta(hours=12)]
            if gaps:
                _, after = max(gaps)
                self.add(
                    rw.full_name,
                    after + self.window + timedelta(hours=6),
                    "Certificate expired on the API",
                    "The TLS certificate ran out; nothing was deployed lately.",
                    None,
                    None,
                    source="jira",
                )
                return

    def build(self) -> tuple[Incident, ...]:
        """Freeze the drafts: sources in turn, ids and numbers per source in creation order."""
        self.drafts.sort(key=lambda d: (d["created"], d["repo"]))
        numbers = {source: 0 for source in SOURCES}
        taken: dict[str, set[int]] = {rw.full_name: {pr.number for pr in rw.pulls} for rw in self.world.repos}
        result = []
        for index, d in enumerate(self.drafts):
            source = d["source"] or SOURCES[index % len(SOURCES)]
            numbers[source] += 1
            if source == "github":
                number = _issue_number(self.world.repo(d["repo"]), d["created"], taken[d["repo"]])
                key = f"{d['repo']}#{number}"
            elif source == "jira":
                number, key = numbers[source], f"{JIRA_PROJECT}-{numbers[source]}"
            else:
                number, key = (
                    numbers[source],
                    "Q" + _digest(self.world.seed, d["created"], d["title"])[:13].upper(),
                )
            result.append(
                Incident(
                    source,
                    key,
                    number,
                    d["repo"],
                    d["title"],
                    d["body"],
                    d["reporter"],
                    d["created"],
                    d["ack"],
                    d["resolved"],
                    d["urgency"],
                    d["incident_key"],
                    d["deployment"],
                    d["method"],
                ).as_of(self.world.end)
            )
        return tuple(i for i in result if i is not None)


def _digest(*parts: object) -> str:
    """A stable hex digest of the parts (ids that do not depend on generation order)."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def _issue_number(rw: RepoWorld, created: datetime, taken: set[int]) -> int:
    """The first free issue number after the last PR opened before `created` (issues share PR numbering)."""
    before = [pr.number for pr in rw.pulls if pr.created_at <= created]
    number = max(before, default=0) + 1
    while number in taken:
        number += 1
    taken.add(number)
    return number


def build_incidents(world: World, link_window: timedelta = LINK_WINDOW) -> IncidentWorld:
    """The incidents of a world (deterministic for the world's seed and end)."""
    builder = _Builder(world, link_window)
    for rw in world.repos:
        builder.caused(rw)
    builder.unlinked()
    return IncidentWorld(builder.build(), tuple(rw.full_name for rw in world.repos), link_window, world.end)
