"""Scripted scenes on the needle world: a straight insertion into a vessel.

Used by ``ir-robot sim needle`` and by tests: it plans the pivot so the needle
line passes through the lumen centre of one vessel, then inserts at a constant
rate, recording force, tissue and events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ir_robot.core.types import ImageFrame, JointVector, RigCommand, needle_direction
from ir_robot.sim.phantom import Phantom

if TYPE_CHECKING:
    from ir_robot.sim.world import NeedleWorld


@dataclass(frozen=True)
class StraightInsertion:
    """A planned straight insertion (world frame): the pivot and pitch whose needle line meets the target."""

    pivot_mm: tuple[float, float, float]
    pitch_rad: float
    target_mm: tuple[float, float, float]
    distance_mm: float  # insertion from the pivot to the target


def plan_straight_insertion(
    phantom: Phantom,
    vessel: int = 0,
    pitch_deg: float = 30.0,
    standoff_mm: float = 3.0,
    target_x_mm: float = 0.0,
    t_s: float = 0.0,
) -> StraightInsertion:
    """Pivot ``standoff_mm`` above the skin on the line through vessel ``vessel``'s centre at x."""
    yc, zc = phantom.centreline(np.array(target_x_mm))
    target = phantom.to_world(np.array([target_x_mm, float(yc[vessel]), float(zc[vessel])]), t_s)
    p = math.radians(pitch_deg)
    d = needle_direction(p)
    dist = (standoff_mm - target[2]) / math.sin(p)
    pivot = target - dist * d
    return StraightInsertion(
        (float(pivot[0]), float(pivot[1]), float(pivot[2])),
        p,
        (float(target[0]), float(target[1]), float(target[2])),
        float(dist),
    )


def run_straight_insertion(
    world: NeedleWorld,
    plan: StraightInsertion,
    *,
    rate_mm_s: float = 2.0,
    extra_mm: float = 0.0,
    dt: float = 0.01,
    frames: int = 0,
) -> tuple[dict[str, Any], list[tuple[float, ImageFrame, ImageFrame]]]:
    """Insert along ``plan`` to the target (+ ``extra_mm``).

    Returns (trace dict, list of (insert_mm, us, nir)) with ``frames`` image pairs evenly
    spaced from the start to the end of the insertion (both included).
    """
    j0 = world.state().joints
    world.reset_joints(
        JointVector(plan.pivot_mm[0], plan.pivot_mm[1], plan.pivot_mm[2], plan.pitch_rad, 0.0, j0.probe_yaw_rad)
    )
    trace: dict[str, list[Any]] = {k: [] for k in ("t_s", "insert_mm", "force_n", "true_force_n", "tissue", "in_lumen")}
    shots: list[tuple[float, ImageFrame, ImageFrame]] = []
    goal = plan.distance_mm + extra_mm
    marks = list(np.linspace(0.0, goal, frames)) if frames > 1 else ([goal] if frames == 1 else [])
    while True:
        s = world.state()
        for key, val in (
            ("t_s", s.t_s),
            ("insert_mm", s.joints.insert_mm),
            ("force_n", s.force_n),
            ("true_force_n", s.true_force_n),
            ("tissue", int(s.tip_tissue)),
            ("in_lumen", s.in_lumen),
        ):
            trace[key].append(val)
        at_goal = s.joints.insert_mm >= goal - 1e-3
        while marks and (s.joints.insert_mm >= marks[0] - 1e-3 or at_goal):
            shots.append((s.joints.insert_mm, world.ultrasound(), world.nir()))
            marks.pop(0)
        if at_goal:
            break
        step_rate = min(rate_mm_s, (goal - s.joints.insert_mm) / dt)
        world.step(RigCommand(JointVector(insert_mm=step_rate), dt), dt)
        if s.t_s > 120:
            raise RuntimeError("insertion did not reach its goal in 120 s of simulated time")
    out: dict[str, Any] = {k: np.asarray(v) for k, v in trace.items()}
    out["events"] = world.state().events
    return out, shots
