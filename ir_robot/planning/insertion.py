"""Insertion planning: the pivot, pitch and insertion depth that put the needle tip at the
lumen centre of the target vein while staying clear of every other vessel.

The rig's needle moves in the x-z plane through its pivot: the tip is at
``pivot + s * (cos p, 0, -sin p)``. The ultrasound probe rides ``probe_offset_mm`` ahead
of the pivot and images the transverse plane ``x = pivot_x + probe_offset_mm``; the plan
puts the target centre ``T`` in that plane, so the probe sees the target's cross-section
centred under it and the tip arriving in it (out-of-plane technique)::

    pivot_z = T_z + probe_offset * tan p          (standoff = pivot_z - skin_z)
    s* = (pivot_z - T_z) / sin p,      pivot = T - s* (cos p, 0, -sin p),   pivot_y = T_y

When that standoff is outside ``standoff_range_mm`` (deep veins need more pitch than the
rig has) the standoff is clipped and the target lies ``plane_offset`` mm beyond the plane
(allowed up to ``max_plane_offset_mm``; the controller extrapolates along the vessel).

**Fixed joints.** A rig whose pitch or pivot height cannot move (a 3-axis GRBL stage: the
insertion stage sits on a fixed tilt at a fixed height) reports it as equal lower and upper
limits. The plan then uses that one angle (``pitch_range_deg`` and ``preferred_pitch_deg`` do
not apply) and that pivot height (the standoff is what the stage gives, ``standoff_range_mm``
does not apply): ``s* = (pivot_z - T_z) / sin p`` and the target lies ``s* cos p -
probe_offset`` beyond the plane, so only targets at the depths the probe mount suits pass the
view check; the search over target x along the vein and the other checks are unchanged.

:func:`plan_insertion` searches target positions along the vein and pitches within the
rig's limits and keeps the cheapest plan that passes every check:

* reach: pivot inside the rig's joint limits; ``s*`` plus the insertion reserve (room to
  push on while a tenting vessel wall has not torn yet) inside the insertion axis;
* view: the target within ``max_plane_offset_mm`` of the ultrasound plane;
* clearance: the needle from the skin to ``s*`` + reserve stays ``clearance_mm`` outside
  every other vessel's wall (elliptical tube model from the fused estimates);
* lumen: the needle's path through the lumen (front to back wall) is at least
  ``min_lumen_path_mm`` long, so the tip can stop inside it.

The cost prefers the target in the plane, the preferred pitch (shallow: a longer path
in the lumen), the middle of the observed stretch and a full reserve. When nothing
passes, :class:`UnreachableTarget` lists why, counted over the candidates tried.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ir_robot.config import param
from ir_robot.core.errors import IrRobotError
from ir_robot.core.types import JOINT_NAMES, PROBE_OFFSET_MM, JointVector, needle_direction
from ir_robot.planning.geometry import segment_points
from ir_robot.planning.vessels import VesselEstimate


class UnreachableTarget(IrRobotError):
    """No insertion reaches the chosen vein inside the rig's limits without touching another vessel."""

    def __init__(self, message: str, reasons: dict[str, int] | None = None):
        super().__init__(message)
        self.reasons = dict(reasons or {})


@dataclass(frozen=True)
class InsertionParams:
    """Search grid, reach/view/clearance limits and cost weights of :func:`plan_insertion`."""

    pitch_range_deg: tuple[float, float] = param(
        (15.0, 45.0), range=(1.0, 89.0), unit="deg", help="needle pitches to consider (also clipped to the rig)"
    )
    pitch_step_deg: float = param(1.0, range=(0.1, 10.0), unit="deg")
    preferred_pitch_deg: float = param(
        20.0, range=(1.0, 89.0), unit="deg", help="shallow pitches give a longer path in the lumen"
    )
    standoff_range_mm: tuple[float, float] = param(
        (1.5, 15.0), range=(0.3, 60.0), unit="mm", help="pivot height above the skin (the tip starts there)"
    )
    reserve_mm: float = param(
        10.0, range=(0.0, 40.0), unit="mm", help="insertion room wanted past the target (wall tenting before it tears)"
    )
    min_reserve_mm: float = param(4.0, range=(0.0, 40.0), unit="mm", help="least room accepted past the target")
    max_plane_offset_mm: float = param(
        3.0, range=(0.0, 50.0), unit="mm", help="largest distance of the target beyond the ultrasound plane"
    )
    probe_offset_mm: float = param(PROBE_OFFSET_MM, range=(-100.0, 100.0), unit="mm")
    clearance_mm: float = param(1.0, range=(0.0, 20.0), unit="mm", help="gap to other vessels' walls")
    wall_estimate_mm: float = param(0.5, range=(0.0, 5.0), unit="mm", help="assumed wall thickness of obstacles")
    min_lumen_path_mm: float = param(0.9, range=(0.0, 20.0), unit="mm")
    target_x_step_mm: float = param(1.0, range=(0.1, 20.0), unit="mm")
    target_x_range_mm: tuple[float, float] = param(
        (-15.0, 22.0), range=(-500.0, 500.0), unit="mm", help="world x where targets may be placed (seen by NIR)"
    )
    joint_margin_mm: float = param(1.0, range=(0.0, 20.0), unit="mm", help="keep the pivot inside the rig travel")
    weight_pitch: float = param(1.0, range=(0.0, 100.0), help="cost per degree from the preferred pitch")
    weight_x: float = param(0.3, range=(0.0, 100.0), help="cost per mm from the middle of the observed stretch")
    weight_plane: float = param(5.0, range=(0.0, 100.0), help="cost per mm of target off the ultrasound plane")
    weight_reserve: float = param(2.0, range=(0.0, 100.0), help="cost per mm of reserve below reserve_mm")


@dataclass(frozen=True)
class InsertionPlan:
    """One planned insertion (world frame, at the time of the estimates it was made from)."""

    target_mm: tuple[float, float, float]
    pitch_rad: float
    probe_x_mm: float  # x of the transverse ultrasound plane
    pivot_mm: tuple[float, float, float]
    insert_mm: float  # s*: insertion that puts the tip at the target
    max_insert_mm: float  # deepest insertion the plan allows (target + reserve)
    lumen_half_path_mm: float  # along the needle from the centre to the lumen edge
    wall_path_mm: float  # along the needle from the lumen edge to the outer wall
    skin_insert_mm: float  # insertion at which the tip reaches the skin plane
    clearance_mm: float  # smallest gap to another vessel's wall along the path
    vessel_index: int = -1
    cost: float = 0.0

    @property
    def plane_offset_mm(self) -> float:
        """How far the target lies beyond (+) the ultrasound plane along x."""
        return self.target_mm[0] - self.probe_x_mm

    @property
    def near_wall_insert_mm(self) -> float:
        """Insertion at which the tip meets the target's outer (front) wall."""
        return self.insert_mm - self.lumen_half_path_mm - self.wall_path_mm

    @property
    def lumen_entry_insert_mm(self) -> float:
        """Insertion at which the tip crosses the front wall into the lumen."""
        return self.insert_mm - self.lumen_half_path_mm

    @property
    def back_wall_insert_mm(self) -> float:
        """Insertion at which the tip reaches the back wall: going past it punctures the vessel through."""
        return self.insert_mm + self.lumen_half_path_mm

    @property
    def reserve_mm(self) -> float:
        """Insertion room the plan allows past the target (for wall tenting before it tears)."""
        return self.max_insert_mm - self.insert_mm

    def joints(self, probe_yaw_rad: float = 0.0, insert_mm: float = 0.0) -> JointVector:
        """The rig joints of this plan: its pivot and pitch, with the given insertion and probe yaw."""
        return JointVector(*self.pivot_mm, self.pitch_rad, insert_mm, probe_yaw_rad)

    def tip_at(self, insert_mm: float) -> NDArray[np.float64]:
        """Needle tip (world, mm) at ``insert_mm`` along this plan's needle line."""
        return np.asarray(self.pivot_mm) + insert_mm * needle_direction(self.pitch_rad)

    def moved(self, dy: float = 0.0, dz: float = 0.0, *, fixed_height: bool = False) -> InsertionPlan:
        """The same insertion with the target (and so the pivot) moved sideways/up by (dy, dz).

        ``fixed_height``: the pivot cannot move up or down (a fixed stage): it follows sideways only,
        and the target slides along the needle line to the new depth (insertion changes by -dz / sin p).
        """
        t, p = self.target_mm, self.pivot_mm
        if not fixed_height:
            return dataclasses.replace(
                self, target_mm=(t[0], t[1] + dy, t[2] + dz), pivot_mm=(p[0], p[1] + dy, p[2] + dz)
            )
        ds = -dz / math.sin(self.pitch_rad)
        step = ds * needle_direction(self.pitch_rad)
        return dataclasses.replace(
            self,
            target_mm=(t[0] + float(step[0]), t[1] + dy, t[2] + float(step[2])),
            pivot_mm=(p[0], p[1] + dy, p[2]),
            insert_mm=self.insert_mm + ds,
            max_insert_mm=self.max_insert_mm + ds,
        )


def lumen_path(vessel: VesselEstimate, x_mm: float, pitch_rad: float, wall_mm: float = 0.3) -> tuple[float, float]:
    """(half path in the lumen, path through the wall) along a needle crossing the centre at x.

    Elliptical cross-section (lateral semi-axis a = diameter/2, vertical b = height/2);
    the needle's vertical drop per mm is sin p and it also runs along the vessel, so the
    lumen half-path is b / sin(p + vessel pitch) (the needle stays at the centre laterally
    to first order).
    """
    _, dzdx = vessel.slope_at(x_mm)
    eff = pitch_rad + math.atan(-dzdx)  # a vessel diving towards +x meets the needle at a shallower angle
    eff = max(eff, math.radians(3.0))
    b = max(vessel.height_mm, 1e-3) / 2.0
    return b / math.sin(eff), wall_mm / math.sin(eff)


def _clearance(points: NDArray[np.float64], obstacles: list[VesselEstimate], wall_mm: float) -> tuple[float, int]:
    """Smallest gap (mm, negative inside) from path points to any obstacle's outer wall, and which one."""
    best, which = math.inf, -1
    for k, o in enumerate(obstacles):
        a = o.diameter_mm / 2 + wall_mm
        b = o.height_mm / 2 + wall_mm
        dy = points[:, 1] - o.y_at(points[:, 0])
        dz = points[:, 2] - o.z_at(points[:, 0])
        r = np.sqrt((dy / a) ** 2 + (dz / b) ** 2)
        # gap along the ray from the centre through the point, in mm (exact on the axes)
        gap = (r - 1.0) * np.sqrt(dy * dy + dz * dz) / np.maximum(r, 1e-9)
        g = float(gap.min())
        if g < best:
            best, which = g, k
    return best, which


#: joint range (mm or rad) below which a joint counts as fixed
FIXED_TOLERANCE = 1e-6


def fixed_joints(lower: JointVector, upper: JointVector, velocity_limits: JointVector | None = None) -> tuple[str, ...]:
    """Joints the rig cannot move: equal lower and upper limits, or a zero speed limit."""
    lo, hi = lower.as_array(), upper.as_array()
    still = hi - lo < FIXED_TOLERANCE
    if velocity_limits is not None:
        still |= velocity_limits.as_array() <= 0.0
    return tuple(n for n, f in zip(JOINT_NAMES, still, strict=True) if f)


def plan_insertion(
    vessel: VesselEstimate,
    obstacles: list[VesselEstimate] | tuple[VesselEstimate, ...] = (),
    *,
    lower: JointVector,
    upper: JointVector,
    params: InsertionParams = InsertionParams(),
    skin_z_mm: float = 0.0,
    vessel_index: int = -1,
    target_x_mm: tuple[float, ...] | None = None,
) -> InsertionPlan:
    """The cheapest feasible insertion into ``vessel`` (see the module docstring).

    ``lower``/``upper``: the rig's joint limits (after safety margins); equal limits mark a fixed
    pitch or pivot height (see "Fixed joints" above). ``skin_z_mm``: the
    skin plane's height now. ``target_x_mm``: candidate target x positions (default: the
    observed stretch, stepped by ``target_x_step_mm``). Raises :class:`UnreachableTarget`.
    """
    pr = params
    lo, hi = lower.as_array(), upper.as_array()
    fixed = fixed_joints(lower, upper)
    fixed_pitch, fixed_z = "pitch_rad" in fixed, "z_mm" in fixed
    if fixed_pitch:
        p_lo = p_hi = float(lo[3])
        if not 0.0 < p_lo < math.pi / 2:
            raise UnreachableTarget(
                f"the rig's fixed needle pitch {math.degrees(p_lo):.1f} deg does not point the "
                "needle down into the tissue (needs 0..90 deg)"
            )
        pitches = np.array([p_lo])
    else:
        p_lo = max(math.radians(pr.pitch_range_deg[0]), lo[3])
        p_hi = min(math.radians(pr.pitch_range_deg[1]), hi[3])
        if p_lo > p_hi:
            raise UnreachableTarget(
                f"no pitch in {pr.pitch_range_deg} deg is inside the rig's pitch limits "
                f"[{math.degrees(lo[3]):.1f}, {math.degrees(hi[3]):.1f}] deg"
            )
        pitches = np.arange(p_lo, p_hi + 1e-9, math.radians(pr.pitch_step_deg))
    if fixed_z and lo[2] <= skin_z_mm:
        raise UnreachableTarget(
            f"the rig's fixed pivot height {lo[2]:.1f} mm is not above the skin ({skin_z_mm:.1f} mm)"
        )
    # joint margin on the pivot axes the rig moves; a fixed axis is exactly where the plan puts it
    margin = np.where(hi[:3] - lo[:3] < FIXED_TOLERANCE, 0.0, pr.joint_margin_mm)
    tol = np.where(hi[:3] - lo[:3] < FIXED_TOLERANCE, FIXED_TOLERANCE, 0.0)
    if target_x_mm is None:
        x0 = max(vessel.x_range_mm[0], pr.target_x_range_mm[0])
        x1 = min(vessel.x_range_mm[1], pr.target_x_range_mm[1])
        if x0 > x1:
            raise UnreachableTarget(
                f"the vein was seen at x {vessel.x_range_mm[0]:.1f}..{vessel.x_range_mm[1]:.1f} "
                f"mm, outside the targetable x range {pr.target_x_range_mm} mm",
                {"outside targetable x range": 1},
            )
        xs = np.arange(x0, x1 + 1e-9, pr.target_x_step_mm) if x1 > x0 else np.array([x0])
    else:
        xs = np.asarray(target_x_mm, dtype=float)
    mid = float(np.clip(vessel.mid_x_mm, xs.min(), xs.max()))
    insert_max = hi[4]
    reasons: Counter[str] = Counter()
    best: InsertionPlan | None = None
    for x_t in xs:
        target = vessel.centre_at(float(x_t))
        # the pitch that puts the target exactly in the plane at the lowest standoff, plus the grid
        exact = math.atan2(pr.standoff_range_mm[0] + skin_z_mm - target[2], pr.probe_offset_mm)
        cands = np.append(pitches, exact) if p_lo <= exact <= p_hi and not fixed_pitch else pitches
        for p in cands:
            d = needle_direction(float(p))
            if fixed_z:
                standoff = float(lo[2]) - skin_z_mm
            else:
                standoff = pr.probe_offset_mm * math.tan(p) + target[2] - skin_z_mm
                standoff = float(np.clip(standoff, pr.standoff_range_mm[0], pr.standoff_range_mm[1]))
            s_star = (skin_z_mm + standoff - target[2]) / math.sin(p)
            pivot = target - s_star * d
            plane_off = float(target[0] - (pivot[0] + pr.probe_offset_mm))
            if abs(plane_off) > pr.max_plane_offset_mm:
                reasons[f"target more than {pr.max_plane_offset_mm} mm off the ultrasound plane"] += 1
                continue
            room = insert_max - s_star
            if room < pr.min_reserve_mm:
                reasons[f"target + {pr.min_reserve_mm} mm reserve beyond the {insert_max:.0f} mm insertion axis"] += 1
                continue
            out = (pivot < lo[:3] + margin - tol) | (pivot > hi[:3] - margin + tol)
            if out.any():
                reasons[f"pivot {'xyz'[int(np.flatnonzero(out)[0])]} outside the rig's travel"] += 1
                continue
            half, wall = lumen_path(vessel, float(x_t), float(p))
            if 2 * half < pr.min_lumen_path_mm:
                reasons[f"lumen path shorter than {pr.min_lumen_path_mm} mm"] += 1
                continue
            reserve = min(pr.reserve_mm, room)
            skin_s = (pivot[2] - skin_z_mm) / math.sin(p)
            path = segment_points(pivot + skin_s * d, pivot + (s_star + reserve) * d, 0.2)
            gap, _ = _clearance(path, list(obstacles), pr.wall_estimate_mm)
            if gap < pr.clearance_mm:
                reasons[f"path within {pr.clearance_mm} mm of another vessel"] += 1
                continue
            cost = (
                pr.weight_pitch * abs(math.degrees(p) - pr.preferred_pitch_deg)
                + pr.weight_x * abs(float(x_t) - mid)
                + pr.weight_plane * abs(plane_off)
                + pr.weight_reserve * max(0.0, pr.reserve_mm - reserve)
            )
            if best is None or cost < best.cost:
                best = InsertionPlan(
                    (float(target[0]), float(target[1]), float(target[2])),
                    float(p),
                    float(pivot[0] + pr.probe_offset_mm),
                    (float(pivot[0]), float(pivot[1]), float(pivot[2])),
                    float(s_star),
                    float(s_star + reserve),
                    float(half),
                    float(wall),
                    float(skin_s),
                    float(gap),
                    vessel_index,
                    float(cost),
                )
    if best is None:
        top = ", ".join(f"{r} ({n}x)" for r, n in reasons.most_common(3))
        raise UnreachableTarget(
            f"no insertion reaches the vein at depth {float(vessel.depth_at(mid)):.1f} mm "
            f"(x {xs.min():.0f}..{xs.max():.0f} mm): {top}",
            dict(reasons),
        )
    return best
