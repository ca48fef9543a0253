"""Measurements on a finished tree: where a branch leaves its parent's lumen, the arch levels, the arch type.

These measure the geometry as built (the centrelines and radii), independently of the parameters the
generator drew, so tests and pictures can check that a type II arch really is one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ir_robot.sim.anatomy.graph import Branch, VesselTree

FloatArray = npt.NDArray[np.float64]

#: The great vessels leaving the arch, in the order the arch type is read.
GREAT_VESSELS: tuple[str, ...] = ("brachiocephalic", "left_common_carotid", "left_subclavian")


def branch_signed_distance(branch: Branch, points: FloatArray) -> FloatArray:
    """Signed distance (mm) from points to one branch's own tube (distance to its centreline minus radius)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    a = branch.points_mm[:-1]
    d = branch.points_mm[1:] - a
    ra = branch.radii_mm[:-1]
    dr = branch.radii_mm[1:] - ra
    dd = np.sum(d * d, axis=1)
    out = np.empty(len(p))
    for lo in range(0, len(p), 256):
        q = p[lo : lo + 256, None, :] - a[None, :, :]
        t = np.clip(np.sum(q * d[None], axis=2) / dd[None], 0.0, 1.0)
        dist = np.linalg.norm(q - t[..., None] * d[None], axis=2) - (ra[None] + t * dr[None])
        out[lo : lo + 256] = dist.min(axis=1)
    return out


def ostium(tree: VesselTree, name: str) -> FloatArray:
    """Where branch ``name``'s centreline first leaves its parent's lumen (linearly interpolated), ``(3,)``."""
    b = tree.branch(name)
    if b.parent is None:
        return np.asarray(b.points_mm[0], dtype=np.float64)
    sd = branch_signed_distance(tree.branch(b.parent), b.points_mm)
    outside = np.flatnonzero(sd >= 0.0)
    if len(outside) == 0:
        return np.asarray(b.points_mm[-1], dtype=np.float64)
    k = int(outside[0])
    if k == 0:
        return np.asarray(b.points_mm[0], dtype=np.float64)
    f = -sd[k - 1] / (sd[k] - sd[k - 1])
    return np.asarray(b.points_mm[k - 1] + f * (b.points_mm[k] - b.points_mm[k - 1]), dtype=np.float64)


@dataclass(frozen=True)
class ArchLevels:
    """Heights (z, mm) of the top of the arch's outer and inner curvature, and of the great vessels' ostia."""

    z_outer_mm: float
    z_inner_mm: float
    ostium_z_mm: dict[str, float]

    def drop(self, name: str) -> float:
        """How far a great vessel's ostium lies below the outer curvature's top, in outer-to-inner heights.

        Type I: about 0 (at the top); type II: between 0 and 1; type III: below 1 (under the inner curvature).
        """
        return (self.z_outer_mm - self.ostium_z_mm[name]) / (self.z_outer_mm - self.z_inner_mm)


def arch_levels(tree: VesselTree) -> ArchLevels:
    """Measure the arch: outer curvature top ``max(z + r)``, inner top ``max(z - r)``, ostia heights."""
    arch = tree.branch("aortic_arch")
    z_outer = float(np.max(arch.points_mm[:, 2] + arch.radii_mm))
    z_inner = float(np.max(arch.points_mm[:, 2] - arch.radii_mm))
    heights = {n: float(ostium(tree, n)[2]) for n in GREAT_VESSELS if n in tree.names}
    return ArchLevels(z_outer, z_inner, heights)


def arch_type(tree: VesselTree) -> str:
    """The arch type read from the geometry: 'I', 'II' or 'III' by the BCA ostium (thresholds 1/3 and 1)."""
    drop = arch_levels(tree).drop("brachiocephalic")
    return "I" if drop < 1.0 / 3.0 else ("II" if drop < 1.0 else "III")


def is_bovine(tree: VesselTree) -> bool:
    """True when the BCA and LCCA leave the same parent at the same point (a common origin)."""
    bca = tree.branch("brachiocephalic")
    lcca = tree.branch("left_common_carotid")
    return bool(bca.parent == lcca.parent and np.allclose(bca.points_mm[0], lcca.points_mm[0], atol=1e-6))
