"""The weekly flow report: ISO weeks, hand-computed figures, empty and unhealthy weeks, Pet Clinic's views."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from collector import config as cfg
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World as PetClinic
from collector.pipeline import collect, run_map
from collector.present.weeks import last_complete_week, parse_week, week_label
from collector.render.email import Report
from collector.render.email.html import render_html
from collector.render.email.text import render_text
from collector.store import Store, connect
from collector.weekly_report import build_report, write_report
from tests.conftest import WORLD_END, write_config
from tests.mapper_cases import World, at

W10 = dt.date(2026, 3, 2)  # the Monday of T0 in tests.mapper_cases: 2026-W10


class Images(HTMLParser):
    """Collects the attributes of every <img> in an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Keep img tags."""
        if tag == "img":
            self.images.append(dict(attrs))


def images_of(html: str) -> list[dict[str, str | None]]:
    """The <img> tags of a document."""
    parser = Images()
    parser.feed(html)
    return parser.images


def tiles(report: Report) -> dict[str, tuple[str, str, str | None]]:
    """Tile key -> (value text, change text, DORA band)."""
    return {t.key: (t.text, t.change_text, t.band) for t in report.tiles}


def drop_relation(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a view or table if the mapper made one (the report must work without it)."""
    for (kind,) in con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = ?",
                               [name]).fetchall():
        con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {name}")


def tiny_stream() -> World:
    """The stream of the mapper's golden test (hand-computed there), all in 2026-W10, with PR links."""
    w = World()
    w.line("m0", "a", "c", "f", "b", "e")
    w.ship(1, "m0", created=-1, success=-0.5)
    w.pr(1, opened=1, merged=4, merge_sha="a", commits=[("pa", 0)],
         reviews=[("bob", "COMMENTED", 2), ("bob", "APPROVED", 3)])
    w.pr(2, opened=2, merged=8, merge_sha="b", commits=[("pb", 0.5)],
         reviews=[("bob", "CHANGES_REQUESTED", 5), ("bob", "APPROVED", 6)])
    w.pr(3, opened=3, merged=5, merge_sha="c", commits=[("pc", 1)])
    w.pr(5, opened=11, merged=12, merge_sha="e", commits=[("pe", 10)],
         reviews=[("bob", "COMMENTED", 11.5), ("bob", "APPROVED", 11.75)])
    w.pr(6, opened=6, merged=7, merge_sha="f", author="dependabot[bot]", author_type="Bot",
         commits=[("pf", 6)])
    w.ship(2, "b", created=10, success=10.5)
    w.con.execute("UPDATE pull_requests SET html_url = 'https://github.example/acme/web/pull/' || number")
    w.con.execute("INSERT INTO repos VALUES ('acme/web', 'main', 'https://github.example/acme/web')")
    w.map()
    drop_relation(w.con, "dora_weekly")
    return w


def test_iso_weeks_parse_format_and_the_last_complete_one() -> None:
    assert parse_week("2026-W47") == dt.date(2026, 11, 16)
    assert parse_week("2026w01") == dt.date(2025, 12, 29)  # ISO week 1 of 2026 starts in 2025
    assert week_label(dt.date(2025, 12, 29)) == "2026-W01"
    assert week_label(parse_week("2020-W53")) == "2020-W53"
    for bad in ("2026-W54", "2026-47", "W47", "2026-W", "next week"):
        with pytest.raises(ValueError, match="ISO week like 2026-W47"):
            parse_week(bad)
    wednesday = dt.datetime(2026, 11, 18, 12, 0, tzinfo=dt.UTC)
    assert last_complete_week(wednesday) == dt.date(2026, 11, 9)
    assert last_complete_week(dt.datetime(2026, 11, 16, 0, 0, tzinfo=dt.UTC)) == dt.date(2026, 11, 9)
    # 00:30 on Monday in UTC+2 is still Sunday in UTC: the week before last is the last complete one
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert last_complete_week(dt.datetime(2026, 11, 16, 0, 30, tzinfo=plus_two)) == dt.date(2026, 11, 2)


def test_hand_computed_week() -> None:
    w = tiny_stream()
    report = build_report(w.con, W10, now=at(24 * 8))
    # Per change (wait, process) from the golden test: #1 lead 37800, #2 36000, #3 34200; #5 merged only.
    # Lead median 36000 = 10h; p85 37260 = 10h 21m; flow efficiency 28800 / 108000 = 26.7%.
    assert report.headline == ("Most waiting happens in release: 57% of all wait; halving it would cut "
                               "median lead time from 10h 00m to 7h 30m.")  # 46800 / 81900; halved: 27000
    assert report.summary == ("3 changes reached production with a median lead time of 10h 00m "
                              "(p85 10h 21m); 1 merged change still waits for production.")
    got = tiles(report)
    assert got["lead_time"] == ("10h 00m", "no earlier data", "Elite")  # under a day
    assert got["flow_efficiency"] == ("27%", "no earlier data", None)
    # deployment 2 (the seed holds all earlier history and is not counted, as in dora_weekly); its band
    # judges the four weeks ending with this one: 1 / 4 a week = at least monthly, Medium
    assert got["deployments"] == ("1", "no earlier data", "Medium")
    assert report.tiles[2].note.startswith("on 1 day;")
    assert got["change_failure_rate"] == ("n/a", "", None)
    assert got["recovery_time"] == ("n/a", "", None)
    # share of all wait: review 23400, merge 11700, release 46800 of 81900
    shares = {s.stage: round(s.wait_share or 0.0, 4) for s in report.stages}
    assert shares == {"code": 0.0, "review": round(23400 / 81900, 4), "merge": round(11700 / 81900, 4),
                      "release": round(46800 / 81900, 4)}
    assert [s.stage for s in report.stages if s.is_bottleneck] == ["release"]
    assert [(c.change_id, c.lead_time_s) for c in report.slowest] == [
        ("acme/web#1", 37800.0), ("acme/web#2", 36000.0), ("acme/web#3", 34200.0)]
    assert report.slowest[0].waits == (("release", 21600.0), ("review", 3600.0), ("merge", 3600.0))
    assert report.slowest[0].url == "https://github.example/acme/web/pull/1"
    # the trend's bars: average seconds per stage over #1 #2 #3; they add up to the mean lead time 36000
    this = report.trend[-1]
    assert (this.label, this.deployed, this.lead_time_median_s) == ("2026-W10", 3, 36000.0)
    assert this.stage_avg_s == pytest.approx({"code": 5400.0, "review": 9600.0, "merge": 3600.0,
                                              "release": 17400.0})
    assert [w_.deployed for w_ in report.trend[:-1]] == [0] * 11
    text, html = render_text(report), unescape(render_html(report))
    for shown in (report.headline, "10h 00m", "27%", "57%", "acme/web#1", "release 6h 00m (57%)",
                  "https://github.example/acme/web/pull/1"):
        assert shown in text and shown in html, shown


def test_dora_tiles_read_dora_weekly_when_it_exists() -> None:
    w = tiny_stream()
    w.con.execute("""
        CREATE VIEW dora_weekly AS SELECT * FROM (VALUES
            (DATE '2026-03-02', 'acme/web', 4, 2, 36000.0, 37000.0, 0.25, 1800.0, 3600.0),
            (DATE '2026-03-02', 'acme/api', 1, 1, 9000.0, 9000.0, 0.0, 7200.0, 7200.0),
            (DATE '2026-02-23', 'acme/web', 2, 2, 30000.0, 31000.0, 0.5, 600.0, 600.0))
        AS t(week, repo, deployments, deploy_days, lead_time_median_s, lead_time_p85_s, change_failure_rate,
             recovery_median_s, restore_median_s)""")
    got = tiles(build_report(w.con, W10, now=at(24 * 8), charts=False))
    # failure rate weighted by deployments: (0.25 * 4 + 0 * 1) / 5 = 20% (Low: above 15%); before: 50%
    assert got["change_failure_rate"] == ("20%", "-30.0 pts", "Low")
    # recovery: median of the two repos' medians 1800 and 7200 = 4500 s (High: under a day); before: 600 s
    assert got["recovery_time"] == ("1h 15m", "+650%", "High")


def test_week_without_deployments_shows_na_and_zero() -> None:
    w = World()
    w.line("m0", "a", "b")
    w.ship(1, "m0", created=-1, success=-0.5)  # the seed, in 2026-W10
    week = 24 * 7  # 2026-W11 starts a week after T0's Monday 09:00 - 9h
    w.pr(1, opened=week + 1, merged=week + 4, merge_sha="a", commits=[("pa", week)],
         reviews=[("bob", "APPROVED", week + 3)])
    w.pr(2, opened=week + 2, merged=week + 30, merge_sha="b", commits=[("pb", week + 1)],
         reviews=[("bob", "APPROVED", week + 20)])
    w.map()
    drop_relation(w.con, "dora_weekly")
    report = build_report(w.con, parse_week("2026-W11"), now=at(24 * 15))
    got = tiles(report)
    assert got["lead_time"] == ("n/a", "", None)
    assert got["flow_efficiency"] == ("n/a", "", None)
    # none this week nor (the seed aside) before: Low; the history began in 2026-W10, averaging 0 a week
    assert got["deployments"] == ("0", "no change", "Low")
    assert report.slowest == ()
    # review wait: #1 2h, #2 18h; merge wait: #1 1h, #2 10h: review holds 20 of 31 hours
    assert report.headline == "Most waiting happens in review: 65% of all wait."
    assert report.summary == "0 changes reached production; 2 merged changes still wait for production."
    assert [c.key for c in report.charts] == ["value-stream"]  # no deployed change: no trend to draw
    text, html = render_text(report), render_html(report, inline=True)
    assert "n/a" in text and "n/a" in html
    empty = build_report(w.con, parse_week("2026-W12"), now=at(24 * 22))
    assert empty.headline == "No change was merged or deployed in 2026-W12."
    assert empty.charts == () and "No change was merged or deployed" in render_html(empty)
    assert tiles(empty)["deployments"] == ("0", "no change", "Low")


def test_failed_source_is_shown_in_data_health() -> None:
    w = tiny_stream()
    rows = [  # (source, started, finished, status, error), hours after T0 (Monday 09:00 of 2026-W10)
        ("github", -45, -44.9, "success", None),  # Saturday before the week
        ("github", 24, 24.1, "failed",
         "acme/web: ConnectionError: connection refused; acme/api: 502 Bad Gateway"),
        ("jenkins", 24 * 7, 24 * 7 + 0.1, "success", None),  # after the week ended
    ]
    for source, started, finished, status, error in rows:
        w.con.execute("INSERT INTO sync_runs (source, started_at, finished_at, status, error)"
                      " VALUES (?, ?, ?, ?, ?)", [source, at(started), at(finished), status, error])
    w.con.execute("INSERT INTO sync_cursors VALUES ('github', 'acme/web', 'pulls', 'x', ?)", [at(-44.95)])
    report = build_report(w.con, W10, now=at(24 * 8))
    health = report.health
    assert not health.ok
    github = next(s for s in health.sources if s.source == "github")
    assert (github.last_status, github.failed_runs, github.complete) == ("failed", 1, False)
    assert github.longest_gap_s == pytest.approx((24 * 8 + 44.9) * 3600)  # Saturday success to now: 9d 20h
    assert [(s.scope, s.error) for s in health.scopes] == [
        ("acme/web", "ConnectionError: connection refused")]
    assert health.problems == (
        ("github: the last sync (Tue 03 Mar 09:06 UTC) failed: acme/web: ConnectionError: connection "
         "refused; acme/api: 502 Bad Gateway"),
        ("github: no successful sync since Sat 28 Feb 12:06 UTC, so activity after that is missing from this "
         "report"),
        "github: no successful sync for 9d 20h from Sat 28 Feb 12:06 UTC",
    )
    text, html = render_text(report), unescape(render_html(report))
    for problem in health.problems:
        assert problem in text and problem in html
    assert "Data health: 3 issue(s)" in html


@pytest.fixture(scope="module")
def pet_clinic(world: PetClinic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated Pet Clinic history collected over HTTP and mapped: the real views."""
    folder = tmp_path_factory.mktemp("pet-clinic")
    with GitHubSimulator(world) as sim:
        config = cfg.load(write_config(folder, sim.base_url, [r.full_name for r in world.repos]))
        with Store(config.db_path) as store:
            assert all(result.ok for result in collect(config, store))
            run_map(config, store)
    return config.db_path


@pytest.fixture
def pet_con(pet_clinic: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the Pet Clinic database."""
    con = connect(pet_clinic, read_only=True)
    yield con
    con.close()


def test_pet_clinic_report_from_the_real_views(pet_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    week = last_complete_week(WORLD_END)
    report = build_report(pet_con, week, cfg.ReportConfig(to=("brenda@petclinic.example",)))
    assert report.label == "2026-W46" and report.subject.startswith("Flow report 2026-W46")
    start, end = report.start, report.end
    # cross-check the headline figures with independent queries over the public views
    median, deployed = pet_con.execute(
        "SELECT quantile_cont(lead_time_s, 0.5), count(*) FROM changes"
        " WHERE NOT is_bot AND deployed_at >= ? AND deployed_at < ?", [start, end]).fetchall()[0]
    assert report.tiles[0].value == median and report.totals.deployed == deployed > 0
    prod = pet_con.execute(  # successful production deployments but each repo's first (its seed)
        "SELECT count(*) FROM deployments AS d WHERE d.environment = 'production' AND d.status = 'success'"
        " AND d.finished_at >= ? AND d.finished_at < ? AND d.finished_at > (SELECT min(f.finished_at)"
        " FROM deployments AS f WHERE f.repo = d.repo AND f.environment = 'production'"
        " AND f.status = 'success')", [start, end]).fetchall()[0][0]
    assert report.tiles[2].value == prod
    slowest = pet_con.execute(
        "SELECT change_id FROM changes WHERE NOT is_bot AND deployed_at >= ? AND deployed_at < ?"
        " ORDER BY lead_time_s DESC, change_id LIMIT 5", [start, end]).fetchall()
    assert [c.change_id for c in report.slowest] == [c for (c,) in slowest]
    assert all(c.url and c.url.endswith(f"/pull/{c.change_id.split('#')[1]}") for c in report.slowest)
    assert sum(s.wait_share or 0.0 for s in report.stages) == pytest.approx(1.0)
    neck = report.totals.bottleneck
    assert neck and re.match(rf"Most waiting happens in {neck}: \d+% of all wait; halving it would cut "
                             r"median lead time from \d+d \d+h to \d+[dh] \d+[hm]\.$", report.headline)
    assert len(report.trend) == 12 and report.trend[-1].label == "2026-W46"
    assert report.health.ok, report.health.problems
    # the file copy: default name in the folder, images embedded, alt text on each
    path = write_report(report, tmp_path / "reports")
    assert path == tmp_path / "reports" / "2026-W46.html"
    html = path.read_text(encoding="utf-8")
    imgs = images_of(html)
    assert len(imgs) == len(report.charts) == 2
    assert all((i["src"] or "").startswith("data:image/png;base64,") and i["alt"] for i in imgs)
    assert "cid:" not in html
    assert write_report(report, tmp_path / "one.html") == tmp_path / "one.html"
