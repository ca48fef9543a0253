"""Polyline helpers for centrelines: arc length, resampling, splines, frames, curvature.

Every function takes and returns plain ``(n, 3)`` float64 arrays in millimetres; none draws
random numbers (the generator passes its draws in).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.interpolate import CubicSpline

FloatArray = npt.NDArray[np.float64]


def arc_lengths(points: FloatArray) -> FloatArray:
    """Cumulative arc length at each vertex of a polyline, starting at 0."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    out = np.zeros(len(points))
    out[1:] = np.cumsum(seg)
    return out


def interp_points(points: FloatArray, arc: FloatArray, s: FloatArray) -> FloatArray:
    """Points on the polyline at arc positions ``s`` (clamped to its ends), linearly interpolated."""
    s = np.asarray(s, dtype=np.float64)
    return np.stack([np.interp(s, arc, points[:, k]) for k in range(3)], axis=-1)


def resample(points: FloatArray, spacing_mm: float) -> FloatArray:
    """The polyline resampled at uniform arc spacing (at most ``spacing_mm``), keeping both ends."""
    arc = arc_lengths(points)
    n = max(1, int(np.ceil(arc[-1] / spacing_mm - 1e-9)))
    return interp_points(points, arc, np.linspace(0.0, arc[-1], n + 1))


def spline_through(
    control: FloatArray,
    *,
    start_tangent: FloatArray | None = None,
    end_tangent: FloatArray | None = None,
    spacing_mm: float = 0.5,
) -> FloatArray:
    """A cubic spline through the control points (chord-length parameter), sampled every ``spacing_mm``.

    ``start_tangent`` / ``end_tangent`` (unit vectors) clamp the direction at the ends, which is how a
    child continues its parent smoothly; an end left free gets the natural (zero-curvature) condition.
    """
    control = np.asarray(control, dtype=np.float64)
    chord = arc_lengths(control)
    if len(control) == 2 and start_tangent is None and end_tangent is None:
        return resample(control, spacing_mm)
    bc = (_bc(start_tangent), _bc(end_tangent))
    spline = CubicSpline(chord, control, axis=0, bc_type=bc)
    n = max(8, int(np.ceil(chord[-1] / spacing_mm * 4)))
    dense = np.asarray(spline(np.linspace(0.0, chord[-1], n + 1)), dtype=np.float64)
    return resample(dense, spacing_mm)


def _bc(tangent: FloatArray | None) -> tuple[int, FloatArray]:
    """A scipy boundary condition: the clamped first derivative, or a natural end (second derivative 0)."""
    if tangent is None:
        return (2, np.zeros(3))
    return (1, np.asarray(tangent, dtype=np.float64))


def tangents(points: FloatArray) -> FloatArray:
    """Unit tangents at the vertices (central differences inside, one-sided at the ends)."""
    t = np.gradient(points, axis=0)
    return unit(t)


def unit(v: FloatArray) -> FloatArray:
    """Vectors scaled to unit length (zero vectors stay zero)."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.asarray(np.where(n > 0, v / np.where(n > 0, n, 1.0), 0.0), dtype=np.float64)


def perpendicular(t: FloatArray) -> FloatArray:
    """A unit vector perpendicular to the unit vector ``t`` (a deterministic choice)."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(t[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    return unit(np.cross(t, helper))


def transport_frames(points: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rotation-minimising (parallel-transport) frames: tangent, normal and binormal at each vertex.

    Used for tube meshes and for the sideways tortuosity displacement, so the frame does not
    twist along the vessel.
    """
    t = tangents(points)
    n = np.zeros_like(t)
    n[0] = perpendicular(t[0])
    # a sequential projection; plain floats because a numpy call per vertex is 20x slower here
    nx, ny, nz = (float(c) for c in n[0])
    for i, (tx, ty, tz) in enumerate(t.tolist()[1:], start=1):
        dot = nx * tx + ny * ty + nz * tz
        vx, vy, vz = nx - dot * tx, ny - dot * ty, nz - dot * tz
        norm = (vx * vx + vy * vy + vz * vz) ** 0.5
        if norm > 1e-12:
            nx, ny, nz = vx / norm, vy / norm, vz / norm
        else:
            nx, ny, nz = (float(c) for c in perpendicular(t[i]))
        n[i] = (nx, ny, nz)
    b = np.cross(t, n)
    return t, n, b


def curvature(points: FloatArray) -> FloatArray:
    """Curvature (1/mm) at each interior vertex from the turning angle over the mean adjacent length.

    The ends get the value of their neighbour. Radius of curvature is ``1 / curvature``.
    """
    if len(points) < 3:
        return np.zeros(len(points))
    d = np.diff(points, axis=0)
    length = np.linalg.norm(d, axis=1)
    u = d / np.maximum(length, 1e-12)[:, None]
    cos = np.clip(np.sum(u[:-1] * u[1:], axis=1), -1.0, 1.0)
    angle = np.arccos(cos)
    k = angle / np.maximum(0.5 * (length[:-1] + length[1:]), 1e-12)
    return np.concatenate([[k[0]], k, [k[-1]]])


def smooth_window(s: FloatArray, length: float) -> FloatArray:
    """``sin^2(pi s / L)``: 0 with zero slope at both ends, so a displacement keeps the ends and their directions."""
    return np.asarray(np.sin(np.pi * np.clip(s / length, 0.0, 1.0)) ** 2, dtype=np.float64)
