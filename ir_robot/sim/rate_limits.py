"""Joint-rate clamping shared by the simulated worlds: URDF speed and travel limits, with a note per clamp."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ir_robot.core.types import JOINT_NAMES

FloatArray = NDArray[np.float64]


def clamp_rates(
    v: FloatArray, q_ref: FloatArray, lower: FloatArray, upper: FloatArray, vmax: FloatArray, dt: float
) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
    """Rates and end targets after the speed limits ``vmax`` and the travel ``[lower, upper]``, and what was clamped.

    Non-finite rates become 0; a rate over its limit is cut to it (a joint with limit 0 is fixed on that
    rig); a target beyond the travel is cut to it and its rate recomputed to arrive there in ``dt``.
    """
    notes = []
    if not np.all(np.isfinite(v)):
        bad = [n for n, x in zip(JOINT_NAMES, v, strict=True) if not math.isfinite(x)]
        notes.append(f"non-finite rate on {bad} replaced by 0")
        v = np.where(np.isfinite(v), v, 0.0)
    over = np.abs(v) > vmax + 1e-12
    for i in np.flatnonzero(over):
        what = "refused: the joint is fixed on this rig" if vmax[i] == 0.0 else f"clamped to +-{vmax[i]:.4g}"
        notes.append(f"{JOINT_NAMES[i]} rate {v[i]:.4g} {what}")
    v = np.clip(v, -vmax, vmax)
    target = q_ref + v * dt
    lo, hi = target < lower - 1e-9, target > upper + 1e-9
    for i in np.flatnonzero(lo | hi):
        notes.append(f"{JOINT_NAMES[i]} target {target[i]:.4g} clamped to [{lower[i]:.4g}, {upper[i]:.4g}]")
    target = np.clip(target, lower, upper)
    v = np.where(lo | hi, (target - q_ref) / max(dt, 1e-9), v)
    return v, target, tuple(notes)
