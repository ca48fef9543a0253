"""The predictor objects: any image size, ImageFrame or array, ground truth from labels."""

from __future__ import annotations

import numpy as np
import pytest
from perception_helpers import fake_us_frame

from ir_robot.core.results import NirResult, UsResult
from ir_robot.core.types import LABEL_VEIN, ImageFrame
from ir_robot.perception.classical import ClassicalNirPerception, ClassicalUsPerception
from ir_robot.perception.inference import GroundTruthPerception, NirPerception, UltrasoundPerception, draw_overlay


@pytest.mark.parametrize("shape", [(64, 64), (300, 200), (97, 131)])
def test_learned_predictors_keep_the_input_size(tiny_weights, shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, shape, dtype=np.uint8)
    us = UltrasoundPerception.from_weights(tiny_weights["us"])
    res = us.predict(img)
    assert isinstance(res, UsResult) and res.mask.shape == shape and res.mask.dtype == np.uint8
    assert set(np.unique(res.mask)) <= {0, 1, 2, 3}
    # without a spacing the model's field of view is spread over the image
    assert res.spacing_mm == pytest.approx((30.0 / shape[0], 30.0 / shape[1]))
    nir = NirPerception.from_weights(tiny_weights["nir"])
    nres = nir.predict(img, spacing_mm=(0.2, 0.2))
    assert isinstance(nres, NirResult) and nres.mask.shape == shape and set(np.unique(nres.mask)) <= {0, 1}
    assert draw_overlay(img, res).shape == (*shape, 3)


def test_ground_truth_perception_recovers_the_frame_truth(rng):
    frame = fake_us_frame(rng, size=128, spacing=(30 / 128, 30 / 128))
    res = GroundTruthPerception().predict(frame)
    assert res.source == "ground_truth"
    assert np.array_equal(res.mask, frame.labels)
    assert {v.kind for v in res.vessels} == {"vein", "artery"}
    tip_err = np.hypot(*np.subtract(res.needle.tip_px, frame.tip_px))
    assert tip_err < 1.0
    nir = ImageFrame("nir", frame.image, (0.2, 0.2), 0.0, (frame.labels == LABEL_VEIN).astype(np.uint8))
    assert len(GroundTruthPerception().predict(nir).veins) == 1


def test_classical_baselines_find_a_dark_vessel_and_a_bright_needle():
    img = np.full((256, 256), 110, np.uint8)
    rng = np.random.default_rng(0)
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    import cv2

    cv2.ellipse(img, (90, 120), (22, 16), 0, 0, 360, 5, -1)
    cv2.line(img, (120, 20), (200, 80), 255, 5)
    spacing = (30 / 256, 30 / 256)
    res = ClassicalUsPerception().predict(img, spacing)
    assert len(res.vessels) == 1 and res.vessels[0].centre_px == pytest.approx((120, 90), abs=2)
    assert res.needle is not None and res.needle.angle_deg == pytest.approx(np.degrees(np.arctan2(60, 80)), abs=3)
    assert res.needle.tip_px == pytest.approx((80, 200), abs=4)
    nir_img = np.full((256, 256), 170, np.uint8)
    cv2.line(nir_img, (0, 128), (255, 140), 120, 14)
    nres = ClassicalNirPerception().predict(nir_img, (50 / 256, 50 / 256))
    assert len(nres.veins) == 1 and abs(nres.veins[0].angle_deg) < 8


@pytest.mark.parametrize("backend", ["onnxruntime", "torchscript", "eager"])
def test_single_frame_backends_match_the_eager_model(tiny_weights, backend):
    """Single frames run on onnxruntime or a TorchScript-frozen copy (BatchNorm folded): the same
    probabilities as the eager network that runs batches."""
    from ir_robot.perception.inference import Segmenter

    seg = Segmenter.from_weights(tiny_weights["us"], backend=backend)
    assert seg.backend == backend and seg._single is not None
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (2, 200, 180)).astype(np.uint8)
    batch = seg.probabilities_batch(imgs)  # N = 2: the eager model
    one = seg.probabilities(imgs[0])  # N = 1: the backend
    assert np.abs(one - batch[0]).max() < 1e-4
    assert np.allclose(one.sum(axis=0), 1.0, atol=1e-5)  # bilinear resizing keeps them summing to one


def test_auto_backend_prefers_onnxruntime_and_bad_names_are_refused(tiny_weights):
    from ir_robot.core.errors import PerceptionError
    from ir_robot.perception.inference import Segmenter

    assert Segmenter.from_weights(tiny_weights["us"]).backend == "onnxruntime"  # a pinned requirement
    with pytest.raises(PerceptionError, match="unknown inference backend 'tensorrt'"):
        Segmenter.from_weights(tiny_weights["us"], backend="tensorrt")
