"""CONFIRM and HOLD: ultrasound must show the needle tip inside the tracked lumen; then the tip is
held there ``hold_s`` with tracking (the blood draw).
"""

from __future__ import annotations

import math

from ir_robot.control.sensing import in_ellipse, needle_at_x
from ir_robot.control.venipuncture.context import INS, PITCH, YAW, Context, FloatArray, X
from ir_robot.control.venipuncture.follow import process_us, target_at, tracking_goal, want_us
from ir_robot.control.venipuncture.guard import fail_attempt, guard
from ir_robot.control.venipuncture.phases import Phase
from ir_robot.control.venipuncture.retract import retract
from ir_robot.control.venipuncture.servo import servo


def confirm(c: Context) -> FloatArray:
    """CONFIRM: the tip held at the lumen centre until ultrasound shows it inside the lumen (or not)."""
    t, q, obs, dt, reading = c.tick
    p, plan = c.p, c.sel.the_plan()
    m = process_us(c, obs, q)
    want_us(c, t)
    goal_yz, ff, problem = tracking_goal(c, t, dt)
    _, give_up = guard(c, t, reading, problem)
    if give_up:
        fail_attempt(c, give_up)
        return retract(c)
    if not p.require_us_confirmation:
        confirmed(c, t, "force only")
    elif m is not None and m.needle_yz_mm is not None:
        tip = needle_at_x(m.needle_yz_mm, m.probe_x_mm, plan.target_mm[0], plan.pitch_rad, p.us_slab_half_mm)
        centre = target_at(c, m.stamp_s)
        semi = (c.tracker.size_mm[0] / 2, c.tracker.size_mm[1] / 2)
        inside = in_ellipse(tip, centre, semi, p.lumen_margin)
        # tracked with the zoom, the whole frame must also show a vessel there: the zoomed view
        # may have followed something else
        agrees = p.us_roi_mm <= 0 or any(in_ellipse((s.y_mm, s.z_mm), centre, semi, 1.5) for s in m.sections)
        if inside and agrees:
            confirmed(
                c,
                t,
                f"ultrasound tip {abs(tip[0] - centre[0]):.2f} mm / "
                f"{abs(tip[1] - centre[1]):.2f} mm from the lumen centre",
            )
        else:
            c.confirm.outside_frames += 1
            if c.confirm.outside_frames >= 3:
                fail_attempt(
                    c,
                    f"ultrasound shows the tip outside the lumen ({tip[0] - centre[0]:+.2f}, "
                    f"{tip[1] - centre[1]:+.2f}) mm from its centre"
                    if not inside
                    else "the whole ultrasound frame shows no vessel at the tracked target "
                    "(the zoomed tracking is not confirmed)",
                )
                return retract(c)
    elif t - c.machine.since_s > p.confirm_timeout_s:
        fail_attempt(c, f"ultrasound does not show the needle tip after {p.confirm_timeout_s} s")
        return retract(c)
    return servo(
        c, q, {X: plan.pivot_mm[0], PITCH: plan.pitch_rad, YAW: math.pi / 2, INS: plan.insert_mm, **goal_yz}, dt, ff=ff
    )


def confirmed(c: Context, t: float, how: str) -> None:
    """The tip is confirmed in the lumen (``how``): report when, and HOLD."""
    c.outcome.confirmed = True
    c.outcome.confirm_t_s = t - (c.machine.t0 or 0.0)
    c.go(Phase.HOLD, f"confirmed: force drop + lumen test + {how}")


def hold(c: Context) -> FloatArray:
    """HOLD: keep the tip on the tracked lumen for ``hold_s``, then retract (success)."""
    t, q, obs, dt, reading = c.tick
    plan = c.sel.the_plan()
    process_us(c, obs, q)
    want_us(c, t)
    goal_yz, ff, problem = tracking_goal(c, t, dt)
    _, give_up = guard(c, t, reading, problem)
    if give_up:
        fail_attempt(c, f"during hold: {give_up}")
        return retract(c)
    if t - c.machine.since_s >= c.p.hold_s:
        c.retract.then = Phase.DONE
        c.go(Phase.RETRACT, f"held {c.p.hold_s:.1f} s in the lumen")
    return servo(
        c, q, {X: plan.pivot_mm[0], PITCH: plan.pitch_rad, YAW: math.pi / 2, INS: plan.insert_mm, **goal_yz}, dt, ff=ff
    )
