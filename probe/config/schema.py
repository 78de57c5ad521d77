"""Strict TOML-table -> dataclass loading with errors that point at the spot.

Every config section (and every check type's options) is a frozen dataclass. Its
annotations say what a key accepts; `Problems` collects one line per mistake, so
`probe validate` can print them all at once instead of stopping at the first.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, NewType, Union

from probe.core.units import format_duration, parse_duration

Duration = NewType("Duration", float)
"""Seconds, written in TOML as "500ms", "30s", "5m", "1h", "7d" or a number."""


@dataclass
class Problems:
    """Collects `file: place: key problem` lines."""

    file: str
    lines: list[str] = field(default_factory=list)

    def add(self, place: str, key: str | None, message: str) -> None:
        where = f"{self.file}: {place}: " if place else f"{self.file}: "
        self.lines.append(_hide_secrets(f"{where}{key + ' ' if key else ''}{message}"))

    def __bool__(self) -> bool:
        return bool(self.lines)


class EnvMissing(Exception):
    pass


_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|(\$\{)")  # the last: a "${" that is no reference
# Values that `${NAME}` expanded to, so an error message can say "${NAME}" instead.
_expanded: dict[str, str] = {}


def _hide_secrets(text: str) -> str:
    for value in sorted(_expanded, key=len, reverse=True):
        if len(value) >= 3:
            text = text.replace(value, _expanded[value])
    return text


def expand_env(text: str) -> str:
    """`${NAME}` becomes the variable's value; `$$` a literal dollar sign."""

    def sub(match: re.Match) -> str:
        name, broken = match.groups()
        if broken:
            raise Invalid('has "${" without a variable name and a closing "}" (write "$$" for a literal "$")')
        if name is None:
            return "$"
        if name not in os.environ:
            raise EnvMissing(name)
        _expanded[os.environ[name]] = match.group(0)
        return os.environ[name]

    return _ENV.sub(sub, text)


def show(value: Any) -> str:
    """A value as the operator wrote it, for "(got ...)" in messages."""
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


class Invalid(Exception):
    """Raised by converters; the message completes "<key> ..."."""


_ANY_CASE: set = set()


def any_case(literal: Any) -> Any:
    """A Literal of words that may be written in any case ("a" is DNS's "A"); stored as listed."""
    _ANY_CASE.add(literal)
    return literal


def _describe(tp: Any) -> str:
    if tp is Duration:
        return 'a duration such as "30s"'
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(show(v) for v in typing.get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, "valid")


def convert(tp: Any, value: Any) -> Any:
    """Check `value` against annotation `tp`; return the typed value or raise Invalid."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [t for t in typing.get_args(tp) if t is not type(None)]
        errors = []
        for option in options:
            try:
                return convert(option, value)
            except Invalid as exc:
                errors.append(str(exc))
        raise Invalid(errors[0] if len(options) == 1 else
                      "must be " + " or ".join(_describe(t) for t in options) + f" (got {show(value)})")
    if tp is Any:
        return _expand_deep(value)
    if tp is Duration:
        try:
            return parse_duration(expand_env(value) if isinstance(value, str) else value)
        except ValueError as exc:
            raise Invalid(f"{exc} (got {show(value)})") from None
    if origin is Literal:
        if value not in typing.get_args(tp):
            same = [v for v in typing.get_args(tp) if tp in _ANY_CASE and isinstance(value, str) and v.lower() == value.lower()]
            if same:
                return same[0]
            raise Invalid(f"must be {_describe(tp)} (got {show(value)})")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise Invalid(f"must be a list (got {show(value)})")
        (item_tp, *_) = typing.get_args(tp)
        items = []
        for i, item in enumerate(value):
            try:
                items.append(convert(item_tp, item))
            except Invalid as exc:
                raise Invalid(f"[{i}] {exc}") from None
        return tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"must be a table (got {show(value)})")
        _, item_tp = typing.get_args(tp)
        out = {}
        for k, v in value.items():
            try:
                out[k] = convert(item_tp, v)
            except Invalid as exc:
                raise Invalid(f'."{k}" {exc}') from None
        return out
    return _convert_scalar(tp, value)


def _convert_scalar(tp: Any, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            try:
                return expand_env(value)
            except EnvMissing as exc:
                raise Invalid(f"uses ${{{exc}}}, but the environment variable {exc} is not set") from None
    else:  # pragma: no cover - a programming error in a dataclass annotation
        raise TypeError(f"unsupported annotation {tp!r}")
    raise Invalid(f"must be {_describe(tp)} (got {show(value)})")


def _expand_deep(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return expand_env(value)
        except EnvMissing as exc:
            raise Invalid(f"uses ${{{exc}}}, but the environment variable {exc} is not set") from None
    if isinstance(value, list):
        return [_expand_deep(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand_deep(v) for k, v in value.items()}
    return value


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def unknown_key_message(key: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f'unknown key "{key}"{hint}'


def load(cls: type, table: dict[str, Any], problems: Problems, place: str) -> Any | None:
    """Build `cls` from `table`. Unknown keys, missing keys and bad values go to `problems`.

    After construction, `cls.problems(self)` (if defined) yields (key, message) pairs
    for checks that involve several keys. Returns None when anything was wrong.
    """
    types_ = field_types(cls)
    before = len(problems.lines)
    values = {}
    for key, raw in table.items():
        if key not in types_:
            problems.add(place, None, unknown_key_message(key, types_))
            continue
        try:
            values[key] = convert(types_[key], raw)
        except Invalid as exc:
            problems.add(place, key, str(exc))
    for f in dataclasses.fields(cls):
        if f.init and f.name not in table and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            problems.add(place, f.name, "is required")
    if len(problems.lines) > before:
        return None
    obj = cls(**values)
    for key, message in getattr(obj, "problems", lambda: ())():
        problems.add(place, key, message)
    return None if len(problems.lines) > before else obj


def at_least(key: str, value: float | int | None, minimum: float | int, *, duration: bool = False):
    """Yield a (key, message) pair when `value` is below `minimum`."""
    if value is not None and value < minimum:
        fmt = format_duration if duration else str
        yield key, f"must be at least {fmt(minimum)} (got {fmt(value)})"


def positive(key: str, value: float | int | None, *, duration: bool = False):
    if value is not None and value <= 0:
        fmt = format_duration if duration else str
        yield key, f"must be greater than 0 (got {fmt(value)})"


def load_entries(items: Any, section: str, problems: Problems, load_one) -> tuple:
    """[[section]] -> objects with an `id`, one problem line per mistake. `load_one(table,
    place)` returns the object or None; a repeated id is reported against its first use."""
    if not isinstance(items, list):
        problems.add("", section, f"must be an array of tables ([[{section}]])")
        return ()
    found, seen = [], {}
    for index, table in enumerate(items):
        entry_id = table.get("id") if isinstance(table, dict) else None
        place = f'{section}[{index}] "{entry_id}"' if isinstance(entry_id, str) else f"{section}[{index}]"
        if not isinstance(table, dict):
            problems.add(place, None, "must be a table")
            continue
        entry = load_one(table, place)
        if entry is None:
            continue
        if entry.id in seen:
            problems.add(place, "id", f'"{entry.id}" is already used by {section}[{seen[entry.id]}]')
            continue
        seen[entry.id] = index
        found.append(entry)
    return tuple(found)
