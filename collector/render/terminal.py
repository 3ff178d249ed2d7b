"""Plain text for the terminal: aligned tables, query results, the value stream map, the DORA four keys,
`vsm status` and `vsm explain`; it only draws figure records (collector.present), it queries nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from collector.present.explain import ChangeExplanation, StageWeek
from collector.present.format import duration, local_time, percent
from collector.present.health import SourceStatus
from collector.present.value_stream import DoraRow, StageFigures, Totals, ValueStream


def _cell(value: Any) -> str:
    """Text for one value in a table."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    """An aligned plain-text table."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    align = right or [False] * len(headers)

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if a else v.ljust(w) for v, w, a in zip(values, widths, align, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def render_rows(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Query results as an aligned table, CSV or JSON lines."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([[_cell(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(headers, row, strict=True)), default=_cell) for row in rows)
    footer = f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return table(headers, rows) + footer


def stage_report(stream: ValueStream) -> str:
    """The per-stage table, the totals, the bottleneck and the value stream map that `vsm map` prints."""
    stages, totals = stream.stages, stream.totals
    rows = [
        (s.stage, s.items, duration(s.wait_median_s), duration(s.wait_p85_s),
         duration(s.process_median_s), duration(s.process_p85_s), duration(s.wait_work_median_s),
         percent(s.pca))
        for s in stages
    ]
    text = table(
        ["stage", "items", "wait p50", "wait p85", "process p50", "process p85", "wait p50 (work)", "%C/A"],
        rows,
        right=[False, True, True, True, True, True, True, True],
    )
    summary = (
        f"{totals.deployed} of {totals.changes} merged changes reached production; "
        f"lead time p50 {duration(totals.lead_time_median_s)}, p85 {duration(totals.lead_time_p85_s)}; "
        f"flow efficiency {percent(totals.flow_efficiency)}; rolled %C/A {percent(totals.rolled_pca)}"
    )
    if totals.bottleneck:
        summary += (f"\nBottleneck: {totals.bottleneck} holds {percent(totals.bottleneck_share)} of all waiting; "
                    f"halving its wait would make the median lead time {duration(totals.lead_time_median_if_halved_s)}"
                    f" instead of {duration(totals.lead_time_median_s)}.")
    return f"{text}\n\n{summary}\n\n{value_stream_map(stages, totals, totals.bottleneck)}"


BOX_WIDTH = 13  # inner width of a process box
GAP_WIDTH = 9  # room between boxes for the wait marker


def value_stream_map(stages: Sequence[StageFigures], totals: Totals, bottleneck: str | None = None) -> str:
    """Draw the classic value stream map: process boxes, the waits between them, the timeline ladder.

    Figures are medians per stage. The ladder underneath has wait on its upper rungs and process on its
    lower rungs; the totals at its end are the sums of the stage medians, shown beside the measured
    median lead time (medians do not add up exactly, so both are given).
    """
    if not stages:
        return "(no changes mapped yet)"
    gap, inner = " " * GAP_WIDTH, BOX_WIDTH

    def box_line(text: str) -> str:
        return "│" + text[:inner].center(inner) + "│"

    names = [s.stage + (" ◆" if s.stage == bottleneck else "") for s in stages]
    pcas = [getattr(s, "pca", None) for s in stages]
    waits = [duration(s.wait_median_s) if s.wait_median_s else "" for s in stages]
    rows = {
        "top": gap.join("┌" + "─" * inner + "┐" for _ in stages),
        "name": gap.join(box_line(n) for n in names),
        "pt": gap.join(box_line(f"PT {duration(s.process_median_s)}") for s in stages),
        "ca": gap.join(box_line(f"C/A {percent(p)}" if p is not None else f"n={s.items}")
                       for s, p in zip(stages, pcas, strict=True)),
        "bottom": gap.join("└" + "─" * inner + "┘" for _ in stages),
    }
    # wait markers sit before each box, like the inventory triangles of a paper VSM
    lead_in = [("▲ " + w).center(GAP_WIDTH) if w else " " * GAP_WIDTH for w in waits]
    wait_row = "".join(lead_in[i] + " " * (inner + 2) for i in range(len(stages)))
    box_rows = [" " * GAP_WIDTH + rows[k] for k in ("top", "name", "pt", "ca", "bottom")]

    upper, lower = [], []
    for s in stages:
        wait_cell = f" {duration(s.wait_median_s)} " if s.wait_median_s else ""
        upper.append(f"{wait_cell:─^{GAP_WIDTH}}" + "┐" + " " * inner + "┌")
        lower.append(" " * GAP_WIDTH + "└" + f"{' ' + duration(s.process_median_s) + ' ':─^{inner}}" + "┘")
    total_wait = sum(s.wait_median_s or 0.0 for s in stages)
    total_process = sum(s.process_median_s or 0.0 for s in stages)
    width = len("".join(lower))
    ladder_top = "wait " + "".join(upper)[5:].rstrip("┌").ljust(width - 5) + f"  wait    {duration(total_wait)}"
    ladder_bottom = "proc " + "".join(lower)[5:] + f"  process {duration(total_process)}"
    legend = (f"lead time: median {duration(totals.lead_time_median_s)}, p85 {duration(totals.lead_time_p85_s)}"
              f" | flow efficiency {percent(totals.flow_efficiency)}")
    if bottleneck:
        legend += f" | ◆ bottleneck: {bottleneck}"
    return "\n".join([wait_row.rstrip(), *box_rows, "", ladder_top, ladder_bottom, "", legend])


def dora_table(rows: Sequence[DoraRow]) -> str:
    """The DORA four keys per repo (and over all repos) with their 2023 State of DevOps bands."""
    if not rows:
        return "DORA four keys: no production deployments yet"

    def cell(value: str, band: str | None) -> str:
        return f"{value} ({band})" if band else value

    body = [
        (r.repo or "all repos",
         cell(f"{r.deploys_per_week:.1f}/week" if r.deploys_per_week is not None else "-", r.deploy_band),
         cell(duration(r.lead_time_median_s), r.lead_time_band),
         cell(percent(r.change_failure_rate), r.change_failure_band),
         cell(duration(r.recovery_median_s), r.recovery_band),
         cell(duration(r.restore_median_s), r.restore_band),
         r.incidents)
        for r in rows
    ]
    return "DORA four keys (bands: 2023 State of DevOps Report)\n" + table(
        ["repo", "deploy frequency", "lead time p50", "change failure rate", "failed-deploy recovery",
         "time to restore", "incidents"], body)


def status_table(statuses: Sequence[SourceStatus]) -> str:
    """`vsm status` as text: one row per source, then the rate budgets per token when any are known."""
    rows = [(s.source, s.last_success_at, duration(s.age_s), s.last_status, s.last_items, s.last_requests,
             s.rate_limit_remaining, "STALE" if s.stale else "ok", s.last_error or "") for s in statuses]
    text = table(["source", "last success", "age", "last run", "items", "requests", "rate left", "fresh",
                  "last error"], rows)
    budgets = [(b.source, b.token_env, b.resource, b.remaining, b.limit, b.reset_at)
               for s in statuses for b in s.rate_budget]
    if budgets:
        text += "\n\n" + table(["source", "token (variable)", "resource", "remaining", "limit", "resets at"],
                                budgets)
    return text


def _span(start: str | None, end: str | None) -> str:
    """The events a span ran between, or '-' when the stage has no such span."""
    return f"{start} -> {end}" if start and end else "-"


def render_change(change: ChangeExplanation, timezone: str = "UTC") -> str:
    """Everything behind one change's figures, top to bottom in the order a reader asks."""
    zone = ZoneInfo(timezone)
    lines = [
        f"{change.change_id}  {change.title or ''}".rstrip(),
        (f"author {change.author or '?'}{' (bot)' if change.is_bot else ''}; merged {local_time(change.merged_at, zone)}; "
         f"deployed {local_time(change.deployed_at, zone)}; lead time {duration(change.lead_time_s)}; "
         f"week of {change.week.isoformat()}"),
    ]
    if change.is_revert:
        lines.append(f"this change reverts {change.reverts_change_id or 'an unidentified change'}")
    if change.reverted_by:
        lines.append(f"reverted later by {', '.join(change.reverted_by)} (counted as rework)")
    lines += ["", "Timeline"]
    lines.append(table(["at", "event", "source", "detail"],
                       [(local_time(e.at, zone), e.event + (f":{e.environment}" if e.environment else ""), e.source,
                         e.detail) for e in change.events]))
    if change.reviews:
        lines += ["", "Reviews"]
        lines.append(table(["submitted", "reviewer", "state", "counted as", "why"],
                           [(local_time(r.submitted_at, zone), r.reviewer or "?", r.state or "", ", ".join(r.roles) or "-",
                             r.reason) for r in change.reviews]))
    if change.deliveries:
        lines += ["", "Delivery"]
        for d in change.deliveries:
            lines.append(f"- {d.target}: {d.item_id or 'none'} ({d.attribution or 'not delivered'}), "
                         f"{local_time(d.started_at, zone)} -> {local_time(d.finished_at, zone)}"
                         f"{f', {d.failed_attempts} failed attempt(s) before' if d.failed_attempts else ''}"
                         f"{', rolled back' if d.rolled_back else ''}")
            lines.append(f"  why: {d.reason}")
            if d.url:
                lines.append(f"  see: {d.url}")
            lines += [f"  incident {i.incident_id} ({i.link_method}), opened {local_time(i.created_at, zone)}"
                      f"{f': {i.title}' if i.title else ''}{f' <{i.url}>' if i.url else ''}" for i in d.incidents]
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


def render_stage_week(figure: StageWeek) -> str:
    """The changes behind one stage's figure for one ISO week."""
    stage, week, items = figure.stage, figure.week, figure.items
    if not items:
        return f"no changes in stage {stage} for the week of {week.isoformat()}"
    rows = [(i.change_id, (i.title or "")[:48], duration(i.wait_s), duration(i.wait_work_s), duration(i.process_s),
             duration(i.process_work_s), i.rework if i.rework else "") for i in items]
    header = f"stage {stage}, week of {week.isoformat()} ({figure.label}): "
    header += f"{len(items)} change{'s' if len(items) != 1 else ''}"
    return header + "\n" + table(["change", "title", "wait", "wait (work)", "process", "process (work)", "rework"],
                                 rows, right=[False, False, True, True, True, True, True])
