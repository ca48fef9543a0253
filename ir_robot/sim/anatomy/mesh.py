"""Inner-wall meshes of the lumen: one closed tube per branch, built from the centreline graph with trimesh.

Each branch becomes a tube of ``sides`` vertices around every centreline point (rotation-minimising
frames, so it does not twist) closed at both ends by hemispherical caps of ``cap_rings`` rings, the
same round ends the signed distance of :mod:`.distance` has. Every tube is watertight with outward
normals (positive volume; ``inward=True`` flips them to face the lumen, as a camera inside sees the
wall). **The tubes are not merged**: where a child leaves its parent the two tubes interpenetrate; the
lumen is their union (what the signed distance describes), not a single surface. A union would need a
robust mesh boolean that trimesh does not ship without extra engines.

Meshes are cached on disk (:mod:`.cache`) by the tree's content hash and the mesh parameters; the
second build of the same tree loads them instead of rebuilding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import trimesh

from ir_robot.sim.anatomy import cache, curves
from ir_robot.sim.anatomy.graph import Branch, VesselTree

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Bumped when the tube construction changes, so old cached meshes are not reused.
MESH_VERSION = 1


def tube_mesh(branch: Branch, *, sides: int = 24, cap_rings: int = 4, inward: bool = False) -> trimesh.Trimesh:
    """A watertight tube around one branch, closed by hemispherical caps (outward normals unless ``inward``)."""
    pts, rad = branch.points_mm, branch.radii_mm
    tan, nrm, bin_ = curves.transport_frames(pts)
    theta = 2.0 * np.pi * np.arange(sides) / sides
    around = np.cos(theta)[None, :, None] * nrm[:, None, :] + np.sin(theta)[None, :, None] * bin_[:, None, :]
    rings = [pts[:, None, :] + rad[:, None, None] * around]  # (n, sides, 3)
    # caps: rings shrinking towards a pole beyond each end, on a sphere of the end radius
    phi = np.pi / 2.0 * np.arange(1, cap_rings) / cap_rings
    start = [
        pts[0] - rad[0] * np.sin(f) * tan[0] + rad[0] * np.cos(f) * around[0] for f in phi[::-1]
    ]  # outermost (nearest the pole) first
    end = [pts[-1] + rad[-1] * np.sin(f) * tan[-1] + rad[-1] * np.cos(f) * around[-1] for f in phi]
    body = np.concatenate([np.array(start).reshape(-1, sides, 3), rings[0], np.array(end).reshape(-1, sides, 3)])
    n_rings = len(body)
    verts = np.concatenate([body.reshape(-1, 3), [pts[0] - rad[0] * tan[0]], [pts[-1] + rad[-1] * tan[-1]]])
    pole0, pole1 = n_rings * sides, n_rings * sides + 1
    i = np.arange(n_rings - 1)[:, None]
    k = np.arange(sides)[None, :]
    a = i * sides + k
    b = i * sides + (k + 1) % sides
    c = (i + 1) * sides + k
    d = (i + 1) * sides + (k + 1) % sides
    quads = np.concatenate([np.stack([a, c, d], -1).reshape(-1, 3), np.stack([a, d, b], -1).reshape(-1, 3)])
    ks = np.arange(sides)
    cap0 = np.stack([np.full(sides, pole0), ks, (ks + 1) % sides], axis=1)
    last = (n_rings - 1) * sides
    cap1 = np.stack([np.full(sides, pole1), last + (ks + 1) % sides, last + ks], axis=1)
    faces = np.concatenate([quads, cap0, cap1]).astype(np.int64)
    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    if mesh.volume < 0.0:
        mesh.invert()
    if inward:
        mesh.invert()
    return mesh


@dataclass(frozen=True, eq=False)
class LumenMeshes:
    """One watertight tube mesh per branch; ``cache_path`` is where they are stored, ``from_cache`` whether loaded."""

    meshes: Mapping[str, trimesh.Trimesh]
    cache_path: Path | None
    from_cache: bool

    def combined(self) -> trimesh.Trimesh:
        """All tubes in one mesh (still separate, interpenetrating components)."""
        out = trimesh.util.concatenate(list(self.meshes.values()))
        assert isinstance(out, trimesh.Trimesh)
        return out

    def export(self, folder: str | Path, file_type: str = "obj") -> dict[str, Path]:
        """Write each branch's tube as ``<folder>/<branch>.<file_type>`` (e.g. for PyBullet); returns the paths."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, mesh in self.meshes.items():
            path = out / f"{name}.{file_type}"
            mesh.export(path)
            paths[name] = path
        return paths


def build_meshes(
    tree: VesselTree,
    *,
    sides: int = 24,
    cap_rings: int = 4,
    inward: bool = False,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> LumenMeshes:
    """Tube meshes of every branch, loaded from the cache when this tree was meshed before with these settings."""
    key = cache.key(tree.content_hash(), "mesh", MESH_VERSION, sides, cap_rings, inward)
    path = cache.path_for(key, ".npz", cache_dir) if use_cache else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            names = [str(n) for n in z["names"]]
            meshes = {
                n: trimesh.Trimesh(vertices=z[f"v{i}"], faces=z[f"f{i}"], process=False) for i, n in enumerate(names)
            }
        return LumenMeshes(meshes, path, True)
    meshes = {b.name: tube_mesh(b, sides=sides, cap_rings=cap_rings, inward=inward) for b in tree.branches}
    if path is not None:
        arrays: dict[str, npt.NDArray[np.generic]] = {"names": np.array(list(meshes))}
        for i, m in enumerate(meshes.values()):
            arrays[f"v{i}"] = np.asarray(m.vertices, dtype=np.float64)
            arrays[f"f{i}"] = np.asarray(m.faces, dtype=np.int64)
        cache.atomic_save(path, lambda tmp: np.savez(tmp, **arrays))  # type: ignore[arg-type]
    return LumenMeshes(meshes, path, False)
