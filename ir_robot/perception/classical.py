"""Classical OpenCV baselines, reported next to the learned models.

Ultrasound
    vessels: speckle-reducing blur, a dark threshold relative to the tissue brightness
    (lumens are anechoic), morphological opening/closing, hole filling, size filter;
    artery vs vein from the wall echo (arteries have thicker, brighter walls) and the
    cross-section roundness (veins are compressed by the probe).
    needle: white top-hat, bright threshold, probabilistic Hough lines; the strongest
    non-horizontal segment is drawn into the mask with the needle's apparent width.
    Known blind spots: tip-only (out-of-plane) dots and very faint steep needles.
NIR
    veins: flat-field correction by a large Gaussian background, a darkness threshold,
    morphological opening (removes hairs thinner than the kernel) and a size filter.

All thresholds are in :class:`ClassicalUsParams` / :class:`ClassicalNirParams`, with
physical units where it matters, so images of other sizes behave the same. The masks go
through the same :mod:`~ir_robot.perception.postprocess` as the learned models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from ir_robot.config import param
from ir_robot.core.results import NirResult, UsResult
from ir_robot.core.types import LABEL_ARTERY, LABEL_NEEDLE, LABEL_VEIN, ImageFrame
from ir_robot.perception.postprocess import DEFAULT_POSTPROCESS, PostprocessParams, analyse_nir, analyse_us
from ir_robot.perception.transforms import check_spacing, validate_image


@dataclass(frozen=True)
class ClassicalUsParams:
    """Thresholds and kernel sizes of :class:`ClassicalUsSegmenter` (lumens, artery walls, the needle line)."""

    blur_mm: float = param(0.25, range=(0.0, 5.0), unit="mm", help="Gaussian sigma against speckle")
    dark_fraction: float = param(
        0.7, range=(0.05, 1.0), help="lumen threshold as a fraction of the median tissue brightness"
    )
    skin_skip_mm: float = param(1.0, range=(0.0, 10.0), unit="mm", help="ignore this much below the probe")
    open_mm: float = param(0.35, range=(0.0, 5.0), unit="mm", help="opening radius (removes speckle holes)")
    min_vessel_area_mm2: float = param(0.8, range=(0.0, 100.0), unit="mm^2")
    max_vessel_area_mm2: float = param(400.0, range=(1.0, 5000.0), unit="mm^2")
    min_solidity: float = param(0.8, range=(0.0, 1.0), help="area / convex hull area (lumens are convex)")
    min_minor_axis_mm: float = param(1.0, range=(0.0, 20.0), unit="mm", help="thinner dark streaks are not lumens")
    max_mean_fraction: float = param(
        0.6, range=(0.0, 1.0), help="mean lumen brightness / tissue median must stay below this"
    )
    artery_wall_ratio: float = param(
        1.9, range=(0.5, 10.0), help="wall-ring / tissue brightness above which a round vessel is an artery"
    )
    artery_min_roundness: float = param(
        0.85, range=(0.0, 1.0), help="minor/major axis ratio needed to call a cross-section an artery"
    )
    needle_tophat_mm: float = param(1.6, range=(0.1, 10.0), unit="mm", help="top-hat kernel size")
    needle_threshold: float = param(0.15, range=(0.0, 1.0), help="top-hat threshold (fraction of full scale)")
    needle_percentile: float = param(
        98.0, range=(50.0, 100.0), help="... and at least this percentile of the top-hat image"
    )
    needle_accept: float = param(
        0.25, range=(0.0, 1.0), help="mean top-hat along the best line needed to report a needle"
    )
    needle_min_length_mm: float = param(3.0, range=(0.5, 50.0), unit="mm")
    needle_max_gap_mm: float = param(1.5, range=(0.0, 20.0), unit="mm")
    needle_min_angle_deg: float = param(
        10.0, range=(0.0, 45.0), unit="deg", help="flatter lines are tissue interfaces, not the needle"
    )
    needle_max_angle_deg: float = param(
        70.0, range=(10.0, 90.0), unit="deg", help="steeper lines are shadow edges, not the needle"
    )
    needle_width_mm: float = param(0.8, range=(0.1, 3.0), unit="mm", help="width drawn into the mask")


@dataclass(frozen=True)
class ClassicalNirParams:
    """Flat-field, darkness threshold and morphology sizes of :class:`ClassicalNirSegmenter`."""

    background_mm: float = param(4.0, range=(0.5, 50.0), unit="mm", help="flat-field Gaussian sigma")
    blur_mm: float = param(0.4, range=(0.0, 5.0), unit="mm")
    dark_ratio: float = param(0.95, range=(0.3, 1.0), help="pixel / background below this is vein")
    open_mm: float = param(0.6, range=(0.0, 5.0), unit="mm", help="opening radius (removes hair)")
    min_vein_area_mm2: float = param(6.0, range=(0.0, 1000.0), unit="mm^2")


def _kernel(radius_px: float) -> np.ndarray:
    r = max(int(round(radius_px)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _fill_holes(binary: np.ndarray) -> np.ndarray:
    """Fill holes of a uint8 0/1 mask (flood fill from the border)."""
    h, w = binary.shape
    flood = np.pad(binary, 1).copy() * 255
    ff_mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 128)
    holes = flood[1:-1, 1:-1] == 0
    return (binary.astype(bool) | holes).astype(np.uint8)


class ClassicalUsSegmenter:
    """Ultrasound label mask from thresholds, morphology and Hough lines (no learning)."""

    def __init__(self, params: ClassicalUsParams = ClassicalUsParams()):
        self.params = params

    def segment(self, image: NDArray[Any], spacing_mm: tuple[float, float]) -> NDArray[np.uint8]:
        """Label mask (H, W) uint8: dark convex lumens as vein or artery (bright round wall), the needle line."""
        p = self.params
        img = validate_image(image)
        sy, sx = check_spacing(spacing_mm)
        px = math.sqrt(sy * sx)
        h, w = img.shape
        mask = np.zeros((h, w), np.uint8)
        sigma = max(p.blur_mm / px, 0.1)
        smooth = cv2.GaussianBlur(img, (0, 0), sigma)
        skip = int(round(p.skin_skip_mm / sy))
        tissue = smooth[skip:]
        ref = float(np.median(tissue)) if tissue.size else 1.0
        dark: NDArray[Any] = (smooth < p.dark_fraction * max(ref, 1.0)).astype(np.uint8)
        dark[:skip] = 0
        dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, _kernel(p.open_mm / px))
        dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, _kernel(p.open_mm / px))
        dark = _fill_holes(dark)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
        ring_k = _kernel(0.6 / px)
        for k in range(1, n):
            area_mm2 = stats[k, cv2.CC_STAT_AREA] * sy * sx
            if not p.min_vessel_area_mm2 <= area_mm2 <= p.max_vessel_area_mm2:
                continue
            comp = (lab == k).astype(np.uint8)
            rr, cc = np.nonzero(comp)
            cov = np.cov(np.stack([cc * sx, rr * sy])) if rr.size > 2 else np.eye(2)
            ev = np.sort(np.linalg.eigvalsh(cov))
            if 4.0 * math.sqrt(max(ev[0], 0.0)) < p.min_minor_axis_mm:  # full minor axis of an ellipse
                continue
            if float(smooth[rr, cc].mean()) > p.max_mean_fraction * max(ref, 1.0):
                continue
            contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            hull = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
            if hull > 0 and rr.size / hull < p.min_solidity:
                continue
            ring = (cv2.dilate(comp, ring_k) > 0) & (comp == 0)
            wall = float(np.mean(smooth[ring])) if ring.any() else 0.0
            roundness = math.sqrt(max(ev[0], 1e-9) / max(ev[1], 1e-9))
            artery = wall > p.artery_wall_ratio * ref and roundness >= p.artery_min_roundness
            mask[comp.astype(bool)] = LABEL_ARTERY if artery else LABEL_VEIN
        line = self._needle_line(img, sy, sx)
        if line is not None:
            x1, y1, x2, y2 = line
            width = max(int(round(p.needle_width_mm / px)), 1)
            cv2.line(mask, (x1, y1), (x2, y2), int(LABEL_NEEDLE), width)
        return mask

    def _needle_line(self, img: NDArray[np.uint8], sy: float, sx: float) -> tuple[int, int, int, int] | None:
        p = self.params
        px = math.sqrt(sy * sx)
        top = cv2.morphologyEx(img, cv2.MORPH_TOPHAT, _kernel(p.needle_tophat_mm / px))
        top = cv2.GaussianBlur(top, (0, 0), max(0.15 / px, 0.5))
        top[: int(round(2.0 * p.skin_skip_mm / sy))] = 0  # the skin entry echo is a bright line too
        edge = 3
        top[:, :edge] = 0  # the top-hat rings at the image sides
        top[:, -edge:] = 0
        level = max(p.needle_threshold * 255.0, float(np.percentile(top, p.needle_percentile)))
        bright = (top >= level).astype(np.uint8) * 255
        lines = cv2.HoughLinesP(
            bright,
            1,
            np.pi / 180,
            threshold=max(int(p.needle_min_length_mm / px / 2), 5),
            minLineLength=p.needle_min_length_mm / px,
            maxLineGap=p.needle_max_gap_mm / px,
        )
        if lines is None:
            return None
        segs = lines.reshape(-1, 4).astype(float)
        dx = (segs[:, 2] - segs[:, 0]) * sx
        dy = (segs[:, 3] - segs[:, 1]) * sy
        length = np.hypot(dx, dy)
        angle = np.degrees(np.arctan2(np.abs(dy), np.abs(dx)))
        # mean top-hat along each segment: the needle is the brightest long line
        k = np.linspace(0.0, 1.0, 32)
        rows = np.rint(segs[:, 1:2] + k * (segs[:, 3:4] - segs[:, 1:2])).astype(int)
        cols = np.rint(segs[:, 0:1] + k * (segs[:, 2:3] - segs[:, 0:1])).astype(int)
        brightness = top[rows.clip(0, img.shape[0] - 1), cols.clip(0, img.shape[1] - 1)].mean(axis=1)
        ok = (
            (angle >= p.needle_min_angle_deg)
            & (angle <= p.needle_max_angle_deg)
            & (brightness >= p.needle_accept * 255.0)
        )
        if not ok.any():
            return None
        score = np.where(ok, brightness * np.sqrt(length), -1.0)
        best = int(np.argmax(score))
        # reverberations repeat the needle below itself: among bright lines parallel to the best one
        # and within a few mm under/over it, the shallowest is the needle
        direction = np.degrees(np.arctan2(dy, dx)) % 180.0
        diff = np.abs((direction - direction[best] + 90.0) % 180.0 - 90.0)
        mid_r = (segs[:, 1] + segs[:, 3]) / 2 * sy
        mid_c = (segs[:, 0] + segs[:, 2]) / 2 * sx
        nrm = np.array([-np.sin(np.radians(direction[best])), np.cos(np.radians(direction[best]))])
        offset = (mid_c - mid_c[best]) * nrm[0] + (mid_r - mid_r[best]) * nrm[1]
        family = ok & (diff < 4.0) & (np.abs(offset) < 4.0) & (brightness >= 0.5 * brightness[best])
        shallow = np.where(family, mid_r, np.inf)
        pick = int(np.argmin(shallow))
        ext = self._extend(top, segs[pick], 0.5 * brightness[pick], p.needle_max_gap_mm / px)
        bright_line = top >= 0.5 * brightness[pick]
        for _ in range(3):  # the fit and the band it uses converge in a few steps
            ext = self._refine(bright_line, ext)
        return ext

    @staticmethod
    def _refine(
        bright: NDArray[np.bool_], seg: tuple[int, int, int, int], band_px: float = 4.0
    ) -> tuple[int, int, int, int]:
        """Least-squares fit of the bright pixels within ``band_px`` of a segment; its extent along it."""
        x1, y1, x2, y2 = (float(v) for v in seg)
        d = np.array([x2 - x1, y2 - y1])
        length = float(np.hypot(*d))
        if length < 2:
            return seg
        d /= length
        ys, xs = np.nonzero(bright)
        q = np.stack([xs - x1, ys - y1], axis=1).astype(float)
        t = q @ d
        off = q @ np.array([-d[1], d[0]])
        near = (np.abs(off) <= band_px) & (t >= -band_px) & (t <= length + band_px)
        if near.sum() < 10:
            return seg
        pts = np.stack([xs[near], ys[near]], axis=1).astype(np.float32)
        vx, vy, x0, y0 = cv2.fitLine(pts, cv2.DIST_HUBER, 0, 0.01, 0.01).reshape(-1)
        u = np.array([vx, vy], float)
        tt = (pts - np.array([x0, y0])) @ u
        a = np.array([x0, y0]) + u * tt.min()
        b = np.array([x0, y0]) + u * tt.max()
        return int(round(a[0])), int(round(a[1])), int(round(b[0])), int(round(b[1]))

    @staticmethod
    def _extend(
        top: NDArray[Any], seg: NDArray[np.float64], level: float, max_gap_px: float
    ) -> tuple[int, int, int, int]:
        """Grow a Hough segment along its direction while the top-hat stays above ``level``
        (gaps up to ``max_gap_px``): Hough segments often stop short of the tip.
        """
        h, w = top.shape
        a, b = seg[:2].astype(float), seg[2:].astype(float)
        d = b - a
        d /= max(np.hypot(*d), 1e-9)
        ends = []
        for start, sign in ((b, 1.0), (a, -1.0)):
            steps = np.arange(1, max(h, w), 0.5)
            pts = start + sign * steps[:, None] * d
            inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
            steps, pts = steps[inside], pts[inside]
            # best response within +-2 px across the line (the Hough segment may sit off-centre)
            nrm = np.array([-d[1], d[0]])
            across = pts[:, None, :] + np.arange(-2, 3)[None, :, None] * nrm
            rr = np.clip(np.rint(across[..., 1]).astype(int), 0, h - 1)
            cc = np.clip(np.rint(across[..., 0]).astype(int), 0, w - 1)
            vals = top[rr, cc].max(axis=1) if len(pts) else []
            last = 0.0
            for s_, v in zip(steps, vals, strict=True):
                if v >= level:
                    last = s_
                elif s_ - last > max_gap_px:
                    break
            ends.append(start + sign * last * d)
        (x2, y2), (x1, y1) = ends
        return int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))


class ClassicalNirSegmenter:
    """NIR vein mask from flat-field correction, a darkness threshold and morphology."""

    def __init__(self, params: ClassicalNirParams = ClassicalNirParams()):
        self.params = params

    def segment(self, image: NDArray[Any], spacing_mm: tuple[float, float]) -> NDArray[np.uint8]:
        """Vein mask (H, W) uint8 (LABEL_VEIN or 0): pixels darker than their blurred surroundings."""
        p = self.params
        img = validate_image(image)
        sy, sx = check_spacing(spacing_mm)
        px = math.sqrt(sy * sx)
        f = img.astype(np.float32)
        smooth = cv2.GaussianBlur(f, (0, 0), max(p.blur_mm / px, 0.1))
        background = cv2.GaussianBlur(f, (0, 0), p.background_mm / px)
        ratio = smooth / np.maximum(background, 1.0)
        vein: NDArray[Any] = (ratio < p.dark_ratio).astype(np.uint8)
        vein = cv2.morphologyEx(vein, cv2.MORPH_OPEN, _kernel(p.open_mm / px))
        n, lab, stats, _ = cv2.connectedComponentsWithStats(vein, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] * sy * sx >= p.min_vein_area_mm2
        return (keep[lab]).astype(np.uint8) * LABEL_VEIN


def _image_and_spacing(
    frame: ImageFrame | NDArray[Any], spacing_mm: Sequence[float] | None
) -> tuple[NDArray[Any], Sequence[float]]:
    if isinstance(frame, ImageFrame):
        return frame.image, frame.spacing_mm if spacing_mm is None else spacing_mm
    if spacing_mm is None:
        raise ValueError("classical perception needs spacing_mm for a bare image array")
    return frame, spacing_mm


class ClassicalUsPerception:
    """Baseline with the predictor API: ``predict(frame | image, spacing_mm) -> UsResult``."""

    modality = "us"

    def __init__(
        self, params: ClassicalUsParams = ClassicalUsParams(), postprocess: PostprocessParams = DEFAULT_POSTPROCESS
    ):
        self.segmenter = ClassicalUsSegmenter(params)
        self.postprocess = postprocess

    def predict(
        self,
        frame: ImageFrame | NDArray[Any],
        spacing_mm: Sequence[float] | None = None,
        *,
        roi: Sequence[float] | None = None,
    ) -> UsResult:
        """``roi`` is accepted for the predictor protocol and ignored (the baseline has no input size)."""
        image, spacing = _image_and_spacing(frame, spacing_mm)
        spacing = check_spacing(spacing)
        mask = self.segmenter.segment(image, spacing)
        return analyse_us(mask, spacing, None, self.postprocess, source="classical")


class ClassicalNirPerception:
    """Baseline with the predictor API: ``predict(frame | image, spacing_mm) -> NirResult``."""

    modality = "nir"

    def __init__(
        self, params: ClassicalNirParams = ClassicalNirParams(), postprocess: PostprocessParams = DEFAULT_POSTPROCESS
    ):
        self.segmenter = ClassicalNirSegmenter(params)
        self.postprocess = postprocess

    def predict(self, frame: ImageFrame | NDArray[Any], spacing_mm: Sequence[float] | None = None) -> NirResult:
        """Segment one NIR frame with the baseline and find its veins (``spacing_mm`` needed for a bare array)."""
        image, spacing = _image_and_spacing(frame, spacing_mm)
        spacing = check_spacing(spacing)
        mask = self.segmenter.segment(image, spacing)
        return analyse_nir(mask, spacing, None, validate_image(image), self.postprocess, source="classical")
