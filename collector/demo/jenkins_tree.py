"""The Jenkins JSON API's `tree` parameter: a parser and the filter that applies it to an answer.

`tree=name,allBuilds[number,actions[causes[shortDescription]]]{0,100}` names the fields to return, nested
with brackets, and a `{M,N}` window (N exclusive; `{M,}`, `{,N}` and `{N}` too) slices a list. Objects keep
their `_class`. Some properties are hidden unless a tree names them (Hidden), and lists of objects are
rendered lazily (Nested), so a window over thousands of builds renders only the builds it returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class TreeError(ValueError):
    """A malformed `tree` expression."""


@dataclass(frozen=True)
class TreeField:
    """One field of a tree expression: name, sub-fields and an optional {M,N} window (N exclusive)."""

    name: str
    children: tuple[TreeField, ...] = ()
    window: tuple[int | None, int | None] | None = None


@dataclass(frozen=True)
class Hidden:
    """A property shown only when a tree names it (allBuilds, TimeInQueueAction's fields)."""

    value: Any


@dataclass(frozen=True)
class Nested:
    """A list of objects rendered lazily: as references without a tree, in full (then filtered) with one."""

    items: Sequence[Any]
    full: Callable[[Any], Any]
    ref: Callable[[Any], Any]


_NAME = re.compile(r"[A-Za-z_$][\w$]*")


def parse_tree(text: str) -> tuple[TreeField, ...]:
    """Parse `a,b[c,d[e]]{0,100}` into fields; raises TreeError naming the position of a mistake."""
    fields, pos = _fields(text, 0)
    if pos != len(text):
        raise TreeError(f"unexpected {text[pos]!r} at position {pos} of tree")
    return fields


def _fields(text: str, pos: int) -> tuple[tuple[TreeField, ...], int]:
    found = []
    while True:
        match = _NAME.match(text, pos)
        if match is None:
            raise TreeError(f"a field name was expected at position {pos} of tree")
        name, pos, children, window = match.group(), match.end(), (), None
        if text.startswith("[", pos):
            children, pos = _fields(text, pos + 1)
            if not text.startswith("]", pos):
                raise TreeError(f"']' was expected at position {pos} of tree")
            pos += 1
        if text.startswith("{", pos):
            close = text.find("}", pos)
            spec = re.fullmatch(r"(\d*)(,?)(\d*)", text[pos + 1:close]) if close > 0 else None
            if spec is None or not (spec.group(1) or spec.group(3)):
                raise TreeError(f"a range like {{0,100}} was expected at position {pos} of tree")
            low = int(spec.group(1)) if spec.group(1) else None
            high = int(spec.group(3)) if spec.group(3) else None
            window, pos = (low, high if spec.group(2) else (low or 0) + 1), close + 1
        found.append(TreeField(name, children, window))
        if not text.startswith(",", pos):
            return tuple(found), pos
        pos += 1


def visible(value: Any) -> Any:
    """The default (depth 0) view: hidden properties dropped, nested lists as references."""
    if isinstance(value, Nested):
        return [visible(value.ref(item)) for item in value.items]
    if isinstance(value, dict):
        return {k: visible(v) for k, v in value.items() if not isinstance(v, Hidden)}
    if isinstance(value, list):
        return [visible(v) for v in value]
    return value


def pick(value: Any, fields: tuple[TreeField, ...]) -> Any:
    """What a tree selects: named properties only (hidden ones too); objects always keep their _class."""
    if isinstance(value, Nested):
        return [pick(value.full(item), fields) for item in value.items]
    if isinstance(value, list):
        return [pick(v, fields) for v in value]
    if not isinstance(value, dict):
        return value
    out = {"_class": value["_class"]} if "_class" in value else {}
    for field in fields:
        if field.name not in value:
            continue
        chosen = value[field.name]
        chosen = chosen.value if isinstance(chosen, Hidden) else chosen
        if field.window is not None and isinstance(chosen, Nested | list):
            low, high = field.window
            if isinstance(chosen, Nested):
                chosen = Nested(chosen.items[low:high], chosen.full, chosen.ref)
            else:
                chosen = chosen[low:high]
        out[field.name] = pick(chosen, field.children)
    return out
