"""ALIGN: move over the target, lock the tracker on its cross-section (the scanned vessels laid onto
the frame), run the artery check, re-plan if the target moved, and start the insertion.
"""

from __future__ import annotations

import math

import numpy as np

from ir_robot.control.sensing import UsMeasurement
from ir_robot.control.venipuncture.artery import artery_check, pulse_sample
from ir_robot.control.venipuncture.context import INS, PITCH, YAW, Context, FloatArray, X, Y, Z
from ir_robot.control.venipuncture.follow import (
    plane_prediction,
    process_us,
    shift_scene,
    target_at,
    tracking_goal,
    want_us,
)
from ir_robot.control.venipuncture.phases import InsertStep, Phase
from ir_robot.control.venipuncture.servo import servo, settled, travel_speeds
from ir_robot.core.types import N_JOINTS, JointVector
from ir_robot.planning.insertion import UnreachableTarget, plan_insertion


def align(c: Context) -> FloatArray:
    """ALIGN: to the insertion pose; lock on the target; once locked, settled and checked: insert."""
    t, q, obs, dt, _ = c.tick
    plan = c.sel.the_plan()
    m = process_us(c, obs, q)
    ff: dict[int, float]
    if not c.tracker.locked:
        goal = {
            X: plan.pivot_mm[0],
            Y: plan.pivot_mm[1],
            Z: plan.pivot_mm[2],
            PITCH: plan.pitch_rad,
            INS: 0.0,
            YAW: math.pi / 2,
        }
        ff = {}
        if m is not None and c.settled_ticks >= 1 and not m.blank:
            shift = constellation_shift(c, m)
            pred = plane_prediction(c)
            refs: list[tuple[float, float]] | None = None
            if shift is not None:
                refs = [
                    (float(v.y_at(m.probe_x_mm)) + shift[0], float(v.z_at(m.probe_x_mm)) + shift[1])
                    for v in c.sel.vessels
                    if v is not c.sel.target
                ]
            if shift is not None and c.tracker.lock(
                m.sections, (pred[0] + shift[0], pred[1] + shift[1]), m.stamp_s, gate_mm=1.0, references=refs
            ):
                c.align.lock_count = 1
                c.event(
                    f"locked on the target at y {c.tracker.pos[0]:.2f}, z {c.tracker.pos[1]:.2f} mm "
                    f"({shift[0]:+.2f}, {shift[1]:+.2f} mm from the scan)"
                )
    else:
        goal_yz, ff, problem = tracking_goal(c, t, dt)
        goal = {X: plan.pivot_mm[0], PITCH: plan.pitch_rad, INS: 0.0, YAW: math.pi / 2, **goal_yz}
        if m is not None and not m.blank and c.tracker.last_update_s == m.stamp_s:
            c.align.lock_count += 1
            pulse_sample(c, m)
        if c.align.lock_count >= c.p.lock_frames and settled(c, q, goal) and artery_check(c, t):
            if not start_insertion(c, t):
                return np.zeros(N_JOINTS)
        if c.phase != Phase.ALIGN:  # the artery check rejected the target
            return np.zeros(N_JOINTS)
    gy = float(np.clip(goal[Y], c.lo[Y], c.hi[Y]))
    gz = float(np.clip(goal[Z], c.lo[Z], c.hi[Z]))
    timeout = c.p.align_timeout_s + (c.cfg.pulsatility.max_dwell_s if c.cfg.pulsatility.enabled else 0.0)
    if t - c.machine.since_s > timeout:
        c.go(Phase.ABORT, f"could not reach the insertion pose and lock on the target within {timeout:.0f} s")
        return np.zeros(N_JOINTS)
    if (
        settled(c, q, {k: v for k, v in goal.items() if k in (X, PITCH, YAW)})
        and abs(q[Y] - gy) < 0.5
        and abs(q[Z] - gz) < 0.5
    ):
        c.settled_ticks += 1
        want_us(c, t)
    else:
        c.settled_ticks = 0
    if c.settled_ticks and c.align.settled_since is None:
        c.align.settled_since = t
    if not c.tracker.locked and c.align.settled_since is not None and t - c.align.settled_since > c.p.lock_timeout_s:
        c.go(
            Phase.ABORT,
            f"target not found in ultrasound at the insertion pose for {c.p.lock_timeout_s} s "
            f"(perception drop-out or the vein moved)",
        )
        return np.zeros(N_JOINTS)
    if c.tracker.locked and c.tracker.age(t) > c.p.lock_timeout_s:
        c.go(Phase.ABORT, f"lost the target in ultrasound before inserting (no fix for {c.tracker.age(t):.1f} s)")
        return np.zeros(N_JOINTS)
    return servo(c, q, goal, dt, ff=ff, speed=travel_speeds(c))


def constellation_shift(c: Context, m: UsMeasurement) -> tuple[float, float] | None:
    """Rigid (dy, dz) of the phantom since the scan: the shift that best lays every scanned
    vessel (predicted at this plane) onto this frame's cross-sections, with the target on a vein.
    """
    target = c.sel.the_target()
    x = m.probe_x_mm
    tgt = np.array(plane_prediction(c))
    dets = np.array([[s.y_mm, s.z_mm] for s in m.sections]) if m.sections else np.zeros((0, 2))
    if not len(dets):
        return None
    refs = np.array([[float(v.y_at(x)), float(v.z_at(x))] for v in c.sel.vessels if v is not target])
    refs = refs[np.abs(refs[:, 0] - m.probe_y_mm) < m.half_width_mm] if len(refs) else refs
    cap = 2.0
    best, best_cost = None, math.inf
    for s in m.sections:
        if s.kind != "vein":
            continue
        shift = np.array([s.y_mm, s.z_mm]) - tgt
        if np.hypot(*shift) > c.p.lock_search_mm:
            continue
        cost = 0.0
        for r in refs:
            cost += min(cap, float(np.min(np.hypot(*(dets - (r + shift)).T))))
        cost += 0.05 * float(np.hypot(*shift)) + 0.2 * abs(s.width_mm - target.diameter_mm)
        if cost < best_cost:
            best, best_cost = shift, cost
    return None if best is None else (float(best[0]), float(best[1]))


def start_insertion(c: Context, t: float) -> bool:
    """Move the scene and plan to where the target is now (re-plan if it moved far), then INSERT.
    False if the target is out of reach (aborted).
    """
    ty, tz = target_at(c, t)
    plan = c.sel.the_plan()
    dy, dz = ty - plan.target_mm[1], tz - plan.target_mm[2]
    shift_scene(c, dy, dz)
    if math.hypot(dy, dz) > c.p.replan_threshold_mm:
        obstacles = [v for v in c.sel.vessels if v is not c.sel.target]
        try:
            new_plan = plan_insertion(
                c.sel.the_target(),
                obstacles,
                lower=JointVector.from_array(c.lo),
                upper=JointVector.from_array(c.hi),
                params=c.cfg.insertion,
                vessel_index=c.sel.the_plan().vessel_index,
                target_x_mm=(c.sel.the_plan().target_mm[0],),
            )
        except UnreachableTarget as exc:
            c.go(Phase.ABORT, f"unreachable target after the arm moved {math.hypot(dy, dz):.1f} mm: {exc}")
            return False
        c.sel.plan = new_plan
        c.event(f"re-planned: target moved {dy:+.2f} mm sideways, {dz:+.2f} mm up")
    plan = c.sel.the_plan()
    c.outcome.plan = plan
    c.outcome.attempts += 1
    c.force.disarm()
    ins = c.insert
    ins.pause_force = None
    ins.watch_until = None
    ins.probe = []
    c.confirm.outside_frames = 0
    ins.target_mm = plan.insert_mm
    c.go(
        Phase.INSERT,
        f"attempt {c.outcome.attempts}: inserting to {plan.insert_mm:.2f} mm "
        f"(front wall at {plan.near_wall_insert_mm:.2f} mm)",
    )
    ins.step = InsertStep.ADVANCE
    return True
