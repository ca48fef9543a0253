"""Target vein selection (Chen et al. 2020): reject arteries, then diameter, depth and
straight-length criteria, then rank what is left.

Every vessel gets a :class:`Candidate` with either a score (accepted) or the reasons it
was rejected, so a failed selection can say exactly why ("vessel 2: artery; vessel 0:
diameter 0.7 mm below 0.9 mm").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir_robot.config import param
from ir_robot.planning.vessels import VesselEstimate


@dataclass(frozen=True)
class TargetCriteria:
    min_diameter_mm: float = param(0.9, range=(0.1, 20.0), unit="mm", help="smallest lateral lumen diameter")
    max_diameter_mm: float = param(10.0, range=(0.5, 30.0), unit="mm")
    min_depth_mm: float = param(1.5, range=(0.0, 50.0), unit="mm", help="shallowest centre depth below the skin")
    max_depth_mm: float = param(14.0, range=(0.5, 60.0), unit="mm", help="deepest centre depth below the skin")
    min_straight_length_mm: float = param(6.0, range=(0.0, 100.0), unit="mm",
                                          help="the vein must stay straight over this length")
    min_kind_confidence: float = param(0.6, range=(0.0, 1.0),
                                       help="fraction of ultrasound views that must call it a vein")
    min_artery_clearance_mm: float = param(1.0, range=(0.0, 50.0), unit="mm",
                                           help="lateral gap (lumen edge to lumen edge) to the nearest artery")
    weight_diameter: float = param(1.0, range=(0.0, 100.0), help="score per mm of diameter")
    weight_depth: float = param(0.15, range=(0.0, 100.0), help="score penalty per mm of depth")
    weight_length: float = param(0.03, range=(0.0, 100.0), help="score per mm of straight length (up to 20 mm)")
    weight_nir: float = param(0.2, range=(0.0, 100.0), help="bonus when NIR sees the vein too")


@dataclass(frozen=True)
class Candidate:
    index: int
    vessel: VesselEstimate
    accepted: bool
    score: float
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        v = self.vessel
        head = (f"vessel {self.index} ({v.kind}, {v.diameter_mm:.2f} mm wide, "
                f"{float(v.depth_at(v.mid_x_mm)):.2f} mm deep)")
        return head + (f": score {self.score:.2f}" if self.accepted else ": " + "; ".join(self.reasons))


def _artery_gap(v: VesselEstimate, arteries: list[VesselEstimate]) -> float:
    """Smallest lateral lumen-edge gap between ``v`` and any artery over v's observed extent."""
    if not arteries:
        return float("inf")
    xs = np.linspace(v.x_range_mm[0], v.x_range_mm[1], 9)
    gaps = [np.min(np.abs(v.y_at(xs) - a.y_at(xs))) - (v.diameter_mm + a.diameter_mm) / 2 for a in arteries]
    return float(min(gaps))


def rank_targets(vessels: tuple[VesselEstimate, ...] | list[VesselEstimate],
                 criteria: TargetCriteria = TargetCriteria()) -> list[Candidate]:
    """All vessels as candidates: accepted ones best first, then the rejected ones."""
    arteries = [v for v in vessels if v.kind == "artery"]
    out: list[Candidate] = []
    c = criteria
    for i, v in enumerate(vessels):
        reasons = []
        depth = float(v.depth_at(v.mid_x_mm))
        if v.kind != "vein":
            reasons.append("artery (rejected)")
        elif v.kind_confidence < c.min_kind_confidence:
            reasons.append(f"vein/artery call uncertain ({v.kind_confidence:.2f} < {c.min_kind_confidence})")
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
        score = (c.weight_diameter * v.diameter_mm - c.weight_depth * depth
                 + c.weight_length * min(v.straight_length_mm, 20.0) + (c.weight_nir if v.nir_linked else 0.0))
        out.append(Candidate(i, v, not reasons, float(score), tuple(reasons)))
    out.sort(key=lambda cand: (not cand.accepted, -cand.score))
    return out
