"""Label mask -> vessels, needle and NIR veins: the one post-processing module.

The learned models, the ground-truth path (``frame.labels``) and the classical
baselines all produce a label mask (``LABEL_*`` codes) and call the functions here,
so differences between them are differences of segmentation only.

Image geometry (the simulator's convention, see ``ir_robot/sim/ultrasound.py``):

* ultrasound pixel ``(r, c)`` of an ``H x W`` image lies at lateral
  ``(c - W/2 + 0.5) * sx`` mm from the probe centre and depth ``(r + 0.5) * sy`` mm below
  the skin (row 0 touches the skin), ``spacing_mm = (sy, sx)``;
* NIR pixel ``(r, c)`` sees ``x = (c - W/2 + 0.5) * s``, ``y = (r - H/2 + 0.5) * s`` mm from
  the view centre.

Needle: the needle pixels are fitted with a RANSAC line (in mm, so anisotropic pixels
are handled) refined by ``cv2.fitLine`` on the inliers; the tip is the deeper end of the
longest gap-free run of inliers, whose axis is then re-fitted weighted by the needle
probability (:func:`_axis_fit`). A needle whose visible extent is below
``tip_only_extent_mm`` is a cross-section dot (out-of-plane view): its tip is the dot
centre and it has no angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.config import param
from ir_robot.core.results import NeedleDetection, NirResult, NirVein, UsResult, VesselDetection
from ir_robot.core.types import LABEL_ARTERY, LABEL_NEEDLE, LABEL_VEIN

# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class PostprocessParams:
    """Thresholds of the mask analysis (shared by learned, ground-truth and classical paths)."""

    min_vessel_area_mm2: float = param(
        0.8, range=(0.0, 100.0), unit="mm^2", help="smaller vessel components are ignored"
    )
    band_elongation: float = param(
        3.0, range=(1.0, 50.0), help="major/minor axis ratio above which a vessel is a longitudinal band"
    )
    min_needle_area_mm2: float = param(
        0.12, range=(0.0, 20.0), unit="mm^2", help="frame-level needle detection: needle pixels needed (after RANSAC)"
    )
    min_needle_confidence: float = param(
        0.0, range=(0.0, 1.0), help="learned models: mean needle probability a detection needs"
    )
    min_needle_fragment_px: int = param(3, range=(1, 1000), help="needle components smaller than this are noise")
    needle_inlier_mm: float = param(0.4, range=(0.05, 5.0), unit="mm", help="RANSAC inlier distance to the axis")
    needle_band_mm: float = param(
        1.0,
        range=(0.1, 5.0),
        unit="mm",
        help="needle pixels kept within this distance of the RANSAC axis (shaft radius + slack)",
    )
    needle_max_gap_mm: float = param(
        2.5, range=(0.1, 50.0), unit="mm", help="gaps along the shaft longer than this split it (keep the larger run)"
    )
    tip_only_extent_mm: float = param(
        2.0, range=(0.0, 20.0), unit="mm", help="a needle shorter than this is an out-of-plane dot: no angle"
    )
    tip_only_elongation: float = param(2.5, range=(1.0, 20.0), help="... or shorter than this many shaft widths")
    ransac_iterations: int = param(64, range=(1, 10000))
    min_nir_vein_area_mm2: float = param(3.0, range=(0.0, 1000.0), unit="mm^2")
    nir_centreline_step_mm: float = param(1.0, range=(0.1, 20.0), unit="mm")


DEFAULT_POSTPROCESS = PostprocessParams()


# --------------------------------------------------------------------------- geometry helpers


def us_px_to_mm(rc: ArrayLike, shape: tuple[int, int], spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
    """Ultrasound pixel (row, col) -> (lateral_mm, depth_mm); works on ``(..., 2)`` arrays."""
    p = np.asarray(rc, dtype=float)
    sy, sx = spacing_mm
    return np.stack([(p[..., 1] - shape[1] / 2 + 0.5) * sx, (p[..., 0] + 0.5) * sy], axis=-1)


def us_mm_to_px(lat_depth: ArrayLike, shape: tuple[int, int], spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
    """Inverse of :func:`us_px_to_mm`: (lateral_mm, depth_mm) -> pixel (row, col)."""
    p = np.asarray(lat_depth, dtype=float)
    sy, sx = spacing_mm
    return np.stack([p[..., 1] / sy - 0.5, p[..., 0] / sx + shape[1] / 2 - 0.5], axis=-1)


def nir_px_to_mm(rc: ArrayLike, shape: tuple[int, int], spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
    """NIR pixel (row, col) -> (x_mm, y_mm) from the view centre."""
    p = np.asarray(rc, dtype=float)
    sy, sx = spacing_mm
    return np.stack([(p[..., 1] - shape[1] / 2 + 0.5) * sx, (p[..., 0] - shape[0] / 2 + 0.5) * sy], axis=-1)


# --------------------------------------------------------------------------- ultrasound


def analyse_us(
    mask: np.ndarray,
    spacing_mm: tuple[float, float],
    probs: np.ndarray | None = None,
    params: PostprocessParams = DEFAULT_POSTPROCESS,
    *,
    source: str = "model",
) -> UsResult:
    """Vessels and needle from an ultrasound label mask (``probs`` (4, H, W) adds confidences)."""
    mask = np.asarray(mask, dtype=np.uint8)
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    vessels = find_vessels(mask, spacing, probs, params)
    needle = find_needle(mask == LABEL_NEEDLE, spacing, probs[LABEL_NEEDLE] if probs is not None else None, params)
    return UsResult(mask, spacing, vessels, needle, source)


def find_vessels(
    mask: np.ndarray,
    spacing_mm: tuple[float, float],
    probs: np.ndarray | None = None,
    params: PostprocessParams = DEFAULT_POSTPROCESS,
) -> tuple[VesselDetection, ...]:
    """Connected vessel components (vein or artery pixels), classified by majority vote."""
    sy, sx = spacing_mm
    h, w = mask.shape
    vessel = ((mask == LABEL_VEIN) | (mask == LABEL_ARTERY)).astype(np.uint8)
    n, lab, stats, cents = cv2.connectedComponentsWithStats(vessel, connectivity=8)
    min_px = params.min_vessel_area_mm2 / (sy * sx)
    out: list[VesselDetection] = []
    for k in range(1, n):
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area < min_px:
            continue
        x0, y0, bw, bh = (
            int(stats[k, i]) for i in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT)
        )
        comp = lab[y0 : y0 + bh, x0 : x0 + bw] == k
        sub = mask[y0 : y0 + bh, x0 : x0 + bw]
        if probs is not None:  # soft vote: summed probabilities over the component
            p_art = float(probs[LABEL_ARTERY, y0 : y0 + bh, x0 : x0 + bw][comp].sum())
            p_vein = float(probs[LABEL_VEIN, y0 : y0 + bh, x0 : x0 + bw][comp].sum())
            kind = "artery" if p_art > p_vein else "vein"
            conf = max(p_art, p_vein) / area
        else:  # majority of the labels
            n_art = int(np.count_nonzero(comp & (sub == LABEL_ARTERY)))
            kind = "artery" if n_art * 2 > area else "vein"
            conf = max(n_art, area - n_art) / area
        # second moments in mm decide band (longitudinal) vs cross-section (transverse)
        rr, cc = np.nonzero(comp)
        ym, xm = rr.astype(float) * sy, cc.astype(float) * sx
        cov = np.cov(np.stack([xm, ym])) if area > 2 else np.eye(2) * 1e-3
        ev = np.sort(np.linalg.eigvalsh(cov))
        elong = math.sqrt(max(ev[1], 1e-9) / max(ev[0], 1e-9))
        band = elong >= params.band_elongation and bw * sx > bh * sy
        col_count = comp.sum(axis=0)
        cols = np.nonzero(col_count)[0]
        height_mm = float(np.median(col_count[cols])) * sy
        width_mm = float(bw * sx)
        if band:
            # centre where the band meets the image centre column (clipped to the band)
            mid = (comp * np.arange(bh)[:, None]).sum(axis=0)[cols] / col_count[cols]
            wts = col_count[cols].astype(float)
            c_centre = float(np.clip(w / 2 - 0.5, x0 + cols[0], x0 + cols[-1]))
            if cols.size >= 2:
                slope, icpt = np.polyfit(cols + x0, mid + y0, 1, w=np.sqrt(wts))
                r_centre = float(slope * c_centre + icpt)
            else:
                r_centre = float(mid.mean() + y0)
            diameter = height_mm
        else:
            c_centre, r_centre = float(cents[k][0]), float(cents[k][1])
            diameter = math.sqrt(4.0 * area * sy * sx / math.pi)
        centre_mm = us_px_to_mm((r_centre, c_centre), (h, w), spacing_mm)
        out.append(
            VesselDetection(
                kind,
                (r_centre, c_centre),
                (float(centre_mm[0]), float(centre_mm[1])),
                float(diameter),
                float(centre_mm[1]),
                area,
                float(conf),
                bool(band),
                width_mm,
                height_mm,
            )
        )
    out.sort(key=lambda v: (v.centre_px[1], v.centre_px[0]))
    return tuple(out)


def _ransac_line(pts: np.ndarray, tol: float, iters: int, rng: np.random.Generator) -> np.ndarray | None:
    """Unit normal and offset ``(nx, ny, c)`` of the line ``n . p = c`` with most points of ``pts``
    (N, 2) within ``tol``; all hypotheses are scored at once. None for degenerate input.
    """
    n = len(pts)
    if n <= 2:
        return None
    i = rng.integers(0, n, size=iters)
    j = rng.integers(0, n, size=iters)
    d = pts[j] - pts[i]
    norm = np.hypot(d[:, 0], d[:, 1])
    ok = norm > 1e-6
    if not ok.any():
        return None
    i, d, norm = i[ok], d[ok], norm[ok]
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1) / norm[:, None]  # (K, 2) unit normals
    offs = np.einsum("kd,kd->k", pts[i], nrm)
    # distance of every point to every hypothesis: |n_k . p - c_k|, shape (N, K)
    counts = (np.abs(pts @ nrm.T - offs[None, :]) <= tol).sum(axis=0)
    k = int(np.argmax(counts))
    return np.array([nrm[k, 0], nrm[k, 1], offs[k]])


def find_needle(
    needle_mask: np.ndarray,
    spacing_mm: tuple[float, float],
    prob: np.ndarray | None = None,
    params: PostprocessParams = DEFAULT_POSTPROCESS,
    rng: np.random.Generator | None = None,
) -> NeedleDetection | None:
    """The needle from a boolean needle mask, or None when too few needle pixels remain."""
    sy, sx = spacing_mm
    h, w = needle_mask.shape
    m = needle_mask.astype(np.uint8)
    if not m.any():
        return None
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= params.min_needle_fragment_px
    rr, cc = np.nonzero(keep[lab])
    min_px = params.min_needle_area_mm2 / (sy * sx)
    if rr.size < max(min_px, 1):
        return None
    pts = np.stack([cc * sx, rr * sy], axis=1).astype(float)  # (lateral, depth) in mm, same origin as pixels
    rng = rng if rng is not None else np.random.default_rng(0)
    line = _ransac_line(pts, params.needle_inlier_mm, params.ransac_iterations, rng)
    if line is None:
        inl = np.ones(len(pts), bool)
    else:  # the whole shaft width around the RANSAC axis
        inl = np.abs(pts @ line[:2] - line[2]) <= params.needle_band_mm
    if inl.sum() < max(min_px, 1):
        return None
    p_in = pts[inl]
    vx, vy, x0, y0 = cv2.fitLine(p_in.astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).reshape(-1).astype(float)
    u = np.array([vx, vy]) / math.hypot(vx, vy)
    origin = np.array([x0, y0])
    t = (p_in - origin) @ u
    # keep the largest gap-free run along the shaft (drops stray blobs on the line's extension)
    order = np.argsort(t)
    ts = t[order]
    breaks = np.nonzero(np.diff(ts) > params.needle_max_gap_mm)[0]
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks + 1, ts.size]
    best = int(np.argmax(ends - starts))
    sel = order[starts[best] : ends[best]]
    if sel.size < max(min_px, 1):
        return None
    p_sel = p_in[sel]
    rows_sel = np.rint(p_sel[:, 1] / sy).astype(int)
    cols_sel = np.rint(p_sel[:, 0] / sx).astype(int)
    conf = float(prob[rows_sel, cols_sel].mean()) if prob is not None else float(sel.size / rr.size)
    if prob is not None and conf < params.min_needle_confidence:
        return None
    # refit on the core of the shaft: the ends are cut (skin line, image border, beam slab) at
    # angles that would tilt a fit of the whole blob; weighted by the needle probability
    w_sel = prob[rows_sel, cols_sel] if prob is not None else None
    u, origin, t_sel, radius = _axis_fit(p_sel, sx, sy, w_sel)
    extent = float(t_sel.max() - t_sel.min())
    core = (t_sel > t_sel.min() + 2 * radius) & (t_sel < t_sel.max() - 2 * radius)
    if extent - 4 * radius > params.tip_only_extent_mm and core.sum() >= 10:
        u, _, _, _ = _axis_fit(p_sel[core], sx, sy, None if w_sel is None else w_sel[core])
        t_sel = (p_sel - origin) @ u
        extent = float(t_sel.max() - t_sel.min())
    # the mask is a capsule: it reaches one radius past the tip; pixel centres stop about half a
    # pixel (along the axis) short of the mask's end
    half_px = 0.5 * math.hypot(u[0] * sx, u[1] * sy)
    end_shift = half_px - radius
    a_end = origin + u * (t_sel.min() - end_shift)
    b_end = origin + u * (t_sel.max() + end_shift)
    if extent < max(params.tip_only_extent_mm, params.tip_only_elongation * 2 * radius):
        # out-of-plane dot: the shaft goes down into the slab, so the tip is the deeper end of an
        # elongated dot (longer than 1.5 widths), or the centre of a round one; no usable angle
        if extent > 3 * radius:
            tip = b_end if b_end[1] > a_end[1] else a_end
        else:
            tip = p_sel.mean(axis=0)
        tip_px = (float(tip[1] / sy), float(tip[0] / sx))
        tip_mm = us_px_to_mm(tip_px, (h, w), spacing_mm)
        return NeedleDetection(
            tip_px, (float(tip_mm[0]), float(tip_mm[1])), None, None, conf, None, extent, int(sel.size)
        )
    # the tip is the deeper end; for a near-horizontal needle, the end farther from the image border
    if abs(u[1]) > math.sin(math.radians(3.0)):
        tip, tail = (b_end, a_end) if b_end[1] > a_end[1] else (a_end, b_end)
    else:

        def border(p: NDArray[np.float64]) -> float:
            return min(p[0], w * sx - p[0])

        tip, tail = (b_end, a_end) if border(b_end) >= border(a_end) else (a_end, b_end)
    d = tip - tail
    d /= max(np.hypot(*d), 1e-9)
    angle = math.degrees(math.atan2(d[1], d[0]))
    dir_px = np.array([d[1] / sy, d[0] / sx])
    dir_px /= np.hypot(*dir_px)
    tip_px = (float(tip[1] / sy), float(tip[0] / sx))
    tail_px = (float(tail[1] / sy), float(tail[0] / sx))
    tip_mm = us_px_to_mm(tip_px, (h, w), spacing_mm)
    return NeedleDetection(
        tip_px,
        (float(tip_mm[0]), float(tip_mm[1])),
        float(angle),
        (float(dir_px[0]), float(dir_px[1])),
        conf,
        tail_px,
        float(np.hypot(*(tip - tail))),
        int(sel.size),
    )


def _axis_fit(
    pts: NDArray[np.float64], sx: float, sy: float, weights: NDArray[np.floating] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]:
    """Least-squares axis of points (N, 2) in mm: (unit direction, origin, positions along it, radius).

    ``weights`` (N,), e.g. the network's needle probability at each pixel, weight the fit
    (a weighted principal axis): pixels the network is unsure of, at the blurred edges of the
    shaft, pull the axis less. The radius comes from the spread across the axis (a uniformly
    filled band of width 2r has std 2r / sqrt(12)), floored at half a pixel.
    """
    if weights is None or len(pts) < 3 or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        vx, vy, x0, y0 = cv2.fitLine(pts.astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).reshape(-1).astype(float)
        u = np.array([vx, vy]) / math.hypot(vx, vy)
        origin = np.array([x0, y0])
    else:
        w = np.asarray(weights, float) / float(np.sum(weights))
        origin = w @ pts
        rel = pts - origin
        evals, evecs = np.linalg.eigh((rel * w[:, None]).T @ rel)
        u = evecs[:, int(np.argmax(evals))]
        if u[0] < 0 or (u[0] == 0 and u[1] < 0):  # cv2.fitLine's convention: towards +lateral
            u = -u
    rel = pts - origin
    t = rel @ u
    s = rel @ np.array([-u[1], u[0]])
    radius = max(math.sqrt(3.0) * float(s.std()), 0.5 * min(sx, sy))
    return u, origin, t, radius


# --------------------------------------------------------------------------- NIR


def analyse_nir(
    mask: np.ndarray,
    spacing_mm: tuple[float, float],
    probs: np.ndarray | None = None,
    image: np.ndarray | None = None,
    params: PostprocessParams = DEFAULT_POSTPROCESS,
    *,
    source: str = "model",
) -> NirResult:
    """Veins (centreline, width, angle, length, contrast) from a NIR vein mask."""
    mask = np.asarray(mask, dtype=np.uint8)
    sy, sx = float(spacing_mm[0]), float(spacing_mm[1])
    h, w = mask.shape
    vein = (mask == LABEL_VEIN).astype(np.uint8)
    n, lab, stats, cents = cv2.connectedComponentsWithStats(vein, connectivity=8)
    min_px = params.min_nir_vein_area_mm2 / (sy * sx)
    if image is not None:
        ring = cv2.dilate(vein, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))).astype(bool) & ~vein.astype(bool)
    out: list[NirVein] = []
    for k in range(1, n):
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area < min_px:
            continue
        rr, cc = np.nonzero(lab == k)
        pts = np.stack([cc * sx, rr * sy], axis=1).astype(float)
        mean = pts.mean(axis=0)
        cov = np.cov((pts - mean).T) if area > 2 else np.eye(2)
        evals, evecs = np.linalg.eigh(cov)
        u = evecs[:, int(np.argmax(evals))]
        if u[0] < 0 or (u[0] == 0 and u[1] < 0):
            u = -u
        nrm = np.array([-u[1], u[0]])
        t = (pts - mean) @ u
        s = (pts - mean) @ nrm
        length = float(t.max() - t.min()) + min(sx, sy)
        step = params.nir_centreline_step_mm
        bins = np.floor((t - t.min()) / step).astype(int)
        nb = int(bins.max()) + 1
        cnt = np.bincount(bins, minlength=nb)
        ssum = np.bincount(bins, weights=s, minlength=nb)
        tsum = np.bincount(bins, weights=t, minlength=nb)
        okb = cnt > 0
        tb, sb = tsum[okb] / cnt[okb], ssum[okb] / cnt[okb]
        cl = mean + tb[:, None] * u + sb[:, None] * nrm  # (N, 2) in (x, y) mm from pixel origin
        centreline_px = np.stack([cl[:, 1] / sy, cl[:, 0] / sx], axis=1)
        angle = math.degrees(math.atan2(u[1], u[0]))
        if angle <= -90:
            angle += 180
        elif angle > 90:
            angle -= 180
        width = area * sx * sy / max(length, 1e-6)
        contrast = 0.0
        if image is not None:
            comp = lab == k
            near = ring & (cv2.dilate(comp.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0)
            if near.any():
                background = float(np.median(image[near]))
                contrast = (background - float(np.median(image[comp]))) / max(background, 1.0)
        conf = float(probs[LABEL_VEIN][lab == k].mean()) if probs is not None else 1.0
        centre_px = (float(cents[k][1]), float(cents[k][0]))
        cmm = nir_px_to_mm(centre_px, (h, w), (sy, sx))
        out.append(
            NirVein(
                centreline_px,
                centre_px,
                (float(cmm[0]), float(cmm[1])),
                float(width),
                float(angle),
                length,
                float(contrast),
                area,
                conf,
            )
        )
    out.sort(key=lambda v: -v.width_mm)
    return NirResult(mask, (sy, sx), tuple(out), source)


__all__ = [
    "VesselDetection",
    "NeedleDetection",
    "UsResult",
    "NirVein",
    "NirResult",
    "PostprocessParams",
    "DEFAULT_POSTPROCESS",
    "analyse_us",
    "analyse_nir",
    "find_vessels",
    "find_needle",
    "us_px_to_mm",
    "us_mm_to_px",
    "nir_px_to_mm",
]
