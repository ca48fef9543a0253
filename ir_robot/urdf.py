"""The robot description (``urdf/*.urdf``) read once, in project units: the single source of the rig's
joint limits for the simulator, the controller and the ROS nodes.

URDF gives prismatic joints in metres and revolute ones in radians; here prismatic values are in
millimetres (``scale`` = 1000) and revolute ones stay in radians, matching ``JOINT_NAMES``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ir_robot.core.errors import ConfigError
from ir_robot.core.types import JOINT_NAMES, JointVector


@dataclass(frozen=True)
class JointLimit:
    """One joint's ``<limit>`` in project units (mm or rad; mm/s or rad/s; N or N m)."""

    name: str
    prismatic: bool
    lower: float
    upper: float
    velocity: float
    effort: float
    #: project units per URDF unit: 1000 for a prismatic joint (m -> mm), 1 for a revolute one
    scale: float


def read_joint_limits(path: str | Path, *, fixed_if_absent: bool = False) -> dict[str, JointLimit]:
    """Every rig joint (``JOINT_NAMES``) of the URDF at ``path``; a clear ConfigError if one is missing.

    With ``fixed_if_absent`` a joint the description does not have is fixed at 0 (limits [0, 0],
    speed 0) instead: the catheter drive has only ``insert_mm`` and ``roll_rad``.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"cannot read the robot description {path}: {exc}") from None
    out: dict[str, JointLimit] = {}
    for joint in root.iter("joint"):
        name = joint.get("name")
        lim = joint.find("limit")
        if name not in JOINT_NAMES or lim is None:
            continue
        prismatic = joint.get("type") == "prismatic"
        scale = 1000.0 if prismatic else 1.0
        try:
            out[name] = JointLimit(
                name=name,
                prismatic=prismatic,
                lower=float(lim.get("lower", "nan")) * scale,
                upper=float(lim.get("upper", "nan")) * scale,
                velocity=float(lim.get("velocity", "nan")) * scale,
                effort=float(lim.get("effort", "0")),
                scale=scale,
            )
        except ValueError as exc:
            raise ConfigError(f"{path}: joint {name}'s <limit> is not numeric: {exc}") from None
    missing = [n for n in JOINT_NAMES if n not in out]
    if fixed_if_absent:
        for n in missing:
            out[n] = JointLimit(n, n.endswith("_mm"), 0.0, 0.0, 0.0, 0.0, 1000.0 if n.endswith("_mm") else 1.0)
        missing = []
    if missing:
        raise ConfigError(f"{path} has no <limit> for joints {missing}; the rig needs {list(JOINT_NAMES)}")
    return out


def joint_limit_vectors(
    path: str | Path, *, fixed_if_absent: bool = False
) -> tuple[JointVector, JointVector, JointVector]:
    """(lower, upper, velocity) of the rig joints as JointVectors, in mm / rad (see :func:`read_joint_limits`)."""
    limits = read_joint_limits(path, fixed_if_absent=fixed_if_absent)
    return (
        JointVector(**{n: limits[n].lower for n in JOINT_NAMES}),
        JointVector(**{n: limits[n].upper for n in JOINT_NAMES}),
        JointVector(**{n: limits[n].velocity for n in JOINT_NAMES}),
    )
