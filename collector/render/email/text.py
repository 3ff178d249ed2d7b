"""The weekly report as plain text, the alternative part of the mail for clients that show no HTML.

It prints the same pre-formatted figures as the HTML (html.py), with the same method note.
"""

from __future__ import annotations

import datetime as dt

from collector.present.format import duration, when, whole_percent
from collector.present.weekly import SlowChange, WeeklyFigures
from collector.render.terminal import table

METHOD = (
    "Weeks run Monday 00:00 to Monday 00:00 UTC. A change (merged pull request) belongs to the week it "
    "reached production, or the week it merged while not yet deployed; bot-authored changes are left out. "
    "Lead time runs from the first commit to the production deployment; flow efficiency is process time "
    "over lead time; %C/A is the share of changes a stage passed on without rework. Deployments are "
    "successful production deployments finished in the week (each repo's first one seen holds all earlier "
    "history and is not counted). Tiles compare with the four weeks before (deployments: the average per "
    "week). DORA 2023 bands: deployments per week over the last four weeks 7+ Elite, 1+ High, 1 a month "
    "Medium; lead time at most a day Elite, a week High, 30 days Medium; change failure rate at most 5% "
    "Elite, 10% High, 15% Medium; recovery at most an hour Elite, a day High, a week Medium."
)


def period(report: WeeklyFigures) -> str:
    """The week's dates, e.g. Mon 16 Nov - Sun 22 Nov 2026 (UTC)."""
    last = report.end - dt.timedelta(days=1)
    return f"{report.start:%a %d %b} - {last:%a %d %b %Y} (UTC)"


def waits_text(change: SlowChange, limit: int = 2) -> str:
    """Where a change waited: its longest waits (the first, and others of 5% or more of its lead time)."""
    share = [(stage, seconds, seconds / change.lead_time_s if change.lead_time_s else 0.0)
             for stage, seconds in change.waits]
    kept = [item for index, item in enumerate(share[:limit]) if index == 0 or item[2] >= 0.05]
    parts = [f"{stage} {duration(seconds)} ({part * 100:.0f}%)" for stage, seconds, part in kept]
    return ", ".join(parts) or "no wait recorded"


def render_text(report: WeeklyFigures) -> str:
    """The report as plain text with the same figures, for mail clients that show no HTML."""
    lines = [f"Flow report {report.label}: {period(report)}", f"Repos: {', '.join(report.repos) or 'none'}",
             "", report.headline, report.summary, ""]
    lines += ["HEADLINE (this week vs the four weeks before)",
              table(["figure", "this week", "prior 4 wks", "change", "DORA 2023", "note"],
                    [(t.label, t.text, t.previous_text,
                      f"{t.change_text} ({t.verdict})" if t.verdict else t.change_text, t.band or "", t.note)
                     for t in report.tiles]), ""]
    lines.append("VALUE STREAM PER STAGE (medians)")
    if report.stages:
        lines.append(table(
            ["stage", "changes", "wait p50", "wait p85", "share of wait", "process p50", "process p85",
             "%C/A"],
            [(s.stage + (" (bottleneck)" if s.is_bottleneck else ""), s.items, duration(s.wait_median_s),
              duration(s.wait_p85_s), whole_percent(s.wait_share), duration(s.process_median_s),
              duration(s.process_p85_s), whole_percent(s.pca)) for s in report.stages],
            right=[False] + [True] * 7))
        if report.missing_stages:
            lines.append(f"No data this week for: {', '.join(report.missing_stages)}.")
    else:
        lines.append("No change was merged or deployed this week.")
    lines += ["", "LEAD TIME, WEEK BY WEEK (deployed changes)"]
    trend_rows = []
    for week in report.trend:
        largest = max(week.stage_avg_s.items(), key=lambda item: item[1], default=None)
        trend_rows.append((week.label, week.deployed, duration(week.lead_time_median_s),
                           f"{largest[0]} {duration(largest[1])}" if largest else "-"))
    lines.append(table(["week", "deployed", "median lead time", "largest stage (average)"], trend_rows,
                       right=[False, True, True, False]))
    if report.slowest:
        lines += ["", "SLOWEST CHANGES THIS WEEK"]
        for rank, change in enumerate(report.slowest, start=1):
            lines.append(f"{rank}. {change.change_id} {change.title} ({change.author}): lead time "
                         f"{duration(change.lead_time_s)}")
            lines.append(f"   waited: {waits_text(change)}")
            if change.url:
                lines.append(f"   {change.url}")
    lines += ["", "DATA HEALTH"]
    health = report.health
    if health.ok:
        lines.append("OK: every source synced successfully after the week ended; no errors or gaps.")
    lines += [f"! {problem}" for problem in health.problems]
    if health.sources:
        lines.append(table(["source", "last successful sync", "last run", "failed runs since week start",
                            "longest gap"],
                           [(s.source, when(s.last_success_at),
                             f"{s.last_status or '-'}, {when(s.last_run_at)}", s.failed_runs,
                             duration(s.longest_gap_s)) for s in health.sources]))
    for scope in health.scopes:
        error = f"; error: {scope.error}" if scope.error else ""
        lines.append(f"  {scope.source} {scope.scope}: data last advanced {when(scope.last_advanced_at)}"
                     f"{error}")
    lines += [f"  {note}" for note in health.notes]
    lines += ["", METHOD, f"Generated by vsm at {when(report.generated_at)}."]
    return "\n".join(lines) + "\n"
