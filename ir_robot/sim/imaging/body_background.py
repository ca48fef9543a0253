"""The body behind the vessels in a fluoroscopy frame: a soft-tissue slab, the spine and the ribs (seeded).

* Soft tissue: an elliptic cylinder along z (the trunk, water-like ``mu``); the chord of each ray
  through it is solved analytically (a quadratic in the scaled x-y plane).
* Spine: a column of vertebral bodies (capsules along z) separated by discs, with a seeded lateral
  curve and seeded body sizes.
* Ribs: arcs (tubes) following the trunk's outline from the spine round to the front, sloping
  caudally towards the front, one per level on each side over the thoracic range.

Bone is given as its attenuation in excess of soft tissue (it displaces tissue). Vessels filled
with blood are invisible (blood ~ tissue); only contrast adds attenuation to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ir_robot.config import param
from ir_robot.sim.imaging.checks import check_ranges
from ir_robot.sim.imaging.scene_inputs import VesselTube

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class BodyParams:
    """The trunk, spine and ribs behind the anatomy (patient frame LPS, mm, origin at the aortic annulus)."""

    trunk_semi_axes_mm: tuple[float, float] = param(
        (160.0, 105.0), range=(50.0, 300.0), unit="mm", help="(lateral, antero-posterior) half widths"
    )
    trunk_centre_mm: tuple[float, float] = param((0.0, 40.0), range=(-300.0, 300.0), unit="mm", help="(x, y)")
    soft_tissue_mu_per_mm: float = param(0.018, range=(0.0, 0.1), unit="1/mm", help="water at ~70 keV: 0.019")
    bone_excess_mu_per_mm: float = param(0.03, range=(0.0, 0.5), unit="1/mm", help="vertebral body minus tissue")
    rib_excess_mu_per_mm: float = param(0.015, range=(0.0, 0.5), unit="1/mm", help="rib (thin cortex) minus tissue")
    spine_xy_mm: tuple[float, float] = param((0.0, 95.0), range=(-300.0, 300.0), unit="mm")
    spine_z_range_mm: tuple[float, float] = param((-620.0, 280.0), range=(-2000.0, 2000.0), unit="mm")
    vertebra_radius_mm: float = param(19.0, range=(5.0, 40.0), unit="mm")
    vertebra_height_mm: float = param(26.0, range=(5.0, 60.0), unit="mm")
    disc_height_mm: float = param(8.0, range=(1.0, 30.0), unit="mm")
    spine_curve_mm: float = param(8.0, range=(0.0, 50.0), unit="mm", help="largest seeded lateral deviation")
    ribs_z_range_mm: tuple[float, float] = param(
        (-150.0, 160.0), range=(-2000.0, 2000.0), unit="mm", help="thoracic levels with ribs"
    )
    rib_pitch_mm: float = param(26.0, range=(10.0, 60.0), unit="mm", help="distance between rib levels")
    rib_radius_mm: float = param(4.5, range=(1.0, 15.0), unit="mm")
    rib_slope_mm: float = param(60.0, range=(0.0, 200.0), unit="mm", help="caudal drop from the spine to the front")
    size_jitter: float = param(0.1, range=(0.0, 0.5), help="seeded relative variation of bone sizes")

    def __post_init__(self) -> None:
        check_ranges(self)


def trunk_chords(p: BodyParams, source: F64, rays: F64) -> F64:
    """Path length (mm) of each ray (h, w, 3) from ``source`` through the elliptic-cylinder trunk."""
    ax, ay = p.trunk_semi_axes_mm
    cx, cy = p.trunk_centre_mm
    ox = (source[0] - cx) / ax
    oy = (source[1] - cy) / ay
    dx = rays[..., 0] / ax
    dy = rays[..., 1] / ay
    qa = dx * dx + dy * dy
    qb = 2.0 * (ox * dx + oy * dy)
    qc = ox * ox + oy * oy - 1.0
    disc = np.maximum(qb * qb - 4.0 * qa * qc, 0.0)
    out: F64 = np.sqrt(disc) / np.maximum(qa, 1e-12)  # (s2 - s1) along a unit ray, mm
    return out


def bone_tubes(p: BodyParams, rng: np.random.Generator) -> tuple[list[VesselTube], list[VesselTube]]:
    """The spine's vertebral bodies (flat-ended cylinders) and the ribs, as tubes for the analytic renderer."""
    tubes: list[VesselTube] = []
    z0, z1 = p.spine_z_range_mm
    sx, sy = p.spine_xy_mm
    phase = rng.uniform(0.0, 2.0 * math.pi)
    period = rng.uniform(600.0, 1200.0)
    step = p.vertebra_height_mm + p.disc_height_mm
    n = max(int((z1 - z0) // step), 1)
    for i in range(n):
        za = z0 + i * step
        zb = za + p.vertebra_height_mm
        zm = 0.5 * (za + zb)
        x = sx + p.spine_curve_mm * math.sin(2.0 * math.pi * zm / period + phase)
        rad = p.vertebra_radius_mm * (1.0 + p.size_jitter * rng.uniform(-1.0, 1.0))
        pts = np.array([[x, sy, za], [x, sy, zb]])
        tubes.append(VesselTube(f"vertebra_{i}", pts, np.array([rad, rad])))
    vertebrae, tubes = tubes, []
    r0, r1 = p.ribs_z_range_mm
    ax, ay = p.trunk_semi_axes_mm
    cx, cy = p.trunk_centre_mm
    n_ribs = max(int((r1 - r0) // p.rib_pitch_mm), 0)
    ang = np.linspace(-0.5 * math.pi, 0.35 * math.pi, 24)  # posterior (-pi/2) round to anterior-lateral
    for i in range(n_ribs):
        zr = r0 + (i + 0.5) * p.rib_pitch_mm
        for side in (-1.0, 1.0):
            shrink = 0.88 + 0.04 * rng.uniform(-1.0, 1.0)
            xs = cx + side * ax * shrink * np.cos(ang) + (sx - cx) * np.sin(-ang).clip(0.0, 1.0)
            ys = cy - ay * shrink * np.sin(ang)  # LPS: posterior is +y
            frac = (ang - ang[0]) / (ang[-1] - ang[0])
            zs = zr - p.rib_slope_mm * frac + rng.uniform(-3.0, 3.0)
            rad = p.rib_radius_mm * (1.0 + p.size_jitter * rng.uniform(-1.0, 1.0))
            tubes.append(VesselTube(f"rib_{i}_{'l' if side > 0 else 'r'}", np.stack([xs, ys, zs], 1), np.full(24, rad)))
    return vertebrae, tubes
