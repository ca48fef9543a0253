"""A user's own anatomy: a centreline file (YAML or CSV) or a lumen surface mesh (STL/OBJ), fully checked.

**Centreline YAML** (body frame of :mod:`.graph`: mm, +x left, +y posterior, +z cranial)::

    name: my_patient                      # optional
    body_box_mm: {min_mm: [-250, -200, -700], max_mm: [250, 200, 400]}   # optional
    branches:
      - name: aorta                       # exactly one branch has no parent: the root
        points_mm: [[0, 0, 0], [0, 0, 10], ...]
        radii_mm: [12.0, 12.0, ...]       # one per point (or a single value for all)
      - name: renal_left
        parent: aorta
        origin_arc_mm: 42.0               # optional: default, the parent point nearest the first point
        points_mm: [...]
        radii_mm: [...]

**Centreline CSV**: a header ``branch,parent,x_mm,y_mm,z_mm,radius_mm`` and one row per point, the
rows of a branch consecutive, ``parent`` empty for the root.

Every problem - a missing or unknown field, a radius <= 0, a point outside the body box, a parent that
is not in the file (a disconnected tree), a second root, a cycle, a branch starting outside its
parent's lumen - gives one :class:`~ir_robot.core.errors.ConfigError` naming the file, the field and
the allowed range. **Meshes** must be closed (watertight) triangle surfaces in mm inside the body box;
their signed distance comes from the surface (:mod:`.mesh_distance`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trimesh
import yaml

from ir_robot.config import from_dict, param, read_yaml
from ir_robot.core.errors import ConfigError
from ir_robot.sim.anatomy.archetypes import ARCHETYPES, archetype_from_dict
from ir_robot.sim.anatomy.graph import Box, Branch, VesselTree
from ir_robot.sim.anatomy.mesh_distance import MeshLumen
from ir_robot.sim.anatomy.procedural import generate, random_anatomy

FloatArray = npt.NDArray[np.float64]

#: Lumen radii a user file may give (mm): anything from a small artery to a dilated aorta.
RADIUS_RANGE_MM = (0.05, 50.0)
#: The CSV header, in order.
CSV_COLUMNS = ("branch", "parent", "x_mm", "y_mm", "z_mm", "radius_mm")
#: Suffixes read as meshes.
MESH_SUFFIXES = (".stl", ".obj", ".ply", ".off")


@dataclass(frozen=True)
class CentrelineBranchSpec:
    """One branch of a centreline YAML file."""

    name: str
    points_mm: tuple[tuple[float, float, float], ...] = param(range=(-5000.0, 5000.0), unit="mm")
    radii_mm: tuple[float, ...] = param(range=RADIUS_RANGE_MM, unit="mm")
    parent: str | None = None
    origin_arc_mm: float | None = param(None, range=(0.0, 1e5), unit="mm")


@dataclass(frozen=True)
class CentrelineFileSpec:
    """A centreline YAML file: the branches and the body box they must stay in."""

    branches: tuple[CentrelineBranchSpec, ...]
    name: str = "user"
    body_box_mm: Box = param(default_factory=Box)


def load_centrelines(path: str | Path) -> VesselTree:
    """Load a user's centreline tree from YAML (``.yaml``/``.yml``) or CSV (``.csv``)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return _from_csv(p)
    spec = from_dict(CentrelineFileSpec, read_yaml(p), source=str(p))
    return build_user_tree(
        spec.branches,
        spec.body_box_mm,
        source=str(p),
        field=lambda i, sub: f"branches[{i}].{sub}" if sub else f"branches[{i}]",
    )


def _from_csv(path: Path) -> VesselTree:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ConfigError(f"{path}: field 'header': empty file; expected columns {', '.join(CSV_COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        what = f"missing column '{missing[0]}'" if missing else f"unknown column '{unknown[0]}'"
        raise ConfigError(f"{path}: field 'header': {what}; expected columns {', '.join(CSV_COLUMNS)}")
    col = {c: header.index(c) for c in CSV_COLUMNS}
    groups: list[dict[str, Any]] = []
    rows_of: list[tuple[int, int]] = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ConfigError(f"{path}: field 'row {n}': {len(row)} cells, expected {len(header)}")
        values: list[float] = []
        for c, lo, hi in (("x_mm", -5000.0, 5000.0), ("y_mm", -5000.0, 5000.0), ("z_mm", -5000.0, 5000.0)) + (
            ("radius_mm", *RADIUS_RANGE_MM),
        ):
            text = row[col[c]].strip()
            try:
                v = float(text)
            except ValueError:
                raise ConfigError(f"{path}: field 'row {n}, column {c}': expected a number, got {text!r}") from None
            if not (np.isfinite(v) and lo <= v <= hi):
                raise ConfigError(
                    f"{path}: field 'row {n}, column {c}': value {v!r} is outside the allowed range [{lo}, {hi}] mm"
                )
            values.append(v)
        name = row[col["branch"]].strip()
        parent = row[col["parent"]].strip() or None
        if not name:
            raise ConfigError(f"{path}: field 'row {n}, column branch': empty branch name")
        if groups and groups[-1]["name"] == name:
            if groups[-1]["parent"] != parent:
                raise ConfigError(
                    f"{path}: field 'row {n}, column parent': '{parent}' differs from the branch's first row "
                    f"('{groups[-1]['parent']}')"
                )
            groups[-1]["points"].append(values[:3])
            groups[-1]["radii"].append(values[3])
            rows_of[-1] = (rows_of[-1][0], n)
        else:
            if any(g["name"] == name for g in groups):
                raise ConfigError(
                    f"{path}: field 'row {n}, column branch': rows of branch '{name}' are not consecutive"
                )
            groups.append({"name": name, "parent": parent, "points": [values[:3]], "radii": [values[3]]})
            rows_of.append((n, n))
    specs = [
        CentrelineBranchSpec(
            name=g["name"],
            points_mm=tuple((float(x), float(y), float(z)) for x, y, z in g["points"]),
            radii_mm=tuple(g["radii"]),
            parent=g["parent"],
        )
        for g in groups
    ]

    def field(i: int, sub: str) -> str:
        a, b = rows_of[i]
        where = f"branch '{specs[i].name}' (rows {a}-{b})"
        if sub.startswith("points_mm[") or sub.startswith("radii_mm["):
            k = int(sub.split("[")[1].split("]")[0])
            return f"row {a + k}"
        return f"{where}{', column ' + sub if sub else ''}"

    return build_user_tree(specs, Box(), source=str(path), field=field)


def build_user_tree(
    specs: Sequence[CentrelineBranchSpec],
    body_box: Box,
    *,
    source: str,
    field: Callable[[int, str], str],
) -> VesselTree:
    """Check user branches (naming ``field(i, sub)`` in errors) and build the tree in topological order."""

    def fail(i: int, sub: str, msg: str) -> ConfigError:
        return ConfigError(f"{source}: field '{field(i, sub)}': {msg}")

    if not specs:
        raise ConfigError(f"{source}: field 'branches': no branches; at least one (the root) is required")
    names = [s.name for s in specs]
    for i, s in enumerate(specs):
        if names.index(s.name) != i:
            raise fail(i, "name", f"'{s.name}' is used by an earlier branch; names must be unique")
        if len(s.points_mm) < 2:
            raise fail(i, "points_mm", f"{len(s.points_mm)} point(s); at least 2 required")
        if len(s.radii_mm) not in (1, len(s.points_mm)):
            raise fail(
                i, "radii_mm", f"{len(s.radii_mm)} radii for {len(s.points_mm)} points; give one per point or one"
            )
        for j, r in enumerate(s.radii_mm):
            if not RADIUS_RANGE_MM[0] <= r <= RADIUS_RANGE_MM[1]:
                lo, hi = RADIUS_RANGE_MM
                raise fail(i, f"radii_mm[{j}]", f"value {r!r} is outside the allowed range [{lo}, {hi}] mm")
        pts = np.asarray(s.points_mm, dtype=np.float64)
        inside = body_box.contains(pts)
        if not np.all(inside):
            j = int(np.argmin(inside))
            raise fail(
                i,
                f"points_mm[{j}]",
                f"point {pts[j].tolist()} is outside the body (allowed range {body_box.describe()})",
            )
        if np.any(np.linalg.norm(np.diff(pts, axis=0), axis=1) <= 0.0):
            j = int(np.argmin(np.linalg.norm(np.diff(pts, axis=0), axis=1))) + 1
            raise fail(i, f"points_mm[{j}]", "repeats the previous point; consecutive points must differ")
    roots = [i for i, s in enumerate(specs) if s.parent is None]
    if not roots:
        raise fail(0, "parent", "every branch has a parent: the tree has no root (exactly one branch without parent)")
    if len(roots) > 1:
        raise fail(
            roots[1],
            "parent",
            f"a second root besides '{specs[roots[0]].name}': the tree is disconnected "
            "(exactly one branch without parent allowed)",
        )
    for i, s in enumerate(specs):
        if s.parent is not None and s.parent not in names:
            raise fail(
                i,
                "parent",
                f"'{s.parent}' is not a branch in this file (disconnected tree); branches: {', '.join(names)}",
            )
        if s.parent == s.name:
            raise fail(i, "parent", "a branch cannot be its own parent")
    # topological order, keeping the file's order where it already is one; a branch never placed is on a cycle
    order: list[int] = []
    placed: set[str] = set()
    while len(order) < len(specs):
        ready = [i for i, s in enumerate(specs) if s.name not in placed and (s.parent is None or s.parent in placed)]
        if not ready:
            i = next(i for i, s in enumerate(specs) if s.name not in placed)
            raise fail(i, "parent", "the branch is on a parent cycle, not connected to the root")
        first = ready[0]
        order.append(first)
        placed.add(specs[first].name)
    built: dict[str, Branch] = {}
    for i in order:
        s = specs[i]
        pts = np.asarray(s.points_mm, dtype=np.float64)
        radii = np.broadcast_to(np.asarray(s.radii_mm, dtype=np.float64), (len(pts),))
        origin = 0.0
        if s.parent is not None:
            parent = built[s.parent]
            if s.origin_arc_mm is not None:
                if s.origin_arc_mm > parent.length_mm:
                    raise fail(
                        i,
                        "origin_arc_mm",
                        f"value {s.origin_arc_mm!r} is beyond its parent '{s.parent}' "
                        f"(allowed range [0, {parent.length_mm:.1f}] mm)",
                    )
                origin = float(s.origin_arc_mm)
            else:
                origin = nearest_arc(parent, pts[0])
            gap = float(np.linalg.norm(pts[0] - parent.point_at(origin)[0]))
            r_parent = float(parent.radius_at(origin)[0])
            if gap >= r_parent:
                raise fail(
                    i,
                    "points_mm[0]",
                    f"starts {gap:.2f} mm from its parent '{s.parent}''s centreline, outside its lumen "
                    f"(allowed range [0, {r_parent:.2f}) mm)",
                )
        built[s.name] = Branch(s.name, s.parent, origin, pts, radii)
    return VesselTree(branches=tuple(built[specs[i].name] for i in order), body_box=body_box, source=source)


def nearest_arc(branch: Branch, point: FloatArray) -> float:
    """Arc position of the point on the branch's centreline nearest to ``point``."""
    a = branch.points_mm[:-1]
    d = branch.points_mm[1:] - a
    t = np.clip(np.sum((point - a) * d, axis=1) / np.sum(d * d, axis=1), 0.0, 1.0)
    dist = np.linalg.norm(a + t[:, None] * d - point, axis=1)
    k = int(np.argmin(dist))
    return float(branch.arc_mm[k] + t[k] * (branch.arc_mm[k + 1] - branch.arc_mm[k]))


def save_centrelines(tree: VesselTree, path: str | Path) -> Path:
    """Write a tree as a centreline YAML or CSV file (by suffix) that :func:`load_centrelines` reads back."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".csv":
        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for b in tree.branches:
                for pt, r in zip(b.points_mm.tolist(), b.radii_mm.tolist(), strict=True):
                    w.writerow([b.name, b.parent or "", *(repr(float(c)) for c in pt), repr(float(r))])
        return p
    data = {
        "name": tree.source or "user",
        "body_box_mm": {"min_mm": list(tree.body_box.min_mm), "max_mm": list(tree.body_box.max_mm)},
        "branches": [
            {
                "name": b.name,
                "parent": b.parent,
                "origin_arc_mm": None if b.parent is None else float(b.origin_arc_mm),
                "points_mm": b.points_mm.tolist(),
                "radii_mm": b.radii_mm.tolist(),
            }
            for b in tree.branches
        ],
    }
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def load_lumen_mesh(path: str | Path, *, body_box: Box | None = None) -> MeshLumen:
    """Load a closed lumen surface (STL/OBJ/PLY/OFF, mm) checked to be watertight and inside the body."""
    p = Path(path)
    box = body_box or Box()
    if not p.is_file():
        raise ConfigError(f"{p}: file not found")
    try:
        loaded = trimesh.load(p, force="mesh")
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise ConfigError(
            f"{p}: field 'mesh': cannot read it ({exc}); allowed: an STL/OBJ/PLY/OFF triangle surface"
        ) from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ConfigError(f"{p}: field 'mesh': no triangles; allowed: a closed triangle surface")
    if not loaded.is_watertight:
        open_edges = int(np.sum(np.bincount(loaded.edges_unique_inverse) == 1))
        raise ConfigError(
            f"{p}: field 'mesh': the surface is not watertight ({open_edges} open edges); "
            "allowed: a closed (watertight) triangle surface"
        )
    if not loaded.is_winding_consistent:
        raise ConfigError(
            f"{p}: field 'mesh': the triangles' winding is inconsistent; "
            "allowed: a consistently oriented closed surface"
        )
    inside = box.contains(np.asarray(loaded.vertices))
    if not np.all(inside):
        v = np.asarray(loaded.vertices)[int(np.argmin(inside))]
        raise ConfigError(
            f"{p}: field 'vertices': vertex {np.round(v, 1).tolist()} is outside the body "
            f"(allowed range {box.describe()}; the mesh must be in mm in the body frame)"
        )
    return MeshLumen(loaded, source=str(p))


def load_anatomy(anatomy: str | Path, seed: int = 0) -> VesselTree | MeshLumen:
    """What ``--anatomy`` names: ``random`` or an archetype (drawn with ``seed``), an archetype YAML,
    a centreline YAML/CSV, or a lumen mesh.
    """
    text = str(anatomy)
    if text == "random" or text in ARCHETYPES:
        return random_anatomy(seed, text)
    p = Path(anatomy)
    suffix = p.suffix.lower()
    if suffix in MESH_SUFFIXES:
        return load_lumen_mesh(p)
    if suffix == ".csv":
        return load_centrelines(p)
    if suffix in (".yaml", ".yml"):
        data = read_yaml(p)
        if "branches" in data:
            return load_centrelines(p)
        if "arch_type" not in data:
            raise ConfigError(
                f"{p}: field 'branches': missing required field (a centreline file lists 'branches'; "
                "an archetype file has 'arch_type' and the rest of sim/anatomies/type1.yaml)"
            )
        spec = archetype_from_dict(data, source=str(p))
        return generate(spec, np.random.default_rng(seed), source=f"{p} seed={seed}")
    raise ConfigError(
        f"{p}: field 'anatomy': unknown kind; allowed: random, {', '.join(ARCHETYPES)}, an archetype or centreline "
        f"YAML, a centreline CSV, or a mesh ({', '.join(MESH_SUFFIXES)})"
    )
