"""Image-synthesis speed on ONE core: ultrasound and NIR frames/s at the default 256x256.

``measure(quick)`` renders the default forearm phantom with a needle present (a 30 deg
in-plane insertion whose tip sits in the first vein), longitudinal and transverse for
ultrasound, and returns flat metrics. OpenCV is limited to one thread while measuring
(and restored after); torch is not involved. Renderer construction (speckle bank,
textures) is timed separately from per-frame rendering.
"""

from __future__ import annotations

import math
import time

import numpy as np


def _fps(fn, n: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def measure(quick: bool = False) -> dict:
    """Frames/s of UltrasoundRenderer.render and NirRenderer.render (one core, needle present)."""
    import cv2

    from ir_robot.core.types import NeedlePose, NirView, ProbePose, needle_direction
    from ir_robot.paths import data_path
    from ir_robot.sim.nir import NirParams, NirRenderer
    from ir_robot.sim.phantom import Phantom, load_phantom
    from ir_robot.sim.scenes import plan_straight_insertion
    from ir_robot.sim.ultrasound import UltrasoundParams, UltrasoundRenderer

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        phantom = Phantom(load_phantom(data_path("sim", "phantoms", "forearm.yaml")))
        plan = plan_straight_insertion(phantom, vessel=0, pitch_deg=30.0)
        d = needle_direction(plan.pitch_rad)
        tip = np.asarray(plan.pivot_mm) + plan.distance_mm * d
        needle = NeedlePose(
            (float(tip[0]), float(tip[1]), float(tip[2])), (float(d[0]), float(d[1]), float(d[2])), 0.908
        )
        y_vein = float(phantom.centreline(np.array(tip[0]))[0][0])
        longitudinal = ProbePose(float(tip[0]) - 3.0, y_vein, 0.0)
        transverse = ProbePose(float(tip[0]), 0.0, math.pi / 2)
        n = 60 if quick else 400
        out: dict = {}

        t0 = time.perf_counter()
        us = UltrasoundRenderer(UltrasoundParams(), seed=0)
        out["us_init_s"] = round(time.perf_counter() - t0, 3)
        rng = np.random.default_rng(0)
        frame = us.render(phantom, longitudinal, needle, 0.0, rng)
        out["us_fps"] = round(_fps(lambda: us.render(phantom, longitudinal, needle, 0.0, rng), n), 1)
        out["us_fps_transverse"] = round(_fps(lambda: us.render(phantom, transverse, needle, 0.0, rng), n), 1)
        out["us_frame_shape"] = "x".join(map(str, frame.image.shape))
        out["us_needle_visible"] = bool(frame.meta["needle_visible"])

        t0 = time.perf_counter()
        nir = NirRenderer(NirParams(), seed=0)
        out["nir_init_s"] = round(time.perf_counter() - t0, 3)
        view = NirView(0.0, 0.0, 50.0)
        frame = nir.render(phantom, view, 0.0, rng, needle=needle)
        out["nir_fps"] = round(_fps(lambda: nir.render(phantom, view, 0.0, rng, needle=needle), n), 1)
        out["nir_frame_shape"] = "x".join(map(str, frame.image.shape))
        out["nir_veins_labelled"] = len(frame.vessel_kinds)
        out["cv2_threads"] = 1
        return out
    finally:
        cv2.setNumThreads(threads)


def run(quick: bool = False) -> dict:
    """Same as :func:`measure` (so it can also be registered as its own bench area)."""
    return measure(quick=quick)
