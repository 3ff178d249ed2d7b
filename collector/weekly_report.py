"""The weekly flow report job: the week's figures drawn into an email, kept on disk as HTML, and mailed.

It wires the layers together (collector.present.weekly computes, collector.render.email draws and
sends), so the CLI, the scheduler and the demo make and send the report the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from pathlib import Path

import duckdb

from collector.config import ReportConfig
from collector.present.weekly import WeeklyFigures, weekly_figures
from collector.render.email import Report, mail
from collector.render.email.html import render_html
from collector.render.email.text import render_text


def build_report(con: duckdb.DuckDBPyConnection, week: dt.date, config: ReportConfig | None = None, *,
                 now: dt.datetime | None = None, charts: bool = True) -> Report:
    """The report for the ISO week starting on `week` (a Monday), with its charts unless charts=False."""
    figures = weekly_figures(con, week, config, now=now)
    return with_charts(figures) if charts else Report(**_fields_of(figures))


def with_charts(figures: WeeklyFigures) -> Report:
    """The figures with the value stream map and the trend drawn as PNG (matplotlib is loaded only here)."""
    from collector.render.email.charts import report_charts

    return Report(**_fields_of(figures), charts=tuple(report_charts(figures)))


def _fields_of(figures: WeeklyFigures) -> dict[str, object]:
    """The figures' fields by name, unconverted, to build a Report from them."""
    return {f.name: getattr(figures, f.name) for f in fields(WeeklyFigures)}


def report_path(report: Report, target: Path | str) -> Path:
    """Where write_report writes: target itself when it names an .html file, else target/<week>.html."""
    path = Path(target)
    if path.suffix.lower() in (".html", ".htm") and not path.is_dir():
        return path
    return path / f"{report.label}.html"


def write_report(report: Report, target: Path | str) -> Path:
    """Write the self-contained HTML copy (images as data: URIs) and return its path."""
    path = report_path(report, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, inline=True), encoding="utf-8")
    return path


def send_report(report: Report, config: ReportConfig, *, attempts: int = 4, backoff_s: float = 2.0) -> None:
    """Mail the report (HTML with inline images and a plain-text alternative) to the configured recipients."""
    message = mail.compose(
        subject=config.subject.replace("{week}", report.label), sender=config.sender, to=config.to,
        cc=config.cc, text=render_text(report), html=render_html(report, inline=False),
        images=[mail.InlineImage(c.cid, c.png, c.filename) for c in report.charts],
    )
    mail.send(message, config.smtp, attempts=attempts, backoff_s=backoff_s)
