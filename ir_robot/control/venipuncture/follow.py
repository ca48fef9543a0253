"""Following the target, shared by the phases from ALIGN on: where the tracked target is, the
ultrasound frames that feed the tracker, and the pivot goals that keep the needle line on it.
"""

from __future__ import annotations

from ir_robot.control.sensing import UsMeasurement, measure_us, profile_shift_mm
from ir_robot.control.venipuncture.context import Context, FloatArray, Y, Z
from ir_robot.control.venipuncture.phases import Phase
from ir_robot.core.types import JointVector, Observation


def target_at(c: Context, t: float) -> tuple[float, float]:
    """Tracked target centre (y, z) at the plan's target x (extrapolated from the probe plane)."""
    plan = c.sel.the_plan()
    yz = c.tracker.predict(t)
    dydx, dzdx = c.sel.target.slope_at(plan.target_mm[0]) if c.sel.target is not None else (0.0, 0.0)
    off = plan.plane_offset_mm
    return float(yz[0] + dydx * off), float(yz[1] + dzdx * off)


def plane_prediction(c: Context) -> tuple[float, float]:
    """The plan's target moved back to the ultrasound plane (for locking)."""
    plan = c.sel.the_plan()
    dydx, dzdx = c.sel.the_target().slope_at(plan.target_mm[0])
    off = plan.plane_offset_mm
    return plan.target_mm[1] - dydx * off, plan.target_mm[2] - dzdx * off


def process_us(c: Context, obs: Observation, q: FloatArray) -> UsMeasurement | None:
    """Measure this tick's ultrasound frame (None if none) and update the tracker with it."""
    if obs.us is None:
        return None
    roi = None
    # the zoom serves the tracking (align, insert); the confirmation and the hold see the
    # whole frame, and with the zoom on the confirmation needs that frame to agree
    if c.tracker.locked and c.p.us_roi_mm > 0 and c.phase not in (Phase.CONFIRM, Phase.HOLD):
        roi = tuple(c.tracker.predict(obs.us.stamp_s))
    m = measure_us(
        obs.us,
        c.us_perception,
        JointVector.from_array(q),
        probe_offset_mm=c.p.probe_offset_mm,
        roi_yz_mm=roi,
        roi_side_mm=c.p.us_roi_mm,
    )
    c.img.last_us, c.img.last_us_frame = m, obs.us
    if c.tracker.locked and not m.blank:
        dz = None
        if c.tracker.frozen and c.img.layers_ref is not None and m.profile is not None:
            dz = profile_shift_mm(c.img.layers_ref, m.profile, obs.us.spacing_mm)
        c.tracker.update(m.sections, m.stamp_s, needle_yz=m.needle_yz_mm, layer_dz_mm=dz)
    return m


def want_us(c: Context, t: float) -> None:
    """Ask for an ultrasound frame this tick if ``us_period_s`` has passed since the last request."""
    if t + 1e-9 >= c.img.last_us_t + c.p.us_period_s - 0.5 * c.p.dt_s:
        c.img.want = c.img.want | {"us"}
        c.img.last_us_t = t


def tracking_goal(c: Context, t: float, dt: float) -> tuple[dict[int, float], dict[int, float], str]:
    """Pivot (y, z) goals that keep the needle line through the tracked target, feed-forward, problem."""
    plan = c.sel.the_plan()
    ty, tz = target_at(c, t + dt)
    rise = plan.pivot_mm[2] - plan.target_mm[2]
    goal = {Y: ty, Z: tz + rise}
    vel = c.tracker.velocity(t)
    ff = {Y: float(vel[0]), Z: float(vel[1])}
    problem = ""
    m = 0.2
    z_ok = c.fixed[Z] or c.lo[Z] + m <= goal[Z] <= c.hi[Z] - m  # a fixed height is not servoed
    if not (c.lo[Y] + m <= goal[Y] <= c.hi[Y] - m) or not z_ok:
        problem = f"target moved out of the rig's reach (pivot y {goal[Y]:.1f}, z {goal[Z]:.1f} mm)"
    elif (
        c.img.last_us is not None
        and abs(ty - c.img.last_us.probe_y_mm) > c.img.last_us.half_width_mm - c.p.view_margin_mm
    ):
        problem = "target moved out of the ultrasound view"
    return goal, ff, problem


def shift_scene(c: Context, dy: float, dz: float) -> None:
    """The phantom moved rigidly by (dy, dz): move every vessel estimate and the plan with it."""
    target = c.sel.the_target()
    c.sel.vessels = tuple(v.shifted(0.0, dy, dz) for v in c.sel.vessels)
    idx = next((i for i, v in enumerate(c.sel.vessels) if v.sections is target.sections), None)
    c.sel.target = c.sel.vessels[idx] if idx is not None else target.shifted(0.0, dy, dz)
    c.sel.plan = c.sel.the_plan().moved(dy, dz, fixed_height=bool(c.fixed[Z]))
