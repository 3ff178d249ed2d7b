"""The weekly report as email: HTML and plain text (html, text), PNG charts (charts), SMTP (mail).

`Report` is the week's figures (collector.present.weekly) with the charts drawn for them; the HTML
shows the charts by Content-ID in mail and as data: URIs in the copy kept on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.present.weekly import WeeklyFigures


@dataclass(frozen=True)
class Chart:
    """A PNG for the report, referenced by Content-ID in mail and as a data: URI on disk."""

    key: str
    cid: str
    filename: str
    png: bytes
    alt: str
    caption: str
    width: int


@dataclass(frozen=True)
class Report(WeeklyFigures):
    """The week's figures with the charts drawn from them: what the email and its copy on disk show."""

    charts: tuple[Chart, ...] = field(default=())
