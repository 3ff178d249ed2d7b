"""Shared helpers for fault tests: every row a collect stored (typed tables, raw layer, cursors) and every
public view the mapper built, compared with a clean run row for row, with lost and extra rows counted.

A fault test collects the same world twice, once cleanly and once under a fault (then again once the fault
has cleared), and asserts the two databases hold the same rows. Only columns that say when or in which run
something happened differ between runs by nature; they are named in RUN_SPECIFIC and left out.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collector.cli import main
from collector.store import Store

# Columns that record when this run fetched or wrote something: they differ between two identical runs.
# raw_objects.payload_hash is the md5 of the payload, whose URLs name the simulator's port (each test's
# servers listen on ports of their own): `snapshot` checks it against the payload instead, and the payloads
# themselves are compared with the port replaced.
RUN_SPECIFIC: dict[str, tuple[str, ...]] = {
    "raw_objects": ("fetched_at", "payload_hash"),
    "sync_cursors": ("updated_at",),
    "deployed_shas": ("resolved_at",),
}
# Tables that record runs rather than data, left out whole: one row per run (ids, times, request counts), the
# rate budget as the last run saw it, when each migration ran, and which weekly reports were mailed.
RUN_TABLES = ("sync_runs", "rate_budgets", "schema_version", "report_sends")

Row = tuple[Any, ...]


@dataclass
class Snapshot:
    """Every stored row of a database: table or view name -> its columns and its rows (duplicates kept)."""

    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows: dict[str, list[Row]] = field(default_factory=dict)

    def where(self, keep: Callable[[str, dict[str, Any]], bool]) -> Snapshot:
        """The rows `keep(table, row as a dict)` accepts, in every table."""
        return Snapshot(dict(self.columns), {
            name: [row for row in rows if keep(name, dict(zip(self.columns[name], row, strict=True)))]
            for name, rows in self.rows.items()})

    def only(self, names: Iterable[str]) -> Snapshot:
        """The named tables only."""
        wanted = set(names)
        return Snapshot({n: c for n, c in self.columns.items() if n in wanted},
                        {n: r for n, r in self.rows.items() if n in wanted})

    def count(self) -> int:
        """Rows in all tables."""
        return sum(len(rows) for rows in self.rows.values())


def server_names(base_urls: Mapping[str, str]) -> dict[str, str]:
    """Replacements that name each simulator (name -> its base URL) by its name instead of its host and port,
    which differ per test: every URL form in a payload (http, git, ssh) carries the host:port."""
    return {urlsplit(url).netloc: f"{name}.simulated" for name, url in base_urls.items()}


def _same_world(value: Any, replacements: Mapping[str, str]) -> Any:
    """A stored value with each simulator's host:port replaced by a stable name (see server_names)."""
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
    return value


def _read(store: Store, name: str, replacements: Mapping[str, str]) -> tuple[tuple[str, ...], list[Row]]:
    """One table or view: its columns and rows, run-specific columns left out, sorted."""
    excluded = RUN_SPECIFIC.get(name, ())
    if "payload_hash" in excluded:
        wrong = store.query(f"SELECT count(*) FROM {name} WHERE payload_hash <> md5(payload::VARCHAR)")[1][0][0]
        assert wrong == 0, f"{name}: {wrong} rows whose payload_hash is not the md5 of their payload"
    columns = f"* EXCLUDE ({', '.join(excluded)})" if excluded else "*"
    names, found = store.query(f"SELECT {columns} FROM {name}")
    rows = [tuple(_same_world(v, replacements) for v in row) for row in found]
    return tuple(names), sorted(rows, key=repr)


def stored_tables(store: Store) -> list[str]:
    """Every table a collect fills: all of the main schema but the mapper's map_* work tables (the views built
    from them are compared instead) and the run records of RUN_TABLES."""
    return [name for (name,) in store.query(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT internal "
        "AND NOT starts_with(table_name, 'map_') ORDER BY table_name")[1] if name not in RUN_TABLES]


def public_views(store: Store) -> list[str]:
    """The views the mapper publishes (everything but its map_* helpers)."""
    return [name for (name,) in store.query(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'main' "
        "AND NOT starts_with(view_name, 'map_') ORDER BY view_name")[1]]


def snapshot(db: Path, *, replacements: Mapping[str, str] | None = None, views: bool = True) -> Snapshot:
    """Every stored table's rows and (with `views`) every public view's rows, read from a closed database."""
    found = Snapshot()
    with Store(db, read_only=True) as store:
        names = stored_tables(store) + (public_views(store) if views else [])
        for name in names:
            found.columns[name], found.rows[name] = _read(store, name, replacements or {})
    return found


def differences(expected: Snapshot, got: Snapshot) -> list[str]:
    """One line per table whose rows differ: how many rows were lost and how many are extra (duplicated or
    wrong), with an example of each."""
    problems = [f"{name}: missing" for name in sorted(set(expected.rows) - set(got.rows))]
    problems += [f"{name}: not expected" for name in sorted(set(got.rows) - set(expected.rows))]
    for name in sorted(set(expected.rows) & set(got.rows)):
        want, have = Counter(expected.rows[name]), Counter(got.rows[name])
        lost, extra = want - have, have - want
        if lost or extra:
            duplicated = sum(n for row, n in extra.items() if row in want)
            line = (f"{name}: {sum(lost.values())} lost, {sum(extra.values())} extra ({duplicated} duplicated) "
                    f"of {sum(want.values())}")
            if lost:
                line += f"; lost e.g. {next(iter(lost))!r:.300}"
            if extra:
                line += f"; extra e.g. {next(iter(extra))!r:.300}"
            problems.append(line)
    return problems


def assert_same(expected: Snapshot, got: Snapshot) -> None:
    """Every table and view holds exactly the expected rows: 0 lost, 0 duplicated, 0 wrong."""
    problems = differences(expected, got)
    assert not problems, "\n".join(problems)


def assert_part_of(expected: Snapshot, got: Snapshot) -> int:
    """Every row stored is an expected row (nothing wrong or duplicated; some may be missing); returns how
    many expected rows are missing."""
    missing = 0
    for name, have in got.rows.items():
        extra = Counter(have) - Counter(expected.rows[name])
        assert not extra, f"{name}: {sum(extra.values())} rows the clean run does not have, e.g. {next(iter(extra))!r:.300}"
        missing += len(expected.rows[name]) - len(have)
    return missing


@dataclass
class Outcome:
    """What one in-process `vsm ...` did: exit code, stdout, and its ERROR and WARNING log lines."""

    code: int
    stdout: str
    errors: list[str]
    warnings: list[str]

    def errors_of(self, source: str) -> list[str]:
        """The ERROR lines logged for a source (the pipeline starts each with the source's name)."""
        return [line for line in self.errors if line.split(" ", 1)[0].rstrip(":") == source]


class _Lines(logging.Handler):
    """Keeps the WARNING and ERROR records logged while a command runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _captured() -> Iterator[tuple[_Lines, io.StringIO]]:
    lines, stdout = _Lines(), io.StringIO()
    logging.getLogger().addHandler(lines)
    try:
        with contextlib.redirect_stdout(stdout):
            yield lines, stdout
    finally:
        logging.getLogger().removeHandler(lines)


def vsm(*argv: str) -> Outcome:
    """Run `vsm ARGV` in this process and keep its exit code, output and log lines."""
    with _captured() as (lines, stdout):
        code = main(list(argv))
    return Outcome(code, stdout.getvalue(),
                   [r.getMessage() for r in lines.records if r.levelno >= logging.ERROR],
                   [r.getMessage() for r in lines.records if r.levelno == logging.WARNING])


def one_line(message: str, *words: str) -> None:
    """A clear line: a single line, short, naming every word given."""
    assert "\n" not in message and len(message) < 400, message
    for word in words:
        assert word in message, (word, message)
