"""Metrics: Dice, frame-level needle detection, tip / angle / depth errors, artery-vein accuracy.

Definitions (used by ``ir-robot bench perception``, training validation and tests):

* **Dice** is accumulated over the whole set (``2 sum|A&B| / (sum|A| + sum|B|)``, "micro"
  Dice); the per-frame mean is reported next to it (``*_frame_mean``, frames where both
  masks are empty count as 1). US vessel Dice uses vein OR artery as foreground.
* **Needle detection** is per frame: a frame has a needle when its ground-truth mask has at
  least ``min_needle_area_mm2`` of needle pixels; frames with a few needle pixels but less
  than that (a shaft grazing the beam slab) are reported as ``needle_grazing_frames`` and left
  out of precision/recall. A prediction is positive when the post-processing finds a needle.
* **Tip error** (mm): frames with a true tip in the image and a detected needle.
* **Angle error** (deg): frames where the needle shaft is visible (not a tip-only dot) in
  the ground truth and in the prediction; difference of in-image directions, wrapped to
  [0, 180].
* **Vessels**: ground-truth vessels (``frame.vessel_centres_px``) are matched one-to-one to
  detections by centre distance (Hungarian, gate ``match_gate_mm``); artery/vein accuracy
  and centre-depth error are over matched pairs, ``vessel_detection_recall`` is the share
  of ground-truth vessels matched. Depth is below the probe face (image row 0), i.e. the
  true centre row converted to mm; it equals ``frame.vessel_depths_mm`` (depth below the
  phantom's skin) unless the phantom moved vertically under the probe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

from ir_robot.core.types import LABEL_ARTERY, LABEL_IGNORE, LABEL_NEEDLE, LABEL_VEIN, ImageFrame


def dice(pred: ArrayLike, gt: ArrayLike) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    p = np.asarray(pred, bool)
    g = np.asarray(gt, bool)
    denom = int(p.sum()) + int(g.sum())
    if denom == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(p & g)) / denom


def tip_error_mm(pred_px: Sequence[float], gt_px: Sequence[float], spacing_mm: Sequence[float]) -> float:
    """Euclidean distance in mm between two (row, col) points."""
    dr = (float(pred_px[0]) - float(gt_px[0])) * float(spacing_mm[0])
    dc = (float(pred_px[1]) - float(gt_px[1])) * float(spacing_mm[1])
    return math.hypot(dr, dc)


def angle_error_deg(a_deg: float, b_deg: float, *, directed: bool = True) -> float:
    """Smallest difference between two angles: in [0, 180] (directed) or [0, 90] (lines)."""
    period = 360.0 if directed else 180.0
    d = abs((float(a_deg) - float(b_deg)) % period)
    return min(d, period - d)


def precision_recall(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 (1.0 for an empty denominator)."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


def match_points(pred_mm: ArrayLike, gt_mm: ArrayLike, gate_mm: float) -> list[tuple[int, int]]:
    """One-to-one matching (Hungarian) of two point sets (N, 2), (M, 2) within ``gate_mm``."""
    pred_mm = np.asarray(pred_mm, float).reshape(-1, 2)
    gt_mm = np.asarray(gt_mm, float).reshape(-1, 2)
    if not len(pred_mm) or not len(gt_mm):
        return []
    cost = np.linalg.norm(pred_mm[:, None, :] - gt_mm[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(np.where(cost <= gate_mm, cost, 1e6))
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if cost[i, j] <= gate_mm]


def summary_stats(values: Sequence[float], prefix: str) -> dict[str, float]:
    """mean, median and p95 of a list as ``{prefix}_mean`` ... (NaN when empty)."""
    v = np.asarray(values, float)
    if v.size == 0:
        return {f"{prefix}_mean": float("nan"), f"{prefix}_median": float("nan"), f"{prefix}_p95": float("nan")}
    return {
        f"{prefix}_mean": float(v.mean()),
        f"{prefix}_median": float(np.median(v)),
        f"{prefix}_p95": float(np.percentile(v, 95)),
    }


@dataclass
class _Dice:
    inter: int = 0
    total: int = 0
    per_frame: list[float] = field(default_factory=list)

    def add(self, pred: NDArray[np.bool_], gt: NDArray[np.bool_]) -> None:
        i = int(np.count_nonzero(pred & gt))
        t = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
        self.inter += i
        self.total += t
        self.per_frame.append(2.0 * i / t if t else 1.0)

    @property
    def micro(self) -> float:
        return 2.0 * self.inter / self.total if self.total else 1.0

    @property
    def frame_mean(self) -> float:
        return float(np.mean(self.per_frame)) if self.per_frame else float("nan")


class UsEvaluator:
    """Accumulate ultrasound metrics over frames: ``add(frame, result)`` then ``summary()``.

    ``result`` is a :class:`~ir_robot.core.results.UsResult` of the same frame
    (same image size). Ground truth comes from ``frame.labels``, ``frame.tip_px``,
    ``frame.vessel_*`` and ``frame.meta['needle_angle_deg']`` (falling back to a line fit of
    the true needle mask when the meta has no angle). Pixels labelled ``LABEL_IGNORE`` count
    neither way; a frame whose only needle is labelled don't care (barely visible) counts as
    ambiguous, outside precision and recall.
    """

    def __init__(self, min_needle_area_mm2: float = 0.12, match_gate_mm: float = 2.5):
        self.min_needle_area_mm2 = min_needle_area_mm2
        self.match_gate_mm = match_gate_mm
        self.vessel = _Dice()
        self.vein = _Dice()
        self.artery = _Dice()
        self.needle = _Dice()
        self.tp = self.fp = self.fn = self.tn = self.grazing = self.ambiguous = 0
        self.tip_err: list[float] = []
        self.angle_err: list[float] = []
        self.depth_err: list[float] = []
        self.diam_err: list[float] = []
        self.av_correct = 0
        self.av_total = 0
        self.gt_vessels = 0
        self.failures: list[dict[str, Any]] = []

    def add(self, frame: ImageFrame, result: Any, index: int | None = None) -> None:
        """Score one prediction (a ``UsResult`` with its mask) against its frame's labels (``index`` names the
        frame in ``failures``).
        """
        from ir_robot.perception.postprocess import find_needle  # local: avoid a cycle at import

        gt = frame.labels
        if gt is None:
            raise ValueError("UsEvaluator needs frames with ground-truth labels")
        care = gt != LABEL_IGNORE  # don't-care pixels count neither way
        pred = np.where(care, result.mask, 0)
        sy, sx = frame.spacing_mm
        gv = (gt == LABEL_VEIN) | (gt == LABEL_ARTERY)
        pv = (pred == LABEL_VEIN) | (pred == LABEL_ARTERY)
        self.vessel.add(pv, gv)
        self.vein.add(pred == LABEL_VEIN, gt == LABEL_VEIN)
        self.artery.add(pred == LABEL_ARTERY, gt == LABEL_ARTERY)
        gn = gt == LABEL_NEEDLE
        self.needle.add(pred == LABEL_NEEDLE, gn)
        # frame-level needle detection
        gt_area = np.count_nonzero(gn) * sy * sx
        det = result.needle
        if gt_area == 0 and not care.all():
            self.ambiguous += 1  # a barely visible needle labelled don't care: any answer is fine
        elif 0 < gt_area < self.min_needle_area_mm2:
            self.grazing += 1
        elif gt_area >= self.min_needle_area_mm2:
            if det is not None:
                self.tp += 1
            else:
                self.fn += 1
                self.failures.append({"frame": index, "what": "needle missed", "gt_area_mm2": round(gt_area, 3)})
        else:
            if det is not None:
                self.fp += 1
                self.failures.append({"frame": index, "what": "false needle", "tip_px": det.tip_px})
            else:
                self.tn += 1
        if det is not None and frame.tip_px is not None and gt_area >= self.min_needle_area_mm2:
            err = tip_error_mm(det.tip_px, frame.tip_px, frame.spacing_mm)
            self.tip_err.append(err)
            if err > 1.0:
                self.failures.append({"frame": index, "what": "tip error", "err_mm": round(err, 3)})
        if det is not None and det.angle_deg is not None and gt_area >= self.min_needle_area_mm2:
            gt_needle = find_needle(gn, frame.spacing_mm)
            if gt_needle is not None and gt_needle.angle_deg is not None:
                ref = frame.meta.get("needle_angle_deg")
                ref = gt_needle.angle_deg if ref is None else float(ref)
                self.angle_err.append(angle_error_deg(det.angle_deg, ref))
        # vessels
        gt_c = np.asarray(frame.vessel_centres_px, float).reshape(-1, 2)
        self.gt_vessels += len(gt_c)
        if len(gt_c) and result.vessels:
            pc = np.array([v.centre_px for v in result.vessels], float)
            pairs = match_points(pc * (sy, sx), gt_c * (sy, sx), self.match_gate_mm)
            for i, j in pairs:
                v = result.vessels[i]
                self.av_total += 1
                ok = v.kind == frame.vessel_kinds[j]
                self.av_correct += int(ok)
                if not ok:
                    self.failures.append({"frame": index, "what": "artery/vein swapped", "gt": frame.vessel_kinds[j]})
                # depth below the probe face at the true centre (equals vessel_depths_mm unless the
                # phantom moved vertically under the probe)
                self.depth_err.append(abs(v.depth_mm - (gt_c[j, 0] + 0.5) * sy))

    def summary(self, prefix: str = "") -> dict[str, Any]:
        """Every metric so far (module docstring), keys prefixed with ``prefix``."""
        p, r, f1 = precision_recall(self.tp, self.fp, self.fn)
        out = {
            "us_vessel_dice": self.vessel.micro,
            "us_vessel_dice_frame_mean": self.vessel.frame_mean,
            "us_vein_dice": self.vein.micro,
            "us_artery_dice": self.artery.micro,
            "us_needle_dice": self.needle.micro,
            "us_artery_vein_accuracy": self.av_correct / self.av_total if self.av_total else float("nan"),
            "us_vessel_detection_recall": self.av_total / self.gt_vessels if self.gt_vessels else float("nan"),
            "needle_precision": p,
            "needle_recall": r,
            "needle_f1": f1,
            "needle_tp": self.tp,
            "needle_fp": self.fp,
            "needle_fn": self.fn,
            "needle_tn": self.tn,
            "needle_grazing_frames": self.grazing,
            "needle_ambiguous_frames": self.ambiguous,
            "needle_tip_frames": len(self.tip_err),
            "needle_angle_frames": len(self.angle_err),
        }
        tip = summary_stats(self.tip_err, "needle_tip_error_mm")
        out.update(tip)
        out["needle_angle_error_deg"] = float(np.mean(self.angle_err)) if self.angle_err else float("nan")
        out["needle_angle_error_deg_p95"] = float(np.percentile(self.angle_err, 95)) if self.angle_err else float("nan")
        out["vessel_depth_error_mm"] = float(np.mean(self.depth_err)) if self.depth_err else float("nan")
        out["vessel_depth_error_mm_p95"] = float(np.percentile(self.depth_err, 95)) if self.depth_err else float("nan")
        return {f"{prefix}{k}": v for k, v in out.items()}


class NirEvaluator:
    """Accumulate NIR vein Dice over frames: ``add(frame, result)`` then ``summary()``."""

    def __init__(self, match_gate_mm: float = 3.0):
        self.vein = _Dice()
        self.match_gate_mm = match_gate_mm

    def add(self, frame: ImageFrame, result: Any, index: int | None = None) -> None:
        """Add one prediction's (a ``NirResult`` with its mask) vein pixels against its frame's labels
        (``index`` is unused, for symmetry with :meth:`UsEvaluator.add`).
        """
        if frame.labels is None:
            raise ValueError("NirEvaluator needs frames with ground-truth labels")
        care = frame.labels != LABEL_IGNORE  # don't-care pixels count neither way
        self.vein.add((result.mask == LABEL_VEIN) & care, frame.labels == LABEL_VEIN)

    def summary(self, prefix: str = "") -> dict[str, Any]:
        """Vein Dice (micro and per-frame mean) so far, keys prefixed with ``prefix``."""
        out = {"nir_vein_dice": self.vein.micro, "nir_vein_dice_frame_mean": self.vein.frame_mean}
        return {f"{prefix}{k}": v for k, v in out.items()}
