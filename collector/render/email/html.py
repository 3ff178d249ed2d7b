"""The weekly report as email-safe HTML: tables, inline styles, images by Content-ID or data: URI.

It prints the same pre-formatted figures as the plain-text alternative (text.py), so both carry the
same numbers.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from collector.present.format import duration, when, whole_percent
from collector.present.weekly import Tile
from collector.render.email import Chart, Report
from collector.render.email.text import METHOD, period, waits_text

FONT = "font-family:Arial,Helvetica,sans-serif;"
INK, MUTED, RULE = "#1f2933", "#5f6b7a", "#e4e7eb"
VERDICT_COLOURS = {"better": "#2e7d32", "worse": "#c62828", "steady": "#5f6b7a"}
BAND_COLOURS = {"Elite": ("#1b5e20", "#ffffff"), "High": ("#43a047", "#ffffff"),
                "Medium": ("#f9a825", "#1f2933"), "Low": ("#c62828", "#ffffff")}
CONTENT_PX = 760


def _arrow(tile: Tile) -> str:
    """An arrow for the direction of the change (up or down), empty when there is none."""
    text = tile.change_text
    if text.startswith("+") and text not in ("+0%", "+0.0 pts"):
        return "▲ "
    if text.startswith("-") and text not in ("-0%", "-0.0 pts"):
        return "▼ "
    return ""


def _image_src(chart: Chart, inline: bool) -> str:
    """The img src: a data: URI for the file on disk, the Content-ID for mail."""
    if inline:
        return "data:image/png;base64," + base64.b64encode(chart.png).decode("ascii")
    return f"cid:{chart.cid}"


def _row(content: str, padding: str = "16px 24px") -> str:
    """One full-width row of the outer layout table."""
    return f'<tr><td style="padding:{padding};{FONT}color:{INK};">{content}</td></tr>\n'


def _heading(text: str) -> str:
    """A section heading."""
    return (f'<h2 style="margin:0 0 8px 0;{FONT}font-size:17px;line-height:22px;color:{INK};">'
            f"{escape(text)}</h2>")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool],
           highlight: Sequence[bool] | None = None) -> str:
    """A data table with inline styles; cells are already escaped HTML."""
    head = "".join(
        f'<th align="{"right" if r else "left"}" style="padding:6px 8px;border-bottom:2px solid {RULE};'
        f'{FONT}font-size:12px;color:{MUTED};font-weight:bold;">{escape(h)}</th>'
        for h, r in zip(headers, right, strict=True))
    body = []
    for index, row in enumerate(rows):
        shade = "background:#fdecea;" if highlight and highlight[index] else ""
        cells = "".join(
            f'<td align="{"right" if r else "left"}" valign="top" style="padding:6px 8px;'
            f'border-bottom:1px solid {RULE};{FONT}font-size:13px;color:{INK};{shade}">{cell}</td>'
            for cell, r in zip(row, right, strict=True))
        body.append(f"<tr>{cells}</tr>")
    return (f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
            f'style="border-collapse:collapse;"><tr>{head}</tr>{"".join(body)}</table>')


def _tile_html(tile: Tile) -> str:
    """One headline tile cell."""
    colour = VERDICT_COLOURS.get(tile.verdict or "", MUTED)
    change = (f'<div style="{FONT}font-size:12px;color:{colour};font-weight:bold;">'
              f'{_arrow(tile)}{escape(tile.change_text)}</div>') if tile.change_text else ""
    band = ""
    if tile.band:
        fill, ink = BAND_COLOURS.get(tile.band, (MUTED, "#ffffff"))
        band = (f'<div style="margin-top:6px;"><span style="display:inline-block;padding:2px 8px;'
                f'border-radius:10px;background:{fill};color:{ink};{FONT}font-size:11px;font-weight:bold;">'
                f'DORA {escape(tile.band)}</span></div>')
    note = (f'<div style="margin-top:4px;{FONT}font-size:11px;color:{MUTED};">{escape(tile.note)}</div>'
            if tile.note else "")
    return (
        f'<td valign="top" width="20%" style="padding:10px;border:1px solid {RULE};background:#fafbfc;">'
        f'<div style="{FONT}font-size:11px;color:{MUTED};text-transform:uppercase;letter-spacing:0.5px;">'
        f'{escape(tile.label)}</div>'
        f'<div style="{FONT}font-size:24px;line-height:30px;font-weight:bold;color:{INK};">'
        f'{escape(tile.text)}</div>'
        f'<div style="{FONT}font-size:11px;color:{MUTED};">prior 4 wks: {escape(tile.previous_text)}</div>'
        f"{change}{band}{note}</td>"
    )


def _figure(chart: Chart, inline: bool) -> str:
    """An image with its alt text and caption."""
    return (f'<img src="{_image_src(chart, inline)}" alt="{escape(chart.alt, quote=True)}" '
            f'width="{chart.width}" style="display:block;width:100%;max-width:{chart.width}px;height:auto;'
            'border:0;">'
            f'<div style="margin-top:4px;{FONT}font-size:11px;color:{MUTED};">{escape(chart.caption)}</div>')


def _stages_html(report: Report) -> str:
    """The per-stage table."""
    rows = [[escape(s.stage) + (" ◆ bottleneck" if s.is_bottleneck else ""), str(s.items),
             duration(s.wait_median_s), duration(s.wait_p85_s), whole_percent(s.wait_share),
             duration(s.process_median_s), duration(s.process_p85_s), whole_percent(s.pca)] for s in report.stages]
    html = _table(["stage", "changes", "wait p50", "wait p85", "share of wait", "process p50", "process p85",
                   "%C/A"], rows, [False] + [True] * 7, [s.is_bottleneck for s in report.stages])
    if report.missing_stages:
        html += (f'<p style="margin:6px 0 0 0;{FONT}font-size:12px;color:{MUTED};">No data this week for: '
                 f'{escape(", ".join(report.missing_stages))}.</p>')
    return html


def _slowest_html(report: Report) -> str:
    """The slowest changes with links to their pull requests."""
    rows = []
    for change in report.slowest:
        name = escape(change.change_id)
        link = (f'<a href="{escape(change.url, quote=True)}" style="color:#1a5fb4;">{name}</a>'
                if change.url else name)
        rows.append([f"{link}<br><span style=\"color:{MUTED};font-size:12px;\">{escape(change.title)}</span>",
                     escape(change.author), duration(change.lead_time_s), escape(waits_text(change))])
    return _table(["change", "author", "lead time", "where it waited (share of lead time)"], rows,
                  [False, False, True, False])


def _health_html(report: Report) -> str:
    """Data health: the verdict, then sources and scopes."""
    health = report.health
    if health.ok:
        verdict = (f'<p style="margin:0 0 8px 0;{FONT}font-size:13px;color:#2e7d32;">✓ Every source synced '
                   "successfully after the week ended; no errors or gaps.</p>")
    else:
        items = "".join(f'<li style="margin:2px 0;">{escape(p)}</li>' for p in health.problems)
        verdict = (f'<ul style="margin:0 0 8px 0;padding-left:18px;{FONT}font-size:13px;color:#c62828;">'
                   f"{items}</ul>")
    sources = _table(["source", "last successful sync", "last run", "failed runs since week start",
                      "longest gap"],
                     [[escape(s.source), when(s.last_success_at), escape(f"{s.last_status or '-'}, "
                                                                           f"{when(s.last_run_at)}"),
                       str(s.failed_runs), duration(s.longest_gap_s)] for s in health.sources],
                     [False, False, False, True, True])
    scopes = ""
    if health.scopes:
        scopes = "<div style=\"height:10px;\"></div>" + _table(
            ["scope", "data last advanced", "error in the last run"],
            [[escape(f"{s.source} {s.scope}"), when(s.last_advanced_at), escape(s.error or "-")]
             for s in health.scopes], [False, False, False])
    notes = "".join(f'<p style="margin:6px 0 0 0;{FONT}font-size:12px;color:{MUTED};">{escape(n)}</p>'
                    for n in health.notes)
    return verdict + sources + scopes + notes


def render_html(report: Report, inline: bool = False) -> str:
    """The report as one email-safe HTML document; inline=True embeds the images as data: URIs."""
    charts = {c.key: c for c in report.charts}
    tiles = "".join(_tile_html(t) for t in report.tiles)
    parts = [
        _row(f'<div style="{FONT}font-size:12px;color:{MUTED};">{escape(period(report))} · '
             f'{escape(", ".join(report.repos) or "no repos")}</div>'
             f'<h1 style="margin:4px 0 0 0;{FONT}font-size:22px;line-height:28px;color:{INK};">'
             f"Flow report {escape(report.label)}</h1>", "20px 24px 4px 24px"),
        _row(f'<div style="padding:12px 14px;background:#fff4e5;border-left:4px solid #c62828;{FONT}'
             f'font-size:17px;line-height:24px;font-weight:bold;color:{INK};">{escape(report.headline)}</div>'
             f'<p style="margin:8px 0 0 0;{FONT}font-size:14px;color:{INK};">{escape(report.summary)}</p>'
             + ("" if report.health.ok else
                f'<p style="margin:6px 0 0 0;{FONT}font-size:13px;color:#c62828;">⚠ Data health: '
                f"{len(report.health.problems)} issue(s) limit these figures; see the end of this report."
                "</p>"),
             "8px 24px"),
        _row('<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
             f'style="border-collapse:separate;border-spacing:4px;"><tr>{tiles}</tr></table>', "4px 20px"),
    ]
    if "value-stream" in charts:
        parts.append(_row(_heading("Where the time went") + _figure(charts["value-stream"], inline)))
    parts.append(_row(_heading("Value stream per stage (medians)") + (
        _stages_html(report) if report.stages else
        f'<p style="{FONT}font-size:13px;">No change was merged or deployed this week.</p>')))
    if "lead-time-trend" in charts:
        parts.append(_row(_heading("Lead time, week by week") + _figure(charts["lead-time-trend"], inline)))
    if report.slowest:
        parts.append(_row(_heading("Slowest changes this week") + _slowest_html(report)))
    parts.append(_row(_heading("Data health") + _health_html(report)))
    parts.append(_row(f'<p style="margin:0;{FONT}font-size:11px;line-height:16px;color:{MUTED};">'
                      f"{escape(METHOD)}<br>Generated by vsm at {escape(when(report.generated_at))}.</p>",
                      "16px 24px 24px 24px"))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.subject)}</title></head>\n"
        f'<body style="margin:0;padding:0;background:#f3f5f7;">\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'style="background:#f3f5f7;"><tr><td align="center" style="padding:16px 8px;">\n'
        f'<table role="presentation" width="{CONTENT_PX}" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;max-width:{CONTENT_PX}px;background:#ffffff;border-collapse:collapse;">\n'
        + "".join(parts) +
        "</table>\n</td></tr></table>\n</body></html>\n"
    )
