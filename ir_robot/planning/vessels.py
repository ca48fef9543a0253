"""Vessel estimates fused from a transverse ultrasound sweep and the NIR camera.

The scan gives, per ultrasound station (probe transverse, at ``x = probe.x_mm``), the
vessel cross-sections perception found (kind, centre, lateral width, vertical height)
and, from NIR, the veins' centrelines seen from above. :func:`fuse_scan` groups the
cross-sections of one vessel across stations, links each group to the NIR vein it
lies under, and fits the vessel's centreline in the world frame::

    y(x) = polynomial (degree <= 2, NIR points when linked, else the ultrasound centres)
    z(x) = straight line through the ultrasound centres (z < 0 under the skin)

Everything is expressed at the scan's reference time; phantom motion since then is
a rigid offset the controller estimates separately.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.config import param


@dataclass(frozen=True)
class CrossSection:
    """One vessel cross-section in a transverse ultrasound frame (world frame, mm)."""

    kind: str  # "vein" | "artery"
    x_mm: float
    y_mm: float
    z_mm: float
    width_mm: float  # lateral lumen extent
    height_mm: float  # vertical lumen extent
    confidence: float = 1.0
    area_mm2: float = 0.0  # lumen area in the image (0: not measured)


@dataclass(frozen=True)
class NirTrace:
    """A vein seen by NIR: centreline points ``xy_mm`` (N, 2) in the world frame, sorted by x."""

    xy_mm: NDArray[np.float64]
    width_mm: float
    confidence: float = 1.0

    def y_at(self, x_mm: ArrayLike) -> NDArray[np.float64]:
        """Centreline y at ``x_mm`` (NaN outside the seen extent)."""
        x = np.asarray(x_mm, dtype=float)
        xs, ys = self.xy_mm[:, 0], self.xy_mm[:, 1]
        out = np.interp(x, xs, ys)
        return np.where((x >= xs[0] - 1e-9) & (x <= xs[-1] + 1e-9), out, np.nan)

    @property
    def x_range_mm(self) -> tuple[float, float]:
        """First and last x (mm) of the seen centreline."""
        return float(self.xy_mm[0, 0]), float(self.xy_mm[-1, 0])


@dataclass(frozen=True)
class FusionParams:
    """Gates and fit limits of :func:`fuse_scan`: which cross-sections are one vessel, how its centreline is fitted."""

    link_gate_mm: float = param(
        2.0, range=(0.1, 20.0), unit="mm", help="cross-sections this close sideways (same x) are one vessel"
    )
    link_slope: float = param(
        0.25, range=(0.0, 2.0), help="plus this much per mm of x between them (angled veins, arm motion)"
    )
    link_depth_mm: float = param(1.5, range=(0.1, 20.0), unit="mm", help="and this close in depth")
    nir_gate_mm: float = param(
        1.5,
        range=(0.1, 20.0),
        unit="mm",
        help="an ultrasound vessel is linked to the NIR vein within this lateral distance",
    )
    straight_tolerance_mm: float = param(
        0.3,
        range=(0.01, 5.0),
        unit="mm",
        help="largest sideways deviation from a straight line over the straight length",
    )
    max_y_degree: int = param(2, range=(0, 2), help="degree of the fitted y(x) centreline")
    min_stations: int = param(
        2, range=(1, 20), help="a vessel must be seen at this many scan x positions (one-off blobs are noise)"
    )


@dataclass(frozen=True)
class VesselEstimate:
    """One vessel as perception sees it (world frame, reference time).

    ``y_coef`` / ``z_coef``: ``numpy.polyval`` coefficients of the centreline; ``diameter_mm``
    lateral lumen diameter, ``height_mm`` vertical lumen extent (veins are compressed);
    ``x_range_mm`` where the vessel was observed; ``straight_length_mm`` the longest
    stretch that stays within ``straight_tolerance_mm`` of a straight line;
    ``kind_confidence``: fraction of the ultrasound votes for ``kind``.
    """

    kind: str
    y_coef: tuple[float, ...]
    z_coef: tuple[float, ...]
    diameter_mm: float
    height_mm: float
    x_range_mm: tuple[float, float]
    straight_length_mm: float
    n_views: int = 1
    kind_confidence: float = 1.0
    nir_linked: bool = False
    sections: tuple[CrossSection, ...] = field(default=(), repr=False)

    @overload
    def y_at(self, x_mm: float) -> float: ...
    @overload
    def y_at(self, x_mm: NDArray[np.float64]) -> NDArray[np.float64]: ...
    def y_at(self, x_mm: float | NDArray[np.float64]) -> float | NDArray[np.floating]:
        """Centreline y (mm) at ``x_mm`` (a number or an array), from the fitted polynomial."""
        return np.polyval(self.y_coef, x_mm)

    @overload
    def z_at(self, x_mm: float) -> float: ...
    @overload
    def z_at(self, x_mm: NDArray[np.float64]) -> NDArray[np.float64]: ...
    def z_at(self, x_mm: float | NDArray[np.float64]) -> float | NDArray[np.floating]:
        """Centreline height z (mm, negative under the skin) at ``x_mm``, from the fitted line."""
        return np.polyval(self.z_coef, x_mm)

    @overload
    def depth_at(self, x_mm: float) -> float: ...
    @overload
    def depth_at(self, x_mm: NDArray[np.float64]) -> NDArray[np.float64]: ...
    def depth_at(self, x_mm: float | NDArray[np.float64]) -> float | NDArray[np.floating]:
        """Centre depth below the skin (mm, positive) at ``x_mm``: ``-z``."""
        return -self.z_at(x_mm)

    def centre_at(self, x_mm: float) -> NDArray[np.float64]:
        """Lumen centre (x, y, z) in mm at ``x_mm``, the point a plan aims the tip at."""
        return np.array([float(x_mm), float(self.y_at(x_mm)), float(self.z_at(x_mm))])

    def slope_at(self, x_mm: float) -> tuple[float, float]:
        """(dy/dx, dz/dx) of the centreline."""
        return (
            float(np.polyval(np.polyder(self.y_coef), x_mm)) if len(self.y_coef) > 1 else 0.0,
            float(np.polyval(np.polyder(self.z_coef), x_mm)) if len(self.z_coef) > 1 else 0.0,
        )

    @property
    def mid_x_mm(self) -> float:
        """Middle of the observed x range (mm): where targets are preferred."""
        return 0.5 * (self.x_range_mm[0] + self.x_range_mm[1])

    def shifted(self, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> VesselEstimate:
        """The same vessel moved rigidly by (dx, dy, dz) mm."""
        ys = np.poly1d(self.y_coef)
        zs = np.poly1d(self.z_coef)
        shift = np.poly1d([1.0, -dx])
        y_new = tuple(float(c) for c in (ys(shift) + dy).coeffs)
        z_new = tuple(float(c) for c in (zs(shift) + dz).coeffs)
        return VesselEstimate(
            self.kind,
            _pad(y_new, len(self.y_coef)),
            _pad(z_new, len(self.z_coef)),
            self.diameter_mm,
            self.height_mm,
            (self.x_range_mm[0] + dx, self.x_range_mm[1] + dx),
            self.straight_length_mm,
            self.n_views,
            self.kind_confidence,
            self.nir_linked,
            self.sections,
        )


def _pad(coef: tuple[float, ...], n: int) -> tuple[float, ...]:
    return (0.0,) * (n - len(coef)) + tuple(coef) if len(coef) < n else coef


def straight_length(y_coef: Sequence[float], x_range: tuple[float, float], tolerance_mm: float) -> float:
    """Longest stretch of ``y(x)`` inside ``x_range`` within ``tolerance_mm`` of its chord.

    A parabola deviates from its chord over length L by ``|c| L^2 / 4`` (c: the x^2
    coefficient), so the answer is ``min(range, 2 sqrt(tol / |c|))``.
    """
    extent = max(0.0, x_range[1] - x_range[0])
    c = float(y_coef[0]) if len(y_coef) >= 3 else 0.0
    if abs(c) < 1e-12:
        return extent
    return min(extent, 2.0 * math.sqrt(tolerance_mm / abs(c)))


def _cluster(secs: list[CrossSection], params: FusionParams) -> NDArray[np.intp]:
    """Vessel labels for cross-sections: duplicates at one x (overlapping stations) are merged
    when close; successive x positions are then matched one-to-one (Hungarian assignment),
    with a sideways gate growing with the x distance (angled veins, arm motion) and a depth gate,
    so an angled vein is followed without swallowing its neighbour.
    """
    n = len(secs)
    if n <= 1:
        return np.zeros(n, int)
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse.csgraph import connected_components

    x = np.array([s.x_mm for s in secs])
    y = np.array([s.y_mm for s in secs])
    z = np.array([s.z_mm for s in secs])
    levels = np.unique(np.round(x, 1))
    label = np.full(n, -1)
    next_label = 0
    prev: list[tuple[int, float, float]] = []  # (label, y, z) of the groups at the previous x
    prev_x = None
    for lx in levels:
        idx = np.flatnonzero(np.round(x, 1) == lx)
        same = (np.abs(y[idx, None] - y[None, idx]) < params.link_gate_mm) & (
            np.abs(z[idx, None] - z[None, idx]) < params.link_depth_mm
        )
        k, sub = connected_components(same, directed=False)
        groups = [(idx[sub == g], float(y[idx[sub == g]].mean()), float(z[idx[sub == g]].mean())) for g in range(k)]
        assigned = [-1] * k
        if prev:
            dx = lx - prev_x
            gy = params.link_gate_mm + params.link_slope * dx
            gz = params.link_depth_mm + 0.1 * dx
            cost = np.full((len(prev), k), 1e6)
            for a, (_, py, pz) in enumerate(prev):
                for b, (_, gy_b, gz_b) in enumerate(groups):
                    ey, ez = abs(gy_b - py), abs(gz_b - pz)
                    if ey < gy and ez < gz:
                        cost[a, b] = ey + ez
            rows, cols = linear_sum_assignment(cost)
            for a, b in zip(rows, cols, strict=True):
                if cost[a, b] < 1e6:
                    assigned[b] = prev[a][0]
        cur = []
        for b, (members, gy_b, gz_b) in enumerate(groups):
            lab = assigned[b]
            if lab < 0:
                lab, next_label = next_label, next_label + 1
            label[members] = lab
            cur.append((lab, gy_b, gz_b))
        # vessels not seen at this x stay matchable at the next one
        seen = {c[0] for c in cur}
        prev = cur + [p for p in prev if p[0] not in seen]
        prev_x = lx
    return label


def fuse_scan(
    sections: list[CrossSection] | tuple[CrossSection, ...],
    nir: list[NirTrace] | tuple[NirTrace, ...] = (),
    params: FusionParams = FusionParams(),
) -> tuple[tuple[VesselEstimate, ...], tuple[NirTrace, ...]]:
    """Group cross-sections into vessels and fit their centrelines.

    Returns ``(vessels, unmatched_nir)``: the fused vessels (widest first) and the NIR
    veins no ultrasound cross-section was found under (no depth: not targetable). Groups
    seen at fewer than ``min_stations`` distinct x positions are dropped (speckle, fat
    lobules and other one-off dark blobs do not line up across stations; vessels do).
    """
    secs = list(sections)
    if not secs:
        return (), tuple(nir)
    labels = _cluster(secs, params)
    used_nir: set[int] = set()
    out: list[VesselEstimate] = []
    for lab in np.unique(labels):
        group = [s for s, g in zip(secs, labels, strict=True) if g == lab]
        xs = np.array([s.x_mm for s in group])
        if np.unique(np.round(xs, 1)).size < params.min_stations:
            continue
        ys = np.array([s.y_mm for s in group])
        zs = np.array([s.z_mm for s in group])
        w = np.array([max(s.confidence, 1e-3) for s in group])
        vein_votes = float(sum(wi for s, wi in zip(group, w, strict=True) if s.kind == "vein"))
        kind = "vein" if vein_votes * 2 >= w.sum() else "artery"
        conf = (vein_votes if kind == "vein" else w.sum() - vein_votes) / w.sum()
        # link to the NIR trace lying over these cross-sections
        best, best_err = None, params.nir_gate_mm
        for k, tr in enumerate(nir):
            yn = tr.y_at(xs)
            ok = np.isfinite(yn)
            if not ok.any():
                continue
            err = float(np.median(np.abs(yn[ok] - ys[ok])))
            if err < best_err:
                best, best_err = k, err
        distinct_x = np.unique(np.round(xs, 3)).size
        if best is not None and kind == "vein":
            used_nir.add(best)
            tr = nir[best]
            px, py = tr.xy_mm[:, 0], tr.xy_mm[:, 1]
            deg = min(params.max_y_degree, max(0, len(px) - 1))
            y_fit = np.polyfit(px, py, deg) if len(px) > deg else np.array([float(np.median(py))])
            x_lo, x_hi = min(px.min(), xs.min()), max(px.max(), xs.max())
        else:
            deg = min(params.max_y_degree, 1, distinct_x - 1)
            y_fit = np.polyfit(xs, ys, deg, w=w) if deg > 0 else np.array([float(np.average(ys, weights=w))])
            x_lo, x_hi = float(xs.min()), float(xs.max())
        z_coef = np.polyfit(xs, zs, 1, w=w) if distinct_x >= 2 else np.array([float(np.average(zs, weights=w))])
        y_coef = tuple(float(c) for c in y_fit)
        extent = (float(x_lo), float(x_hi))
        # a single station still says the vessel runs on both sides of it: credit the NIR length or 0
        out.append(
            VesselEstimate(
                kind=kind,
                y_coef=y_coef,
                z_coef=tuple(float(c) for c in z_coef),
                diameter_mm=float(np.median([s.width_mm for s in group])),
                height_mm=float(np.median([s.height_mm for s in group])),
                x_range_mm=extent,
                straight_length_mm=straight_length(y_coef, extent, params.straight_tolerance_mm),
                n_views=len(group),
                kind_confidence=float(conf),
                nir_linked=best is not None and kind == "vein",
                sections=tuple(group),
            )
        )
    out.sort(key=lambda v: -v.diameter_mm)
    return tuple(out), tuple(tr for k, tr in enumerate(nir) if k not in used_nir)
