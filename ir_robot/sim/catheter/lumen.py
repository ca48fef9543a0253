"""The vessel lumen as the rod solver sees it: a signed distance (negative inside) and its gradient.

:class:`Lumen` is the whole interface the mechanics needs from an anatomy; the anatomy package
adapts to it. :class:`TubeLumen` is a simple implementation (a union of tubes around polylines
with a radius at each vertex, closed by round caps) used by the tests and the bench: a straight
tube, a torus section, a Y bifurcation and a tortuous tube are all built from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Lumen(Protocol):
    """A vessel lumen: signed distance to the wall (mm, negative inside) and its unit gradient."""

    def signed_distance(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Return ``(d (N,), grad (N,3))`` for ``points (N,3)`` in mm; grad points out of the lumen."""
        ...


class TubeLumen:
    """A union of round-capped tubes around polylines, the radius linear along each segment.

    The signed distance of a union is the minimum over the tubes (exact outside, a bound inside,
    which is all the contact law needs). Ends are closed (hemispherical caps): a blind end.
    """

    def __init__(
        self, polylines: Sequence[npt.ArrayLike], radii: Sequence[npt.ArrayLike], *, cell_mm: float | None = None
    ):
        a_list, b_list, ra_list, rb_list = [], [], [], []
        for pts, rad in zip(polylines, radii, strict=True):
            p = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
            r = np.broadcast_to(np.asarray(rad, dtype=np.float64), (p.shape[0],))
            if p.shape[0] < 2:
                raise ValueError("a polyline needs at least two points")
            if np.any(r <= 0.0):
                raise ValueError("tube radii must be positive")
            a_list.append(p[:-1])
            b_list.append(p[1:])
            ra_list.append(r[:-1])
            rb_list.append(r[1:])
        self.a = np.concatenate(a_list)
        self.b = np.concatenate(b_list)
        self.ra = np.concatenate(ra_list)
        self.rb = np.concatenate(rb_list)
        self.ab = self.b - self.a
        self.len2 = np.maximum(np.einsum("ij,ij->i", self.ab, self.ab), 1e-12)
        # one row per tube for a single gather per query: a (3), ab (3), 1/len^2, ra, rb - ra
        self._packed = np.concatenate(
            [self.a, self.ab, (1.0 / self.len2)[:, None], self.ra[:, None], (self.rb - self.ra)[:, None]], axis=1
        )
        self._build_cells(cell_mm if cell_mm is not None else 1.0)

    def _segment_sd(self, p: FloatArray, idx: npt.NDArray[np.intp]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Signed distance of points ``p (N,3)`` to candidate tubes ``idx (N,K)``: (sd, dist, diff)."""
        q = self._packed[idx]  # (N, K, 9)
        ab = q[..., 3:6]
        ap = p[:, None, :] - q[..., 0:3]
        t = np.clip(np.einsum("nmk,nmk->nm", ap, ab) * q[..., 6], 0.0, 1.0)
        diff = ap - t[:, :, None] * ab
        dist = np.sqrt(np.einsum("nmk,nmk->nm", diff, diff))
        sd = dist - (q[..., 7] + t * q[..., 8])
        return sd, dist, diff

    def tube_distances(self, points: FloatArray) -> FloatArray:
        """Signed distance of each point to every tube, ``(N, n_tubes)`` (exhaustive: for labelling, not the solver)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        idx = np.broadcast_to(np.arange(self.a.shape[0]), (p.shape[0], self.a.shape[0]))
        return self._segment_sd(p, idx)[0]

    def _build_cells(self, h: float) -> None:
        """Bucket the tubes on a grid of cells: each cell keeps the tubes that can be nearest inside it.

        A tube j can be the nearest for some point of a cell only if its distance from the cell
        centre is within ``2 rho`` (rho: half the cell diagonal) of the nearest tube's; only cells
        within ``band`` of a tube wall are kept (other queries fall back to a full search); the cell
        size grows past ``h`` if the box would need more than about 4 million cells.
        Built tube by tube over each tube's bounding box, so the cost grows with the tube length.
        """
        rmax = np.maximum(self.ra, self.rb)
        span = np.maximum(self.a.max(axis=0), self.b.max(axis=0)) - np.minimum(self.a.min(axis=0), self.b.min(axis=0))
        h = max(h, float(np.prod(span + 2.0 * rmax.max() + 6.0 * h) / 4.0e6) ** (1.0 / 3.0))  # <= ~4M cells
        rho = 0.5 * math.sqrt(3.0) * h
        band = 2.0 * rho + h
        lo = np.minimum(self.a.min(axis=0), self.b.min(axis=0)) - float(rmax.max()) - band - h
        hi = np.maximum(self.a.max(axis=0), self.b.max(axis=0)) + float(rmax.max()) + band + h
        shape = np.maximum(np.ceil((hi - lo) / h).astype(np.intp), 1)
        ncell = int(np.prod(shape))
        best = np.full(ncell, np.inf)
        boxes = []
        for j in range(self.a.shape[0]):
            bl = np.minimum(self.a[j], self.b[j]) - rmax[j] - band
            bh = np.maximum(self.a[j], self.b[j]) + rmax[j] + band
            i0 = np.clip(np.floor((bl - lo) / h).astype(np.intp), 0, shape - 1)
            i1 = np.clip(np.ceil((bh - lo) / h).astype(np.intp), 0, shape - 1)
            g = np.stack(np.meshgrid(*[np.arange(i0[k], i1[k] + 1) for k in range(3)], indexing="ij"), axis=-1).reshape(
                -1, 3
            )
            flat = (g[:, 0] * shape[1] + g[:, 1]) * shape[2] + g[:, 2]
            centres = lo + (g + 0.5) * h
            sd, _, _ = self._segment_sd(centres, np.full((centres.shape[0], 1), j, dtype=np.intp))
            sdj = sd[:, 0]
            keep = sdj <= band
            boxes.append((flat[keep], sdj[keep]))
            np.minimum.at(best, flat[keep], sdj[keep])
        pf, pj = [], []
        for j, (flat, sdj) in enumerate(boxes):
            ok = sdj <= best[flat] + 2.0 * rho
            pf.append(flat[ok])
            pj.append(np.full(int(np.count_nonzero(ok)), j, dtype=np.intp))
        f_all = np.concatenate(pf)
        j_all = np.concatenate(pj)
        order = np.lexsort((j_all, f_all))
        f_all, j_all = f_all[order], j_all[order]
        uniq, start, counts = np.unique(f_all, return_index=True, return_counts=True)
        rows = np.repeat(np.arange(uniq.size), counts)
        cols = np.arange(f_all.size) - np.repeat(start, counts)
        table = np.zeros((uniq.size, max(int(counts.max(initial=1)), 1)), dtype=np.intp)
        table[:] = j_all[start][:, None] if uniq.size else 0
        table[rows, cols] = j_all
        cellmap = np.full(ncell, -1, dtype=np.int64)
        cellmap[uniq] = np.arange(uniq.size)
        self._lo = lo
        self._h = h
        self._shape = shape
        self._table = table
        self._cellmap = cellmap

    def signed_distance(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Signed distance to the union of tubes and its gradient (see :class:`Lumen`)."""
        p = np.asarray(points, dtype=np.float64)
        cell = np.clip(((p - self._lo) / self._h).astype(np.intp), 0, self._shape - 1)
        flat = (cell[:, 0] * self._shape[1] + cell[:, 1]) * self._shape[2] + cell[:, 2]
        row = self._cellmap[flat]
        if bool(np.any(row < 0)):  # far from every wall (deep inside or outside): search all tubes
            m = self.a.shape[0]
            idx = np.broadcast_to(np.arange(m), (p.shape[0], m))
        else:
            idx = self._table[row]
        sd, dist, diff = self._segment_sd(p, idx)
        j = np.argmin(sd, axis=1)
        rows = np.arange(p.shape[0])
        d = sd[rows, j]
        nv = np.maximum(dist[rows, j], 1e-12)
        grad = diff[rows, j] / nv[:, None]
        return d, grad


def straight_tube(length_mm: float, radius_mm: float, *, start: Sequence[float] = (0.0, 0.0, 0.0)) -> TubeLumen:
    """A straight tube along +x from ``start`` (blind at the far end)."""
    s = np.asarray(start, dtype=np.float64)
    return TubeLumen([np.stack([s, s + [length_mm, 0.0, 0.0]])], [radius_mm])


def arc_tube(
    bend_radius_mm: float, angle_rad: float, radius_mm: float, *, lead_in_mm: float = 30.0, n: int = 181
) -> TubeLumen:
    """A straight lead-in along +x from the origin, then a torus section bending towards +y."""
    th = np.linspace(0.0, angle_rad, n)
    arc = np.stack(
        [lead_in_mm + bend_radius_mm * np.sin(th), bend_radius_mm * (1.0 - np.cos(th)), np.zeros_like(th)], axis=1
    )
    pts = np.concatenate([[[0.0, 0.0, 0.0]], arc])
    return TubeLumen([pts], [radius_mm])


def y_bifurcation(
    trunk_mm: float = 80.0,
    branch_mm: float = 80.0,
    trunk_radius_mm: float = 5.0,
    branch_radius_mm: float = 3.5,
    half_angle_deg: float = 30.0,
) -> TubeLumen:
    """A trunk along +x from the origin splitting into two branches at +-``half_angle_deg`` in the xy plane."""
    a = math.radians(half_angle_deg)
    fork = np.array([trunk_mm, 0.0, 0.0])
    trunk = np.stack([np.zeros(3), fork])
    left = np.stack([fork, fork + branch_mm * np.array([math.cos(a), math.sin(a), 0.0])])
    right = np.stack([fork, fork + branch_mm * np.array([math.cos(a), -math.sin(a), 0.0])])
    return TubeLumen([trunk, left, right], [trunk_radius_mm, branch_radius_mm, branch_radius_mm])


def tortuous_tube(
    length_mm: float = 400.0,
    radius_mm: float = 4.0,
    *,
    amplitude_mm: float = 12.0,
    wavelength_mm: float = 90.0,
    n: int = 400,
    seed: int = 0,
) -> TubeLumen:
    """A 3-D tortuous tube along +x: two sinusoidal wiggles with seeded phases, radius varying +-15 %."""
    rng = np.random.default_rng(seed)
    ph = rng.uniform(0.0, 2.0 * math.pi, size=3)
    x = np.linspace(0.0, length_mm, n)
    ramp = np.clip(x / wavelength_mm, 0.0, 1.0)  # straight start at the access
    k = 2.0 * math.pi / wavelength_mm
    y = ramp * amplitude_mm * (np.sin(k * x + ph[0]) - math.sin(ph[0]))
    z = ramp * amplitude_mm * 0.7 * (np.sin(0.73 * k * x + ph[1]) - math.sin(ph[1]))
    r = radius_mm * (1.0 + 0.15 * np.sin(0.5 * k * x + ph[2]))
    return TubeLumen([np.stack([x, y, z], axis=1)], [r])
