"""The fault guard of the phases with the needle in (INSERT, CONFIRM, HOLD): pause on a force
spike, a high force, a stale target fix or a blocked target; give the attempt up when it lasts.
"""

from __future__ import annotations

from ir_robot.control.tracking import ForceReading
from ir_robot.control.venipuncture.context import Context
from ir_robot.control.venipuncture.phases import InsertStep, Phase


def fail_attempt(c: Context, why: str) -> None:
    """Give this attempt up: retract, then try again (attempts left) or fail."""
    if c.outcome.attempts < c.p.max_attempts:
        c.retract.then = Phase.ALIGN
    else:
        c.retract.then = Phase.FAILED
    c.outcome.reason = why
    c.outcome.attempt_failures.append(why)
    c.go(Phase.RETRACT, why)


def fix_timeout_s(c: Context) -> float:
    """How long the target may go without a fix before the attempt is given up. At the lumen (lumen
    test, confirmation, hold, retraction) the fitted motion predicts a target the needle hides, so
    the wait is ``tracker.grace_s`` longer (paused: the needle never advances on the prediction).
    Not while still searching for the vein wall: a tear during a long pause goes unfelt (the force
    monitor ignores drops while the needle stops) and the search would go on through a small lumen.
    """
    searching = c.phase == Phase.INSERT and c.insert.step == InsertStep.ADVANCE
    return c.p.dropout_timeout_s + (0.0 if searching else c.tracker.grace_s)


def guard(c: Context, t: float, reading: ForceReading, problem: str) -> tuple[bool, str | None]:
    """(may advance, reason to give the attempt up). Logs pauses once."""
    p, g = c.p, c.guard
    if reading.spike:
        g.spikes.append(t)
        g.pause_until = t + p.spike_pause_s
        c.event(f"force-sensor spike {reading.raw_n:.2f} N (filtered {reading.filtered_n:.2f} N): pausing")
    while g.spikes and t - g.spikes[0] > p.spike_window_s:
        g.spikes.popleft()
    if len(g.spikes) >= p.max_spikes:
        return False, f"force sensor unreliable: {len(g.spikes)} spikes in {p.spike_window_s} s"
    if reading.filtered_n > p.force_pause_n:
        if g.force_high_since is None:
            g.force_high_since = t
            c.event(f"force {reading.filtered_n:.2f} N above {p.force_pause_n} N: pausing")
        elif t - g.force_high_since > p.force_pause_timeout_s:
            return False, f"force stayed above {p.force_pause_n} N for {p.force_pause_timeout_s} s"
    else:
        g.force_high_since = None
    age = c.tracker.age(t)
    if age > fix_timeout_s(c):
        return False, f"perception lost the target: no ultrasound fix for {age:.1f} s"
    if problem:
        if g.blocked_since is None:
            g.blocked_since = t
        elif t - g.blocked_since > p.dropout_timeout_s:
            return False, problem
    else:
        g.blocked_since = None
    ok = t >= g.pause_until and g.force_high_since is None and age <= p.perception_max_age_s and not problem
    if not ok:
        msg = "paused: " + (
            "waiting for a fresh target fix"
            if age > p.perception_max_age_s
            else problem.split(" (")[0]
            if problem
            else "force spike"
            if t < g.pause_until
            else "force high"
        )
        if msg != g.paused_msg:
            g.paused_msg = msg
            c.event(msg)
    else:
        g.paused_msg = ""
    return ok, None
