"""Fluoroscopy renderer: determinism, attenuation, geometry, noise vs dose, DSA, collimation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ir_robot.core.errors import ConfigError
from ir_robot.sim.imaging.body_background import BodyParams
from ir_robot.sim.imaging.carm import CArmParams
from ir_robot.sim.imaging.demo_scene import demo_valve, demo_vessels, demo_wire
from ir_robot.sim.imaging.fluoroscopy import FluoroscopyParams, FluoroscopyRenderer, contrast_bolus
from ir_robot.sim.imaging.imaging_config import ImagingConfig, load_imaging_config, renderers_from_config
from ir_robot.sim.imaging.scene_inputs import RadiopaqueRod, VesselTube

ISO = (5.0, 30.0, 20.0)


def _renderer(size=128, seed=0, lao=0.0, cranial=0.0, dose=2.0e4, body=None, vessels=None):
    r = FluoroscopyRenderer(
        FluoroscopyParams(dose_photons_per_px=dose),
        CArmParams(size_px=(size, size), isocentre_mm=ISO, lao_deg=lao, cranial_deg=cranial),
        body,
        seed=seed,
    )
    r.set_anatomy(demo_vessels() if vessels is None else vessels, demo_valve() if vessels is None else None)
    return r


def _project(frame, point):
    hom = frame.projection @ np.r_[np.asarray(point, float), 1.0]
    return hom[:2] / hom[2]


def test_same_seed_same_frames_and_different_seed_differs():
    wire = demo_wire(0.9)
    frames = []
    for seed in (3, 3, 4):
        r = _renderer(seed=seed)
        f1 = r.render([wire])
        f2 = r.render([wire], contrast=0.7, roi=(20, 90, 30, 100))
        frames.append((f1, f2))
    (a1, a2), (b1, b2), (c1, _) = frames
    assert np.array_equal(a1.image, b1.image) and np.array_equal(a1.counts, b1.counts)
    assert np.array_equal(a2.image, b2.image) and np.array_equal(a2.counts, b2.counts)
    assert np.array_equal(a1.instrument_mask, b1.instrument_mask)
    assert not np.array_equal(a1.image, c1.image)


def test_instrument_pixels_darker_than_background():
    wire = demo_wire(0.9)
    r = _renderer(size=256)
    with_wire = r.render([wire])
    without = r.render([])
    m = with_wire.instrument_mask
    assert m.sum() > 100
    assert not without.instrument_mask.any()
    # the same pixels, with and without the wire: the wire attenuates (fewer photons, darker display)
    assert with_wire.counts[m].mean() < 0.85 * without.counts[m].mean()
    assert with_wire.image[m].astype(float).mean() < without.image[m].astype(float).mean() - 10.0
    # and darker than the background right beside it
    ring = np.zeros_like(m)
    ys, xs = np.nonzero(m)
    ring[np.clip(ys + 4, 0, 255), xs] = True
    ring &= ~m
    assert with_wire.image[m].astype(float).mean() < with_wire.image[ring].astype(float).mean()


@pytest.mark.parametrize("lao,cranial", [(0.0, 0.0), (35.0, 20.0), (-40.0, -25.0)])
def test_projection_matrix_maps_3d_points_onto_rendered_features(lao, cranial):
    point = np.array([30.0, 20.0, 45.0])
    # a small contrast-filled sphere (a tube of two coincident nodes): its DSA centroid must be P . X
    bead = VesselTube("bead", np.array([point, point + [0.0, 0.0, 1e-3]]), np.array([2.0, 2.0]))
    body = BodyParams(bone_excess_mu_per_mm=0.0, rib_excess_mu_per_mm=0.0)
    r = _renderer(size=256, lao=lao, cranial=cranial, dose=1.0e8, body=body, vessels=[bead])
    mask_frame = r.render([])
    live = r.render([], contrast=1.0)
    dsa = r.dsa(live, mask_frame)
    uv = _project(live, point)
    c, rr = int(round(uv[0])), int(round(uv[1]))
    win = dsa[rr - 12 : rr + 13, c - 12 : c + 13].astype(float)
    win = np.where(win > 0.2 * win.max(), win, 0.0)
    yy, xx = np.mgrid[rr - 12 : rr + 13, c - 12 : c + 13]
    centroid = np.array([(xx * win).sum(), (yy * win).sum()]) / win.sum()
    assert np.linalg.norm(centroid - uv) < 0.5

    # a short rod ending at the tip: the keypoint is P . tip, on the mask, and the rod's
    # attenuation centroid is P . (its midpoint)
    tip = point + [0.0, 5.0, 0.0]
    rod = RadiopaqueRod(np.array([tip - [8.0, 0.0, 2.0], tip]), outer_diameter_mm=1.5, attenuation_per_mm=1.0)
    base = r.render([])
    f = r.render([rod])
    assert f.tip_px.shape == (1, 2)
    assert np.linalg.norm(f.tip_px[0] - _project(f, tip)) < 1e-9
    ys, xs = np.nonzero(f.instrument_mask)
    d = np.hypot(xs - f.tip_px[0, 0], ys - f.tip_px[0, 1])
    assert d.min() < 0.75
    att = np.log(np.maximum(base.counts, 1.0)) - np.log(np.maximum(f.counts, 1.0))
    att = np.where(f.instrument_mask, att, 0.0)
    yy, xx = np.mgrid[0:256, 0:256]
    centroid = np.array([(xx * att).sum(), (yy * att).sum()]) / att.sum()
    assert np.linalg.norm(centroid - _project(f, tip - [4.0, 0.0, 1.0])) < 0.5


def test_more_dose_less_noise_on_a_flat_region():
    body = BodyParams(bone_excess_mu_per_mm=0.0, rib_excess_mu_per_mm=0.0)
    rel = []
    for dose in (1.0e3, 1.0e5):
        r = _renderer(size=128, dose=dose, body=body, vessels=[])
        f = r.render([])
        patch = f.counts[54:74, 54:74] / dose
        rel.append(float(patch.std() / patch.mean()))
    # Poisson: relative noise falls as 1/sqrt(dose) -> 100x the dose, ~10x less
    assert rel[1] < 0.2 * rel[0]
    assert 0.05 < rel[1] / rel[0] < 0.2


def test_dsa_removes_the_static_background():
    r = _renderer(size=256, dose=2.0e5)
    mask_frame = r.render([])
    live = r.render([], contrast=1.0)
    dsa = r.dsa(live, mask_frame)
    vessels = live.vessel_mask
    assert vessels.any()
    far = ~vessels
    # away from the vessels only noise is left: zero mean, small spread
    assert abs(float(dsa[far].mean())) < 0.01
    assert float(dsa[far].std()) < 0.1
    # the raw frames carry the bones and the trunk (far more structure than the DSA background)
    assert float(np.log(mask_frame.counts[far]).std()) > 5 * float(dsa[far].std())
    # the contrast-filled aorta stands out
    assert float(dsa[vessels].mean()) > 0.3
    # a per-vessel concentration: contrast only where the bolus is
    names = [t.name for t in demo_vessels()]
    only_aorta = tuple(1.0 if n == "aorta" else 0.0 for n in names)
    live2 = r.render([], contrast=only_aorta)
    assert live2.contrast == only_aorta


def test_collimation_holds_the_outside_and_cuts_the_dose():
    r = _renderer(size=128)
    full = r.render([demo_wire(0.8)])
    total_after_full = r.total_dose_area_product
    roi = (30, 90, 40, 100)
    col = r.render([demo_wire(0.9)], roi=roi)
    outside = np.ones((128, 128), bool)
    outside[30:90, 40:100] = False
    assert np.array_equal(col.image[outside], full.image[outside])
    assert np.array_equal(col.counts[outside], full.counts[outside])
    assert not np.array_equal(col.image[~outside], full.image[~outside])
    assert col.roi == roi and full.roi == (0, 128, 0, 128)
    assert col.dose_area_product == pytest.approx(full.dose_area_product * (60 * 60) / (128 * 128))
    assert r.total_dose_area_product == pytest.approx(total_after_full + col.dose_area_product)
    # a later full frame replaces what is held
    full2 = r.render([demo_wire(0.9)])
    col2 = r.render([demo_wire(0.9)], roi=roi)
    assert np.array_equal(col2.image[outside], full2.image[outside])


def test_first_frame_of_a_pose_is_full_field():
    r = _renderer(size=64)
    f = r.render([], roi=(10, 20, 10, 20))
    assert f.roi == (0, 64, 0, 64)
    r.set_pose(lao_deg=30.0)
    g = r.render([], roi=(10, 20, 10, 20))
    assert g.roi == (0, 64, 0, 64)
    assert r.render([], roi=(10, 20, 10, 20)).roi == (10, 20, 10, 20)


@pytest.mark.parametrize(
    "make,name,rng",
    [
        (lambda: CArmParams(lao_deg=130.0), "lao_deg", "[-120.0, 120.0]"),
        (lambda: CArmParams(cranial_deg=-55.0), "cranial_deg", "[-50.0, 50.0]"),
        (lambda: CArmParams(size_px=(0, 512)), "size_px", "[1, 4096]"),
        (lambda: CArmParams(size_px=(256, -3)), "size_px", "[1, 4096]"),
        (lambda: FluoroscopyParams(dose_photons_per_px=-5.0), "dose_photons_per_px", "[1.0, 100000000.0]"),
    ],
)
def test_bad_parameters_raise_one_clear_error(make, name, rng):
    with pytest.raises(ConfigError) as exc:
        make()
    assert name in str(exc.value) and rng in str(exc.value)


def test_bad_pose_contrast_and_roi():
    r = _renderer(size=64)
    with pytest.raises(ConfigError, match=r"cranial_deg.*\[-50.0, 50.0\]"):
        r.set_pose(cranial_deg=60.0)
    with pytest.raises(ConfigError, match=r"contrast.*\[0.0, 1.0\]"):
        r.render([], contrast=1.5)
    with pytest.raises(ConfigError, match="one concentration per vessel"):
        r.render([], contrast=(0.5,))
    r.render([])
    with pytest.raises(ConfigError, match="roi"):
        r.render([], roi=(10, 5, 0, 10))


def test_yaml_config_loads_and_names_bad_fields(tmp_path):
    cfg = load_imaging_config("config/catheter_imaging.yaml")
    assert isinstance(cfg, ImagingConfig)
    assert cfg.carm.isocentre_mm == ISO and cfg.tip_camera.size_px == 128
    fluoro, tip = renderers_from_config(cfg, seed=2)
    assert fluoro.carm == cfg.carm and fluoro.params == cfg.fluoroscopy and tip.params == cfg.tip_camera
    bad = tmp_path / "bad.yaml"
    bad.write_text("carm:\n  lao_deg: 200\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*carm.lao_deg.*-120"):
        load_imaging_config(bad)


def test_wire_inside_a_catheter_attenuates_more_than_either():
    r = _renderer(size=128, dose=1.0e7)
    path = demo_wire(0.9).points_mm
    wire = RadiopaqueRod(path, outer_diameter_mm=0.89, attenuation_per_mm=0.6)
    catheter = RadiopaqueRod(path[:-10], outer_diameter_mm=1.67, attenuation_per_mm=0.2)
    both = r.render([wire, catheter])
    only_wire = r.render([wire])
    only_cath = r.render([catheter])
    m = only_wire.instrument_mask & only_cath.instrument_mask
    assert m.sum() > 20
    assert np.array_equal(both.instrument_mask, only_wire.instrument_mask | only_cath.instrument_mask)
    assert both.counts[m].mean() < 0.98 * min(only_wire.counts[m].mean(), only_cath.counts[m].mean())
    assert both.tip_px.shape == (2, 2)


def test_contrast_bolus_rises_peaks_and_washes_out():
    arrival = (0.0, 1.0)
    assert contrast_bolus(-0.5, arrival) == (0.0, 0.0)
    assert contrast_bolus(1.0, arrival)[0] == pytest.approx(1.0)
    assert contrast_bolus(1.0, arrival)[1] == 0.0
    assert 0.0 < contrast_bolus(4.0, arrival)[0] < 0.2
