"""The generic half of the config: TOML values checked against the dataclass annotations, unknown keys
with a suggestion, the list of every key the file may hold, and the value checks sections share (server
URLs, environment variable names). collector/config.py holds the sections and their own rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connectors.scrub import looks_like_secret, scrub_url


class ConfigError(ValueError):
    """A config mistake; str() is one line that names the offending key."""


# Fields whose TOML key is a Python keyword: field name -> key in the file
FIELD_KEYS = {"sender": "from"}
# dataclass field metadata marking a field that is no key of the file (e.g. where the file was read from)
NOT_A_KEY = {"toml": False}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SchemaKey:
    """One key the config file may hold: its dotted name (`stages[].name` in [[stages]]) and its type."""

    key: str
    annotation: Any

    @property
    def is_section(self) -> bool:
        """True for a table of known keys ([github], [report.smtp]) or an array of them ([[stages]])."""
        inner = _unwrap(self.annotation)
        return dataclasses.is_dataclass(inner) or (
            typing.get_origin(inner) is tuple and dataclasses.is_dataclass(typing.get_args(inner)[0]))


def file_fields(owner: type) -> list[dataclasses.Field[Any]]:
    """The dataclass fields that are keys of the file."""
    return [f for f in dataclasses.fields(owner) if f.metadata.get("toml", True)]  # type: ignore[arg-type]


def schema_keys(owner: type, prefix: str = "") -> list[SchemaKey]:
    """Every key under a section dataclass, depth first, sections before their keys."""
    keys: list[SchemaKey] = []
    for f in file_fields(owner):
        annotation = resolve(owner, f.name)
        name = f"{prefix}{FIELD_KEYS.get(f.name, f.name)}"
        keys.append(SchemaKey(name, annotation))
        inner = _unwrap(annotation)
        if dataclasses.is_dataclass(inner):
            keys += schema_keys(inner, f"{name}.")  # type: ignore[arg-type]
        elif typing.get_origin(inner) is tuple and dataclasses.is_dataclass(typing.get_args(inner)[0]):
            keys += schema_keys(typing.get_args(inner)[0], f"{name}[].")
    return keys


def _unwrap(annotation: Any) -> Any:
    """The annotation without its `| None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def resolve(owner: type, name: str) -> Any:
    """The real (non-string) annotation of a dataclass field."""
    return typing.get_type_hints(owner)[name]


def reject_unknown(table: dict[str, Any], known: set[str], prefix: str) -> None:
    """Name the first unknown key, with a suggestion when one is close."""
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            suggestion = f" (did you mean {prefix}{hint[0]}?)" if hint else ""
            raise ConfigError(f"{prefix}{key}: unknown key{suggestion}")


def check_url(key: str, url: str) -> None:
    """A server's http(s) base URL: no credentials in it (they would show in every message) and no query."""
    shown = scrub_url(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ConfigError(f"{key}: {shown!r} is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", url):
        raise ConfigError(f"{key}: {shown!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{key}: {shown!r} carries credentials; put them in environment variables named by "
                          "the section's *_env keys")
    if parts.query or parts.fragment:
        raise ConfigError(f"{key}: {shown!r} must not carry a query string or fragment")


def check_env_name(key: str, name: str | None) -> None:
    """A *_env key must hold the NAME of an environment variable, never the secret (which is not shown)."""
    if name is None:
        return
    if looks_like_secret(name):
        raise ConfigError(f"{key}: this looks like a secret itself (not shown); put it in an environment "
                          "variable and give that variable's NAME here (names are UPPER_CASE)")
    if not _ENV_NAME.match(name):
        raise ConfigError(f"{key}: {name!r} must be the NAME of an environment variable")


def type_name(value: Any) -> str:
    """A TOML-flavoured name for a Python value's type."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table",
             dt.datetime: "datetime", dt.date: "date", dt.time: "time"}
    return names.get(type(value), type(value).__name__)


def convert(value: Any, annotation: Any, key: str) -> Any:
    """Check one value against its annotation and convert it (dates, paths, tuples, nested tables)."""
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type_name(value)}")
        names = {FIELD_KEYS.get(f.name, f.name): f.name for f in file_fields(annotation)}  # type: ignore[arg-type]
        reject_unknown(value, set(names), f"{key}.")
        value = {names[k]: v for k, v in value.items()}
        for f in file_fields(annotation):  # type: ignore[arg-type]
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and f.name not in value:
                raise ConfigError(f"{key}.{FIELD_KEYS.get(f.name, f.name)}: missing (required)")
        fields = {k: convert(v, resolve(annotation, k), f"{key}.{FIELD_KEYS.get(k, k)}")  # type: ignore[arg-type]
                  for k, v in value.items()}
        return annotation(**fields)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected an array, got {type_name(value)} {_shown(value)}")
        item_type = typing.get_args(annotation)[0]
        return tuple(convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type_name(value)} {_shown(value)}")
        value_type = typing.get_args(annotation)[1]
        return {k: convert(v, value_type, f"{key}.{k}") for k, v in value.items()}
    return _convert_scalar(value, annotation, key)


def _shown(value: Any) -> str:
    """A value for a message: repr, cut short, never a secret-looking string."""
    if isinstance(value, str) and looks_like_secret(value):
        return "(value not shown)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _convert_scalar(value: Any, annotation: Any, key: str) -> Any:
    """Check and convert a leaf value."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif annotation is Path:
        if isinstance(value, str) and value.strip():
            return Path(value).expanduser()
        if isinstance(value, str):
            raise ConfigError(f"{key}: must not be empty")
    elif annotation is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise ConfigError(f"{key}: {_shown(value)} is not a date like 2026-01-01") from None
    else:
        raise TypeError(f"unsupported config annotation {annotation!r} for {key}")
    expected = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
                Path: "a path string", dt.date: "a date"}[annotation]
    raise ConfigError(f"{key}: expected {expected}, got {type_name(value)} {_shown(value)}")
