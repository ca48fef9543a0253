"""The artery check in the loop: perception that calls an artery a vein must not get it punctured.

Ground-truth perception with the classes deliberately wrong; the controller's pulsatility dwell
(ALIGN, before the first insertion) must find the artery pulsating, reject it and go on to a real
vein, or abort when no vein is left. Ground truth is read only for scoring.
"""

import dataclasses

from ir_robot.control.venipuncture import Phase
from ir_robot.core.types import LABEL_ARTERY, LABEL_VEIN
from ir_robot.evaluation.episode import run_episode

SEED = 5002  # small-vein phantom whose artery (2.5 mm) outranks its 1-2 mm veins once it is called a vein
SMALL = (1.0, 2.0)


class Relabel:
    """Wraps a perception; every ultrasound vessel gets ``kinds[true kind]`` (mask relabelled too)."""

    def __init__(self, inner, kinds):
        self.inner, self.kinds = inner, kinds

    def predict(self, frame, spacing_mm=None):
        r = self.inner.predict(frame)
        if frame.modality != "us":
            return r
        mask = r.mask.copy()
        art, vein = r.mask == LABEL_ARTERY, r.mask == LABEL_VEIN
        mask[art] = LABEL_ARTERY if self.kinds["artery"] == "artery" else LABEL_VEIN
        mask[vein] = LABEL_ARTERY if self.kinds["vein"] == "artery" else LABEL_VEIN
        return dataclasses.replace(
            r, mask=mask, vessels=tuple(dataclasses.replace(v, kind=self.kinds[v.kind]) for v in r.vessels)
        )


def _artery_events(r):
    return [m for _, m in r.extra["outcome"].events if "artery check" in m or "pulsates" in m]


def test_an_artery_called_a_vein_is_not_punctured_and_the_next_vein_is_used(cfg, gt, world):
    us, nir = gt
    r = run_episode(
        SEED, cfg, Relabel(us, {"artery": "vein", "vein": "vein"}), nir, world=world, vein_diameter_mm=SMALL
    )
    assert not r.artery_punctured and not r.back_wall_punctured and not r.safety_trip
    events = _artery_events(r)
    # the classifier's favourite was the (mislabelled) artery: the check found it pulsating and rejected it
    assert events[0].startswith("artery check of vessel 0: artery: area swing"), events
    assert "align -> select: vessel 0 pulsates: an artery, not punctured" in events[1]
    assert "vein: area swing" in events[2]  # the next candidate does not pulsate
    out = r.extra["outcome"]
    assert [(a, b) for _, a, b, _ in out.transitions][:4] == [
        ("scan", "select"),
        ("select", "align"),
        ("align", "select"),
        ("select", "align"),
    ]
    assert any("vessel 0 (artery" in c and "artery (rejected)" in c for c in out.candidates)
    assert r.target_kind == "vein" and r.success, r.reason
    assert r.duration_s <= 60.0


def test_with_every_class_swapped_it_rejects_the_only_vein_candidate_and_never_inserts(cfg, gt, world):
    us, nir = gt
    inserted = []

    def hook(state, obs, cmd, ctl):
        if state.joints.insert_mm > 0.5:
            inserted.append(ctl.phase)

    r = run_episode(
        SEED,
        cfg,
        Relabel(us, {"artery": "vein", "vein": "artery"}),
        nir,
        world=world,
        vein_diameter_mm=SMALL,
        on_tick=hook,
    )
    assert not r.success and not r.artery_punctured and not inserted
    assert r.extra["controller"].phase == Phase.FAILED
    assert r.reason.startswith("no suitable vein"), r.reason
    assert "pulsates: an artery" in " ".join(_artery_events(r))


def _uncertain_calls(monkeypatch):
    """Every fused vein comes out of the scan with an uncertain call (55 % of the votes): the
    segmenter could not tell."""
    import ir_robot.control.venipuncture.scan as vp

    real = vp.fuse_scan

    def fuse(*args, **kwargs):
        vessels, unmatched = real(*args, **kwargs)
        return tuple(
            dataclasses.replace(v, kind_confidence=0.55) if v.kind == "vein" else v for v in vessels
        ), unmatched

    monkeypatch.setattr(vp, "fuse_scan", fuse)


def test_an_uncertain_vein_is_punctured_once_its_pulse_is_found_absent(cfg, gt, world, monkeypatch):
    _uncertain_calls(monkeypatch)
    us, nir = gt
    r = run_episode(SEED, cfg, us, nir, world=world, vein_diameter_mm=SMALL)
    out = r.extra["outcome"]
    assert any("a target only if its pulse is found absent" in c for c in out.candidates), out.candidates
    events = _artery_events(r)
    assert events and "vein: area swing" in events[0], events  # the dwell found no pulse: a vein
    assert r.target_kind == "vein" and r.success, r.reason
    assert not r.artery_punctured and not r.back_wall_punctured


def test_an_uncertain_call_on_an_artery_is_settled_by_its_pulse(cfg, gt, world, monkeypatch):
    # the artery, called a vein but uncertain (the largest vessel, so the first candidate), pulsates:
    # rejected, then an uncertain vein without a pulse
    _uncertain_calls(monkeypatch)
    us, nir = gt
    r = run_episode(
        SEED, cfg, Relabel(us, {"artery": "vein", "vein": "vein"}), nir, world=world, vein_diameter_mm=SMALL
    )
    events = _artery_events(r)
    assert "artery: area swing" in events[0] and "pulsates: an artery, not punctured" in events[1], events
    assert r.target_kind == "vein" and r.success, r.reason
    assert not r.artery_punctured


def test_an_uncertain_call_without_a_vein_verdict_is_never_punctured(cfg, gt, world, monkeypatch):
    import ir_robot.control.venipuncture.artery as vp
    from ir_robot.planning.pulsatility import UNKNOWN, PulsatilityResult

    _uncertain_calls(monkeypatch)
    monkeypatch.setattr(
        vp,
        "assess_pulsatility",
        lambda series, params: PulsatilityResult(
            UNKNOWN, 0.04, 1.2, 0.5, 1.0, False, 3.0, len(series), series.duration_s, "weak swing (test)"
        ),
    )
    inserted = []

    def hook(state, obs, cmd, ctl):
        if state.joints.insert_mm > 0.5:
            inserted.append(ctl.phase)

    us, nir = gt
    r = run_episode(
        SEED,
        cfg,
        Relabel(us, {"artery": "vein", "vein": "vein"}),
        nir,
        world=world,
        vein_diameter_mm=SMALL,
        on_tick=hook,
    )
    assert not r.success and not inserted and not r.artery_punctured
    assert r.reason.startswith("no suitable vein") and "found no 'vein' verdict (unknown)" in r.reason, r.reason
    assert "uncertain vein/artery call and its pulse is not clearly absent (unknown)" in " ".join(
        m for _, m in r.extra["outcome"].events
    )
