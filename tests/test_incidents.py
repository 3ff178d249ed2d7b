"""Incidents (GitHub issues, Jira, PagerDuty) linked to deployments, and the DORA four keys: hand-worked SQL
cases, the connectors against the simulators through real clients, and the demo world end to end."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from collector.config import from_dict, parse_duration
from collector.demo import incidents_section, to_toml
from collector.demo.github_server import GitHubSimulator
from collector.demo.incident_world import JIRA_STATUSES, IncidentWorld, build_incidents
from collector.demo.jira_server import JiraSimulator
from collector.demo.pagerduty_server import PagerDutySimulator
from collector.demo.world import World
from collector.store import Store
from connectors.github import GitHubConnector
from connectors.github_budget import RateBudget
from connectors.github_graphql_client import GraphQLClient, graphql_url
from connectors.github_issues import GitHubIssuesConnector, make_github_issues
from connectors.jira import JiraConnector, jql_since, make_jira
from connectors.pagerduty import PagerDutyConnector, make_pagerduty
from models.mapper import MapSettings, run_mapper, sql_text

UTC = dt.UTC
INCIDENT_SQL = ("100_incidents.sql", "110_dora.sql")


def t(text: str) -> dt.datetime:
    """A UTC instant from 'MM-DD HH:MM' in March 2026 (2026-03-02 is a Monday)."""
    return dt.datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def map_incidents(
    store: Store, link_window_s: float = 7 * 86400.0, service_map: dict[str, str] | None = None
) -> None:
    """Run the mapper, then (again) the incident settings and SQL, whether or not SQL_FILES lists them yet."""

    def settings() -> None:
        store.con.execute("DELETE FROM map_incident_settings")
        store.con.execute("INSERT INTO map_incident_settings (link_window_s) VALUES (?)", [link_window_s])
        store.con.execute("DELETE FROM map_incident_services")
        keys = list(service_map or {})
        store.con.execute(
            "INSERT INTO map_incident_services (key, repo) SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[])",
            [keys, [service_map[k] for k in keys] if service_map else []],
        )

    settings()
    run_mapper(store.con, MapSettings())
    settings()
    for name in INCIDENT_SQL:
        store.con.execute(sql_text(name))


def collect(store: Store, connector: Any) -> int:
    """Every scope of a connector, page by page, as the pipeline stores them; rows written."""
    written = 0
    cursors = store.cursors(connector.source)
    for scope in connector.scopes():
        for page in connector.pages(scope, cursors):
            written += store.write_page(page)
    return written


def rows(store: Store, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """A query's rows as dicts."""
    names, found = store.query(sql, params)
    return [dict(zip(names, row, strict=True)) for row in found]


# -- hand-worked SQL: links, CFR, recovery --------------------------------------------------------------

REPO = "acme/shop"
SHAS = {name: hashlib.sha1(name.encode()).hexdigest() for name in ("c1", "c2", "c3", "c4", "c5")}


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Store]:
    """acme/shop: a linear main line, four PRs, six production deployments and seven incidents (see below).

    main:  c1 (02-27) <- c2 = PR1 merged 03-02 14:00 <- c3 = PR2 03-03 09:00 <- c4 = PR3 03-04 08:00
           <- c5 = PR4 03-09 08:00
    production deployments (finished = first success):
      D101 c1 03-02 10:00  the seed: excluded from every count
      D102 c3 03-03 10:10  delivers PR1, PR2
      D103 c4 03-04 09:05  failure, then error 09:06: one failed attempt
      D104 c4 03-04 11:10  delivers PR3; rolled back by D105
      D105 c3 03-05 10:10  ships c3, an ancestor of c4: the rollback
      D106 c5 03-09 10:10  delivers PR4
    """
    store = Store(tmp_path / "shop.duckdb")

    def table(name: str, columns: str, values: list[tuple[Any, ...]], **fixed: Any) -> None:
        store.upsert(name, [{**fixed, **dict(zip(columns.split(), row, strict=True))} for row in values])

    commits = [
        ("c1", "02-27 09:00", None),
        ("c2", "03-02 14:00", "c1"),
        ("c3", "03-03 09:00", "c2"),
        ("c4", "03-04 08:00", "c3"),
        ("c5", "03-09 08:00", "c4"),
    ]
    table("repos", "default_branch", [("main",)], repo=REPO)
    table(
        "commits",
        "sha authored_at committed_at message",
        [(SHAS[c], t(at), t(at), c) for c, at, _ in commits],
        repo=REPO,
        author_login="ana",
    )
    table(
        "commit_parents",
        "sha parent_sha",
        [(SHAS[c], SHAS[p]) for c, _, p in commits if p],
        repo=REPO,
        parent_index=0,
    )
    # PR n: first commit authored at `first`, merged as c(n+1) at `merged`
    prs = [
        (1, "03-02 09:00", "03-02 14:00"),
        (2, "03-02 11:00", "03-03 09:00"),
        (3, "03-03 10:00", "03-04 08:00"),
        (4, "03-06 09:00", "03-09 08:00"),
    ]
    table(
        "pull_requests",
        "number id title created_at updated_at closed_at merged_at merge_commit_sha head_ref",
        [
            (
                n,
                1000 + n,
                f"Change {n}",
                t(first),
                t(merged),
                t(merged),
                t(merged),
                SHAS[f"c{n + 1}"],
                f"pr-{n}",
            )
            for n, first, merged in prs
        ],
        repo=REPO,
        author_login="ana",
        author_type="User",
        state="closed",
        draft=False,
        base_ref="main",
    )
    table(
        "pr_commits",
        "pr_number sha authored_at committed_at message",
        [(n, f"{n:040x}", t(first), t(first), f"Change {n}") for n, first, _ in prs],
        repo=REPO,
        author_login="ana",
    )
    deployments = [
        (101, "c1", "03-02 09:50", [("success", "03-02 10:00")]),
        (102, "c3", "03-03 10:00", [("success", "03-03 10:10")]),
        (103, "c4", "03-04 09:00", [("failure", "03-04 09:05"), ("error", "03-04 09:06")]),
        (104, "c4", "03-04 11:00", [("success", "03-04 11:10"), ("inactive", "03-05 10:11")]),
        (105, "c3", "03-05 10:00", [("success", "03-05 10:10")]),
        (106, "c5", "03-09 10:00", [("success", "03-09 10:10")]),
    ]
    table(
        "github_deployments",
        "deployment_id sha created_at updated_at",
        [(d, SHAS[c], t(at), t(at)) for d, c, at, _ in deployments],
        repo=REPO,
        environment="production",
        ref="main",
        task="deploy",
    )
    table(
        "github_deployment_statuses",
        "deployment_id status_id state created_at",
        [
            (d, d * 10 + i, state, t(at))
            for d, _, _, statuses in deployments
            for i, (state, at) in enumerate(statuses)
        ],
        repo=REPO,
    )
    columns = "source incident_id repo title body created_at resolved_at"
    incidents = [
        # I1: before the first production deployment finished -> no link
        ("github", f"{REPO}#10", REPO, "Shop down", "Nothing works yet.", "03-02 08:00", "03-02 08:30"),
        # I2: names PR #1 (delivered by D102) -> explicit_pr D102; its repo comes from the component
        (
            "jira",
            "OPS-1",
            None,
            "Termine fehlen",
            "Seit #1 live ist, fehlen Termine.",
            "03-03 15:00",
            "03-03 18:00",
        ),
        # I3: after D105 finished, names c4's short SHA -> explicit_sha D104, not time_window D105
        (
            "pagerduty",
            "PABC123",
            None,
            f"Checkout errors after {SHAS['c4'][:8]}",
            "",
            "03-05 12:00",
            "03-05 14:00",
        ),
        # I7: "fixed by #4" names a PR deployed after the incident was created -> falls back to time_window
        #     D104 (finished 03-04 11:10, 21h50m before, within 7 days); unresolved
        ("github", f"{REPO}#13", REPO, "Search is slow", "Will be fixed by #4.", "03-05 09:00", None),
        # I4: no reference, 4h50m after D106 -> time_window D106
        ("github", f"{REPO}#11", REPO, "Slow pages", "Customers complain.", "03-09 15:00", "03-09 16:00"),
        # I6: names deployment 102 a week later -> explicit_deployment D102 (time_window would pick D106)
        (
            "jira",
            "OPS-2",
            None,
            "Bestellungen doppelt",
            "Seit deployment 102 doppelt.",
            "03-10 09:00",
            "03-10 10:00",
        ),
        # I5: 10d 22h50m after D106, nothing named -> beyond the 7-day window: no link
        ("github", f"{REPO}#12", REPO, "Images missing", "Broken.", "03-20 09:00", "03-20 10:00"),
    ]
    table(
        "incident_records",
        columns + " updated_at status_category components service acknowledged_at",
        [
            (
                *row[:5],
                t(row[5]),
                t(row[6]) if row[6] else None,
                t(row[6] or row[5]),
                "done" if row[6] else "new",
                '["Shop"]' if row[0] == "jira" else "[]",
                "PSHOP01" if row[0] == "pagerduty" else None,
                t("03-03 15:20") if row[1] == "OPS-1" else None,
            )
            for row in incidents
        ],
        labels="[]",
        refs="[]",
    )
    map_incidents(store, service_map={"Shop": REPO, "PSHOP01": REPO})
    yield store
    store.close()


def test_links_explicit_reference_beats_time_and_nothing_beyond_the_window(shop: Store) -> None:
    found = {r["incident_id"]: r for r in rows(shop, "SELECT * FROM incidents")}
    links = {key: (r["deployment_id"], r["link_method"]) for key, r in found.items()}
    assert links == {
        f"github:{REPO}#10": (None, None),  # before any deployment
        "jira:OPS-1": ("github:102", "explicit_pr"),  # #1 -> PR1 -> D102
        "pagerduty:PABC123": ("github:104", "explicit_sha"),  # c4's SHA, though D105 is later
        f"github:{REPO}#13": ("github:104", "time_window"),  # #4 shipped after it was created
        f"github:{REPO}#11": ("github:106", "time_window"),
        "jira:OPS-2": ("github:102", "explicit_deployment"),  # beats time_window D106
        f"github:{REPO}#12": (None, None),  # beyond the window
    }
    # repos from the service map (Jira component, PagerDuty service); SHA of the blamed deployment
    assert {r["repo"] for r in found.values()} == {REPO}
    assert found["pagerduty:PABC123"]["deployment_sha"] == SHAS["c4"]
    # recovery: D104 finished 03-04 11:10 -> resolved 03-05 14:00 = 26h50m = 96600 s; restore 12:00 -> 14:00
    assert (
        found["pagerduty:PABC123"]["recovery_s"] == 96600 and found["pagerduty:PABC123"]["restore_s"] == 7200
    )
    assert found["jira:OPS-1"]["acknowledged_at"] == t("03-03 15:20")


def test_a_shorter_window_drops_time_links_but_keeps_explicit_ones(shop: Store) -> None:
    map_incidents(shop, link_window_s=4 * 3600, service_map={"Shop": REPO, "PSHOP01": REPO})
    links = dict(shop.query("SELECT incident_id, link_method FROM incidents")[1])
    # I4 came 4h50m after D106 and I7 21h50m after D104: both beyond 4 hours now
    assert links[f"github:{REPO}#11"] is None and links[f"github:{REPO}#13"] is None
    assert links["jira:OPS-2"] == "explicit_deployment" and links["pagerduty:PABC123"] == "explicit_sha"


def test_change_failure_rate_and_recovery_per_week(shop: Store) -> None:
    weeks = {r["week"].isoformat(): r for r in rows(shop, "SELECT * FROM dora_weekly WHERE repo = ?", [REPO])}
    assert sorted(weeks) == ["2026-03-02", "2026-03-09", "2026-03-16"]
    first, second, third = weeks["2026-03-02"], weeks["2026-03-09"], weeks["2026-03-16"]
    # week 03-02: D102, D104, D105 (the seed D101 excluded) on three days; D103 failed: one attempt, in no rate
    assert (first["deployments"], first["deploy_days"], first["failed_attempts"]) == (3, 3, 1)
    # failed: D102 (I2 and I6: counted once) and D104 (I3, I7 and its rollback: counted once); D105 clean
    assert first["failed_deployments"] == 2 and first["change_failure_rate"] == pytest.approx(2 / 3)
    # recovery over incidents created that week, linked and resolved: I2 10:10 -> 18:00 = 28200 s,
    # I3 03-04 11:10 -> 03-05 14:00 = 96600 s; median (28200 + 96600) / 2 = 62400 (I7 open, I1 unlinked)
    assert first["recovery_median_s"] == pytest.approx(62400)
    # restore: I1 1800, I2 10800, I3 7200 -> median 7200
    assert first["restore_median_s"] == pytest.approx(7200) and first["incidents"] == 4
    # lead time: PR2 11:00 -> D102 03-03 10:10 = 83400; PR1 09:00 -> 10:10 next day = 90600; PR3 the same
    # 90600 -> median 90600, p85 between the 2nd and 3rd value (both 90600)
    assert (first["lead_time_median_s"], first["lead_time_p85_s"]) == (
        pytest.approx(90600),
        pytest.approx(90600),
    )
    # week 03-09: D106 caused I4 -> 1 / 1; recovery I4 5h50m = 21000, I6 6d23h50m = 604200 -> 312600
    assert (second["deployments"], second["change_failure_rate"]) == (1, 1.0)
    assert second["recovery_median_s"] == pytest.approx(312600) and second["restore_median_s"] == 3600
    assert second["lead_time_median_s"] == pytest.approx(263400)  # PR4 03-06 09:00 -> 03-09 10:10
    # week 03-16: only I5 (unlinked): no deployments, no rate, restore 1h
    assert (third["deployments"], third["change_failure_rate"], third["restore_median_s"]) == (0, None, 3600)
    # bands (2023 report): 3 deploys in the 4 weeks to 03-02 = 0.75 a week -> medium; lead 25h10m -> high;
    # CFR 67% -> low; recovery 17h20m -> high; restore 2h -> high; 03-09: 4 in 4 weeks -> high, restore 1h elite
    assert [
        first[k]
        for k in ("deploy_band", "lead_time_band", "change_failure_band", "recovery_band", "restore_band")
    ] == ["medium", "high", "low", "high", "high"]
    assert (second["deploy_band"], second["recovery_band"], second["restore_band"]) == (
        "high",
        "medium",
        "elite",
    )
    rolled = shop.query("SELECT deployment_id FROM map_dora_deploys WHERE rolled_back")[1]
    assert rolled == [("github:104",)]


def test_summary_counts_every_week_together(shop: Store) -> None:
    summary = rows(shop, "SELECT * FROM dora_summary")
    assert [s["repo"] for s in summary] == [REPO, None]
    shop_row = summary[0]
    # 4 deployments, 3 failed (D102, D104, D106) over the 3 weeks 03-02 .. 03-16
    assert (shop_row["deployments"], shop_row["failed_deployments"], shop_row["weeks"]) == (4, 3, 3)
    assert shop_row["change_failure_rate"] == pytest.approx(0.75)
    bands = {r["metric"] for r in rows(shop, "SELECT DISTINCT metric FROM dora_bands")}
    assert bands == {"deploy_frequency", "lead_time_s", "change_failure_rate", "recovery_s", "restore_s"}


# -- connectors against the simulators ------------------------------------------------------------------


@pytest.fixture(scope="module")
def incidents(world: World) -> IncidentWorld:
    """The demo world's incidents (link window 3 days)."""
    return build_incidents(world)


def test_jira_cloud_reads_localised_statuses_by_category_with_token_paging(
    tmp_path: Path, incidents: IncidentWorld
) -> None:
    with (
        JiraSimulator(incidents, user="ops@petclinic.example", token="s3cret") as jira,
        Store(tmp_path / "j.duckdb") as store,
    ):
        connector = JiraConnector(
            jira.base_url,
            jql="project = OPS AND issuetype = Incident ORDER BY key",
            user="ops@petclinic.example",
            token="s3cret",
            page_size=2,
        )
        collect(store, connector)
        expected = incidents.of("jira")
        searches = [p for _, p, _ in jira.request_log if p.startswith("/rest/api/3/search/jql")]
        assert len(expected) > 2 and len(searches) == -(-len(expected) // 2)  # pages of 2, by nextPageToken
        got = {r["incident_id"]: r for r in rows(store, "SELECT * FROM incident_records")}
        assert sorted(got) == sorted(i.key for i in expected)
        names = {name for _, name, _ in JIRA_STATUSES}
        for incident in expected:
            row = got[incident.key]
            assert row["status"] in names  # 'Offen', 'In Arbeit', 'Erledigt': never compared
            assert row["status_category"] == incident.category()
            assert (row["created_at"], row["resolved_at"]) == (incident.created_at, incident.resolved_at)
            assert row["acknowledged_at"] == incident.acknowledged_at
            assert row["body"] == incident.body  # flattened from the v3 ADF document
            assert json.loads(row["components"]) == [incidents.component_of(incident.repo)]
        changes = rows(store, "SELECT * FROM incident_status_changes WHERE to_category = 'done'")
        assert {c["to_status"] for c in changes} == {"Erledigt"} and len(changes) == sum(
            1 for i in expected if i.resolved_at
        )
        # incremental: the cursor (newest update) restricts the next search; nothing changed, nothing new
        cursor = store.cursors("jira")[(connector.scopes()[0], "issues")]
        assert dt.datetime.fromisoformat(cursor) == max(i.updated_at for i in expected)
        before = len(jira.request_log)
        pages = list(connector.pages(connector.scopes()[0], store.cursors("jira")))
        assert all(p.cursor is None for p in pages)
        assert len(jira.request_log) - before == 2  # the statuses and one search page (serverInfo is known)


def test_jira_server_uses_the_classic_search_with_a_bearer_token(
    tmp_path: Path, incidents: IncidentWorld, world: World
) -> None:
    with (
        JiraSimulator(incidents, deployment_type="Server", token="pat") as jira,
        Store(tmp_path / "s.db") as store,
    ):
        jira.clock = incidents.of("jira")[0].created_at + dt.timedelta(minutes=1)
        connector = JiraConnector(jira.base_url, jql="project = OPS", token="pat", page_size=2)
        collect(store, connector)
        assert store.query("SELECT count(*) FROM incident_records")[1] == [(1,)]
        jira.clock = world.end
        collect(store, connector)  # from the cursor on: every later ticket
        assert store.query("SELECT count(*) FROM incident_records")[1] == [(len(incidents.of("jira")),)]
        searches = [p for _, p, _ in jira.request_log if "/search" in p]
        assert searches and all(p.startswith("/rest/api/2/search?") for p in searches)
        assert "updated+%3E%3D" in searches[-1]  # the second sync asked only for recent updates


def test_jql_since_keeps_the_query_and_reads_a_day_back() -> None:
    since = dt.datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
    assert (
        jql_since("project = OPS ORDER BY key", since)
        == '(project = OPS) AND updated >= "2026/11/01 10:30" ORDER BY updated ASC'
    )
    assert jql_since("", None) == "ORDER BY updated ASC"


def test_pagerduty_pages_incidents_and_reads_times_from_log_entries(
    tmp_path: Path, incidents: IncidentWorld
) -> None:
    expected = incidents.of("pagerduty")
    service, repo = next(
        (sid, r) for sid, r in incidents.services.items() if sum(i.repo == r for i in expected) > 1
    )
    mine = [i for i in expected if i.repo == repo]
    with PagerDutySimulator(incidents, token="pd-token") as pd, Store(tmp_path / "p.duckdb") as store:
        pd.clock = mine[-1].created_at + dt.timedelta(minutes=1)  # the last one has just been triggered
        horizon = incidents.end - dt.timedelta(days=150)
        connector = PagerDutyConnector(
            [service], token="pd-token", url=pd.base_url, horizon=horizon, page_size=1
        )
        collect(store, connector)
        lists = [p for _, p, _ in pd.request_log if p.startswith("/incidents?")]
        # one incident per page: offset 0, 1, ... while `more` says so
        assert {f"offset={n}" for n in range(len(mine))} <= {q for p in lists for q in p.split("&")}
        got = {r["incident_id"]: r for r in rows(store, "SELECT * FROM incident_records")}
        assert sorted(got) == sorted(i.key for i in mine)
        for incident in mine[:-1]:
            row = got[incident.key]
            assert (row["acknowledged_at"], row["resolved_at"]) == (
                incident.acknowledged_at,
                incident.resolved_at,
            )
            assert (row["service"], row["status_category"], row["urgency"]) == (
                service,
                "done",
                incident.urgency,
            )
        assert got[mine[-1].key]["status_category"] == "new" and got[mine[-1].key]["resolved_at"] is None
        state = json.loads(store.cursors("pagerduty")[(service, "incidents")])
        assert state["open"] == [mine[-1].key]
        # later: listed again from the cursor, now resolved; the cursor forgets it
        pd.clock = incidents.end
        collect(store, connector)
        last = rows(store, "SELECT * FROM incident_records WHERE incident_id = ?", [mine[-1].key])[0]
        assert last["resolved_at"] == mine[-1].resolved_at and last["status_category"] == "done"
        assert json.loads(store.cursors("pagerduty")[(service, "incidents")])["open"] == []
        # an open incident older than the cursor is not listed again: it is re-polled by id
        stale = {
            (service, "incidents"): json.dumps({"since": incidents.end.isoformat(), "open": [mine[0].key]})
        }
        pages = list(connector.pages(service, stale))
        assert ("GET", f"/incidents/{mine[0].key}", 200) in pd.request_log
        assert json.loads(pages[-1].cursor or "{}")["open"] == []


def test_github_issues_skip_pull_requests_and_sync_incrementally(
    tmp_path: Path, world: World, incidents: IncidentWorld
) -> None:
    with GitHubSimulator(world, incidents=incidents) as sim, Store(tmp_path / "g.duckdb") as store:
        repos = [r.full_name for r in world.repos]
        # 'dependencies' labels dependabot PRs: listed by the issues API, and skipped
        connector = GitHubIssuesConnector(
            repos, labels=["incident", "dependencies"], base_url=sim.base_url, token=None, horizon=world.start
        )
        collect(store, connector)
        got = sorted(r[0] for r in store.query("SELECT incident_id FROM incident_records")[1])
        assert got == sorted(i.key for i in incidents.of("github"))
        first = len(sim.request_log)
        collect(store, connector)  # every cursor is at the newest update: one request per label and repo
        assert len(sim.request_log) - first == 2 * len(repos)
        assert store.query("SELECT DISTINCT source FROM incident_records")[1] == [("github",)]


def test_github_issues_over_graphql_equal_rest_and_list_no_pull_requests(
    tmp_path: Path, world: World, incidents: IncidentWorld
) -> None:
    tables = {}
    with GitHubSimulator(world, incidents=incidents) as sim:
        repos = [r.full_name for r in world.repos]
        for api in ("rest", "graphql"):
            budget = RateBudget({"(no token)": ""})
            client = GraphQLClient(graphql_url(sim.base_url), budget) if api == "graphql" else None
            connector = GitHubIssuesConnector(repos, labels=["incident", "dependencies"], base_url=sim.base_url,
                                              token=None, horizon=world.start, graphql=client)
            with Store(tmp_path / f"{api}.duckdb") as store:
                start = len(sim.request_log)
                collect(store, connector)
                served = sim.request_log[start:]
                tables[api] = {t: store.query(f"SELECT * FROM {t} ORDER BY ALL")[1]
                               for t in ("incident_records", "incident_status_changes")}
                if api == "graphql":
                    # one query per label and repo: GraphQL's issues hold no PRs to page through
                    assert served == [("POST", "/graphql", 200)] * (2 * len(repos))
                    assert connector.requests_made == len(served)
                    again = len(sim.request_log)
                    collect(store, connector)
                    assert len(sim.request_log) - again == 2 * len(repos)
                    assert {t: store.query(f"SELECT * FROM {t} ORDER BY ALL")[1] for t in tables[api]} == tables[api]
    assert tables["graphql"] == tables["rest"] and len(tables["rest"]["incident_records"]) > 0


def test_retry_after_429_is_honoured_and_counted(tmp_path: Path, incidents: IncidentWorld) -> None:
    service = next(iter(incidents.services))
    with PagerDutySimulator(incidents, token="tok") as pd, Store(tmp_path / "r.duckdb") as store:
        pd.inject_fault(
            r"^/incidents\?",
            429,
            times=1,
            headers={"Retry-After": "1"},
            body={"error": {"message": "Rate Limit Exceeded", "code": 2020}},
        )
        connector = PagerDutyConnector(
            [service], token="tok", url=pd.base_url, horizon=incidents.end - dt.timedelta(days=150)
        )
        started = time.monotonic()
        collect(store, connector)
        assert time.monotonic() - started >= 1.0
        statuses = [s for _, p, s in pd.request_log if p.startswith("/incidents?")]
        assert statuses[:2] == [429, 200]
        assert connector.requests_made == len(pd.request_log)


def test_errors_are_one_line_and_never_show_a_secret(tmp_path: Path, incidents: IncidentWorld) -> None:
    secret = "tok-" + base64.b16encode(b"never-log-me").decode()
    with (
        PagerDutySimulator(incidents, token="right") as pd,
        JiraSimulator(incidents, token="x", user="u") as jira,
    ):
        pd_connector = PagerDutyConnector(
            ["PWEB3K7"], token=secret, url=pd.base_url, horizon=incidents.end, retries=0
        )
        jira_connector = JiraConnector(jira.base_url, jql="project = OPS", user="u", token=secret, retries=0)
        bad_jql = JiraConnector(jira.base_url, jql="project = OPS OR x = 1", user="u", token="x", retries=0)
        messages = []
        for connector in (pd_connector, jira_connector, bad_jql):
            with pytest.raises(requests.exceptions.HTTPError) as failure:
                list(connector.pages(connector.scopes()[0], {}))
            messages.append(connector.describe_error(failure.value))
        dead = PagerDutyConnector(
            ["P1"], token=secret, url="http://127.0.0.1:9", horizon=incidents.end, retries=0
        )
        with pytest.raises(requests.exceptions.ConnectionError) as refused:
            list(dead.pages("P1", {}))
        messages.append(dead.describe_error(refused.value))
    assert "rejected the credentials (401" in messages[0] and "rejected the credentials (401" in messages[1]
    assert "rejected the JQL" in messages[2] and "only AND" in messages[2]
    assert messages[3] == "cannot connect to PagerDuty at http://127.0.0.1:9"
    for message in messages:
        assert "\n" not in message and secret not in message and len(message) < 300


def test_make_functions_build_connectors_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_TOKEN", "pd")
    monkeypatch.setenv("JIRA_USER", "ops@example.com")
    monkeypatch.setenv("JIRA_TOKEN", "jt")
    config = from_dict(
        {
            "github": {"repos": ["acme/shop"]},
            "incidents": {
                "link_window": "3d",
                "github": {"labels": ["incident", "sev1"]},
                "jira": {
                    "url": "https://acme.atlassian.net",
                    "user_env": "JIRA_USER",
                    "token_env": "JIRA_TOKEN",
                    "jql": "project = OPS",
                },
                "pagerduty": {"token_env": "PD_TOKEN", "service_ids": ["PABC123", "PDEF456"]},
                "service_map": {"PABC123": "acme/shop"},
            },
        }
    )
    issues, jira, pd = make_github_issues(config), make_jira(config), make_pagerduty(config)
    assert issues is not None and issues.source == "github_issues" and issues.scopes() == ["acme/shop"]
    assert jira is not None and jira.source == "jira" and jira.scopes() == ["project = OPS"]
    assert pd is not None and pd.source == "pagerduty" and pd.scopes() == ["PABC123", "PDEF456"]
    bare = from_dict({"github": {"repos": ["acme/shop"]}})
    assert (make_github_issues(bare), make_jira(bare), make_pagerduty(bare)) == (None, None, None)


# -- the demo world end to end --------------------------------------------------------------------------


def test_every_demo_incident_is_linked_as_its_generator_intended(
    tmp_path: Path, world: World, incidents: IncidentWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_PD_TOKEN", "pd")
    repos = ", ".join(f'"{r.full_name}"' for r in world.repos)
    with (
        GitHubSimulator(world, incidents=incidents) as gh,
        JiraSimulator(incidents) as jira,
        PagerDutySimulator(incidents, token="pd") as pd,
        Store(tmp_path / "demo.duckdb") as store,
    ):
        # the demo's config, as collector/demo writes it, with the [incidents] sections of incident_world
        config = from_dict(
            tomllib.loads(
                f'[github]\nbase_url = "{gh.base_url}"\nrepos = [{repos}]\nsince = "{world.start.date()}"\n'
                + to_toml({"incidents": incidents_section(incidents, jira.base_url, pd.base_url, "DEMO_PD_TOKEN")})
            )
        )
        assert config.github is not None and config.incidents is not None
        collect(
            store,
            GitHubConnector(
                config.github.repos,
                base_url=gh.base_url,
                token=None,
                horizon=config.github.first_sync_horizon(),
            ),
        )
        for make in (make_github_issues, make_jira, make_pagerduty):
            collect(store, make(config))
        map_incidents(store, parse_duration(config.incidents.link_window), config.incidents.service_map)
        found = {r["incident_id"]: r for r in rows(store, "SELECT * FROM incidents")}
        summary = rows(store, "SELECT * FROM dora_summary WHERE repo IS NULL")[0]
    assert sorted(found) == sorted(i.incident_id for i in incidents.incidents)
    methods = set()
    for incident in incidents.incidents:
        row = found[incident.incident_id]
        intended = f"github:{incident.intended_deployment}" if incident.intended_deployment else None
        assert (row["repo"], row["deployment_id"], row["link_method"]) == (
            incident.repo,
            intended,
            incident.intended_method,
        ), incident
        methods.add(incident.intended_method)
    assert methods == {None, "time_window", "explicit_pr", "explicit_sha", "explicit_deployment"}
    assert {i.source for i in incidents.incidents} == {"github", "jira", "pagerduty"}
    assert 0 < summary["change_failure_rate"] < 0.5 and summary["deployments"] > 20
    assert summary["deploy_band"] and summary["change_failure_band"] and summary["lead_time_band"]


def test_mapping_again_changes_nothing(shop: Store) -> None:
    before = (
        shop.query("SELECT * FROM incidents ORDER BY incident_id")[1],
        shop.query("SELECT * FROM dora_weekly ORDER BY repo, week")[1],
    )
    map_incidents(shop, service_map={"Shop": REPO, "PSHOP01": REPO})
    after = (
        shop.query("SELECT * FROM incidents ORDER BY incident_id")[1],
        shop.query("SELECT * FROM dora_weekly ORDER BY repo, week")[1],
    )
    assert after == before


def test_pagerduty_pages_carry_the_cursor_so_a_cut_run_resumes_after_the_last_stored_page(
    incidents: IncidentWorld
) -> None:
    expected = incidents.of("pagerduty")
    service, repo = next(
        (sid, r) for sid, r in incidents.services.items() if sum(i.repo == r for i in expected) > 1
    )
    mine = sorted((i for i in expected if i.repo == repo), key=lambda i: i.created_at)
    with PagerDutySimulator(incidents, token="pd-token") as pd:
        pd.clock = incidents.end
        horizon = incidents.end - dt.timedelta(days=150)
        connector = PagerDutyConnector([service], token="pd-token", url=pd.base_url, horizon=horizon,
                                       page_size=1)
        first = next(connector.pages(service, {}))  # the run is cut after its first stored page
        assert first.cursor is not None
        state = json.loads(first.cursor)
        assert dt.datetime.fromisoformat(state["since"]) == mine[0].created_at
        listed = len(pd.request_log)
        rest = list(connector.pages(service, {(first.scope, first.stream): first.cursor}))
        asked = [p for _, p, _ in pd.request_log[listed:] if p.startswith("/incidents?")]
        # the resumed run lists from the first incident's creation on, never from the horizon again
        assert asked and all("since=2026-01-01" not in p and f"since={horizon:%Y-%m-%d}" not in p for p in asked)
        assert {r["incident_id"] for p in [first, *rest] for r in p.rows.get("incident_records", [])} == \
            {i.key for i in mine}
