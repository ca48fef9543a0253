"""Perception results -> world measurements: placement, edge-clipped cross-sections, blank frames."""

import math

import numpy as np
import pytest

from ir_robot.control.sensing import in_ellipse, is_blank, layer_profile, measure_us, needle_at_x, profile_shift_mm
from ir_robot.core.types import LABEL_NEEDLE, LABEL_VEIN, ImageFrame
from ir_robot.perception.inference import GroundTruthPerception
from ir_robot.perception.postprocess import PostprocessParams

SP = (30 / 256, 30 / 256)


def frame(labels, probe=(5.0, 2.0, math.pi / 2), t=1.0):
    rng = np.random.default_rng(0)
    img = rng.integers(40, 200, labels.shape).astype(np.uint8)
    return ImageFrame(
        "us", img, SP, t, labels, meta={"probe": {"x_mm": probe[0], "y_mm": probe[1], "yaw_rad": probe[2]}}
    )


def disc(lab, rc, r_px, code=LABEL_VEIN):
    rr, cc = np.mgrid[: lab.shape[0], : lab.shape[1]]
    lab[(rr - rc[0]) ** 2 + (cc - rc[1]) ** 2 < r_px**2] = code


def test_cross_sections_are_placed_in_the_world_and_edge_clipped_ones_dropped():
    lab = np.zeros((256, 256), np.uint8)
    disc(lab, (80, 160), 10)  # a whole vein
    disc(lab, (120, 2), 10)  # one cut by the left image edge
    m = measure_us(frame(lab), GroundTruthPerception(PostprocessParams(min_vessel_area_mm2=0.25)))
    assert len(m.sections) == 1
    s = m.sections[0]
    # transverse: lateral = +y from the probe, rows go down from the skin plane
    assert s.x_mm == pytest.approx(5.0)
    assert s.y_mm == pytest.approx(2.0 + (160 - 128 + 0.5) * SP[1], abs=0.02)
    assert s.z_mm == pytest.approx(-(80 + 0.5) * SP[0], abs=0.02)
    assert s.width_mm == pytest.approx(19 * SP[1], abs=0.15) and s.kind == "vein"
    assert not m.blank and m.needle_yz_mm is None


def test_the_needle_dot_is_placed_in_the_world():
    lab = np.zeros((256, 256), np.uint8)
    disc(lab, (80, 128), 8)
    disc(lab, (80, 128), 3, LABEL_NEEDLE)  # the needle dot inside the lumen
    m = measure_us(frame(lab), GroundTruthPerception(PostprocessParams(min_vessel_area_mm2=0.25)))
    centre_y, centre_z = 2.0 + 0.5 * SP[1], -(80.5) * SP[0]
    assert m.needle_yz_mm == pytest.approx((centre_y, centre_z), abs=0.1)
    assert m.mask is not None and m.mask.shape == (256, 256)


def test_blank_frames_are_flagged():
    lab = np.zeros((64, 64), np.uint8)
    f = ImageFrame(
        "us",
        np.zeros((64, 64), np.uint8),
        SP,
        0.0,
        lab,
        meta={"probe": {"x_mm": 0.0, "y_mm": 0.0, "yaw_rad": math.pi / 2}},
    )
    assert is_blank(f.image)
    m = measure_us(f, GroundTruthPerception())
    assert m.blank and not m.sections


def test_needle_point_correction_and_ellipse():
    # tip within the beam slab: seen itself, no correction
    assert needle_at_x((1.0, -5.0), 10.0, 10.6, math.radians(40), slab_half_mm=0.95) == (1.0, -5.0)
    # tip 2 mm beyond the plane: the deepest point seen is 0.95 mm beyond it; the tip is deeper still
    y, z = needle_at_x((1.0, -5.0), 10.0, 12.0, math.radians(45), slab_half_mm=0.95)
    assert z == pytest.approx(-5.0 - 1.05)
    assert in_ellipse((0.4, 0.1), (0.0, 0.0), (0.5, 0.3)) and not in_ellipse((0.0, 0.35), (0.0, 0.0), (0.5, 0.3))


def layered(shift_px: float, rng, h=256, w=256):
    """Horizontal bright layers (skin, fascia, fibres) moved down by ``shift_px``, speckle, a dark vessel."""
    rows = np.arange(h, dtype=float)[:, None] - shift_px
    img = (
        60
        + 80 * np.exp(-0.5 * ((rows - 6) / 2.0) ** 2)
        + 90 * np.exp(-0.5 * ((rows - 60) / 1.5) ** 2)
        + 25 * np.sin(rows / 4.0) * (rows > 60)
    )
    img = img + rng.normal(0, 12, (h, w))
    rr, cc = np.mgrid[:h, :w]
    img[(rr - 90) ** 2 + (cc - 60) ** 2 < 15**2] = 10
    img[:, 120:136] = 5  # the needle's shadow column (excluded)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_tissue_layer_registration_measures_vertical_motion():
    rng = np.random.default_rng(1)
    ref = layer_profile(layered(0.0, rng), SP, exclude_lateral_mm=(0.0, 1.5))
    for shift_px in (-6.0, -2.5, 0.0, 1.3, 4.0):
        cur = layer_profile(layered(shift_px, rng), SP, exclude_lateral_mm=(0.0, 1.5))
        dz = profile_shift_mm(ref, cur, SP)
        # tissue moved down by shift_px rows: world z decreases
        assert dz == pytest.approx(-shift_px * SP[0], abs=0.04)
    flat = layer_profile(np.full((256, 256), 100, np.uint8), SP)
    assert profile_shift_mm(flat, flat, SP) is None


class _RecordingPerception(GroundTruthPerception):
    def __init__(self):
        super().__init__(PostprocessParams(min_vessel_area_mm2=0.25))
        self.rois = []

    def predict(self, frame, spacing_mm=None, *, roi=None):
        self.rois.append(roi)
        return super().predict(frame, spacing_mm)


def test_measure_us_asks_for_a_region_of_interest_around_a_world_point():
    lab = np.zeros((256, 256), np.uint8)
    disc(lab, (80, 160), 10)
    per = _RecordingPerception()
    f = frame(lab)  # probe at y 2.0 mm, transverse
    y, z = 2.0 + (160 - 128 + 0.5) * SP[1], -(80 + 0.5) * SP[0]  # the vein's centre in the world
    m = measure_us(f, per, roi_yz_mm=(y, z), roi_side_mm=20.0)
    assert per.rois[-1] == pytest.approx((80.0, 160.0, 20.0 / SP[0]), abs=1e-6)
    assert len(m.sections) == 1
    measure_us(f, per)  # no region: the predictor is called without one
    measure_us(f, per, roi_yz_mm=(y, z), roi_side_mm=0.0)
    assert per.rois[-2:] == [None, None]
