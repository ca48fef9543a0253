"""A venipuncture on a rig that runs on the wall clock: the benchtop GRBL rig or its emulator.

:func:`run_venipuncture` wraps the backend in the safety layer (config ``safety``), builds the
controller within the safety layer's planning limits and runs :func:`~ir_robot.control.runner.run_procedure`
paced by the wall clock. The controller adapts to the rig by itself: joints with equal limits or
a zero speed limit (z_mm, pitch_rad, probe_yaw_rad on the 3-axis stage) are held, and the entry is
planned at the fixed pitch and height. ``config/venipuncture_rig.yaml`` tunes it for GRBL jogging.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ir_robot.control.config import VenipunctureConfig
from ir_robot.control.runner import ProcedureResult, run_procedure
from ir_robot.control.safety import SafeRig
from ir_robot.control.venipuncture import VenipunctureController


def default_rig_config_path():
    """``config/venipuncture_rig.yaml``: the venipuncture configuration tuned for GRBL jogging on the benchtop rig."""
    from ir_robot.paths import data_path

    return data_path("config", "venipuncture_rig.yaml")


def run_venipuncture(
    rig,
    camera_fn: Callable,
    config: VenipunctureConfig,
    us_perception,
    nir_perception=None,
    *,
    max_time_s: float = 120.0,
    on_tick: Callable | None = None,
    settle_timeout_s: float = 5.0,
) -> tuple[ProcedureResult, VenipunctureController, SafeRig]:
    """Run one procedure on ``rig`` (a backend or a :class:`SafeRig`) with images from ``camera_fn(wanted)``.

    Returns (result, controller, safety layer) once the rig has come to rest (at most ``settle_timeout_s``
    after the controller finished). On a safety trip the rig is left stopped where it is
    (the needle may still be in: retract it first, docs/rig.md "Safety checklist").
    """
    from ir_robot.control.limits import planning_limits

    safe = rig if isinstance(rig, SafeRig) else SafeRig(rig, config.safety)
    lower, upper = planning_limits(*safe.rig.limits(), safe.config)
    controller = VenipunctureController(
        config, us_perception, nir_perception, lower=lower, upper=upper, velocity_limits=safe.velocity_limits()
    )
    result = run_procedure(safe, camera_fn, controller, config.control.dt_s, max_time_s, on_tick=on_tick)
    if result.safety_trip is None:  # the last command was a stop: let the queued motion finish
        deadline = time.monotonic() + settle_timeout_s
        while safe.read_state().moving and time.monotonic() < deadline:
            time.sleep(0.05)
    return result, controller, safe
