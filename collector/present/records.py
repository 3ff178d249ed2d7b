"""JSON for the figure records, so a web page can answer with exactly the data its HTML is drawn from."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from decimal import Decimal
from typing import Any


def as_json(value: Any) -> Any:
    """A record, or any value inside one, as JSON-ready data.

    Dataclasses and mappings become objects, tuples lists, datetimes ISO-8601 in UTC (a naive one is
    taken as UTC), dates ISO dates; durations stay numbers of seconds; bytes (drawn images) are left out.
    """
    if isinstance(value, Record):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields_json(value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): as_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(item) for item in value]
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fields_json(record: Any) -> dict[str, Any]:
    """A dataclass's fields as JSON-ready data (see as_json), bytes left out."""
    return {f.name: as_json(getattr(record, f.name)) for f in dataclasses.fields(record)
            if not isinstance(getattr(record, f.name), bytes)}


class Record:
    """Base of the figure records: to_json() gives the dict a page answers as JSON."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """This record's fields as JSON-ready data (see as_json); a record may add derived figures."""
        return fields_json(self)
