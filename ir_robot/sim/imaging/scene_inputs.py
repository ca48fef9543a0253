"""The plain inputs the fluoroscopy and tip-camera renderers take (no dependency on the anatomy or rod code).

Coordinates are the patient frame in mm, DICOM LPS like the anatomy module: +x to the patient's
left, +y posterior, +z cranial (towards the head); the patient lies supine on the table. The
anatomy and instrument modules hand their centrelines and node positions over in this frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ir_robot.core.errors import ConfigError

F64 = NDArray[np.float64]


def _points(owner: str, name: str, pts: object, min_len: int = 2) -> F64:
    a = np.asarray(pts, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] < min_len:
        raise ConfigError(f"{owner}.{name}: expected an (N, 3) array of mm with N >= {min_len}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{owner}.{name}: contains non-finite values")
    return a


@dataclass(frozen=True)
class VesselTube:
    """One vessel branch: a centreline polyline (N, 3) mm with the lumen radius (N,) mm at each point."""

    name: str
    points_mm: F64
    radii_mm: F64

    def __post_init__(self) -> None:
        pts = _points("VesselTube", "points_mm", self.points_mm)
        r = np.asarray(self.radii_mm, dtype=np.float64).reshape(-1)
        if r.shape[0] != pts.shape[0]:
            raise ConfigError(f"VesselTube.radii_mm: expected {pts.shape[0]} radii (one per point), got {r.shape[0]}")
        if not np.all(np.isfinite(r)) or np.any(r <= 0.0) or np.any(r > 40.0):
            raise ConfigError("VesselTube.radii_mm: every radius must be in (0, 40] mm")
        object.__setattr__(self, "points_mm", pts)
        object.__setattr__(self, "radii_mm", r)


@dataclass(frozen=True)
class RadiopaqueRod:
    """An instrument (guidewire or catheter) as node positions (N, 3) mm, proximal first, tip last.

    ``outer_diameter_mm`` is its diameter (0.89 mm for a 0.035" wire, 1.33-2.0 mm for 4-6 Fr);
    ``attenuation_per_mm`` its linear attenuation coefficient (radiopacity), 1/mm.
    """

    points_mm: F64
    outer_diameter_mm: float = 0.89
    attenuation_per_mm: float = 0.5
    name: str = "instrument"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points_mm", _points("RadiopaqueRod", "points_mm", self.points_mm))
        if not 0.1 <= float(self.outer_diameter_mm) <= 10.0:
            raise ConfigError(
                f"RadiopaqueRod.outer_diameter_mm: value {self.outer_diameter_mm!r} is outside [0.1, 10.0] mm"
            )
        if not 0.0 <= float(self.attenuation_per_mm) <= 20.0:
            raise ConfigError(
                f"RadiopaqueRod.attenuation_per_mm: value {self.attenuation_per_mm!r} is outside [0.0, 20.0] 1/mm"
            )

    @property
    def tip_mm(self) -> F64:
        """The distal tip (the last node), mm."""
        tip: F64 = self.points_mm[-1]
        return tip


@dataclass(frozen=True)
class ValveRing:
    """A prosthetic valve's radiopaque ring as a torus: centre (mm), axis normal, ring and tube radii (mm)."""

    centre_mm: tuple[float, float, float]
    normal: tuple[float, float, float]
    radius_mm: float = 11.5
    tube_radius_mm: float = 1.2
    attenuation_per_mm: float = 0.6
    n_points: int = field(default=64)

    def __post_init__(self) -> None:
        n = np.asarray(self.normal, dtype=np.float64)
        if n.shape != (3,) or not np.isfinite(n).all() or np.linalg.norm(n) < 1e-9:
            raise ConfigError(f"ValveRing.normal: expected a non-zero 3-vector, got {self.normal!r}")
        if not 0.0 < self.tube_radius_mm < self.radius_mm <= 40.0:
            raise ConfigError("ValveRing: need 0 < tube_radius_mm < radius_mm <= 40 mm")

    def as_tube(self) -> VesselTube:
        """The ring as a closed tube polyline (for the same analytic path-length renderer as the vessels)."""
        n = np.asarray(self.normal, dtype=np.float64)
        n = n / np.linalg.norm(n)
        a = np.cross(n, [1.0, 0.0, 0.0])
        if np.linalg.norm(a) < 0.1:
            a = np.cross(n, [0.0, 1.0, 0.0])
        a = a / np.linalg.norm(a)
        b = np.cross(n, a)
        t = np.linspace(0.0, 2.0 * np.pi, self.n_points + 1)
        pts = np.asarray(self.centre_mm, dtype=np.float64) + self.radius_mm * (
            np.cos(t)[:, None] * a + np.sin(t)[:, None] * b
        )
        return VesselTube("valve_ring", pts, np.full(len(t), self.tube_radius_mm))
