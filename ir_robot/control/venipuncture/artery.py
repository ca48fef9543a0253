"""The artery check (pulsatility), part of ALIGN: before the first insertion into a vessel, dwell
over it recording its cross-section, and judge whether it pulsates.
"""

from __future__ import annotations

import math

from ir_robot.control.sensing import UsMeasurement
from ir_robot.control.venipuncture.context import Context
from ir_robot.control.venipuncture.phases import Phase
from ir_robot.control.venipuncture.scan import select
from ir_robot.planning.pulsatility import ARTERY, VEIN, CrossSectionSeries, PulsatilityError, assess_pulsatility


def pulse_sample(c: Context, m: UsMeasurement) -> None:
    """Record the size of the target's own cross-section in this frame (the one the tracker used)."""
    tr = c.tracker
    if c.sel.plan is None or tr.last_source != "target" or tr.frozen:
        return
    s = min(
        m.sections,
        key=lambda cs: math.hypot(cs.y_mm - tr.pos[0], cs.z_mm - tr.pos[1]),
        default=None,
    )
    if s is not None and s.area_mm2 > 0 and math.hypot(s.y_mm - tr.pos[0], s.z_mm - tr.pos[1]) < tr.params.gate_mm:
        c.artery.samples.setdefault(c.sel.plan.vessel_index, []).append((m.stamp_s, s.area_mm2, s.width_mm))


def reject_target(c: Context, why: str) -> None:
    """The artery check rules the target out: back to SELECT, which takes the next candidate."""
    c.tracker.locked = False
    c.align.lock_count = 0
    c.align.settled_since = None
    c.go(Phase.SELECT, why)
    select(c)


def artery_check(c: Context, t: float) -> bool:
    """True when the target may be punctured. Before the first insertion into a vessel, dwell until
    ``pulsatility.dwell_s`` of its cross-section is recorded and judge it
    (:func:`~ir_robot.planning.pulsatility.assess_pulsatility`): a pulsating vessel is an artery
    whatever the classifier said: go back to SELECT, which rejects it and takes the next candidate.
    No verdict within ``max_dwell_s`` (target rarely seen whole, unstable segmentation): the
    classifier's call stands (logged). A target whose call was uncertain (``needs_pulse``) is
    punctured only on a "vein" verdict; anything else sends it back to SELECT too.
    """
    pp = c.cfg.pulsatility
    a = c.artery
    idx = c.sel.the_plan().vessel_index
    if not pp.enabled or idx in a.verdicts:
        return True
    samples = a.samples.get(idx, [])
    since = min(a.since.setdefault(idx, t), samples[0][0] if samples else t)
    span = samples[-1][0] - samples[0][0] if samples else 0.0
    waited = t - since
    if span < pp.dwell_s - 1e-6 and waited < pp.max_dwell_s:
        return False
    try:
        res = assess_pulsatility(
            CrossSectionSeries.from_samples(*zip(*samples, strict=False))
            if samples
            else CrossSectionSeries.from_samples([], []),
            pp,
        )
    except PulsatilityError as exc:
        if waited < pp.max_dwell_s:
            return False
        a.verdicts[idx] = "none"
        if a.needs_vein_verdict:
            c.event(f"artery check of vessel {idx}: no verdict after {waited:.1f} s ({exc})")
            reject_target(c, f"vessel {idx}: uncertain vein/artery call and no verdict on its pulse: not punctured")
            return False
        c.event(
            f"artery check of vessel {idx}: no verdict after {waited:.1f} s ({exc}); the classifier's vein call stands"
        )
        return True
    a.verdicts[idx] = res.verdict
    c.event(f"artery check of vessel {idx}: {res.describe()}")
    if res.verdict == ARTERY:
        reject_target(c, f"vessel {idx} pulsates: an artery, not punctured")
        return False
    if a.needs_vein_verdict and res.verdict != VEIN:
        reject_target(
            c,
            f"vessel {idx}: uncertain vein/artery call and its pulse is not clearly absent "
            f"({res.verdict}): not punctured",
        )
        return False
    return True
