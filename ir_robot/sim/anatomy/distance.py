"""Signed distance to the lumen (negative inside), exact from the centreline graph or from a voxel grid.

**Exact** (:class:`CentrelineSdf`): for a point ``p`` and a centreline segment ``a -> b`` with radii
``ra -> rb``, ``f = |p - q| - r(t)`` where ``q = a + t (b - a)`` is the nearest point of the segment and
``r(t)`` the radius interpolated there; the lumen's signed distance is the minimum over all segments
of all branches (the union of the tubes, each closed by round caps). To answer fast, space is cut
into cubic cells; for every cell near the lumen the segments that can be nearest anywhere in it are
listed once (a segment whose ``f`` at the cell centre exceeds the best by more than ``2 L rho`` -
``rho`` the cell's half-diagonal, ``L`` the Lipschitz bound of ``f`` - never wins inside the cell), so
a query looks at a few dozen segments instead of all of them, with the same result. Points far from
every vessel (beyond ``band_mm`` outside the wall) fall back to all segments.

**Grid** (:class:`VoxelSdf`): samples of any signed distance on a regular grid, read back by trilinear
interpolation (error ~ pitch^2 x curvature); points outside the grid go to a fallback (the exact one).
Built once and cached on disk (see :mod:`.cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from ir_robot.sim.anatomy import cache

if TYPE_CHECKING:
    from ir_robot.sim.anatomy.graph import VesselTree

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
SdfFn = Callable[[FloatArray], FloatArray]


class CentrelineSdf:
    """Exact signed distance to a union of tapered tubes around centreline polylines (see the module doc).

    Built from one ``(points, radii)`` polyline per branch. A query first evaluates the ``k_global``
    segments of the whole tree with the nearest midpoints; every other segment is at least
    ``d_k - (L/2 + r_max)`` away (``L`` the longest segment, ``r_max`` the largest radius), which
    settles most points in one KD query. The rest go branch by branch: an upper bound from the nearest
    vertex skips every branch whose bounding box (padded by its largest radius) is farther, and in each
    remaining branch the segments next to its ``window`` nearest vertices are evaluated; any other
    segment of that branch is at least ``d_window - L/2 - r_max(branch)`` away, else the branch is
    searched with four times the window, then whole. Batches of 4096 points or more go branch by
    branch directly (the loop's overhead is then amortised). The result is always exact.
    """

    def __init__(
        self, polylines: Sequence[tuple[FloatArray, FloatArray]], *, window: int = 6, k_global: int = 32
    ) -> None:
        starts: list[FloatArray] = []
        ends: list[FloatArray] = []
        r0: list[FloatArray] = []
        r1: list[FloatArray] = []
        self._branches: list[tuple[cKDTree, int, int, FloatArray, FloatArray, float]] = []
        offset = 0
        for pts, rad in polylines:
            pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
            rad = np.asarray(rad, dtype=np.float64).reshape(-1)
            n_seg = len(pts) - 1
            starts.append(pts[:-1])
            ends.append(pts[1:])
            r0.append(rad[:-1])
            r1.append(rad[1:])
            half = 0.5 * float(np.max(np.linalg.norm(np.diff(pts, axis=0), axis=1)))
            slack = half + float(rad.max())
            self._branches.append((cKDTree(pts), offset, n_seg, pts.min(axis=0), pts.max(axis=0), slack))
            offset += n_seg
        a = np.concatenate(starts)
        d = np.concatenate(ends) - a
        ra = np.concatenate(r0)
        dr = np.concatenate(r1) - ra
        self._a, self._d, self._ra, self._dr = a, d, ra, dr
        self._dd = np.maximum(np.sum(d * d, axis=1), 1e-18)
        self._cols = tuple(np.ascontiguousarray(c) for c in (*a.T, *d.T, 1.0 / self._dd, ra, dr))
        self.n_segments = len(a)
        self.window = int(window)
        vertices = np.concatenate([np.asarray(p_, dtype=np.float64).reshape(-1, 3) for p_, _ in polylines])
        self._vertex_radius = np.concatenate([np.asarray(r_, dtype=np.float64).reshape(-1) for _, r_ in polylines])
        self._all = cKDTree(vertices)
        self._mid = cKDTree(a + 0.5 * d)
        self._slack_max = max(b[5] for b in self._branches)
        self.k_global = int(k_global)
        self.batch_per_branch = 4096
        self.fallbacks = 0  # (point, branch) pairs searched whole, for diagnostics

    @classmethod
    def from_tree(cls, tree: VesselTree, *, window: int = 6) -> CentrelineSdf:
        """The exact signed distance of a tree's lumen (all branches)."""
        return cls([(b.points_mm, b.radii_mm) for b in tree.branches], window=window)

    def _f(self, p: FloatArray, seg: IntArray) -> FloatArray:
        """``f`` for points ``(n, 1, 3)`` against segment indices ``(n, k)`` (or ``(1, m)``): ``(n, k)``."""
        c = self._cols  # per-component contiguous columns: gathers stay small and contiguous
        qx = p[..., 0] - c[0][seg]
        qy = p[..., 1] - c[1][seg]
        qz = p[..., 2] - c[2][seg]
        dx, dy, dz = c[3][seg], c[4][seg], c[5][seg]
        t = np.clip((qx * dx + qy * dy + qz * dz) * c[6][seg], 0.0, 1.0)
        qx -= t * dx
        qy -= t * dy
        qz -= t * dz
        return np.asarray(np.sqrt(qx * qx + qy * qy + qz * qz) - (c[7][seg] + t * c[8][seg]), dtype=np.float64)

    def _branch_best(self, p: FloatArray, branch: int, window: int) -> tuple[FloatArray, IntArray, FloatArray]:
        """Best ``f`` in one branch near each point, its segment, and the bound on the branch's other segments."""
        kd, offset, n_seg, _, _, slack = self._branches[branch]
        if window >= n_seg + 1:
            seg = np.broadcast_to(np.arange(offset, offset + n_seg), (len(p), n_seg))
            bound = np.full(len(p), np.inf)
        else:
            dist, idx = kd.query(p, k=window)
            dist = np.asarray(dist).reshape(len(p), window)
            idx = np.asarray(idx).reshape(len(p), window)
            seg = offset + np.concatenate([np.maximum(idx - 1, 0), np.minimum(idx, n_seg - 1)], axis=1)
            bound = dist[:, -1] - slack
        f = self._f(p[:, None, :], seg)
        j = np.argmin(f, axis=1)
        rows = np.arange(len(p))
        return f[rows, j], seg[rows, j], bound

    def _global_pass(self, p: FloatArray) -> tuple[FloatArray, IntArray, FloatArray]:
        """Best ``f`` over the ``k`` segments of the whole tree with the nearest midpoints, and the bound
        ``d_k - max(L/2 + r_max)`` every other segment satisfies (one query: cheap for small batches).
        """
        k = min(self.k_global, self.n_segments)
        dist, seg = self._mid.query(p, k=k)
        dist = np.asarray(dist).reshape(len(p), k)
        seg = np.asarray(seg).reshape(len(p), k)
        f = self._f(p[:, None, :], seg)
        j = np.argmin(f, axis=1)
        rows = np.arange(len(p))
        bound = dist[:, -1] - self._slack_max if k < self.n_segments else np.full(len(p), np.inf)
        return f[rows, j], seg[rows, j], bound

    def _per_branch(self, p: FloatArray) -> tuple[FloatArray, IntArray]:
        """Exact best ``f`` and segment, branch by branch (for the points the global pass could not settle)."""
        dist, vert = self._all.query(p, k=1)
        upper = np.asarray(dist) - self._vertex_radius[np.asarray(vert)]
        best = np.full(len(p), np.inf)
        arg = np.zeros(len(p), dtype=np.int64)
        pending: list[tuple[int, IntArray, FloatArray]] = []
        for k, (_, _, _, lo, hi, slack) in enumerate(self._branches):
            gap = np.linalg.norm(np.maximum(np.maximum(lo - p, p - hi), 0.0), axis=1)
            sel = np.flatnonzero(gap - slack <= upper)
            if len(sel) == 0:
                continue
            f_b, s_b, bound = self._branch_best(p[sel], k, self.window)
            better = f_b < best[sel]
            best[sel[better]] = f_b[better]
            arg[sel[better]] = s_b[better]
            pending.append((k, sel, bound))
        for k, sel, bound in pending:
            unsure = sel[bound < best[sel]]
            for window in (4 * self.window, 1 << 30):
                if len(unsure) == 0:
                    break
                if window > self.window * 4:
                    self.fallbacks += len(unsure)
                f_b, s_b, bound2 = self._branch_best(p[unsure], k, window)
                better = f_b < best[unsure]
                best[unsure[better]] = f_b[better]
                arg[unsure[better]] = s_b[better]
                unsure = unsure[bound2 < best[unsure]]
        return best, arg

    def signed_distance(self, points: FloatArray) -> FloatArray:
        """Signed distance (mm) of points ``(n, 3)`` to the lumen wall, negative inside."""
        return self.signed_distance_and_gradient(points, gradient=False)[0]

    def signed_distance_and_gradient(
        self, points: FloatArray, *, gradient: bool = True
    ) -> tuple[FloatArray, FloatArray | None]:
        """Signed distance and, if asked, its gradient (the outward wall normal near the wall), ``(n, 3)``."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if len(p) >= self.batch_per_branch:  # large batches amortise the per-branch loop, which is faster then
            best, arg = self._per_branch(p)
        else:
            best, arg, bound = self._global_pass(p)
            unsure = np.flatnonzero(best > bound)
            if len(unsure):
                best[unsure], arg[unsure] = self._per_branch(p[unsure])
        if not gradient:
            return best, None
        q = p - self._a[arg]
        d = self._d[arg]
        t_raw = np.sum(q * d, axis=1) / self._dd[arg]
        t = np.clip(t_raw, 0.0, 1.0)
        v = q - t[:, None] * d
        n = np.linalg.norm(v, axis=1, keepdims=True)
        unit = np.where(n > 1e-12, v / np.where(n > 1e-12, n, 1.0), 0.0)
        interior = ((t_raw > 0.0) & (t_raw < 1.0))[:, None]
        grad = unit - np.where(interior, (self._dr[arg] / self._dd[arg])[:, None] * d, 0.0)
        return best, np.asarray(grad, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class VoxelSdf:
    """Signed distance samples on a regular grid (float32), read by trilinear interpolation.

    ``values[i, j, k]`` is the distance at ``origin_mm + pitch_mm * (i, j, k)``. Points outside the grid
    go to ``fallback`` (typically the exact distance), or get +inf without one.
    """

    origin_mm: FloatArray
    pitch_mm: float
    values: npt.NDArray[np.float32]
    fallback: SdfFn | None = None

    @classmethod
    def build(
        cls, fn: SdfFn, lo: FloatArray, hi: FloatArray, pitch_mm: float, *, fallback: SdfFn | None = None
    ) -> VoxelSdf:
        """Sample ``fn`` on the grid covering ``[lo, hi]`` at ``pitch_mm`` (in chunks, to bound memory)."""
        lo = np.asarray(lo, dtype=np.float64)
        shape = np.maximum(np.ceil((np.asarray(hi, dtype=np.float64) - lo) / pitch_mm).astype(np.int64) + 1, 2)
        axes = [lo[k] + pitch_mm * np.arange(shape[k]) for k in range(3)]
        values = np.empty(tuple(shape), dtype=np.float32)
        plane = np.stack(np.meshgrid(axes[1], axes[2], indexing="ij"), axis=-1).reshape(-1, 2)
        step = max(1, 200_000 // len(plane))
        for i0 in range(0, int(shape[0]), step):
            xs = axes[0][i0 : i0 + step]
            pts = np.concatenate([np.column_stack([np.full(len(plane), x), plane]) for x in xs])
            values[i0 : i0 + len(xs)] = fn(pts).reshape(len(xs), int(shape[1]), int(shape[2]))
        return cls(lo, float(pitch_mm), values, fallback)

    @property
    def upper_mm(self) -> FloatArray:
        """The grid's far corner."""
        return np.asarray(self.origin_mm + self.pitch_mm * (np.array(self.values.shape) - 1), dtype=np.float64)

    def signed_distance(self, points: FloatArray) -> FloatArray:
        """Trilinearly interpolated signed distance of points ``(n, 3)``."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        g = (p - self.origin_mm) / self.pitch_mm
        shape = np.array(self.values.shape)
        inside = np.all((g >= 0.0) & (g <= shape - 1), axis=1)
        i0 = np.clip(np.floor(g).astype(np.int64), 0, shape - 2)
        f = g - i0
        v = self.values
        x0, y0, z0 = i0[:, 0], i0[:, 1], i0[:, 2]
        fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
        c00 = v[x0, y0, z0] * (1 - fx) + v[x0 + 1, y0, z0] * fx
        c10 = v[x0, y0 + 1, z0] * (1 - fx) + v[x0 + 1, y0 + 1, z0] * fx
        c01 = v[x0, y0, z0 + 1] * (1 - fx) + v[x0 + 1, y0, z0 + 1] * fx
        c11 = v[x0, y0 + 1, z0 + 1] * (1 - fx) + v[x0 + 1, y0 + 1, z0 + 1] * fx
        out = np.asarray((c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz, dtype=np.float64)
        if not np.all(inside):
            outside = ~inside
            out[outside] = self.fallback(p[outside]) if self.fallback is not None else np.inf
        return out

    def save(self, path: str | Path) -> None:
        """Write the grid to an ``.npz`` file."""
        np.savez(Path(path), origin_mm=self.origin_mm, pitch_mm=np.float64(self.pitch_mm), values=self.values)

    @classmethod
    def load(cls, path: str | Path, *, fallback: SdfFn | None = None) -> VoxelSdf:
        """Read a grid written by :meth:`save`."""
        with np.load(Path(path)) as z:
            return cls(
                np.asarray(z["origin_mm"], dtype=np.float64),
                float(z["pitch_mm"]),
                np.asarray(z["values"], dtype=np.float32),
                fallback,
            )


def tree_grid(
    tree: VesselTree,
    *,
    pitch_mm: float = 1.0,
    lo: FloatArray | None = None,
    hi: FloatArray | None = None,
    margin_mm: float = 5.0,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> VoxelSdf:
    """A voxel grid of the tree's exact signed distance over ``[lo, hi]`` (default: the whole lumen plus
    ``margin_mm``), cached on disk by the tree's content hash, the box and the pitch. Points outside
    the box fall back to the exact distance.

    The whole tree at 1 mm is ~50-100 M voxels; pass a region of interest (e.g. the arch) for fine pitches.
    """
    blo, bhi = tree.bounds()
    lo_a = np.asarray(blo - margin_mm if lo is None else lo, dtype=np.float64)
    hi_a = np.asarray(bhi + margin_mm if hi is None else hi, dtype=np.float64)
    key = cache.key(tree.content_hash(), "grid", lo_a.round(6).tolist(), hi_a.round(6).tolist(), float(pitch_mm))
    path = cache.path_for(key, ".npz", cache_dir) if use_cache else None
    if path is not None and path.is_file():
        return VoxelSdf.load(path, fallback=tree.signed_distance)
    grid = VoxelSdf.build(tree.signed_distance, lo_a, hi_a, pitch_mm, fallback=tree.signed_distance)
    if path is not None:
        cache.atomic_save(path, grid.save)
    return grid
