"""Instruments as data: a guidewire or catheter spec read from ``sim/instruments/*.yaml``.

The YAML is validated into frozen dataclasses by :mod:`ir_robot.config` (errors name the file,
the field and the allowed range) and then discretised into the per-node / per-segment arrays the
rod solver uses (:class:`Discretisation`). Units: mm, N, MPa (= N/mm^2), s, rad.

Stiffness comes from physical parameters: bending stiffness ``EI = E * pi (OD^4 - ID^4) / 64``,
torsional ``GJ = G * pi (OD^4 - ID^4) / 32`` with ``G = E / (2 (1 + nu))``, axial ``EA``. The
profile is a list of sections from the distal tip towards the hub (a floppy tip, a transition, a
stiff body); properties are blended linearly over ``transition_mm`` at each section boundary.
The pre-curved distal shape is a list of planar bends (rest curvature along arc length).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ir_robot.config import load, param
from ir_robot.core.errors import ConfigError
from ir_robot.paths import data_path

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Section:
    """One stretch of the shaft, counted from the distal tip: its length and material."""

    length_mm: float = param(range=(0.1, 3000.0), unit="mm", help="arc length of this section")
    outer_diameter_mm: float = param(range=(0.01, 5.0), unit="mm", help="outer diameter of the load-bearing part")
    youngs_modulus_mpa: float = param(range=(1.0, 300000.0), unit="MPa", help="effective Young's modulus")
    inner_diameter_mm: float = param(0.0, range=(0.0, 4.9), unit="mm", help="lumen diameter (0 for a solid core)")
    poisson_ratio: float = param(0.33, range=(0.0, 0.5), help="Poisson's ratio, sets G = E / 2(1 + nu)")

    def __post_init__(self) -> None:
        if self.inner_diameter_mm >= self.outer_diameter_mm:
            raise ConfigError(
                f"field 'inner_diameter_mm': value {self.inner_diameter_mm} must be below "
                f"outer_diameter_mm {self.outer_diameter_mm}"
            )


@dataclass(frozen=True)
class Bend:
    """A planar pre-curve: ``angle_deg`` of rest bending spread evenly over an arc of the shaft."""

    start_mm: float = param(range=(0.0, 500.0), unit="mm", help="distance of the bend's distal end from the tip")
    length_mm: float = param(range=(0.1, 500.0), unit="mm", help="arc length the bend spreads over")
    angle_deg: float = param(range=(-360.0, 360.0), unit="deg", help="signed bend angle in the shape's plane")


@dataclass(frozen=True)
class InstrumentSpec:
    """A guidewire or catheter: geometry, stiffness profile, damping, friction and tip shape."""

    name: str = param(help="identifier")
    kind: str = param(choices=("guidewire", "catheter"), help="device class")
    length_mm: float = param(range=(50.0, 3000.0), unit="mm", help="working length")
    contact_diameter_mm: float = param(range=(0.1, 5.0), unit="mm", help="outer diameter seen by the wall")
    segment_length_mm: float = param(range=(0.5, 50.0), unit="mm", help="segment length of the shaft")
    tip_segment_length_mm: float = param(range=(0.2, 50.0), unit="mm", help="segment length near the tip")
    tip_region_mm: float = param(range=(0.0, 500.0), unit="mm", help="distal arc length meshed finely")
    sections: tuple[Section, ...] = param(help="stiffness profile from the tip proximally; the last runs to the hub")
    transition_mm: float = param(5.0, range=(0.0, 200.0), unit="mm", help="blend length at section boundaries")
    bends: tuple[Bend, ...] = param(default_factory=tuple, help="pre-curved distal shape")
    shape: str = param("straight", choices=("straight", "angled", "j", "cobra", "simmons"), help="shape name")
    friction_coefficient: float = param(0.1, range=(0.0, 1.0), help="Coulomb coefficient against the wall")
    drag_n_s_per_mm2: float = param(
        1.0e-6, range=(0.0, 1.0), unit="N s/mm^2", help="viscous drag per unit length (regularises the solve)"
    )
    rotational_drag_n_mm_s: float = param(
        1.0e-6, range=(0.0, 1.0), unit="N mm s/mm", help="viscous roll drag per unit length"
    )
    wall_stiffness_n_per_mm: float = param(
        50.0, range=(1.0, 1.0e5), unit="N/mm", help="contact penalty stiffness per node"
    )

    def __post_init__(self) -> None:
        if not self.sections:
            raise ConfigError("field 'sections': at least one section is required")
        if self.tip_segment_length_mm > self.segment_length_mm:
            raise ConfigError(
                f"field 'tip_segment_length_mm': value {self.tip_segment_length_mm} must not exceed "
                f"segment_length_mm {self.segment_length_mm}"
            )
        for i, b in enumerate(self.bends):
            if b.start_mm + b.length_mm > self.length_mm:
                raise ConfigError(f"field 'bends[{i}]': bend runs past the device length {self.length_mm} mm")

    @property
    def radius_mm(self) -> float:
        """Contact radius: the centreline must stay this far inside the wall."""
        return 0.5 * self.contact_diameter_mm


def instruments_dir() -> Path:
    """The folder of the shipped instrument YAML files."""
    return data_path("sim", "instruments")


def available_instruments() -> list[str]:
    """Names of the shipped instruments (file stems under ``sim/instruments``)."""
    return sorted(p.stem for p in instruments_dir().glob("*.yaml"))


def load_instrument(name_or_path: str | Path) -> InstrumentSpec:
    """Load a shipped instrument by name, or any instrument YAML by path, validated."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        cand = instruments_dir() / f"{name_or_path}.yaml"
        if not cand.is_file():
            raise ConfigError(f"unknown instrument {str(name_or_path)!r}; shipped: {available_instruments()}")
        p = cand
    return load(p, InstrumentSpec)


@dataclass(frozen=True)
class Discretisation:
    """The rod mesh of one instrument: nodes counted from the distal tip (node 0) to the hub.

    ``sigma[k]`` is node k's arc length from the tip; segment j joins nodes j and j+1 and has
    rest length ``seg_len[j]``; vertex k (1..n-2) joins segments k-1 and k.
    """

    sigma: FloatArray  # (n,) node arc length from the tip, mm
    seg_len: FloatArray  # (n-1,) rest segment length, mm
    ea: FloatArray  # (n-1,) axial stiffness per segment, N
    gj: FloatArray  # (n-1,) torsional stiffness per segment, N mm^2
    ei: FloatArray  # (n,) bending stiffness at each vertex (ends unused), N mm^2
    rest_angle: FloatArray  # (n,) rest bend angle at each vertex, rad (ends 0)
    node_len: FloatArray  # (n,) arc length lumped at each node (Voronoi), mm
    radius_mm: float

    @property
    def n_nodes(self) -> int:
        """Number of nodes over the whole device."""
        return int(self.sigma.shape[0])


def _node_arclengths(spec: InstrumentSpec) -> FloatArray:
    fine = min(spec.tip_region_mm, spec.length_mm)
    n_fine = int(math.ceil(fine / spec.tip_segment_length_mm - 1e-9)) if fine > 0 else 0
    s_fine = np.linspace(0.0, fine, n_fine + 1) if n_fine > 0 else np.zeros(1)
    rest = spec.length_mm - float(s_fine[-1])
    n_body = int(math.ceil(rest / spec.segment_length_mm - 1e-9))
    if n_body > 0:
        s_body = float(s_fine[-1]) + np.linspace(0.0, rest, n_body + 1)[1:]
        return np.concatenate([s_fine, s_body])
    return s_fine


def _section_property(spec: InstrumentSpec, s: FloatArray, values: list[float]) -> FloatArray:
    """A section property at arc lengths ``s``, blended linearly over ``transition_mm`` at boundaries."""
    out = np.full(s.shape, values[-1], dtype=np.float64)
    bounds = np.cumsum([sec.length_mm for sec in spec.sections])
    # walk from the hub end distally so each boundary blends the two sections it separates
    for i in range(len(spec.sections) - 2, -1, -1):
        b = float(bounds[i])
        half = 0.5 * spec.transition_mm
        if half <= 0.0:
            w = (s < b).astype(np.float64)
        else:
            w = np.clip((b + half - s) / (2.0 * half), 0.0, 1.0)
        out = w * values[i] + (1.0 - w) * out
    return out


def discretise(spec: InstrumentSpec) -> Discretisation:
    """The rod mesh and per-element stiffness of ``spec`` (see :class:`Discretisation`)."""
    sigma = _node_arclengths(spec)
    seg_len = np.diff(sigma)
    mid = 0.5 * (sigma[:-1] + sigma[1:])
    secs = spec.sections
    area = [math.pi * (s.outer_diameter_mm**2 - s.inner_diameter_mm**2) / 4.0 for s in secs]
    inertia = [math.pi * (s.outer_diameter_mm**4 - s.inner_diameter_mm**4) / 64.0 for s in secs]
    e_mod = [s.youngs_modulus_mpa for s in secs]
    g_mod = [s.youngs_modulus_mpa / (2.0 * (1.0 + s.poisson_ratio)) for s in secs]
    ea = _section_property(spec, mid, [e * a for e, a in zip(e_mod, area, strict=True)])
    gj = _section_property(spec, mid, [g * 2.0 * i for g, i in zip(g_mod, inertia, strict=True)])
    ei = _section_property(spec, sigma, [e * i for e, i in zip(e_mod, inertia, strict=True)])
    # rest bend angle at vertex k: integral of the piecewise-constant rest curvature over the
    # vertex's Voronoi interval [sigma_k - l_{k-1}/2, sigma_k + l_k/2]
    lo = np.empty_like(sigma)
    hi = np.empty_like(sigma)
    lo[0], hi[-1] = 0.0, sigma[-1]
    lo[1:] = sigma[1:] - 0.5 * seg_len
    hi[:-1] = sigma[:-1] + 0.5 * seg_len
    rest = np.zeros_like(sigma)
    for b in spec.bends:
        kappa = math.radians(b.angle_deg) / b.length_mm
        overlap = np.clip(np.minimum(hi, b.start_mm + b.length_mm) - np.maximum(lo, b.start_mm), 0.0, None)
        rest += kappa * overlap
    rest[0] = 0.0
    rest[-1] = 0.0
    node_len = hi - lo
    return Discretisation(
        sigma=sigma,
        seg_len=seg_len,
        ea=ea,
        gj=gj,
        ei=ei,
        rest_angle=rest,
        node_len=node_len,
        radius_mm=spec.radius_mm,
    )
