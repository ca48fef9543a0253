"""Typed configuration: YAML -> frozen dataclass, validated, with errors for people.

A schema is a frozen dataclass. Each field may carry metadata
``{"range": (lo, hi), "unit": "mm", "choices": (...), "help": "..."}`` built with
:func:`param`. :func:`from_dict` refuses missing fields (those without defaults),
unknown fields, wrong types and values outside their range, naming the file, the
field path and the allowed values. Nothing is read at import time.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ir_robot.core.errors import ConfigError

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def param(
    default: Any = _MISSING,
    *,
    range: tuple[float, float] | None = None,
    unit: str = "",
    choices: tuple[Any, ...] | None = None,
    help: str = "",
    default_factory: Any = _MISSING,
) -> Any:
    """A dataclass field with validation metadata."""
    meta = {"range": range, "unit": unit, "choices": choices, "help": help}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if default is _MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _err(source: str | None, path: str, msg: str) -> ConfigError:
    prefix = f"{source}: " if source else ""
    return ConfigError(f"{prefix}field '{path}': {msg}")


def _describe(meta: dict[str, Any]) -> str:
    parts = []
    if meta.get("range") is not None:
        lo, hi = meta["range"]
        parts.append(f"allowed range [{lo}, {hi}]{(' ' + meta['unit']) if meta.get('unit') else ''}")
    if meta.get("choices") is not None:
        parts.append(f"one of {list(meta['choices'])}")
    return "; ".join(parts)


def _check_scalar(value: Any, meta: dict[str, Any], source: str | None, path: str) -> None:
    rng = meta.get("range")
    if rng is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = rng
        if not math.isfinite(float(value)) or value < lo or value > hi:
            raise _err(source, path, f"value {value!r} is outside the {_describe(meta)}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise _err(source, path, f"value {value!r} is not {_describe(meta)}")


def _convert(tp: Any, value: Any, meta: dict[str, Any], source: str | None, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        last: ConfigError | None = None
        for a in non_none:
            try:
                return _convert(a, value, meta, source, path)
            except ConfigError as exc:
                last = exc
        raise last or _err(source, path, f"cannot use {value!r}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _err(source, path, f"expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, source=source, path=path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _err(source, path, f"expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, meta, source, f"{path}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise _err(source, path, f"expected {len(args)} values, got {len(value)}")
        return tuple(
            _convert(a, v, meta, source, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _err(source, path, f"expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _err(source, path, f"expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _err(
                source, path, f"expected a number, got {value!r}" + (f" ({_describe(meta)})" if _describe(meta) else "")
            )
        value = float(value)
        _check_scalar(value, meta, source, path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _err(source, path, f"expected an integer, got {value!r}")
        _check_scalar(value, meta, source, path)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _err(source, path, f"expected a string, got {value!r}")
        _check_scalar(value, meta, source, path)
        return value
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise _err(source, path, f"value {value!r} is not one of {list(args)}")
        return value
    return value


def from_dict(schema: type[T], data: dict[str, Any], *, source: str | None = None, path: str = "") -> T:
    """Build ``schema`` from a mapping, refusing unknown, missing and out-of-range fields."""
    if not isinstance(data, dict):
        raise _err(source, path or "<root>", f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(schema)
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"from_dict builds dataclasses; {schema!r} is not a dataclass type")
    known = {f.name: f for f in dataclasses.fields(schema) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f"{path}." if path else ""
        raise _err(source, f"{where}{unknown[0]}", f"unknown field; {schema.__name__} accepts {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        fpath = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:
                extra = _describe(dict(f.metadata))
                raise _err(source, fpath, "missing required field" + (f" ({extra})" if extra else ""))
            continue
        kwargs[name] = _convert(hints[name], data[name], dict(f.metadata), source, fpath)
    try:
        obj = schema(**kwargs)
    except ConfigError as exc:
        prefix = f"{source}: " if source and not str(exc).startswith(str(source)) else ""
        raise ConfigError(prefix + str(exc)) from None
    return obj


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain YAML/JSON-ready data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load(path: str | Path, schema: type[T], *, section: str | None = None) -> T:
    """Load a YAML file (optionally one top-level ``section``) into ``schema``."""
    data = read_yaml(path)
    if section is not None:
        if section not in data:
            raise ConfigError(f"{path}: missing section '{section}' (found {sorted(data)})")
        data = data[section]
    return from_dict(schema, data, source=str(path))
