"""The DuckDB file: migrations, idempotent bulk upserts, sync cursors and the run log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import duckdb

from models import migrations
from models.records import Page, RawObject, Row

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The database cannot be opened or written; str() is one line naming the cause."""


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file with UTC session time and no network extension downloads."""
    target = str(path)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(
            target,
            read_only=read_only,
            # json and icu are built in; anything else would try to download and hang offline
            config={"autoinstall_known_extensions": False},
        )
    except duckdb.IOException as exc:
        message = str(exc).splitlines()[0]
        if "lock" in message.lower():
            raise StoreError(f"database {target} is in use by another vsm process (DuckDB lock)") from None
        raise StoreError(f"database {target} cannot be opened: {message}") from None
    con.execute("SET TimeZone = 'UTC'")
    return con


def _json(payload: Any) -> str:
    """Canonical JSON text, so that equal payloads hash equal."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def snapshot_path(db_path: Path) -> Path:
    """Where the read-only snapshot of a database lives: beside it, `<name>.snapshot.duckdb`."""
    return db_path.with_name(f"{db_path.stem}.snapshot{db_path.suffix or '.duckdb'}")


def open_for_reading(db_path: Path, wait_s: float = 10.0) -> tuple[Store, bool]:
    """Open the database read-only; while a writer holds it, the published snapshot instead.

    Returns the store and whether it is the snapshot. Without a snapshot, wait up to wait_s for the
    writer to let go (it holds the file only while it collects or maps).
    """
    if not db_path.exists():
        raise StoreError(f"no database at {db_path}: run `vsm collect` (or `vsm demo`) first")
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        try:
            return Store(db_path, read_only=True), False
        except StoreError as exc:
            if "in use" not in str(exc):
                raise
            snapshot = snapshot_path(db_path)
            if snapshot.exists():
                return Store(snapshot, read_only=True), True
            if time.monotonic() >= deadline:
                raise StoreError(f"database {db_path} stayed busy for {wait_s:.0f}s (vsm is writing) "
                                 "and no snapshot has been published yet; try again shortly") from None
            if not announced:
                log.warning("database %s is busy (vsm is writing); waiting up to %.0fs", db_path, wait_s)
                announced = True
            time.sleep(0.2)


class Store:
    """One DuckDB file with vsm's schema; all writes are idempotent upserts."""

    def __init__(self, path: Path | str, read_only: bool = False) -> None:
        self.path = path
        self.con = connect(path, read_only=read_only)
        self._columns: dict[str, list[str]] = {}
        self._keys: dict[str, list[str]] = {}
        if not read_only:
            applied = migrations.migrate(self.con)
            if applied:
                log.info("database %s migrated to schema version %d", path, applied[-1])

    def close(self) -> None:
        """Close the connection (releases the file lock)."""
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bulk upserts -----------------------------------------------------------------------------

    def columns(self, table: str) -> list[str]:
        """The table's columns in declaration order (cached)."""
        if table not in self._columns:
            rows = self.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND table_schema = 'main' ORDER BY ordinal_position",
                [table],
            ).fetchall()
            if not rows:
                raise StoreError(f"no table named {table}")
            self._columns[table] = [r[0] for r in rows]
        return self._columns[table]

    def primary_key(self, table: str) -> list[str]:
        """The table's primary-key columns (cached); every upserted table must have one."""
        if table not in self._keys:
            row = self.con.execute(
                "SELECT constraint_column_names FROM duckdb_constraints() "
                "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
                [table],
            ).fetchall()
            if not row:
                raise StoreError(f"table {table} has no primary key, so it cannot be upserted")
            self._keys[table] = list(row[0][0])
        return self._keys[table]

    def upsert(self, table: str, rows: Iterable[Row]) -> int:
        """Insert or replace rows by primary key with the appender; returns how many distinct rows."""
        rows = list(rows)
        cols = self.columns(table)
        key = self.primary_key(table)
        unknown = set().union(*(r.keys() for r in rows)) - set(cols)
        if unknown:
            raise StoreError(f"{table} has no column(s) {sorted(unknown)}")
        # one appender flush keeps the first of duplicate keys; the last fetched version must win
        latest: dict[tuple[Any, ...], Sequence[Any]] = {}
        for row in rows:
            latest[tuple(row.get(k) for k in key)] = tuple(row.get(c) for c in cols)
        if latest:
            with self.con.appender(table, action="upsert") as appender:
                appender.append_rows(list(latest.values()))
        return len(latest)

    def upsert_raw(self, source: str, objects: Iterable[RawObject]) -> int:
        """Keep each API object as received; an unchanged re-fetch leaves the row untouched."""
        now = dt.datetime.now(dt.UTC)
        latest: dict[tuple[str, str], tuple[Any, ...]] = {}
        for obj in objects:
            text = _json(obj.payload)
            digest = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
            latest[(obj.kind, obj.id)] = (source, obj.kind, obj.id, obj.scope, text, digest, now)
        if not latest:
            return 0
        self.con.execute("CREATE TEMP TABLE IF NOT EXISTS raw_stage AS SELECT * FROM raw_objects LIMIT 0")
        self.con.execute("DELETE FROM raw_stage")
        with self.con.appender("raw_stage") as appender:
            appender.append_rows(list(latest.values()))
        self.con.execute(
            "INSERT INTO raw_objects SELECT * FROM raw_stage ON CONFLICT DO UPDATE SET "
            "scope = excluded.scope, payload = excluded.payload, payload_hash = excluded.payload_hash, "
            "fetched_at = excluded.fetched_at WHERE raw_objects.payload_hash <> excluded.payload_hash"
        )
        self.con.execute("DELETE FROM raw_stage")
        return len(latest)

    def write_page(self, page: Page) -> int:
        """Store one page (raw objects, typed rows and its cursor) in a single transaction."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.upsert_raw(page.source, page.raw)
            written = sum(self.upsert(table, rows) for table, rows in page.rows.items())
            if page.cursor is not None:
                self.set_cursor(page.source, page.scope, page.stream, page.cursor)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return written

    # -- cursors and runs -------------------------------------------------------------------------

    def set_cursor(self, source: str, scope: str, stream: str, value: str) -> None:
        """Advance a sync cursor (call inside the transaction that stores the data it covers)."""
        self.upsert(
            "sync_cursors",
            [{"source": source, "scope": scope, "stream": stream, "value": value,
              "updated_at": dt.datetime.now(dt.UTC)}],
        )

    def cursors(self, source: str) -> dict[tuple[str, str], str]:
        """Every cursor of a source, keyed by (scope, stream)."""
        rows = self.con.execute(
            "SELECT scope, stream, value FROM sync_cursors WHERE source = ?", [source]
        ).fetchall()
        return {(scope, stream): value for scope, stream, value in rows}

    def start_run(self, source: str) -> int:
        """Record the start of a collection run and return its id.

        Only one process writes the file at a time, so a run of this source still marked running was
        cut short (kill -9, power loss); it is marked interrupted rather than left running forever.
        """
        self.con.execute(
            "UPDATE sync_runs SET status = 'interrupted', error = 'the process ended before the run finished' "
            "WHERE source = ? AND status = 'running'",
            [source],
        )
        row = self.con.execute(
            "INSERT INTO sync_runs (source, started_at, status) VALUES (?, now(), 'running') RETURNING run_id",
            [source],
        ).fetchall()
        return int(row[0][0])

    def save_rate_budget(self, source: str, budgets: Iterable[Row]) -> None:
        """Remember each token's remaining budget per resource as the source last reported it."""
        now = dt.datetime.now(dt.UTC)
        rows = [{**row, "source": source, "observed_at": now} for row in budgets if row.get("remaining") is not None]
        if rows:
            self.upsert("rate_budgets", rows)

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        items: int,
        requests: int,
        rate_limit_remaining: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record how a collection run ended."""
        self.con.execute(
            "UPDATE sync_runs SET finished_at = now(), status = ?, items = ?, requests = ?, "
            "rate_limit_remaining = ?, error = ? WHERE run_id = ?",
            [status, items, requests, rate_limit_remaining, error, run_id],
        )

    # -- snapshot for readers ----------------------------------------------------------------------

    def publish_snapshot(self) -> Path:
        """Copy the whole database to the read-only snapshot file that teammates query while vsm writes.

        DuckDB lets no other process open a file while one process writes it, not even to read. The
        daemon therefore publishes a consistent copy after each map (written aside, then renamed over
        the old one, so a reader never sees half a snapshot).
        """
        target = snapshot_path(Path(str(self.path)))
        partial = target.with_name(target.name + ".tmp")
        partial.unlink(missing_ok=True)
        self.con.execute("ATTACH ? AS vsm_snapshot", [str(partial)])
        try:
            self.con.execute(f"COPY FROM DATABASE {self._catalog()} TO vsm_snapshot")
        finally:
            self.con.execute("DETACH vsm_snapshot")
        partial.replace(target)
        return target

    def _catalog(self) -> str:
        """The name DuckDB gave this file's catalog."""
        return str(self.con.execute("SELECT current_database()").fetchall()[0][0])

    # -- queries ----------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a query and return (column names, rows)."""
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description] if cursor.description else []
        return names, cursor.fetchall()
