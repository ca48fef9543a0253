"""Ultrasound and NIR image synthesis: images agree with the analytic phantom geometry."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from ir_robot.core.errors import ConfigError
from ir_robot.core.types import (
    LABEL_ARTERY,
    LABEL_BACKGROUND,
    LABEL_IGNORE,
    LABEL_NEEDLE,
    LABEL_VEIN,
    NeedlePose,
    NirView,
    ProbePose,
    Tissue,
)
from ir_robot.paths import data_path
from ir_robot.sim.nir import NirParams, NirRenderer, sample_nir_params
from ir_robot.sim.phantom import MotionSpec, Phantom, VesselSpec, load_phantom, sample_phantom
from ir_robot.sim.ultrasound import UltrasoundParams, UltrasoundRenderer, sample_ultrasound_params


@pytest.fixture(scope="module")
def forearm() -> Phantom:
    return Phantom(load_phantom(data_path("sim", "phantoms", "forearm.yaml")))


@pytest.fixture(scope="module")
def us() -> UltrasoundRenderer:
    return UltrasoundRenderer(UltrasoundParams(), seed=0)


@pytest.fixture(scope="module")
def nir() -> NirRenderer:
    return NirRenderer(NirParams(), seed=0)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def needle_at(tip, pitch_deg: float, yaw_deg: float = 0.0, diameter_mm: float = 0.908) -> NeedlePose:
    p, y = math.radians(pitch_deg), math.radians(yaw_deg)
    d = (math.cos(p) * math.cos(y), math.cos(p) * math.sin(y), -math.sin(p))
    return NeedlePose(tuple(float(v) for v in tip), d, diameter_mm)


def vein_y(phantom: Phantom, i: int, x: float) -> float:
    return float(phantom.centreline(np.array(x))[0][i])


def ring(mask: np.ndarray, inner_px: int, outer_px: int) -> np.ndarray:
    k = lambda n: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * n + 1, 2 * n + 1))  # noqa: E731
    m = mask.astype(np.uint8)
    return (cv2.dilate(m, k(outer_px)) > 0) & ~(cv2.dilate(m, k(inner_px)) > 0)


# ----------------------------------------------------------------------------- ultrasound


def test_us_frame_shapes_and_dtypes(forearm, us):
    fr = us.render(forearm, ProbePose(0.0, 0.0, math.pi / 2), None, 0.25, rng())
    assert fr.modality == "us"
    assert fr.image.shape == (256, 256) and fr.image.dtype == np.uint8
    assert fr.labels.shape == (256, 256) and fr.labels.dtype == np.uint8
    assert set(np.unique(fr.labels)) <= {LABEL_BACKGROUND, LABEL_VEIN, LABEL_ARTERY, LABEL_NEEDLE}
    assert fr.spacing_mm == pytest.approx((30.0 / 256, 30.0 / 256))
    assert fr.stamp_s == 0.25 and fr.tip_px is None
    assert fr.meta["needle_visible"] is False
    assert fr.meta["params"]["frequency_mhz"] == 7.5 and fr.meta["seed"] == 0
    assert len(fr.vessel_centres_px) == len(fr.vessel_depths_mm) == len(fr.vessel_kinds) == 3
    small = UltrasoundRenderer(UltrasoundParams(size_px=(96, 128), width_mm=40.0, depth_mm=20.0), seed=1)
    fr = small.render(forearm, ProbePose(0.0, 0.0, 0.0), None, 0.0, rng())
    assert fr.image.shape == fr.labels.shape == (96, 128)
    assert fr.spacing_mm == pytest.approx((20.0 / 96, 40.0 / 128))


@pytest.mark.parametrize(
    "probe,t_s,motion",
    [
        (ProbePose(0.0, 0.0, math.pi / 2), 0.0, False),
        (ProbePose(3.0, -12.0, 0.0), 0.4, False),
        (ProbePose(-5.0, 4.0, 0.7), 1.3, True),
        (ProbePose(36.0, 10.0, math.pi / 2 + 0.2), 2.2, True),  # partly beyond the block end
    ],
)
def test_us_tissue_map_is_exactly_the_phantom(forearm, us, probe, t_s, motion):
    spec = forearm.spec
    if motion:
        spec = dataclasses.replace(spec, motion=MotionSpec(True, (0.3, -0.2, 0.0), (2.0, 1.0, 0.4), 0.3, 0.5))
    ph = Phantom(spec)
    truth = ph.tissue_at(ph.to_phantom(us.grid_world(probe), t_s), t_s)
    fast = us.tissue_map(ph, probe, t_s)
    assert fast.dtype == np.uint8
    np.testing.assert_array_equal(fast, truth)
    # and the labels are the lumens of that same map
    fr = us.render(ph, probe, None, t_s, rng())
    np.testing.assert_array_equal(fr.labels == LABEL_VEIN, truth == Tissue.VEIN_LUMEN)
    np.testing.assert_array_equal(fr.labels == LABEL_ARTERY, truth == Tissue.ARTERY_LUMEN)


def test_us_grid_follows_the_documented_mapping(us):
    probe = ProbePose(4.0, -2.0, 0.3)
    pts = us.grid_world(probe)
    r, c = 17, 201
    H, W = us.shape
    u = np.array([math.cos(0.3), math.sin(0.3), 0.0])
    expect = np.array([4.0, -2.0, 0.0]) + (c - W / 2 + 0.5) * us.sx * u + np.array([0, 0, -(r + 0.5) * us.sy])
    np.testing.assert_allclose(pts[r, c], expect, atol=1e-12)
    rows, cols, off = us.world_to_pixel(pts[r, c], probe)
    assert (rows, cols, off) == pytest.approx((r, c, 0.0), abs=1e-9)


def test_us_lumen_darker_than_surrounding_tissue(forearm, us):
    fr = us.render(forearm, ProbePose(0.0, 0.0, math.pi / 2), None, 0.0, rng(3))
    for lab in (LABEL_VEIN, LABEL_ARTERY):
        lumen = fr.labels == lab
        around = ring(lumen, 6, 16) & (fr.labels == LABEL_BACKGROUND)
        assert lumen.sum() > 100
        assert np.median(fr.image[lumen]) + 40 < np.median(fr.image[around])


def test_us_vein_label_area_matches_the_analytic_ellipse(forearm, us):
    fr = us.render(forearm, ProbePose(0.0, 0.0, math.pi / 2), None, 0.6, rng())
    sx, sy = fr.spacing_mm[1], fr.spacing_mm[0]
    a = forearm.radius_mm(0.6)
    comp = [v.compression for v in forearm.spec.vessels]
    labelled = cv2.connectedComponentsWithStats((fr.labels > 0).astype(np.uint8))[2][1:, cv2.CC_STAT_AREA]
    expected = sorted(math.pi * a[i] * a[i] * comp[i] / (sx * sy) for i in range(3))
    assert sorted(labelled) == pytest.approx(expected, rel=0.10)


def test_us_transverse_vessel_at_expected_pixel(forearm, us):
    x0, y0 = 2.0, 1.0
    fr = us.render(forearm, ProbePose(x0, y0, math.pi / 2), None, 0.0, rng())
    H, W = us.shape
    yc, zc = forearm.centreline(np.array(x0))
    for i, kind in enumerate(("vein", "vein", "artery")):
        # lateral axis u = (0, 1, 0): column from y, row from depth
        row = -zc[i] / us.sy - 0.5
        col = (yc[i] - y0) / us.sx + W / 2 - 0.5
        k = (
            fr.vessel_kinds.index(kind)
            if kind == "artery"
            else int(np.argmin([abs(c[1] - col) for c in fr.vessel_centres_px]))
        )
        assert fr.vessel_kinds[k] == kind
        assert fr.vessel_centres_px[k] == pytest.approx((row, col), abs=0.05)
        assert fr.vessel_depths_mm[k] == pytest.approx(-zc[i], abs=1e-6)
        # the dark blob and its label are there in the image
        lab = LABEL_ARTERY if kind == "artery" else LABEL_VEIN
        comp_mask = fr.labels == lab
        n, cc = cv2.connectedComponents(comp_mask.astype(np.uint8))
        blob = cc == cc[int(round(row)), int(round(col))]
        assert comp_mask[int(round(row)), int(round(col))]
        rr, cc_ = np.nonzero(blob)
        assert (rr.mean(), cc_.mean()) == pytest.approx((row, col), abs=1.0)
        assert np.median(fr.image[int(row) - 2 : int(row) + 3, int(col) - 2 : int(col) + 3]) < 30


def test_us_longitudinal_view_reports_vessels_in_the_plane_only(forearm, us):
    y = vein_y(forearm, 0, 0.0)
    fr = us.render(forearm, ProbePose(0.0, y, 0.0), None, 0.0, rng())
    assert fr.vessel_kinds == ("vein",)
    assert fr.vessel_centres_px[0][1] == pytest.approx(127.5)
    assert fr.vessel_depths_mm[0] == pytest.approx(5.0, abs=1e-9)
    off_plane = us.render(forearm, ProbePose(0.0, y + 3.0, 0.0), None, 0.0, rng())
    assert off_plane.vessel_kinds == () and not (off_plane.labels == LABEL_VEIN).any()


def _in_plane_needle(forearm, pitch_deg: float, depth_mm: float = 9.0):
    """An in-plane needle (probe yaw 0) whose tip is in muscle at ``depth_mm``, beside the veins."""
    tip = (2.0, 6.0, -depth_mm)
    probe = ProbePose(0.0, 6.0, 0.0)
    return probe, needle_at(tip, pitch_deg)


def test_us_needle_bright_with_tip_within_one_pixel(forearm, us):
    probe, needle = _in_plane_needle(forearm, 20.0)
    fr = us.render(forearm, probe, needle, 0.0, rng(1))
    lab = fr.labels == LABEL_NEEDLE
    assert fr.meta["needle_visible"] and lab.sum() > 50
    assert fr.meta["needle_angle_deg"] == pytest.approx(20.0, abs=1e-6)
    around = ring(lab, 3, 10) & (fr.labels == LABEL_BACKGROUND)
    assert np.median(fr.image[lab]) > np.median(fr.image[around]) + 40
    H, W = us.shape
    expect = (9.0 / us.sy - 0.5, (2.0 - probe.x_mm) / us.sx + W / 2 - 0.5)
    assert fr.tip_px is not None
    assert math.dist(fr.tip_px, expect) < 1.0
    # the needle label ends at the tip (deepest labelled pixels are within a radius of it)
    rr, cc = np.nonzero(lab)
    deepest = rr.argmax()
    assert math.dist((rr[deepest], cc[deepest]), expect) < needle.diameter_mm / us.sy + 1
    # and runs back along the shaft out of the image's left edge (it meets the skin at x = -22.7 mm)
    assert cc.min() == 0
    left = rr[cc == 0].mean()
    assert left * us.sy == pytest.approx(9.0 - (2.0 + 15.0) * math.tan(math.radians(20.0)), abs=0.3)


def test_us_steep_needle_dimmer_than_shallow(forearm, us):
    med = {}
    for pitch in (15.0, 60.0):
        probe, needle = _in_plane_needle(forearm, pitch)
        fr = us.render(forearm, probe, needle, 0.0, rng(2))
        lab = fr.labels == LABEL_NEEDLE
        assert lab.sum() > 30
        med[pitch] = float(np.median(fr.image[lab]))
    assert med[15.0] > med[60.0] + 20


def test_us_out_of_plane_needle_is_a_small_dot(forearm, us):
    # transverse probe, needle crossing the plane 2 mm before its tip
    tip = np.array([2.0, 6.0, -9.0])
    needle = needle_at(tip, 30.0)
    probe = ProbePose(0.0, 6.0, math.pi / 2)
    fr = us.render(forearm, probe, needle, 0.0, rng())
    lab = fr.labels == LABEL_NEEDLE
    assert fr.tip_px is None
    assert 0 < lab.sum() < 400  # ~ (slab / tan + diameter) x diameter, far from a shaft
    rr, cc = np.nonzero(lab)
    assert np.ptp(rr) * us.sy < 2.5 and np.ptp(cc) * us.sx < 1.5
    # the shaft crosses the plane at x = 0: depth 9 - 2 tan(30 deg)
    depth = 9.0 - 2.0 * math.tan(math.radians(30.0))
    assert rr.mean() == pytest.approx(depth / us.sy - 0.5, abs=2.0)
    assert cc.mean() == pytest.approx(127.5, abs=1.0)
    # moving the plane onto the tip: tip reported
    fr = us.render(forearm, ProbePose(2.0, 6.0, math.pi / 2), needle, 0.0, rng())
    assert fr.tip_px == pytest.approx((9.0 / us.sy - 0.5, 127.5), abs=1.0)
    # a needle entirely out of the slab does not appear
    far = us.render(forearm, ProbePose(0.0, 12.0, 0.0), needle, 0.0, rng())
    assert not (far.labels == LABEL_NEEDLE).any() and far.tip_px is None and not far.meta["needle_visible"]


def test_us_needle_above_the_skin_is_not_imaged(forearm, us):
    needle = needle_at((0.0, 6.0, 3.0), 30.0)  # tip still 3 mm above the skin
    fr = us.render(forearm, ProbePose(0.0, 6.0, 0.0), needle, 0.0, rng())
    assert not (fr.labels == LABEL_NEEDLE).any() and fr.tip_px is None


def test_us_same_seed_identical_different_rng_different_speckle(forearm):
    probe = ProbePose(0.0, 0.0, math.pi / 2)
    needle = needle_at((1.0, 0.0, -5.0), 30.0)
    a = UltrasoundRenderer(UltrasoundParams(), seed=4).render(forearm, probe, needle, 0.3, rng(9))
    b = UltrasoundRenderer(UltrasoundParams(), seed=4).render(forearm, probe, needle, 0.3, rng(9))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    r = UltrasoundRenderer(UltrasoundParams(), seed=4)
    c = r.render(forearm, probe, needle, 0.3, rng(10))
    np.testing.assert_array_equal(a.labels, c.labels)  # same geometry
    tissue = a.labels == LABEL_BACKGROUND
    diff = np.abs(a.image.astype(int) - c.image.astype(int))[tissue]
    assert diff.mean() > 10  # independent speckle over the same (anchored) tissue structure
    assert a.meta["speckle_crop"] != c.meta["speckle_crop"]


def test_us_motion_moves_the_vessels(forearm, us):
    spec = dataclasses.replace(forearm.spec, motion=MotionSpec(True, (0.0, 0.0, 0.0), (0.0, 2.0, 0.0), 0.25, 0.0))
    ph = Phantom(spec)
    probe = ProbePose(0.0, 0.0, math.pi / 2)
    f0 = us.render(ph, probe, None, 0.0, rng())
    f1 = us.render(ph, probe, None, 1.0, rng())  # offset +2 mm in y
    shift = np.array(f1.vessel_centres_px) - np.array(f0.vessel_centres_px)
    np.testing.assert_allclose(shift[:, 1], 2.0 / us.sx, atol=1e-6)
    np.testing.assert_allclose(shift[:, 0], 0.0, atol=1e-6)


def test_sample_ultrasound_params_reproducible_and_validated():
    a = sample_ultrasound_params(rng(5))
    b = sample_ultrasound_params(rng(5))
    c = sample_ultrasound_params(rng(6))
    assert a == b and a != c
    assert sample_ultrasound_params(rng(5), frequency_mhz=12.0, size_px=(128, 128)).frequency_mhz == 12.0
    with pytest.raises(ConfigError, match="frequency_mhz"):
        sample_ultrasound_params(rng(), frequency_mhz=100.0)
    with pytest.raises(ConfigError, match="unknown"):
        sample_ultrasound_params(rng(), colour="red")
    with pytest.raises(ConfigError, match="Generator"):
        UltrasoundRenderer(UltrasoundParams(size_px=(32, 32))).render(
            Phantom(sample_phantom(rng())), ProbePose(0, 0), None, 0.0, 123
        )


def test_us_sampled_params_render_sane_images():
    ph = Phantom(sample_phantom(rng(11)))
    y = vein_y(ph, 0, 0.0)
    fr = UltrasoundRenderer(sample_ultrasound_params(rng(12), size_px=(128, 128)), seed=3).render(
        ph, ProbePose(0.0, y, math.pi / 2), needle_at((0.0, y, -4.0), 25.0, 90.0), 0.0, rng()
    )
    lumen = fr.labels == LABEL_VEIN
    assert lumen.any() and 20 < fr.image.mean() < 200
    assert np.median(fr.image[lumen]) < np.median(fr.image[ring(lumen, 4, 10) & (fr.labels == 0)])


# ----------------------------------------------------------------------------- NIR


def _one_vein(depth_mm: float, diameter_mm: float = 3.0) -> Phantom:
    spec = load_phantom(data_path("sim", "phantoms", "forearm.yaml"))
    v = VesselSpec("vein", diameter_mm, depth_mm, 0.0)
    return Phantom(dataclasses.replace(spec, vessels=(v,)))


def test_nir_frame_shapes_labels_and_ground_truth(forearm, nir):
    fr = nir.render(forearm, NirView(0.0, 0.0, 50.0), 0.0, rng())
    assert fr.modality == "nir" and fr.image.shape == (256, 256) and fr.image.dtype == np.uint8
    assert fr.labels.dtype == np.uint8 and set(np.unique(fr.labels)) <= {LABEL_BACKGROUND, LABEL_VEIN, LABEL_IGNORE}
    assert fr.spacing_mm == pytest.approx((50.0 / 256, 50.0 / 256))
    # the two shallow veins are labelled, the deep artery is not (faint: don't care, never vein)
    assert fr.vessel_kinds == ("vein", "vein")
    s = 50.0 / 256
    for (row, col), i in zip(fr.vessel_centres_px, (0, 1), strict=False):
        assert row == pytest.approx(vein_y(forearm, i, 0.0) / s + 127.5, abs=1e-6)
        assert col == 127.5
    artery_row = int(round(vein_y(forearm, 2, 0.0) / s + 127.5))
    assert not (fr.labels[artery_row - 3 : artery_row + 4] == LABEL_VEIN).any()
    # footprint width = lumen diameter
    width_px = (fr.labels[:, 128] == LABEL_VEIN).sum()
    assert width_px * s == pytest.approx(3.2 + 2.2, abs=2 * s)


def test_nir_vein_darker_than_skin_and_deep_vein_lower_contrast(nir):
    def contrast(depth):
        ph = _one_vein(depth)
        fr = nir.render(ph, NirView(0.0, 0.0, 50.0), 0.0, rng(7))
        s = fr.spacing_mm[0]
        rows = np.arange(256)
        y = (rows - 127.5) * s
        lumen_rows = np.abs(y) < 1.0
        skin_rows = np.abs(y) > 12.0
        return 1.0 - np.median(fr.image[lumen_rows]) / np.median(fr.image[skin_rows]), fr

    shallow, fs = contrast(4.0)
    deep, fd = contrast(10.0)
    assert shallow > 0.15
    assert deep < shallow / 2
    assert (fs.labels == LABEL_VEIN).any() and fs.vessel_depths_mm == (4.0,)
    assert not (fd.labels == LABEL_VEIN).any() and fd.vessel_kinds == ()


def test_nir_same_seed_identical_and_noise_differs(forearm):
    view = NirView(2.0, -1.0, 40.0)
    a = NirRenderer(NirParams(), seed=2).render(forearm, view, 0.1, rng(1))
    b = NirRenderer(NirParams(), seed=2).render(forearm, view, 0.1, rng(1))
    c = NirRenderer(NirParams(), seed=2).render(forearm, view, 0.1, rng(2))
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)
    np.testing.assert_array_equal(a.labels, c.labels)


def test_nir_texture_moves_with_the_arm(nir):
    spec = load_phantom(data_path("sim", "phantoms", "forearm.yaml"))
    shift_mm = 10 * 50.0 / 256  # exactly 10 px
    ph = Phantom(dataclasses.replace(spec, motion=MotionSpec(True, (shift_mm, 0.0, 0.0), (0, 0, 0), 0.2, 0.0)))
    quiet = dataclasses.replace(
        NirParams(), noise_sigma=0.0, exposure_jitter=0.0, glare=0.0, lighting_gradient=0.0, vignetting=0.0
    )
    r = NirRenderer(quiet, seed=0)
    a = r.render(ph, NirView(0.0, 0.0, 50.0), 0.0, rng()).image.astype(int)
    b = r.render(ph, NirView(0.0, 0.0, 50.0), 1.0, rng()).image.astype(int)
    # after 1 s the arm moved +10 px in x: b shifted left by 10 equals a (away from the block ends)
    assert np.abs(b[:, 60:200] - a[:, 50:190]).mean() < 2.0
    assert np.abs(b[:, 60:200] - a[:, 60:200]).mean() > 2.0


def test_nir_needle_tip_and_shaft(forearm, nir):
    tip = (1.0, 2.0, -4.0)
    needle = needle_at(tip, 30.0)
    view = NirView(0.0, 0.0, 50.0)
    fr = nir.render(forearm, view, 0.0, rng(), needle=needle)
    s = 50.0 / 256
    assert fr.tip_px == pytest.approx((2.0 / s + 127.5, 1.0 / s + 127.5), abs=1e-9)
    assert fr.meta["needle_visible"] and fr.meta["tip_under_skin"]
    # the shaft is drawn above the skin only: from the entry point back, none beyond it
    entry_x = 1.0 - 4.0 / math.tan(math.radians(30.0))
    row = int(round(2.0 / s + 127.5))
    col_entry = entry_x / s + 127.5
    plain = nir.render(forearm, view, 0.0, rng())
    drawn = np.abs(fr.image.astype(int) - plain.image.astype(int))[row] > 30
    cols = np.flatnonzero(drawn)
    assert cols.size > 20 and cols.max() <= col_entry + 4  # + the round cap of a 7 px line
    assert not (fr.labels == 3).any()  # NIR never labels the needle


def test_sample_nir_params():
    a, b = sample_nir_params(rng(1)), sample_nir_params(rng(1))
    assert a == b and a != sample_nir_params(rng(2))
    assert sample_nir_params(rng(1), skin_tone=0.9).skin_tone == 0.9
    with pytest.raises(ConfigError):
        sample_nir_params(rng(1), skin_tone=2.0)


def test_nir_dark_skin_lowers_vein_contrast():
    ph = _one_vein(4.0)
    out = {}
    for tone in (0.0, 1.0):
        p = dataclasses.replace(NirParams(), skin_tone=tone)
        fr = NirRenderer(p, seed=0).render(ph, NirView(0.0, 0.0, 50.0), 0.0, rng())
        lumen = fr.labels == LABEL_VEIN
        rows = np.abs(np.arange(256) - 127.5) * (50.0 / 256) > 12
        out[tone] = 1 - np.median(fr.image[lumen]) / np.median(fr.image[rows])
    assert out[0.0] > out[1.0] > 0


def test_nir_artery_is_dont_care_wherever_a_vein_like_it_would_count():
    """At one NIR wavelength an artery looks like a vein: it is "don't care" down to the faint
    band of the vein rule (not background there, or a model seeing it would be scored wrong)."""
    spec = load_phantom(data_path("sim", "phantoms", "forearm.yaml"))
    params = dataclasses.replace(NirParams(), artery_absorption_factor=1.0)
    seen = set()
    for depth in np.linspace(4.0, 14.0, 21):
        frames = {}
        for kind in ("vein", "artery"):
            ph = Phantom(dataclasses.replace(spec, vessels=(VesselSpec(kind, 3.0, float(depth), 0.0),)))
            frames[kind] = NirRenderer(params, seed=0).render(ph, NirView(0.0, 0.0, 50.0), 0.0, rng(3)).labels
        vein, artery = frames["vein"], frames["artery"]
        assert not (artery == LABEL_VEIN).any()
        # the artery is don't care exactly where the same vein is labelled vein or don't care
        np.testing.assert_array_equal(artery == LABEL_IGNORE, vein != LABEL_BACKGROUND)
        seen |= {int(v) for v in np.unique(vein[:, 128])}
    # the depths span a visible vein, the faint band and an invisible one
    assert {LABEL_BACKGROUND, LABEL_VEIN, LABEL_IGNORE} <= seen
