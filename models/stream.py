"""The event vocabulary of a change's timeline and the value stream built from it, as data."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every event a change's timeline can hold: name -> what it marks. Deploy events take an environment
# suffix (`deploy_started:staging`); `deploy_*:production` means any configured production environment.
EVENTS: dict[str, str] = {
    "commit_authored": "author date of the change's earliest commit",
    "pr_opened": "pull request created",
    "pr_ready": "pull request ready for review (opened, or the ready_for_review that counted for a draft)",
    "review_first": "first review by a human other than the author",
    "review_changes_requested": "first review requesting changes",
    "review_approved": "last approval by a human non-author at or before merge",
    "pr_merged": "pull request merged",
    "build_queued": "the delivering CI build entered the queue",
    "build_started": "the delivering CI build (first successful build reaching the merge commit) started",
    "build_finished": "the delivering CI build finished",
    "deploy_started": "the delivering deployment to an environment started",
    "deploy_finished": "the delivering deployment to an environment succeeded",
    "incident_opened": "first incident linked to the delivering production deployment opened",
    "incident_resolved": "that incident resolved",
}
ENVIRONMENT_EVENTS = frozenset({"deploy_started", "deploy_finished"})

_EVENT = re.compile(r"^([a-z_]+)(?::([A-Za-z0-9_.-]+))?$")


class StreamError(ValueError):
    """A stage definition that cannot work; str() is one line."""


@dataclass(frozen=True)
class Span:
    """A stretch of a change's timeline between two events.

    Each end is a list of alternatives: the first event the change has is used
    (`["review_approved", "pr_merged"]` = the approval, or the merge when nobody approved).
    """

    start: tuple[str, ...]
    end: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """One step of the value stream: a wait span, a process span, or both."""

    name: str
    wait: Span | None = None
    process: Span | None = None


def parse_event(text: str) -> tuple[str, str | None]:
    """Split `deploy_started:staging` into ("deploy_started", "staging"), checking the vocabulary."""
    match = _EVENT.match(text)
    if not match or match.group(1) not in EVENTS:
        raise StreamError(f"unknown event {text!r} (known: {', '.join(EVENTS)})")
    name, environment = match.group(1), match.group(2)
    if environment and name not in ENVIRONMENT_EVENTS:
        raise StreamError(f"event {name} takes no environment, got {text!r}")
    if name in ENVIRONMENT_EVENTS and not environment:
        raise StreamError(f"event {name} needs an environment, e.g. {name}:production")
    return name, environment


def span(start: str | list[str] | tuple[str, ...], end: str | list[str] | tuple[str, ...]) -> Span:
    """A span from event names (each a name, or alternatives in order of preference)."""
    starts = (start,) if isinstance(start, str) else tuple(start)
    ends = (end,) if isinstance(end, str) else tuple(end)
    for event in starts + ends:
        parse_event(event)
    if not starts or not ends:
        raise StreamError("a span needs a start and an end event")
    return Span(starts, ends)


# The built-in stream. Public names and order; a name never changes meaning once published.
DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("code", process=span("commit_authored", "pr_ready")),
    Stage("review", wait=span("pr_ready", "review_first"),
          process=span("review_first", ["review_approved", "pr_merged"])),
    Stage("merge", wait=span(["review_approved", "pr_merged"], "pr_merged")),
    Stage("build", wait=span("pr_merged", "build_started"), process=span("build_started", "build_finished")),
    Stage("staging", wait=span(["build_finished", "pr_merged"], "deploy_started:staging"),
          process=span("deploy_started:staging", "deploy_finished:staging")),
    Stage("release", wait=span(["deploy_finished:staging", "build_finished", "pr_merged"],
                               "deploy_started:production"),
          process=span("deploy_started:production", "deploy_finished:production")),
)


def validate_stages(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """Check a configured stream: unique names, at least one span per stage."""
    seen: set[str] = set()
    for stage in stages:
        if not re.match(r"^[a-z][a-z0-9_]*$", stage.name):
            raise StreamError(f"stage name {stage.name!r} must be lower_snake_case")
        if stage.name in seen:
            raise StreamError(f"stage {stage.name!r} is defined twice")
        if stage.wait is None and stage.process is None:
            raise StreamError(f"stage {stage.name!r} needs a wait or a process span")
        seen.add(stage.name)
    if not stages:
        raise StreamError("the value stream needs at least one stage")
    return stages
