"""Speed of the whole catheter world in a real anatomy: the instrument driven through the aortic arch.

``measure_world_speed`` resets a :class:`CatheterWorld` (type I arch by default), pushes the instrument
at the fastest drive until its tip is in the arch (or ``max_insert_mm`` is in), then times ``steps``
control steps at 10 Hz of pushing (7 of every 10 forward, 3 back) while the hub turns +-pi rad/s:
``world.step`` end to end (mechanics, contact, state), no imaging. For ``ir-robot bench sim``:
``catheter_realtime_factor`` and ``catheter_env_steps_per_s``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ir_robot.core.types import JointVector, RigCommand
from ir_robot.sim.endovascular.world import CatheterWorld, CatheterWorldConfig


def measure_world_speed(
    instrument: str = "guidewire_035_angled",
    *,
    anatomy: str = "type1",
    seed: int = 1,
    steps: int = 100,
    dt: float = 0.1,
    max_insert_mm: float = 650.0,
) -> dict[str, float | str]:
    """Real-time factor, env steps/s, segments inside, and the mean fraction of them in contact.

    ``contact_fraction_mean``: nodes pressed into the wall (carrying a wall force);
    ``touching_fraction_mean``: nodes within 0.1 mm of the wall (sampled every 10th step, untimed).
    """
    with CatheterWorld(CatheterWorldConfig(anatomy=anatomy, instrument=instrument)) as world:
        s = world.reset(seed=seed)
        while s.tip_branch != "aortic_arch" and s.inserted_mm < max_insert_mm:
            s = world.step(RigCommand(JointVector(insert_mm=35.0), dt), dt)
        contact = 0.0
        touching = 0.0
        segments = 0
        t0 = time.perf_counter()
        for k in range(steps):
            v = 35.0 if k % 10 < 7 else -35.0
            w = math.pi if (k // 5) % 2 == 0 else -math.pi
            s = world.step(RigCommand(JointVector(insert_mm=v, roll_rad=w), dt), dt)
            contact += s.n_contacts / max(s.n_inserted_nodes, 1)
            segments = max(segments, s.n_inserted_nodes)
            if k % 10 == 9:  # sampled outside the timing's hot path: nodes within 0.1 mm of the wall
                t_pause = time.perf_counter()
                x = world.device.positions[:-1]
                d, _ = world.lumen.signed_distance(x)
                touching += float(np.mean(d + world.spec.contact_diameter_mm / 2 > -0.1))
                t0 += time.perf_counter() - t_pause
        wall = time.perf_counter() - t0
    return {
        "catheter_realtime_factor": steps * dt / wall,
        "catheter_env_steps_per_s": steps / wall,
        "segments_inside": float(segments),
        "contact_fraction_mean": contact / steps,
        "touching_fraction_mean": touching / max(steps // 10, 1),
        "tip_branch": s.tip_branch,
    }
