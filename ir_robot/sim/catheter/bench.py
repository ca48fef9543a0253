"""Speed of the instrument mechanics: real-time factor and env steps/s in a tortuous tube.

``measure_realtime_factor`` inserts an instrument at the fastest drive (35 mm/s with the hub
turning at pi rad/s) into a seeded tortuous tube until at least ``min_segments`` segments are
inside, then times ``steps`` control steps of pushing and turning (insertion alternating with
short pull-backs so the device keeps working against the wall). For ``ir-robot bench sim``:
``catheter_realtime_factor`` (simulated s per wall s) and ``catheter_env_steps_per_s``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ir_robot.sim.catheter.drive import CatheterDevice, DriveCommand
from ir_robot.sim.catheter.instrument import load_instrument
from ir_robot.sim.catheter.lumen import tortuous_tube
from ir_robot.sim.catheter.rod import max_penetration_mm


def measure_realtime_factor(
    instrument: str = "catheter_5fr_cobra",
    *,
    control_hz: float = 10.0,
    steps: int = 100,
    min_segments: int = 60,
    radius_mm: float = 2.5,
    seed: int = 0,
) -> dict[str, float]:
    """Time the mechanics on one core and return the figures (see the module doc)."""
    spec = load_instrument(instrument)
    dt = 1.0 / control_hz
    lumen = tortuous_tube(600.0, radius_mm, amplitude_mm=10.0, seed=seed)
    dev = CatheterDevice(spec, lumen, [2.0, 0.0, 0.0], [1.0, 0.0, 0.0], inserted_mm=0.0)
    warm = 0
    while dev.rod.n_free - 1 < min_segments and warm < 400:
        dev.step(DriveCommand(35.0, math.pi if (warm // 10) % 2 == 0 else -math.pi), dt)
        warm += 1
    contacts: list[float] = []
    worst = -math.inf
    peak = 0.0
    t0 = time.perf_counter()
    for i in range(steps):
        v = 35.0 if i % 10 < 7 else -35.0
        w = math.pi if (i // 10) % 2 == 0 else -math.pi
        res = dev.step(DriveCommand(v, w), dt)
        contacts.append(res.forces.n_contacts / max(dev.rod.n_free, 1))
        peak = max(peak, res.max_wall_force_n)
    wall = time.perf_counter() - t0
    worst = max(worst, max_penetration_mm(dev.rod))
    return {
        "catheter_realtime_factor": steps * dt / wall,
        "catheter_env_steps_per_s": steps / wall,
        "segments_inside": float(dev.rod.n_free - 1),
        "contact_fraction_mean": float(np.mean(contacts)),
        "max_wall_force_n": peak,
        "final_penetration_mm": worst,
        "inserted_mm": dev.rod.inserted_mm,
    }
