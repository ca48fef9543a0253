"""Metric functions against hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from perception_helpers import SPACING, needle_mask

from ir_robot.core.types import LABEL_NEEDLE, LABEL_VEIN, ImageFrame
from ir_robot.perception.metrics import (
    NirEvaluator,
    UsEvaluator,
    angle_error_deg,
    dice,
    match_points,
    precision_recall,
    tip_error_mm,
)
from ir_robot.perception.postprocess import analyse_nir, analyse_us


def test_dice_hand_cases():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    assert dice(a, b) == 1.0  # both empty
    a[:, :5] = True
    assert dice(a, b) == 0.0
    b[:, :5] = True
    assert dice(a, b) == 1.0
    b[:, :] = False
    b[:, 3:8] = True  # overlap 2 columns of 5 and 5 -> 2*20/(50+50)
    assert dice(a, b) == pytest.approx(0.4)


def test_precision_recall_and_f1():
    assert precision_recall(99, 1, 0) == pytest.approx((0.99, 1.0, 2 * 0.99 / 1.99))
    assert precision_recall(0, 0, 0) == (1.0, 1.0, 1.0)
    assert precision_recall(0, 0, 5)[1] == 0.0


def test_angle_error_wraps():
    assert angle_error_deg(359.0, 1.0) == pytest.approx(2.0)
    assert angle_error_deg(30.0, 210.0) == pytest.approx(180.0)
    assert angle_error_deg(30.0, 210.0, directed=False) == pytest.approx(0.0)
    assert angle_error_deg(-170.0, 170.0) == pytest.approx(20.0)


def test_tip_error_uses_anisotropic_spacing():
    assert tip_error_mm((10, 10), (13, 14), (1.0, 1.0)) == pytest.approx(5.0)
    assert tip_error_mm((0, 0), (3, 4), (0.1, 0.2)) == pytest.approx(np.hypot(0.3, 0.8))


def test_match_points_gate_and_one_to_one():
    pairs = match_points(np.array([[0, 0], [10, 0]]), np.array([[9, 0.5], [0.5, 0], [50, 50]]), 2.0)
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert match_points(np.array([[0, 0]]), np.array([[5, 0]]), 2.0) == []


def _frame(labels, tip=None, centres=(), kinds=(), angle=None):
    meta = {} if angle is None else {"needle_angle_deg": angle}
    return ImageFrame(
        "us",
        np.zeros(labels.shape, np.uint8),
        SPACING,
        0.0,
        labels,
        tip,
        centres,
        tuple(c[0] * SPACING[0] for c in centres),
        kinds,
        meta,
    )


def test_us_evaluator_perfect_and_faulty_predictions():
    labels = np.zeros((256, 256), np.uint8)
    rr, cc = np.mgrid[0:256, 0:256]
    labels[(rr - 100) ** 2 + (cc - 60) ** 2 <= 15**2] = LABEL_VEIN
    labels[needle_mask((256, 256), (150.0, 180.0), 30.0, 100, 7)] = LABEL_NEEDLE
    f_needle = _frame(labels, (150.0, 180.0), ((100.0, 60.0),), ("vein",), angle=30.0)
    empty = np.zeros((256, 256), np.uint8)
    f_empty = _frame(empty)

    ev = UsEvaluator()
    ev.add(f_needle, analyse_us(labels, SPACING))
    ev.add(f_empty, analyse_us(empty, SPACING))
    s = ev.summary()
    assert s["us_vessel_dice"] == 1.0 and s["us_artery_vein_accuracy"] == 1.0
    assert (s["needle_tp"], s["needle_fp"], s["needle_fn"], s["needle_tn"]) == (1, 0, 0, 1)
    assert s["needle_tip_error_mm_mean"] < 0.1 and s["needle_angle_error_deg"] < 0.5
    assert s["vessel_depth_error_mm"] < 0.02

    # a prediction that calls the vein an artery, misses the needle and hallucinates one
    wrong = labels.copy()
    wrong[wrong == LABEL_VEIN] = 2
    wrong[wrong == LABEL_NEEDLE] = 0
    ghost = empty.copy()
    ghost[needle_mask((256, 256), (60.0, 200.0), 40.0, 60, 6)] = LABEL_NEEDLE
    ev = UsEvaluator()
    ev.add(f_needle, analyse_us(wrong, SPACING))
    ev.add(f_empty, analyse_us(ghost, SPACING))
    s = ev.summary()
    assert s["us_vessel_dice"] == 1.0  # vessel vs background is still right
    assert s["us_artery_vein_accuracy"] == 0.0
    assert (s["needle_tp"], s["needle_fp"], s["needle_fn"]) == (0, 1, 1)
    assert s["needle_precision"] == 0.0 and s["needle_recall"] == 0.0


def test_grazing_needles_are_left_out_of_detection_counts():
    labels = np.zeros((256, 256), np.uint8)
    labels[100:102, 100:102] = LABEL_NEEDLE  # 0.055 mm^2: a shaft grazing the beam slab
    ev = UsEvaluator()
    ev.add(_frame(labels), analyse_us(np.zeros_like(labels), SPACING))
    s = ev.summary()
    assert s["needle_grazing_frames"] == 1 and s["needle_fn"] == 0


def test_nir_evaluator_dice():
    gt = np.zeros((64, 64), np.uint8)
    gt[20:30] = 1
    pred = np.zeros_like(gt)
    pred[25:35] = 1
    f = ImageFrame("nir", np.zeros_like(gt), (0.2, 0.2), 0.0, gt)
    ev = NirEvaluator()
    ev.add(f, analyse_nir(pred, (0.2, 0.2)))
    assert ev.summary()["nir_vein_dice"] == pytest.approx(0.5)
