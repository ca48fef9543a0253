"""Speed of the instrument mechanics: real-time factor and env steps/s in a tortuous tube.

``measure_realtime_factor`` inserts an instrument at the fastest drive (35 mm/s with the hub
turning at pi rad/s) into an arch-like U tube (or a seeded tortuous tube) until at least
``min_segments`` segments and 250 mm are inside, then times ``steps`` control steps of pushing
and turning (insertion alternating with short pull-backs so the device keeps working against
the wall). For ``ir-robot bench sim``:
``catheter_realtime_factor`` (simulated s per wall s) and ``catheter_env_steps_per_s``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ir_robot.sim.catheter.drive import CatheterDevice, DriveCommand
from ir_robot.sim.catheter.instrument import load_instrument
from ir_robot.sim.catheter.lumen import Lumen, TubeLumen, tortuous_tube
from ir_robot.sim.catheter.rod import max_penetration_mm


def arch_tube(radius_mm: float = 12.0, bend_radius_mm: float = 40.0, straight_mm: float = 150.0) -> TubeLumen:
    """An arch-like U: a straight ascent along +x, a 180 degree bend, a straight descent back along -x."""
    th = np.linspace(0.0, math.pi, 91)
    up = np.stack([np.linspace(0.0, straight_mm, 31), np.zeros(31), np.zeros(31)], axis=1)
    arc = np.stack(
        [straight_mm + bend_radius_mm * np.sin(th), bend_radius_mm * (1.0 - np.cos(th)), np.zeros_like(th)], axis=1
    )
    down = np.stack([np.linspace(straight_mm, 0.0, 31), np.full(31, 2.0 * bend_radius_mm), np.zeros(31)], axis=1)
    return TubeLumen([np.concatenate([up, arc[1:], down[1:]])], [radius_mm])


def helix_tube(
    radius_mm: float = 3.0, coil_radius_mm: float = 20.0, pitch_mm: float = 30.0, turns: float = 3.5
) -> TubeLumen:
    """A lead-in along +x, then a helix about the x axis: a device in it presses the outer wall along its length."""
    th = np.linspace(0.0, 2.0 * math.pi * turns, int(90 * turns) + 1)
    lead = np.array([[-60.0, coil_radius_mm, 0.0]])
    coil = np.stack([pitch_mm * th / (2.0 * math.pi), coil_radius_mm * np.cos(th), coil_radius_mm * np.sin(th)], axis=1)
    return TubeLumen([np.concatenate([lead, coil])], [radius_mm])


def measure_realtime_factor(
    instrument: str = "guidewire_035_angled",
    *,
    layout: str = "arch",
    control_hz: float = 10.0,
    steps: int = 100,
    min_segments: int = 60,
    radius_mm: float | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Time the mechanics on one core and return the figures (see the module doc).

    ``layout`` "arch": a 24 mm aorta-like U (the device rides the outer wall of the bend);
    "tortuous": a seeded 3-D wiggling tube of radius ``radius_mm`` (default 2.5 mm);
    "helix": a coiled 6 mm tube, where most of the inserted device presses on the wall.
    """
    spec = load_instrument(instrument)
    dt = 1.0 / control_hz
    lumen: Lumen
    if layout == "arch":
        lumen = arch_tube(radius_mm if radius_mm is not None else 12.0)
    elif layout == "helix":
        lumen = helix_tube(radius_mm if radius_mm is not None else 3.0)
    elif layout == "tortuous":
        lumen = tortuous_tube(600.0, radius_mm if radius_mm is not None else 2.5, amplitude_mm=10.0, seed=seed)
    else:
        raise ValueError(f"layout must be 'arch', 'helix' or 'tortuous', not {layout!r}")
    start = [-58.0, 20.0, 0.0] if layout == "helix" else [2.0, 0.0, 0.0]
    dev = CatheterDevice(spec, lumen, start, [1.0, 0.0, 0.0], inserted_mm=0.0)
    warm = 0
    while (dev.rod.n_free - 1 < min_segments or dev.rod.inserted_mm < 250.0) and warm < 400:
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
