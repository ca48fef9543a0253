"""Tip camera: determinism, ground truth (class, contact ratio), the Hertz patch growth, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ir_robot.core.errors import ConfigError
from ir_robot.sim.imaging.tip_camera import CLASSES, TipCameraParams, TipCameraRenderer


def _measured(frame, half=64.0):
    """Contact ratio from the pixels: bright (not blood) pixels over the window's pixels."""
    n = frame.image.shape[0]
    yy, xx = np.mgrid[0:n, 0:n]
    window = np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2) <= half
    green = frame.image[..., 1].astype(float)
    patch = (green > 40.0) & window
    return patch.sum() / window.sum(), patch


def test_same_seed_same_frames():
    seq = [("tissue", 0.4, (0.0, 0.0)), ("blood", 0.0, (0.0, 0.0)), ("valve", 1.0, (1.0, 2.0))]
    r1 = TipCameraRenderer(seed=5)
    a = [r1.render(*s).image for s in seq]
    r = TipCameraRenderer(seed=5)
    b = [r.render(*s).image for s in seq]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    r2 = TipCameraRenderer(seed=6)
    assert not np.array_equal(r2.render(*seq[0]).image, b[0])


@pytest.mark.parametrize("surface,force", [("tissue", 0.1), ("tissue", 0.6), ("valve", 0.3), ("valve", 2.0)])
def test_class_and_contact_ratio_match_the_ground_truth(surface, force):
    f = TipCameraRenderer(seed=1).render(surface, force)
    assert f.label == surface and f.class_index == CLASSES.index(surface)
    assert f.normal_force_n == force
    ratio, patch = _measured(f)
    assert ratio == pytest.approx(f.contact_ratio, abs=0.03)
    rgb = f.image[patch].astype(float).mean(axis=0)
    if surface == "valve":  # white fabric / grey metal: blue close to red
        assert rgb[2] > 0.75 * rgb[0]
    else:  # pink tissue
        assert rgb[2] < 0.7 * rgb[0]


def test_free_tip_sees_only_blood():
    r = TipCameraRenderer(seed=2)
    for surface, force in (("blood", 0.0), ("tissue", 0.0), ("valve", 0.0)):
        f = r.render(surface, force)
        assert f.label == "blood" and f.class_index == 0 and f.contact_ratio == 0.0
        ratio, _ = _measured(f)
        assert ratio == 0.0
        assert f.image[..., 0].mean() > 2 * f.image[..., 1].mean()  # dark red


def test_patch_grows_with_force_as_hertz():
    r = TipCameraRenderer(seed=3)
    forces = [0.02, 0.05, 0.1, 0.2, 0.4]
    measured = [_measured(r.render("tissue", f))[0] for f in forces]
    assert all(b > a for a, b in itertools.pairwise(measured))
    # contact area ~ F^(2/3): 20x the force -> 20^(2/3) = 7.4x the area
    assert measured[-1] / measured[0] == pytest.approx(20 ** (2 / 3), rel=0.15)
    # the stiffer valve shows a smaller patch at the same force
    assert r.render("valve", 0.2).contact_ratio < r.render("tissue", 0.2).contact_ratio
    # pressed hard the patch fills the window
    assert r.render("tissue", 3.0).contact_ratio == 1.0


def test_bad_input_raises_one_clear_error():
    r = TipCameraRenderer(seed=0)
    with pytest.raises(ConfigError, match=r"normal_force_n.*\[0.0, 5.0\] N"):
        r.render("tissue", -0.1)
    with pytest.raises(ConfigError, match="surface.*'bone'.*blood"):
        r.render("bone", 0.1)
    with pytest.raises(ConfigError, match=r"size_px.*\[1, 2048\]"):
        TipCameraParams(size_px=0)


def test_roll_turns_the_patch_content():
    r = TipCameraRenderer(TipCameraParams(noise_std=0.0), seed=4)
    a = r.render("valve", 3.0).image.astype(float)
    b = r.render("valve", 3.0, roll_rad=np.pi / 2).image.astype(float)
    c = slice(20, 108)  # inside the window, away from the rim
    turned = np.rot90(a, k=1)[c, c].ravel()
    assert np.corrcoef(turned, b[c, c].ravel())[0, 1] > 0.95
    assert np.corrcoef(a[c, c].ravel(), b[c, c].ravel())[0, 1] < 0.8
