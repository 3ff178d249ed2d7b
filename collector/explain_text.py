"""Plain-text rendering of `vsm explain`: a change's timeline and how each stage figure was derived."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from collector.terminal import duration, table
from models.explain import ChangeExplanation, StageItem


def _at(value: dt.datetime | None, zone: ZoneInfo) -> str:
    """A timestamp in the team's time zone for display (stored in UTC)."""
    if value is None:
        return "-"
    return value.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _span(start: str | None, end: str | None) -> str:
    """The events a span ran between, or '-' when the stage has no such span."""
    return f"{start} -> {end}" if start and end else "-"


def render_change(change: ChangeExplanation, timezone: str = "UTC") -> str:
    """Everything behind one change's figures, top to bottom in the order a reader asks."""
    zone = ZoneInfo(timezone)
    lines = [
        f"{change.change_id}  {change.title or ''}".rstrip(),
        (f"author {change.author or '?'}{' (bot)' if change.is_bot else ''}; merged {_at(change.merged_at, zone)}; "
         f"deployed {_at(change.deployed_at, zone)}; lead time {duration(change.lead_time_s)}; "
         f"week of {change.week.isoformat()}"),
    ]
    if change.is_revert:
        lines.append(f"this change reverts {change.reverts_change_id or 'an unidentified change'}")
    if change.reverted_by:
        lines.append(f"reverted later by {', '.join(change.reverted_by)} (counted as rework)")
    lines += ["", "Timeline"]
    lines.append(table(["at", "event", "source", "detail"],
                       [(_at(e.at, zone), e.event + (f":{e.environment}" if e.environment else ""), e.source,
                         e.detail) for e in change.events]))
    if change.reviews:
        lines += ["", "Reviews"]
        lines.append(table(["submitted", "reviewer", "state", "counted as", "why"],
                           [(_at(r.submitted_at, zone), r.reviewer or "?", r.state or "", ", ".join(r.roles) or "-",
                             r.reason) for r in change.reviews]))
    if change.deliveries:
        lines += ["", "Delivery"]
        for d in change.deliveries:
            lines.append(f"- {d.target}: {d.item_id or 'none'} ({d.attribution or 'not delivered'}), "
                         f"{_at(d.started_at, zone)} -> {_at(d.finished_at, zone)}"
                         f"{f', {d.failed_attempts} failed attempt(s) before' if d.failed_attempts else ''}"
                         f"{', rolled back' if d.rolled_back else ''}")
            lines.append(f"  why: {d.reason}")
    lines += ["", "Stages"]
    lines.append(table(
        ["stage", "wait", "wait (work)", "process", "process (work)", "wait span", "process span"],
        [(s.stage, duration(s.wait_s), duration(s.wait_work_s), duration(s.process_s), duration(s.process_work_s),
          _span(s.wait_from_event, s.wait_to_event), _span(s.process_from_event, s.process_to_event))
         for s in change.stages],
        right=[False, True, True, True, True, False, False],
    ))
    for s in change.stages:
        lines += [f"  {s.stage}: {note}" for note in s.why]
    if change.skipped_stages:
        lines.append(f"  skipped (no events for this change): {', '.join(change.skipped_stages)}")
    return "\n".join(lines)


def render_stage_items(stage: str, week: dt.date, items: Sequence[StageItem]) -> str:
    """The changes behind one stage's figure for one ISO week."""
    if not items:
        return f"no changes in stage {stage} for the week of {week.isoformat()}"
    rows = [(i.change_id, (i.title or "")[:48], duration(i.wait_s), duration(i.wait_work_s), duration(i.process_s),
             duration(i.process_work_s), i.rework if i.rework else "") for i in items]
    header = f"stage {stage}, week of {week.isoformat()} ({week.isocalendar().year}-W{week.isocalendar().week:02d}): "
    header += f"{len(items)} change{'s' if len(items) != 1 else ''}"
    return header + "\n" + table(["change", "title", "wait", "wait (work)", "process", "process (work)", "rework"],
                                 rows, right=[False, False, True, True, True, True, True])
