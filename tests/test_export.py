"""`vsm export`: the demo database's views and typed tables read back from Parquet and CSV equal to the source."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import pytest

from collector.cli import main
from collector.export import ExportUsageError, export
from collector.store import Store, connect
from models.mapper import VIEWS

# Tables that carry no typed data and stay out of the export.
LEFT_OUT = {"raw_objects", "sync_cursors", "sync_runs", "rate_budgets", "schema_version", "report_sends"}


@pytest.fixture(scope="module")
def source(demo_db: Path) -> Any:
    """A read-only connection to the demo database."""
    con = connect(demo_db, read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def exports(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One Parquet and one CSV export of the demo database."""
    folder = tmp_path_factory.mktemp("exports")
    return {fmt: export(demo_db, folder / fmt, fmt).folder for fmt in ("parquet", "csv")}


def _schema(folder: Path) -> dict[str, Any]:
    """The export's schema.json."""
    return json.loads((folder / "schema.json").read_text(encoding="utf-8"))


def _quoted(name: str) -> str:
    """A quoted identifier."""
    return '"' + name + '"'


def _read_back(con: duckdb.DuckDBPyConnection, folder: Path, entry: dict[str, Any], fmt: str) -> str:
    """SQL reading one exported relation back, its original columns in source order, typed by schema.json."""
    path = str(folder / entry["glob"])
    hive_types = {c["name"]: c["type"] for c in entry["columns"] if c["name"] in entry["partition_by"]}
    hive = f", hive_types = {hive_types!r}" if hive_types else ""
    if fmt == "parquet":
        reader = f"read_parquet('{path}', hive_partitioning = true{hive})"
    else:
        in_files = {c["name"]: c["type"] for c in entry["columns"] if c["name"] not in entry["partition_by"]}
        # quote and escape stated: sniffing misreads a quoted id holding '#' (Jenkins build ids)
        reader = (f"read_csv('{path}', hive_partitioning = true{hive}, header = true, quote = '\"', "
                  f"escape = '\"', columns = {in_files!r}, allow_quoted_nulls = false)")
    originals = [c["name"] for c in entry["columns"] if "derived_from" not in c]
    return f"SELECT {', '.join(map(_quoted, originals))} FROM {reader}"


def _comparable(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The query with DOUBLE columns rounded to 6 decimals: a view re-sums floats in parallel, in any order."""
    columns = [(d[0], str(d[1])) for d in con.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
    picks = [f"round({_quoted(c)}, 6) AS {_quoted(c)}" if t == "DOUBLE" else _quoted(c) for c, t in columns]
    return f"SELECT {', '.join(picks)} FROM ({sql})"


def _differences(con: duckdb.DuckDBPyConnection, left: str, right: str) -> int:
    """Rows in one side but not the other, counted as multisets (EXCEPT ALL both ways)."""
    left, right = _comparable(con, left), _comparable(con, right)
    return int(con.execute(f"SELECT (SELECT count(*) FROM ({left} EXCEPT ALL {right})) + "
                           f"(SELECT count(*) FROM ({right} EXCEPT ALL {left}))").fetchall()[0][0])


def _source_columns(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    """A source relation's columns and types, in order."""
    return [(str(c), str(t)) for c, t in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_name = ? ORDER BY ordinal_position", [name]).fetchall()]


def test_the_export_holds_every_public_view_and_typed_table(exports: dict[str, Path], source: Any) -> None:
    tables = {name for (name,) in source.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT starts_with(table_name, 'map_')"
    ).fetchall()} - LEFT_OUT
    for fmt, folder in exports.items():
        entries = {e["name"]: e for e in _schema(folder)["relations"]}
        assert set(VIEWS) | {"incidents", "dora_weekly", "dora_summary", "dora_bands"} <= {
            n for n, e in entries.items() if e["kind"] == "view"}, fmt
        assert {n for n, e in entries.items() if e["kind"] == "table"} == tables, fmt
        assert {"pull_requests", "jenkins_builds", "incident_records", "ci_deployments"} <= tables
        assert not LEFT_OUT & entries.keys()
        on_disk = {p.name for p in folder.iterdir()}
        assert on_disk == entries.keys() | {"schema.json", ".vsm-export.lock"}, fmt


def test_every_view_the_mapper_publishes_is_exported(exports: dict[str, Path], source: Any) -> None:
    published = {name for (name,) in source.execute(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal "
        "AND NOT starts_with(view_name, 'map_')").fetchall()}
    assert published <= {e["name"] for e in _schema(exports["parquet"])["relations"]}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_each_relation_reads_back_equal_to_its_source(exports: dict[str, Path], source: Any, fmt: str) -> None:
    folder, compared = exports[fmt], 0
    for entry in _schema(folder)["relations"]:
        name = entry["name"]
        back = _read_back(source, folder, entry, fmt)
        names = [d[0] for d in source.execute(f"{back} LIMIT 0").description]
        columns = _source_columns(source, name)
        assert names == [c for c, _ in columns], name
        # the files' own types (no hints for Parquet): timestamps stay TIMESTAMP WITH TIME ZONE
        if fmt == "parquet":
            read = dict(source.execute(f"SELECT column_name, column_type FROM (DESCRIBE {back})").fetchall())
            assert {c: read[c] for c, _ in columns} == dict(columns), name
        assert _differences(source, back, f"SELECT * FROM main.{_quoted(name)}") == 0, name
        count = source.execute(f"SELECT count(*) FROM ({back})").fetchall()[0][0]
        assert count == entry["rows"], name
        compared += count
    assert compared > 10_000  # the comparison covers the demo's data, not empty relations


def test_the_comparison_sees_a_single_changed_value(exports: dict[str, Path], source: Any) -> None:
    entry = next(e for e in _schema(exports["parquet"])["relations"] if e["name"] == "changes")
    back = _read_back(source, exports["parquet"], entry, "parquet")
    altered = "SELECT * REPLACE (CASE WHEN change_id = (SELECT min(change_id) FROM changes WHERE lead_time_s " \
              "IS NOT NULL) THEN lead_time_s + 1 ELSE lead_time_s END AS lead_time_s) FROM changes"
    assert _differences(source, back, altered) == 2
    assert _differences(source, back, "SELECT * FROM changes UNION ALL (SELECT * FROM changes LIMIT 1)") == 1


def _partition_dirs(folder: Path, name: str) -> set[tuple[str, ...]]:
    """Each data file's folder path below the relation, decoded, as a tuple of key=value parts."""
    root = folder / name
    return {tuple(unquote(p) for p in f.parent.relative_to(root).parts) for f in root.rglob("data*.*")}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_partition_folders_are_repo_then_iso_week(exports: dict[str, Path], source: Any, fmt: str) -> None:
    folder = exports[fmt]
    entries = {e["name"]: e for e in _schema(folder)["relations"]}
    repos = {r for (r,) in source.execute("SELECT repo FROM repos").fetchall()}
    changes = _partition_dirs(folder, "changes")
    weeks = {f"iso_week={w}" for (w,) in source.execute(
        "SELECT DISTINCT strftime(week, '%G-W%V') FROM changes").fetchall()}
    assert {p[0] for p in changes} == {f"repo={r}" for r in repos}
    assert {p[1] for p in changes} == weeks and all(len(p) == 2 for p in changes)
    assert entries["changes"]["partition_by"] == ["repo", "iso_week"]
    assert {c["name"]: c.get("derived_from") for c in entries["changes"]["columns"]}["iso_week"] == "week"
    # a change's iso_week is the ISO week of its own week column, e.g. 2026-W47
    back = (f"SELECT week, iso_week FROM read_{fmt}('{folder}/changes/**/*.{fmt}', hive_partitioning = true, "
            "hive_types = {'repo': 'VARCHAR', 'iso_week': 'VARCHAR'})")
    assert source.execute(f"SELECT count(*) FROM ({back}) WHERE iso_week IS DISTINCT FROM "
                          "strftime(week::DATE, '%G-W%V')").fetchall() == [(0,)]
    assert all(w.startswith("iso_week=2026-W") and len(w) == len("iso_week=2026-W47") for w in weeks)
    # a time column but no repo: by week only; a repo but no time: by repo only; neither: one file
    assert {p[0].split("=")[0] for p in _partition_dirs(folder, "jenkins_stages")} == {"iso_week"}
    assert entries["jenkins_stages"]["partition_by"] == ["iso_week"]
    assert _partition_dirs(folder, "repos") == {(f"repo={r}",) for r in repos}
    assert _partition_dirs(folder, "stage_clamps") == {()}
    assert entries["stage_clamps"]["layout"] == "single" and entries["stage_clamps"]["files"] == 1
    # NULL keys go to Hive's default partition (value_stream's all-time rows, incidents of no repo)
    assert ("iso_week=__HIVE_DEFAULT_PARTITION__",) in _partition_dirs(folder, "value_stream")
    assert source.execute("SELECT count(*) FROM value_stream WHERE period IS NULL").fetchall()[0][0] > 0
    assert ("repo=__HIVE_DEFAULT_PARTITION__",) in {p[:1] for p in _partition_dirs(folder, "incident_records")}
    # an empty relation is one file with no rows but every column, so its glob still reads
    empty = {n for n, e in entries.items() if e["rows"] == 0}
    assert "github_workflow_runs" in empty
    assert all(entries[n]["layout"] == "single" and _partition_dirs(folder, n) == {()} for n in empty)


def test_the_readme_query_over_an_export_answers_per_repo(exports: dict[str, Path], source: Any) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    [example] = [q for q in re.findall(r"```sql\n(.*?)```", readme, re.DOTALL) if "'DIR/" in q]
    answered = dict(source.execute(example.replace("'DIR/", f"'{exports['parquet']}/").rstrip().rstrip(";"))
                    .fetchall())
    expected = dict(source.execute("SELECT repo, median(lead_time_s) / 3600 FROM changes "
                                   "WHERE strftime(week, '%G-W%V') >= '2026-W40' GROUP BY repo").fetchall())
    assert answered.keys() == expected.keys() and len(answered) == 2
    assert all(abs(answered[r] - expected[r]) < 1e-9 for r in expected)


def test_schema_json_lists_types_counts_and_versions(exports: dict[str, Path], source: Any) -> None:
    version = source.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    for fmt, folder in exports.items():
        document = _schema(folder)
        assert document["format"] == fmt and document["vsm_schema_version"] == version
        assert document["from_snapshot"] is False
        age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(document["exported_at"])
        assert dt.timedelta(0) <= age < dt.timedelta(minutes=10)
        for entry in document["relations"]:
            name = entry["name"]
            assert entry["rows"] == source.execute(f"SELECT count(*) FROM main.{_quoted(name)}").fetchall()[0][0]
            listed = [(c["name"], c["type"]) for c in entry["columns"] if "derived_from" not in c]
            assert listed == _source_columns(source, name), name
            assert entry["glob"] == f"{name}/**/*.{fmt}" and entry["path"] == name
            assert entry["files"] == sum(1 for _ in (folder / name).rglob(f"*.{fmt}")) >= 1
        kinds = {e["name"]: e["kind"] for e in document["relations"]}
        assert kinds["changes"] == "view" and kinds["pull_requests"] == "table"
        types = {c["name"]: c["type"] for e in document["relations"] if e["name"] == "changes" for c in e["columns"]}
        assert types["merged_at"] == "TIMESTAMP WITH TIME ZONE" and types["week"] == "DATE"


def test_a_re_export_replaces_the_previous_one(demo_db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lake"
    export(demo_db, folder, "parquet")
    # leftovers an older export could have had: a partition no longer produced, a relation since dropped
    stale = folder / "changes" / "repo=gone%2Fgone" / "iso_week=2020-W01"
    stale.mkdir(parents=True)
    shutil.copy(next((folder / "repos").rglob("*.parquet")), stale / "data_0.parquet")
    (folder / "obsolete").mkdir()
    (folder / "obsolete" / "data.parquet").write_bytes(b"old")
    document = _schema(folder)
    document["relations"].append({"name": "obsolete", "path": "obsolete"})
    (folder / "schema.json").write_text(json.dumps(document), encoding="utf-8")
    (folder / ".tmp-export-dead").mkdir()  # a killed export's staging folder
    (folder / "notes.txt").write_text("mine", encoding="utf-8")  # not vsm's: kept

    export(demo_db, folder, "parquet")
    assert not stale.parent.exists() and not (folder / "obsolete").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert "obsolete" not in {e["name"] for e in _schema(folder)["relations"]}

    export(demo_db, folder, "csv")
    assert not list(folder.rglob("*.parquet")) and list(folder.rglob("*.csv"))
    assert _schema(folder)["format"] == "csv"


def test_a_failed_export_leaves_the_previous_one_untouched(demo_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "broken.duckdb"
    shutil.copy(demo_db, db)
    folder = tmp_path / "lake"
    export(db, folder, "parquet")
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    with Store(db) as store:  # a view that fails while it is read, half way through the export
        store.con.execute("CREATE OR REPLACE VIEW flow_weekly AS SELECT error('boom') AS week")
    assert main(["-q", "export", "--config", str(_config(tmp_path, db)), "--out", str(folder)]) == 1
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    assert not [p for p in folder.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def test_export_runs_beside_a_writer_from_the_snapshot(demo_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    shutil.copy(demo_db, db)
    # the writer is another process, as beside the daemon: it holds the file and has published a snapshot
    holder = ("import sys; from pathlib import Path; from collector.store import Store; "
              "s = Store(Path(sys.argv[1])); s.publish_snapshot(); print('ready', flush=True); sys.stdin.read()")
    writer = subprocess.Popen([sys.executable, "-c", holder, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        result = export(db, tmp_path / "lake", "parquet", wait_s=0.5)
    finally:
        writer.communicate(input="", timeout=60)
    assert result.from_snapshot and _schema(tmp_path / "lake")["from_snapshot"] is True
    assert {e.relation.name: e.rows for e in result.exported}["changes"] > 100


def _config(folder: Path, db: Path) -> Path:
    """A config naming only the database."""
    path = folder / "vsm.toml"
    path.write_text(f'[database]\npath = "{db}"\n', encoding="utf-8")
    return path


def test_the_command_exports_parquet_by_default(demo_db: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lake"
    assert main(["export", "--config", str(_config(tmp_path, demo_db)), "--out", str(folder)]) == 0
    captured = capsys.readouterr()
    assert f"as parquet to {folder}" in captured.out
    assert _schema(folder)["format"] == "parquet" and list((folder / "changes").rglob("*.parquet"))
    assert "exported view changes: " in captured.err and " rows, " in captured.err  # a progress line


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a failed command."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_errors_are_one_line_with_the_cli_exit_codes(demo_db: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, tmp_path / "missing.duckdb")
    assert main(["export", "--config", str(config), "--out", str(tmp_path / "a")]) == 1
    assert "no database at" in _one_line_error(capsys) and not (tmp_path / "a").exists()

    config = _config(tmp_path, demo_db)
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    assert main(["export", "--config", str(config), "--out", str(blocker / "lake")]) == 2
    assert f"cannot write the export to {blocker / 'lake'}" in _one_line_error(capsys)

    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--config", str(config), "--out", str(tmp_path / "b"), "--format", "orc"])
    assert exit_info.value.code == 2 and "invalid choice: 'orc'" in capsys.readouterr().err
    with pytest.raises(ExportUsageError, match="unknown export format 'orc'"):
        export(demo_db, tmp_path / "b", "orc")

    foreign = tmp_path / "foreign"
    (foreign / "changes").mkdir(parents=True)
    assert main(["export", "--config", str(config), "--out", str(foreign)]) == 2
    assert "holds changes but no vsm export" in _one_line_error(capsys)
    assert [p.name for p in foreign.iterdir() if not p.name.startswith(".")] == ["changes"]

    unmapped = tmp_path / "unmapped.duckdb"
    Store(unmapped).close()
    capsys.readouterr()  # the test's own migration log line
    assert main(["-q", "export", "--config", str(_config(tmp_path, unmapped)), "--out", str(tmp_path / "c")]) == 1
    assert "run `vsm map` before exporting" in _one_line_error(capsys)
