"""Terminal rendering: durations, tables, query formats, the progress line and the value stream map."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from collector.present.format import duration, percent
from collector.progress import Progress
from collector.render.terminal import render_rows, table


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (0, "0s"), (59.4, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h 00m"), (5400, "1h 30m"),
    (86399, "23h 59m"), (86400, "1d 0h"), (2 * 86400 + 3 * 3600 + 1799, "2d 3h"),
])
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_percent_and_table_alignment() -> None:
    assert percent(0.0712) == "7.1%" and percent(None) == "-"
    text = table(["stage", "items"], [("code", 5), ("review", 12)], right=[False, True])
    assert text.splitlines() == ["stage   items", "------  -----", "code        5", "review     12"]


def test_query_formats() -> None:
    at = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    rows = [("o/r#1", at, 1.5), ("o/r#2", None, None)]
    assert render_rows(["id", "at", "h"], rows, "csv") == "id,at,h\no/r#1,2026-11-02 09:30:00Z,1.5\no/r#2,,"
    first = json.loads(render_rows(["id", "at", "h"], rows, "json").splitlines()[0])
    assert first == {"id": "o/r#1", "at": "2026-11-02 09:30:00Z", "h": 1.5}
    assert render_rows(["id"], [("a",)], "table").endswith("(1 row)")


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_tty() -> None:
    tty, pipe = FakeTty(), io.StringIO()
    for stream in (tty, pipe):
        progress = Progress("github o/r", stream, min_interval_s=0)  # type: ignore[arg-type]
        progress.update("pulls: 100 rows")
        progress.close()
    assert "github o/r pulls: 100 rows" in tty.getvalue() and tty.getvalue().endswith("\r\x1b[2K")
    assert pipe.getvalue() == ""
