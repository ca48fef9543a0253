"""ROS 2 message definitions as MCAP ``ros2msg`` schema text, read from installed ``.msg`` files.

A schema is the type's own ``.msg`` text followed by every type it uses, each
after a separator line and ``MSG: pkg/Type`` (the layout ``ros2 bag`` and
Foxglove write and read). Definitions are looked up in ``<prefix>/share/<pkg>/msg``
for the Python prefixes and every prefix in ``AMENT_PREFIX_PATH``; no ROS import.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

from ir_robot.core.errors import IrRobotError

SEPARATOR = "=" * 80

#: ROS 2 primitive field types (everything else names a message)
PRIMITIVES = frozenset(
    {
        "bool",
        "byte",
        "char",
        "float32",
        "float64",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "string",
        "wstring",
    }
)

_FIELD = re.compile(r"^\s*([A-Za-z][\w/]*)(?:<=\d+)?(?:\[[^\]]*\])?\s+([A-Za-z]\w*)(\s*=.*)?")


class MessageDefinitionError(IrRobotError):
    """A message type's ``.msg`` file cannot be found or parsed."""


def normalise_type(type_name: str) -> tuple[str, str]:
    """``'sensor_msgs/msg/Image'`` or ``'sensor_msgs/Image'`` -> ``('sensor_msgs', 'Image')``."""
    parts = type_name.strip().split("/")
    if len(parts) == 3 and parts[1] == "msg":
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise MessageDefinitionError(f"message type {type_name!r} is not of the form pkg/msg/Type or pkg/Type")


def search_prefixes() -> list[Path]:
    """Install prefixes whose ``share/`` may hold message packages (ROS installs first)."""
    out: list[Path] = []
    for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if p:
            out.append(Path(p))
    out += [Path(sys.prefix), Path(sys.base_prefix)]
    seen: set[Path] = set()
    unique: list[Path] = []
    for prefix in out:
        if prefix not in seen:
            seen.add(prefix)
            unique.append(prefix)
    return unique


@functools.cache
def msg_file(pkg: str, name: str) -> Path:
    """Path of ``pkg/msg/name.msg`` under the first prefix that has it."""
    for prefix in search_prefixes():
        path = prefix / "share" / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    raise MessageDefinitionError(
        f"no definition for {pkg}/msg/{name}: looked for share/{pkg}/msg/{name}.msg under "
        f"{[str(p) for p in search_prefixes()]}; install the {pkg} package (pip: ros-{pkg.replace('_', '-')}) "
        f"or source your ROS 2 setup so AMENT_PREFIX_PATH lists it"
    )


def dependencies(pkg: str, text: str) -> list[tuple[str, str]]:
    """Message types a ``.msg`` text refers to, in order of first use (constants skipped)."""
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        m = _FIELD.match(line)
        if not m or m.group(3):  # not a field, or a constant (NAME=value)
            continue
        ftype = m.group(1)
        if ftype in PRIMITIVES:
            continue
        if ftype == "Header":  # ROS 1 shorthand, still accepted by rosidl
            dep = ("std_msgs", "Header")
        elif "/" in ftype:
            dep = normalise_type(ftype)
        else:
            dep = (pkg, ftype)
        if dep not in out:
            out.append(dep)
    return out


@functools.cache
def message_definition(type_name: str) -> str:
    """The full ``ros2msg`` schema text for ``type_name`` with every nested type appended once."""
    pkg, name = normalise_type(type_name)
    root = msg_file(pkg, name).read_text()
    parts = [root.rstrip("\n")]
    seen = {(pkg, name)}
    queue = dependencies(pkg, root)
    while queue:
        dep = queue.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        text = msg_file(*dep).read_text()
        parts.append(f"{SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{text.rstrip(chr(10))}")
        queue.extend(d for d in dependencies(dep[0], text) if d not in seen)
    return "\n".join(parts) + "\n"


def schema_name(type_name: str) -> str:
    """The canonical ``pkg/msg/Type`` name used for MCAP schemas and ROS type strings."""
    pkg, name = normalise_type(type_name)
    return f"{pkg}/msg/{name}"
