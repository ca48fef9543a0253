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
from dataclasses import dataclass

import cv2
import numpy as np

from ir_robot.config import param
from ir_robot.core.types import LABEL_ARTERY, LABEL_NEEDLE, LABEL_VEIN, ImageFrame
from ir_robot.perception.postprocess import (DEFAULT_POSTPROCESS, NirResult, PostprocessParams, UsResult,
                                             analyse_nir, analyse_us)
from ir_robot.perception.transforms import check_spacing, validate_image


@dataclass(frozen=True)
class ClassicalUsParams:
    blur_mm: float = param(0.25, range=(0.0, 5.0), unit="mm", help="Gaussian sigma against speckle")
    dark_fraction: float = param(0.45, range=(0.05, 1.0),
                                 help="lumen threshold as a fraction of the median tissue brightness")
    skin_skip_mm: float = param(1.0, range=(0.0, 10.0), unit="mm", help="ignore this much below the probe")
    open_mm: float = param(0.35, range=(0.0, 5.0), unit="mm", help="opening radius (removes speckle holes)")
    min_vessel_area_mm2: float = param(0.8, range=(0.0, 100.0), unit="mm^2")
    max_vessel_area_mm2: float = param(400.0, range=(1.0, 5000.0), unit="mm^2")
    artery_wall_ratio: float = param(1.9, range=(0.5, 10.0),
                                     help="wall-ring / tissue brightness above which a round vessel is an artery")
    artery_min_roundness: float = param(0.85, range=(0.0, 1.0),
                                        help="minor/major axis ratio needed to call a cross-section an artery")
    needle_tophat_mm: float = param(1.6, range=(0.1, 10.0), unit="mm", help="top-hat kernel size")
    needle_threshold: float = param(0.55, range=(0.0, 1.0), help="top-hat threshold (fraction of full scale)")
    needle_min_length_mm: float = param(3.0, range=(0.5, 50.0), unit="mm")
    needle_max_gap_mm: float = param(1.5, range=(0.0, 20.0), unit="mm")
    needle_min_angle_deg: float = param(8.0, range=(0.0, 45.0), unit="deg",
                                        help="flatter lines are tissue interfaces, not the needle")
    needle_width_mm: float = param(0.8, range=(0.1, 3.0), unit="mm", help="width drawn into the mask")


@dataclass(frozen=True)
class ClassicalNirParams:
    background_mm: float = param(6.0, range=(0.5, 50.0), unit="mm", help="flat-field Gaussian sigma")
    blur_mm: float = param(0.4, range=(0.0, 5.0), unit="mm")
    dark_ratio: float = param(0.93, range=(0.3, 1.0), help="pixel / background below this is vein")
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

    def segment(self, image: np.ndarray, spacing_mm: tuple[float, float]) -> np.ndarray:
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
        dark = (smooth < p.dark_fraction * max(ref, 1.0)).astype(np.uint8)
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
            ring = (cv2.dilate(comp, ring_k) > 0) & (comp == 0)
            wall = float(np.mean(smooth[ring])) if ring.any() else 0.0
            rr, cc = np.nonzero(comp)
            cov = np.cov(np.stack([cc * sx, rr * sy])) if rr.size > 2 else np.eye(2)
            ev = np.sort(np.linalg.eigvalsh(cov))
            roundness = math.sqrt(max(ev[0], 1e-9) / max(ev[1], 1e-9))
            artery = wall > p.artery_wall_ratio * ref and roundness >= p.artery_min_roundness
            mask[comp.astype(bool)] = LABEL_ARTERY if artery else LABEL_VEIN
        line = self._needle_line(img, sy, sx)
        if line is not None:
            x1, y1, x2, y2 = line
            width = max(int(round(p.needle_width_mm / px)), 1)
            cv2.line(mask, (x1, y1), (x2, y2), int(LABEL_NEEDLE), width)
        return mask

    def _needle_line(self, img: np.ndarray, sy: float, sx: float):
        p = self.params
        px = math.sqrt(sy * sx)
        top = cv2.morphologyEx(img, cv2.MORPH_TOPHAT, _kernel(p.needle_tophat_mm / px))
        bright = (top >= p.needle_threshold * 255).astype(np.uint8) * 255
        lines = cv2.HoughLinesP(bright, 1, np.pi / 180, threshold=max(int(p.needle_min_length_mm / px / 2), 5),
                                minLineLength=p.needle_min_length_mm / px, maxLineGap=p.needle_max_gap_mm / px)
        if lines is None:
            return None
        segs = lines.reshape(-1, 4).astype(float)
        dx = (segs[:, 2] - segs[:, 0]) * sx
        dy = (segs[:, 3] - segs[:, 1]) * sy
        length = np.hypot(dx, dy)
        angle = np.degrees(np.arctan2(np.abs(dy), np.abs(dx)))
        ok = angle >= p.needle_min_angle_deg
        if not ok.any():
            return None
        best = int(np.argmax(np.where(ok, length, -1)))
        return tuple(int(v) for v in segs[best])


class ClassicalNirSegmenter:
    """NIR vein mask from flat-field correction, a darkness threshold and morphology."""

    def __init__(self, params: ClassicalNirParams = ClassicalNirParams()):
        self.params = params

    def segment(self, image: np.ndarray, spacing_mm: tuple[float, float]) -> np.ndarray:
        p = self.params
        img = validate_image(image)
        sy, sx = check_spacing(spacing_mm)
        px = math.sqrt(sy * sx)
        f = img.astype(np.float32)
        smooth = cv2.GaussianBlur(f, (0, 0), max(p.blur_mm / px, 0.1))
        background = cv2.GaussianBlur(f, (0, 0), p.background_mm / px)
        ratio = smooth / np.maximum(background, 1.0)
        vein = (ratio < p.dark_ratio).astype(np.uint8)
        vein = cv2.morphologyEx(vein, cv2.MORPH_OPEN, _kernel(p.open_mm / px))
        n, lab, stats, _ = cv2.connectedComponentsWithStats(vein, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] * sy * sx >= p.min_vein_area_mm2
        return (keep[lab]).astype(np.uint8) * LABEL_VEIN


def _image_and_spacing(frame, spacing_mm):
    if isinstance(frame, ImageFrame):
        return frame.image, frame.spacing_mm if spacing_mm is None else spacing_mm
    if spacing_mm is None:
        raise ValueError("classical perception needs spacing_mm for a bare image array")
    return frame, spacing_mm


class ClassicalUsPerception:
    """Baseline with the predictor API: ``predict(frame | image, spacing_mm) -> UsResult``."""

    modality = "us"

    def __init__(self, params: ClassicalUsParams = ClassicalUsParams(),
                 postprocess: PostprocessParams = DEFAULT_POSTPROCESS):
        self.segmenter = ClassicalUsSegmenter(params)
        self.postprocess = postprocess

    def predict(self, frame: ImageFrame | np.ndarray, spacing_mm=None) -> UsResult:
        image, spacing = _image_and_spacing(frame, spacing_mm)
        spacing = check_spacing(spacing)
        mask = self.segmenter.segment(image, spacing)
        return analyse_us(mask, spacing, None, self.postprocess, source="classical")


class ClassicalNirPerception:
    """Baseline with the predictor API: ``predict(frame | image, spacing_mm) -> NirResult``."""

    modality = "nir"

    def __init__(self, params: ClassicalNirParams = ClassicalNirParams(),
                 postprocess: PostprocessParams = DEFAULT_POSTPROCESS):
        self.segmenter = ClassicalNirSegmenter(params)
        self.postprocess = postprocess

    def predict(self, frame: ImageFrame | np.ndarray, spacing_mm=None) -> NirResult:
        image, spacing = _image_and_spacing(frame, spacing_mm)
        spacing = check_spacing(spacing)
        mask = self.segmenter.segment(image, spacing)
        return analyse_nir(mask, spacing, None, validate_image(image), self.postprocess, source="classical")
