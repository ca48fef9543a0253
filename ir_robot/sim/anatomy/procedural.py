"""The seeded procedural generator: an archetype plus a Generator -> a :class:`VesselTree`.

The tree runs from the aortic valve annulus (origin of the body frame, see :mod:`.graph`) through the
aortic root, ascending aorta, arch, descending thoracic and abdominal aorta to both common iliac,
external iliac and common femoral arteries, with the brachiocephalic trunk (right subclavian, right
common carotid), left common carotid and left subclavian on the arch and the coeliac trunk, SMA and
both renal arteries on the abdominal aorta. Every branch is a cubic spline through control points
(stEVE-style: nominal points from the drawn lengths and angles, jittered), then a smooth sinuous
tortuosity displacement that vanishes with zero slope at both ends (so junctions stay put), then a
uniform resampling. Radii taper smoothly (shape-preserving PCHIP) between the diameter stations of
:data:`~.archetypes.CLINICAL_DIAMETER_MM`.

Arch type is set by where the BCA leaves the arch: the generator measures, along the finished arch,
how far below the outer curvature's top a branch leaving at each point would have its ostium, and
puts the BCA where that drop equals the drawn ``arch.bca_drop``; LCCA and LSA follow along the arch
by their drawn gaps (bovine: the LCCA leaves at the BCA's origin).

Every random number comes from the Generator passed in, in a fixed order and a fixed count per tree
(distributions use one uniform draw each), so the same seed gives the same tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.interpolate import PchipInterpolator
from scipy.special import ndtr, ndtri

from ir_robot.core.errors import ConfigError
from ir_robot.sim.anatomy import curves
from ir_robot.sim.anatomy.archetypes import (
    ARCHETYPES,
    CLINICAL_DIAMETER_MM,
    ArchetypeSpec,
    Dist,
    load_archetype,
)
from ir_robot.sim.anatomy.graph import Annulus, Branch, ParavalvularLeak, ValveRing, VesselTree

FloatArray = npt.NDArray[np.float64]
RadiusFn = Callable[[FloatArray, float], FloatArray]

#: Peak sideways tortuosity displacement (mm) of each branch at ``tortuosity = 1``.
TORTUOSITY_MM: Mapping[str, float] = {
    "aortic_root": 0.0,
    "ascending_aorta": 0.0,
    "aortic_arch": 0.0,
    "descending_aorta": 6.0,
    "abdominal_aorta": 5.0,
    "coeliac": 0.0,
    "sma": 4.0,
    "renal_left": 3.0,
    "renal_right": 3.0,
    "common_iliac_left": 5.0,
    "common_iliac_right": 5.0,
    "external_iliac_left": 8.0,
    "external_iliac_right": 8.0,
    "common_femoral_left": 2.0,
    "common_femoral_right": 2.0,
    "brachiocephalic": 2.0,
    "right_subclavian": 4.0,
    "right_common_carotid": 5.0,
    "left_common_carotid": 5.0,
    "left_subclavian": 4.0,
}

#: Great vessels leave the arch along ``unit(outward normal + LIFT * z + bias * x)``.
TAKEOFF_LIFT = 0.8
#: The nominal valve axis (ventricle -> aorta): up, to the patient's right and anterior.
VALVE_AXIS_NOMINAL = (-0.35, -0.40, 0.85)
#: Sideways bias (along +x, patient left) of each great vessel's take-off direction.
TAKEOFF_BIAS_X: Mapping[str, float] = {
    "brachiocephalic": -0.3,
    "left_common_carotid": 0.15,
    "left_common_carotid_bovine": 0.5,
    "left_subclavian": 0.3,
}

#: Spacing (mm) of the dense centrelines the tortuosity acts on, before the final resampling.
BASE_SPACING_MM = 1.0

_Z = np.array([0.0, 0.0, 1.0])
_X = np.array([1.0, 0.0, 0.0])


@dataclass
class _Params:
    """The scalar draws of one tree (diameters, lengths, angles, ...), all drawn before any geometry."""

    d: dict[str, float] = field(default_factory=dict)
    length: dict[str, float] = field(default_factory=dict)
    arch: dict[str, float] = field(default_factory=dict)
    br: dict[str, float] = field(default_factory=dict)
    valve: dict[str, float] = field(default_factory=dict)
    tortuosity: float = 0.0
    taper: float = 0.0


def _draw_group(group: object, rng: np.random.Generator) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in vars(group).items():  # dataclass fields, in declaration order
        if isinstance(value, Dist):
            out[name] = value.draw(rng)
    return out


def _draw_params(spec: ArchetypeSpec, rng: np.random.Generator) -> _Params:
    p = _Params()
    p.d = _draw_group(spec.diameters_mm, rng)
    p.length = _draw_group(spec.lengths_mm, rng)
    p.arch = _draw_group(spec.arch, rng)
    if spec.arch.lcca_gap_mm is None:  # bovine: no draw in the group, keep the count fixed anyway
        rng.random()
    p.br = _draw_group(spec.branching, rng)
    p.valve = _draw_group(spec.valve, rng)
    p.tortuosity = spec.tortuosity.draw(rng)
    p.taper = spec.side_branch_taper.draw(rng)
    return p


def _trunc_normal(rng: np.random.Generator, shape: tuple[int, ...], sd: float, k: float = 2.0) -> FloatArray:
    """Normal draws truncated at +-k sd (one uniform each)."""
    u = rng.random(shape)
    lo, hi = float(ndtr(-k)), float(ndtr(k))
    return np.asarray(sd * ndtri(lo + u * (hi - lo)), dtype=np.float64)


def _profile(knots: list[tuple[float, float]]) -> RadiusFn:
    """A radius function of arc position from (arc fraction, diameter) knots, tapering monotonically."""
    xs = np.array([k[0] for k in knots])
    ys = np.array([k[1] for k in knots]) / 2.0
    if len(xs) == 1:
        return lambda s, length: np.full(len(s), ys[0])
    interp = PchipInterpolator(xs, ys, extrapolate=False)

    def f(s: FloatArray, length: float) -> FloatArray:
        return np.asarray(interp(np.clip(s / length, xs[0], xs[-1])), dtype=np.float64)

    return f


class _Builder:
    """Builds the branches of one tree in topological order from the drawn parameters."""

    def __init__(self, spec: ArchetypeSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.branches: dict[str, Branch] = {}

    def jitter(self, n: int = 1) -> FloatArray:
        """Control-point jitter (mm), ``(n, 3)``; always 3n draws."""
        return _trunc_normal(self.rng, (n, 3), self.spec.control_jitter_mm)

    def add(
        self,
        name: str,
        parent: str | None,
        origin_arc: float,
        control: list[FloatArray],
        radius: RadiusFn,
        *,
        start_tangent: FloatArray | None,
        end_tangent: FloatArray | None = None,
        tortuosity: float,
    ) -> Branch:
        """Spline through the control points, then :meth:`finish` it."""
        base = curves.spline_through(
            np.array(control), start_tangent=start_tangent, end_tangent=end_tangent, spacing_mm=BASE_SPACING_MM
        )
        return self.finish(name, parent, origin_arc, base, radius, tortuosity=tortuosity)

    def finish(
        self, name: str, parent: str | None, origin_arc: float, base: FloatArray, radius: RadiusFn, *, tortuosity: float
    ) -> Branch:
        """Perturb, resample and store a densely sampled centreline; consumes exactly 12 tortuosity draws."""
        draws = self.rng.random(12)
        amplitude = tortuosity * TORTUOSITY_MM.get(name, 0.0)
        arc = curves.arc_lengths(base)
        r = radius(arc, float(arc[-1]))
        pts = _tortuous(base, arc, r, amplitude, draws)
        spacing = float(np.clip(0.5 * np.mean(r), 0.5, 2.0))
        pts = curves.resample(pts, spacing)
        arc = curves.arc_lengths(pts)
        b = Branch(name, parent, origin_arc, pts, radius(arc, float(arc[-1])))
        self.branches[name] = b
        return b


def _tortuous(base: FloatArray, arc: FloatArray, radius: FloatArray, amplitude: float, draws: FloatArray) -> FloatArray:
    """Add a smooth sinuous displacement (3 modes in each of two normal directions) to ``base``.

    The displacement is windowed by ``sin^2`` (zero value and slope at both ends). If it would bend
    the centreline tighter than twice the local radius (or the base's own tightest bend), it is
    scaled down (by 0.6 at a time, deterministically) until it does not.
    """
    if amplitude <= 0.0:
        return base
    length = float(arc[-1])
    _, n, b = curves.transport_frames(base)
    w = curves.smooth_window(arc, length)
    coef = 2.0 * draws[:6] - 1.0
    phase = 2.0 * np.pi * draws[6:]
    modes = (1.0, 2.0, 3.0)
    disp = np.zeros_like(base)
    for k, m in enumerate(modes):
        disp += (coef[k] * np.sin(np.pi * m * arc / length + phase[k]))[:, None] * n
        disp += (coef[3 + k] * np.sin(np.pi * m * arc / length + phase[3 + k]))[:, None] * b
    disp *= (amplitude / 3.0) * w[:, None]
    limit = max(0.5, float(np.max(curves.curvature(base) * radius)))
    scale = 1.0
    for _ in range(8):
        pts = base + scale * disp
        if float(np.max(curves.curvature(pts) * radius)) <= limit:
            return pts
        scale *= 0.6
    return base


def _rotate_towards(axis: FloatArray, angle_rad: float, azimuth_rad: float) -> FloatArray:
    """``axis`` tilted by ``angle_rad`` towards the perpendicular direction at ``azimuth_rad``."""
    e1 = curves.perpendicular(axis)
    e2 = np.cross(axis, e1)
    side = np.cos(azimuth_rad) * e1 + np.sin(azimuth_rad) * e2
    return np.asarray(np.cos(angle_rad) * axis + np.sin(angle_rad) * side, dtype=np.float64)


def _unit(v: FloatArray | tuple[float, float, float]) -> FloatArray:
    a = np.asarray(v, dtype=np.float64)
    return np.asarray(a / np.linalg.norm(a), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ArchGeometry:
    """Where branches leave the finished arch: outward normals, predicted ostia and their drop."""

    arc_mm: FloatArray
    points_mm: FloatArray
    radii_mm: FloatArray
    tangents: FloatArray
    outward: FloatArray
    z_outer_mm: float
    z_inner_mm: float
    apex_arc_mm: float

    def takeoff(self, i: int | slice, bias_x: float) -> FloatArray:
        """Take-off direction of a great vessel leaving at arch vertex ``i`` (or vertices)."""
        return curves.unit(self.outward[i] + TAKEOFF_LIFT * _Z + bias_x * _X)

    def ostium(self, i: int | slice, direction: FloatArray) -> FloatArray:
        """Where a straight branch leaving vertex ``i`` along ``direction`` crosses the arch wall."""
        sin = np.maximum(np.linalg.norm(np.cross(direction, self.tangents[i]), axis=-1), 0.3)
        return np.asarray(self.points_mm[i] + direction * (self.radii_mm[i] / sin)[..., None], dtype=np.float64)

    def drop(self, z: FloatArray) -> FloatArray:
        """Height below the outer curvature's top in units of the outer-to-inner height."""
        return (self.z_outer_mm - z) / (self.z_outer_mm - self.z_inner_mm)


def arch_geometry(arch: Branch, centre: FloatArray) -> ArchGeometry:
    """Measure the finished arch; ``centre`` is the centre of its curve (outward normals point away)."""
    pts = arch.points_mm
    tan = curves.tangents(pts)
    rel = pts - centre
    outward = curves.unit(rel - np.sum(rel * tan, axis=1, keepdims=True) * tan)
    z_outer = float(np.max(pts[:, 2] + arch.radii_mm))
    z_inner = float(np.max(pts[:, 2] - arch.radii_mm))
    apex = float(arch.arc_mm[int(np.argmax(pts[:, 2]))])
    return ArchGeometry(arch.arc_mm, pts, arch.radii_mm, tan, outward, z_outer, z_inner, apex)


def generate(spec: ArchetypeSpec, rng: np.random.Generator, *, source: str = "") -> VesselTree:
    """A procedural vessel tree from an archetype, every draw taken from ``rng``."""
    p = _draw_params(spec, rng)
    bld = _Builder(spec, rng)
    d, ln, ar, br = p.d, p.length, p.arch, p.br
    tort = p.tortuosity
    radius_root = _profile([(0.0, d["annulus"]), (0.45, d["sinus"]), (1.0, d["sinotubular"])])

    # valve axis, aortic root (straight along the axis) and ascending aorta
    azimuth = 2.0 * np.pi * float(rng.random())
    n_v = _rotate_towards(_unit(VALVE_AXIS_NOMINAL), np.radians(br["valve_tilt_deg"]), azimuth)
    origin = np.zeros(3)
    stj = origin + ln["aortic_root"] * n_v
    root = bld.add(
        "aortic_root", None, 0.0, [origin, stj], radius_root, start_tangent=n_v, end_tangent=n_v, tortuosity=0.0
    )
    # a single cubic (Hermite) from the valve axis to vertical: no control point in between to kink it
    top_asc = stj + ln["ascending"] * _unit(n_v + 1.5 * _Z) + bld.jitter()[0]
    bld.add(
        "ascending_aorta",
        "aortic_root",
        root.length_mm,
        [stj, top_asc],
        _profile([(0.0, d["sinotubular"]), (0.5, d["ascending"]), (1.0, d["ascending"])]),
        start_tangent=n_v,
        end_tangent=_Z,
        tortuosity=0.0,
    )
    asc = bld.branches["ascending_aorta"]
    a_pt = asc.points_mm[-1]

    # arch: vertical legs (elongated arches) and a half ellipse in the oblique arch plane
    half = 0.5 * ar["width_mm"]
    ratio = ar["height_ratio"]
    semi_z = half * min(ratio, 1.0)
    leg = half * max(ratio - 1.0, 0.0)
    phi = np.radians(ar["orientation_deg"])
    u = np.array([np.cos(phi), np.sin(phi), 0.0])
    d_pt = a_pt + 2.0 * half * u
    theta = np.linspace(0.0, np.pi, 721)
    top = a_pt + leg * _Z + half * (1.0 - np.cos(theta))[:, None] * u + semi_z * np.sin(theta)[:, None] * _Z
    parts = [top]
    if leg > 0.0:
        rise = np.linspace(0.0, leg, max(2, int(np.ceil(leg / 0.5)) + 1))
        parts = [(a_pt + rise[:, None] * _Z)[:-1], top, (d_pt + rise[::-1][:, None] * _Z)[1:]]
    arch_poly = curves.resample(np.concatenate(parts), BASE_SPACING_MM)
    radius_arch = _profile([(0.0, d["ascending"]), (1.0, d["isthmus"])])
    bld.finish("aortic_arch", "ascending_aorta", asc.length_mm, arch_poly, radius_arch, tortuosity=0.0)
    arch = bld.branches["aortic_arch"]
    geo = arch_geometry(arch, a_pt + leg * _Z + half * u)

    # descending thoracic and abdominal aorta
    d_end = arch.points_mm[-1]
    dia = np.array([12.0, d_end[1], d_end[2] - ln["descending"]]) + bld.jitter()[0]
    ctrl_desc = [
        d_end,
        d_end + (dia - d_end) / 3.0 + bld.jitter()[0],
        d_end + 2.0 * (dia - d_end) / 3.0 + bld.jitter()[0],
        dia,
    ]
    desc = bld.add(
        "descending_aorta",
        "aortic_arch",
        arch.length_mm,
        ctrl_desc,
        _profile([(0.0, d["isthmus"]), (1.0, d["diaphragm"])]),
        start_tangent=-_Z,
        end_tangent=-_Z,
        tortuosity=tort,
    )
    dia = desc.points_mm[-1]
    bif = np.array([3.0, dia[1] - br["lordosis_mm"], dia[2] - ln["abdominal"]]) + bld.jitter()[0]
    mid_abd = 0.5 * (dia + bif) + np.array([0.0, -0.2 * br["lordosis_mm"], 0.0]) + bld.jitter()[0]
    s_coel = br["coeliac_offset_mm"]
    s_sma = s_coel + br["sma_gap_mm"]
    s_rl = s_sma + br["renal_gap_mm"]
    s_rr = s_rl + br["renal_right_offset_mm"]
    approx_len = float(np.linalg.norm(mid_abd - dia) + np.linalg.norm(bif - mid_abd))
    renal_frac = min(0.8, (max(s_rl, s_rr) + 10.0) / approx_len)
    abd = bld.add(
        "abdominal_aorta",
        "descending_aorta",
        desc.length_mm,
        [dia, mid_abd, bif],
        _profile([(0.0, d["diaphragm"]), (renal_frac, d["infrarenal"]), (1.0, d["infrarenal"])]),
        start_tangent=-_Z,
        end_tangent=-_Z,
        tortuosity=tort,
    )

    def side(name: str, station: str) -> RadiusFn:
        lo = CLINICAL_DIAMETER_MM[station][0]
        return _profile([(0.0, d[station]), (1.0, max(lo, d[station] * (1.0 - p.taper)))])

    def clip_arc(b: Branch, s: float, margin: float) -> float:
        return float(np.clip(s, margin, b.length_mm - margin))

    # coeliac trunk and SMA leave anteriorly (-y); renal arteries laterally, a little posterior and caudal
    for name, s in (("coeliac", s_coel), ("sma", s_sma)):
        s = clip_arc(abd, s, 5.0)
        o = abd.point_at(s)[0]
        r_a = float(abd.radius_at(s)[0])
        tan = abd.tangent_at(s)
        if name == "coeliac":
            d0 = _unit(np.array([0.0, -1.0, -0.15]) - 0.15 * tan)
            ctrl = [o, o + d0 * (r_a + 4.0), o + d0 * (r_a + ln["coeliac"]) + bld.jitter()[0]]
        else:
            # a short anterior stem clear of the aortic wall, then the trunk at the aortomesenteric angle
            ang = np.radians(br["sma_angle_deg"])
            d0 = _unit(np.array([0.0, -1.0, -0.6]))
            trunk = np.array([0.0, -np.sin(ang), -np.cos(ang)])
            stem = o + d0 * (r_a + 12.0)
            ctrl = [
                o,
                stem,
                stem + trunk * (0.35 * ln["sma"]) + bld.jitter()[0],
                stem + trunk * (0.8 * ln["sma"]) + bld.jitter()[0],
            ]
        bld.add(name, "abdominal_aorta", s, ctrl, side(name, name), start_tangent=d0, tortuosity=tort)
    caudal = np.radians(br["renal_caudal_deg"])
    for name, sgn, s in (("renal_left", 1.0, s_rl), ("renal_right", -1.0, s_rr)):
        s = clip_arc(abd, s, 5.0)
        o = abd.point_at(s)[0]
        r_a = float(abd.radius_at(s)[0])
        d0 = _unit(np.array([sgn * np.cos(caudal), 0.15, -np.sin(caudal)]))
        far = o + d0 * (r_a + ln["renal"]) + np.array([0.0, 8.0, 0.0])
        ctrl = [o, o + d0 * (r_a + 6.0), o + d0 * (r_a + 0.6 * ln["renal"]) + bld.jitter()[0], far + bld.jitter()[0]]
        bld.add(name, "abdominal_aorta", s, ctrl, side(name, "renal"), start_tangent=d0, tortuosity=tort)

    # iliac and femoral arteries; the common femoral's distal end is the access site
    bif = abd.points_mm[-1]
    iliac_deg = {"left": br["iliac_angle_deg"], "right": spec.branching.iliac_angle_deg.draw(rng)}
    for suffix, sgn in (("left", 1.0), ("right", -1.0)):
        alpha = np.radians(iliac_deg[suffix])
        d0 = _unit(np.array([sgn * np.sin(alpha), -0.05, -np.cos(alpha)]))
        cia_end = bif + d0 * ln["common_iliac"] + bld.jitter()[0]
        cia = bld.add(
            f"common_iliac_{suffix}",
            "abdominal_aorta",
            abd.length_mm,
            [bif, 0.5 * (bif + cia_end) + bld.jitter()[0], cia_end],
            _profile([(0.0, d["common_iliac"]), (1.0, d["external_iliac"])]),
            start_tangent=d0,
            tortuosity=tort,
        )
        c_end = cia.points_mm[-1]
        drop = float(np.sqrt(max(ln["external_iliac"] ** 2 - 2.0 * 30.0**2, 100.0)))
        eia_end = c_end + np.array([sgn * 30.0, -30.0, -drop]) + bld.jitter()[0]
        mid = 0.5 * (c_end + eia_end) + np.array([sgn * 5.0, 8.0, 0.0]) + bld.jitter()[0]
        eia = bld.add(
            f"external_iliac_{suffix}",
            f"common_iliac_{suffix}",
            cia.length_mm,
            [c_end, mid, eia_end],
            _profile([(0.0, d["external_iliac"]), (1.0, d["common_femoral"])]),
            start_tangent=cia.tangent_at(cia.length_mm),
            tortuosity=tort,
        )
        e_end = eia.points_mm[-1]
        cfa_end = e_end + ln["common_femoral"] * _unit((sgn * 0.05, -0.15, -1.0)) + bld.jitter()[0]
        bld.add(
            f"common_femoral_{suffix}",
            f"external_iliac_{suffix}",
            eia.length_mm,
            [e_end, 0.5 * (e_end + cfa_end) + bld.jitter()[0], cfa_end],
            _profile([(0.0, d["common_femoral"])]),
            start_tangent=eia.tangent_at(eia.length_mm),
            tortuosity=tort,
        )

    # great vessels: the BCA where the drawn drop is met, LCCA and LSA after it along the arch
    _great_vessels(bld, spec, p, geo, arch)

    ring, leak, annulus = _valve(root, n_v, p, rng)
    landmarks = {
        "heart": (0.0, 0.0, 0.0),
        "arch_apex": _t3(arch.point_at(geo.apex_arc_mm)[0]),
        "diaphragm": _t3(dia),
        "bifurcation": _t3(bif),
        "access_right": _t3(bld.branches["common_femoral_right"].points_mm[-1]),
        "access_left": _t3(bld.branches["common_femoral_left"].points_mm[-1]),
    }
    order = [
        "aortic_root",
        "ascending_aorta",
        "aortic_arch",
        "brachiocephalic",
        "right_subclavian",
        "right_common_carotid",
        "left_common_carotid",
        "left_subclavian",
        "descending_aorta",
        "abdominal_aorta",
        "coeliac",
        "sma",
        "renal_left",
        "renal_right",
        "common_iliac_left",
        "external_iliac_left",
        "common_femoral_left",
        "common_iliac_right",
        "external_iliac_right",
        "common_femoral_right",
    ]
    tree = VesselTree(
        branches=tuple(bld.branches[n] for n in order),
        body_box=spec.body_box_mm,
        annulus=annulus,
        valve_ring=ring,
        leak=leak,
        landmarks=landmarks,
        motion=spec.motion,
        source=source or f"procedural:{spec.name}",
    )
    _check_inside_body(tree, source or spec.name)
    return tree


def _t3(v: FloatArray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _great_vessels(bld: _Builder, spec: ArchetypeSpec, p: _Params, geo: ArchGeometry, arch: Branch) -> None:
    d, ln, ar = p.d, p.length, p.arch
    tort = p.tortuosity
    bias_b = TAKEOFF_BIAS_X["brachiocephalic"]
    every = slice(None)
    drops = geo.drop(geo.ostium(every, geo.takeoff(every, bias_b))[:, 2])
    candidates = np.flatnonzero((geo.arc_mm >= 10.0) & (geo.arc_mm <= geo.apex_arc_mm))
    meets = candidates[drops[candidates] >= ar["bca_drop"]]
    i_b = int(meets[-1]) if len(meets) else int(candidates[0])
    s_b = float(geo.arc_mm[i_b])
    s_l = s_b if spec.bovine else s_b + ar.get("lcca_gap_mm", 0.0)
    s_s = s_l + ar["lsa_gap_mm"]
    limit = arch.length_mm - 10.0
    s_l, s_s = min(s_l, limit), min(s_s, limit)

    def vertex(s: float) -> int:
        return int(np.argmin(np.abs(geo.arc_mm - s)))

    def side(station: str) -> RadiusFn:
        lo = CLINICAL_DIAMETER_MM[station][0]
        return _profile([(0.0, d[station]), (1.0, max(lo, d[station] * (1.0 - p.taper)))])

    # brachiocephalic trunk, then right subclavian and right common carotid from its end
    d0 = geo.takeoff(i_b, bias_b)
    o = arch.point_at(s_b)[0]
    stem = geo.ostium(i_b, d0) + 4.0 * d0
    end = stem + (ln["brachiocephalic"] - 4.0) * _unit((-0.5, -0.1, 1.0)) + bld.jitter()[0]
    bca = bld.add(
        "brachiocephalic",
        "aortic_arch",
        s_b,
        [o, stem, end],
        side("brachiocephalic"),
        start_tangent=d0,
        tortuosity=tort,
    )
    e = bca.points_mm[-1]
    t_e = bca.tangent_at(bca.length_mm)
    l_sub = ln["subclavian"]
    bld.add(
        "right_subclavian",
        "brachiocephalic",
        bca.length_mm,
        [
            e,
            e + np.array([-20.0, 4.0, 6.0]) + bld.jitter()[0],
            e + np.array([-45.0, 10.0, 4.0]) + bld.jitter()[0],
            e + np.array([-0.9 * l_sub, 15.0, -12.0]) + bld.jitter()[0],
        ],
        side("subclavian"),
        start_tangent=_unit(t_e + np.array([-1.5, 0.0, -0.3])),
        tortuosity=tort,
    )
    l_cc = ln["common_carotid"]
    bld.add(
        "right_common_carotid",
        "brachiocephalic",
        bca.length_mm,
        [e, e + np.array([-4.0, 3.0, 0.5 * l_cc]) + bld.jitter()[0], e + np.array([-8.0, 8.0, l_cc]) + bld.jitter()[0]],
        side("common_carotid"),
        start_tangent=_unit(t_e + _Z),
        tortuosity=tort,
    )

    # left common carotid (bovine: from the BCA's origin, leaning left) and left subclavian; both rise
    # above the arch before any sideways run, so neither crosses it
    i_l = i_b if spec.bovine else vertex(s_l)
    bias_l = TAKEOFF_BIAS_X["left_common_carotid_bovine" if spec.bovine else "left_common_carotid"]
    d0 = geo.takeoff(i_l, bias_l)
    o = arch.point_at(s_l)[0]
    stem = geo.ostium(i_l, d0) + 4.0 * d0
    clear = geo.z_outer_mm + 12.0
    bld.add(
        "left_common_carotid",
        "aortic_arch",
        s_l,
        [
            o,
            stem,
            np.array([stem[0] + 6.0, stem[1] + 3.0, max(stem[2] + 0.5 * l_cc, clear)]) + bld.jitter()[0],
            stem + np.array([12.0, 8.0, l_cc - 5.0]) + bld.jitter()[0],
        ],
        side("common_carotid"),
        start_tangent=d0,
        tortuosity=tort,
    )
    i_s = vertex(s_s)
    d0 = geo.takeoff(i_s, TAKEOFF_BIAS_X["left_subclavian"])
    o = arch.point_at(s_s)[0]
    stem = geo.ostium(i_s, d0) + 4.0 * d0
    rise_z = max(stem[2] + 20.0, clear + 0.5 * d["subclavian"])
    bld.add(
        "left_subclavian",
        "aortic_arch",
        s_s,
        [
            o,
            stem,
            np.array([stem[0] + 12.0, stem[1] + 6.0, rise_z]) + bld.jitter()[0],
            np.array([stem[0] + 38.0, stem[1] + 10.0, rise_z + 8.0]) + bld.jitter()[0],
            np.array([stem[0] + 0.8 * l_sub + 10.0, stem[1] + 16.0, rise_z - 5.0]) + bld.jitter()[0],
        ],
        side("subclavian"),
        start_tangent=d0,
        tortuosity=tort,
    )


def _valve(
    root: Branch, n_v: FloatArray, p: _Params, rng: np.random.Generator
) -> tuple[ValveRing, ParavalvularLeak, Annulus]:
    """The eccentric ring: touching the wall opposite the leak, the widest gap (the leak) beside it."""
    angle = 2.0 * np.pi * float(rng.random())
    h = p.valve["ring_offset_mm"]
    tube = p.valve["ring_tube_radius_mm"]
    gap = p.valve["leak_gap_mm"]
    r_wall = float(root.radius_at(h)[0])
    e1 = _unit(np.array([0.0, -1.0, 0.0]) + n_v[1] * n_v)  # anterior, projected into the annulus plane
    e2 = np.cross(n_v, e1)
    direction = np.cos(angle) * e1 + np.sin(angle) * e2
    ecc = 0.5 * gap
    major = r_wall - tube - ecc
    centre = h * n_v - ecc * direction
    # gap all round: wall radius minus the distance from the root axis to the ring's outer edge
    theta = np.linspace(-np.pi, np.pi, 1441)
    edge = np.stack([(major + tube) * np.cos(theta) - ecc, (major + tube) * np.sin(theta)], axis=1)
    gaps = r_wall - np.linalg.norm(edge, axis=1)
    arc_deg = float(np.degrees(np.ptp(theta[gaps >= 0.5 * gap])))
    leak_centre = h * n_v + (r_wall - ecc) * direction
    ring = ValveRing(_t3(centre), _t3(n_v), float(major), float(tube))
    leak = ParavalvularLeak(_t3(leak_centre), _t3(direction), float(gap), arc_deg)
    annulus = Annulus((0.0, 0.0, 0.0), _t3(n_v), float(root.radii_mm[0]))
    return ring, leak, annulus


def _check_inside_body(tree: VesselTree, source: str) -> None:
    for b in tree.branches:
        inside = tree.body_box.contains(b.points_mm)
        if not np.all(inside):
            k = int(np.argmin(inside))
            raise ConfigError(
                f"{source}: field 'body_box_mm': branch '{b.name}' leaves the body at {np.round(b.points_mm[k], 1)} "
                f"(allowed range {tree.body_box.describe()})"
            )


def random_anatomy(seed: int | np.random.Generator, archetype: str = "random") -> VesselTree:
    """A procedural tree from ``seed``: ``archetype`` is a shipped name, a YAML path, or ``random``
    (one of :data:`~.archetypes.ARCHETYPES` drawn uniformly with the same Generator, then its tree).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if archetype == "random":
        archetype = ARCHETYPES[int(rng.integers(len(ARCHETYPES)))]
    spec = load_archetype(archetype)
    label = "generator" if isinstance(seed, np.random.Generator) else str(seed)
    return generate(spec, rng, source=f"procedural:{spec.name} seed={label}")
