"""Region-of-interest ultrasound perception: the network sees a zoomed square around the tracked target."""

from __future__ import annotations

import numpy as np
import pytest

from ir_robot.core.errors import PerceptionError
from ir_robot.core.results import UsResult, VesselDetection, result_from_json, result_to_json
from ir_robot.core.types import LABEL_ARTERY, LABEL_VEIN
from ir_robot.perception.inference import UltrasoundPerception, _cut_by_box
from ir_robot.perception.train import roi_crops
from ir_robot.perception.transforms import roi_box

SP = (30 / 256, 30 / 256)


@pytest.mark.parametrize(
    "centre, side, shape, box",
    [
        ((128, 128), 100, (256, 256), (78, 78, 178, 178)),  # inside: centred
        ((5, 250), 100, (256, 256), (0, 156, 100, 256)),  # near a corner: shifted inside, same side
        ((100, 100), 400, (256, 300), (0, 0, 256, 256)),  # larger than the image: the shorter side
        ((-50, 999), 64, (128, 128), (0, 64, 64, 128)),  # centre outside the image
    ],
)
def test_roi_box_is_a_square_inside_the_image(centre, side, shape, box):
    assert roi_box(centre, side, shape) == box


def test_roi_prediction_runs_the_network_on_the_region_only(tiny_weights):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (256, 256), dtype=np.uint8)
    us = UltrasoundPerception.from_weights(tiny_weights["us"])
    res = us.predict(img, SP, roi=(100.0, 180.0, 96.0))
    r0, c0, r1, c1 = res.roi_px
    assert (r0, c0, r1, c1) == roi_box((100, 180), 96, img.shape) == (52, 132, 148, 228)
    outside = np.ones(img.shape, bool)
    outside[r0:r1, c0:c1] = False
    assert not res.mask[outside].any()  # background outside the region
    crop_mask, _ = us.segmenter.segment(img[r0:r1, c0:c1])  # inside: the network on the crop, placed back
    assert np.array_equal(res.mask[r0:r1, c0:c1], crop_mask)
    assert us.predict(img, SP).roi_px is None
    from ir_robot.perception.inference import draw_overlay

    drawn = draw_overlay(img, res)  # the region is outlined
    assert (drawn[r0, c0 + 10 : c1 - 10] == (200, 200, 200)).all()


@pytest.mark.parametrize("roi", [(10.0, 10.0), (10.0, 10.0, 8.0), (np.nan, 10.0, 64.0)])
def test_a_malformed_roi_is_refused_with_a_reason(tiny_weights, roi):
    us = UltrasoundPerception.from_weights(tiny_weights["us"])
    with pytest.raises(PerceptionError, match="roi must be"):
        us.predict(np.zeros((128, 128), np.uint8) + 90, SP, roi=roi)


def _vessel(r, c, d_mm=2.0):
    return VesselDetection("vein", (r, c), (0.0, 0.0), d_mm, 0.0, 100, 1.0, False, d_mm, d_mm)


def test_cross_sections_cut_by_an_inner_border_of_the_region_are_dropped():
    box = (50, 0, 150, 100)  # left side on the image edge, the other sides inside the image
    d_px = 2.0 / SP[0]  # a 2 mm vessel: 17 px across
    assert not _cut_by_box(_vessel(100, 50), box, (256, 256), SP)  # well inside
    assert _cut_by_box(_vessel(55, 50), box, (256, 256), SP)  # reaches the top border
    assert _cut_by_box(_vessel(100, 100 - d_px / 4), box, (256, 256), SP)  # reaches the right border
    assert not _cut_by_box(_vessel(100, 3), box, (256, 256), SP)  # left: the image edge (not a cut here)


def test_roi_survives_the_result_message():
    res = UsResult(None, SP, (_vessel(100, 50),), None, "model", (10, 20, 138, 148))
    back, _ = result_from_json(result_to_json(res, 5))
    assert back.roi_px == (10, 20, 138, 148)
    assert result_from_json(result_to_json(UsResult(None, SP)))[0].roi_px is None


def test_training_roi_crops_are_zoomed_squares_around_vessels():
    rng = np.random.default_rng(0)
    labels = np.zeros((6, 256, 256), np.uint8)
    labels[:3, 60:70, 200:212] = LABEL_VEIN  # frames 0-2: one small vein near the right edge
    labels[3:5, 180:190, 30:40] = LABEL_ARTERY  # frames 3-4: an artery; frame 5: none
    images = (labels * 40 + 10).astype(np.uint8)  # image and labels agree pixel for pixel
    xs, ys = roi_crops(images, labels, 60, (1.25, 2.0), rng)
    assert len(xs) == len(ys) == 60
    sides = [x.shape[0] for x in xs]
    assert all(x.shape == y.shape == (x.shape[0], x.shape[0]) for x, y in zip(xs, ys, strict=True))
    assert 128 <= min(sides) and max(sides) <= 205 and len(set(sides)) > 5  # zoom 2 .. 1.25
    # image and labels are cut from the same window of the same frame
    assert all(np.array_equal(x, y * 40 + 10) for x, y in zip(xs, ys, strict=True))
    # crops of frames with a vessel hold it (centred on a vessel pixel, jittered by a sixth of the side)
    assert sum((y > 0).any() for y in ys) >= 45
