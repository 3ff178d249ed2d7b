"""The figures layer: value stream, what-if, stage changes, trends, mapping quality and weekly figures as
records, and their JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from collector.present.explain import stage_changes, stage_week
from collector.present.format import duration, local_time, whole_percent
from collector.present.health import mapping_quality
from collector.present.records import as_json
from collector.present.trends import trends
from collector.present.value_stream import WhatIf, dora_summary, value_stream, what_if
from collector.present.views import NotMapped
from collector.present.weekly import weekly_figures
from collector.present.weeks import day_bounds, parse_day, period_label, week_bounds
from collector.store import connect
from tests.mapper_cases import at
from tests.test_report import W10, tiny_stream


def test_value_stream_of_a_week_matches_the_weekly_figures() -> None:
    w = tiny_stream()
    start, end = week_bounds(W10)
    stream = value_stream(w.con, start, end)
    figures = weekly_figures(w.con, W10, now=at(24 * 8))
    assert stream.label == "2026-W10" and stream.repo is None
    assert stream.stages == figures.stages and stream.totals == figures.totals
    assert [s.stage for s in stream.stages if s.is_bottleneck] == ["release"]
    # the mapper's bottleneck what-if (hand-computed in test_report: 10h, halved 7h 30m) ...
    assert stream.what_if == WhatIf("release", 36000.0, 27000.0)
    # ... and the same arithmetic for any stage: code never waits, so halving its wait changes nothing
    assert what_if(w.con, "release", start, end) == stream.what_if
    assert what_if(w.con, "code", start, end) == WhatIf("code", 36000.0, 36000.0)


def test_stage_changes_over_a_period_match_the_week_list() -> None:
    w = tiny_stream()
    start, end = week_bounds(W10)
    ranged = stage_changes(w.con, "release", start, end)
    assert ranged.label == "2026-W10" and ranged.items == stage_week(w.con, "release", W10).items
    assert ranged.items[0].change_id == "acme/web#1" and ranged.items[0].wait_s == 21600.0
    assert stage_changes(w.con, "release", repo="acme/other").items == ()


def test_trends_week_by_week_with_the_period_before() -> None:
    w = tiny_stream()
    w.map()
    got = trends(w.con, W10, weeks=3)
    assert [p.label for p in got.weeks] == ["2026-W08", "2026-W09", "2026-W10"]
    assert [p.label for p in got.previous] == ["2026-W05", "2026-W06", "2026-W07"]
    this = got.weeks[-1]
    assert (this.changes, this.deployed, this.lead_time_median_s, this.bottleneck) == (4, 3, 36000.0, "release")
    assert this.lead_time_band == "Elite" and this.flow_efficiency == pytest.approx(28800 / 108000)
    assert got.weeks[0].changes == 0 and got.weeks[0].lead_time_median_s is None
    assert trends(w.con, W10, weeks=3, repo="acme/other").weeks[-1].changes == 0
    assert json.loads(json.dumps(got.to_json()))["weeks"][-1]["week"] == "2026-03-02"
    with pytest.raises(ValueError, match="at least 1"):
        trends(w.con, W10, weeks=0)


def test_mapping_quality_counts_attributions_and_clamps() -> None:
    w = tiny_stream()
    quality = mapping_quality(w.con, *week_bounds(W10))
    assert sum(quality.attribution.values()) == 4 and quality.attribution["undeployed"] == 1  # #5; bot left out
    assert quality.clamped == {}
    assert mapping_quality(w.con, repo="acme/other").attribution == {}


def test_repo_filter_and_open_range() -> None:
    w = tiny_stream()
    everything = value_stream(w.con)
    assert everything.label == "all time" and everything.start is None
    assert value_stream(w.con, repo="acme/web").stages == everything.stages
    other = value_stream(w.con, repo="acme/other")
    assert (other.stages, other.totals.changes, other.what_if) == ((), 0, None)


def test_dora_rows_per_repo_and_for_all() -> None:
    w = tiny_stream()
    w.map()  # tiny_stream drops dora_weekly; mapping again brings the DORA views back
    rows = dora_summary(w.con)
    assert [r.repo for r in rows] == ["acme/web", None]
    assert [r.repo for r in dora_summary(w.con, "acme/web")] == ["acme/web"]
    assert rows[0].deployments == 1 and rows[0].deploy_band is not None


def test_records_answer_as_json() -> None:
    w = tiny_stream()
    start, end = week_bounds(W10)
    stream = json.loads(json.dumps(value_stream(w.con, start, end).to_json()))
    assert stream["start"] == "2026-03-02T00:00:00+00:00" and stream["end"] == "2026-03-09T00:00:00+00:00"
    assert stream["what_if"] == {"stage": "release", "lead_time_median_s": 36000.0,
                                 "lead_time_median_if_halved_s": 27000.0}
    assert stream["totals"]["bottleneck"] == "release"
    figures = json.loads(json.dumps(weekly_figures(w.con, W10, now=at(24 * 8)).to_json()))
    assert figures["week"] == "2026-03-02" and figures["label"] == "2026-W10"
    assert figures["slowest"][0]["waits"][0] == ["release", 21600.0]
    assert figures["health"]["ok"] is False  # the test world records no sync
    assert figures["trend"][-1]["stage_avg_s"]["release"] == pytest.approx(17400.0)
    week = json.loads(json.dumps(stage_week(w.con, "release", W10).to_json()))
    assert week["label"] == "2026-W10" and week["items"][0]["change_id"] == "acme/web#1"
    naive = dt.datetime(2026, 3, 2, 9, 0)
    assert as_json({"at": naive, "n": float("nan"), 1: (2, 3)}) == {
        "at": "2026-03-02T09:00:00+00:00", "n": None, "1": [2, 3]}


def test_an_unmapped_database_is_one_clear_error() -> None:
    con = connect(":memory:")
    with pytest.raises(NotMapped, match="run `vsm map`"):
        value_stream(con)


def test_periods_and_formats() -> None:
    start, end = day_bounds(parse_day("2026-03-02"), parse_day("2026-03-08"))
    assert period_label(start, end) == "2026-W10"
    assert period_label(*day_bounds(dt.date(2026, 3, 1), dt.date(2026, 3, 31))) == "2026-03-01 to 2026-03-31"
    assert period_label(start, None) == "2026-03-02 to now"
    with pytest.raises(ValueError, match="ends .* before it starts"):
        day_bounds(dt.date(2026, 3, 2), dt.date(2026, 3, 1))
    with pytest.raises(ValueError, match="not a date like"):
        parse_day("March")
    assert (duration(93784), whole_percent(None), whole_percent(0.255, "n/a")) == ("1d 2h", "-", "26%")
    from zoneinfo import ZoneInfo

    assert local_time(at(0), ZoneInfo("Europe/Berlin")) == "Mon 2026-03-02 10:00 CET"
