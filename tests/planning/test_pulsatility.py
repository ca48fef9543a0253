"""The classifier-independent artery check: the pulsatility index on synthetic series, its errors,
and the verdict on simulated ultrasound frames over an artery and a vein (ground-truth perception)."""

import math

import numpy as np
import pytest

from ir_robot.planning.pulsatility import (
    ARTERY,
    UNKNOWN,
    VEIN,
    CrossSectionSeries,
    PulsatilityError,
    PulsatilityParams,
    assess_pulsatility,
    pulse_fit,
)

P = PulsatilityParams()


def series(area, t=None, width=None):
    t = 0.1 * np.arange(len(area)) if t is None else t
    return CrossSectionSeries.from_samples(t, area, width)


def radius_series(pulsation, hz=1.2, n=21, r0=1.5, dt=0.1, drift=0.0, noise=0.0, seed=0, t=None):
    """Lumen area of a circle whose radius swings by the fraction ``pulsation`` (the simulator's model)."""
    t = dt * np.arange(n) if t is None else t
    r = r0 * (1 + pulsation * np.sin(2 * math.pi * hz * t + 0.3)) + drift * t
    a = math.pi * r * r
    a = a * (1 + noise * np.random.default_rng(seed).standard_normal(len(t)))
    return t, a, 2 * r


@pytest.mark.parametrize("pulsation,hz", [(0.04, 0.8), (0.07, 1.2), (0.10, 1.6)])
def test_a_pulsating_cross_section_is_an_artery(pulsation, hz):
    t, a, w = radius_series(pulsation, hz)
    r = assess_pulsatility(series(a, t, w), P)
    assert r.verdict == ARTERY, r.describe()
    assert r.index == pytest.approx(2 * pulsation, rel=0.15)  # area swings twice the radius
    assert r.frequency_hz == pytest.approx(hz, abs=0.1)
    assert r.band_fraction > 0.95
    assert r.aspect == pytest.approx(1.0, abs=0.02) and not r.compressed
    assert "pulsatile" in r.describe()


def test_a_flat_cross_section_is_a_vein_and_its_compression_is_reported():
    t, a, w = radius_series(0.0)
    r = assess_pulsatility(series(a * 0.8, t, w), P)  # an ellipse with axis ratio 0.8
    assert r.verdict == VEIN and r.index < 1e-9
    assert r.aspect == pytest.approx(0.8, abs=0.01) and r.compressed
    assert "no pulse" in r.describe() and "compressed" in r.describe()


def test_slow_drift_is_not_a_pulse():
    # the image plane sliding along a vessel (arm motion): a slow trend, removed with the line
    t, a, w = radius_series(0.0, drift=0.05)
    assert assess_pulsatility(series(a, t, w), P).verdict == VEIN


@pytest.mark.parametrize("sway_hz", [0.3, 0.45, 0.5])
def test_the_arm_sway_is_not_a_pulse(sway_hz):
    # the sway (0.05-0.5 Hz) slides the image plane along a sloped vein, whose area then swings by
    # 10 % at the sway's frequency: less than one cycle in a 2 s dwell, which a sinusoid at the edge
    # of a band reaching down to 0.5 Hz fitted as a coherent "pulse" (a vein called an artery)
    for phase in np.linspace(0, 2 * math.pi, 8, endpoint=False):
        t = 0.1 * np.arange(21)
        a = 7.0 * (1 + 0.1 * np.sin(2 * math.pi * sway_hz * t + phase))
        r = assess_pulsatility(series(a, t), P)
        assert r.verdict != ARTERY, (phase, r.describe())


def test_noise_is_not_called_a_pulse():
    # segmentation noise (3 % per frame, white): never an artery; mostly below the vein threshold
    verdicts = [assess_pulsatility(series(radius_series(0.0, noise=0.03, seed=s)[1]), P).verdict for s in range(40)]
    assert ARTERY not in verdicts
    assert verdicts.count(VEIN) >= 20
    # large incoherent noise (15 %): no verdict either way rather than a wrong one
    verdicts = [assess_pulsatility(series(radius_series(0.0, noise=0.15, seed=s)[1]), P).verdict for s in range(40)]
    assert set(verdicts) == {UNKNOWN}
    # a real pulse under the same 3 % noise is still found
    for s in range(10):
        assert assess_pulsatility(series(radius_series(0.05, noise=0.03, seed=s)[1]), P).verdict == ARTERY


def test_irregular_stamps_are_handled_and_outlier_frames_left_out():
    rng = np.random.default_rng(1)
    t = 0.1 * np.arange(21) + rng.uniform(-0.03, 0.03, 21)
    _, a, _ = radius_series(0.06, t=t)
    assert assess_pulsatility(series(a, t), P).verdict == ARTERY
    a2 = a.copy()
    a2[[4, 13]] *= 1.8  # the segmenter merged it with a shadow twice
    r = assess_pulsatility(series(a2, t), P)
    assert r.verdict == ARTERY and r.n_samples == 19 and "2 outlier" in r.reason
    a3 = a.copy()
    a3[::3] *= 0.4  # every third frame lost half the lumen
    with pytest.raises(PulsatilityError, match="unstable segmentation"):
        assess_pulsatility(series(a3, t), P)


def test_weak_swing_is_unknown():
    t, a, _ = radius_series(0.018)  # 3.6 % area swing: between the thresholds
    assert assess_pulsatility(series(a, t), P).verdict == UNKNOWN


@pytest.mark.parametrize(
    "t,area,match",
    [
        (0.1 * np.arange(5), np.ones(5), "too short: 5 frame"),
        (0.1 * np.arange(12), np.ones(12), "too short: the frames span 1.10 s"),
        (np.r_[0.1 * np.arange(10), 1.6 + 0.1 * np.arange(10)], np.ones(20), "irregular: a gap of 0.70 s"),
        (0.3 * np.arange(20), np.ones(20), "sampled too slowly"),
        (np.r_[0.1 * np.arange(10), 0.9, 1.0 + 0.1 * np.arange(10)], np.ones(21), "not strictly increasing"),
        (0.1 * np.arange(20), np.r_[np.ones(19), 0.0], "non-positive area"),
        (0.1 * np.arange(20), np.r_[np.ones(19), np.nan], "non-finite"),
    ],
)
def test_series_that_cannot_be_assessed_raise_clear_errors(t, area, match):
    with pytest.raises(PulsatilityError, match=match):
        assess_pulsatility(series(area, t), P)


def test_bad_inputs_and_params_are_refused():
    with pytest.raises(PulsatilityError, match="lengths differ"):
        CrossSectionSeries.from_samples([0.0, 0.1], [1.0])
    with pytest.raises(ValueError, match="band_hz"):
        PulsatilityParams(band_hz=(3.0, 0.5))
    with pytest.raises(ValueError, match="vein_index"):
        PulsatilityParams(vein_index=0.1, artery_index=0.05)
    assert pulse_fit(0.1 * np.arange(20), np.zeros(20), (0.5, 3.0))[0] == 0.0


# ---------------------------------------------------------------------------------- simulated frames


def test_verdict_on_simulated_frames_over_an_artery_and_a_vein():
    """Transverse frames at 10 Hz for 2 s over each vessel of a moving phantom, cross-sections from
    GroundTruthPerception placed by measure_us (the controller's path): artery pulsates, veins do not."""
    from ir_robot.control.sensing import measure_us
    from ir_robot.core.types import ProbePose
    from ir_robot.perception.inference import GroundTruthPerception
    from ir_robot.perception.postprocess import PostprocessParams
    from ir_robot.sim.phantom import MotionSpec, Phantom, PhantomSpec, VesselSpec, sample_phantom
    from ir_robot.sim.ultrasound import UltrasoundParams, UltrasoundRenderer

    base = sample_phantom(np.random.default_rng(3), n_vessels=2)
    vessels = (
        VesselSpec("artery", 3.0, 9.0, -6.0, pulsation=0.05, pulse_hz=0.9),  # weak, slow pulse
        VesselSpec("vein", 1.2, 4.0, 6.0, compression=0.8),
    )  # small, squashed
    spec = PhantomSpec(
        "pulse", base.block, base.layers, vessels, MotionSpec(True, (0.05, 0.05, 0.0), (1.5, 0.9, 0.3), 0.25, 0.4)
    )
    ph = Phantom(spec)
    ren = UltrasoundRenderer(UltrasoundParams(), seed=0)
    gt = GroundTruthPerception(PostprocessParams(min_vessel_area_mm2=0.25))
    rng = np.random.default_rng(0)
    for i, (kind, y) in enumerate((("artery", -6.0), ("vein", 6.0))):
        probe = ProbePose(5.0, y, math.pi / 2)
        t_s, area, width = [], [], []
        for t in 2.0 + 0.1 * np.arange(21):
            m = measure_us(ren.render(ph, probe, None, float(t), rng), gt)
            off = ph.offset_mm(t)
            yc, zc = ph.centreline(np.array(5.0 - off[0]))
            true = (float(yc[i]) + off[1], float(zc[i]) + off[2])
            s = min(m.sections, key=lambda c: math.hypot(c.y_mm - true[0], c.z_mm - true[1]))
            assert math.hypot(s.y_mm - true[0], s.z_mm - true[1]) < 0.5 and s.area_mm2 > 0
            t_s.append(t), area.append(s.area_mm2), width.append(s.width_mm)
        r = assess_pulsatility(CrossSectionSeries.from_samples(t_s, area, width), P)
        assert r.verdict == kind, r.describe()
        if kind == "artery":
            assert r.frequency_hz == pytest.approx(0.9, abs=0.2) and r.index > 0.07
        else:
            assert r.index < 0.02 and r.compressed
