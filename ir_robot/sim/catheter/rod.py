"""A quasi-static discrete elastic rod (guidewire or catheter) pushed and turned from its hub.

State: node positions ``x (n,3)`` counted from the distal tip (node 0) to the hub, and per
segment a reference director ``d1`` (carried along in time by parallel transport) and a roll
angle ``phi`` about the segment's tangent; the material frame of segment j is ``d1`` turned by
``phi[j]``. Only the inserted part is simulated: a node whose arc length from the tip is at least
the inserted length sits on the straight access sheath (``p0 - (sigma - L) a``) and is
prescribed; the two first such nodes clamp the rod's position and direction at the access point.

Each substep (a slice of a control step; see :mod:`ir_robot.sim.catheter.drive` for its size):

1. the drive advances the inserted length ``L`` and the hub roll ``theta``;
2. torsion: a tridiagonal solve for ``phi`` of the inserted segments (torsional springs ``GJ``
   with the geometric reference twist, roll drag, and Coulomb roll friction ``mu |F_n| r`` at each
   wall contact by a stick/slip return map; the outside segments turn with the hub);
3. shape: Gauss-Newton on stretch (``EA``) + bending (``EI``, about the pre-curved rest shape in
   the material frame) + wall penalty + viscous drag, starting from a follow-the-leader guess
   (each node moved along the device's old path by the advance). Each iteration is one banded
   symmetric solve (LAPACK ``dpbsv`` via scipy, bandwidth 8) repeated inside an active-set loop
   with the wall linearised at every node (a node heading into the wall is stopped at it in the
   same step: this is what keeps nodes from tunnelling), Levenberg-Marquardt step control and a
   length-preserving retraction. 4 iterations per substep, up to 12 while a node is more than
   ``penetration_mm`` into the wall;
4. frames: ``d1`` is parallel-transported from each segment's old tangent to its new one.

The bend residual at vertex k is ``e_{k-1}/l_{k-1} - R_k e_k/l_k`` (``R_k`` turns the proximal
tangent by the rest angle towards the material director), whose squared norm is the squared bend
angle for small angles; energy ``EI / (2 l_mean) |r|^2``. Torsion and shape are solved in turn
(staggered), so the bend-twist coupling of a pre-curved tip in a curved vessel is not modelled.

Visual shape: a renderer (PyBullet) can draw the rod as one capsule per inserted segment
(from ``positions[j+1]`` to ``positions[j]``, radius ``radius_mm``) or as a tube through
``positions[:n_inside+1]``; ``material_d1`` gives each segment's orientation for a textured tip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.linalg import solve_banded
from scipy.linalg.lapack import dpbsv

from ir_robot.sim.catheter.contact import (
    WALL_FORCE_LIMIT_N,
    ContactEval,
    ForceReport,
    evaluate,
    wall_forces,
)
from ir_robot.sim.catheter.instrument import Discretisation, InstrumentSpec, discretise
from ir_robot.sim.catheter.lumen import Lumen

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_BAND = 8  # upper bandwidth of the shape Hessian: 3x3 blocks coupling nodes k and k+2


def _unit(v: FloatArray) -> FloatArray:
    return np.asarray(v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12), dtype=np.float64)


def parallel_transport(v: FloatArray, t_from: FloatArray, t_to: FloatArray) -> FloatArray:
    """Rotate vectors ``v`` by the minimal rotations taking unit ``t_from`` onto unit ``t_to`` (row-wise)."""
    w = np.cross(t_from, t_to)
    c = np.einsum("ij,ij->i", t_from, t_to)
    c = np.maximum(c, -0.999999)
    wv = np.einsum("ij,ij->i", w, v)
    return np.asarray(v * c[:, None] + np.cross(w, v) + w * (wv / (1.0 + c))[:, None], dtype=np.float64)


def signed_angle(u: FloatArray, v: FloatArray, axis: FloatArray) -> FloatArray:
    """Signed angle from ``u`` to ``v`` about ``axis`` (row-wise), rad."""
    return np.asarray(
        np.arctan2(np.einsum("ij,ij->i", np.cross(u, v), axis), np.einsum("ij,ij->i", u, v)), dtype=np.float64
    )


@lru_cache(maxsize=64)
def _band_index(n: int) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Row/column indices into upper banded storage for the 3x3 block diagonals 0, 1 and 2 of n nodes."""
    ii, jj = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
    up = ii <= jj

    def idx(nb: int, off: int, mask: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
        b = np.arange(nb)[:, None, None]
        r = 3 * b + ii[None]
        c = 3 * (b + off) + jj[None]
        r = np.broadcast_to(r, (nb, 3, 3))[:, mask]
        c = np.broadcast_to(c, (nb, 3, 3))[:, mask]
        return (_BAND + r - c).ravel(), c.ravel()

    r0, c0 = idx(n, 0, up)
    r1, c1 = idx(max(n - 1, 0), 1, np.ones((3, 3), dtype=bool))
    r2, c2 = idx(max(n - 2, 0), 2, np.ones((3, 3), dtype=bool))
    return r0, c0, r1, c1, r2, c2


@dataclass(frozen=True)
class SolveStats:
    """How the last substep's shape solve went (for benches and debugging)."""

    iterations: int
    step_norm_mm: float


class ElasticRod:
    """The rod of one instrument in one lumen, advanced by :meth:`substep` (see the module doc)."""

    def __init__(
        self,
        spec: InstrumentSpec,
        lumen: Lumen,
        access_point: npt.ArrayLike,
        direction: npt.ArrayLike,
        *,
        inserted_mm: float = 0.0,
        roll_rad: float = 0.0,
        up: npt.ArrayLike = (0.0, 0.0, 1.0),
        max_iterations: int = 4,
        tolerance_mm: float = 1e-3,
        penetration_mm: float = 0.05,
    ):
        self.spec = spec
        self.disc: Discretisation = discretise(spec)
        self.lumen = lumen
        self.p0 = np.asarray(access_point, dtype=np.float64).reshape(3)
        self.a = _unit(np.asarray(direction, dtype=np.float64).reshape(1, 3))[0]
        u = np.asarray(up, dtype=np.float64).reshape(3)
        u = u - self.a * float(u @ self.a)
        if np.linalg.norm(u) < 1e-6:
            u = np.cross(self.a, [1.0, 0.0, 0.0])
            if np.linalg.norm(u) < 1e-6:
                u = np.cross(self.a, [0.0, 1.0, 0.0])
        self.u0 = u / np.linalg.norm(u)
        self.max_iterations = max_iterations
        self.tolerance_mm = tolerance_mm
        self.penetration_mm = penetration_mm
        d = self.disc
        n = d.n_nodes
        self.max_inserted_mm = float(d.sigma[-3])
        self.inserted_mm = float(np.clip(inserted_mm, 0.0, self.max_inserted_mm))
        self.roll_rad = float(roll_rad)
        self.x = self.p0 + (self.inserted_mm - d.sigma)[:, None] * self.a
        self.d1 = np.tile(self.u0, (n - 1, 1))
        self.t_ref = np.tile(self.a, (n - 1, 1))
        self.phi = np.full(n - 1, self.roll_rad)
        self.anchor = self.phi.copy()
        self.wall = np.zeros((n, 3))
        self.time_s = 0.0
        self.last_stats = SolveStats(0, 0.0)
        self._lam = 1e-3
        self.last_forces = self._forces(np.zeros((n, 3)), self.n_free)
        # per-vertex constants
        self._lbar = np.zeros(n)
        self._lbar[1:-1] = 0.5 * (d.seg_len[:-1] + d.seg_len[1:])
        self._gj_vertex = np.zeros(n)
        self._gj_vertex[1:-1] = 2.0 / (1.0 / d.gj[:-1] + 1.0 / d.gj[1:])

    # ------------------------------------------------------------------ geometry helpers
    @property
    def n_free(self) -> int:
        """Number of inserted (free) nodes: those with arc length from the tip below the inserted length."""
        return int(np.searchsorted(self.disc.sigma, self.inserted_mm - 1e-9, side="left"))  # 1e-9: float slack

    def _sheath_positions(self, sigma: FloatArray) -> FloatArray:
        return np.asarray(self.p0 + (self.inserted_mm - sigma)[:, None] * self.a, dtype=np.float64)

    def material_d1(self) -> FloatArray:
        """Each segment's material director (the direction its pre-curve bends towards), (n-1, 3)."""
        t = _unit(self.x[:-1] - self.x[1:])
        d1 = parallel_transport(self.d1, self.t_ref, t)
        d2 = np.cross(t, d1)
        return np.asarray(np.cos(self.phi)[:, None] * d1 + np.sin(self.phi)[:, None] * d2, dtype=np.float64)

    # ------------------------------------------------------------------ one substep
    def substep(self, d_insert_mm: float, d_roll_rad: float, dt: float, external: FloatArray | None = None) -> None:
        """Advance the drive by ``d_insert_mm`` / ``d_roll_rad`` and re-solve equilibrium over ``dt`` seconds.

        ``external`` is an optional (n,3) force on each node in N (tests use it for tip loads).
        """
        d = self.disc
        old_L = self.inserted_mm
        new_L = float(np.clip(old_L + d_insert_mm, 0.0, self.max_inserted_mm))
        x_old = self.x.copy()
        self.inserted_mm = new_L
        self.roll_rad += d_roll_rad
        dl = new_L - old_L
        nf = self.n_free
        # follow-the-leader guess: each material point moves along the old curve by the advance
        q = d.sigma - dl
        guess = np.empty_like(self.x)
        for c in range(3):
            guess[:, c] = np.interp(q, d.sigma, x_old[:, c])
        ahead = q < 0.0
        if np.any(ahead):
            t_tip = _unit((x_old[0] - x_old[1]).reshape(1, 3))[0]
            guess[ahead] = x_old[0] - q[ahead, None] * t_tip
        self.x = guess
        self.x[nf:] = self._sheath_positions(d.sigma[nf:])
        self._solve_twist(dt, nf)
        if nf > 0:
            self._solve_shape(x_old, dt, nf, external)
        self._transport_frames(nf)
        self.time_s += dt

    # ------------------------------------------------------------------ torsion
    def _reference_twist(self, nsegs: int) -> FloatArray:
        """Reference twist at vertices 1..nsegs-1 between the first ``nsegs`` segments' directors."""
        t = self.t_ref[:nsegs]
        d1 = self.d1[:nsegs]
        pd = parallel_transport(d1[1:], t[1:], t[:-1])
        return signed_angle(pd, d1[:-1], t[:-1])

    def _solve_twist(self, dt: float, nf: int) -> None:
        d = self.disc
        nseg = d.n_nodes - 1
        mid = d.sigma[:-1] + 0.5 * d.seg_len
        m = int(np.searchsorted(mid, self.inserted_mm, side="left"))  # free segments 0..m-1
        self.phi[m:] = self.roll_rad
        self.anchor[m:] = self.roll_rad
        if m == 0:
            return
        nsegs = min(m + 1, nseg)
        mref = np.zeros(nsegs)  # mref[k] for vertex k (index 0 unused)
        s = np.zeros(nsegs)
        if nsegs >= 2:
            mref[1:] = self._reference_twist(nsegs)
            s[1:] = self._gj_vertex[1:nsegs] / self._lbar[1:nsegs]
        # vertex k couples segments k-1 and k: energy s_k/2 (phi_{k-1} - phi_k + mref_k)^2
        diag = np.zeros(m)
        off = np.zeros(max(m - 1, 0))  # off[j] couples segments j and j+1 (vertex j+1)
        rhs = np.zeros(m)
        k = np.arange(1, m)  # vertices between two free segments
        diag[k - 1] += s[k]
        diag[k] += s[k]
        off[k - 1] = -s[k]
        rhs[k - 1] -= s[k] * mref[k]
        rhs[k] += s[k] * mref[k]
        if m < nseg:  # vertex m: last free segment against the hub-driven one
            diag[m - 1] += s[m]
            rhs[m - 1] += s[m] * (self.roll_rad - mref[m])
        c_r = self.spec.rotational_drag_n_mm_s * d.seg_len[:m] / max(dt, 1e-9)
        diag += c_r
        rhs += c_r * self.phi[:m]
        # Coulomb roll friction at wall contacts: stick springs that slip at mu |F_n| r
        fn = np.linalg.norm(self.wall, axis=1)
        tau = self.spec.friction_coefficient * 0.5 * (fn[:m] + fn[1 : m + 1]) * d.radius_mm
        k_a = 50.0 * float(np.max(s, initial=0.0)) + 1e-6
        stick = tau > 0.0
        slide_sign = np.zeros(m)
        phi = self.phi[:m].copy()
        for _ in range(10):
            dg = diag + np.where(stick, k_a, 0.0)
            b = rhs + np.where(stick, k_a * self.anchor[:m], 0.0) - slide_sign * tau
            ab = np.zeros((3, m))
            ab[0, 1:] = off
            ab[1] = dg
            ab[2, :-1] = off
            phi = solve_banded((1, 1), ab, b) if m > 1 else b / dg
            torque = k_a * (phi - self.anchor[:m])
            slip = stick & (np.abs(torque) > tau)
            if not np.any(slip):
                break
            slide_sign = np.where(slip, np.sign(torque), slide_sign)
            stick = stick & ~slip
        self.phi[:m] = phi
        sliding = slide_sign != 0.0
        self.anchor[:m] = np.where(sliding, phi - slide_sign * tau / k_a, self.anchor[:m])
        self.anchor[:m] = np.where(tau > 0.0, self.anchor[:m], phi)

    # ------------------------------------------------------------------ shape
    def _bend_rotations(self, x: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
        """Rest rotations R_k (n,3,3) (identity where straight) and current tangents (n-1,3)."""
        e = x[:-1] - x[1:]
        t = _unit(e)
        rot = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        ang = self.disc.rest_angle[:n].copy()
        ang[0] = 0.0
        ang[-1] = 0.0
        ks = np.nonzero(ang)[0]
        if ks.size:
            tk = t[ks]
            d1 = parallel_transport(self.d1[ks], self.t_ref[ks], tk)
            d2 = np.cross(tk, d1)
            ph = self.phi[ks]
            m1 = np.cos(ph)[:, None] * d1 + np.sin(ph)[:, None] * d2
            axis = _unit(np.cross(tk, m1))
            th = ang[ks]
            kx = np.zeros((ks.size, 3, 3))
            kx[:, 0, 1], kx[:, 0, 2] = -axis[:, 2], axis[:, 1]
            kx[:, 1, 0], kx[:, 1, 2] = axis[:, 2], -axis[:, 0]
            kx[:, 2, 0], kx[:, 2, 1] = -axis[:, 1], axis[:, 0]
            s, c = np.sin(th)[:, None, None], np.cos(th)[:, None, None]
            rot[ks] = np.eye(3) + s * kx + (1.0 - c) * np.einsum("nij,njk->nik", kx, kx)
        return rot, t

    def _energy_terms(
        self,
        x: FloatArray,
        x_old: FloatArray,
        rot: FloatArray,
        nf: int,
        drag: FloatArray,
        ext: FloatArray | None,
        want_hessian: bool,
    ) -> tuple[float, FloatArray, tuple[FloatArray, FloatArray, FloatArray] | None, ContactEval]:
        d = self.disc
        n = x.shape[0]
        ls = d.seg_len[: n - 1]
        e = x[:-1] - x[1:]
        length = np.linalg.norm(e, axis=1)
        t = e / length[:, None]
        grad = np.zeros((n, 3))
        # stretch
        ks = d.ea[: n - 1] / ls
        sv = length - ls
        energy = 0.5 * float(np.sum(ks * sv * sv))
        fs = (ks * sv)[:, None] * t
        grad[:-1] += fs
        grad[1:] -= fs
        # bending at vertices 1..n-2
        la = ls[:-1]
        lb = ls[1:]
        w = d.ei[1 : n - 1] / self._lbar[1 : n - 1]
        rot_k = rot[1 : n - 1]
        re = np.einsum("nij,nj->ni", rot_k, e[1:]) / lb[:, None]
        r = e[:-1] / la[:, None] - re
        energy += 0.5 * float(np.sum(w * np.einsum("ij,ij->i", r, r)))
        wr = w[:, None] * r
        rt_wr = np.einsum("nji,nj->ni", rot_k, wr) / lb[:, None]  # R^T w r / lb
        grad[:-2] += wr / la[:, None]
        grad[1:-1] -= wr / la[:, None] + rt_wr
        grad[2:] += rt_wr
        # wall contact on free nodes
        ev = evaluate(self.lumen, x[:nf], d.radius_mm)
        kc = self.spec.wall_stiffness_n_per_mm
        g = np.where(ev.active, ev.clearance, 0.0)
        energy += 0.5 * kc * float(np.sum(g * g))
        grad[:nf] += (kc * g)[:, None] * ev.normal
        # drag on free nodes
        dx = x[:nf] - x_old[:nf]
        energy += 0.5 * float(np.sum(drag * np.einsum("ij,ij->i", dx, dx)))
        grad[:nf] += drag[:, None] * dx
        if ext is not None:
            energy -= float(np.sum(ext[:nf] * x[:nf]))
            grad[:nf] -= ext[:nf]
        if not want_hessian:
            return energy, grad, None, ev
        eye = np.eye(3)
        d0 = np.zeros((n, 3, 3))
        d1b = np.zeros((max(n - 1, 0), 3, 3))
        d2b = np.zeros((max(n - 2, 0), 3, 3))
        tt = np.einsum("ni,nj->nij", t, t)
        geo = np.clip(sv / length, 0.0, None)
        hs = ks[:, None, None] * (tt + geo[:, None, None] * (eye - tt))
        d0[:-1] += hs
        d0[1:] += hs
        d1b -= hs
        # bending blocks: A = I/la, B = -(I/la + R/lb), C = R/lb
        wa = (w / (la * la))[:, None, None]
        cm = rot_k / lb[:, None, None]
        bm = -(eye / la[:, None, None] + cm)
        wv = w[:, None, None]
        d0[:-2] += wa * eye
        d0[1:-1] += wv * np.einsum("nki,nkj->nij", bm, bm)
        d0[2:] += wv * np.einsum("nki,nkj->nij", cm, cm)
        d1b[:-1] += wv * bm / la[:, None, None]
        d1b[1:] += wv * np.einsum("nki,nkj->nij", bm, cm)
        d2b += wv * cm / la[:, None, None]
        # drag; the contact blocks k n n^T are added by the active-set loop in _solve_shape
        d0[:nf] += drag[:, None, None] * eye
        return energy, grad, (d0, d1b, d2b), ev

    def _solve_shape(self, x_old: FloatArray, dt: float, nf: int, ext: FloatArray | None) -> None:
        d = self.disc
        n = min(nf + 2, d.n_nodes)
        drag = self.spec.drag_n_s_per_mm2 * d.node_len[:nf] / max(dt, 1e-9)
        x = self.x[:n].copy()
        xo = x_old[:n]
        step = 0.0
        worst_pen = 0.0
        kc = self.spec.wall_stiffness_n_per_mm
        up = np.triu(np.ones((3, 3), dtype=bool))
        r0, c0, r1, c1, r2, c2 = _band_index(n)
        r0f, c0f = r0.reshape(n, 6)[:nf], c0.reshape(n, 6)[:nf]
        nfree = 3 * nf
        lam = self._lam
        it = 0
        evals = 0
        need_model = True
        # the rest rotations are refreshed once per substep (lagged within it): each trial point
        # is evaluated with its Hessian so an accepted trial is the next iteration's model
        rot, _ = self._bend_rotations(x, n)
        model = self._energy_terms(x, xo, rot, nf, drag, ext, True)
        while evals < 4 * self.max_iterations:
            if it >= self.max_iterations and (it >= 3 * self.max_iterations or worst_pen <= self.penetration_mm):
                break
            if need_model:
                energy, grad, blocks, ev = model
                assert blocks is not None
                d0, d1b, d2b = blocks
                ab = np.zeros((_BAND + 1, 3 * n))
                ab[r0, c0] = d0[:, up].ravel()
                ab[r1, c1] = d1b.reshape(-1, 9).ravel()
                ab[r2, c2] = d2b.reshape(-1, 9).ravel()
                # the contact part of the gradient is re-added by the active-set loop below
                g_el = grad[:nf] - (kc * np.where(ev.active, ev.clearance, 0.0))[:, None] * ev.normal
                nn_up = kc * np.einsum("ni,nj->nij", ev.normal, ev.normal)[:, up]  # (nf, 6)
                worst_pen = float(np.max(ev.clearance))
                need_model = False
            act = ev.active.copy()
            # semi-smooth Newton on the linearised wall k/2 max(0, g + n.dx)^2: re-solve until the
            # active set repeats, so nodes about to reach the wall are stopped there in one step;
            # Levenberg-Marquardt scaling (1 + lam) of the diagonal keeps steps where the model holds
            base = ab[:, :nfree]
            fc = (kc * ev.clearance)[:, None] * ev.normal
            for _ in range(8):
                band = base.copy()
                band[r0f[act], c0f[act]] += nn_up[act]
                band[_BAND] *= 1.0 + lam
                g = (g_el + np.where(act[:, None], fc, 0.0)).ravel()
                _, delta, info = dpbsv(band, -g, lower=0)
                if info != 0:  # not positive definite (should not happen): regularise and retry
                    band = band.copy()
                    band[_BAND] += 1e-6 * (float(np.max(band[_BAND])) + 1.0)
                    _, delta, info = dpbsv(band, -g, lower=0)
                lin = ev.clearance + np.einsum("ij,ij->i", ev.normal, delta.reshape(nf, 3))
                new_act = lin > 0.0
                if np.array_equal(new_act, act):
                    break
                act = new_act
            dx = delta.reshape(nf, 3)
            xt = self._retract(x, dx, nf)
            trial = self._energy_terms(xt, xo, rot, nf, drag, ext, True)
            e_new = trial[0]
            evals += 1
            step = float(np.max(np.abs(xt[:nf] - x[:nf])))
            if e_new <= energy + 1e-12 * abs(energy):
                x = xt
                model = trial
                it += 1
                lam = max(lam / 3.0, 1e-7)
                need_model = True
                if step < self.tolerance_mm and float(np.max(trial[3].clearance)) <= self.penetration_mm:
                    break
            else:
                lam = min(lam * 4.0, 1e6)
                if step < 0.1 * self.tolerance_mm:
                    break
        self._lam = lam
        self.x[:n] = x
        self.last_stats = SolveStats(it, step)
        # forces at the accepted point (drag and external loads act on free nodes only, so the
        # clamp rows of the gradient are the elastic reaction the drive feels)
        _, grad, _, ev = model
        wall = np.zeros((d.n_nodes, 3))
        wall[:nf] = wall_forces(ev, self.spec.wall_stiffness_n_per_mm)
        self.wall = wall
        self.last_forces = self._forces(grad, nf)

    @staticmethod
    def _retract(x: FloatArray, dx: FloatArray, nf: int) -> FloatArray:
        """Apply a Newton step keeping each segment's length to first order (a retraction).

        A linearised step turns segments by moving their ends sideways, which lengthens them to
        second order; against the stiff axial spring that is a huge spurious energy. So the new
        shape takes the stepped segments' directions with the linearised lengths, rebuilt from the
        clamp distally (a cumulative sum).
        """
        xs = x.copy()
        xs[:nf] += dx
        e_old = x[:nf] - x[1 : nf + 1]
        e_new = xs[:nf] - xs[1 : nf + 1]
        len_old = np.linalg.norm(e_old, axis=1)
        t_old = e_old / len_old[:, None]
        seg = np.maximum(len_old + np.einsum("ij,ij->i", t_old, e_new - e_old), 0.5 * len_old)
        t_new = _unit(e_new)
        v = seg[:, None] * t_new
        xs[:nf] = x[nf] + np.cumsum(v[::-1], axis=0)[::-1]
        return xs

    def _forces(self, grad: FloatArray, nf: int) -> ForceReport:
        wall = self.wall
        mags = np.linalg.norm(wall, axis=1)
        # load cell: the elastic forces the rod applies on the clamped (prescribed) nodes, along the axis
        axial = float(np.sum(grad[nf : nf + 2] @ self.a)) if grad.shape[0] > nf else 0.0
        over = tuple(int(i) for i in np.nonzero(mags > WALL_FORCE_LIMIT_N)[0])
        return ForceReport(
            wall_forces=wall.copy(),
            tip_force=-wall[0].copy(),
            axial_force_n=axial,
            max_wall_force_n=float(mags.max()) if mags.size else 0.0,
            n_contacts=int(np.count_nonzero(mags > 0.0)),
            over_limit_nodes=over,
        )

    # ------------------------------------------------------------------ frames
    def _transport_frames(self, nf: int) -> None:
        d = self.disc
        n = min(nf + 2, d.n_nodes)
        t_new = _unit(self.x[: n - 1] - self.x[1:n])
        self.d1[: n - 1] = _unit(parallel_transport(self.d1[: n - 1], self.t_ref[: n - 1], t_new))
        self.t_ref[: n - 1] = t_new
        mid = d.sigma[:-1] + 0.5 * d.seg_len
        outside = mid >= self.inserted_mm
        self.d1[outside] = self.u0
        self.t_ref[outside] = self.a


def max_penetration_mm(rod: ElasticRod) -> float:
    """Worst clearance ``d + r`` over the inserted nodes (<= 0 means every node is inside the lumen)."""
    nf = rod.n_free
    if nf == 0:
        return -math.inf
    ev = evaluate(rod.lumen, rod.x[:nf], rod.disc.radius_mm)
    return float(np.max(ev.clearance))
