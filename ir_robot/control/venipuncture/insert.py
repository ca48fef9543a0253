"""INSERT: visual servoing on the tracked target while the needle advances (:attr:`InsertStep.ADVANCE`);
after a puncture-like drop near the vein wall, the lumen test (:attr:`InsertStep.TO_PROBE`, then
:attr:`InsertStep.PROBE`, judged by :func:`~ir_robot.control.venipuncture.lumen.lumen_verdict`).
"""

from __future__ import annotations

import math

import numpy as np

from ir_robot.control.venipuncture.context import INS, PITCH, YAW, Context, FloatArray, X
from ir_robot.control.venipuncture.follow import process_us, tracking_goal, want_us
from ir_robot.control.venipuncture.guard import fail_attempt, guard
from ir_robot.control.venipuncture.lumen import PAUSE_WATCH_S, SETTLE_TICKS, lumen_verdict, probe_sample_ready
from ir_robot.control.venipuncture.phases import InsertStep, Phase
from ir_robot.control.venipuncture.retract import retract
from ir_robot.control.venipuncture.servo import servo


def insert(c: Context) -> FloatArray:
    """INSERT: advance at the zone's speed; on a drop near the wall run the lumen test; pause on faults."""
    t, q, obs, dt, reading = c.tick
    p, plan, ins = c.p, c.sel.the_plan(), c.insert
    tip_x = q[X] + q[INS] * math.cos(q[PITCH])
    if not c.tracker.frozen and tip_x >= plan.probe_x_mm - p.us_slab_half_mm - p.freeze_distance_mm:
        c.tracker.freeze(t)
        c.img.layers_ref = c.img.last_us.profile if c.img.last_us is not None else None
        c.event(
            f"needle {plan.probe_x_mm - tip_x:.1f} mm from the image plane: tracking the target "
            f"through the other vessels' motion"
        )
    process_us(c, obs, q)
    want_us(c, t)
    goal_yz, ff, problem = tracking_goal(c, t, dt)
    ok, give_up = guard(c, t, reading, problem)
    if give_up:
        fail_attempt(c, give_up)
        return retract(c)
    s = q[INS]
    s_star = plan.insert_mm
    delta = float(np.clip(0.5 * plan.lumen_half_path_mm, *p.probe_depth_mm))
    if reading.drop_n > 0:
        if s >= plan.near_wall_insert_mm - p.candidate_tolerance_mm:
            c.event(f"puncture-like force drop {reading.drop_n:.2f} N at {s:.2f} mm: lumen test")
            start_lumen_test(c)
        else:
            c.event(f"membrane puncture {reading.drop_n:.2f} N at {s:.2f} mm (before the vein)")
    elif ins.step == InsertStep.ADVANCE:
        # a wall that tears as the needle stops (a pause) or turns (the end of a lumen test) is not
        # seen as a drop: the monitor ignores drops then, since slowing down alone lowers the force.
        # So compare the force with the one at that moment until advancing for PAUSE_WATCH_S
        if not ok:
            if ins.pause_force is None and s >= plan.near_wall_insert_mm - p.candidate_tolerance_mm:
                ins.pause_force, ins.pause_cause = reading.filtered_n, "a pause"
            ins.watch_until = None
        elif ins.pause_force is not None:
            if ins.watch_until is None:
                ins.watch_until = t + PAUSE_WATCH_S
            fell = ins.pause_force - reading.filtered_n
            if fell >= c.force.params.drop_threshold_n:
                c.event(f"force fell {fell:.2f} N across {ins.pause_cause} at {s:.2f} mm: lumen test")
                start_lumen_test(c)
                ins.pause_force = None
            elif t >= ins.watch_until:
                ins.pause_force = None
    v_ins = 0.0
    if ins.step == InsertStep.ADVANCE:
        if s >= plan.max_insert_mm - 1e-3:
            fail_attempt(
                c, f"no puncture of the vein wall felt by {s:.1f} mm (target {s_star:.1f} mm, reserve used up)"
            )
            return retract(c)
        if s < plan.skin_insert_mm - p.skin_zone_mm:
            v_ins = p.v_air_mm_s
        elif s < plan.near_wall_insert_mm - p.slow_zone_mm:
            v_ins = p.v_tissue_mm_s
        else:
            v_ins = p.v_slow_mm_s
        v_ins = min(v_ins, (plan.max_insert_mm - s) / dt)
    elif ins.step == InsertStep.TO_PROBE:
        start = s_star - delta
        if abs(s - start) < 0.01:
            ins.probe_ticks += 1
            if ins.probe_ticks >= 2:
                ins.step = InsertStep.PROBE
                ins.probe = []
                ins.probe_ticks = 0
                ins.probe_from = s
        else:
            ins.probe_ticks = 0
            v_ins = float(np.clip((start - s) / max(p.lumen_test_tau_s, dt), -p.v_slow_mm_s * 2, p.v_slow_mm_s))
            if v_ins > 0 and ok:  # the drop came short of the start: this travel is a test of its own
                ins.approach_ticks += 1
                if ins.approach_ticks > SETTLE_TICKS:
                    ins.approach.append((s, reading.filtered_n))
            elif not ok:  # a pause: a tented wall relaxes while the needle stands; start the fit again
                ins.approach, ins.approach_ticks = [], 0
    elif ins.step == InsertStep.PROBE:
        ins.probe_ticks += 1
        if probe_sample_ready(ins.probe_ticks, s - ins.probe_from, dt, p.v_probe_mm_s):
            ins.probe.append((s, reading.filtered_n))
        if s >= s_star - 1e-3:
            in_lumen, why = lumen_verdict(
                ins.probe, ins.approach, p.lumen_slope_n_per_mm, c.force.params.drop_threshold_n
            )
            if in_lumen:
                c.outcome.confirmed = False
                c.event(f"lumen test: {why} -> tip in the lumen")
                c.go(Phase.CONFIRM, f"lumen test passed at {s:.2f} mm")
                return servo(c, q, {INS: s_star, **goal_yz}, dt, ff=ff)
            c.event(f"lumen test: {why} -> a membrane is still ahead; searching deeper")
            ins.step = InsertStep.ADVANCE
            c.force.disarm()
            ins.pause_force, ins.pause_cause = reading.filtered_n, "the end of the lumen test"
            ins.watch_until = t + PAUSE_WATCH_S
        else:
            v_ins = min(p.v_probe_mm_s, (s_star - s) / dt)
    if v_ins > 0 and not ok:
        v_ins = 0.0
    v = servo(c, q, {X: plan.pivot_mm[0], PITCH: plan.pitch_rad, YAW: math.pi / 2, **goal_yz}, dt, ff=ff)
    v[INS] = v_ins
    return v


def start_lumen_test(c: Context) -> None:
    """A candidate puncture: go to the lumen test's start, its approach samples afresh."""
    c.insert.step = InsertStep.TO_PROBE
    c.insert.probe_ticks = 0
    c.insert.approach = []
    c.insert.approach_ticks = 0
