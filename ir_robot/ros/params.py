"""Typed node parameters: a frozen config dataclass declared as ROS parameters, validated on set.

Every field of the schema (nested dataclasses become ``prefix.field``) is declared
with a ``ParameterDescriptor`` carrying its help text, unit, range (as a ROS
``FloatingPointRange`` / ``IntegerRange``) and choices; the values from the params
file are checked by the same ``ir_robot.config.from_dict`` the CLI uses, so a bad
file fails at start-up with the field, the value and the allowed range. At run
time ``ros2 param set`` (or a ``SetParameters`` call) of an invalid value is
rejected with that reason and the node keeps its old value; a valid change
rebuilds the config and calls ``on_change(new_config, changed_names)``.
Fields listed in ``read_only`` (those that need the domain object rebuilt) refuse
run-time changes.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.parameter import Parameter

from ir_robot.config import from_dict
from ir_robot.core.errors import ConfigError

T = TypeVar("T")

_SCALAR = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}
_ARRAY = {
    bool: ParameterType.PARAMETER_BOOL_ARRAY,
    int: ParameterType.PARAMETER_INTEGER_ARRAY,
    float: ParameterType.PARAMETER_DOUBLE_ARRAY,
    str: ParameterType.PARAMETER_STRING_ARRAY,
}


@dataclasses.dataclass(frozen=True)
class ParamField:
    """One ROS parameter of a config schema: dotted name, field path, ROS type, optionality, metadata and default."""

    name: str  # dotted ROS parameter name
    path: tuple[str, ...]
    ptype: int  # rcl_interfaces ParameterType
    optional: bool  # None <-> "" (strings) or NaN (numbers)
    meta: dict
    default: Any


def _base(tp) -> tuple[Any, bool]:
    """Strip Optional: (inner type, optional?)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def schema_fields(schema: type, prefix: str = "", path: tuple[str, ...] = ()) -> list[ParamField]:
    """The ROS parameters a config dataclass maps to (unsupported field types are skipped)."""
    hints = typing.get_type_hints(schema)
    out: list[ParamField] = []
    for f in dataclasses.fields(schema):
        if not f.init:
            continue
        tp, optional = _base(hints[f.name])
        name = f"{prefix}{f.name}"
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += schema_fields(tp, f"{name}.", path + (f.name,))
            continue
        if typing.get_origin(tp) is typing.Literal:
            tp = type(typing.get_args(tp)[0])
        if tp in _SCALAR:
            ptype = _SCALAR[tp]
        elif typing.get_origin(tp) is tuple:
            args = [a for a in typing.get_args(tp) if a is not Ellipsis]
            if not args or any(a != args[0] for a in args) or args[0] not in _ARRAY:
                continue
            ptype = _ARRAY[args[0]]
        else:
            continue
        out.append(ParamField(name, path + (f.name,), ptype, optional, dict(f.metadata), default))
    return out


def _to_ros(field: ParamField, value: Any) -> Any:
    if value is None:
        return "" if field.ptype == ParameterType.PARAMETER_STRING else math.nan
    if isinstance(value, tuple):
        return list(value)
    return value


def _from_ros(field: ParamField, value: Any) -> Any:
    if field.optional and (value == "" or (isinstance(value, float) and math.isnan(value))):
        return None
    if field.ptype == ParameterType.PARAMETER_DOUBLE and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if field.ptype == ParameterType.PARAMETER_DOUBLE_ARRAY:
        return [float(v) for v in value]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
        return list(value)
    return value


def _descriptor(field: ParamField, read_only: bool) -> ParameterDescriptor:
    meta = field.meta
    text = meta.get("help", "") or ""
    if meta.get("unit"):
        text = f"{text} [{meta['unit']}]".strip()
    constraints = ""
    if meta.get("choices") is not None:
        constraints = f"one of {list(meta['choices'])}"
    if meta.get("range") is not None and field.ptype in _ARRAY.values():
        constraints = f"each value in {list(meta['range'])}"
    d = ParameterDescriptor(
        name=field.name, type=field.ptype, description=text, additional_constraints=constraints, read_only=read_only
    )
    rng = meta.get("range")
    if rng is not None and not field.optional:
        if field.ptype == ParameterType.PARAMETER_DOUBLE:
            d.floating_point_range = [FloatingPointRange(from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)]
        elif field.ptype == ParameterType.PARAMETER_INTEGER:
            d.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]), step=1)]
    return d


def _nest(flat: dict[tuple[str, ...], Any]) -> dict:
    out: dict = {}
    for path, value in flat.items():
        d = out
        for key in path[:-1]:
            d = d.setdefault(key, {})
        d[path[-1]] = value
    return out


class ConfigParameters(Generic[T]):
    """Bind ``schema`` to ``node``'s parameters (optionally under ``prefix``). ``.config`` is the live value."""

    def __init__(
        self,
        node,
        schema: type[T],
        *,
        prefix: str = "",
        read_only: tuple[str, ...] | bool = (),
        on_change: Callable[[T, tuple[str, ...]], None] | None = None,
        base: T | None = None,
    ):
        self.node = node
        self.schema = schema
        self.prefix = f"{prefix}." if prefix and not prefix.endswith(".") else prefix
        self.fields = {f.name: f for f in schema_fields(schema, self.prefix)}
        self.on_change = on_change
        overrides = getattr(node, "_parameter_overrides", {})  # read only, to accept 30 for a double
        values: dict[tuple[str, ...], Any] = {}
        for f in self.fields.values():
            ro = read_only if isinstance(read_only, bool) else f.name[len(self.prefix) :] in read_only
            default = getattr_path(base, f.path) if base is not None else f.default
            if default is dataclasses.MISSING:
                raise ConfigError(
                    f"node {node.get_name()}: {schema.__name__}.{f.name} has no default; give it in the params file"
                )
            over = overrides.get(f.name)
            ignore = False
            ros_default = _to_ros(f, default)
            if over is not None and f.ptype == ParameterType.PARAMETER_DOUBLE and over.type_ == Parameter.Type.INTEGER:
                ros_default, ignore = float(over.value), True
            if (
                over is not None
                and f.ptype == ParameterType.PARAMETER_DOUBLE_ARRAY
                and over.type_ == Parameter.Type.INTEGER_ARRAY
            ):
                ros_default, ignore = [float(v) for v in over.value], True
            desc = _descriptor(f, ro)
            if isinstance(ros_default, list) and not ros_default:
                param = node.declare_parameter(f.name, Parameter.Type(f.ptype), desc, ignore_override=ignore)
            else:
                try:
                    param = node.declare_parameter(f.name, ros_default, desc, ignore_override=ignore)
                except Exception as exc:  # InvalidParameterTypeException / ValueException from the params file
                    raise ConfigError(f"node {node.get_name()}: parameter '{f.name}': {exc}") from None
            values[f.path] = _from_ros(f, param.value) if param.value is not None else default
        self._values = values
        self.config: T = self._build(values, source=f"node {node.get_name()} parameters")
        node.add_pre_set_parameters_callback(self._coerce)
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    def _build(self, values: dict[tuple[str, ...], Any], source: str) -> T:
        return from_dict(self.schema, _nest(values), source=source)

    def _mine(self, params) -> list:
        return [p for p in params if p.name in self.fields]

    def _coerce(self, params):
        out = []
        for p in params:
            f = self.fields.get(p.name)
            if f is not None and f.ptype == ParameterType.PARAMETER_DOUBLE and p.type_ == Parameter.Type.INTEGER:
                p = Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
            elif (
                f is not None
                and f.ptype == ParameterType.PARAMETER_DOUBLE_ARRAY
                and p.type_ == Parameter.Type.INTEGER_ARRAY
            ):
                p = Parameter(p.name, Parameter.Type.DOUBLE_ARRAY, [float(v) for v in p.value])
            out.append(p)
        return out

    def _candidate(self, params) -> dict:
        values = dict(self._values)
        for p in self._mine(params):
            f = self.fields[p.name]
            values[f.path] = _from_ros(f, p.value)
        return values

    def _validate(self, params) -> SetParametersResult:
        if not self._mine(params):
            return SetParametersResult(successful=True)
        try:
            self._build(self._candidate(params), source=f"node {self.node.get_name()}")
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply(self, params) -> None:
        mine = self._mine(params)
        if not mine:
            return
        self._values = self._candidate(params)
        self.config = self._build(self._values, source=f"node {self.node.get_name()}")
        if self.on_change is not None:
            self.on_change(self.config, tuple(p.name for p in mine))


def getattr_path(obj: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` (field names) in nested dataclasses ``obj``."""
    for key in path:
        obj = getattr(obj, key)
    return obj


def declare_config(node, schema: type[T], **kwargs) -> ConfigParameters[T]:
    """Shorthand for :class:`ConfigParameters`."""
    return ConfigParameters(node, schema, **kwargs)


#: parameters every rclpy node has
ROS_BUILTIN = frozenset({"use_sim_time", "start_type_description_service"})


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def validate_section(schemas, section: dict, source: str) -> list:
    """Check one node's ``ros__parameters`` mapping against its ``(schema, prefix)`` pairs, without a node.

    Unknown names and bad values raise ConfigError naming ``source``, the parameter and the
    allowed values; returns the configs. The launcher runs it on every params file before
    starting anything.
    """
    flat = dict(_flatten(section or {}))
    fields = {f.name: f for schema, prefix in schemas for f in schema_fields(schema, prefix)}
    unknown = sorted(set(flat) - set(fields) - ROS_BUILTIN)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(fields), n=3)
        hint = f"did you mean {close}?" if close else f"this node has {sorted(fields)}"
        raise ConfigError(f"{source}: unknown parameter '{unknown[0]}'; {hint}")
    out = []
    for schema, prefix in schemas:
        values = {f.path: _from_ros(f, flat[f.name]) for f in schema_fields(schema, prefix) if f.name in flat}
        out.append(from_dict(schema, _nest(values), source=source))
    return out


def venipuncture_config(name: str):
    """The VenipunctureConfig the CLI (`ir-robot demo`) reads: ``name`` under config/ (or a path); '' = defaults."""
    from pathlib import Path

    from ir_robot.control.config import VenipunctureConfig, load_venipuncture_config
    from ir_robot.paths import data_path

    if not name:
        return VenipunctureConfig()
    path = Path(name) if ("/" in name or Path(name).is_absolute()) else data_path("config", name)
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: set the parameter to a VenipunctureConfig YAML "
            f"(e.g. venipuncture.yaml), or '' for the built-in defaults"
        )
    return load_venipuncture_config(path)
