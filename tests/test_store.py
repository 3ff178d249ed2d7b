"""The store: migrations, idempotent bulk upserts, cursors in the same transaction as data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from collector.store import Store, StoreError, connect
from models import migrations
from models.records import Page, RawObject

T0 = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def pr_row(number: int, title: str, updated: dt.datetime = T0) -> dict[str, object]:
    return {"repo": "o/r", "number": number, "title": title, "state": "open", "created_at": T0,
            "updated_at": updated}


def test_migrations_create_schema_and_record_version(tmp_path: Path) -> None:
    with Store(tmp_path / "v.duckdb") as store:
        versions = store.query("SELECT version, name FROM schema_version ORDER BY version")[1]
        assert versions[0] == (1, "initial")
        assert [v for v, _ in versions] == list(range(1, len(migrations.available()) + 1))
    # reopening applies nothing twice
    with Store(tmp_path / "v.duckdb") as store:
        assert migrations.migrate(store.con) == []


def test_upsert_is_idempotent_and_last_version_wins(tmp_path: Path) -> None:
    with Store(tmp_path / "v.duckdb") as store:
        store.upsert("pull_requests", [pr_row(1, "first"), pr_row(2, "two"), pr_row(1, "first, edited")])
        store.upsert("pull_requests", [pr_row(2, "two")])
        rows = store.query("SELECT number, title FROM pull_requests ORDER BY number")[1]
        assert rows == [(1, "first, edited"), (2, "two")]


def test_upsert_rejects_unknown_columns(tmp_path: Path) -> None:
    with Store(tmp_path / "v.duckdb") as store, pytest.raises(StoreError, match="no column"):
        store.upsert("pull_requests", [{"repo": "o/r", "number": 1, "nonsense": 1}])


def test_timestamps_are_utc(tmp_path: Path) -> None:
    with Store(tmp_path / "v.duckdb") as store:
        local = dt.datetime(2026, 11, 2, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        store.upsert("pull_requests", [pr_row(1, "x", updated=local)])
        (value,) = store.query("SELECT strftime(updated_at, '%Y-%m-%d %H:%M %Z') FROM pull_requests")[1][0]
        assert value == "2026-11-02 09:30 UTC"


def test_raw_objects_unchanged_refetch_writes_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "v.duckdb") as store:
        store.upsert_raw("github", [RawObject("pull", "o/r#1", {"a": 1, "b": [1, 2]}, "o/r")])
        first = store.query("SELECT fetched_at, payload_hash FROM raw_objects")[1]
        store.upsert_raw("github", [RawObject("pull", "o/r#1", {"b": [1, 2], "a": 1}, "o/r")])
        assert store.query("SELECT fetched_at, payload_hash FROM raw_objects")[1] == first
        store.upsert_raw("github", [RawObject("pull", "o/r#1", {"a": 2}, "o/r")])
        rows = store.query("SELECT payload->>'a', fetched_at > ? FROM raw_objects", [first[0][0]])[1]
        assert rows == [("2", True)]


def test_page_and_cursor_commit_together(tmp_path: Path) -> None:
    with Store(tmp_path / "v.duckdb") as store:
        page = Page("github", "o/r", "pulls", cursor="2026-11-02T09:30:00+00:00")
        page.add("pull_requests", pr_row(1, "a"))
        page.raw.append(RawObject("pull", "o/r#1", {"number": 1}, "o/r"))
        assert store.write_page(page) == 1
        assert store.cursors("github") == {("o/r", "pulls"): "2026-11-02T09:30:00+00:00"}

        broken = Page("github", "o/r", "pulls", cursor="2026-11-03T00:00:00+00:00")
        broken.add("pull_requests", pr_row(2, "b"))
        broken.add("pr_reviews", {"repo": "o/r", "pr_number": 2, "review_id": None})  # NOT NULL key -> fails
        with pytest.raises(duckdb.Error):
            store.write_page(broken)
        # nothing of the failed page is kept, and its cursor did not advance
        assert store.query("SELECT count(*) FROM pull_requests")[1] == [(1,)]
        assert store.cursors("github") == {("o/r", "pulls"): "2026-11-02T09:30:00+00:00"}


def test_runs_are_recorded(tmp_path: Path) -> None:
    with Store(tmp_path / "v.duckdb") as store:
        run = store.start_run("github")
        store.finish_run(run, status="failed", items=3, requests=7, rate_limit_remaining=4990, error="boom")
        row = store.query("SELECT source, status, items, requests, rate_limit_remaining, error, "
                          "finished_at >= started_at FROM sync_runs")[1]
        assert row == [("github", "failed", 3, 7, 4990, "boom", True)]


def test_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb,sys,time; c=duckdb.connect({str(path)!r}); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match="in use by another vsm process"):
            connect(path)
    finally:
        holder.kill()
        holder.wait()


def test_upgrade_from_the_first_schema_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = connect(path)
    assert migrations.migrate(con, target=1) == [1]  # a database as the first release left it
    con.execute("INSERT INTO pull_requests (repo, number, title) VALUES ('o/r', 7, 'kept')")
    con.execute("INSERT INTO sync_cursors VALUES ('github', 'o/r', 'pulls', '2026-11-02T09:30:00+00:00', now())")
    con.close()
    latest = migrations.available()[-1].version
    with Store(path) as store:  # opening runs the pending migrations
        versions = [v for (v,) in store.query("SELECT version FROM schema_version ORDER BY version")[1]]
        assert versions == list(range(1, latest + 1))
        assert store.query("SELECT title FROM pull_requests")[1] == [("kept",)]
        assert store.cursors("github") == {("o/r", "pulls"): "2026-11-02T09:30:00+00:00"}


def test_a_failing_migration_leaves_the_previous_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = migrations.Migration(99, "broken", "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;")
    monkeypatch.setattr(migrations, "available", lambda: [*_real_available(), broken])
    con = connect(tmp_path / "v.duckdb")
    with pytest.raises(duckdb.Error):
        migrations.migrate(con)
    assert migrations.current_version(con) == _real_available()[-1].version
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_done'").fetchall() \
        == [(0,)]


_real_available = migrations.available


def test_migration_7_rekeys_events_and_statuses_by_node_id(tmp_path: Path) -> None:
    """REST-era rows (numeric ids) take the node id from their raw payload, which GraphQL also reports."""
    path = tmp_path / "v6.duckdb"
    con = connect(path)
    migrations.migrate(con, target=6)
    con.execute("INSERT INTO pr_events VALUES ('o/r', 4, '9001', 'merged', 'ann', 'User', ?)", [T0])
    con.execute("INSERT INTO pr_events VALUES ('o/r', 4, '9002', 'closed', 'ann', 'User', ?)", [T0])
    con.execute("INSERT INTO github_deployment_statuses VALUES ('o/r', 12, 77, 'success', ?)", [T0])
    for kind, ident, node in (("pr_event", "o/r#4/9001", "ME_kwDOAA"), ("deployment_status", "o/r/12/77", "DES_kwDOBB")):
        con.execute("INSERT INTO raw_objects VALUES ('github', ?, ?, 'o/r', ?, 'h', now())",
                    [kind, ident, f'{{"node_id": "{node}"}}'])
    con.close()
    with Store(path) as store:
        events = store.query("SELECT event_id, event FROM pr_events ORDER BY event")[1]
        # the closed event had no raw payload: its old id is kept as text rather than lost
        assert events == [("9002", "closed"), ("ME_kwDOAA", "merged")]
        assert store.query("SELECT deployment_id, status_id, state FROM github_deployment_statuses")[1] == [
            (12, "DES_kwDOBB", "success")]


def test_migration_10_links_collected_builds_and_deployments_to_their_pages(tmp_path: Path) -> None:
    """Rows collected before the url column take it from the typed tables that already kept each page."""
    path = tmp_path / "v9.duckdb"
    con = connect(path)
    migrations.migrate(con, target=9)
    con.execute("INSERT INTO jenkins_builds (job, number, kind, url, building, started_at) VALUES"
                " ('ci', 7, 'ci', 'https://ci.example/job/ci/7/', false, ?),"
                " ('deploy', 3, 'deploy', 'https://ci.example/job/deploy/3/', false, ?)", [T0, T0])
    con.execute("INSERT INTO github_workflow_runs (repo, run_id, run_attempt, workflow, html_url) VALUES"
                " ('o/r', 55, 2, 'CI', 'https://github.com/o/r/actions/runs/55')")
    for build_id, source in (("jenkins:ci#7", "jenkins"), ("github-actions:o/r/55#1", "github-actions"),
                             ("github-actions:o/r/55#2", "github-actions"), ("other:1", "other")):
        con.execute("INSERT INTO ci_builds (build_id, repo, job, started_at, status, source) VALUES"
                    " (?, 'o/r', 'ci', ?, 'success', ?)", [build_id, T0, source])
    con.execute("INSERT INTO ci_deployments (deployment_id, repo, environment, started_at, status, source)"
                " VALUES ('jenkins:deploy#3', 'o/r', 'production', ?, 'success', 'jenkins')", [T0])
    con.close()
    with Store(path) as store:
        assert dict(store.query("SELECT build_id, url FROM ci_builds")[1]) == {
            "jenkins:ci#7": "https://ci.example/job/ci/7/",
            "github-actions:o/r/55#1": "https://github.com/o/r/actions/runs/55/attempts/1",  # an earlier attempt
            "github-actions:o/r/55#2": "https://github.com/o/r/actions/runs/55",  # the run's latest attempt
            "other:1": None,  # no typed table knows its page
        }
        assert store.query("SELECT url FROM ci_deployments")[1] == [("https://ci.example/job/deploy/3/",)]
