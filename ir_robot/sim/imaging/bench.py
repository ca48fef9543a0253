"""Speed of the catheter-world imaging (frames per second on this process's core), for ``ir-robot bench sim``."""

from __future__ import annotations

import time
from collections.abc import Callable

from ir_robot.sim.imaging.carm import CArmParams
from ir_robot.sim.imaging.demo_scene import demo_valve, demo_vessels, demo_wire
from ir_robot.sim.imaging.fluoroscopy import FluoroscopyRenderer
from ir_robot.sim.imaging.tip_camera import CLASSES, TipCameraRenderer


def _fps(fn: Callable[[int], object], n: int) -> float:
    fn(0)  # warm-up (builds the pose cache)
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def measure_imaging_speed(n_frames: int = 300, seed: int = 0) -> dict[str, float]:
    """Frames/s of fluoroscopy at 256x256 and 512x512 (a guidewire advancing through the arch) and the tip camera.

    The static anatomy is cached per C-arm pose (built in the warm-up frame, not timed): the timed
    frames are what a running procedure produces at a fixed C-arm pose, wire moving every frame.
    """
    wires = [demo_wire(0.6 + 0.35 * k / 49) for k in range(50)]
    out: dict[str, float] = {}
    for size in (256, 512):
        carm = CArmParams(size_px=(size, size), isocentre_mm=(5.0, 30.0, 20.0))
        r = FluoroscopyRenderer(carm=carm, seed=seed)
        r.set_anatomy(demo_vessels(), demo_valve())

        def frame(i: int, r: FluoroscopyRenderer = r) -> object:
            return r.render([wires[i % len(wires)]])

        out[f"fluoro_fps_{size}"] = round(_fps(frame, n_frames), 1)
    cam = TipCameraRenderer(seed=seed)
    states = [(CLASSES[k % 3], 0.05 * (k % 20), (0.1 * k, 0.05 * k)) for k in range(60)]

    def tip(i: int) -> object:
        s, f, off = states[i % len(states)]
        return cam.render(s, f, off)

    out["tipcam_fps"] = round(_fps(tip, 3 * n_frames), 1)
    return out
