"""The vessel tree: named branches as centreline polylines with a lumen radius at every point.

Body frame (every anatomy, procedural or loaded): millimetres, right-handed, the DICOM patient
frame "LPS": **+x towards the patient's left, +y posterior (anterior is -y), +z cranial** (towards
the head). Procedural anatomies put the origin at the centre of the aortic valve annulus.

A branch's polyline runs from its origin (a point on its parent's centreline, at arc position
``origin_arc_mm`` along the parent) to its distal end, in the direction of blood flow; the root
branch (``aortic_root`` in procedural trees) starts at the valve annulus. The lumen is the union
over all branches of the tubes swept by a sphere of the local radius along each centreline
segment. :class:`GraphView` holds the same tree as flat numpy node/edge arrays for fast queries.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.sim.anatomy import curves
from ir_robot.sim.anatomy.motion import MotionSpec, displacement

if TYPE_CHECKING:
    from ir_robot.sim.anatomy.distance import CentrelineSdf
    from ir_robot.sim.anatomy.route import Route

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Vec3 = tuple[float, float, float]

#: Bumped whenever the meaning of the stored arrays changes, so cached meshes and grids are rebuilt.
FORMAT_VERSION = 1

#: Other spellings accepted wherever a branch is named (lower case). Procedural names are the values.
ALIASES: Mapping[str, str] = {
    "bca": "brachiocephalic",
    "brachiocephalic_trunk": "brachiocephalic",
    "innominate": "brachiocephalic",
    "lcca": "left_common_carotid",
    "rcca": "right_common_carotid",
    "lsa": "left_subclavian",
    "rsa": "right_subclavian",
    "celiac": "coeliac",
    "celiac_trunk": "coeliac",
    "coeliac_trunk": "coeliac",
    "superior_mesenteric": "sma",
    "left_renal": "renal_left",
    "right_renal": "renal_right",
    "right_femoral": "common_femoral_right",
    "left_femoral": "common_femoral_left",
    "femoral_right": "common_femoral_right",
    "femoral_left": "common_femoral_left",
    "cfa_right": "common_femoral_right",
    "cfa_left": "common_femoral_left",
    "arch": "aortic_arch",
    "ascending": "ascending_aorta",
    "descending": "descending_aorta",
}


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in the body frame (mm): the body outline no centreline may leave."""

    min_mm: Vec3 = param((-250.0, -200.0, -700.0), range=(-5000.0, 5000.0), unit="mm")
    max_mm: Vec3 = param((250.0, 200.0, 400.0), range=(-5000.0, 5000.0), unit="mm")

    def __post_init__(self) -> None:
        if any(lo >= hi for lo, hi in zip(self.min_mm, self.max_mm, strict=True)):
            raise ConfigError(f"body box: every min_mm must be below max_mm, got {self.min_mm} and {self.max_mm}")

    def contains(self, points: FloatArray) -> BoolArray:
        """Which of the points ``(n, 3)`` lie inside the box (boundary included)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return np.asarray(np.all((p >= self.min_mm) & (p <= self.max_mm), axis=1))

    def describe(self) -> str:
        """The box as a range for error messages."""
        axes = ("x", "y", "z")
        return ", ".join(f"{a} in [{lo:g}, {hi:g}]" for a, lo, hi in zip(axes, self.min_mm, self.max_mm, strict=True))


@dataclass(frozen=True)
class Annulus:
    """The aortic valve annulus: where the root branch starts. ``normal`` points from the ventricle into the aorta."""

    centre_mm: Vec3
    normal: Vec3
    radius_mm: float


@dataclass(frozen=True)
class ValveRing:
    """A prosthetic valve's sewing ring as a torus: centre, axis, major radius and tube radius (mm).

    It sits in the aortic root just above the annulus; the catheter world treats its tube as solid.
    """

    centre_mm: Vec3
    normal: Vec3
    radius_mm: float
    tube_radius_mm: float

    def signed_distance(self, points: FloatArray) -> FloatArray:
        """Signed distance (mm) to the ring's tube surface, negative inside the tube."""
        q = np.asarray(points, dtype=np.float64).reshape(-1, 3) - np.asarray(self.centre_mm)
        n = np.asarray(self.normal)
        axial = q @ n
        radial = np.linalg.norm(q - axial[:, None] * n, axis=1)
        return np.asarray(np.hypot(radial - self.radius_mm, axial) - self.tube_radius_mm, dtype=np.float64)


@dataclass(frozen=True)
class ParavalvularLeak:
    """The paravalvular leak: the crescent-shaped opening between the valve ring and the annulus wall.

    The ring sits off-centre by half ``max_gap_mm``, touching the wall opposite the leak; ``centre_mm``
    is the middle of the widest part of the gap (midway between ring and wall), ``direction`` the unit
    radial direction from the root's axis towards it, ``max_gap_mm`` the widest ring-to-wall gap and
    ``arc_deg`` the angular extent over which the gap is at least half its maximum.
    """

    centre_mm: Vec3
    direction: Vec3
    max_gap_mm: float
    arc_deg: float


@dataclass(frozen=True, eq=False)
class Branch:
    """One vessel: a centreline polyline (origin first, mm) with the lumen radius (mm) at each point."""

    name: str
    parent: str | None
    origin_arc_mm: float
    points_mm: FloatArray
    radii_mm: FloatArray
    arc_mm: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pts = np.array(self.points_mm, dtype=np.float64)
        rad = np.array(self.radii_mm, dtype=np.float64).reshape(-1)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2:
            raise ConfigError(f"branch '{self.name}': points_mm must be an (n >= 2, 3) array, got shape {pts.shape}")
        if len(rad) != len(pts):
            raise ConfigError(f"branch '{self.name}': {len(rad)} radii for {len(pts)} points")
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(rad))):
            raise ConfigError(f"branch '{self.name}': points and radii must be finite")
        if np.any(rad <= 0.0):
            raise ConfigError(f"branch '{self.name}': radius {rad.min():g} mm; allowed range (0, inf) mm")
        arc = curves.arc_lengths(pts)
        if np.any(np.diff(arc) <= 0.0):
            raise ConfigError(f"branch '{self.name}': repeated consecutive points")
        for a in (pts, rad, arc):
            a.setflags(write=False)
        object.__setattr__(self, "points_mm", pts)
        object.__setattr__(self, "radii_mm", rad)
        object.__setattr__(self, "arc_mm", arc)
        object.__setattr__(self, "origin_arc_mm", float(self.origin_arc_mm))

    @property
    def length_mm(self) -> float:
        """Centreline length."""
        return float(self.arc_mm[-1])

    def point_at(self, arc_mm: FloatArray | float) -> FloatArray:
        """Centreline points at arc positions (clamped to the branch), shape ``(k, 3)``."""
        return curves.interp_points(self.points_mm, self.arc_mm, np.atleast_1d(np.asarray(arc_mm, dtype=np.float64)))

    def radius_at(self, arc_mm: FloatArray | float) -> FloatArray:
        """Lumen radius at arc positions, shape ``(k,)``."""
        s = np.atleast_1d(np.asarray(arc_mm, dtype=np.float64))
        return np.asarray(np.interp(s, self.arc_mm, self.radii_mm), dtype=np.float64)

    def tangent_at(self, arc_mm: float) -> FloatArray:
        """Unit direction of the centreline segment containing ``arc_mm``."""
        i = int(np.clip(np.searchsorted(self.arc_mm, arc_mm, side="right") - 1, 0, len(self.arc_mm) - 2))
        d = self.points_mm[i + 1] - self.points_mm[i]
        return np.asarray(d / np.linalg.norm(d), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class GraphView:
    """The tree as flat arrays: nodes (every centreline vertex) and edges, for vectorised queries.

    ``edges[i] = (a, b)`` joins node ``a`` to node ``b``; along-branch edges come first
    (``edge_is_junction`` False), then one junction edge per child from its first node to the
    parent node nearest its origin. ``branch_start[k]:branch_stop[k]`` are branch ``k``'s nodes.
    """

    branch_names: tuple[str, ...]
    parent_index: IntArray
    branch_start: IntArray
    branch_stop: IntArray
    nodes_mm: FloatArray
    node_radius_mm: FloatArray
    node_branch: IntArray
    node_arc_mm: FloatArray
    edges: IntArray
    edge_branch: IntArray
    edge_is_junction: BoolArray

    def segments(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray]:
        """Along-branch segments as ``(start, end, start radius, end radius, branch index)`` arrays."""
        e = self.edges[~self.edge_is_junction]
        return (
            self.nodes_mm[e[:, 0]],
            self.nodes_mm[e[:, 1]],
            self.node_radius_mm[e[:, 0]],
            self.node_radius_mm[e[:, 1]],
            self.edge_branch[~self.edge_is_junction],
        )


def resolve_name(name: str, names: Sequence[str]) -> str:
    """The branch name ``name`` refers to (exact, case-insensitive, or an alias); an error lists the names."""
    if name in names:
        return name
    low = name.lower()
    for n in names:
        if n.lower() == low:
            return n
    alias = ALIASES.get(low)
    if alias is not None and alias in names:
        return alias
    raise ConfigError(f"no branch named '{name}'; this tree has: {', '.join(names)}")


@dataclass(frozen=True, eq=False)
class VesselTree:
    """A vessel tree: branches in topological order (every parent before its children) plus the valve.

    Construction checks the structure (unique names, one root, every parent present, origins on
    their parents); :mod:`ir_robot.sim.anatomy.validity` checks the geometry.
    """

    branches: tuple[Branch, ...]
    body_box: Box = field(default_factory=Box)
    annulus: Annulus | None = None
    valve_ring: ValveRing | None = None
    leak: ParavalvularLeak | None = None
    landmarks: Mapping[str, Vec3] = field(default_factory=dict)
    motion: MotionSpec = field(default_factory=MotionSpec)
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        object.__setattr__(self, "landmarks", dict(self.landmarks))
        check_structure(self.branches, self.source)

    # --- lookup ----------------------------------------------------------------------------
    @cached_property
    def names(self) -> tuple[str, ...]:
        """Branch names in topological order."""
        return tuple(b.name for b in self.branches)

    @cached_property
    def _by_name(self) -> dict[str, Branch]:
        return {b.name: b for b in self.branches}

    def branch(self, name: str) -> Branch:
        """The branch called ``name`` (aliases such as 'LCCA' accepted); an unknown name lists those present."""
        return self._by_name[resolve_name(name, self.names)]

    def children(self, name: str) -> tuple[Branch, ...]:
        """The branches whose parent is ``name``."""
        key = resolve_name(name, self.names)
        return tuple(b for b in self.branches if b.parent == key)

    def ancestors(self, name: str) -> tuple[str, ...]:
        """``name`` and its ancestors up to the root, in that order."""
        out = [resolve_name(name, self.names)]
        while (parent := self._by_name[out[-1]].parent) is not None:
            out.append(parent)
        return tuple(out)

    @property
    def root(self) -> Branch:
        """The branch without a parent."""
        return self.branches[0]

    # --- arrays ----------------------------------------------------------------------------
    @cached_property
    def graph(self) -> GraphView:
        """The node/edge arrays of the tree (built once)."""
        return build_graph(self.branches)

    def all_points(self) -> FloatArray:
        """Every centreline vertex of the tree, ``(n, 3)``."""
        return self.graph.nodes_mm

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        """Lower and upper corners of the lumen's bounding box (centrelines padded by their radii)."""
        g = self.graph
        lo = np.min(g.nodes_mm - g.node_radius_mm[:, None], axis=0)
        hi = np.max(g.nodes_mm + g.node_radius_mm[:, None], axis=0)
        return lo, hi

    # --- distance and paths ------------------------------------------------------------------
    @cached_property
    def sdf(self) -> CentrelineSdf:
        """The lumen's signed distance (negative inside), built on first use; see :mod:`.distance`."""
        from ir_robot.sim.anatomy.distance import CentrelineSdf

        return CentrelineSdf.from_tree(self)

    def signed_distance(self, points: FloatArray) -> FloatArray:
        """Signed distance (mm) from points ``(n, 3)`` to the lumen wall: negative inside the lumen."""
        return self.sdf.signed_distance(points)

    def route(
        self,
        start: str,
        target: str,
        *,
        start_arc_mm: float | None = None,
        target_arc_mm: float | None = None,
        spacing_mm: float = 1.0,
    ) -> Route:
        """The path along the centrelines from ``start`` to ``target``; see :func:`.route.find_route`."""
        from ir_robot.sim.anatomy.route import find_route

        return find_route(
            self, start, target, start_arc_mm=start_arc_mm, target_arc_mm=target_arc_mm, spacing_mm=spacing_mm
        )

    # --- identity and motion ---------------------------------------------------------------
    def content_hash(self) -> str:
        """A SHA-256 of everything the geometry depends on: the key of cached meshes and grids."""
        h = hashlib.sha256(f"ir_robot.anatomy v{FORMAT_VERSION}".encode())
        for b in self.branches:
            h.update(f"|{b.name}|{b.parent}|{b.origin_arc_mm!r}|".encode())
            h.update(np.ascontiguousarray(b.points_mm, dtype="<f8").tobytes())
            h.update(np.ascontiguousarray(b.radii_mm, dtype="<f8").tobytes())
        for extra in (self.annulus, self.valve_ring, self.leak, self.body_box):
            h.update(repr(extra).encode())
        return h.hexdigest()

    def at_time(self, t_s: float) -> VesselTree:
        """The tree displaced by its motion field at time ``t_s`` (itself when motion is off)."""
        if not self.motion.enabled:
            return self
        heart = np.asarray(self.landmarks.get("heart", self.root.points_mm[0]), dtype=np.float64)
        normal = np.asarray(self.annulus.normal if self.annulus else self.root.tangent_at(0.0), dtype=np.float64)
        lo, hi = self.bounds()
        diaphragm = float(self.landmarks.get("diaphragm", tuple(0.5 * (lo + hi)))[2])

        def move(p: FloatArray) -> FloatArray:
            q = np.asarray(p, dtype=np.float64).reshape(-1, 3)
            u = displacement(self.motion, q, t_s, heart_centre_mm=heart, valve_normal=normal, diaphragm_z_mm=diaphragm)
            return q + u

        def move3(v: Vec3) -> Vec3:
            x, y, z = (float(c) for c in move(np.asarray(v))[0])
            return (x, y, z)

        moved: list[Branch] = []
        for b in self.branches:
            origin = b.origin_arc_mm
            if b.parent is not None:  # keep the origin's fraction of the parent's (changed) length
                parent = self._by_name[b.parent]
                new_parent = next(m for m in moved if m.name == b.parent)
                origin = origin * (new_parent.length_mm / parent.length_mm)
            moved.append(Branch(b.name, b.parent, origin, move(b.points_mm), b.radii_mm))
        return dataclasses.replace(
            self,
            branches=tuple(moved),
            annulus=dataclasses.replace(self.annulus, centre_mm=move3(self.annulus.centre_mm))
            if self.annulus
            else None,
            valve_ring=(
                dataclasses.replace(self.valve_ring, centre_mm=move3(self.valve_ring.centre_mm))
                if self.valve_ring
                else None
            ),
            leak=dataclasses.replace(self.leak, centre_mm=move3(self.leak.centre_mm)) if self.leak else None,
            landmarks={k: move3(v) for k, v in self.landmarks.items()},
            motion=dataclasses.replace(self.motion, enabled=False),
            source=f"{self.source} at t={t_s:g} s",
        )


def check_structure(branches: Sequence[Branch], source: str = "") -> None:
    """Refuse a tree that is not one connected tree in topological order; errors name the branch."""
    where = f"{source}: " if source else ""
    if not branches:
        raise ConfigError(f"{where}the tree has no branches")
    seen: dict[str, Branch] = {}
    for i, b in enumerate(branches):
        if b.name in seen:
            raise ConfigError(f"{where}branch {i} ('{b.name}'): the name is used twice")
        if i == 0:
            if b.parent is not None:
                raise ConfigError(f"{where}the first branch ('{b.name}') must be the root (no parent)")
        elif b.parent is None:
            raise ConfigError(
                f"{where}branch '{b.name}' has no parent but '{branches[0].name}' is already the root: "
                "the tree is disconnected (one root allowed)"
            )
        elif b.parent not in seen:
            known = [x.name for x in branches if x.name != b.name]
            raise ConfigError(
                f"{where}branch '{b.name}': parent '{b.parent}' is not an earlier branch of the tree "
                f"(disconnected or out of order); branches: {', '.join(known)}"
            )
        else:
            plen = seen[b.parent].length_mm
            if not 0.0 <= b.origin_arc_mm <= plen + 1e-6:
                raise ConfigError(
                    f"{where}branch '{b.name}': origin_arc_mm {b.origin_arc_mm:g} is outside its parent "
                    f"'{b.parent}' (allowed range [0, {plen:.1f}] mm)"
                )
        seen[b.name] = b


def build_graph(branches: Sequence[Branch]) -> GraphView:
    """Flatten branches (topologically ordered) into a :class:`GraphView`."""
    names = tuple(b.name for b in branches)
    index = {n: i for i, n in enumerate(names)}
    counts = np.array([len(b.points_mm) for b in branches], dtype=np.int64)
    stop = np.cumsum(counts)
    start = stop - counts
    nodes = np.concatenate([b.points_mm for b in branches])
    radius = np.concatenate([b.radii_mm for b in branches])
    node_branch = np.repeat(np.arange(len(branches), dtype=np.int64), counts)
    node_arc = np.concatenate([b.arc_mm for b in branches])
    along = [np.stack([np.arange(s, e - 1), np.arange(s + 1, e)], axis=1) for s, e in zip(start, stop, strict=True)]
    junctions = []
    parents = np.full(len(branches), -1, dtype=np.int64)
    for k, b in enumerate(branches):
        if b.parent is None:
            continue
        p = index[b.parent]
        parents[k] = p
        nearest = int(np.argmin(np.abs(branches[p].arc_mm - b.origin_arc_mm)))
        junctions.append((start[k], start[p] + nearest))
    edges_along = np.concatenate(along).astype(np.int64)
    edges_j = np.array(junctions, dtype=np.int64).reshape(-1, 2)
    edges = np.concatenate([edges_along, edges_j])
    edge_branch = np.concatenate([node_branch[edges_along[:, 0]], node_branch[edges_j[:, 0]]])
    is_j = np.concatenate([np.zeros(len(edges_along), bool), np.ones(len(edges_j), bool)])
    arrays: list[npt.NDArray[np.generic]] = [start, stop, nodes, radius, node_branch, node_arc, edges, edge_branch]
    for a in (*arrays, is_j, parents):
        a.setflags(write=False)
    return GraphView(
        branch_names=names,
        parent_index=parents,
        branch_start=start,
        branch_stop=stop,
        nodes_mm=nodes,
        node_radius_mm=radius,
        node_branch=node_branch,
        node_arc_mm=node_arc,
        edges=edges,
        edge_branch=edge_branch,
        edge_is_junction=is_j,
    )
