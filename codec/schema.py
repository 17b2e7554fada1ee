"""The one config mechanism: strict dict -> dataclass building with per-component validation.

Every configuration (the training config, `ALMConfig`, `EnCodecConfig`) is a tree of
dataclasses built by `build_dataclass`. Unknown keys, wrong types and missing required keys
become a `ConfigError` whose message starts with the dotted key:

    build_dataclass(TrainConfig, {"training": {"lambdas": {"mell": 1}}})
    -> ConfigError("training.lambdas.mell: unknown key (did you mean 'mel'?)")

After a dataclass is built, its `validate()` (when it has one) checks the values. A component
names keys relative to itself (`EnCodecConfig.validate` says `n_q: ...`); whoever nests it
adds the path (`model.base_args.n_q: ...`), so one component reads the same everywhere.
`config_section(prefix)` does that for errors raised outside the builder.

Supported field types: bool, int, float (ints widen; numeric strings such as YAML 1.1's `1e-4`
are accepted; inf and nan are refused), str, Literal[...], list[T], dict[str, Any],
Optional/unions, nested dataclasses.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import types
import typing
from collections.abc import Iterator
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message starts with the dotted key it concerns."""


class ConfigTypeError(ConfigError, TypeError):
    """A value of the wrong type (also a TypeError, for callers that catch that)."""


def build_dataclass(cls: type[T], raw: Any, prefix: str = "") -> T:
    """Build dataclass `cls` from a nested dict, checking every key, type and `validate()`.

    `prefix` is the dotted path of `cls` in an enclosing config; error keys start with it.
    """
    return _build(cls, raw, prefix)


def join_key(prefix: str, key: str) -> str:
    """`a.b` + `c` -> `a.b.c`; `a.b` + `[0].c` -> `a.b[0].c`; an empty side is dropped."""
    if not prefix:
        return key
    if not key:
        return prefix
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


@contextlib.contextmanager
def config_section(prefix: str) -> Iterator[None]:
    """Prepend `prefix` to the key of any `ConfigError` raised in the block."""
    try:
        yield
    except ConfigError as e:
        if prefix:
            e.args = (join_key(prefix, str(e)), *e.args[1:])
        raise


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a dict, checking keys and types recursively."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigTypeError(f"{prefix or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in raw:
        if not isinstance(key, str) or key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"{join_key(prefix, str(key))}: unknown key{hint}")
    kwargs = {}
    for f in fields(cls):
        key = join_key(prefix, f.name)
        if f.name in raw:
            kwargs[f.name] = _convert(raw[f.name], hints[f.name], key)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{key}: missing required key")
    with config_section(prefix):  # __post_init__ and validate() name keys relative to `cls`
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            validate()
    return obj


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
            except ConfigTypeError:
                continue  # another member may fit; a value error (inf, a bad key) is final
        raise _type_error(value, tp, key)
    if is_dataclass(tp):
        return _build(tp, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigTypeError(f"{key}: expected {_type_name(tp)}, got {value!r}")
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
        return _convert_float(value, tp, key)
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
                raise ConfigTypeError(f"{key}: keys must be strings, got {k!r}")
        return dict(value)
    raise TypeError(f"config schema: unsupported type {tp!r} at {key}")  # programming error


def _convert_float(value: Any, tp: Any, key: str) -> float:
    # YAML 1.1 reads `1e-4` (no dot) as a string: accept numeric strings for float fields.
    if isinstance(value, str):
        try:
            out = float(value)
        except ValueError:
            raise _type_error(value, tp, key) from None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, tp, key)
    else:
        try:
            out = float(value)
        except OverflowError:  # an int beyond float's range
            out = math.inf
    if not math.isfinite(out):  # YAML reads `.inf` / `.nan` as floats
        raise ConfigError(f"{key}: must be a finite number, got {out}")
    return out


def _type_error(value: Any, tp: Any, key: str) -> ConfigTypeError:
    return ConfigTypeError(
        f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
    )
