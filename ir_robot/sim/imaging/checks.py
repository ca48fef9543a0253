"""Range checks for the imaging parameter dataclasses, so direct construction is validated like YAML.

:func:`ir_robot.config.from_dict` checks ranges when a YAML file is read; a frozen dataclass
built in code skips that path. :func:`check_ranges` (called from ``__post_init__``) applies the
same ``param(range=...)`` metadata to every number, and to every number inside a tuple, so a bad
value always raises one :class:`~ir_robot.core.errors.ConfigError` naming the field and its range.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ir_robot.core.errors import ConfigError


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def range_error(owner: str, name: str, value: object, lo: float, hi: float, unit: str = "") -> ConfigError:
    """The one error for a value outside its allowed range: names the parameter, the value and the range."""
    u = f" {unit}" if unit else ""
    return ConfigError(f"{owner}.{name}: value {value!r} is outside the allowed range [{lo}, {hi}]{u}")


def check_value(owner: str, name: str, value: float, lo: float, hi: float, unit: str = "") -> float:
    """``value`` as a float if finite and within [lo, hi], else a :class:`ConfigError` naming it."""
    if not _is_number(value) or not math.isfinite(float(value)) or not lo <= float(value) <= hi:
        raise range_error(owner, name, value, lo, hi, unit)
    return float(value)


def check_ranges(obj: Any) -> None:
    """Check every ranged field of the dataclass ``obj`` (numbers and tuples of numbers)."""
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        rng = f.metadata.get("range")
        if rng is None:
            continue
        lo, hi = rng
        unit = f.metadata.get("unit", "")
        value = getattr(obj, f.name)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if _is_number(v):
                check_value(owner, f.name, v, lo, hi, unit)
