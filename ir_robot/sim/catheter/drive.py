"""The proximal drive: translation and rotation of the hub, clamped to the rig's limits and split into substeps.

A control step of ``dt`` seconds at commanded hub velocities is cut into substeps so that no
substep advances more than ``max_advance_per_substep_mm`` nor turns more than
``max_roll_per_substep_rad``: at the fastest drive (35 mm/s, pi rad/s) and 10 Hz control that is
one substep of 3.5 mm (under any vessel radius, and the follow-the-leader guess moves each node
along the device's own path); within a substep the wall is linearised
at every node (an active-set Newton step stops a node at the wall), so a node cannot jump across it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ir_robot.sim.catheter.contact import WALL_FORCE_LIMIT_N, ForceReport
from ir_robot.sim.catheter.instrument import InstrumentSpec
from ir_robot.sim.catheter.lumen import Lumen
from ir_robot.sim.catheter.rod import ElasticRod

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DriveLimits:
    """The rig's hub limits (stEVE's: 35 mm/s and pi rad/s) and the substep bounds."""

    max_translation_mm_s: float = 35.0
    max_rotation_rad_s: float = math.pi
    max_advance_per_substep_mm: float = 3.5
    max_roll_per_substep_rad: float = 0.35


@dataclass(frozen=True)
class DriveCommand:
    """Hub velocities for one control step: insertion (mm/s, + pushes in) and roll (rad/s)."""

    translation_mm_s: float = 0.0
    rotation_rad_s: float = 0.0


@dataclass(frozen=True)
class StepResult:
    """What one control step did: the command applied (after clamping), forces and events."""

    applied: DriveCommand
    clamped: tuple[str, ...]
    substeps: int
    forces: ForceReport
    max_wall_force_n: float  # the largest wall force over all substeps of the step
    events: tuple[dict[str, float | int | str], ...] = field(default_factory=tuple)


def plan_substeps(command: DriveCommand, dt: float, limits: DriveLimits) -> tuple[DriveCommand, tuple[str, ...], int]:
    """Clamp ``command`` to ``limits`` and return it, the names of clamped axes, and the substep count."""
    clamped: list[str] = []
    v = command.translation_mm_s
    w = command.rotation_rad_s
    if not (math.isfinite(v) and math.isfinite(w)):
        raise ValueError(f"drive command must be finite, got {command}")
    if abs(v) > limits.max_translation_mm_s:
        v = math.copysign(limits.max_translation_mm_s, v)
        clamped.append("translation")
    if abs(w) > limits.max_rotation_rad_s:
        w = math.copysign(limits.max_rotation_rad_s, w)
        clamped.append("rotation")
    n = max(
        1,
        math.ceil(abs(v) * dt / limits.max_advance_per_substep_mm - 1e-9),
        math.ceil(abs(w) * dt / limits.max_roll_per_substep_rad - 1e-9),
    )
    return DriveCommand(v, w), tuple(clamped), n


class CatheterDevice:
    """One instrument in one lumen, driven at its hub: :meth:`step` applies a command for ``dt`` seconds."""

    def __init__(
        self,
        spec: InstrumentSpec,
        lumen: Lumen,
        access_point: npt.ArrayLike,
        direction: npt.ArrayLike,
        *,
        inserted_mm: float = 0.0,
        roll_rad: float = 0.0,
        limits: DriveLimits | None = None,
        up: npt.ArrayLike = (0.0, 0.0, 1.0),
    ):
        self.limits = limits or DriveLimits()
        self.rod = ElasticRod(spec, lumen, access_point, direction, inserted_mm=inserted_mm, roll_rad=roll_rad, up=up)

    def step(self, command: DriveCommand, dt: float, external: FloatArray | None = None) -> StepResult:
        """Apply hub velocities for ``dt`` seconds (quasi-static substeps); return forces and events."""
        applied, clamped, n = plan_substeps(command, dt, self.limits)
        h = dt / n
        peak = 0.0
        events: list[dict[str, float | int | str]] = []
        for _ in range(n):
            self.rod.substep(applied.translation_mm_s * h, applied.rotation_rad_s * h, h, external)
            f = self.rod.last_forces
            if f.max_wall_force_n > peak:
                peak = f.max_wall_force_n
        forces = self.rod.last_forces
        if peak > WALL_FORCE_LIMIT_N:
            node = int(np.argmax(forces.wall_force_magnitudes)) if forces.max_wall_force_n > 0 else -1
            events.append(
                {
                    "kind": "wall_force_over_limit",
                    "time_s": self.rod.time_s,
                    "force_n": peak,
                    "limit_n": WALL_FORCE_LIMIT_N,
                    "node": node,
                }
            )
        return StepResult(applied, clamped, n, forces, peak, tuple(events))

    @property
    def positions(self) -> FloatArray:
        """Positions of the inserted nodes (tip first) plus the clamp node at the access, (n_free+1, 3) mm."""
        return np.asarray(self.rod.x[: self.rod.n_free + 1], dtype=np.float64)

    @property
    def tip(self) -> FloatArray:
        """The distal tip position, mm."""
        return np.asarray(self.rod.x[0], dtype=np.float64)
