"""Joint-rate servoing shared by the venipuncture phases: rates toward a goal pose within the rig's
limits and speed caps, and whether the rig has settled at a goal.
"""

from __future__ import annotations

import math

import numpy as np

from ir_robot.control.venipuncture.context import ANGULAR, Context, FloatArray, X, Y, Z
from ir_robot.core.types import N_JOINTS


def servo(
    c: Context,
    q: FloatArray,
    goal: dict[int, float],
    dt: float,
    ff: dict[int, float] | None = None,
    speed: dict[int, float] | None = None,
) -> FloatArray:
    """Joint rates toward ``goal`` (joint index -> position), with feed-forward rates and speed caps."""
    v = np.zeros(N_JOINTS)
    ff = ff or {}
    speed = speed or {}
    for i, g in goal.items():
        g = float(np.clip(g, c.lo[i], c.hi[i]))
        err = g - q[i]
        if abs(err) < 1e-6 and not ff.get(i, 0.0):
            continue  # deadband: hold still, no numerical dust
        vi = err / max(c.p.servo_tau_s, dt) + ff.get(i, 0.0)
        cap = min(c.vmax[i], speed.get(i, math.inf))
        vi = float(np.clip(vi, -cap, cap))
        if abs((vi - ff.get(i, 0.0)) * dt) > abs(err):  # no overshoot within one tick
            vi = err / dt + ff.get(i, 0.0)
            vi = float(np.clip(vi, -cap, cap))
        v[i] = vi
    return v


def settled(c: Context, q: FloatArray, goal: dict[int, float]) -> bool:
    """Is the rig within ``settle_tolerance_mm`` (a tenth of it in rad for angles) of ``goal``?"""
    tol = c.p.settle_tolerance_mm
    for i, g in goal.items():
        g = float(np.clip(g, c.lo[i], c.hi[i]))
        if abs(q[i] - g) > (tol * 0.1 if ANGULAR[i] else tol):
            return False
    return True


def travel_speeds(c: Context) -> dict[int, float]:
    """Speed caps of the pivot's x, y, z while travelling between poses."""
    s = c.p.travel_speed_mm_s
    return {X: s, Y: s, Z: s}
