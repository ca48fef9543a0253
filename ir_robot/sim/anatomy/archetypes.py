"""Anatomy archetypes as data: the YAML schema of ``sim/anatomies/*.yaml``, its checks and its loader.

An archetype gives, for every drawn quantity, a :class:`Dist` (mean, sd, min, max: a normal truncated
to [min, max]). Each distribution must lie inside the field's hard range, which for lumen diameters
is the clinical range in :data:`CLINICAL_DIAMETER_MM` (REFERENCES.md, "Vessel diameters"); an error
names the file, the field and the allowed range. The arch type (I, II, III) bounds ``arch.bca_drop``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr, ndtri

from ir_robot.config import from_dict, param, read_yaml
from ir_robot.core.errors import ConfigError
from ir_robot.paths import data_path
from ir_robot.sim.anatomy.graph import Box
from ir_robot.sim.anatomy.motion import MotionSpec

#: The archetypes shipped in ``sim/anatomies/``; ``random`` draws one of them uniformly.
ARCHETYPES: tuple[str, ...] = ("type1", "type2", "type3", "bovine")

#: Clinical lumen diameter ranges (mm) at each station of the tree. Sources: REFERENCES.md (abdominal
#: aorta 17.5 +- 2.1, common iliac 10.9 +- 1.7, external iliac up to ~10, ascending 30-35, common
#: carotid 6-8, renal 5-6, femoral ~8-10, subclavian ~8-10, SMA and coeliac ~6-7), widened to about
#: two standard deviations; root stations from TAVI sizing (annulus 18-29 mm).
CLINICAL_DIAMETER_MM: Mapping[str, tuple[float, float]] = {
    "annulus": (18.0, 30.0),
    "sinus": (25.0, 42.0),
    "sinotubular": (20.0, 36.0),
    "ascending": (25.0, 38.0),
    "isthmus": (18.0, 30.0),
    "diaphragm": (16.0, 28.0),
    "infrarenal": (13.0, 22.0),
    "common_iliac": (7.5, 14.5),
    "external_iliac": (6.0, 10.5),
    "common_femoral": (6.5, 10.5),
    "brachiocephalic": (9.0, 15.0),
    "subclavian": (7.0, 11.0),
    "common_carotid": (5.0, 9.0),
    "renal": (4.0, 7.0),
    "sma": (5.0, 8.0),
    "coeliac": (5.0, 8.0),
}

#: The diameter stations each procedural branch's radius runs between (its clinical range is their union).
BRANCH_STATIONS: Mapping[str, tuple[str, ...]] = {
    "aortic_root": ("annulus", "sinus", "sinotubular"),
    "ascending_aorta": ("sinotubular", "ascending"),
    "aortic_arch": ("ascending", "isthmus"),
    "descending_aorta": ("isthmus", "diaphragm"),
    "abdominal_aorta": ("diaphragm", "infrarenal"),
    "coeliac": ("coeliac",),
    "sma": ("sma",),
    "renal_left": ("renal",),
    "renal_right": ("renal",),
    "common_iliac_left": ("common_iliac", "external_iliac"),
    "common_iliac_right": ("common_iliac", "external_iliac"),
    "external_iliac_left": ("external_iliac", "common_femoral"),
    "external_iliac_right": ("external_iliac", "common_femoral"),
    "common_femoral_left": ("common_femoral",),
    "common_femoral_right": ("common_femoral",),
    "brachiocephalic": ("brachiocephalic",),
    "right_subclavian": ("subclavian",),
    "right_common_carotid": ("common_carotid",),
    "left_common_carotid": ("common_carotid",),
    "left_subclavian": ("subclavian",),
}

#: ``arch.bca_drop`` (BCA ostium below the top of the arch's outer curvature, in units of the height
#: between outer and inner curvature) allowed for each arch type: I at the top, II between the
#: outer and inner curvature, III below the inner curvature.
BCA_DROP_BY_TYPE: Mapping[str, tuple[float, float]] = {"I": (0.0, 0.3), "II": (0.35, 0.95), "III": (1.1, 3.0)}


def clinical_diameter_range(branch: str) -> tuple[float, float]:
    """The clinical diameter range (mm) of a procedural branch: the union of its stations' ranges."""
    stations = BRANCH_STATIONS[branch]
    return (min(CLINICAL_DIAMETER_MM[s][0] for s in stations), max(CLINICAL_DIAMETER_MM[s][1] for s in stations))


@dataclass(frozen=True)
class Dist:
    """A drawn quantity: a normal (``mean``, ``sd``) truncated to [``min``, ``max``]; ``sd`` defaults to a quarter
    of the range, and ``sd: 0`` (or ``min == max``) fixes it at the mean.
    """

    mean: float = param(range=(-1e5, 1e5))
    min: float = param(range=(-1e5, 1e5))
    max: float = param(range=(-1e5, 1e5))
    sd: float | None = param(None, range=(0.0, 1e5))

    @property
    def scale(self) -> float:
        """The standard deviation actually used."""
        return (self.max - self.min) / 4.0 if self.sd is None else self.sd

    def draw(self, rng: np.random.Generator) -> float:
        """One value; always exactly one uniform draw from ``rng`` (inverse CDF), so draw counts never vary."""
        u = float(rng.random())
        sd = self.scale
        if sd <= 0.0 or self.max <= self.min:
            return self.mean
        lo = float(ndtr((self.min - self.mean) / sd))
        hi = float(ndtr((self.max - self.mean) / sd))
        x = self.mean + sd * float(ndtri(lo + u * (hi - lo)))
        return min(max(x, self.min), self.max)


def _dist(lo: float, hi: float, unit: str, help: str = "") -> typing.Any:
    return param(range=(lo, hi), unit=unit, help=help)


def _diam(station: str, help: str = "") -> typing.Any:
    lo, hi = CLINICAL_DIAMETER_MM[station]
    return _dist(lo, hi, "mm", help)


@dataclass(frozen=True)
class DiameterSpec:
    """Lumen diameters (mm) at the stations of the tree; radii taper smoothly between them."""

    annulus: Dist = _diam("annulus", "aortic valve annulus")
    sinus: Dist = _diam("sinus", "sinuses of Valsalva")
    sinotubular: Dist = _diam("sinotubular", "sinotubular junction")
    ascending: Dist = _diam("ascending", "mid ascending aorta and start of the arch")
    isthmus: Dist = _diam("isthmus", "end of the arch (isthmus)")
    diaphragm: Dist = _diam("diaphragm", "descending aorta at the diaphragm")
    infrarenal: Dist = _diam("infrarenal", "abdominal aorta below the renal arteries")
    common_iliac: Dist = _diam("common_iliac")
    external_iliac: Dist = _diam("external_iliac")
    common_femoral: Dist = _diam("common_femoral")
    brachiocephalic: Dist = _diam("brachiocephalic")
    subclavian: Dist = _diam("subclavian")
    common_carotid: Dist = _diam("common_carotid")
    renal: Dist = _diam("renal")
    sma: Dist = _diam("sma")
    coeliac: Dist = _diam("coeliac")


@dataclass(frozen=True)
class LengthSpec:
    """Branch lengths (mm): centreline length, or the height drop for the two long aortic segments."""

    aortic_root: Dist = _dist(12.0, 35.0, "mm", "annulus to sinotubular junction")
    ascending: Dist = _dist(35.0, 90.0, "mm", "sinotubular junction to the start of the arch")
    descending: Dist = _dist(150.0, 280.0, "mm", "height drop from the arch to the diaphragm")
    abdominal: Dist = _dist(110.0, 200.0, "mm", "height drop from the diaphragm to the aortic bifurcation")
    common_iliac: Dist = _dist(30.0, 80.0, "mm")
    external_iliac: Dist = _dist(70.0, 150.0, "mm")
    common_femoral: Dist = _dist(25.0, 60.0, "mm", "to the access site")
    brachiocephalic: Dist = _dist(25.0, 65.0, "mm")
    common_carotid: Dist = _dist(100.0, 160.0, "mm", "clinically 12-14 cm")
    subclavian: Dist = _dist(40.0, 120.0, "mm", "modelled up to the first rib")
    renal: Dist = _dist(25.0, 80.0, "mm", "to the hilum")
    sma: Dist = _dist(40.0, 120.0, "mm", "proximal trunk")
    coeliac: Dist = _dist(8.0, 35.0, "mm", "to its trifurcation")


@dataclass(frozen=True)
class ArchSpec:
    """Shape of the arch and where the great vessels leave it (the arch type is in ``bca_drop``)."""

    width_mm: Dist = _dist(55.0, 100.0, "mm", "ascending-to-descending distance across the arch")
    height_ratio: Dist = _dist(0.8, 2.5, "", "arch height over half its width (elongated arches > 1)")
    orientation_deg: Dist = _dist(0.0, 80.0, "deg", "arch plane from patient-left towards posterior")
    bca_drop: Dist = _dist(0.0, 3.0, "", "BCA ostium below the outer curvature top, in outer-inner heights")
    lsa_gap_mm: Dist = _dist(8.0, 50.0, "mm", "LCCA (bovine: common trunk) to LSA origin along the arch")
    lcca_gap_mm: Dist | None = param(
        None, range=(8.0, 40.0), unit="mm", help="BCA to LCCA origin along the arch (not with bovine)"
    )


@dataclass(frozen=True)
class BranchingSpec:
    """Where and at which angles the abdominal and iliac branches leave, and the valve axis tilt."""

    valve_tilt_deg: Dist = _dist(0.0, 25.0, "deg", "random tilt of the valve axis about its nominal direction")
    coeliac_offset_mm: Dist = _dist(0.0, 60.0, "mm", "coeliac origin below the diaphragm along the aorta")
    sma_gap_mm: Dist = _dist(5.0, 40.0, "mm", "coeliac to SMA origin")
    renal_gap_mm: Dist = _dist(5.0, 50.0, "mm", "SMA to left renal origin")
    renal_right_offset_mm: Dist = _dist(-15.0, 30.0, "mm", "right renal origin below the left")
    renal_caudal_deg: Dist = _dist(-20.0, 60.0, "deg", "renal arteries below the horizontal")
    sma_angle_deg: Dist = _dist(15.0, 90.0, "deg", "aortomesenteric angle")
    iliac_angle_deg: Dist = _dist(10.0, 45.0, "deg", "each common iliac from the vertical")
    lordosis_mm: Dist = _dist(0.0, 50.0, "mm", "bifurcation anterior of the diaphragm level")


@dataclass(frozen=True)
class ValveSpec:
    """The prosthetic valve ring in the root and the paravalvular leak beside it."""

    ring_tube_radius_mm: Dist = _dist(0.5, 4.0, "mm", "sewing-ring tube radius")
    leak_gap_mm: Dist = _dist(0.5, 6.0, "mm", "widest ring-to-wall gap")
    ring_offset_mm: Dist = _dist(0.0, 8.0, "mm", "ring centre above the annulus plane")


@dataclass(frozen=True)
class ArchetypeSpec:
    """One archetype: every drawn quantity of the procedural generator, with its clinical range."""

    name: str
    arch_type: str = param(choices=("I", "II", "III"))
    bovine: bool = param(help="BCA and LCCA share one origin")
    diameters_mm: DiameterSpec = param()
    lengths_mm: LengthSpec = param()
    arch: ArchSpec = param()
    branching: BranchingSpec = param()
    valve: ValveSpec = param()
    tortuosity: Dist = _dist(0.0, 1.0, "", "0 straight, 1 the most tortuous (amplitudes per branch in code)")
    side_branch_taper: Dist = _dist(0.0, 0.3, "", "fractional diameter loss along side branches")
    control_jitter_mm: float = param(3.0, range=(0.0, 10.0), unit="mm", help="sd of control-point jitter")
    body_box_mm: Box = param(default_factory=Box)
    motion: MotionSpec = param(default_factory=MotionSpec)


def check_spec(spec: ArchetypeSpec, source: str | None = None) -> None:
    """Check every :class:`Dist` against its field's allowed range and the arch type's band; raise ConfigError."""
    where = f"{source}: " if source else ""

    def walk(obj: object, path: str) -> None:
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            fpath = f"{path}.{f.name}" if path else f.name
            if isinstance(value, Dist):
                _check_dist(value, f.metadata.get("range"), f.metadata.get("unit", ""), fpath, where)
            elif dataclasses.is_dataclass(value) and dataclasses.is_dataclass(hints[f.name]):
                walk(value, fpath)

    walk(spec, "")
    lo, hi = BCA_DROP_BY_TYPE[spec.arch_type]
    drop = spec.arch.bca_drop
    for key, v in (("min", drop.min), ("max", drop.max)):
        if not lo <= v <= hi:
            raise ConfigError(
                f"{where}field 'arch.bca_drop.{key}': value {v!r} does not fit arch type {spec.arch_type} "
                f"(allowed range [{lo}, {hi}])"
            )
    if not spec.bovine and spec.arch.lcca_gap_mm is None:
        raise ConfigError(f"{where}field 'arch.lcca_gap_mm': missing required field (required unless bovine: true)")
    if spec.bovine and spec.arch.lcca_gap_mm is not None:
        raise ConfigError(
            f"{where}field 'arch.lcca_gap_mm': unknown field for a bovine arch (LCCA shares the BCA origin)"
        )


def _check_dist(d: Dist, rng: tuple[float, float] | None, unit: str, path: str, where: str) -> None:
    for key in ("mean", "min", "max"):
        v = getattr(d, key)
        if not math.isfinite(v) or (rng is not None and not rng[0] <= v <= rng[1]):
            allowed = f"allowed range [{rng[0]}, {rng[1]}]{(' ' + unit) if unit else ''}" if rng else "finite"
            raise ConfigError(f"{where}field '{path}.{key}': value {v!r} is outside the {allowed}")
    if not d.min <= d.mean <= d.max:
        raise ConfigError(
            f"{where}field '{path}': needs min <= mean <= max, got min {d.min}, mean {d.mean}, max {d.max}"
        )


def archetype_path(name: str) -> Path:
    """The shipped YAML of archetype ``name`` (one of :data:`ARCHETYPES`)."""
    if name not in ARCHETYPES:
        raise ConfigError(f"unknown archetype '{name}'; shipped archetypes: {', '.join(ARCHETYPES)} (or a file path)")
    return data_path("sim", "anatomies", f"{name}.yaml")


def load_archetype(name_or_path: str | Path) -> ArchetypeSpec:
    """Load a shipped archetype by name or an archetype YAML by path, fully checked.

    Parsed specs are kept (keyed by path, modification time and size) so that drawing many trees
    does not re-parse the YAML each time; an edited file is read again.
    """
    path = archetype_path(str(name_or_path)) if str(name_or_path) in ARCHETYPES else Path(name_or_path)
    try:
        stat = path.stat()
    except OSError:
        return archetype_from_dict(read_yaml(path), source=str(path))  # read_yaml names the missing file
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int, size: int) -> ArchetypeSpec:
    del mtime_ns, size  # part of the cache key only
    return archetype_from_dict(read_yaml(path), source=path)


def archetype_from_dict(data: dict[str, typing.Any], *, source: str | None = None) -> ArchetypeSpec:
    """Build and check an archetype from a mapping (as read from YAML)."""
    spec = from_dict(ArchetypeSpec, data, source=source)
    check_spec(spec, source)
    return spec
