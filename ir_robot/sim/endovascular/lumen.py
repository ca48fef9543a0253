"""The anatomy as the rod solver sees it: the vessel tree's lumen minus the prosthetic valve ring.

:class:`AnatomyLumen` implements :class:`ir_robot.sim.catheter.lumen.Lumen` for a
:class:`~ir_robot.sim.anatomy.VesselTree`. The tree's lumen is the union of round-capped tubes
around its centreline segments with the radius linear along each (exactly what
``VesselTree.signed_distance`` defines), so the bucketed :class:`~ir_robot.sim.catheter.lumen.TubeLumen`
over the branches' polylines gives the same distance (to 1e-12 mm) several times faster than the
anatomy's exact search for the rod's small batches. The valve ring is a solid torus inside the
root: the free space is ``max(d_lumen, -d_ring)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ir_robot.sim.anatomy.graph import ValveRing, VesselTree
from ir_robot.sim.catheter.lumen import TubeLumen

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def ring_distance_and_gradient(ring: ValveRing, points: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Signed distance to the ring's tube (negative inside the solid ring) and its outward unit gradient."""
    c = np.asarray(ring.centre_mm, dtype=np.float64)
    n = np.asarray(ring.normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    q = np.asarray(points, dtype=np.float64).reshape(-1, 3) - c
    axial = q @ n
    radial_v = q - axial[:, None] * n
    radial = np.linalg.norm(radial_v, axis=1)
    # the nearest point of the ring's core circle; on the axis every direction is as near: pick any
    e = np.where(radial[:, None] > 1e-9, radial_v / np.maximum(radial, 1e-9)[:, None], _any_perpendicular(n))
    core = ring.radius_mm * e
    diff = q - core
    dist = np.linalg.norm(diff, axis=1)
    grad = np.where(dist[:, None] > 1e-9, diff / np.maximum(dist, 1e-9)[:, None], n)
    return dist - ring.tube_radius_mm, np.asarray(grad, dtype=np.float64)


def _any_perpendicular(n: FloatArray) -> FloatArray:
    a = np.cross(n, [1.0, 0.0, 0.0])
    if np.linalg.norm(a) < 0.1:
        a = np.cross(n, [0.0, 1.0, 0.0])
    return np.asarray(a / np.linalg.norm(a), dtype=np.float64)


class AnatomyLumen:
    """The free lumen of a vessel tree for the instrument mechanics (see the module doc)."""

    def __init__(self, tree: VesselTree, *, include_valve_ring: bool = True):
        self.tree = tree
        self.tubes = TubeLumen([b.points_mm for b in tree.branches], [b.radii_mm for b in tree.branches])
        # which branch each tube segment belongs to (TubeLumen keeps the polylines' segments in order)
        counts = [len(b.points_mm) - 1 for b in tree.branches]
        self.segment_branch: IntArray = np.repeat(np.arange(len(counts)), counts)
        self.ring = tree.valve_ring if include_valve_ring else None

    def signed_distance(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(d, grad)`` of the free space at ``points (N, 3)`` mm: negative inside, grad pointing out."""
        d, grad = self.tubes.signed_distance(points)
        if self.ring is None:
            return d, grad
        dr, gr = ring_distance_and_gradient(self.ring, points)
        on_ring = -dr > d
        if bool(np.any(on_ring)):
            d = np.where(on_ring, -dr, d)
            grad = np.where(on_ring[:, None], -gr, grad)
        return d, grad

    def on_valve_ring(self, points: FloatArray) -> npt.NDArray[np.bool_]:
        """True where the nearest wall is the valve ring's surface rather than the vessel wall."""
        if self.ring is None:
            return np.zeros(len(np.atleast_2d(points)), dtype=bool)
        d, _ = self.tubes.signed_distance(points)
        dr, _ = ring_distance_and_gradient(self.ring, points)
        return np.asarray(-dr > d, dtype=bool)

    def branch_at(self, points: FloatArray) -> list[str]:
        """The vessel each point is in: of the branches whose lumen holds it, the one nearest the root.

        Near an ostium the side branch's tube starts on the parent's centreline, so a point inside
        the parent next to the ostium lies in both; it counts as in the parent until it has left
        the parent's lumen. A point outside every lumen gets the branch whose wall is nearest.
        """
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        sd = self.tubes.tube_distances(p)
        nb = len(self.tree.branches)
        per_branch = np.full((p.shape[0], nb), np.inf)
        for k in range(nb):  # branches are in topological order: parents before children
            cols = self.segment_branch == k
            per_branch[:, k] = sd[:, cols].min(axis=1)
        inside = per_branch < 0.0
        first_inside = np.argmax(inside, axis=1)
        nearest = np.argmin(per_branch, axis=1)
        pick = np.where(inside.any(axis=1), first_inside, nearest)
        names = [b.name for b in self.tree.branches]
        return [names[int(k)] for k in pick]

    def locate(self, point: npt.ArrayLike, branch: str | None = None) -> tuple[str, float]:
        """The branch a point is in (:meth:`branch_at`, unless given) and the arc (mm) of its projection on it."""
        p = np.asarray(point, dtype=np.float64).reshape(3)
        name = branch if branch is not None else self.branch_at(p)[0]
        k = self.tree.names.index(name)
        b = self.tree.branches[k]
        a, ab = b.points_mm[:-1], np.diff(b.points_mm, axis=0)
        len2 = np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
        t = np.clip(np.einsum("ij,ij->i", p - a, ab) / len2, 0.0, 1.0)
        dist = np.linalg.norm(a + t[:, None] * ab - p, axis=1)
        i = int(np.argmin(dist))
        return name, float(b.arc_mm[i] + t[i] * (b.arc_mm[i + 1] - b.arc_mm[i]))
