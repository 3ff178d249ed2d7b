"""Plain-text rendering for the terminal: durations, aligned tables, the per-stage summary."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from models.mapper import StageSummary, Totals


class Progress:
    """A one-line progress display for long syncs, on an interactive terminal only.

    Off a TTY (cron, systemd, pipes) it stays silent and the log lines tell the story instead.
    """

    def __init__(self, label: str, stream: io.TextIOBase | None = None, min_interval_s: float = 0.2) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._shown = False

    def update(self, text: str) -> None:
        """Redraw the line (at most every min_interval_s)."""
        now = time.monotonic()
        if not self.enabled or now - self._last < self.min_interval_s:
            return
        self._last = now
        self.stream.write(f"\r\x1b[2K{self.label} {text}")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Clear the line so log output continues cleanly."""
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False


def duration(seconds: float | None) -> str:
    """A short human duration: 2d 4h, 5h 12m, 14m, 40s; '-' when unknown."""
    if seconds is None:
        return "-"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def percent(share: float | None) -> str:
    """A 0..1 share as a percentage."""
    return "-" if share is None else f"{share * 100:.1f}%"


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


def stage_report(stages: Sequence[StageSummary], totals: Totals) -> str:
    """The per-stage table, the totals, the bottleneck and the value stream map that `vsm map` prints."""
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


def value_stream_map(stages: Sequence[StageSummary], totals: Totals, bottleneck: str | None = None) -> str:
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


def dora_table(rows: Sequence[dict[str, Any]]) -> str:
    """The DORA four keys per repo (and over all repos) with their 2023 State of DevOps bands."""
    if not rows:
        return "DORA four keys: no production deployments yet"

    def cell(value: str, band: str | None) -> str:
        return f"{value} ({band})" if band else value

    body = [
        (r["repo"] or "all repos",
         cell(f"{r['deploys_per_week']:.1f}/week" if r["deploys_per_week"] is not None else "-", r["deploy_band"]),
         cell(duration(r["lead_time_median_s"]), r["lead_time_band"]),
         cell(percent(r["change_failure_rate"]), r["change_failure_band"]),
         cell(duration(r["recovery_median_s"]), r["recovery_band"]),
         cell(duration(r["restore_median_s"]), r["restore_band"]),
         r["incidents"])
        for r in rows
    ]
    return "DORA four keys (bands: 2023 State of DevOps Report)\n" + table(
        ["repo", "deploy frequency", "lead time p50", "change failure rate", "failed-deploy recovery",
         "time to restore", "incidents"], body)
