"""Record types that connectors yield and the pipeline stores: one Page per transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class RawObject:
    """An API object exactly as received, kept in raw_objects for audit and re-mapping."""

    kind: str
    id: str
    payload: Any
    scope: str | None = None


@dataclass
class Page:
    """A unit of collected data stored in one transaction together with the cursor it advances.

    rows maps a typed table name to its rows (dicts keyed by column name, missing columns are NULL).
    cursor, when set, is the new value of (source, scope, stream) in sync_cursors; it is written only
    together with the rows, so a crash never advances a cursor past data that was not stored.
    """

    source: str
    scope: str
    stream: str
    rows: dict[str, list[Row]] = field(default_factory=dict)
    raw: list[RawObject] = field(default_factory=list)
    cursor: str | None = None

    def add(self, table: str, row: Row) -> None:
        """Queue one row for a typed table."""
        self.rows.setdefault(table, []).append(row)

    @property
    def items(self) -> int:
        """How many typed rows this page carries."""
        return sum(len(rows) for rows in self.rows.values())
