"""Axial needle-tissue force model (Okamura, Simone & O'Leary 2004, IEEE TBME 51:1707).

The total force resisting insertion is the sum of three terms::

    force_n = stiffness + friction + cutting

* **stiffness** -- before a membrane tears, the tip pushes it ahead (tenting) by
  ``d`` mm past its rest position and it pushes back with ``k1*d + k2*d^2``. When
  that exceeds the membrane's puncture force the membrane tears: a
  :class:`PunctureEvent` is recorded; the released tissue holds the force at
  the peak and relaxes to friction + cutting within ``relax_mm`` of further
  travel (or with time constant ``relax_s``): the sharp drop a force sensor sees.
* **friction** -- along the shaft inside tissue: per mm of shaft in each tissue
  (the layer's ``friction_n_per_mm``), velocity dependent with a Karnopp stick
  band (static above dynamic, viscous term, sign follows the insertion rate).
* **cutting** -- a constant force per tissue while the tip advances in solid
  tissue; zero in a lumen and when retracting.

Membranes along the needle line (from the phantom's analytic geometry): the skin
(entry from air), the fat and muscle fasciae (top of each deeper layer), the
front wall of each vessel (tissue -> wall) and its back wall (lumen -> wall).
Membranes tear in order along the needle; torn membranes stay torn while the tip
is under the skin and everything resets when the tip leaves it. Retracting never
tears anything. When a tear happens with the tip already past deeper membranes
(a thick skin tents several mm), the tissue between was compressed, not cut: those
membranes are carried in front of the tip (their deflection starts again from
zero at the tear) and follow the tip back if it retracts. Before a membrane tears
the tip is on its near side (``tip_tissue`` is the tissue before it).

Speed: the tissue profile along the needle line (boundaries, per-segment
friction and cutting, membranes) is computed once in the phantom frame and
reused while the line moves by less than ``profile_tolerance_mm`` across itself
(motion along the needle is exact, and membrane positions follow small sideways
shifts to first order) and the tip stays ``profile_lookahead_mm / 2`` short of its
end, so :meth:`NeedleTissueModel.update` is a few dozen Python operations.
Arterial pulsation re-samples the profile only for arteries the line passes near.

Sign convention: ``force_n`` is the axial force resisting insertion (positive
pushes the needle back out). Friction is negative while retracting.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.config import param
from ir_robot.core.errors import IrRobotError
from ir_robot.core.types import Tissue
from ir_robot.sim.phantom import Phantom

_AIR = int(Tissue.AIR)
_SKIN, _FAT, _MUSCLE = int(Tissue.SKIN), int(Tissue.FAT), int(Tissue.MUSCLE)
_WALL = int(Tissue.VESSEL_WALL)
_LUMENS = (int(Tissue.VEIN_LUMEN), int(Tissue.ARTERY_LUMEN))
_LAYER_OF = {_SKIN: 0, _FAT: 1, _MUSCLE: 2}


@dataclass(frozen=True)
class ForceModelParams:
    """Parameters of :class:`NeedleTissueModel` (tissue mechanics themselves live in the phantom)."""

    noise_n: float = param(
        0.01, range=(0.0, 1.0), unit="N", help="sigma of the Gaussian sensor noise added to the measured force"
    )
    karnopp_static_ratio: float = param(
        1.3, range=(1.0, 3.0), help="static / dynamic friction (the most friction the stick band can hold)"
    )
    karnopp_stick_band_mm_s: float = param(
        0.1, range=(1e-4, 5.0), unit="mm/s", help="half width of the Karnopp stick band around zero velocity"
    )
    karnopp_viscous_n_s_per_mm2: float = param(
        0.002, range=(0.0, 0.1), unit="N s/mm^2", help="viscous friction per mm of shaft in tissue per mm/s"
    )
    karnopp_retract_ratio: float = param(
        1.0, range=(0.2, 3.0), help="dynamic friction when retracting / when inserting"
    )
    wall_cutting_force_n: float = param(
        0.15, range=(0.0, 5.0), unit="N", help="cutting force while the tip advances through a vessel wall"
    )
    lumen_friction_n_per_mm: float = param(
        0.0, range=(0.0, 0.1), unit="N/mm", help="friction per mm of shaft inside a lumen (blood)"
    )
    reference_diameter_mm: float = param(
        0.9,
        range=(0.2, 3.0),
        unit="mm",
        help="needle diameter the phantom's friction and cutting values are for; both scale with diameter / this",
    )
    relax_mm: float = param(
        0.05,
        range=(0.001, 2.0),
        unit="mm",
        help="travel after a tear over which the membrane's stiffness force vanishes",
    )
    relax_s: float = param(
        0.02, range=(0.001, 1.0), unit="s", help="time constant of the same relaxation when the needle stops"
    )
    profile_step_mm: float = param(
        0.05, range=(0.005, 0.5), unit="mm", help="sampling step of the tissue profile along the needle line"
    )
    profile_refine: int = param(
        15,
        range=(0, 255),
        help="extra points per sampling step locating each tissue boundary "
        "(boundary error <= step / (2 * (refine + 1)))",
    )
    profile_lookahead_mm: float = param(
        10.0,
        range=(1.0, 200.0),
        unit="mm",
        help="the profile covers the line up to this far beyond the tip "
        "(re-sampled when the tip gets within half of it of the end)",
    )
    profile_tolerance_mm: float = param(
        0.1,
        range=(0.001, 1.0),
        unit="mm",
        help="re-sample the profile when the line moved this much across itself "
        "(phantom frame) or an artery near it changed radius this much",
    )


@dataclass(frozen=True)
class PunctureEvent:
    """A membrane tore. ``insert_mm`` is the needle insertion (from the pivot) at the tear."""

    t_s: float
    membrane: str  # "skin", "fat", "muscle" (fascia at the layer top), "vessel_wall", "back_wall"
    vessel_index: int  # -1 for layers
    peak_force_n: float
    insert_mm: float


@dataclass(frozen=True)
class NeedleContact:
    """What the needle feels at one update (see the module docstring for the sign convention)."""

    force_n: float
    measured_force_n: float
    tip_tissue: Tissue
    in_lumen: bool
    lumen_vessel: int
    back_wall_punctured: bool
    inserted_mm: float
    events: tuple[PunctureEvent, ...]
    components: dict[str, float]
    tenting_mm: float = 0.0  # how far the membrane in front of the tip is pushed past its rest position


#: a membrane's identity across profile re-sampling: (membrane kind, vessel index, ordinal)
_MembraneKey = tuple[str, int, int]


class _Membrane:
    __slots__ = ("u", "g", "kind", "vessel", "key", "puncture_n", "k1", "k2", "before")

    def __init__(
        self,
        u: float,
        g: tuple[float, ...],
        kind: str,
        vessel: int,
        key: _MembraneKey,
        puncture_n: float,
        k1: float,
        k2: float,
        before: int,
    ):
        self.u = u  # rest position along the line (profile coordinate, mm)
        self.g = g  # d(u)/d(sideways shift of the line), 3 floats
        self.kind = kind
        self.vessel = vessel
        self.key = key  # identity kept across profile re-sampling
        self.puncture_n = puncture_n
        self.k1 = k1
        self.k2 = k2
        self.before = before  # index of the segment on the near side


class _Profile:
    """Piecewise-constant tissue along the line ``p0 + u * d`` (phantom frame)."""

    __slots__ = (
        "p0",
        "d",
        "u_far",
        "u_end",
        "bounds",
        "tissue",
        "vessel",
        "mu",
        "cut",
        "solid",
        "cum_mu",
        "cum_solid",
        "membranes",
        "pulse_idx",
        "pulse_r",
    )
    p0: tuple[float, float, float]  # a point of the line (the pivot at sampling time)
    d: tuple[float, float, float]  # the line's unit direction
    u_far: float  # line length whose sideways motion is checked against the tolerance
    u_end: float  # re-sample when the tip goes past this
    bounds: list[float]  # segment boundaries along the line, increasing
    tissue: list[int]  # Tissue code per segment (len(bounds) + 1)
    vessel: list[int]  # vessel index per segment, -1 outside vessels
    mu: list[float]  # friction per mm of shaft, per segment
    cut: list[float]  # cutting force, per segment
    solid: list[bool]  # solid tissue (not air or lumen), per segment
    cum_mu: list[float]  # friction of the line up to each boundary
    cum_solid: list[float]  # solid length of the line up to each boundary
    membranes: list[_Membrane]  # in order along the line
    pulse_idx: NDArray[np.intp]  # arteries the line passes near
    pulse_r: NDArray[np.float64]  # their radii when sampled

    def seg(self, u: float) -> int:
        """Index of the segment holding profile coordinate ``u``."""
        return bisect_right(self.bounds, u)

    def integrals(self, u: float, i: int) -> tuple[float, float]:
        """(friction N, solid-tissue length mm) of the line from -inf to u, u inside segment i."""
        if i == 0:
            return 0.0, 0.0
        du = u - self.bounds[i - 1]
        return self.cum_mu[i - 1] + du * self.mu[i], self.cum_solid[i - 1] + (du if self.solid[i] else 0.0)


class NeedleTissueModel:
    """Axial force on a straight needle in a :class:`Phantom`, updated at the physics rate.

    ``update`` takes the needle line in the *world* frame (pivot and unit direction;
    the tip is at ``pivot + insert_mm * direction``) and converts it to the phantom
    frame with the phantom's motion offset at ``t_s``. The pivot is expected outside
    the tissue (the rig's remote centre of motion sits above the skin).
    """

    def __init__(
        self, phantom: Phantom, params: ForceModelParams = ForceModelParams(), needle_diameter_mm: float = 0.9
    ):
        if not isinstance(phantom, Phantom):
            raise IrRobotError(
                f"NeedleTissueModel needs a Phantom (geometry), got {type(phantom).__name__}; "
                "wrap a PhantomSpec with Phantom(spec)"
            )
        if not needle_diameter_mm > 0:
            raise IrRobotError(f"needle_diameter_mm must be > 0, got {needle_diameter_mm}")
        self.phantom = phantom
        self.params = params
        self.needle_diameter_mm = float(needle_diameter_mm)
        scale = self.needle_diameter_mm / params.reference_diameter_mm
        layers = phantom.spec.layers
        self._layer_mu = [layer.friction_n_per_mm * scale for layer in layers]
        self._layer_cut = [layer.cutting_force_n * scale for layer in layers]
        self._wall_cut = params.wall_cutting_force_n * scale
        self._lumen_mu = params.lumen_friction_n_per_mm * scale
        self._moving = bool(phantom.spec.motion.enabled)
        self._pulsing = np.flatnonzero([v.pulsation > 0 for v in phantom.spec.vessels])
        self._tol2 = params.profile_tolerance_mm**2
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything: no membrane torn, no profile cached."""
        self._profile: _Profile | None = None
        self._builds = 0
        self._clear_tissue_state()

    def _clear_tissue_state(self) -> None:
        self._torn: set[_MembraneKey] = set()
        self._carry: dict[_MembraneKey, float] = {}  # key -> how far an untorn membrane is carried past its rest
        # [force held at the tear, insert at tear, t at tear, furthest insert since]
        self._residual: list[list[float]] = []
        self._back_wall = False

    @property
    def profile_builds(self) -> int:
        """How many times the tissue profile along the needle was sampled since the last reset."""
        return self._builds

    @property
    def torn(self) -> frozenset[_MembraneKey]:
        """Keys ``(membrane, vessel_index, ordinal)`` of the membranes torn so far."""
        return frozenset(self._torn)

    # ------------------------------------------------------------------ update
    def update(
        self,
        pivot_mm: Sequence[float] | NDArray[np.float64],
        direction: Sequence[float] | NDArray[np.float64],
        insert_mm: float,
        insert_rate_mm_s: float,
        t_s: float,
        rng: np.random.Generator,
        *,
        applied_force_n: float | None = None,
    ) -> NeedleContact:
        """Advance the model to the needle state at ``t_s`` and return what the needle feels.

        ``applied_force_n`` (optional): the non-friction axial force the drive applies;
        inside the Karnopp stick band the friction balances it up to the static limit.
        Without it the stick-band friction is a linear ramp through zero velocity.
        """
        px, py, pz = float(pivot_mm[0]), float(pivot_mm[1]), float(pivot_mm[2])
        dx, dy, dz = float(direction[0]), float(direction[1]), float(direction[2])
        n2 = dx * dx + dy * dy + dz * dz
        if abs(n2 - 1.0) > 1e-9:
            if not n2 > 1e-18 or not math.isfinite(n2):
                raise IrRobotError(f"needle direction must be a non-zero finite 3-vector, got {direction!r}")
            n = math.sqrt(n2)
            dx, dy, dz = dx / n, dy / n, dz / n
        if self._moving:
            ox, oy, oz = self.phantom.offset_mm(t_s).tolist()  # plain floats: numpy scalars are slow here
            px, py, pz = px - ox, py - oy, pz - oz
        insert = float(insert_mm)
        rate = float(insert_rate_mm_s)
        prof = self._profile
        if prof is None or self._stale(prof, px, py, pz, dx, dy, dz, insert, t_s):
            prof = self._profile = self._build(px, py, pz, dx, dy, dz, insert, t_s)
            self._builds += 1
        # profile coordinate of the tip, and the sideways shift of the line since sampling
        ex, ey, ez = px - prof.p0[0], py - prof.p0[1], pz - prof.p0[2]
        shift = ex * dx + ey * dy + ez * dz
        sx, sy, sz = ex - shift * dx, ey - shift * dy, ez - shift * dz
        u_tip = insert + shift
        membranes = prof.membranes

        def rest(m: _Membrane) -> float:
            g = m.g
            return m.u + g[0] * sx + g[1] * sy + g[2] * sz

        # the tip left the skin: every membrane heals
        if self._torn or self._residual:
            first = rest(membranes[0]) if membranes else math.inf
            if u_tip < first and prof.tissue[prof.seg(u_tip)] == _AIR:
                self._clear_tissue_state()
        torn, carry = self._torn, self._carry
        # carried membranes follow a retracting tip back towards their rest position
        if carry:
            for m in membranes:
                c = carry.get(m.key)
                if c is not None:
                    c = min(c, u_tip - rest(m))
                    if c > 0.0:
                        carry[m.key] = c
                    else:
                        del carry[m.key]

        events: list[PunctureEvent] = []
        while True:
            j, m_next, u_next = self._next_untorn(membranes, rest)
            stiff, d = 0.0, 0.0
            if m_next is not None:
                d = u_tip - u_next - carry.get(m_next.key, 0.0)
                if d > 0.0:
                    stiff = (m_next.k1 + m_next.k2 * d) * d
            if m_next is None or rate < 0.0 or d <= 0.0 or stiff <= m_next.puncture_n:
                break
            # tear: the force just before it is the event's peak
            fric, cut, _ = self._friction_cutting(prof, u_tip, m_next, u_next, rate, applied_force_n, stiff)
            torn.add(m_next.key)
            carry.pop(m_next.key, None)
            if m_next.kind == "back_wall":
                self._back_wall = True
            events.append(PunctureEvent(float(t_s), m_next.kind, m_next.vessel, stiff + fric + cut, insert))
            for m in membranes[j + 1 :]:
                if m.key not in torn:
                    past = u_tip - rest(m)
                    if past > carry.get(m.key, 0.0):
                        carry[m.key] = past

        # residual stiffness of recently torn membranes, relaxing with travel and time
        resid = 0.0
        if self._residual:
            p = self.params
            keep = []
            for r in self._residual:
                if insert > r[3]:
                    r[3] = insert
                v = r[0] * max(0.0, 1.0 - (r[3] - r[1]) / p.relax_mm) * math.exp(-(t_s - r[2]) / p.relax_s)
                if v > 1e-9:
                    resid += v
                    keep.append(r)
            self._residual = keep

        fric, cut, seg = self._friction_cutting(prof, u_tip, m_next, u_next, rate, applied_force_n, stiff)
        if events:
            # the released membrane holds the force at its peak, then relaxes to friction + cutting
            amp = events[-1].peak_force_n - (stiff + resid + fric + cut)
            if amp > 0.0:
                self._residual.append([amp, insert, t_s, insert])
                resid += amp
        stiffness = stiff + resid
        force = stiffness + fric + cut
        tissue = prof.tissue[seg]
        in_lumen = tissue in _LUMENS
        entry = membranes[0] if membranes and prof.tissue[membranes[0].before] == _AIR else None
        if entry is None:
            inserted = 0.0 if tissue == _AIR else max(0.0, u_tip)
        elif entry.key in torn:
            inserted = max(0.0, u_tip - rest(entry))
        else:
            inserted = 0.0
        noise = self.params.noise_n * rng.standard_normal()
        return NeedleContact(
            force_n=force,
            measured_force_n=force + noise,
            tip_tissue=Tissue(tissue),
            in_lumen=in_lumen,
            lumen_vessel=prof.vessel[seg] if in_lumen else -1,
            back_wall_punctured=self._back_wall,
            inserted_mm=inserted,
            events=tuple(events),
            components={"stiffness": stiffness, "friction": fric, "cutting": cut},
            tenting_mm=max(d, 0.0),
        )

    def _next_untorn(
        self, membranes: list[_Membrane], rest: Callable[[_Membrane], float]
    ) -> tuple[int, _Membrane | None, float]:
        torn = self._torn
        for j, m in enumerate(membranes):
            if m.key not in torn:
                return j, m, rest(m)
        return len(membranes), None, math.inf

    def _friction_cutting(
        self,
        prof: _Profile,
        u_tip: float,
        m_next: _Membrane | None,
        u_next: float,
        rate: float,
        applied_force_n: float | None,
        stiff: float,
    ) -> tuple[float, float, int]:
        """Karnopp friction along the shaft and cutting at the tip; also the tip's segment."""
        p = self.params
        if m_next is not None and u_tip >= u_next:  # (no next membrane: u_next is inf)
            # the tip is pushing (or carrying) the next membrane: it is on its near side
            seg = m_next.before
            mu, solid = prof.integrals(u_next, seg)
            extra = u_tip - u_next
            mu += extra * prof.mu[seg]
            if prof.solid[seg]:
                solid += extra
        else:
            seg = prof.seg(u_tip)
            if m_next is not None and seg > m_next.before:
                seg = m_next.before  # never past an untorn membrane (its position is corrected to first order)
            mu, solid = prof.integrals(u_tip, seg)
        band = p.karnopp_stick_band_mm_s
        if rate >= band:
            fric = mu + p.karnopp_viscous_n_s_per_mm2 * solid * rate
        elif rate <= -band:
            fric = -(p.karnopp_retract_ratio * mu + p.karnopp_viscous_n_s_per_mm2 * solid * -rate)
        elif applied_force_n is not None:
            other = float(applied_force_n) - stiff
            hi = p.karnopp_static_ratio * mu
            lo = -p.karnopp_static_ratio * p.karnopp_retract_ratio * mu
            fric = min(max(other, lo), hi)
        else:
            ratio = 1.0 if rate >= 0.0 else p.karnopp_retract_ratio
            fric = p.karnopp_static_ratio * ratio * mu * rate / band
        cut = prof.cut[seg] * min(1.0, rate / band) if rate > 0.0 else 0.0
        return fric, cut, seg

    # ------------------------------------------------------------------ profile
    def _stale(
        self,
        prof: _Profile,
        px: float,
        py: float,
        pz: float,
        dx: float,
        dy: float,
        dz: float,
        insert: float,
        t_s: float,
    ) -> bool:
        d0 = prof.d
        ddx, ddy, ddz = dx - d0[0], dy - d0[1], dz - d0[2]
        if (ddx * ddx + ddy * ddy + ddz * ddz) * prof.u_far * prof.u_far > self._tol2:
            return True
        ex, ey, ez = px - prof.p0[0], py - prof.p0[1], pz - prof.p0[2]
        a = ex * dx + ey * dy + ez * dz
        if insert + a > prof.u_end or ex * ex + ey * ey + ez * ez - a * a > self._tol2:
            return True
        if prof.pulse_idx.size:
            r = self.phantom.radius_mm(t_s)[prof.pulse_idx]
            if np.abs(r - prof.pulse_r).max() > self.params.profile_tolerance_mm:
                return True
        return False

    def _build(
        self, px: float, py: float, pz: float, dx: float, dy: float, dz: float, insert: float, t_s: float
    ) -> _Profile:
        """Sample the tissue along the line from where it enters the block to the lookahead beyond the tip."""
        ph, p = self.phantom, self.params
        p0 = np.array([px, py, pz])
        d = np.array([dx, dy, dz])
        prof = _Profile()
        prof.p0, prof.d = (px, py, pz), (dx, dy, dz)
        # where the line crosses the block (slab method); nothing behind the pivot
        blk = ph.spec.block
        lo = np.array([-blk.length_mm / 2, -blk.width_mm / 2, -blk.height_mm])
        hi = np.array([blk.length_mm / 2, blk.width_mm / 2, 0.0])
        u_in, u_out = 0.0, math.inf
        for k in range(3):
            if abs(d[k]) < 1e-12:
                if not lo[k] <= p0[k] <= hi[k]:
                    u_in, u_out = 1.0, 0.0
                continue
            a, b = (lo[k] - p0[k]) / d[k], (hi[k] - p0[k]) / d[k]
            u_in, u_out = max(u_in, min(a, b)), min(u_out, max(a, b))
        h = p.profile_step_mm
        prof.pulse_idx = np.zeros(0, dtype=int)
        prof.pulse_r = np.zeros(0)
        prof.u_far = max(1.0, abs(insert) + p.profile_lookahead_mm)
        prof.u_end = math.inf
        if u_in >= u_out:  # the line misses the tissue
            prof.bounds, prof.tissue, prof.vessel = [], [_AIR], [-1]
            prof.mu, prof.cut, prof.solid, prof.cum_mu, prof.cum_solid = [0.0], [0.0], [False], [], []
            prof.membranes = []
            return prof
        u_hi = max(insert, u_in) + p.profile_lookahead_mm
        if u_hi < u_out:
            prof.u_end = u_hi - 0.5 * p.profile_lookahead_mm
        else:
            u_hi = u_out
        n = int(math.ceil((u_hi - u_in) / h)) + 5
        u = (u_in - 2 * h) + h * np.arange(n)
        tis = ph.tissue_at(p0 + u[:, None] * d, t_s)
        change = np.flatnonzero(tis[1:] != tis[:-1])
        if change.size and p.profile_refine:
            # locate each boundary between its two samples with one batch of sub-samples
            frac = np.arange(1, p.profile_refine + 1) / (p.profile_refine + 1)
            sub = u[change, None] + h * frac
            diff = ph.tissue_at(p0 + sub[..., None] * d, t_s) != tis[change, None]
            first = np.where(diff.any(axis=1), diff.argmax(axis=1), p.profile_refine)
            edges = np.concatenate(
                [np.zeros((change.size, 1)), frac[None].repeat(change.size, 0), np.ones((change.size, 1))], axis=1
            )
            rows = np.arange(change.size)
            bounds = u[change] + h * 0.5 * (edges[rows, first] + edges[rows, first + 1])
        else:
            bounds = u[change] + 0.5 * h
        seg_tis = np.concatenate([tis[:1], tis[change + 1]]).astype(np.int64)
        # per-segment vessel index and host layer (a wall takes the friction of the layer it sits in)
        ends = np.concatenate([[u[0]], bounds, [u[-1]]])
        mids = p0 + (0.5 * (ends[:-1] + ends[1:]))[:, None] * d
        # one elliptical-radius query for the segment midpoints (and the arteries' proximity)
        coarse = p0 + u[::10, None] * d if self._pulsing.size else np.zeros((0, 3))
        qw = ph.vessel_q(np.concatenate([mids, coarse]), t_s, wall=True)
        q_mid = qw[: len(mids)]
        seg_ves = np.where(seg_tis >= _WALL, q_mid.argmin(axis=1), -1)  # wall and lumen codes are >= _WALL
        host = np.searchsorted(np.asarray(ph.boundaries_mm), -mids[:, 2], side="right").clip(0, 2)
        if self._pulsing.size:  # arteries the line passes near (q < 2.5: within ~1.6 outer radii)
            near = self._pulsing[qw[len(mids) :, self._pulsing].min(axis=0) < 2.5]
            prof.pulse_idx = near
            prof.pulse_r = ph.radius_mm(t_s)[near]
        mu: list[float] = []
        cut: list[float] = []
        solid: list[bool] = []
        for code, hl in zip(seg_tis.tolist(), host.tolist(), strict=True):
            if code in _LAYER_OF:
                mu.append(self._layer_mu[_LAYER_OF[code]])
                cut.append(self._layer_cut[_LAYER_OF[code]])
                solid.append(True)
            elif code == _WALL:
                mu.append(self._layer_mu[hl])
                cut.append(self._wall_cut)
                solid.append(True)
            elif code in _LUMENS:
                mu.append(self._lumen_mu)
                cut.append(0.0)
                solid.append(False)
            else:
                mu.append(0.0)
                cut.append(0.0)
                solid.append(False)
        lengths = np.diff(bounds)
        cum_mu = np.concatenate([[0.0], np.cumsum(lengths * np.asarray(mu[1:-1]))]) if bounds.size else np.zeros(0)
        cum_solid = (
            np.concatenate([[0.0], np.cumsum(lengths * np.asarray(solid[1:-1], float))]) if bounds.size else np.zeros(0)
        )
        prof.bounds = bounds.tolist()
        prof.tissue = seg_tis.tolist()
        prof.vessel = seg_ves.tolist()
        prof.mu, prof.cut, prof.solid = mu, cut, solid
        prof.cum_mu, prof.cum_solid = cum_mu.tolist(), cum_solid.tolist()
        prof.membranes = self._membranes(prof, p0, d, t_s)
        return prof

    def _membranes(
        self, prof: _Profile, p0: NDArray[np.float64], d: NDArray[np.float64], t_s: float
    ) -> list[_Membrane]:
        """The membranes along the profile in order: where each lies, what it is, how it tears."""
        layers = self.phantom.spec.layers
        vessels = self.phantom.spec.vessels
        # (u, kind, vessel, key, (puncture N, k1, k2), segment before, (surface, surface vessel))
        found: list[tuple[float, str, int, _MembraneKey, tuple[float, float, float], int, tuple[str, int]]] = []
        deepest = -1
        count: dict[tuple[str, int], int] = {}
        for i, ub in enumerate(prof.bounds):
            a, b = prof.tissue[i], prof.tissue[i + 1]
            kind = None
            if b in _LAYER_OF and _LAYER_OF[b] > deepest:
                deepest = _LAYER_OF[b]
                spec = layers[deepest]
                kind = "skin" if a == _AIR and not found else spec.name
                vessel = -1
                mech = (spec.puncture_force_n, spec.stiffness_n_per_mm, spec.stiffness_n_per_mm2)
            elif b >= _WALL and a < _WALL:  # into a wall (or straight into a lumen) from outside any vessel
                kind, vessel = "vessel_wall", prof.vessel[i + 1]
            elif a in _LUMENS and b not in _LUMENS:
                kind, vessel = "back_wall", prof.vessel[i]
            if kind is None:
                continue
            if vessel >= 0:
                v = vessels[vessel]
                mech = (v.wall_puncture_force_n, v.wall_stiffness_n_per_mm, 0.0)
            ordinal = count.get((kind, vessel), 0)
            count[(kind, vessel)] = ordinal + 1
            # the surface the membrane lies on: a lumen, a wall's outer surface, or a plane z = const
            if a in _LUMENS or b in _LUMENS:
                surface = ("lumen", prof.vessel[i] if a in _LUMENS else prof.vessel[i + 1])
            elif a == _WALL or b == _WALL:
                surface = ("outer", prof.vessel[i] if a == _WALL else prof.vessel[i + 1])
            else:
                surface = ("plane", -1)
            found.append((ub, kind, vessel, (kind, vessel, ordinal), mech, i, surface))
        grads = self._shift_gradients([(f[0], f[6]) for f in found], p0, d, t_s)
        return [
            _Membrane(ub, g, kind, vessel, key, mech[0], mech[1], mech[2], i)
            for (ub, kind, vessel, key, mech, i, _), g in zip(found, grads, strict=True)
        ]

    def _shift_gradients(
        self, where: list[tuple[float, tuple[str, int]]], p0: NDArray[np.float64], d: NDArray[np.float64], t_s: float
    ) -> list[tuple[float, ...]]:
        """How each membrane's position along the line moves when the line shifts sideways (first order).

        ``where``: ``(u, (surface, vessel))`` per membrane. The crossing of a surface
        with normal n moves by ``-(n . shift) / (n . d)``. Layer boundaries and the
        skin are planes z = const (a crossing through a side face of the block gets no
        correction); vessel surfaces use the gradient of the elliptical radius.
        Grazing crossings get no correction.
        """
        normals = np.zeros((len(where), 3))
        eps = 1e-3
        stencil = np.array([[0, 0, 0], [eps, 0, 0], [0, eps, 0], [0, 0, eps]])
        for surface, wall in (("outer", True), ("lumen", False)):
            rows = [k for k, (_, (sf, _v)) in enumerate(where) if sf == surface]
            if rows:
                pts = p0 + np.array([where[k][0] for k in rows])[:, None, None] * d + stencil
                q = self.phantom.vessel_q(pts, t_s, wall=wall)
                q = q[np.arange(len(rows))[:, None], np.arange(4), np.array([where[k][1][1] for k in rows])[:, None]]
                normals[rows] = (q[:, 1:] - q[:, :1]) / eps
        for k, (u, (surface, _v)) in enumerate(where):
            if surface == "plane" and abs(p0[2] + u * d[2] + self._plane_depth(p0[2] + u * d[2])) < 1e-3:
                normals[k] = (0.0, 0.0, 1.0)
        nd = normals @ d
        nn = np.linalg.norm(normals, axis=1)
        ok = np.abs(nd) >= 0.2 * np.maximum(nn, 1e-12)
        g = np.where(ok[:, None], -normals / np.where(ok, nd, 1.0)[:, None], 0.0)
        return [tuple(row) for row in g.tolist()]

    def _plane_depth(self, z: float) -> float:
        """Depth of the horizontal surface (skin or a layer boundary) nearest to height z."""
        planes = (0.0,) + tuple(self.phantom.boundaries_mm)
        return min(planes, key=lambda depth: abs(z + depth))


# --------------------------------------------------------------------------- helpers


def insertion_profile(
    phantom: Phantom,
    pivot: ArrayLike,
    direction: ArrayLike,
    depths_mm: ArrayLike,
    rate_mm_s: float = 2.0,
    dt: float = 1e-3,
    t0: float = 0.0,
    *,
    params: ForceModelParams | None = None,
    needle_diameter_mm: float = 0.9,
    rng: np.random.Generator | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Drive a fresh model through ``depths_mm`` (insertion from the pivot, mm) at ``|rate_mm_s|``.

    The model is stepped every ``dt`` (the needle moves ``rate*dt`` per step, the
    sign of the rate following the direction to the next requested depth, so a
    sequence going back down retracts) and is also evaluated exactly at every
    requested depth. The needle starts at ``depths_mm[0]`` at time ``t0``.

    Returns arrays aligned with ``depths_mm``: ``insert_mm``, ``t_s``, ``force_n``
    (true), ``measured_force_n``, ``stiffness_n``, ``friction_n``, ``cutting_n``,
    ``tissue`` (Tissue codes), ``in_lumen``, ``lumen_vessel``, ``tenting_mm``,
    ``back_wall_punctured``, plus ``events`` (every :class:`PunctureEvent`).
    Noise comes from ``rng`` (default: a Generator seeded with ``seed``).
    """
    depths = np.atleast_1d(np.asarray(depths_mm, dtype=float))
    if depths.ndim != 1 or depths.size == 0 or not np.isfinite(depths).all():
        raise IrRobotError("insertion_profile: depths_mm must be a non-empty 1-D sequence of finite depths (mm)")
    speed = abs(float(rate_mm_s))
    if not speed > 0 or not dt > 0:
        raise IrRobotError(f"insertion_profile: need rate_mm_s != 0 and dt > 0, got {rate_mm_s}, {dt}")
    model = NeedleTissueModel(phantom, params or ForceModelParams(), needle_diameter_mm=needle_diameter_mm)
    rng = rng if rng is not None else np.random.default_rng(seed)
    pivot = np.asarray(pivot, dtype=float)
    direction = np.asarray(direction, dtype=float)
    keys = (
        "insert_mm",
        "t_s",
        "force_n",
        "measured_force_n",
        "stiffness_n",
        "friction_n",
        "cutting_n",
        "tissue",
        "in_lumen",
        "lumen_vessel",
        "tenting_mm",
        "back_wall_punctured",
    )
    out: dict[str, list[Any]] = {k: [] for k in keys}
    events: list[PunctureEvent] = []
    step = speed * dt
    t, pos, rate = t0, float(depths[0]), speed if depths.size < 2 or depths[1] >= depths[0] else -speed

    def record(c: NeedleContact) -> None:
        for k, v in (
            ("insert_mm", pos),
            ("t_s", t),
            ("force_n", c.force_n),
            ("measured_force_n", c.measured_force_n),
            ("stiffness_n", c.components["stiffness"]),
            ("friction_n", c.components["friction"]),
            ("cutting_n", c.components["cutting"]),
            ("tissue", int(c.tip_tissue)),
            ("in_lumen", c.in_lumen),
            ("lumen_vessel", c.lumen_vessel),
            ("tenting_mm", c.tenting_mm),
            ("back_wall_punctured", c.back_wall_punctured),
        ):
            out[k].append(v)

    c = model.update(pivot, direction, pos, rate, t, rng)
    events.extend(c.events)
    record(c)
    for target in depths[1:]:
        target = float(target)
        if target != pos:
            rate = speed if target > pos else -speed
        while abs(target - pos) > 1e-12:
            move = min(step, abs(target - pos))
            pos = target if move >= abs(target - pos) else pos + math.copysign(move, rate)
            t += move / speed
            c = model.update(pivot, direction, pos, rate, t, rng)
            events.extend(c.events)
        record(c)
    res: dict[str, Any] = {k: np.asarray(v) for k, v in out.items()}
    res["tissue"] = res["tissue"].astype(np.uint8)
    res["in_lumen"] = res["in_lumen"].astype(bool)
    res["events"] = tuple(events)
    return res
