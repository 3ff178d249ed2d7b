"""PNG charts for the weekly report, drawn offline with matplotlib's Agg backend from the figure records.

The value stream map follows the paper drawing: process boxes left to right (process time, %C/A), the
wait before each step as an inventory triangle, and the timeline ladder underneath (wait on the upper
rungs, process on the lower) with its totals; the bottleneck is drawn in red. Every chart carries alt
text that states its numbers, for readers and mail clients that do not show images.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Polygon

from collector.present.explain import StageItem
from collector.present.format import duration, whole_percent
from collector.present.value_stream import StageFigures, Totals
from collector.present.weekly import TrendWeek, WeeklyFigures
from collector.render.email import Chart

WIDTH_IN = 7.0  # figure width in inches, rendered at 1400 px: sharp when shown DISPLAY_PX wide
DISPLAY_PX = 712  # the report's 760 px column less its padding
DPI = 200
TOTALS_IN = 0.85  # room at the ladder's end for its totals
INK, MUTED, LINE = "#1f2933", "#5f6b7a", "#9aa5b1"
BOX_FILL, BOX_EDGE = "#eef3f8", "#4e79a7"
NECK_FILL, NECK_EDGE = "#fdecea", "#c62828"
WAIT_FILL = "#f28e2b"
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#ff9da7")


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes (no timestamp metadata, so equal figures give equal files)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _na_percent(share: float | None) -> str:
    """A 0..1 share as a whole percentage; n/a when unknown."""
    return whole_percent(share, "n/a")


def _box_width(count: int, lead_in: float) -> float:
    """Inches per box (and per wait gap), leaving room for the lead-in and the ladder's totals."""
    return min((WIDTH_IN - 0.2 - TOTALS_IN - lead_in) / max(2 * count - 1, 1), 0.85)


def _svg(fig: Figure) -> str:
    """The figure as SVG text (no date metadata, so equal figures give equal text)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def value_stream_png(stages: Sequence[StageFigures], totals: Totals, label: str) -> bytes:
    """The value stream map as PNG (a week's or any period's ValueStream fields)."""
    return _png(value_stream_figure(stages, totals, label))


def value_stream_svg(stages: Sequence[StageFigures], totals: Totals, label: str) -> str:
    """The same value stream map as SVG text, for a page that scales it."""
    return _svg(value_stream_figure(stages, totals, label))


def value_stream_figure(stages: Sequence[StageFigures], totals: Totals, label: str) -> Figure:
    """Draw a value stream map: boxes, wait triangles, the timeline ladder and its totals."""
    height = 3.4
    fig = Figure(figsize=(WIDTH_IN, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH_IN)
    ax.set_ylim(0, height)
    ax.axis("off")
    first_waits = bool(stages and (stages[0].wait_median_s or stages[0].wait_share))
    lead_in = 0.0 if first_waits else 0.2
    box = _box_width(len(stages), lead_in)
    # narrower boxes (six or more stages) get smaller type, so names like "staging" stay inside their box
    scale = min(1.0, box / 0.66)
    counted = totals.changes
    ax.text(0.1, height - 0.2, f"Value stream map · {label} · medians over {counted} changes",
            fontsize=8, color=MUTED, va="center")
    ax.text(WIDTH_IN - 0.1, height - 0.2, "■ bottleneck", fontsize=8, color=NECK_EDGE, ha="right",
            va="center", fontweight="bold")
    box_low, box_high = 1.75, 2.95
    upper, lower = 1.3, 0.85
    x = 0.1
    ladder_x = [x]
    ladder_y = [upper]
    for index, stage in enumerate(stages):
        gap = lead_in if index == 0 and not first_waits else box
        neck = stage.is_bottleneck
        _wait_marker(ax, stage, x, gap, neck)
        if stage.wait_median_s:
            ax.text(x + gap / 2, upper + 0.08, duration(stage.wait_median_s), fontsize=7.5, ha="center",
                    va="bottom", color=NECK_EDGE if neck else INK)
        left = x + gap
        if neck:
            ax.plot([x, left], [upper, upper], color=NECK_EDGE, linewidth=4, solid_capstyle="butt", zorder=3)
        ax.add_patch(FancyBboxPatch((left, box_low), box, box_high - box_low,
                                    boxstyle="round,pad=0,rounding_size=0.05",
                                    facecolor=NECK_FILL if neck else BOX_FILL,
                                    edgecolor=NECK_EDGE if neck else BOX_EDGE,
                                    linewidth=2.2 if neck else 1.2))
        mid = left + box / 2
        ax.text(mid, box_high - 0.2, stage.stage, fontsize=9 * scale, fontweight="bold", ha="center", va="center",
                color=NECK_EDGE if neck else INK)
        ax.plot([left + 0.06, left + box - 0.06], [box_high - 0.38] * 2, color=LINE, linewidth=0.8)
        ax.text(mid, box_high - 0.6, f"PT {duration(stage.process_median_s)}", fontsize=7.5 * scale, ha="center",
                va="center", color=INK)
        ax.text(mid, box_high - 0.84, f"%C/A {whole_percent(stage.pca)}", fontsize=7.5 * scale, ha="center",
                va="center", color=INK)
        ax.text(mid, box_high - 1.06, f"n {stage.items}", fontsize=7, ha="center", va="center", color=MUTED)
        ax.text(mid, lower - 0.08, duration(stage.process_median_s), fontsize=7.5, ha="center", va="top",
                color=INK)
        ladder_x += [left, left, left + box, left + box]
        ladder_y += [upper, lower, lower, upper]
        x = left + box
    ax.plot(ladder_x, ladder_y, color=INK, linewidth=1.2, zorder=2)
    wait_sum = sum(s.wait_median_s or 0.0 for s in stages)
    process_sum = sum(s.process_median_s or 0.0 for s in stages)
    ax.plot([x, x + 0.12], [upper, upper], color=INK, linewidth=1.2)
    ax.text(x + 0.18, upper, f"Σ wait\n{duration(wait_sum)}", fontsize=8, va="center", color=INK,
            fontweight="bold", linespacing=1.3)
    ax.text(x + 0.18, lower, f"Σ process\n{duration(process_sum)}", fontsize=8, va="center", color=INK,
            fontweight="bold", linespacing=1.3)
    footer = (f"median lead time {duration(totals.lead_time_median_s)}   ·   flow efficiency "
              f"{_na_percent(totals.flow_efficiency)}   ·   rolled %C/A {_na_percent(totals.rolled_pca)}")
    ax.text(WIDTH_IN / 2, 0.28, footer, fontsize=9, ha="center", va="center", color=INK, fontweight="bold")
    return fig


def _wait_marker(ax: Axes, stage: StageFigures, x: float, gap: float, neck: bool) -> None:
    """The inventory triangle before a box, sized by the stage's share of all wait, with its labels."""
    if not stage.wait_median_s and not stage.wait_share:
        return
    mid = x + gap / 2
    scale = min(1.0, gap / 0.66)  # narrow gaps (many stages) get smaller labels
    colour = NECK_EDGE if neck else WAIT_FILL
    size = 0.16 + 0.24 * math.sqrt(stage.wait_share or 0.0)
    base = 2.12
    ax.add_patch(Polygon([(mid - size * 0.6, base), (mid + size * 0.6, base), (mid, base + size)],
                         closed=True, facecolor=colour, edgecolor=colour))
    ax.text(mid, 2.82, duration(stage.wait_median_s), fontsize=8 * scale, ha="center", va="center", color=colour,
            fontweight="bold")
    ax.text(mid, 2.64, f"p85 {duration(stage.wait_p85_s)}", fontsize=6.5 * scale, ha="center", va="center",
            color=MUTED)
    if stage.wait_share is not None:
        ax.text(mid, 1.98, f"{stage.wait_share * 100:.0f}% of wait", fontsize=6.5 * scale, ha="center", va="center",
                color=colour, fontweight="bold" if neck else "normal")
    ax.annotate("", xy=(x + gap - 0.02, 1.82), xytext=(x + 0.02, 1.82),
                arrowprops={"arrowstyle": "-|>", "color": LINE, "linewidth": 1})


def value_stream_alt(stages: Sequence[StageFigures], totals: Totals, label: str) -> str:
    """Alt text that states the map's numbers in reading order."""
    parts = []
    for s in stages:
        wait = f"waits {duration(s.wait_median_s)} ({_na_percent(s.wait_share)} of all wait), then " \
            if s.wait_median_s else ""
        flag = " - the bottleneck" if s.is_bottleneck else ""
        parts.append(f"{s.stage}: {wait}process {duration(s.process_median_s)}, "
                     f"%C/A {whole_percent(s.pca)}{flag}")
    return (f"Value stream map for {label} (medians): " + "; ".join(parts) +
            f". Median lead time {duration(totals.lead_time_median_s)}, flow efficiency "
            f"{_na_percent(totals.flow_efficiency)}.")


def trend_png(report: WeeklyFigures) -> bytes:
    """The report's lead-time trend as PNG, its own week in bold."""
    return _png(trend_figure(report.trend, report.stage_order, report.week))


def trend_svg(weeks: Sequence[TrendWeek], stage_order: Sequence[str], highlight: dt.date | None = None) -> str:
    """The same lead-time trend as SVG, for the Trends page."""
    return _svg(trend_figure(weeks, stage_order, highlight))


def trend_figure(weeks: Sequence[TrendWeek], stage_order: Sequence[str], highlight: dt.date | None) -> Figure:
    """Stacked weekly bars: average time per stage of the week's deployed changes; the median lead time."""
    order = list(stage_order) + sorted({s for w in weeks for s in w.stage_avg_s} - set(stage_order))
    stages = [s for s in order if any(s in w.stage_avg_s for w in weeks)]
    days = max((sum(w.stage_avg_s.values()) for w in weeks), default=0.0)
    days = max(days, max((w.lead_time_median_s or 0.0 for w in weeks), default=0.0))
    unit, unit_name = (86400.0, "days") if days >= 2 * 86400 else (3600.0, "hours")
    fig = Figure(figsize=(WIDTH_IN, 2.9))
    ax = fig.add_axes((0.08, 0.16, 0.9, 0.64))
    positions = list(range(len(weeks)))
    bottoms = [0.0] * len(weeks)
    for stage in stages:
        heights = [w.stage_avg_s.get(stage, 0.0) / unit for w in weeks]
        colour = PALETTE[order.index(stage) % len(PALETTE)]
        shades = [to_rgba(colour, 1.0 if highlight in (None, w.week) else 0.6) for w in weeks]
        ax.bar(positions, heights, bottom=bottoms, width=0.7, color=shades, label=stage, zorder=2)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    medians = [w.lead_time_median_s / unit if w.lead_time_median_s is not None else math.nan for w in weeks]
    ax.plot(positions, medians, color=INK, marker="o", markersize=3.5, linewidth=1.4,
            label="median lead time", zorder=5)
    ax.set_xticks(positions, [w.label.split("-")[1] for w in weeks], fontsize=7.5)
    for tick, week in zip(ax.get_xticklabels(), weeks, strict=True):
        if week.week == highlight:
            tick.set_fontweight("bold")
    ax.tick_params(axis="y", labelsize=7.5)
    ax.set_ylabel(unit_name, fontsize=8, color=MUTED)
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.8, zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=len(stages) + 1, fontsize=7.5, frameon=False,
              handlelength=1.2, columnspacing=1.2)
    fig.text(0.08, 0.96, f"Lead time per week, last {len(weeks)} weeks: average per stage (stacked) "
             "and median (line)", fontsize=8, color=MUTED)
    return fig


def trend_alt(report: WeeklyFigures) -> str:
    """Alt text for the trend chart: the median lead time per week, and this week's largest stage."""
    points = ", ".join(f"{w.label.split('-')[1]} {duration(w.lead_time_median_s)}" for w in report.trend
                       if w.lead_time_median_s is not None)
    this = next((w for w in report.trend if w.week == report.week), None)
    largest = ""
    if this is not None and this.stage_avg_s:
        stage, seconds = max(this.stage_avg_s.items(), key=lambda item: item[1])
        largest = (f" In {report.label} the largest part of the average lead time was {stage}"
                   f" ({duration(seconds)}).")
    return (f"Median lead time per week: {points or 'no deployed changes'}.{largest}")


def report_charts(report: WeeklyFigures) -> list[Chart]:
    """The report's charts: the value stream map (when the week has changes) and the weekly trend."""
    charts = []
    if report.stages:
        charts.append(Chart("value-stream", f"value-stream.{report.label}@vsm",
                            f"value-stream-{report.label}.png",
                            value_stream_png(report.stages, report.totals, report.label),
                            value_stream_alt(report.stages, report.totals, report.label),
                            "PT: process time; %C/A: share passed on without rework; triangles: wait before "
                            "the step (median, p85, share of all wait). The ladder's totals add the stage "
                            "medians, which do not add up to the median lead time.", DISPLAY_PX))
    if any(w.deployed for w in report.trend):
        charts.append(Chart("lead-time-trend", f"lead-time-trend.{report.label}@vsm",
                            f"lead-time-trend-{report.label}.png", trend_png(report), trend_alt(report),
                            "Bars: average time per stage of the week's deployed changes (their height is "
                            "the average lead time). Line: median lead time.", DISPLAY_PX))
    return charts


def stage_histogram_svg(items: Sequence[StageItem], stage: str, label: str) -> str:
    """Two histograms of one stage's changes, wait and process in hours, as SVG for the Stage page."""
    fig = Figure(figsize=(WIDTH_IN, 2.4))
    for i, (name, values) in enumerate((("wait", [s.wait_s / 3600 for s in items]),
                                        ("process", [s.process_s / 3600 for s in items]))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.hist(values or [0.0], bins=20, color=LINE if name == "wait" else INK, alpha=0.9 if values else 0)
        ax.set_title(f"{stage}: {name} ({label}, n={len(items)})", fontsize=8, color=INK)
        ax.set_xlabel("hours", fontsize=7, color=MUTED)
        ax.set_ylabel("changes", fontsize=7, color=MUTED)
        ax.tick_params(labelsize=7, colors=MUTED)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.tight_layout()
    return _svg(fig)
