"""Mask -> vessels / needle / NIR veins, checked on hand-made masks with known answers."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from perception_helpers import SPACING, needle_mask

from ir_robot.core.types import LABEL_ARTERY, LABEL_NEEDLE, LABEL_VEIN
from ir_robot.perception.postprocess import analyse_nir, analyse_us, find_needle, us_mm_to_px, us_px_to_mm


@pytest.mark.parametrize("angle", [20.0, 35.0, 45.0, 150.0])
@pytest.mark.parametrize("width_px", [6.0, 12.0])
def test_needle_tip_and_angle_from_a_capsule(angle, width_px):
    tip = (140.3, 150.7) if angle < 90 else (140.3, 90.2)
    m = needle_mask((256, 256), tip, angle, 120, width_px)
    det = find_needle(m, SPACING)
    assert det is not None and det.angle_deg is not None
    err_mm = math.hypot(det.tip_px[0] - tip[0], det.tip_px[1] - tip[1]) * SPACING[0]
    assert err_mm < 0.1
    assert abs(det.angle_deg - angle) < 0.5
    # direction points from the tail to the tip
    assert np.dot(det.direction_px, np.subtract(det.tip_px, det.tail_px)) > 0
    assert det.tip_mm == pytest.approx(tuple(us_px_to_mm(det.tip_px, (256, 256), SPACING)))


def test_needle_ignores_stray_blobs_and_small_masks():
    m = needle_mask((256, 256), (120.0, 140.0), 30.0, 100, 7)
    m[200:203, 20:23] = True  # speckle false positive far from the shaft
    det = find_needle(m, SPACING)
    assert abs(det.tip_px[0] - 120.0) < 1.0 and abs(det.tip_px[1] - 140.0) < 1.0
    tiny = np.zeros((256, 256), bool)
    tiny[50:52, 50:52] = True  # 4 px = 0.055 mm^2 < 0.12 mm^2
    assert find_needle(tiny, SPACING) is None
    assert find_needle(np.zeros((256, 256), bool), SPACING) is None


def test_needle_axis_is_weighted_by_the_probability():
    """A shaft with a thick, unsure bulge along one side near the tail (blurred edge pixels
    the network barely called needle): weighted by the probability, it tilts the axis less."""
    angle = 30.0
    m = needle_mask((256, 256), (140.0, 150.0), angle, 120, 6)
    prob = np.where(m, 0.95, 0.0).astype(np.float32)
    bulge = np.zeros((256, 256), np.uint8)
    # a 5 px band along the upper side of the tail half (rows above the shaft)
    a = math.radians(angle)
    d = np.array([math.sin(a), math.cos(a)])  # (row, col) direction tail -> tip
    n = np.array([-math.cos(a), math.sin(a)])  # towards shallower rows
    tail_mid = np.array([140.0, 150.0]) - d * 90
    p0 = tail_mid - d * 25 + n * 5
    p1 = tail_mid + d * 25 + n * 5
    cv2.line(bulge, (int(p0[1]), int(p0[0])), (int(p1[1]), int(p1[0])), 1, 5)
    extra = (bulge > 0) & ~m
    m2 = m | extra
    prob[extra] = 0.35  # argmax of 4 classes: a needle pixel can be this unsure
    plain = find_needle(m2, SPACING)  # no probabilities: every pixel counts fully
    weighted = find_needle(m2, SPACING, prob)
    assert plain is not None and weighted is not None
    # the bulge weighs 0.35 / 0.95 of the shaft per pixel: well under the unweighted tilt
    assert abs(plain.angle_deg - angle) > 2.0
    assert abs(weighted.angle_deg - angle) < 0.6 * abs(plain.angle_deg - angle)
    # uniform probabilities give exactly the unweighted answer
    same = find_needle(m2, SPACING, np.where(m2, 0.9, 0.0).astype(np.float32))
    assert same.angle_deg == pytest.approx(plain.angle_deg, abs=1e-3)


def test_out_of_plane_dot_has_a_tip_but_no_angle():
    m = np.zeros((256, 256), np.uint8)
    cv2.circle(m, (100, 80), 5, 1, -1)
    det = find_needle(m.astype(bool), SPACING)
    assert det is not None and det.tip_only and det.direction_px is None
    assert det.tip_px == pytest.approx((80.0, 100.0), abs=0.2)


def test_transverse_vessels_centre_diameter_depth_and_kind():
    mask = np.zeros((256, 256), np.uint8)
    cv2.ellipse(mask, (80, 100), (20, 15), 0, 0, 360, LABEL_VEIN, -1)
    cv2.circle(mask, (180, 150), 18, LABEL_ARTERY, -1)
    mask[150, 175:178] = LABEL_VEIN  # a few mislabelled pixels do not change the kind
    res = analyse_us(mask, SPACING)
    assert [v.kind for v in res.vessels] == ["vein", "artery"]
    vein, art = res.vessels
    assert vein.centre_px == pytest.approx((100.0, 80.0), abs=0.1)
    assert vein.depth_mm == pytest.approx(100.5 * SPACING[0], abs=0.02)
    expected = math.sqrt(4 * (mask == LABEL_VEIN).sum() * SPACING[0] ** 2 / math.pi)
    assert vein.diameter_mm == pytest.approx(expected, rel=0.02)
    assert art.diameter_mm == pytest.approx(37 * SPACING[0], rel=0.05)
    assert not vein.band and res.needle is None


def test_longitudinal_band_depth_at_the_centre_column():
    mask = np.zeros((256, 256), np.uint8)
    cols = np.arange(256)
    centre_row = 90 + 0.05 * cols  # slightly dipping vessel
    rows = np.arange(256)[:, None]
    mask[np.abs(rows - centre_row[None, :]) <= 10] = LABEL_VEIN
    (v,) = analyse_us(mask, SPACING).vessels
    assert v.band
    assert v.centre_px[1] == pytest.approx(127.5)
    assert v.centre_px[0] == pytest.approx(90 + 0.05 * 127.5, abs=0.3)
    assert v.diameter_mm == pytest.approx(21 * SPACING[0], rel=0.05)


def test_small_components_are_not_vessels():
    mask = np.zeros((256, 256), np.uint8)
    mask[10:14, 10:14] = LABEL_VEIN  # 16 px = 0.22 mm^2
    assert analyse_us(mask, SPACING).vessels == ()


def test_px_mm_round_trip():
    p = np.array([[10.0, 20.0], [200.5, 3.25]])
    back = us_mm_to_px(us_px_to_mm(p, (256, 300), (0.1, 0.12)), (256, 300), (0.1, 0.12))
    assert np.allclose(back, p)


def test_nir_vein_width_angle_length_and_contrast():
    img = np.full((256, 256), 180, np.uint8)
    angle = math.degrees(math.atan2(72, 200))
    centre = (128, 128)
    tip = (128 + 36, 128 + 100)
    mask = needle_mask((256, 256), tip, angle, math.hypot(200, 72), 15).astype(np.uint8)
    img[mask > 0] = 120
    s = (50.0 / 256, 50.0 / 256)
    res = analyse_nir(mask, s, image=img)
    (v,) = res.veins
    assert v.angle_deg == pytest.approx(angle, abs=1.0)
    assert v.width_mm == pytest.approx(15 * s[0], rel=0.12)
    assert v.length_mm == pytest.approx(math.hypot(200, 72) * s[0], rel=0.1)
    assert v.contrast == pytest.approx(60 / 180, abs=0.02)
    assert v.centre_px == pytest.approx(centre, abs=1.0)
    assert v.centreline_px.shape[1] == 2 and len(v.centreline_px) > 20


def test_result_dicts_are_json_ready():
    import json

    mask = np.zeros((256, 256), np.uint8)
    cv2.circle(mask, (100, 100), 15, LABEL_VEIN, -1)
    mask[needle_mask((256, 256), (150.0, 150.0), 30.0, 80, 6)] = LABEL_NEEDLE
    text = json.dumps(analyse_us(mask, SPACING).to_dict())
    assert '"needle"' in text and '"vein"' in text
    json.dumps(analyse_nir((mask == LABEL_VEIN).astype(np.uint8), SPACING).to_dict())


def test_results_survive_the_json_message_exactly():
    """/<m>/result carries every detection at full precision: the controller sees what the node computed."""
    from ir_robot.core.results import result_from_json, result_to_json

    m = needle_mask((256, 256), (150.3, 160.7), 30.0, 120, 8.0).astype(np.uint8) * LABEL_NEEDLE
    cv2.circle(m, (60, 90), 14, LABEL_VEIN, -1)
    cv2.circle(m, (200, 60), 12, LABEL_ARTERY, -1)
    us = analyse_us(m, SPACING)
    assert len(us.vessels) == 2 and us.needle is not None
    back, stamp = result_from_json(result_to_json(us, 1_234_567_890_123))
    assert stamp == 1_234_567_890_123 and back.mask is None
    assert back.vessels == us.vessels and back.needle == us.needle and back.spacing_mm == us.spacing_mm
    nir_mask = np.zeros((256, 256), np.uint8)
    cv2.line(nir_mask, (10, 100), (240, 130), 1, 9)
    nir = analyse_nir(nir_mask, (0.2, 0.2))
    back, stamp = result_from_json(result_to_json(nir))
    assert stamp is None and len(back.veins) == len(nir.veins) == 1
    assert np.array_equal(back.veins[0].centreline_px, nir.veins[0].centreline_px)
    assert back.veins[0].width_mm == nir.veins[0].width_mm and back.veins[0].centre_mm == nir.veins[0].centre_mm


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"modality": "us"}',
        '{"modality": "ct", "spacing_mm": [1, 1]}',
        '{"modality": "us", "spacing_mm": [1, 1], "source": "x", "vessels": [{"k": 1}], "needle": null}',
    ],
)
def test_a_malformed_result_message_is_a_clear_error(text):
    from ir_robot.core.results import result_from_json

    with pytest.raises(ValueError, match="not a perception result message"):
        result_from_json(text)
