"""The figures layer: value stream, what-if, stage changes, trends, mapping quality and weekly figures as
records, and their JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from collector.present.explain import stage_changes, stage_week
from collector.present.format import duration, local_time, whole_percent
from collector.present.health import health_view, mapping_quality
from collector.present.records import as_json
from collector.present.trends import trends
from collector.present.value_stream import WhatIf, dora_summary, value_stream, what_if
from collector.present.views import NotMapped
from collector.present.weekly import weekly_figures
from collector.present.weeks import day_bounds, parse_day, period_label, week_bounds
from collector.store import connect
from tests.mapper_cases import H, World, at
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


def _dora_world() -> World:
    """acme/web over two weeks: #1 deployed in W10 (lead 4h), #2 in W11 (lead 10h) causing an incident that
    is resolved 3h after that deployment finished, then a failed deployment attempt."""
    w = World()
    w.line("m0", "a", "b", "c")
    w.ship(1, "m0", created=-2, success=-1.5)  # the seed: holds all earlier history, never counted
    w.pr(1, opened=0, merged=2, merge_sha="a", commits=[("p1", 0)])
    w.ship(2, "a", created=3, success=4)  # W10: lead time 4h - 0h = 4h
    w.pr(2, opened=168, merged=170, merge_sha="b", commits=[("p2", 168)])
    w.ship(3, "b", created=171, success=178)  # W11: lead time 178h - 168h = 10h
    w.con.execute("INSERT INTO incident_records (source, incident_id, repo, title, created_at, resolved_at)"
                  " VALUES ('pagerduty', 'P1', 'acme/web', 'vets list empty', ?, ?)", [at(179), at(181)])
    w.deploy(4, "c", created=185, statuses=[("failure", 186)])  # a failed attempt: beside the rate, not in it
    w.map()
    return w


def test_dora_over_a_period_counts_what_happened_in_it() -> None:
    w = _dora_world()
    w10, w11, w12 = (dt.datetime(2026, 3, d, tzinfo=dt.UTC) for d in (2, 9, 16))
    both = {r.repo: r for r in dora_summary(w.con, None, w10, w12)}
    assert set(both) == {"acme/web", None}
    web = both["acme/web"]
    # two weeks, deployments 2 and 3: one a week, which the 2023 bands call high (at least weekly)
    assert (web.weeks, web.deployments, web.deploys_per_week, web.deploy_band) == (2.0, 2, 1.0, "high")
    # lead times 4h and 10h: median 7h, p85 4h + 0.85 * 6h = 9.1h; under a day is elite
    assert (web.lead_time_median_s, web.lead_time_band) == (7 * H, "elite")
    assert web.lead_time_p85_s == pytest.approx(9.1 * H)
    # deployment 3 caused P1 (created 1h after it finished): 1 of 2 failed
    assert (web.change_failure_rate, web.change_failure_band, web.failed_deployments) == (0.5, "low", 1)
    # recovery: deployment 3 finished 178h, P1 resolved 181h = 3h; restore: created 179h -> resolved = 2h
    assert (web.recovery_median_s, web.restore_median_s, web.recovery_band) == (3 * H, 2 * H, "high")
    assert (web.incidents, web.failed_attempts) == (1, 1)
    assert both[None] == dataclasses.replace(web, repo=None)  # one repo: all repos are that repo
    first, = dora_summary(w.con, "acme/web", w10, w11)
    assert (first.deployments, first.lead_time_median_s, first.change_failure_rate, first.change_failure_band,
            first.recovery_median_s, first.incidents, first.failed_attempts) == (1, 4 * H, 0.0, "elite", None, 0, 0)
    second, = dora_summary(w.con, "acme/web", w11, w12)
    assert (second.deployments, second.lead_time_median_s, second.change_failure_rate, second.recovery_median_s,
            second.failed_attempts) == (1, 10 * H, 1.0, 3 * H, 1)
    # a quiet period: only the all-repos row, with nothing deployed
    quiet = dora_summary(w.con, None, w12, w12 + dt.timedelta(days=7))
    assert [(r.repo, r.weeks, r.deployments, r.deploys_per_week, r.lead_time_median_s) for r in quiet] == [
        (None, 1.0, 0, 0.0, None)]
    # the Map and the Trends draw these same rows
    assert value_stream(w.con, w10, w12).dora == tuple(dora_summary(w.con, None, w10, w12))
    got = trends(w.con, dt.date(2026, 3, 9), weeks=2)
    assert got.dora == both[None]
    assert got.previous_dora is not None and got.previous_dora.deployments == 0  # W08-W09: before the seed
    assert [t.deployed for t in got.lead_time] == [1, 1] and got.stage_order[0] == "code"


def test_dora_over_all_history_is_the_dora_summary_view() -> None:
    w = _dora_world()
    view = w.rows("SELECT * FROM dora_summary ORDER BY repo NULLS LAST")
    assert [(r.repo, r.deployments, r.lead_time_median_s) for r in dora_summary(w.con)] == [
        (v["repo"], v["deployments"], v["lead_time_median_s"]) for v in view]
    assert view[0]["deployments"] == 2 and view[0]["lead_time_median_s"] == 7 * H


def test_health_view_tells_freshness_now_and_the_rate_budgets() -> None:
    w = tiny_stream()
    w.con.execute("INSERT INTO sync_runs (source, started_at, finished_at, status) VALUES"
                  " ('github', ?, ?, 'success'), ('jenkins', ?, ?, 'success'), ('jira', ?, NULL, 'failed')",
                  [at(0), at(1), at(0), at(3), at(2)])
    w.con.execute("INSERT INTO rate_budgets VALUES ('github', 'GITHUB_TOKEN', 'core', 4000, 5000, ?, ?),"
                  " ('github', 'GITHUB_TOKEN', 'graphql', 4990, NULL, NULL, ?)", [at(2), at(1), at(1)])
    now = at(4)
    view = health_view(w.con, *week_bounds(W10), None, now, stale_after_s=2 * H)
    # github last succeeded 3h before now, jenkins 1h before, jira never: stale beyond 2h and when never
    assert [(f.source, f.age_s, f.stale) for f in view.freshness] == [
        ("github", 3 * H, True), ("jenkins", 1 * H, False), ("jira", None, True)]
    assert [(b.resource, b.remaining, b.limit, b.used_share) for b in view.budgets] == [
        ("core", 4000, 5000, pytest.approx(0.2)), ("graphql", 4990, None, None)]
    assert view.budgets[0].to_json()["used_share"] == pytest.approx(0.2)
    assert view.stale_after_s == 2 * H
    relaxed = health_view(w.con, *week_bounds(W10), None, now, stale_after_s=4 * H)
    assert [f.stale for f in relaxed.freshness] == [False, False, True]
