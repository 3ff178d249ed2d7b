"""`vsm export`: the public views and typed tables as hive-partitioned Parquet or CSV for a lakehouse."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from collector.store import open_for_reading
from models.mapper import VIEWS

log = logging.getLogger(__name__)

# COPY options and file extension per format; timestamps keep their zone (Parquet: UTC-adjusted, CSV: +00).
FORMATS: dict[str, tuple[str, str]] = {
    "parquet": ("FORMAT parquet", "parquet"),
    "csv": ("FORMAT csv, HEADER", "csv"),
}
SCHEMA_FILE = "schema.json"
LOCK_FILE = ".vsm-export.lock"
STAGING_PREFIX = ".tmp-export-"
RETIRED_PREFIX = ".old-export-"

# Tables that are no typed data: the raw API payloads (JSON as received) and the run bookkeeping.
NOT_EXPORTED = frozenset({"raw_objects", "sync_cursors", "sync_runs", "rate_budgets", "schema_version",
                          "report_sends"})
# The natural time of a row, first match wins: a relation's own week, else when the thing began.
TIME_COLUMNS = ("week", "period", "created_at", "started_at", "submitted_at", "authored_at", "at", "changed_at",
                "committed_at", "queued_at")
TIME_TYPES = frozenset({"TIMESTAMP WITH TIME ZONE", "DATE"})
REPO, ISO_WEEK = "repo", "iso_week"


class ExportError(RuntimeError):
    """The export failed (database, DuckDB or file system); str() is one line."""


class ExportUsageError(ExportError):
    """The export was asked for something impossible (unknown format, unwritable or foreign folder)."""


@dataclass(frozen=True)
class Relation:
    """One exported view or table: its columns with DuckDB types and the column its ISO week comes from."""

    name: str
    kind: str
    columns: tuple[tuple[str, str], ...]
    week_from: str | None

    @property
    def partition_by(self) -> tuple[str, ...]:
        """Hive partition columns: repo and the derived iso_week, where the relation has them."""
        names = dict(self.columns)
        return tuple(c for c, ok in ((REPO, names.get(REPO) == "VARCHAR"), (ISO_WEEK, self.week_from)) if ok)


@dataclass(frozen=True)
class Exported:
    """What one relation's export wrote: rows, files and the time it took."""

    relation: Relation
    rows: int
    files: int
    seconds: float


@dataclass(frozen=True)
class ExportResult:
    """A finished export: where, which format, every relation, and whether it read the snapshot."""

    folder: Path
    format: str
    exported: tuple[Exported, ...]
    seconds: float
    from_snapshot: bool

    @property
    def rows(self) -> int:
        """Rows written over all relations."""
        return sum(e.rows for e in self.exported)


def _ident(name: str) -> str:
    """A quoted SQL identifier (`at` is a keyword)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    """A path as an SQL string literal (COPY takes no parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def relations(con: duckdb.DuckDBPyConnection) -> list[Relation]:
    """Every public view (the mapper's VIEWS first, then DORA and incidents) then the typed tables."""
    published = [name for (name,) in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal "
        "AND NOT starts_with(view_name, 'map_') ORDER BY view_name").fetchall()]
    views = list(VIEWS) + [v for v in published if v not in VIEWS]
    tables = [name for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT internal "
        "AND NOT starts_with(table_name, 'map_') ORDER BY table_name").fetchall() if name not in NOT_EXPORTED]
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").fetchall():
        columns.setdefault(str(table), []).append((str(column), str(kind)))
    found = []
    for name, kind in [(v, "view") for v in views] + [(t, "table") for t in tables]:
        if name not in columns:
            raise ExportError(f"the database has no {kind} {name}: run `vsm map` before exporting")
        types = dict(columns[name])
        week_from = None if ISO_WEEK in types else next(
            (c for c in TIME_COLUMNS if types.get(c) in TIME_TYPES), None)
        found.append(Relation(name, kind, tuple(columns[name]), week_from))
    return found


def _select(relation: Relation) -> str:
    """The relation's rows unchanged, plus iso_week ('2026-W47', UTC) when it has a time column."""
    week = f", strftime({_ident(relation.week_from)}, '%G-W%V') AS {ISO_WEEK}" if relation.week_from else ""
    return f"SELECT *{week} FROM main.{_ident(relation.name)}"


def _copy(con: duckdb.DuckDBPyConnection, relation: Relation, target: Path, fmt: str) -> Exported:
    """Write one relation into target/: hive folders when partitioned, one file otherwise or when empty."""
    options, ext = FORMATS[fmt]
    started = time.monotonic()
    rows = 0
    if relation.partition_by:
        partitions = ", ".join(_ident(c) for c in relation.partition_by)
        rows = con.execute(f"COPY ({_select(relation)}) TO {_literal(target)} "
                           f"({options}, PARTITION_BY ({partitions}))").fetchall()[0][0]
    if rows == 0:
        # unpartitioned, or empty: one file, so an empty relation's columns are known and the glob matches
        target.mkdir(exist_ok=True)
        rows = con.execute(f"COPY ({_select(relation)}) TO {_literal(target / f'data.{ext}')} "
                           f"({options})").fetchall()[0][0]
    files = sum(1 for _ in target.rglob(f"*.{ext}"))
    return Exported(relation, int(rows), files, time.monotonic() - started)


def _describe(done: Exported, fmt: str) -> dict[str, Any]:
    """The schema.json entry of one relation: kind, typed columns, partitioning, rows and file layout."""
    relation, ext = done.relation, FORMATS[fmt][1]
    hive = bool(relation.partition_by) and done.rows > 0
    columns = [{"name": c, "type": t} for c, t in relation.columns]
    if relation.week_from:
        columns.append({"name": ISO_WEEK, "type": "VARCHAR", "derived_from": relation.week_from})
    return {
        "name": relation.name, "kind": relation.kind, "rows": done.rows, "columns": columns,
        "partition_by": list(relation.partition_by) if hive else [],
        "layout": "hive" if hive else "single",
        "path": relation.name, "glob": f"{relation.name}/**/*.{ext}", "files": done.files,
    }


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the folder's export lock, so two exports into one folder never interleave their renames."""
    with (folder / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportUsageError(f"another vsm export is writing {folder}") from None
        yield


def _previous(folder: Path, names: list[str]) -> list[str]:
    """The relation folders of the export already in folder; refuses folders vsm did not write."""
    schema = folder / SCHEMA_FILE
    try:
        document = json.loads(schema.read_text(encoding="utf-8")) if schema.exists() else None
    except (OSError, ValueError):
        document = None
    if isinstance(document, dict) and "vsm_schema_version" in document:
        paths = [str(r.get("path", "")) for r in document.get("relations", []) if isinstance(r, dict)]
        # only plain folder names of this folder: a damaged schema.json must not name paths elsewhere
        return [p for p in paths if p and Path(p).name == p and not p.startswith(".")]
    clashes = sorted(name for name in [*names, SCHEMA_FILE] if (folder / name).exists())
    if clashes:
        raise ExportUsageError(f"{folder} holds {', '.join(clashes)} but no vsm export: choose an empty folder")
    return []


def _install(folder: Path, staging: Path, old: list[str]) -> None:
    """Move the new export into place: old relation folders aside, new ones in, schema.json last, old removed."""
    retired = folder / f"{RETIRED_PREFIX}{secrets.token_hex(4)}"
    retired.mkdir()
    for name in sorted(set(old) | {p.name for p in staging.iterdir()} - {SCHEMA_FILE}):
        if (folder / name).exists():
            (folder / name).rename(retired / name)
    for entry in sorted(staging.iterdir()):
        if entry.name != SCHEMA_FILE:
            entry.rename(folder / entry.name)
    (staging / SCHEMA_FILE).replace(folder / SCHEMA_FILE)
    staging.rmdir()
    shutil.rmtree(retired)


def _sweep(folder: Path) -> None:
    """Remove staging and retired folders a killed export left behind (only called under the lock)."""
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name.startswith((STAGING_PREFIX, RETIRED_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)


def _prepare(folder: Path) -> None:
    """Create the target folder, or say in one line why it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f"{STAGING_PREFIX}probe-{secrets.token_hex(4)}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise ExportUsageError(f"cannot write the export to {folder}: {exc.strerror or exc}") from None


def export(db_path: Path, folder: Path, fmt: str = "parquet", wait_s: float = 10.0) -> ExportResult:
    """Export every public view and typed table of the database (read-only, or its snapshot) into folder.

    Everything is written to folder/.tmp-export-* first and renamed into place only when complete, so a
    failed export leaves the previous one untouched and a finished one leaves nothing of it behind.
    """
    if fmt not in FORMATS:
        raise ExportUsageError(f"unknown export format {fmt!r} (choose {' or '.join(FORMATS)})")
    started = time.monotonic()
    store, from_snapshot = open_for_reading(db_path, wait_s=wait_s)
    if from_snapshot:
        log.warning("vsm is writing %s; exporting the snapshot it last published", db_path)
    with store:
        todo = relations(store.con)
        version = int(store.con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0])
        _prepare(folder)
        with _locked(folder):
            old = _previous(folder, [r.name for r in todo])
            _sweep(folder)
            staging = folder / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
            staging.mkdir()
            try:
                done = []
                for relation in todo:
                    done.append(_copy(store.con, relation, staging / relation.name, fmt))
                    log.info("exported %s %s: %d rows, %d file(s) in %.2fs", relation.kind, relation.name,
                             done[-1].rows, done[-1].files, done[-1].seconds)
                document = {
                    "vsm_schema_version": version, "format": fmt,
                    "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "from_snapshot": from_snapshot, "relations": [_describe(d, fmt) for d in done],
                }
                (staging / SCHEMA_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
                _install(folder, staging, old)
            except duckdb.Error as exc:
                raise ExportError(f"export to {folder} failed: {str(exc).splitlines()[0]}") from None
            except OSError as exc:
                raise ExportError(f"export to {folder} failed: {exc}") from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(folder, fmt, tuple(done), time.monotonic() - started, from_snapshot)
