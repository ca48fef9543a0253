"""Paths through the tree: from an access point to a named target, as branch pieces and a sampled polyline.

A start is a branch name with an arc position; by default the **distal end** of that branch, where a
sheath enters it against the flow (``right_femoral`` = the distal end of ``common_femoral_right``;
``descending_aorta`` = its distal end at the diaphragm). A target defaults to the distal end of its
branch. The path climbs from the start to the lowest common ancestor and descends to the target;
its geodesic length is the sum of the arc spans it covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ir_robot.core.errors import ConfigError

if TYPE_CHECKING:
    from ir_robot.sim.anatomy.graph import VesselTree

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RouteSegment:
    """A piece of one branch covered by a route, from ``arc_from_mm`` to ``arc_to_mm`` (either direction)."""

    branch: str
    arc_from_mm: float
    arc_to_mm: float

    @property
    def length_mm(self) -> float:
        """Arc length covered."""
        return abs(self.arc_to_mm - self.arc_from_mm)


@dataclass(frozen=True, eq=False)
class Route:
    """A centreline path: its branch pieces, a polyline with radii, and the arc length along it."""

    segments: tuple[RouteSegment, ...]
    points_mm: FloatArray
    radii_mm: FloatArray
    arc_mm: FloatArray

    @property
    def length_mm(self) -> float:
        """Geodesic length along the centrelines (the sum of the segments' spans)."""
        return float(sum(s.length_mm for s in self.segments))

    @property
    def branches(self) -> tuple[str, ...]:
        """The branches visited, in order."""
        return tuple(s.branch for s in self.segments)


def find_route(
    tree: VesselTree,
    start: str,
    target: str,
    *,
    start_arc_mm: float | None = None,
    target_arc_mm: float | None = None,
    spacing_mm: float = 1.0,
) -> Route:
    """The route from ``start`` (default: its distal end) to ``target`` (default: its distal end).

    Names accept aliases ('right_femoral', 'LCCA', ...); an unknown one lists the tree's branches.
    """
    if spacing_mm <= 0:
        raise ConfigError(f"route spacing_mm {spacing_mm}: allowed range (0, inf) mm")
    b0 = tree.branch(start)
    b1 = tree.branch(target)
    a0 = b0.length_mm if start_arc_mm is None else float(start_arc_mm)
    a1 = b1.length_mm if target_arc_mm is None else float(target_arc_mm)
    for name, b, a in (("start_arc_mm", b0, a0), ("target_arc_mm", b1, a1)):
        if not 0.0 <= a <= b.length_mm:
            raise ConfigError(f"route {name} {a:g} on '{b.name}': allowed range [0, {b.length_mm:.1f}] mm")
    pieces = _pieces(tree, b0.name, a0, b1.name, a1)
    kept = tuple(p for p in pieces if p.length_mm > 0.0) or (pieces[0],)
    pts: list[FloatArray] = []
    rad: list[FloatArray] = []
    arcs: list[FloatArray] = []
    offset = 0.0
    for k, p in enumerate(kept):
        n = max(1, int(np.ceil(p.length_mm / spacing_mm)))
        s = np.linspace(p.arc_from_mm, p.arc_to_mm, n + 1)
        local = offset + np.abs(s - p.arc_from_mm)
        if k > 0:  # the first point repeats the previous piece's last (the same place: a junction)
            s, local = s[1:], local[1:]
        b = tree.branch(p.branch)
        pts.append(b.point_at(s))
        rad.append(b.radius_at(s))
        arcs.append(local)
        offset += p.length_mm
    return Route(
        segments=kept, points_mm=np.concatenate(pts), radii_mm=np.concatenate(rad), arc_mm=np.concatenate(arcs)
    )


def _pieces(tree: VesselTree, start: str, a0: float, target: str, a1: float) -> list[RouteSegment]:
    """The branch pieces from ``(start, a0)`` up to the common ancestor and down to ``(target, a1)``."""
    b0 = tree.branch(start)
    b1 = tree.branch(target)
    up = tree.ancestors(b0.name)
    down = tree.ancestors(b1.name)
    common = next(n for n in up if n in down)
    pieces: list[RouteSegment] = []
    arc = a0
    for name in up[: up.index(common)]:
        pieces.append(RouteSegment(name, arc, 0.0))
        arc = tree.branch(name).origin_arc_mm
    descend = list(reversed(down[: down.index(common)]))
    exit_arc = tree.branch(descend[0]).origin_arc_mm if descend else a1
    pieces.append(RouteSegment(common, arc, exit_arc))
    for i, name in enumerate(descend):
        end = tree.branch(descend[i + 1]).origin_arc_mm if i + 1 < len(descend) else a1
        pieces.append(RouteSegment(name, 0.0, end))
    return pieces


def geodesic_length(tree: VesselTree, start: str, start_arc_mm: float, target: str, target_arc_mm: float) -> float:
    """Length (mm) along the centrelines from ``start_arc_mm`` on ``start`` to ``target_arc_mm`` on ``target``.

    The same path :func:`find_route` takes, without sampling it (cheap enough to call every control step).
    """
    return float(sum(p.length_mm for p in _pieces(tree, start, start_arc_mm, target, target_arc_mm)))
