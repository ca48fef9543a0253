"""What the catheter world shows in the PyBullet GUI: the vessel tubes and the instrument.

Only used with ``gui=True`` (headless worlds skip it: the mechanics does not need PyBullet
geometry). Every call carries the world's client id. PyBullet works in metres; the anatomy in mm.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt

from ir_robot.sim.anatomy.graph import VesselTree
from ir_robot.sim.anatomy.mesh import build_meshes

FloatArray = npt.NDArray[np.float64]

_VESSEL_RGBA = [0.85, 0.25, 0.25, 0.25]
_WIRE_RGB = [0.1, 0.1, 0.1]


def add_vessel_visuals(pb: Any, client: int, tree: VesselTree) -> list[int]:
    """One translucent visual body per branch (no collision shape: the rod has its own contact)."""
    meshes = build_meshes(tree)
    bodies = []
    with tempfile.TemporaryDirectory(prefix="ir_robot_vessels_") as folder:
        for name, path in meshes.export(folder).items():
            vis = pb.createVisualShape(
                pb.GEOM_MESH,
                fileName=str(path),
                meshScale=[1e-3, 1e-3, 1e-3],
                rgbaColor=_VESSEL_RGBA,
                physicsClientId=client,
            )
            bodies.append(pb.createMultiBody(baseMass=0, baseVisualShapeIndex=vis, physicsClientId=client))
            del name
    return bodies


def draw_instrument(pb: Any, client: int, positions_mm: FloatArray, lines: list[int]) -> list[int]:
    """Draw the instrument as debug line segments, replacing the previous drawing's items in place."""
    p = np.asarray(positions_mm, dtype=np.float64) / 1000.0
    out: list[int] = []
    for k in range(len(p) - 1):
        kwargs = {"replaceItemUniqueId": lines[k]} if k < len(lines) else {}
        out.append(
            pb.addUserDebugLine(
                p[k].tolist(), p[k + 1].tolist(), _WIRE_RGB, lineWidth=3.0, physicsClientId=client, **kwargs
            )
        )
    for extra in lines[len(out) :]:
        pb.removeUserDebugItem(extra, physicsClientId=client)
    return out
