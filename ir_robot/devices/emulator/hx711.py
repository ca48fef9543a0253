"""The emulated HX711 load-cell board: one raw count per line at the configured rate, from a force model.

:class:`Hx711Emulator` is pure: it decides when a sample is due (:meth:`~Hx711Emulator.take_due`,
80 samples/s by default, never bursting after falling behind) and turns a force into
the line the board prints (:meth:`~Hx711Emulator.encode`, with the calibration of
the rig config and Gaussian reading noise). The force comes from ``force_fn``, by
default :class:`TissueForce`: the needle-tissue model on ``sim/phantoms/forearm.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ir_robot.core.types import JointVector, needle_direction
from ir_robot.devices.config import LoadCellConfig

ForceFn = Callable[[float, JointVector, float], float]
"""force_fn(t_s, joints, insert_rate_mm_s) -> axial needle force in newtons."""


class TissueForce:
    """The default ``force_fn``: the tissue model on the forearm phantom, built on first use.

    Needle pivot ``(x_mm, y_mm, z_mm fixed)``, direction ``(cos p, 0, -sin p)``; the
    model's own noise draws come from ``rng``.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.model: Any = None

    def __call__(self, t: float, joints: JointVector, rate: float) -> float:
        """Axial needle force (N) at ``joints`` inserting at ``rate`` mm/s, ``t`` seconds after the start."""
        if self.model is None:
            from ir_robot.paths import data_path
            from ir_robot.sim.phantom import Phantom, load_phantom
            from ir_robot.sim.tissue import ForceModelParams, NeedleTissueModel

            phantom = Phantom(load_phantom(data_path("sim", "phantoms", "forearm.yaml")))
            self.model = NeedleTissueModel(phantom, ForceModelParams(), needle_diameter_mm=0.9)
        pivot = (joints.x_mm, joints.y_mm, joints.z_mm)
        contact = self.model.update(pivot, needle_direction(joints.pitch_rad), joints.insert_mm, rate, t, self.rng)
        return float(contact.measured_force_n)


class Hx711Emulator:
    """Sample schedule and line encoding of the HX711 board (no clock, no I/O)."""

    def __init__(self, config: LoadCellConfig, rng: np.random.Generator, noise_counts: float) -> None:
        self.config = config
        self.rng = rng
        self.noise_counts = float(noise_counts)
        self.period = 1.0 / config.sample_rate_hz
        self.t_next = 0.0

    def restart(self, now: float) -> None:
        """The first sample is due at ``now``."""
        self.t_next = now

    def take_due(self, now: float) -> bool:
        """True, and the next sample scheduled one period on, when a sample is due at ``now``."""
        if now < self.t_next:
            return False
        self.t_next += self.period
        if self.t_next < now - 1.0:  # fell far behind (machine busy): do not burst
            self.t_next = now + self.period
        return True

    def counts(self, force_n: float) -> int:
        """The 24-bit reading for ``force_n`` newtons: tare + sign * force * slope + noise, rounded and clipped."""
        cfg = self.config
        counts = cfg.tare_counts + cfg.sign * force_n * cfg.counts_per_n + self.rng.normal(0.0, self.noise_counts)
        return int(np.clip(round(counts), -(2**23), 2**23 - 1))

    def encode(self, force_n: float) -> bytes:
        """The line the board prints for one sample of ``force_n`` newtons."""
        return f"{self.counts(force_n)}\r\n".encode("ascii")
