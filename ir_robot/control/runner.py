"""``run_procedure``: the control loop shared by the demo, the evaluation, the ROS controller
node and the serial rig.

Each tick: read the rig state through the safety layer, take the images the controller asks
for, compute one command, send it through the safety layer, then let time pass: a simulated
rig is advanced by exactly ``dt`` (``advance=rig.advance``); a real rig runs on the wall clock
(the loop sleeps to the next tick). A safety trip stops the rig (the safety layer did that),
ends the procedure and is reported; a controller that overruns ``max_time_s`` is told to
abort (retract) and gets ``abort_grace_s`` more to get the needle out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ir_robot.control.safety import SafeRig, SafetyConfig
from ir_robot.core.errors import SafetyTrip
from ir_robot.core.protocols import Controller
from ir_robot.core.types import Observation
from ir_robot.devices.base import Rig


@dataclass
class ProcedureResult:
    """How a :func:`run_procedure` run ended: the controller's outcome, ticks, times and any safety trip."""

    outcome: object  # the controller's Outcome
    ticks: int
    elapsed_s: float  # rig time from the first to the last tick
    wall_s: float
    safety_trip: str | None  # "reason: detail" of the trip that ended it, if any
    timed_out: bool = False


def run_procedure(
    rig: Rig,
    camera_fn: Callable[[frozenset[str]], Observation],
    controller: Controller,
    dt: float,
    max_time_s: float,
    *,
    advance: Callable[[float], object] | None = None,
    on_tick: Callable | None = None,
    safety: SafetyConfig | None = None,
    abort_grace_s: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.monotonic,
) -> ProcedureResult:
    """Run ``controller`` on ``rig`` until it is done, tripped or out of time.

    ``rig``: a :class:`SafeRig` (or a backend, which is wrapped in one with ``safety``).
    ``camera_fn(wanted)`` returns an :class:`Observation` with the wanted images ("us", "nir").
    ``advance(dt)``: advance a simulated clock by ``dt``; None means wall-clock pacing.
    ``on_tick(state, observation, command, controller)`` is called after every command.
    """
    safe = rig if isinstance(rig, SafeRig) else SafeRig(rig, safety)
    w0 = wall_clock()
    t_first = None
    ticks = 0
    trip_msg = None
    timed_out = False
    next_wall = wall_clock()
    state = safe.read_state()
    try:
        while True:
            state = safe.read_state()
            if t_first is None:
                t_first = state.stamp_s
            elapsed = state.stamp_s - t_first
            if safe.trip is not None:
                trip_msg = f"{safe.trip.reason}: {safe.trip.detail}"
                controller.fail_now(f"safety trip [{trip_msg}]")
            if controller.done:
                break
            if elapsed > max_time_s and not timed_out:
                timed_out = True
                controller.abort(f"time limit {max_time_s:.0f} s reached")
            if elapsed > max_time_s + abort_grace_s:
                safe.stop("procedure overran its time limit and the abort grace time")
                controller.fail_now(f"stopped: still running {abort_grace_s:.0f} s after the time limit")
                break
            safe.set_insertion_target(getattr(controller, "insertion_target_mm", None))
            wanted = controller.sensors(state)
            obs = camera_fn(wanted) if wanted else Observation()
            cmd = controller.compute(state, obs, dt)
            try:
                safe.command(cmd)
            except SafetyTrip as trip:
                trip_msg = f"{trip.reason}: {trip.detail}"
                controller.fail_now(f"safety trip [{trip_msg}]")
            if on_tick is not None:
                on_tick(state, obs, cmd, controller)
            ticks += 1
            if advance is not None:
                advance(dt)
            else:
                next_wall += dt
                pause = next_wall - wall_clock()
                if pause > 0:
                    sleep(pause)
                else:
                    next_wall = wall_clock()
    except BaseException:
        safe.stop("control loop error")
        raise
    return ProcedureResult(
        controller.outcome, ticks, state.stamp_s - (t_first or state.stamp_s), wall_clock() - w0, trip_msg, timed_out
    )
