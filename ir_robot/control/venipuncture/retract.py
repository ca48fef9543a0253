"""RETRACT and ABORT: the needle out along its axis (never in), following the target while in tissue;
then the pivot up, and DONE, the next attempt (ALIGN, re-planned on the moved target) or FAILED.
"""

from __future__ import annotations

import numpy as np

from ir_robot.control.venipuncture.context import INS, Context, FloatArray, Z
from ir_robot.control.venipuncture.follow import process_us, shift_scene, target_at, tracking_goal, want_us
from ir_robot.control.venipuncture.guard import fix_timeout_s
from ir_robot.control.venipuncture.phases import Phase
from ir_robot.control.venipuncture.servo import servo, travel_speeds
from ir_robot.core.types import N_JOINTS, JointVector
from ir_robot.planning.insertion import UnreachableTarget, plan_insertion


def retract(c: Context) -> FloatArray:
    """Needle out along its axis (never in), following the target while in tissue; then pivot up."""
    t, q, obs, dt, _ = c.tick
    s = q[INS]
    goal: dict[int, float] = {INS: 0.0}
    ff: dict[int, float] = {}
    if c.tracker.locked and c.sel.plan is not None and s > 0.05:
        process_us(c, obs, q)
        want_us(c, t)
        goal_yz, ff, _ = tracking_goal(c, t, dt)
        if c.tracker.age(t) < fix_timeout_s(c):
            goal.update(goal_yz)
    v = servo(c, q, goal, dt, ff=ff, speed={INS: c.p.v_retract_mm_s})
    v[INS] = min(v[INS], 0.0)
    if s <= 0.05:
        v = servo(c, q, {INS: 0.0, Z: max(c.p.safe_height_mm, q[Z])}, dt, speed=travel_speeds(c))
        v[INS] = min(v[INS], 0.0)
        # the needle is out: done now, or lift the pivot before travelling to a new attempt
        then = c.retract.then
        if then == Phase.DONE or q[Z] >= min(c.p.safe_height_mm, c.hi[Z]) - 0.05:
            c.insert.target_mm = 0.0
            if c.phase == Phase.ABORT:
                c.go(Phase.FAILED, c.retract.abort_reason)
            elif then == Phase.DONE:
                c.go(Phase.DONE, "venipuncture completed")
            elif then == Phase.ALIGN:
                if c.tracker.locked and c.tracker.age(t) < c.p.dropout_timeout_s:
                    plan = c.sel.the_plan()
                    ty, tz = target_at(c, t)
                    shift_scene(c, ty - plan.target_mm[1], tz - plan.target_mm[2])
                    target, plan = c.sel.the_target(), c.sel.the_plan()
                    try:
                        c.sel.plan = plan_insertion(
                            target,
                            [ves for ves in c.sel.vessels if ves is not target],
                            lower=JointVector.from_array(c.lo),
                            upper=JointVector.from_array(c.hi),
                            params=c.cfg.insertion,
                            vessel_index=plan.vessel_index,
                            target_x_mm=(plan.target_mm[0],),
                        )
                    except UnreachableTarget as exc:
                        c.go(Phase.ABORT, f"unreachable target for a new attempt: {exc}")
                        return np.zeros(N_JOINTS)
                c.tracker.locked = False
                c.align.lock_count = 0
                c.align.settled_since = None
                c.go(Phase.ALIGN, f"retrying (attempt {c.outcome.attempts + 1})")
            else:
                c.go(Phase.FAILED, c.outcome.reason or "attempts used up")
            return np.zeros(N_JOINTS)
    return v
