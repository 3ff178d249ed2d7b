"""`vsm serve`: the Map page and its JSON over the demo world, validation as 400s, and a real server."""

from __future__ import annotations

import datetime as dt
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from markupsafe import escape

from collector.cli import main
from collector.present.explain import change, slowest_change, stage_changes
from collector.present.health import health_view
from collector.present.records import fields_json
from collector.present.trends import trends
from collector.present.value_stream import value_stream
from collector.present.weeks import day_bounds, parse_day
from collector.serve import create_app
from collector.store import connect


@pytest.fixture(scope="module")
def client(demo_db: Path) -> Any:
    """Flask's client for the app over the demo database."""
    return create_app(demo_db).test_client()


def _expected(db: Path, start: Any = None, end: Any = None, repo: str | None = None) -> dict[str, Any]:
    """The value stream record computed straight from the figures layer, as JSON."""
    con = connect(db, read_only=True)
    try:
        return json.loads(json.dumps(value_stream(con, start, end, repo).to_json(), default=str))
    finally:
        con.close()


def test_map_json_is_the_value_stream_record(client: Any, demo_db: Path) -> None:
    by_suffix = client.get("/map.json")
    by_accept = client.get("/map", headers={"Accept": "application/json"})
    assert by_suffix.status_code == by_accept.status_code == 200
    assert by_suffix.get_json() == by_accept.get_json() == _expected(demo_db)
    stages = by_suffix.get_json()["stages"]
    assert [s["stage"] for s in stages if s["is_bottleneck"]] == [by_suffix.get_json()["totals"]["bottleneck"]]


def test_filters_in_the_url_choose_repo_and_days(client: Any, demo_db: Path) -> None:
    answer = client.get("/map.json?repo=petclinic/petclinic-web&from=2026-11-02&to=2026-11-29")
    assert answer.status_code == 200
    start, end = day_bounds(parse_day("2026-11-02"), parse_day("2026-11-29"))
    assert answer.get_json() == _expected(demo_db, start, end, "petclinic/petclinic-web")
    assert answer.get_json()["repo"] == "petclinic/petclinic-web"
    everything = client.get("/map.json").get_json()
    assert answer.get_json()["totals"]["changes"] < everything["totals"]["changes"]
    # the DORA keys are over the chosen days too (4 weeks), not over all history
    (period,), (history,) = answer.get_json()["dora"], [r for r in everything["dora"] if r["repo"] == "petclinic/petclinic-web"]
    assert period["weeks"] == 4.0 and 0 < period["deployments"] < history["deployments"]
    html = client.get("/map?repo=petclinic/petclinic-web&from=2026-11-02&to=2026-11-29").get_data(as_text=True)
    assert "<h2>DORA four keys, 2026-11-02 to 2026-11-29</h2>" in html
    assert f"<td>{period['deployments']}</td><td>{period['incidents']}</td>" in html
    assert f"{period['deploys_per_week']:.1f}/week" in html


def test_the_map_page_draws_the_same_figures(client: Any, demo_db: Path) -> None:
    page = client.get("/map?repo=petclinic/petclinic-web")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    record = _expected(demo_db, repo="petclinic/petclinic-web")
    assert "<svg" in html and "<?xml" not in html
    assert "Value stream: petclinic/petclinic-web" in html
    assert f"{record['totals']['changes']} changes" in html
    neck = record["totals"]["bottleneck"]
    assert f"{neck} (bottleneck)" in html
    assert '<option selected>petclinic/petclinic-web</option>' in html
    assert 'href="/map.json?repo=petclinic%2Fpetclinic-web"' in html


@pytest.mark.parametrize(("query", "message"), [
    ("repo=nobody/nothing", "unknown repo 'nobody/nothing'"),
    ("from=2026-13-01", "date '2026-13-01' is not a date like 2026-11-18"),
    ("from=2026-11-30&to=2026-11-01", "the range ends (2026-11-01) before it starts (2026-11-30)"),
    ("colour=red", "unknown parameter 'colour'"),
])
def test_bad_parameters_are_400_with_the_reason(client: Any, query: str, message: str) -> None:
    as_json = client.get(f"/map.json?{query}")
    assert as_json.status_code == 400 and message in as_json.get_json()["error"]
    as_html = client.get(f"/map?{query}")
    assert as_html.status_code == 400 and message.replace("'", "&#39;") in as_html.get_data(as_text=True)


def test_an_unknown_page_is_a_404_naming_the_pages(client: Any) -> None:
    answer = client.get("/nowhere.json")
    assert answer.status_code == 404 and "pages: /map, /stage, /change, /trends, /health" in answer.get_json()["error"]


def test_serve_refuses_a_missing_database_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "vsm.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "missing.duckdb"}"\n', encoding="utf-8")
    assert main(["serve", "--config", str(config)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"no database at {tmp_path / 'missing.duckdb'}" in lines[0]


def _free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_command_serves_on_localhost_over_http(demo_db: Path, tmp_path: Path) -> None:
    config = tmp_path / "vsm.toml"
    config.write_text(f'[database]\npath = "{demo_db}"\n', encoding="utf-8")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "collector.cli", "serve", "--config", str(config),
                               "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/map.json", timeout=5)
            except requests.ConnectionError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        assert answer.json() == _expected(demo_db)
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).url.endswith("/map")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _expected_trends(db: Path, last: Any, repo: str | None) -> dict[str, Any]:
    """The Trends record computed straight from the figures layer, as JSON."""
    con = connect(db, read_only=True)
    try:
        return json.loads(json.dumps(trends(con, last, 12, repo).to_json(), default=str))
    finally:
        con.close()


def test_trends_json_ends_with_the_week_holding_to(client: Any, demo_db: Path) -> None:
    answer = client.get("/trends.json?repo=petclinic/petclinic-web&to=2026-11-29")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body == _expected_trends(demo_db, dt.date(2026, 11, 23), "petclinic/petclinic-web")
    # 2026-11-29 is a Sunday: its ISO week W48 is the last of twelve, the twelve before follow
    assert [w["label"] for w in body["weeks"]][-1] == "2026-W48" and len(body["weeks"]) == 12
    assert [w["label"] for w in body["previous"]][-1] == "2026-W36" and len(body["previous"]) == 12
    assert sum(w["changes"] for w in body["weeks"]) > 0
    # each change falls in exactly one week, so the period's totals count the weeks' changes together
    assert body["totals"]["changes"] == sum(w["changes"] for w in body["weeks"])
    assert body["previous_totals"]["changes"] == sum(w["changes"] for w in body["previous"])


def test_the_trends_page_lists_each_week(client: Any, demo_db: Path) -> None:
    page = client.get("/trends?to=2026-11-29")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    record = _expected_trends(demo_db, dt.date(2026, 11, 23), None)
    assert all(f"<td>{w['label']}</td><td>{w['changes']}</td>" in html for w in record["weeks"])
    # the report's lead-time chart, and the twelve weeks beside the twelve before with the four keys
    assert html.count("<svg") == 1 and "<?xml" not in html
    assert "<h2>These 12 weeks and the 12 before</h2>" in html
    this, before = record["dora"], record["previous_dora"]
    assert this["deployments"] > 0 and before is not None
    assert f"<tr><td>deploy frequency</td><td>{this['deploys_per_week']:.1f}/week" in html
    assert f"<tr><td>changes</td><td>{record['totals']['changes']}</td><td>{record['previous_totals']['changes']}</td>" \
        in html
    assert client.get("/trends.json?from=2026-11-01").status_code == 400  # the trends take no from


NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def _expected_health(db: Path, start: Any, end: Any, repo: str | None) -> dict[str, Any]:
    """The Health record computed straight from the figures layer at NOW, as JSON."""
    con = connect(db, read_only=True)
    try:
        return json.loads(json.dumps(health_view(con, start, end, repo, NOW).to_json(), default=str))
    finally:
        con.close()


def test_health_json_covers_the_sources_and_the_mapping(demo_db: Path) -> None:
    client = create_app(demo_db, clock=lambda: NOW).test_client()
    answer = client.get("/health.json?repo=petclinic/petclinic-web&from=2026-11-23&to=2026-11-29")
    assert answer.status_code == 200
    start, end = day_bounds(parse_day("2026-11-23"), parse_day("2026-11-29"))
    body = answer.get_json()
    assert body == _expected_health(demo_db, start, end, "petclinic/petclinic-web")
    assert body["label"] == "2026-W48"
    assert {s["source"] for s in body["health"]["sources"]} == {"github", "github_issues", "jenkins", "jira",
                                                                 "pagerduty"}
    assert sum(body["mapping"]["attribution"].values()) > 0
    # no range: the last complete week before NOW (Sunday 6 December): 2026-W48 again
    assert client.get("/health.json?repo=petclinic/petclinic-web").get_json() == body
    # a start without an end runs to NOW
    since = client.get("/health.json?from=2026-11-30").get_json()
    assert since == _expected_health(demo_db, day_bounds(parse_day("2026-11-30"), parse_day("2026-11-30"))[0],
                                     NOW, None)


def test_the_health_page_shows_each_source(demo_db: Path) -> None:
    page = create_app(demo_db, clock=lambda: NOW).test_client().get("/health")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Data health: 2026-W48" in html
    assert all(f"<tr><td>{s}</td>" in html for s in ("github", "jenkins", "jira", "pagerduty"))
    assert "How the changes were mapped" in html


def test_the_health_page_shows_freshness_by_the_configured_stale_after_and_the_rate_budget(demo_db: Path) -> None:
    con = connect(demo_db, read_only=True)
    try:
        (last,) = con.execute("SELECT max(finished_at) FROM sync_runs WHERE status = 'success'"
                               " AND source = 'github'").fetchone()
        budgets = con.execute("SELECT resource, remaining FROM rate_budgets WHERE source = 'github'").fetchall()
    finally:
        con.close()
    later = last + dt.timedelta(hours=1)
    assert budgets, "the demo's GitHub collect reports its rate budget"
    for stale_after_s, state in ((1800.0, "stale"), (7200.0, "fresh")):
        client = create_app(demo_db, clock=lambda: later, stale_after_s=stale_after_s).test_client()
        body = client.get("/health.json").get_json()
        github = next(f for f in body["freshness"] if f["source"] == "github")
        assert github["stale"] is (state == "stale") and github["age_s"] == 3600.0
        html = client.get("/health").get_data(as_text=True)
        assert f"<td>{state}</td>" in html and "<h2>Rate budget</h2>" in html
        assert all(f"<td>{resource}</td><td>{remaining}</td>" in html for resource, remaining in budgets)
        assert {b["resource"] for b in body["budgets"]} == {r for r, _ in budgets}


def test_stage_json_lists_the_stage_changes_longest_wait_first(client: Any, demo_db: Path) -> None:
    answer = client.get("/stage.json?stage=review&repo=petclinic/petclinic-web&from=2026-09-01&to=2026-11-29")
    assert answer.status_code == 200
    start, end = day_bounds(parse_day("2026-09-01"), parse_day("2026-11-29"))
    con = connect(demo_db, read_only=True)
    try:
        expected = stage_changes(con, "review", start, end, "petclinic/petclinic-web").to_json()
    finally:
        con.close()
    body = answer.get_json()
    assert body == json.loads(json.dumps(expected, default=str))
    waits = [i["wait_s"] for i in body["items"]]
    assert waits == sorted(waits, reverse=True) and len(waits) > 10
    assert {i["change_id"].split("#")[0] for i in body["items"]} == {"petclinic/petclinic-web"}
    # the page's medians are those of the listed changes, by definition
    assert body["summary"]["items"] == len(body["items"])
    assert body["summary"]["wait_median_s"] == pytest.approx(statistics.median(waits))
    assert body["summary"]["process_work_median_s"] == pytest.approx(
        statistics.median(i["process_work_s"] for i in body["items"]))


def test_the_map_links_each_stage_and_the_stage_page_links_its_changes(client: Any) -> None:
    html = client.get("/map?repo=petclinic/petclinic-web").get_data(as_text=True)
    assert 'href="/stage?stage=review&amp;repo=petclinic%2Fpetclinic-web"' in html
    stage = client.get("/stage?stage=review&repo=petclinic/petclinic-web")
    page = stage.get_data(as_text=True)
    assert stage.status_code == 200 and "<svg" in page and "The changes that waited longest" in page
    first = client.get("/stage.json?stage=review&repo=petclinic/petclinic-web").get_json()["items"][0]
    link = f'href="/change?id={quote(first["change_id"], safe="/")}"'
    assert link in page
    assert '<input type="hidden" name="stage" value="review">' in page


def test_change_json_is_the_explanation_and_the_page_its_timeline(client: Any, demo_db: Path) -> None:
    con = connect(demo_db, read_only=True)
    try:
        slowest = slowest_change(con)
        assert slowest is not None
        expected = json.loads(json.dumps(fields_json(change(con, slowest[0])), default=str))
    finally:
        con.close()
    by_id = client.get(f"/change.json?id={quote(slowest[0])}")
    assert by_id.status_code == 200 and by_id.get_json() == expected
    assert client.get("/change.json").get_json() == expected  # no id: the slowest change
    html = client.get(f"/change?id={quote(slowest[0])}").get_data(as_text=True)
    assert all(f"<tr><td>{s['stage']}</td>" in html for s in expected["stages"])
    # every event links to its page at the source, and every span of a stage to the events that bound it
    assert all(e["url"] for e in expected["events"])
    assert all(f'<a href="{escape(e["url"])}" rel="noreferrer">{e["event"]}</a>' in html for e in expected["events"])
    spans = {s[end] for s in expected["stages"] for end in ("wait_from_event", "wait_to_event",
                                                            "process_from_event", "process_to_event") if s[end]}
    assert spans and all(f'<a href="#ev-{key}">{key}</a>' in html and f'id="ev-{key}"' in html for key in spans)
    delivered = [d for d in expected["deliveries"] if d["item_id"]]
    assert delivered and all(f'<a href="{escape(d["url"])}" rel="noreferrer">{d["item_id"]}</a>' in html
                             for d in delivered)


def test_change_page_links_the_incidents_blamed_on_its_production_deployment(client: Any, demo_db: Path) -> None:
    con = connect(demo_db, read_only=True)
    try:
        blamed = con.execute(
            "SELECT t.repo || '#' || t.pr_number AS change_id, i.incident_id, i.url"
            " FROM map_change_delivery AS d JOIN map_pr_timeline AS t ON t.ck = d.ck"
            " JOIN incidents AS i ON i.deployment_id = d.item_id"
            " WHERE d.target = 'production' AND i.url IS NOT NULL ORDER BY change_id, i.incident_id LIMIT 1"
        ).fetchall()
    finally:
        con.close()
    assert blamed, "the demo world links some incident to a production deployment"
    change_id, incident_id, url = blamed[0]
    answer = client.get(f"/change.json?id={quote(change_id)}").get_json()
    production = next(d for d in answer["deliveries"] if d["target"] == "production")
    assert incident_id in [i["incident_id"] for i in production["incidents"]]
    html = client.get(f"/change?id={quote(change_id)}").get_data(as_text=True)
    assert f'<a href="{escape(url)}" rel="noreferrer">{incident_id}</a>' in html


@pytest.mark.parametrize(("url", "status", "message"), [
    ("/stage.json?stage=nope", 400, "unknown stage 'nope' (stages: code, review"),
    ("/stage.json", 400, "no stage given"),
    ("/change.json?id=petclinic/petclinic-web%2399999", 404, "petclinic/petclinic-web#99999 is not a merged"),
    ("/change.json?repo=petclinic/petclinic-web", 400, "unknown parameter 'repo'"),
])
def test_stage_and_change_refuse_what_they_cannot_answer(client: Any, url: str, status: int, message: str) -> None:
    answer = client.get(url)
    assert answer.status_code == status and message in answer.get_json()["error"]


def test_a_token_guards_every_page_and_a_link_with_it_keeps_working(demo_db: Path) -> None:
    guarded = create_app(demo_db, token="s3cret-link").test_client()
    refused = guarded.get("/map.json")
    assert refused.status_code == 401 and "needs its shared-link token" in refused.get_json()["error"]
    assert guarded.get("/map.json?token=wrong").status_code == 401
    assert guarded.get("/map.json", headers={"Authorization": "Bearer s3cret-link"}).status_code == 200
    first = guarded.get("/map?token=s3cret-link&repo=petclinic/petclinic-web")
    assert first.status_code == 200
    assert "s3cret-link" not in first.get_data(as_text=True)  # the page's links do not repeat it
    assert guarded.get("/stage.json?stage=review").status_code == 200  # the cookie carries it on
    fresh = create_app(demo_db, token="s3cret-link").test_client()
    assert fresh.get("/stage.json?stage=review").status_code == 401


def test_serve_needs_the_token_variable_the_config_names(demo_db: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VSM_TEST_SERVE_TOKEN", raising=False)
    config = tmp_path / "vsm.toml"
    config.write_text(f'[database]\npath = "{demo_db}"\n[serve]\ntoken_env = "VSM_TEST_SERVE_TOKEN"\n',
                      encoding="utf-8")
    assert main(["serve", "--config", str(config)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "environment variable VSM_TEST_SERVE_TOKEN is not set" in lines[0]
