"""Strict YAML -> dataclass conversion for configs: unknown keys, wrong types and missing
required keys become a `ConfigError` whose message starts with the dotted key.

    build_dataclass(TrainConfig, {"training": {"lambdas": {"mell": 1}}})
    -> ConfigError("training.lambdas.mell: unknown key (did you mean 'mel'?)")

Supported field types: bool, int, float (ints widen; numeric strings such as YAML 1.1's `1e-4`
are accepted), str, Literal[...], list[T], dict[str, Any], Optional/unions, nested dataclasses.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration problem; the message starts with the dotted key it concerns."""


def build_dataclass(cls: type, raw: Any) -> Any:
    """Build dataclass `cls` from a nested dict, checking every key and type."""
    return _build(cls, raw, "")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a dict, checking keys and types recursively."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in raw:
        if not isinstance(key, str) or key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"{_join(prefix, str(key))}: unknown key{hint}")
    kwargs = {}
    for f in fields(cls):
        key = _join(prefix, f.name)
        if f.name in raw:
            kwargs[f.name] = _convert(raw[f.name], hints[f.name], key)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{key}: missing required key")
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against type `tp`; returns it (ints widened to float where a float is due)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ConfigError:
                continue
        raise _type_error(value, tp, key)
    if is_dataclass(tp):
        return _build(tp, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(value, tp, key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, tp, key)
        return value
    if tp is float:
        # YAML 1.1 reads `1e-4` (no dot) as a string: accept numeric strings for float fields.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _type_error(value, tp, key) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(value, tp, key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(value, tp, key)
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _type_error(value, tp, key)
        return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(value, tp, key)
        for k in value:
            if not isinstance(k, str):
                raise ConfigError(f"{key}: keys must be strings, got {k!r}")
        return dict(value)
    raise TypeError(f"config schema: unsupported type {tp!r} at {key}")  # programming error


def _type_error(value: Any, tp: Any, key: str) -> ConfigError:
    return ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
