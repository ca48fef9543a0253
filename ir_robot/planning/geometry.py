"""Frames shared by planning and control: rig joints -> probe and needle, image pixels -> world.

All positions are in the world frame (mm). The ultrasound probe rides on the rig's
Y carriage ``probe_offset_mm`` ahead (+x) of the needle pivot, on the skin plane z = 0;
its image lateral axis is ``u = (cos yaw, sin yaw, 0)`` and rows go down -z::

    US pixel (r, c) of an H x W image, spacing (sy, sx):
        world = probe + (c - W/2 + 0.5) * sx * u + (0, 0, -(r + 0.5) * sy)
    NIR pixel (r, c) of an H x W image, spacing (sy, sx), view centre (vx, vy):
        x = vx + (c - W/2 + 0.5) * sx,   y = vy + (r - H/2 + 0.5) * sy

The needle tip is at ``pivot + insert_mm * (cos pitch, 0, -sin pitch)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.core.types import PROBE_OFFSET_MM, ImageFrame, JointVector, NirView, ProbePose, needle_direction

#: the NIR view the pixel <-> world functions assume unless given one (centred at the origin)
DEFAULT_NIR_VIEW = NirView()


def pivot_of(joints: JointVector) -> NDArray[np.float64]:
    """Needle pivot (world, mm) from the rig's x, y, z joints: the point the needle turns about."""
    return np.array([joints.x_mm, joints.y_mm, joints.z_mm], dtype=float)


def tip_of(joints: JointVector) -> NDArray[np.float64]:
    """Needle tip (world, mm) from the rig's joints (kinematics, not ground truth)."""
    return pivot_of(joints) + joints.insert_mm * needle_direction(joints.pitch_rad)


def insertion_to_reach(pivot_mm: Sequence[float] | NDArray[np.float64], pitch_rad: float, z_mm: float) -> float:
    """Insertion (mm along the needle) at which the tip reaches height ``z_mm``."""
    return (float(pivot_mm[2]) - float(z_mm)) / math.sin(pitch_rad)


def probe_of(joints: JointVector, probe_offset_mm: float = PROBE_OFFSET_MM) -> ProbePose:
    """Where the rig's joints put the ultrasound probe: ``probe_offset_mm`` ahead of the pivot, at its yaw."""
    return ProbePose(joints.x_mm + probe_offset_mm, joints.y_mm, joints.probe_yaw_rad)


def frame_probe(
    frame: ImageFrame, joints: JointVector | None = None, probe_offset_mm: float = PROBE_OFFSET_MM
) -> ProbePose:
    """The probe pose a frame was taken from: its ``meta['probe']`` if present, else the rig joints."""
    p = frame.meta.get("probe") if isinstance(frame.meta, dict) else None
    if p is not None:
        return ProbePose(float(p["x_mm"]), float(p["y_mm"]), float(p["yaw_rad"]))
    if joints is None:
        raise ValueError("frame has no meta['probe'] and no rig joints were given to place it")
    return probe_of(joints, probe_offset_mm)


def us_to_world(
    rc: ArrayLike, shape: tuple[int, int], spacing_mm: tuple[float, float], probe: ProbePose
) -> NDArray[np.float64]:
    """Ultrasound pixel(s) ``(..., 2)`` (row, col) -> world points ``(..., 3)``."""
    p = np.asarray(rc, dtype=float)
    sy, sx = spacing_mm
    lat = (p[..., 1] - shape[1] / 2 + 0.5) * sx
    z = -(p[..., 0] + 0.5) * sy
    cu, su = math.cos(probe.yaw_rad), math.sin(probe.yaw_rad)
    return np.stack([probe.x_mm + lat * cu, probe.y_mm + lat * su, z], axis=-1)


def world_to_us(
    points: ArrayLike, shape: tuple[int, int], spacing_mm: tuple[float, float], probe: ProbePose
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """World points ``(..., 3)`` -> (pixel (row, col) ``(..., 2)``, out-of-plane distance mm ``(...)``)."""
    q = np.asarray(points, dtype=float)
    sy, sx = spacing_mm
    cu, su = math.cos(probe.yaw_rad), math.sin(probe.yaw_rad)
    dx, dy = q[..., 0] - probe.x_mm, q[..., 1] - probe.y_mm
    lat = dx * cu + dy * su
    off = -dx * su + dy * cu
    rc = np.stack([-q[..., 2] / sy - 0.5, lat / sx + shape[1] / 2 - 0.5], axis=-1)
    return rc, off


def nir_to_world(
    rc: ArrayLike, shape: tuple[int, int], spacing_mm: tuple[float, float], view: NirView = DEFAULT_NIR_VIEW
) -> NDArray[np.float64]:
    """NIR pixel(s) ``(..., 2)`` (row, col) -> world (x, y) ``(..., 2)``."""
    p = np.asarray(rc, dtype=float)
    sy, sx = spacing_mm
    return np.stack(
        [view.x_mm + (p[..., 1] - shape[1] / 2 + 0.5) * sx, view.y_mm + (p[..., 0] - shape[0] / 2 + 0.5) * sy], axis=-1
    )


def world_to_nir(
    xy: ArrayLike, shape: tuple[int, int], spacing_mm: tuple[float, float], view: NirView = DEFAULT_NIR_VIEW
) -> NDArray[np.float64]:
    """World (x, y) point(s) ``(..., 2)`` -> NIR pixel(s) (row, col) ``(..., 2)``; inverts :func:`nir_to_world`."""
    q = np.asarray(xy, dtype=float)
    sy, sx = spacing_mm
    return np.stack(
        [(q[..., 1] - view.y_mm) / sy + shape[0] / 2 - 0.5, (q[..., 0] - view.x_mm) / sx + shape[1] / 2 - 0.5], axis=-1
    )


def segment_points(a: ArrayLike, b: ArrayLike, step_mm: float = 0.25) -> NDArray[np.float64]:
    """Points from ``a`` to ``b`` (inclusive) at most ``step_mm`` apart, ``(N, 3)``."""
    pa: NDArray[np.float64] = np.asarray(a, float)
    pb: NDArray[np.float64] = np.asarray(b, float)
    n = max(2, int(math.ceil(np.linalg.norm(pb - pa) / step_mm)) + 1)
    return pa + np.linspace(0.0, 1.0, n)[:, None] * (pb - pa)
