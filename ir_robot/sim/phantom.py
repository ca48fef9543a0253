"""Venipuncture phantoms: the YAML schema, seeded random sampling and geometry queries.

A phantom is a block of tissue (skin, subcutaneous fat, muscle, from the surface
down) with 1-4 vessels running roughly along x. Geometry is analytic so that the
force model, the image synthesis and the ground truth all agree exactly.

Phantom frame: origin on the skin at the block centre, x along the block, y across,
z up (tissue at z < 0). Vessel ``i`` has its centreline at
``y(x) = y_mm + tan(yaw) x + curvature x^2 / 2`` and ``z(x) = -(depth_mm + tan(pitch) x)``
and an elliptical cross-section with lateral semi-axis r and vertical semi-axis
``r * compression`` (probe pressure squashes veins), r pulsating for arteries.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.config import from_dict, load, param, to_dict
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import Tissue


@dataclass(frozen=True)
class BlockSpec:
    """The tissue block's outer size: the phantom frame's origin is at the centre of its top (skin) face."""

    length_mm: float = param(80.0, range=(30.0, 300.0), unit="mm", help="extent along x")
    width_mm: float = param(50.0, range=(20.0, 200.0), unit="mm", help="extent along y")
    height_mm: float = param(30.0, range=(10.0, 100.0), unit="mm", help="extent along z")


@dataclass(frozen=True)
class LayerSpec:
    """One tissue layer. Mechanics follow Okamura, Simone & O'Leary 2004:
    stiffness ``k1*d + k2*d^2`` before its top membrane is punctured at
    ``puncture_force_n``, then friction per mm of shaft in the layer and a
    constant cutting force while the tip advances in it.
    """

    name: str = param(choices=("skin", "fat", "muscle"))
    thickness_mm: float = param(range=(0.3, 100.0), unit="mm")
    puncture_force_n: float = param(range=(0.0, 10.0), unit="N", help="force at which the top membrane tears")
    stiffness_n_per_mm: float = param(range=(0.0, 5.0), unit="N/mm")
    stiffness_n_per_mm2: float = param(0.0, range=(0.0, 5.0), unit="N/mm^2")
    friction_n_per_mm: float = param(0.02, range=(0.0, 0.5), unit="N/mm", help="per mm of shaft inside")
    cutting_force_n: float = param(0.2, range=(0.0, 5.0), unit="N")


@dataclass(frozen=True)
class VesselSpec:
    """One vessel: kind, lumen size, centreline (depth, lateral position, yaw, dive, curvature), probe
    compression, arterial pulsation, and the wall's thickness and mechanics (the force model's puncture).
    """

    kind: str = param("vein", choices=("vein", "artery"))
    diameter_mm: float = param(3.0, range=(0.8, 10.0), unit="mm")
    depth_mm: float = param(5.0, range=(1.0, 40.0), unit="mm", help="centre depth below skin at x=0")
    y_mm: float = param(0.0, range=(-100.0, 100.0), unit="mm", help="lateral position at x=0")
    yaw_deg: float = param(0.0, range=(-30.0, 30.0), unit="deg", help="angle to the x axis in the skin plane")
    pitch_deg: float = param(0.0, range=(-15.0, 15.0), unit="deg", help="dive angle (positive: deeper towards +x)")
    curvature_per_mm: float = param(0.0, range=(-0.02, 0.02), unit="1/mm", help="lateral curvature")
    compression: float = param(1.0, range=(0.3, 1.0), help="vertical/lateral axis ratio under probe pressure")
    pulsation: float = param(0.0, range=(0.0, 0.2), help="fractional diameter swing (arteries)")
    pulse_hz: float = param(1.2, range=(0.3, 3.0), unit="Hz")
    wall_thickness_mm: float = param(0.3, range=(0.05, 1.5), unit="mm")
    wall_puncture_force_n: float = param(0.6, range=(0.05, 5.0), unit="N")
    wall_stiffness_n_per_mm: float = param(0.3, range=(0.01, 5.0), unit="N/mm")


@dataclass(frozen=True)
class MotionSpec:
    """Phantom motion: slow drift plus periodic arm motion (world offset of the block)."""

    enabled: bool = False
    drift_mm_per_s: tuple[float, float, float] = param((0.0, 0.0, 0.0), range=(-2.0, 2.0), unit="mm/s")
    amplitude_mm: tuple[float, float, float] = param((0.0, 0.0, 0.0), range=(0.0, 10.0), unit="mm")
    frequency_hz: float = param(0.2, range=(0.0, 2.0), unit="Hz")
    phase_rad: float = param(0.0, range=(-7.0, 7.0), unit="rad")


@dataclass(frozen=True)
class PhantomSpec:
    """A whole phantom as data (the YAML schema): block, the three layers, 1-4 vessels, motion; validated
    on construction so a vessel outside the tissue is refused with its field and allowed range.
    """

    name: str = "phantom"
    block: BlockSpec = dataclasses.field(default_factory=BlockSpec)
    layers: tuple[LayerSpec, ...] = ()
    vessels: tuple[VesselSpec, ...] = ()
    motion: MotionSpec = dataclasses.field(default_factory=MotionSpec)

    def __post_init__(self) -> None:
        names = [layer.name for layer in self.layers]
        if names != ["skin", "fat", "muscle"]:
            raise ConfigError(
                f"field 'layers': expected exactly the layers [skin, fat, muscle] from the surface down, got {names}"
            )
        top = self.layers[0].thickness_mm + self.layers[1].thickness_mm
        if top >= self.block.height_mm:
            raise ConfigError(
                f"field 'layers': skin + fat ({top} mm) must be thinner than "
                f"block.height_mm ({self.block.height_mm} mm)"
            )
        if not 1 <= len(self.vessels) <= 4:
            raise ConfigError(f"field 'vessels': need 1 to 4 vessels, got {len(self.vessels)}")
        skin = self.layers[0].thickness_mm
        half_l, half_w = self.block.length_mm / 2, self.block.width_mm / 2
        for i, v in enumerate(self.vessels):
            r = v.diameter_mm / 2 * (1 + v.pulsation) + v.wall_thickness_mm
            xs = np.linspace(-half_l, half_l, 41)
            depth = v.depth_mm + np.tan(np.radians(v.pitch_deg)) * xs
            y = v.y_mm + np.tan(np.radians(v.yaw_deg)) * xs + 0.5 * v.curvature_per_mm * xs**2
            lo_depth, hi_depth = skin + r, self.block.height_mm - r
            if depth.min() < lo_depth or depth.max() > hi_depth:
                raise ConfigError(
                    f"field 'vessels[{i}].depth_mm': vessel runs outside the tissue (centre depth "
                    f"{depth.min():.2f}..{depth.max():.2f} mm); allowed range [{lo_depth:.2f}, {hi_depth:.2f}] mm "
                    f"below the skin for diameter {v.diameter_mm} mm"
                )
            if np.abs(y).max() > half_w - r:
                raise ConfigError(
                    f"field 'vessels[{i}].y_mm': vessel leaves the block sideways "
                    f"(|y| up to {np.abs(y).max():.2f} mm); "
                    f"allowed range [{-(half_w - r):.2f}, {half_w - r:.2f}] mm along the whole length"
                )


def load_phantom(path: str | Path) -> PhantomSpec:
    """Load and validate a phantom YAML file (see ``sim/phantoms/forearm.yaml``)."""
    return load(path, PhantomSpec)


def phantom_to_dict(spec: PhantomSpec) -> dict[str, Any]:
    """A phantom as plain YAML/JSON-ready data (what :func:`phantom_from_dict` and the YAML loader read)."""
    return to_dict(spec)


def phantom_from_dict(data: dict[str, Any], source: str | None = None) -> PhantomSpec:
    """A phantom from a mapping, validated like a YAML file (``source`` names it in errors)."""
    return from_dict(PhantomSpec, data, source=source)


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class PhantomRanges:
    """Physical ranges that :func:`sample_phantom` draws from (uniform unless noted)."""

    skin_mm: tuple[float, float] = (1.0, 2.5)
    fat_mm: tuple[float, float] = (1.5, 6.0)
    vein_diameter_mm: tuple[float, float] = (1.5, 5.0)
    vein_depth_mm: tuple[float, float] = (2.0, 12.0)  # centre depth, also limited by skin+radius
    artery_diameter_mm: tuple[float, float] = (2.5, 5.0)
    artery_depth_mm: tuple[float, float] = (6.0, 16.0)
    artery_probability: float = 0.5
    n_vessels: tuple[int, int] = (2, 4)
    yaw_deg: tuple[float, float] = (-8.0, 8.0)
    pitch_deg: tuple[float, float] = (-3.0, 3.0)
    curvature_per_mm: tuple[float, float] = (-0.004, 0.004)
    compression: tuple[float, float] = (0.75, 1.0)
    skin_puncture_n: tuple[float, float] = (1.0, 2.2)
    skin_stiffness_n_per_mm: tuple[float, float] = (0.25, 0.6)
    fat_puncture_n: tuple[float, float] = (0.1, 0.4)
    muscle_puncture_n: tuple[float, float] = (0.4, 1.0)
    wall_puncture_n: tuple[float, float] = (0.4, 1.0)
    wall_stiffness_n_per_mm: tuple[float, float] = (0.4, 1.0)
    motion_amplitude_mm: tuple[float, float] = (0.5, 2.0)
    motion_drift_mm_per_s: tuple[float, float] = (-0.1, 0.1)
    motion_frequency_hz: tuple[float, float] = (0.1, 0.3)


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def sample_phantom(
    rng: np.random.Generator,
    ranges: PhantomRanges | None = None,
    *,
    motion: bool = False,
    n_vessels: int | None = None,
    vein_diameter_mm: tuple[float, float] | None = None,
    name: str = "random",
) -> PhantomSpec:
    """Draw a physically plausible phantom. All randomness comes from ``rng``."""
    rg = ranges or PhantomRanges()
    block = BlockSpec(80.0, 50.0, 30.0)
    skin_t, fat_t = _u(rng, rg.skin_mm), _u(rng, rg.fat_mm)
    layers = (
        LayerSpec(
            "skin",
            skin_t,
            _u(rng, rg.skin_puncture_n),
            _u(rng, rg.skin_stiffness_n_per_mm),
            float(rng.uniform(0.02, 0.08)),
            float(rng.uniform(0.01, 0.03)),
            float(rng.uniform(0.25, 0.45)),
        ),
        LayerSpec(
            "fat",
            fat_t,
            _u(rng, rg.fat_puncture_n),
            float(rng.uniform(0.05, 0.15)),
            0.0,
            float(rng.uniform(0.005, 0.015)),
            float(rng.uniform(0.05, 0.15)),
        ),
        LayerSpec(
            "muscle",
            block.height_mm - skin_t - fat_t,
            _u(rng, rg.muscle_puncture_n),
            float(rng.uniform(0.2, 0.5)),
            float(rng.uniform(0.0, 0.05)),
            float(rng.uniform(0.01, 0.03)),
            float(rng.uniform(0.2, 0.5)),
        ),
    )
    count = n_vessels if n_vessels is not None else int(rng.integers(rg.n_vessels[0], rg.n_vessels[1] + 1))
    has_artery = count >= 2 and rng.random() < rg.artery_probability
    kinds = ["vein"] * count
    if has_artery:
        kinds[int(rng.integers(1, count))] = "artery"
    vessels: list[VesselSpec] = []
    half_l = block.length_mm / 2
    xs = np.linspace(-half_l, half_l, 41)
    for kind in kinds:
        for _attempt in range(200):
            if kind == "vein":
                dia = _u(rng, vein_diameter_mm or rg.vein_diameter_mm)
                depth_range = rg.vein_depth_mm
                pulsation, comp = 0.0, _u(rng, rg.compression)
            else:
                dia = _u(rng, rg.artery_diameter_mm)
                depth_range = rg.artery_depth_mm
                pulsation, comp = float(rng.uniform(0.04, 0.1)), 1.0
            wall = float(rng.uniform(0.2, 0.4)) if kind == "vein" else float(rng.uniform(0.4, 0.7))
            r_out = dia / 2 * (1 + pulsation) + wall
            lo = max(depth_range[0], skin_t + r_out + 0.8)
            hi = max(lo, depth_range[1])
            depth = float(rng.uniform(lo, hi))
            pitch = _u(rng, rg.pitch_deg)
            yaw = _u(rng, rg.yaw_deg)
            curv = _u(rng, rg.curvature_per_mm)
            y0 = float(rng.uniform(-16.0, 16.0))
            cand = VesselSpec(
                kind,
                dia,
                depth,
                y0,
                yaw,
                pitch,
                curv,
                comp,
                pulsation,
                float(rng.uniform(0.8, 1.6)),
                wall,
                _u(rng, rg.wall_puncture_n) * (1.6 if kind == "artery" else 1.0),
                _u(rng, rg.wall_stiffness_n_per_mm),
            )
            yc = y0 + np.tan(np.radians(yaw)) * xs + 0.5 * curv * xs**2
            dc = depth + np.tan(np.radians(pitch)) * xs
            if (
                np.abs(yc).max() > block.width_mm / 2 - r_out - 2
                or dc.min() < skin_t + r_out + 0.5
                or dc.max() > block.height_mm - r_out - 1
            ):
                continue
            ok = True
            for other in vessels:
                yo = other.y_mm + np.tan(np.radians(other.yaw_deg)) * xs + 0.5 * other.curvature_per_mm * xs**2
                ro = other.diameter_mm / 2 * (1 + other.pulsation) + other.wall_thickness_mm
                if np.min(np.abs(yc - yo)) < r_out + ro + 3.0:
                    ok = False
                    break
            if ok:
                vessels.append(cand)
                break
    if not vessels or all(v.kind != "vein" for v in vessels):
        raise RuntimeError("could not place a vein in the sampled phantom; widen PhantomRanges")
    if motion:
        ax, ay, az = (_u(rng, rg.motion_amplitude_mm) * s for s in (1.0, 0.6, 0.2))
        amp = (ax, ay, az)
        drift = (_u(rng, rg.motion_drift_mm_per_s), _u(rng, rg.motion_drift_mm_per_s), 0.0)
        mot = MotionSpec(True, drift, amp, _u(rng, rg.motion_frequency_hz), float(rng.uniform(-np.pi, np.pi)))
    else:
        mot = MotionSpec()
    return PhantomSpec(name, block, layers, tuple(vessels), mot)


# --------------------------------------------------------------------------- geometry


class Phantom:
    """Analytic geometry of a :class:`PhantomSpec` with time (motion, pulsation).

    All point arguments are ``(..., 3)`` arrays in mm. Methods taking ``t_s`` evaluate
    pulsation at that time; :meth:`to_phantom` removes the motion offset.
    """

    def __init__(self, spec: PhantomSpec):
        self.spec = spec
        th = [layer.thickness_mm for layer in spec.layers]
        #: depths (mm) of the skin/fat and fat/muscle boundaries
        self.boundaries_mm = (th[0], th[0] + th[1])
        v = spec.vessels
        self._y0 = np.array([s.y_mm for s in v])
        self._tyaw = np.tan(np.radians([s.yaw_deg for s in v]))
        self._curv = np.array([s.curvature_per_mm for s in v])
        self._d0 = np.array([s.depth_mm for s in v])
        self._tpitch = np.tan(np.radians([s.pitch_deg for s in v]))
        self._r0 = np.array([s.diameter_mm / 2 for s in v])
        self._comp = np.array([s.compression for s in v])
        self._puls = np.array([s.pulsation for s in v])
        self._fhz = np.array([s.pulse_hz for s in v])
        self._wall = np.array([s.wall_thickness_mm for s in v])
        self.is_artery = np.array([s.kind == "artery" for s in v])
        m = spec.motion
        self._drift = np.asarray(m.drift_mm_per_s, dtype=float)
        self._amp = np.asarray(m.amplitude_mm, dtype=float)
        self._w = 2 * math.pi * m.frequency_hz

    @property
    def n_vessels(self) -> int:
        """How many vessels the phantom has (the length of every per-vessel array)."""
        return len(self.spec.vessels)

    # motion -----------------------------------------------------------------
    def offset_mm(self, t_s: float) -> NDArray[np.float64]:
        """World offset (x, y, z) of the block at ``t_s``: drift plus periodic arm motion, zeros when still."""
        m = self.spec.motion
        if not m.enabled:
            return np.zeros(3)
        return self._drift * t_s + self._amp * math.sin(self._w * t_s + m.phase_rad)

    def to_phantom(self, points_world: ArrayLike, t_s: float) -> NDArray[np.float64]:
        """World points ``(..., 3)`` at ``t_s`` in the phantom frame (the motion offset removed)."""
        return np.asarray(points_world, dtype=float) - self.offset_mm(t_s)

    def to_world(self, points_phantom: ArrayLike, t_s: float) -> NDArray[np.float64]:
        """Phantom-frame points ``(..., 3)`` in the world frame at ``t_s`` (the motion offset added)."""
        return np.asarray(points_phantom, dtype=float) + self.offset_mm(t_s)

    # vessels ----------------------------------------------------------------
    def radius_mm(self, t_s: float) -> NDArray[np.float64]:
        """Lateral lumen radius of every vessel at time t (arteries pulsate)."""
        return self._r0 * (1.0 + self._puls * np.sin(2 * math.pi * self._fhz * t_s))

    def centreline(self, x_mm: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Centre (y, z) of every vessel at phantom x: arrays of shape ``x.shape + (n_vessels,)``."""
        x = np.asarray(x_mm, dtype=float)[..., None]
        y = self._y0 + self._tyaw * x + 0.5 * self._curv * x * x
        z = -(self._d0 + self._tpitch * x)
        return y, z

    def vessel_q(self, points: ArrayLike, t_s: float = 0.0, *, wall: bool = False) -> NDArray[np.float64]:
        """Normalised elliptical radius squared of each point to each vessel, ``(..., n_vessels)``.

        < 1 inside the lumen (or inside the outer wall surface with ``wall=True``).
        """
        p = np.asarray(points, dtype=float)
        yc, zc = self.centreline(p[..., 0])
        a = self.radius_mm(t_s)
        b = a * self._comp
        if wall:
            a, b = a + self._wall, b + self._wall
        dy = (p[..., 1:2] - yc) / a
        dz = (p[..., 2:3] - zc) / b
        return dy * dy + dz * dz

    def vessel_depth_mm(self, i: int, x_mm: float) -> float:
        """Centre depth below the skin (mm) of vessel ``i`` at phantom ``x_mm``."""
        return float(self._d0[i] + self._tpitch[i] * x_mm)

    def tissue_at(self, points: ArrayLike, t_s: float = 0.0) -> NDArray[np.uint8]:
        """:class:`Tissue` code of each point (phantom frame), shape ``points.shape[:-1]``."""
        p = np.asarray(points, dtype=float)
        depth = -p[..., 2]
        out = np.full(depth.shape, int(Tissue.MUSCLE), dtype=np.uint8)
        out[depth < self.boundaries_mm[1]] = Tissue.FAT
        out[depth < self.boundaries_mm[0]] = Tissue.SKIN
        out[depth < 0] = Tissue.AIR
        half = np.array([self.spec.block.length_mm / 2, self.spec.block.width_mm / 2])
        outside = (np.abs(p[..., 0]) > half[0]) | (np.abs(p[..., 1]) > half[1]) | (depth > self.spec.block.height_mm)
        qw = self.vessel_q(p, t_s, wall=True)
        ql = self.vessel_q(p, t_s)
        in_wall = (qw < 1.0).any(axis=-1)
        out[in_wall] = Tissue.VESSEL_WALL
        lumen = ql < 1.0
        vein = (lumen & ~self.is_artery).any(axis=-1)
        art = (lumen & self.is_artery).any(axis=-1)
        out[vein] = Tissue.VEIN_LUMEN
        out[art] = Tissue.ARTERY_LUMEN
        out[outside] = Tissue.AIR
        return out

    def vessel_index_at(self, points: ArrayLike, t_s: float = 0.0) -> NDArray[np.intp]:
        """Index of the vessel whose wall contains each point, -1 where none."""
        qw = self.vessel_q(points, t_s, wall=True)
        idx = np.argmin(qw, axis=-1)
        return np.where(np.take_along_axis(qw, idx[..., None], -1)[..., 0] < 1.0, idx, -1)
