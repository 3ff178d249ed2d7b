"""Reading the mapped views: whether one exists, every row of a query, and the error when none is mapped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb


class NotMapped(RuntimeError):
    """The figures cannot be read from this database; str() is one line naming what to do."""


def has_relation(con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[str] = ()) -> bool:
    """True when a table or view exists (with every listed column): later views are optional."""
    found = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]).fetchall()}
    return bool(found) and all(column in found for column in columns)


def has_macro(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when the mapper defined a (table) macro of that name: a database mapped by an older vsm lacks it."""
    return bool(con.execute("SELECT 1 FROM duckdb_functions() WHERE function_name = ? AND function_type IN"
                            " ('macro', 'table_macro') LIMIT 1", [name]).fetchall())


def query_rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run a query and fetch every row (an unfinished result would block the connection)."""
    return con.execute(sql, list(params)).fetchall()


def require_mapped(con: duckdb.DuckDBPyConnection) -> None:
    """Raise NotMapped unless the mapper's change and stage views are there."""
    if not has_relation(con, "map_change_rows") or not has_relation(con, "stage_times"):
        raise NotMapped("the database has no mapped views yet: run `vsm map` (or `vsm collect`) first")


def repos(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """Every collected repo, sorted: the choices a repo filter accepts."""
    return tuple(r for (r,) in query_rows(con, "SELECT repo FROM repos ORDER BY repo"))


def stages(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The mapped stages in stream order: the choices a stage parameter accepts."""
    if not has_relation(con, "stage_times"):
        return ()
    return tuple(s for (s,) in query_rows(con, "SELECT stage FROM stage_times GROUP BY stage "
                                               "ORDER BY min(stage_order), stage"))
