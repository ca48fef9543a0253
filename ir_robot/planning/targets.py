"""Target vein selection (Chen et al. 2020): reject arteries, then diameter, depth and
straight-length criteria, then rank what is left.

A vein whose vein/artery call is uncertain (``kind_confidence`` below ``min_kind_confidence``)
is rejected, unless the caller can check it for a pulse first (``pulse_check=True``: the
controller's artery check) and ``uncertain_needs_pulse`` is on: it is then a candidate that
``needs_pulse`` (ranked after every sure vein), to be punctured only on a "vein" verdict, the
way a sonographer settles an unsure call by watching the vessel for a pulse.

Every vessel gets a :class:`Candidate` with either a score (accepted) or the reasons it
was rejected, so a failed selection can say exactly why ("vessel 2: artery; vessel 0:
diameter 0.7 mm below 0.9 mm").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir_robot.config import param
from ir_robot.planning.pulsatility import VEIN
from ir_robot.planning.vessels import VesselEstimate


@dataclass(frozen=True)
class TargetCriteria:
    """What makes a vessel a target (Chen et al. 2020: vein, size, depth, straight length, away from
    arteries) and the weights that rank the veins that pass.
    """

    min_diameter_mm: float = param(0.9, range=(0.1, 20.0), unit="mm", help="smallest lateral lumen diameter")
    max_diameter_mm: float = param(10.0, range=(0.5, 30.0), unit="mm")
    min_depth_mm: float = param(1.5, range=(0.0, 50.0), unit="mm", help="shallowest centre depth below the skin")
    max_depth_mm: float = param(14.0, range=(0.5, 60.0), unit="mm", help="deepest centre depth below the skin")
    min_straight_length_mm: float = param(
        6.0, range=(0.0, 100.0), unit="mm", help="the vein must stay straight over this length"
    )
    min_kind_confidence: float = param(
        0.6, range=(0.0, 1.0), help="fraction of ultrasound views that must call it a vein"
    )
    uncertain_needs_pulse: bool = param(
        True,
        help="an uncertain vein/artery call may still be the target if the "
        "artery check then finds no pulse (a 'vein' verdict)",
    )
    min_artery_clearance_mm: float = param(
        1.0, range=(0.0, 50.0), unit="mm", help="lateral gap (lumen edge to lumen edge) to the nearest artery"
    )
    weight_diameter: float = param(1.0, range=(0.0, 100.0), help="score per mm of diameter")
    weight_depth: float = param(0.15, range=(0.0, 100.0), help="score penalty per mm of depth")
    weight_length: float = param(0.03, range=(0.0, 100.0), help="score per mm of straight length (up to 20 mm)")
    weight_nir: float = param(0.2, range=(0.0, 100.0), help="bonus when NIR sees the vein too")


@dataclass(frozen=True)
class Candidate:
    """One vessel judged by :func:`rank_targets`: accepted with its score, or rejected with the reasons."""

    index: int
    vessel: VesselEstimate
    accepted: bool
    score: float
    reasons: tuple[str, ...] = ()
    needs_pulse: bool = False  # uncertain vein/artery call: a target only after a "vein" verdict of its pulse

    def describe(self) -> str:
        """The vessel and its verdict in one line (score, or why it was rejected), for the event log."""
        v = self.vessel
        head = (
            f"vessel {self.index} ({v.kind}, {v.diameter_mm:.2f} mm wide, {float(v.depth_at(v.mid_x_mm)):.2f} mm deep)"
        )
        if not self.accepted:
            return head + ": " + "; ".join(self.reasons)
        pulse = (
            f" (vein/artery call uncertain, {v.kind_confidence:.2f}: a target only if its pulse is found absent)"
            if self.needs_pulse
            else ""
        )
        return head + f": score {self.score:.2f}" + pulse


def _artery_gap(v: VesselEstimate, arteries: list[VesselEstimate]) -> float:
    """Smallest lateral lumen-edge gap between ``v`` and any artery over v's observed extent."""
    if not arteries:
        return float("inf")
    xs = np.linspace(v.x_range_mm[0], v.x_range_mm[1], 9)
    gaps = [np.min(np.abs(v.y_at(xs) - a.y_at(xs))) - (v.diameter_mm + a.diameter_mm) / 2 for a in arteries]
    return float(min(gaps))


def rank_targets(
    vessels: tuple[VesselEstimate, ...] | list[VesselEstimate],
    criteria: TargetCriteria = TargetCriteria(),
    *,
    pulse_check: bool = False,
    pulse_verdicts: dict[int, str] | None = None,
) -> list[Candidate]:
    """All vessels as candidates: accepted ones best first (sure veins before those that ``needs_pulse``),
    then the rejected ones. ``pulse_check``: the caller checks every target for a pulse before
    puncturing it, so an uncertain call may be a candidate (module docstring). ``pulse_verdicts``:
    vessel index -> the verdict of its pulse check so far; an uncertain call whose check said anything
    but "vein" is rejected.
    """
    verdicts = pulse_verdicts or {}
    arteries = [v for v in vessels if v.kind == "artery"]
    out: list[Candidate] = []
    c = criteria
    for i, v in enumerate(vessels):
        reasons = []
        needs_pulse = False
        depth = float(v.depth_at(v.mid_x_mm))
        if v.kind != "vein":
            reasons.append("artery (rejected)")
        elif v.kind_confidence < c.min_kind_confidence:
            if not (pulse_check and c.uncertain_needs_pulse):
                reasons.append(f"vein/artery call uncertain ({v.kind_confidence:.2f} < {c.min_kind_confidence})")
            elif verdicts.get(i, VEIN) != VEIN:
                reasons.append(
                    f"vein/artery call uncertain ({v.kind_confidence:.2f}) and its artery check found "
                    f"no 'vein' verdict ({verdicts[i]})"
                )
            else:
                needs_pulse = True
        if v.diameter_mm < c.min_diameter_mm:
            reasons.append(f"diameter {v.diameter_mm:.2f} mm below {c.min_diameter_mm} mm")
        if v.diameter_mm > c.max_diameter_mm:
            reasons.append(f"diameter {v.diameter_mm:.2f} mm above {c.max_diameter_mm} mm")
        if depth < c.min_depth_mm:
            reasons.append(f"depth {depth:.2f} mm shallower than {c.min_depth_mm} mm")
        if depth > c.max_depth_mm:
            reasons.append(f"depth {depth:.2f} mm deeper than {c.max_depth_mm} mm")
        if v.straight_length_mm < c.min_straight_length_mm:
            reasons.append(f"straight length {v.straight_length_mm:.1f} mm below {c.min_straight_length_mm} mm")
        if v.kind == "vein":
            gap = _artery_gap(v, arteries)
            if gap < c.min_artery_clearance_mm:
                reasons.append(f"{gap:.1f} mm from an artery (need {c.min_artery_clearance_mm} mm)")
        score = (
            c.weight_diameter * v.diameter_mm
            - c.weight_depth * depth
            + c.weight_length * min(v.straight_length_mm, 20.0)
            + (c.weight_nir if v.nir_linked else 0.0)
        )
        out.append(Candidate(i, v, not reasons, float(score), tuple(reasons), needs_pulse and not reasons))
    out.sort(key=lambda cand: (not cand.accepted, cand.needs_pulse, -cand.score))
    return out
