"""A small hand-made aorta, valve ring and guidewire in the patient frame, for pictures, benches and tests.

The renderers take plain tubes and rods; this scene stands in for the procedural anatomy and
the rod mechanics (built elsewhere) so the imaging can be exercised on its own. Units mm, the
patient frame LPS (+x left, +y posterior, +z cranial) with the origin at the aortic valve annulus,
as the anatomy module uses.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ir_robot.sim.imaging.scene_inputs import RadiopaqueRod, ValveRing, VesselTube

F64 = NDArray[np.float64]


def _bezier(p: list[list[float]], n: int) -> F64:
    """Points along a Bezier curve through control points ``p`` (de Casteljau)."""
    ctrl = np.asarray(p, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    pts = np.broadcast_to(ctrl, (n, *ctrl.shape)).copy()
    while pts.shape[1] > 1:
        pts = (1.0 - t) * pts[:, :-1] + t * pts[:, 1:]
    out: F64 = pts[:, 0]
    return out


#: the centreline of the aortic pathway from the right common iliac to the aortic root
_AORTA_CTRL = [
    [-45.0, 30.0, -500.0],
    [-20.0, 50.0, -390.0],
    [15.0, 60.0, -320.0],
    [15.0, 60.0, -50.0],
    [25.0, 55.0, 80.0],
    [5.0, 30.0, 130.0],
    [-10.0, 0.0, 80.0],
    [-8.0, 0.0, 0.0],
]


def demo_aorta_path(n: int = 200) -> F64:
    """The guidewire's route (right iliac -> abdominal aorta -> arch -> ascending aorta), (n, 3) mm."""
    return _bezier(_AORTA_CTRL, n)


def demo_vessels() -> list[VesselTube]:
    """Iliacs, aorta with arch, three arch branches and two renal arteries as tubes."""
    path = demo_aorta_path(160)
    s = np.linspace(0.0, 1.0, len(path))
    radius = np.interp(s, [0.0, 0.12, 0.2, 0.55, 0.8, 1.0], [5.0, 6.0, 9.0, 11.0, 13.0, 15.0])
    tubes = [VesselTube("aorta", path, radius)]
    left_iliac = _bezier([[15.0, 60.0, -350.0], [35.0, 50.0, -410.0], [50.0, 30.0, -500.0]], 30)
    tubes.append(VesselTube("left_iliac", left_iliac, np.linspace(6.0, 5.0, 30)))
    top = path[np.argmax(path[:, 2])]
    for name, dx, r in (
        ("brachiocephalic", -22.0, 6.0),
        ("left_common_carotid", 2.0, 3.8),
        ("left_subclavian", 22.0, 4.5),
    ):
        base = top + np.array([dx * 0.6, 0.0, -4.0])
        pts = _bezier([list(base), list(base + [dx * 0.4, 0.0, 50.0]), list(base + [dx * 1.5, -5.0, 120.0])], 24)
        tubes.append(VesselTube(name, pts, np.full(24, r)))
    for name, side in (("left_renal", 1.0), ("right_renal", -1.0)):
        base = np.array([15.0, 60.0, -230.0])
        pts = _bezier([list(base), list(base + [side * 40.0, 5.0, -5.0]), list(base + [side * 85.0, 20.0, -20.0])], 20)
        tubes.append(VesselTube(name, pts, np.full(20, 2.8)))
    return tubes


def demo_valve() -> ValveRing:
    """A prosthetic valve ring at the aortic root."""
    return ValveRing(centre_mm=(-8.0, -1.0, 3.0), normal=(0.1, -0.3, 1.0), radius_mm=11.5, tube_radius_mm=1.2)


def demo_wire(advance: float = 0.8, n_nodes: int = 80) -> RadiopaqueRod:
    """A 0.035-inch guidewire advanced along the aortic route to fraction ``advance`` of its length."""
    path = demo_aorta_path(400)
    k = max(int(len(path) * float(np.clip(advance, 0.05, 1.0))), 2)
    sub = path[:k]
    # resample to n_nodes evenly along the advanced part, with a small wander off the centreline
    seg = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(sub, axis=0), axis=1))]
    t = np.linspace(0.0, seg[-1], n_nodes)
    pts = np.stack([np.interp(t, seg, sub[:, i]) for i in range(3)], 1)
    pts[:, 0] += 3.0 * np.sin(t / 40.0)
    return RadiopaqueRod(pts, outer_diameter_mm=0.89, attenuation_per_mm=0.6, name="guidewire")
