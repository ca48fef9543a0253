"""Artery or vein from the pulse over a clip (VesselKindTracker) and the clip generator behind its benchmark."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ir_robot.core.results import UsResult, VesselDetection
from ir_robot.perception.datasets import iter_us_clips
from ir_robot.perception.inference import GroundTruthPerception
from ir_robot.perception.temporal import VesselKindTracker

SP = (30 / 256, 30 / 256)


def _vessel(kind, centre_mm, area_mm2, width_mm=3.0):
    px = area_mm2 / (SP[0] * SP[1])
    return VesselDetection(
        kind,
        (centre_mm[1] / SP[0], 128 + centre_mm[0] / SP[1]),
        centre_mm,
        2 * math.sqrt(area_mm2 / math.pi),
        centre_mm[1],
        int(round(px)),
        0.9,
        False,
        width_mm,
        width_mm,
    )


def _run(tracker, n=25, rate=10.0, noise=0.01, seed=0):
    """A pulsing 'vein' (the segmenter's wrong call: an artery) beside a still 'artery' (a vein)."""
    rng = np.random.default_rng(seed)
    res = None
    for k in range(n):
        t = k / rate
        pulsing = 7.0 * (1 + 0.12 * math.sin(2 * math.pi * 1.2 * t)) * (1 + rng.normal(0, noise))
        still = 5.0 * (1 + rng.normal(0, noise))
        drift = 0.05 * k  # the phantom drifts 0.5 mm/s sideways: tracks follow it
        res = tracker.update(
            UsResult(
                None, SP, (_vessel("vein", (-4.0 + drift, 8.0), pulsing), _vessel("artery", (5.0 + drift, 6.0), still))
            ),
            t,
        )
    return res


def test_the_pulse_overrides_the_single_frame_vote():
    res = _run(VesselKindTracker())
    assert [v.kind for v in res.vessels] == ["artery", "vein"]


def test_too_short_a_clip_keeps_the_segmenters_vote():
    res = _run(VesselKindTracker(), n=8)  # 0.7 s: no verdict yet
    assert [v.kind for v in res.vessels] == ["vein", "artery"]


@pytest.mark.parametrize("seed", range(5))
def test_segmentation_noise_is_not_taken_for_a_pulse(seed):
    """A still vein whose measured area jitters by 15 % from frame to frame stays a vein."""
    rng = np.random.default_rng(seed)
    tr = VesselKindTracker()
    for k in range(25):
        res = tr.update(UsResult(None, SP, (_vessel("vein", (0.0, 7.0), 6.0 * (1 + rng.normal(0, 0.15))),)), k / 10)
    assert res.vessels[0].kind == "vein"


def test_reset_and_bad_stamps():
    tr = VesselKindTracker()
    _run(tr)
    with pytest.raises(ValueError, match="stamps must increase"):
        tr.update(UsResult(None, SP), 0.0)
    tr.reset()
    assert tr.update(UsResult(None, SP), 0.0).vessels == ()
    with pytest.raises(ValueError):
        VesselKindTracker(window_s=0.0)


def test_simulated_clips_show_arteries_pulsing_and_veins_still():
    """On rendered clips, ground-truth masks through the tracker: every vessel followed long enough gets its
    true kind from its pulse, even with the wrong vote fed in."""
    clips = list(iter_us_clips(4, 11, "val", frames=20, rate_hz=10.0))
    assert len(clips) == 4 and all(len(c) == 20 for c in clips)
    assert all(c[k + 1].stamp_s - c[k].stamp_s == pytest.approx(0.1) for c in clips for k in range(19))
    gt = GroundTruthPerception()
    checked = 0
    for clip in clips:
        tr = VesselKindTracker()
        for f in clip:
            res = gt.predict(f)
            flipped = UsResult(
                res.mask,
                res.spacing_mm,
                tuple(
                    v.__class__(**{**v.__dict__, "kind": "vein" if v.kind == "artery" else "artery"})
                    for v in res.vessels
                ),
            )
            out = tr.update(flipped, f.stamp_s)
        truth = {tuple(np.round(c)): k for c, k in zip(clip[-1].vessel_centres_px, clip[-1].vessel_kinds, strict=True)}
        for v in out.vessels:
            near = [k for c, k in truth.items() if math.hypot(c[0] - v.centre_px[0], c[1] - v.centre_px[1]) < 5]
            if near and not v.band:
                checked += 1
                assert v.kind == near[0], (v, near)
    assert checked >= 4
