"""The joint limits a controller plans within and a rig saturates to: the rig's joint limits shrunk by
the safety margins, with the needle pivot (x, y, z) inside the safety workspace box.

One implementation for the simulated episode (:func:`ir_robot.evaluation.episode.run_episode`, through
the safety layer), the ROS controller node (limits from the URDF) and the ROS rig interface
(command saturation). Fixed joints (equal lower and upper limits, e.g. the height of a 3-axis stage)
keep the rig's value: no margin, no workspace clamp. Arrays are in ``JOINT_NAMES`` order, mm / rad.
"""

from __future__ import annotations

import numpy as np

from ir_robot.core.types import JOINT_NAMES, JointVector

#: prismatic joints (mm); the others are revolute (rad)
LINEAR = np.array([n.endswith("_mm") for n in JOINT_NAMES])
#: the pivot's x, y, z are the first three joints
_PIVOT = slice(0, 3)


def with_margins(lower, upper, safety) -> tuple[np.ndarray, np.ndarray]:
    """``lower``/``upper`` moved inwards by ``safety.limit_margin_mm`` / ``limit_margin_rad`` (not on fixed joints)."""
    lo, hi = np.array(lower, dtype=float), np.array(upper, dtype=float)
    margin = np.where(LINEAR, safety.limit_margin_mm, safety.limit_margin_rad)
    margin = np.where(hi - lo < 1e-9, 0.0, margin)  # a fixed joint has no room to keep
    return lo + margin, hi - margin


def within_workspace(lower, upper, safety) -> tuple[np.ndarray, np.ndarray]:
    """``lower``/``upper`` with the pivot's x, y, z also inside ``safety.workspace_min_mm .. workspace_max_mm``
    (fixed axes keep their value).
    """
    lo, hi = np.array(lower, dtype=float), np.array(upper, dtype=float)
    movable = hi[_PIVOT] > lo[_PIVOT]
    lo[_PIVOT] = np.where(movable, np.maximum(lo[_PIVOT], safety.workspace_min_mm), lo[_PIVOT])
    hi[_PIVOT] = np.where(movable, np.minimum(hi[_PIVOT], safety.workspace_max_mm), hi[_PIVOT])
    return lo, hi


def planning_limits(lower: JointVector, upper: JointVector, safety) -> tuple[JointVector, JointVector]:
    """The rig's joint limits (``JointVector``) with the margins and the workspace: what a controller plans in."""
    lo, hi = within_workspace(*with_margins(lower.as_array(), upper.as_array(), safety), safety)
    return JointVector.from_array(lo), JointVector.from_array(hi)
