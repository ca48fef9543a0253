"""Wall contact: a stiff penalty on the lumen's signed distance, and the force report built from it.

Each free node must keep its centreline at least the device radius inside the wall, i.e. the
clearance ``g = d(x) + r`` must be <= 0. Where ``g > 0`` the wall pushes back with
``k * g`` along ``-grad d`` (into the lumen); the solver minimises ``k/2 g^2`` together with the
elastic energy, so the worst penetration at a wall force ``F`` is ``F / k`` (0.03 mm at 1.5 N
with the default 50 N/mm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ir_robot.sim.catheter.lumen import Lumen

FloatArray = npt.NDArray[np.float64]

#: Wall force above which a perforation-risk event is raised (the bound used in the literature), N.
WALL_FORCE_LIMIT_N = 1.5


@dataclass(frozen=True)
class ContactEval:
    """The contact state of a set of nodes: clearance, outward normal, and which are touching."""

    clearance: FloatArray  # (N,) d + r, mm (> 0 means pressed into the wall)
    normal: FloatArray  # (N, 3) unit outward normal (grad of the signed distance)
    active: npt.NDArray[np.bool_]  # (N,) clearance > 0


def evaluate(lumen: Lumen, points: FloatArray, radius_mm: float) -> ContactEval:
    """Query the lumen at ``points`` and mark the nodes whose surface reaches the wall."""
    d, grad = lumen.signed_distance(points)
    g = np.asarray(d, dtype=np.float64) + radius_mm
    return ContactEval(clearance=g, normal=np.asarray(grad, dtype=np.float64), active=g > 0.0)


@dataclass(frozen=True)
class ForceReport:
    """Forces after a solve, in newtons.

    ``wall_forces`` holds the force the wall applies to each node (into the lumen, zero when free;
    nodes outside the body are zero). ``tip_force`` is what the distal tip node presses on the
    wall (the reaction of its wall force). ``axial_force_n`` is what a load cell at the drive
    reads along the insertion axis, positive when the device pushes back on the drive
    (compression: the anatomy resists insertion).
    """

    wall_forces: FloatArray
    tip_force: FloatArray
    axial_force_n: float
    max_wall_force_n: float
    n_contacts: int
    over_limit_nodes: tuple[int, ...] = field(default_factory=tuple)

    @property
    def wall_force_magnitudes(self) -> FloatArray:
        """Per-node wall force magnitudes, N."""
        return np.asarray(np.linalg.norm(self.wall_forces, axis=1), dtype=np.float64)


def wall_forces(ev: ContactEval, stiffness_n_per_mm: float) -> FloatArray:
    """Penalty wall force on each node (N, pointing into the lumen; zero where not touching)."""
    mag = stiffness_n_per_mm * np.where(ev.active, ev.clearance, 0.0)
    return np.asarray(-mag[:, None] * ev.normal, dtype=np.float64)
