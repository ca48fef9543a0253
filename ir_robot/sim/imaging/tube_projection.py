"""Analytic X-ray path lengths through tubes: ray-cast for the static anatomy, an image-space splat for instruments.

Static anatomy (vessels, ribs, vertebral bodies, the valve ring), once per C-arm pose: every
polyline segment is a capsule (a cylinder whose radius varies linearly along it, with a sphere at
each node). For a pixel ray at distance ``d`` from the segment axis and at angle ``theta`` to it,
the chord through the cylinder is ``2 sqrt(r^2 - d^2) / sin(theta)``; through a node's sphere
``2 sqrt(r^2 - d^2)``. Segments of one tube are combined by the maximum (their capsules overlap at
the nodes), tubes by the sum. Work is done only inside each segment's projected bounding box.

Instruments, every frame: thin rods, so the work is done in the image. Each projected segment is
drawn with its index into a label image (cv2.line, sub-pixel), each labelled pixel's distance to
the segment drawn last over it is measured in pixels, converted to mm at the segment's depth, and
turned into the chord ``2 sqrt(r^2 - d^2) / sin(theta)`` (``sin(theta)`` floored at 0.2 so a rod
seen end-on stays finite). A rod thinner than 1.5 pixels is widened to 1.5 pixels with its chord
scaled by ``(r / r_eff)^2``, which keeps the projected area (the integral of the path length
across the rod) and avoids aliasing.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from ir_robot.sim.imaging.carm import CArmGeometry
from ir_robot.sim.imaging.scene_inputs import RadiopaqueRod, VesselTube

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

#: floor of sin(angle between a rod and the ray) in the instrument chord
MIN_SIN = 0.2


def _segment_chords(rays: F64, source: F64, a: F64, b: F64, ra: float, rb: float, caps: bool = True) -> F64:
    """Chord (mm) of every ray in ``rays`` (h, w, 3) through the capsule a-b with end radii ra, rb.

    Without ``caps`` the segment is a flat-ended cylinder (for near-perpendicular rays).
    """
    axis = b - a
    length = float(np.linalg.norm(axis))
    w0 = source - a
    w1 = source - b
    e0 = rays @ w0
    e1 = rays @ w1
    cap_a = np.maximum(ra * ra - (float(w0 @ w0) - e0 * e0), 0.0)
    cap_b = np.maximum(rb * rb - (float(w1 @ w1) - e1 * e1), 0.0)
    chord: F64 = 2.0 * np.sqrt(np.maximum(cap_a, cap_b)) if caps else np.zeros(e0.shape)
    if length < 1e-9:
        return chord
    ax = axis / length
    bb = rays @ ax
    f = float(ax @ w0)
    denom = np.maximum(1.0 - bb * bb, 1e-12)
    s = (bb * f - e0) / denom
    t = (f - bb * e0) / denom
    dist2 = float(w0 @ w0) + s * s + t * t + 2.0 * s * e0 - 2.0 * t * f - 2.0 * s * t * bb
    r_t = ra + (rb - ra) * np.clip(t / length, 0.0, 1.0)
    cyl = 2.0 * np.sqrt(np.maximum(r_t * r_t - dist2, 0.0)) / np.sqrt(denom)
    cyl = np.minimum(cyl, length + ra + rb)
    inside = (t >= 0.0) & (t <= length)
    return np.maximum(chord, np.where(inside, cyl, 0.0))


def resample_tube(tube: VesselTube, min_step_mm: float, max_step_mm: float = 5.0) -> tuple[F64, F64]:
    """The tube's centreline and radii re-sampled at even arc-length steps of half its smallest radius.

    The step is clipped to [min_step_mm, max_step_mm]; a dense centreline (an anatomy sampled every
    0.5 mm) then costs a few hundred capsules instead of thousands, and the chord of a curve of radius
    ``R`` cut into steps ``L`` deviates from it by ``L^2 / 8 R`` (0.1 mm for 5 mm steps on a 30 mm arch).
    """
    pts = tube.points_mm
    rad = tube.radii_mm
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    step = float(np.clip(0.5 * rad.min(), min_step_mm, max_step_mm))
    n = max(int(np.ceil(arc[-1] / step)), 1) + 1
    if n >= len(pts):
        return pts, rad
    s = np.linspace(0.0, arc[-1], n)
    out = np.stack([np.interp(s, arc, pts[:, i]) for i in range(3)], axis=1)
    return out, np.interp(s, arc, rad)


def tube_chord_image(
    geom: CArmGeometry, rays: F64, tube: VesselTube, caps: bool = True
) -> tuple[tuple[int, int, int, int], F32] | None:
    """Path length (mm) through one tube over its bounding box: ((r0, r1, c0, c1), crop) or None if unseen.

    ``caps`` puts a sphere at every node (smooth joints); without it segments are flat-ended cylinders.
    """
    mag = geom.params.source_to_detector_mm / geom.params.source_to_isocentre_mm
    pts, rad = resample_tube(tube, min_step_mm=2.0 * min(geom.pitch_mm) / mag)
    uv, depth = geom.project(pts)
    if np.any(depth <= 1.0):
        return None
    h, w = geom.shape
    r_px = rad * max(geom.focal_px) / depth + 2.0
    lo_c = int(np.floor(np.min(uv[:, 0] - r_px)))
    hi_c = int(np.ceil(np.max(uv[:, 0] + r_px)))
    lo_r = int(np.floor(np.min(uv[:, 1] - r_px)))
    hi_r = int(np.ceil(np.max(uv[:, 1] + r_px)))
    r0, r1, c0, c1 = max(lo_r, 0), min(hi_r + 1, h), max(lo_c, 0), min(hi_c + 1, w)
    if r0 >= r1 or c0 >= c1:
        return None
    out = np.zeros((r1 - r0, c1 - c0), dtype=np.float64)
    for i in range(len(pts) - 1):
        sr0 = max(int(np.floor(min(uv[i, 1] - r_px[i], uv[i + 1, 1] - r_px[i + 1]))), r0)
        sr1 = min(int(np.ceil(max(uv[i, 1] + r_px[i], uv[i + 1, 1] + r_px[i + 1]))) + 1, r1)
        sc0 = max(int(np.floor(min(uv[i, 0] - r_px[i], uv[i + 1, 0] - r_px[i + 1]))), c0)
        sc1 = min(int(np.ceil(max(uv[i, 0] + r_px[i], uv[i + 1, 0] + r_px[i + 1]))) + 1, c1)
        if sr0 >= sr1 or sc0 >= sc1:
            continue
        ch = _segment_chords(
            rays[sr0:sr1, sc0:sc1], geom.source_mm, pts[i], pts[i + 1], float(rad[i]), float(rad[i + 1]), caps
        )
        view = out[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0]
        np.maximum(view, ch, out=view)
    return (r0, r1, c0, c1), out.astype(np.float32)


class InstrumentSplatter:
    """Per-frame path lengths through thin radiopaque rods, computed in the image (see the module docstring)."""

    def __init__(self, geom: CArmGeometry):
        self.geom = geom
        self._labels = np.zeros(geom.shape, dtype=np.int32)

    def chords(self, rod: RadiopaqueRod) -> tuple[I64, I64, F64]:
        """Rows, columns and path length (mm) of every pixel the rod crosses (pixels are unique)."""
        g = self.geom
        h, w = g.shape
        pts = rod.points_mm
        uv, depth = g.project(pts)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        if np.any(depth <= 1.0):
            return empty
        sdd = g.params.source_to_detector_mm
        pitch = 0.5 * (g.pitch_mm[0] + g.pitch_mm[1])
        px_mm = pitch * depth / sdd  # pixel size at each node's depth (mm)
        r = 0.5 * rod.outer_diameter_mm
        r_eff_px = np.maximum(r / px_mm, 0.75)
        thick = int(np.ceil(2.0 * float(r_eff_px.max()) + 1.0))
        half = thick // 2 + 1
        c0 = max(int(np.floor(uv[:, 0].min())) - half, 0)
        c1 = min(int(np.ceil(uv[:, 0].max())) + half + 1, w)
        r0 = max(int(np.floor(uv[:, 1].min())) - half, 0)
        r1 = min(int(np.ceil(uv[:, 1].max())) + half + 1, h)
        if r0 >= r1 or c0 >= c1:
            return empty
        fixed = np.round(uv * 16.0).astype(np.int64).tolist()
        lab = self._labels
        n_seg = len(pts) - 1
        line = cv2.line
        for i in range(n_seg):
            line(lab, fixed[i], fixed[i + 1], i + 1, thick, cv2.LINE_8, 4)
        sub = lab[r0:r1, c0:c1]
        ys, xs = np.nonzero(sub)
        k = sub[ys, xs] - 1
        sub[...] = 0
        ys = ys + r0
        xs = xs + c0
        # distance of each pixel to its own segment (the one drawn last over it), clamped to the segment
        a = uv[:-1]
        ab = uv[1:] - a
        inv_ab2 = 1.0 / np.maximum(ab[:, 0] ** 2 + ab[:, 1] ** 2, 1e-12)
        ax, ay, bx, by = a[k, 0], a[k, 1], ab[k, 0], ab[k, 1]
        px = xs - ax
        py = ys - ay
        t = np.clip((px * bx + py * by) * inv_ab2[k], 0.0, 1.0)
        px -= t * bx
        py -= t * by
        d2 = px * px + py * py
        # per-segment sin(angle to the ray through its midpoint)
        seg_vec = pts[1:] - pts[:-1]
        mid_ray = 0.5 * (pts[1:] + pts[:-1]) - g.source_mm
        sx, sy, sz = seg_vec[:, 0], seg_vec[:, 1], seg_vec[:, 2]
        mx, my, mz = mid_ray[:, 0], mid_ray[:, 1], mid_ray[:, 2]
        cross2 = (sy * mz - sz * my) ** 2 + (sz * mx - sx * mz) ** 2 + (sx * my - sy * mx) ** 2
        sin_t = np.sqrt(cross2 / np.maximum((sx * sx + sy * sy + sz * sz) * (mx * mx + my * my + mz * mz), 1e-24))
        inv_sin = 1.0 / np.maximum(sin_t, MIN_SIN)
        pmm = px_mm[k] + t * (px_mm[1:] - px_mm[:-1])[k]
        d_mm2 = d2 * pmm * pmm
        r_eff = np.maximum(r, 0.75 * pmm)
        chord = (2.0 * r * r) * np.sqrt(np.maximum(r_eff * r_eff - d_mm2, 0.0)) / (r_eff * r_eff) * inv_sin[k]
        keep = chord > 0.0
        return ys[keep], xs[keep], chord[keep]
