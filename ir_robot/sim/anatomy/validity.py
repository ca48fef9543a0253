"""Geometric validity of a vessel tree: what a tree must satisfy before a catheter is put in it.

:func:`problems` lists every violation as a sentence (an empty list means valid):

* radii within each procedural branch's clinical range (:func:`.archetypes.clinical_diameter_range`);
* every child's first point inside its parent's lumen (it starts on the parent's centreline);
* every centreline point inside the body box;
* no fold: the radius of curvature is larger than the local lumen radius everywhere (else the tube
  wall would turn inside out on the inner side of the bend);
* no crossing: two branches' lumens (tubes) may touch only near a junction on the tree path between
  them, i.e. within ``JUNCTION_FACTOR * (r_parent + r_child)`` of a child's origin on that path.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from ir_robot.sim.anatomy import curves
from ir_robot.sim.anatomy.archetypes import BRANCH_STATIONS, clinical_diameter_range
from ir_robot.sim.anatomy.graph import VesselTree
from ir_robot.sim.anatomy.measure import branch_signed_distance

FloatArray = npt.NDArray[np.float64]

#: Radius of the ball around a junction, in units of (parent radius + child radius), inside which
#: the two lumens (and lumens meeting there) may overlap. Covers side branches leaving at 30 degrees.
JUNCTION_FACTOR = 2.0


def problems(tree: VesselTree, *, clinical: bool = True) -> list[str]:
    """Every validity violation of ``tree``; ``clinical`` also checks procedural branches' radius ranges."""
    out: list[str] = []
    for b in tree.branches:
        if clinical and b.name in BRANCH_STATIONS:
            lo, hi = clinical_diameter_range(b.name)
            dmin, dmax = 2.0 * float(b.radii_mm.min()), 2.0 * float(b.radii_mm.max())
            if dmin < lo - 1e-9 or dmax > hi + 1e-9:
                out.append(f"{b.name}: diameter {dmin:.2f}-{dmax:.2f} mm outside its clinical range [{lo}, {hi}] mm")
        if b.parent is not None:
            sd = float(branch_signed_distance(tree.branch(b.parent), b.points_mm[:1])[0])
            if sd >= 0.0:
                out.append(f"{b.name}: starts {sd:.2f} mm outside its parent '{b.parent}''s lumen")
        inside = tree.body_box.contains(b.points_mm)
        if not np.all(inside):
            out.append(f"{b.name}: {int(np.sum(~inside))} centreline points outside the body box")
        fold = curves.curvature(b.points_mm) * b.radii_mm
        if np.max(fold) >= 1.0:
            k = int(np.argmax(fold))
            out.append(f"{b.name}: bends tighter than its radius at arc {b.arc_mm[k]:.1f} mm (wall folds)")
    out.extend(crossings(tree))
    return out


def _junctions(tree: VesselTree) -> dict[str, tuple[FloatArray, float]]:
    """Each non-root branch's origin point and the radius of the ball in which overlaps are allowed there."""
    out: dict[str, tuple[FloatArray, float]] = {}
    for b in tree.branches:
        if b.parent is None:
            continue
        r_parent = float(tree.branch(b.parent).radius_at(b.origin_arc_mm)[0])
        out[b.name] = (b.points_mm[0], JUNCTION_FACTOR * (r_parent + float(b.radii_mm[0])))
    return out


def crossings(tree: VesselTree) -> list[str]:
    """Pairs of branches whose lumens touch away from every junction on the tree path between them."""
    g = tree.graph
    nodes, radius, owner = g.nodes_mm, g.node_radius_mm, g.node_branch
    kd = cKDTree(nodes)
    r_max = float(radius.max())
    junctions = _junctions(tree)
    names = g.branch_names
    found: dict[tuple[int, int], int] = {}
    near = kd.query_ball_point(nodes, radius + r_max)
    pi = np.repeat(np.arange(len(nodes)), [len(n) for n in near])
    qi = np.fromiter((q for n in near for q in n), dtype=np.int64, count=len(pi))
    keep = (owner[pi] < owner[qi]) & (np.linalg.norm(nodes[pi] - nodes[qi], axis=1) < radius[pi] + radius[qi])
    pi, qi = pi[keep], qi[keep]
    pair_key = owner[pi] * len(names) + owner[qi]
    for key in np.unique(pair_key).tolist():
        i, j = divmod(int(key), len(names))
        sel = pair_key == key
        a, b = nodes[pi[sel]], nodes[qi[sel]]
        excused = np.zeros(len(a), dtype=bool)
        for name in _path_branches(tree, names[i], names[j]):
            centre, rad = junctions[name]
            excused |= (np.linalg.norm(a - centre, axis=1) <= rad) & (np.linalg.norm(b - centre, axis=1) <= rad)
        if not np.all(excused):
            found[(i, j)] = int(np.sum(~excused))
    return [
        f"{names[i]} and {names[j]}: lumens touch away from their junctions ({n} point pairs)"
        for (i, j), n in sorted(found.items())
    ]


def _path_branches(tree: VesselTree, a: str, b: str) -> list[str]:
    """Branches whose origins are the junctions on the tree path between ``a`` and ``b`` (not their common ancestor)."""
    up_a = tree.ancestors(a)
    up_b = tree.ancestors(b)
    common = next(n for n in up_a if n in up_b)
    return [n for n in (*up_a[: up_a.index(common)], *up_b[: up_b.index(common)])]
