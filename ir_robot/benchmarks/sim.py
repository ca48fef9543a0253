"""Simulator speed on one core: physics steps/s (PyBullet + force model), US and NIR frames/s, and the
catheter world's parts built so far.

The physics figure is measured on a real insertion (the needle in tissue, the force
model active), not an idle rig. Frames are 256x256 with the needle present.
``catheter.*``: the instrument mechanics (:func:`ir_robot.sim.catheter.bench.measure_realtime_factor`) at
the default 10 Hz control, a guidewire driven at the fastest drive in an arch-like U tube and a 5F Cobra
in a contact-heavy coil, each with its contact fraction beside the speed (the issue's floor asks for most
segments in contact, so read the two together). ``fluoro_fps_256``, ``fluoro_fps_512``, ``tipcam_fps``: the
catheter world's imaging (:func:`ir_robot.sim.imaging.bench.measure_imaging_speed`).
"""

from __future__ import annotations

import time

import numpy as np


def run(quick: bool = False) -> dict:
    """The simulator area's flat results: physics steps/s (still and moving phantom), US/NIR frames/s, one thread."""
    import cv2

    from ir_robot.core.types import JointVector, RigCommand
    from ir_robot.sim.scenes import plan_straight_insertion
    from ir_robot.sim.world import NeedleWorld, WorldConfig

    cv2.setNumThreads(1)
    out: dict = {}
    for motion in (False, True):
        with NeedleWorld(WorldConfig(motion=motion)) as world:
            world.reset(seed=1)
            plan = plan_straight_insertion(world.phantom, vessel=0)
            world.reset_joints(JointVector(*plan.pivot_mm, plan.pitch_rad, 0.0, 0.0))
            dt = 0.05
            n_calls = 40 if quick else 200
            rate = plan.distance_mm / (n_calls * dt)
            steps = 0
            t0 = time.perf_counter()
            for _ in range(n_calls):
                world.step(RigCommand(JointVector(insert_mm=rate), dt), dt)
                steps += int(round(dt * world.config.physics_hz))
            el = time.perf_counter() - t0
            key = "physics_steps_per_s" if not motion else "physics_steps_per_s_motion"
            out[key] = round(steps / el, 1)
            if not motion:
                out["sim_realtime_factor"] = round(steps / world.config.physics_hz / el, 2)
                n_frames = 50 if quick else 300
                world.ultrasound()
                t0 = time.perf_counter()
                for _ in range(n_frames):
                    fr = world.ultrasound()
                out["us_fps"] = round(n_frames / (time.perf_counter() - t0), 1)
                out["us_frame_shape"] = "x".join(map(str, fr.image.shape))
                world.nir()
                t0 = time.perf_counter()
                for _ in range(n_frames):
                    fr = world.nir()
                out["nir_fps"] = round(n_frames / (time.perf_counter() - t0), 1)
                out["nir_frame_shape"] = "x".join(map(str, fr.image.shape))
                out["needle_in_us_frame"] = bool(np.any(world.ultrasound().labels == 3))
    out["threads"] = 1
    out.update(_catheter(quick))
    return out


def _catheter(quick: bool) -> dict:
    """The catheter world's parts: instrument mechanics (with the contact fraction reached) and imaging speed."""
    from ir_robot.sim.catheter.bench import measure_realtime_factor

    out: dict = {}
    steps = 30 if quick else 100
    for name, instrument, layout in (
        ("wire_arch", "guidewire_035_angled", "arch"),
        ("cobra_helix", "catheter_5fr_cobra", "helix"),
    ):
        r = measure_realtime_factor(instrument, layout=layout, steps=steps)
        for key in ("catheter_realtime_factor", "catheter_env_steps_per_s", "contact_fraction_mean", "segments_inside"):
            out[f"catheter.{name}.{key.removeprefix('catheter_')}"] = round(float(r[key]), 3)
    from ir_robot.sim.endovascular.bench import measure_world_speed

    for name, instrument in (("world_arch_wire", "guidewire_035_angled"), ("world_arch_cobra", "catheter_5fr_cobra")):
        rw = measure_world_speed(instrument, steps=steps)
        keys = (
            "catheter_realtime_factor",
            "catheter_env_steps_per_s",
            "contact_fraction_mean",
            "touching_fraction_mean",
        )
        for key in (*keys, "segments_inside"):
            out[f"catheter.{name}.{key.removeprefix('catheter_')}"] = round(float(rw[key]), 3)
        if name == "world_arch_wire":  # the headline keys: the whole world, a real arch, the guidewire
            out["catheter_realtime_factor"] = round(float(rw["catheter_realtime_factor"]), 3)
            out["catheter_env_steps_per_s"] = round(float(rw["catheter_env_steps_per_s"]), 3)
    from ir_robot.sim.imaging.bench import measure_imaging_speed

    for key, value in measure_imaging_speed(n_frames=60 if quick else 300).items():
        out[key] = round(float(value), 1)
    return out
