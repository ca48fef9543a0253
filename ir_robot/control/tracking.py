"""Signal processing the venipuncture controller runs every tick: force and target tracking.

:class:`ForceMonitor` median-filters the axial force, flags sensor spikes (a reading far
above its neighbours) and detects membrane punctures: a drop of the filtered force while
the commanded insertion rate has been steady or rising (slowing down lowers friction
and cutting, so drops right after a deceleration are not punctures).

:class:`TargetTracker` follows the target vessel's centre (y, z) in transverse ultrasound
frames with an alpha-beta filter. Measurements come from the target's own cross-section
when the needle does not cover it, and otherwise from the other vessels the scan confirmed:
the phantom moves rigidly, so each of them predicts the target through the target-to-
vessel offset learnt while both were visible. Once the needle reaches the image plane
(:meth:`TargetTracker.freeze`) the target's own fix is only trusted while it agrees with
the prediction. Pixels of the needle are never used: the needle follows the estimate.

Between fixes the tracker predicts with :class:`PeriodicMotion` when the target's recent track
fits it: one sinusoid plus a drift per axis, the motion of an arm that sways (or breathes) in
front of a fixed probe. In the probe plane an oblique vein slides sideways as the arm moves
along it, up to ~2 mm/s here, and with the needle in a small lumen the target may go unseen
for most of a second: a velocity that fades (the fallback) leaves the needle behind.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ir_robot.config import param
from ir_robot.planning.vessels import CrossSection


def _median(values) -> float:
    """Median of a few numbers (np.median costs ~0.3 ms a call; this runs every tick)."""
    v = sorted(values)
    n = len(v)
    return float(v[n // 2]) if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


@dataclass(frozen=True)
class ForceParams:
    """Parameters of :class:`ForceMonitor`: median filter, puncture-drop detection and spike threshold."""

    median_window: int = param(3, range=(1, 15), help="readings in the median filter")
    drop_threshold_n: float = param(
        0.08, range=(0.005, 5.0), unit="N", help="fall of the filtered force that counts as a puncture"
    )
    drop_lookback: int = param(4, range=(1, 50), help="ticks over which the fall is measured")
    arm_ticks: int = param(3, range=(0, 50), help="steady-or-rising insertion ticks before drops count")
    min_rate_mm_s: float = param(
        0.1, range=(0.0, 10.0), unit="mm/s", help="insertion rate below which drops are ignored"
    )
    spike_threshold_n: float = param(
        0.4, range=(0.01, 50.0), unit="N", help="a reading this far above the median is a sensor spike"
    )


@dataclass(frozen=True)
class ForceReading:
    """One force reading as :class:`ForceMonitor` saw it: raw, median-filtered, spike flag and detected drop."""

    raw_n: float
    filtered_n: float
    spike: bool
    drop_n: float  # > 0 when a puncture-like drop was detected at this reading


class ForceMonitor:
    """Median-filters the axial needle force, flags sensor spikes and detects punctures (see the module docstring)."""

    def __init__(self, params: ForceParams = ForceParams()):
        self.params = params
        self._raw: deque = deque(maxlen=params.median_window)
        self._filt: deque = deque(maxlen=params.drop_lookback + 1)
        self._since_decrease = 0
        self._prev_rate = 0.0
        self._refractory = 0
        self.last: ForceReading | None = None

    def disarm(self) -> None:
        """Forget the recent history (as after a deceleration)."""
        self._since_decrease = 0
        self._filt.clear()

    def update(self, force_n: float, commanded_rate_mm_s: float) -> ForceReading:
        """Feed one reading taken after the previous command (its insertion rate) was executed.

        Drops count only while advancing (rate >= ``min_rate_mm_s``) and once the median
        filter holds no reading from before the last slow-down (``arm_ticks``, at least the
        filter length): slowing down lowers friction and cutting, speeding up raises them.
        """
        p = self.params
        self._raw.append(float(force_n))
        med = _median(self._raw)
        spike = len(self._raw) >= 2 and force_n - med > p.spike_threshold_n
        rate = float(commanded_rate_mm_s)
        if rate < self._prev_rate - 0.05:
            self.disarm()
        else:
            self._since_decrease += 1
        self._prev_rate = rate
        # only medians made entirely of readings since the last slow-down enter the drop history
        clean = self._since_decrease >= p.median_window
        armed = clean and rate >= p.min_rate_mm_s and self._since_decrease > p.arm_ticks
        drop = 0.0
        self._refractory -= 1
        if armed and self._filt:
            fall = max(self._filt) - med
            if fall >= p.drop_threshold_n:
                if self._refractory <= 0:
                    drop = fall
                # the filter is still settling on the new level: one puncture, one report
                self._refractory = p.median_window
                self._filt.clear()
        if clean:
            self._filt.append(med)
        self.last = ForceReading(float(force_n), med, bool(spike), drop)
        return self.last


@dataclass(frozen=True)
class TrackerParams:
    """Parameters of :class:`TargetTracker`: gates, filter gains, reference vessels and the periodic motion model."""

    gate_mm: float = param(1.5, range=(0.1, 20.0), unit="mm", help="largest jump accepted from the prediction")
    alpha: float = param(0.6, range=(0.0, 1.0), help="position gain of the alpha-beta filter")
    beta: float = param(0.2, range=(0.0, 2.0), help="velocity gain of the alpha-beta filter")
    occlusion_margin_mm: float = param(
        0.6, range=(0.0, 10.0), unit="mm", help="a needle this close to the lumen edge spoils its cross-section"
    )
    max_speed_mm_s: float = param(8.0, range=(0.1, 100.0), unit="mm/s", help="clip of the velocity estimate")
    frozen_alpha: float = param(0.4, range=(0.0, 1.0), help="position gain once the needle is at the image plane")
    innovation_gate_mm: float = param(
        0.35,
        range=(0.01, 10.0),
        unit="mm",
        help="near the needle, the target's own fix is trusted within this of the prediction",
    )
    reference_gate_mm: float = param(
        0.5,
        range=(0.01, 10.0),
        unit="mm",
        help="near the needle, the other vessels' estimate of a hidden target is used "
        "only within this of the prediction (the fitted motion, else the track)",
    )
    min_reference_frames: int = param(
        8, range=(1, 1000), help="another vessel predicts the target only after this many joint sightings"
    )
    velocity_decay_s: float = param(
        1.0, range=(0.01, 100.0), unit="s", help="without fixes the predicted velocity fades with this time constant"
    )
    smoothing: float = param(0.3, range=(0.01, 1.0), help="EMA weight of each vessel's own smoothed position")
    motion_model: bool = param(
        True,
        help="predict between fixes with a fitted periodic motion (PeriodicMotion) "
        "when the recent track fits it; else a velocity that fades",
    )
    motion_window_s: float = param(12.0, range=(1.0, 120.0), unit="s", help="track history the motion is fitted on")
    motion_band_hz: tuple[float, float] = param(
        (0.05, 0.5), range=(0.005, 5.0), unit="Hz", help="frequencies the periodic motion may have"
    )
    motion_refit_s: float = param(0.25, range=(0.0, 10.0), unit="s", help="refit the motion at most this often")
    motion_horizon_s: float = param(
        3.0, range=(0.0, 60.0), unit="s", help="the motion model extrapolates at most this far past the last fix"
    )
    motion_grace_s: float = param(
        1.5,
        range=(0.0, 10.0),
        unit="s",
        help="with the needle at the image plane and a valid motion model, the controller "
        "waits this much longer for a target fix in the lumen test, confirmation and "
        "hold before giving up (the needle hides a small lumen; the model predicts "
        "it); it never advances without a fresh fix",
    )


class PeriodicMotion:
    """``p(t) = c + d t + a sin(w t) + b cos(w t)`` per axis (one ``w`` for both), fitted by least
    squares over a grid of frequencies (0.01 Hz apart; batched normal equations: ~1 ms for 120 fixes).

    :meth:`fit` says whether the model may be used: enough fixes spanning at least 4 s and 0.8
    of a period, and a residual at most half that of a drift-only line (or under 0.15 mm when
    the target barely moves). Otherwise callers keep their own predictor.
    """

    MIN_FIXES = 20

    def __init__(self, band_hz: tuple[float, float] = (0.05, 0.5), step_hz: float = 0.01):
        lo, hi = sorted(band_hz)
        self.freqs = np.arange(lo, hi + 1e-9, step_hz)
        self.valid = False
        self.freq_hz = float("nan")
        self.rms_mm = float("nan")
        self._t0 = 0.0
        self._coef = np.zeros((4, 2))

    def fit(self, t_s, yz_mm) -> bool:
        """Fits the model to fixes ``yz_mm`` (N, 2) at times ``t_s``; True if it may be used (class docstring)."""
        t = np.asarray(t_s, dtype=float)
        y = np.asarray(yz_mm, dtype=float).reshape(len(t), -1)
        self.valid = False
        if len(t) < self.MIN_FIXES:
            return False
        span = float(t[-1] - t[0])
        self._t0 = t0 = float(t[-1])
        tt = t - t0
        # drift-only reference
        lin = np.stack([np.ones_like(tt), tt], axis=1)
        c_lin, *_ = np.linalg.lstsq(lin, y, rcond=None)
        rms_lin = float(np.sqrt(np.mean((lin @ c_lin - y) ** 2)))
        w = 2 * np.pi * self.freqs[:, None]  # (F, 1)
        X = np.stack(
            [np.ones((len(w), len(tt))), np.broadcast_to(tt, (len(w), len(tt))), np.sin(w * tt), np.cos(w * tt)], axis=2
        )  # (F, N, 4)
        A = X.transpose(0, 2, 1) @ X + 1e-9 * np.eye(4)
        B = X.transpose(0, 2, 1) @ y  # (F, 4, 2)
        try:
            C = np.linalg.solve(A, B)
        except np.linalg.LinAlgError:
            return False
        res = np.sqrt(np.mean((X @ C - y[None]) ** 2, axis=(1, 2)))  # (F,)
        k = int(np.argmin(res))
        self.freq_hz, self.rms_mm, self._coef = float(self.freqs[k]), float(res[k]), C[k]
        self.valid = bool(span >= max(4.0, 0.8 / self.freq_hz) and self.rms_mm <= max(0.15, 0.5 * rms_lin))
        return self.valid

    def __call__(self, t_s: float) -> np.ndarray:
        """The fitted (y, z) position at ``t_s``."""
        tt = t_s - self._t0
        wt = 2 * math.pi * self.freq_hz * tt
        return self._coef.T @ np.array([1.0, tt, math.sin(wt), math.cos(wt)])

    def velocity(self, t_s: float) -> np.ndarray:
        """The fitted (y, z) velocity at ``t_s`` (mm/s)."""
        tt = t_s - self._t0
        w = 2 * math.pi * self.freq_hz
        return self._coef.T @ np.array([0.0, 1.0, w * math.cos(w * tt), -w * math.sin(w * tt)])


class TargetTracker:
    """Alpha-beta tracking of the target centre (y, z) at the probe plane."""

    def __init__(self, params: TrackerParams = TrackerParams()):
        self.params = params
        self.locked = False
        self.pos = np.zeros(2)
        self.vel = np.zeros(2)
        self.t_s = 0.0
        self.size_mm = (1.0, 1.0)  # (width, height) of the target lumen
        self.last_update_s = -math.inf
        self.n_updates = 0
        self._rel: dict[int, list] = {}  # other vessel id -> [mean offset target-other (2,), count, kind, last pos]
        self._ema: dict[int, np.ndarray] = {}  # other vessel id -> smoothed position
        self.last_source = ""
        self.frozen = False
        self._anchor = np.zeros(2)
        self._anchor_others: dict[int, np.ndarray] = {}
        self._delta = np.zeros(2)
        self._lock_pos = np.zeros(2)
        self._refs: list | None = None
        self._anchor_layers_z = 0.0
        self._history: deque = deque()  # (t, y, z) of the measurements fed to the filter
        self.motion = PeriodicMotion(params.motion_band_hz)
        self._fit_t = -math.inf

    # ---------------------------------------------------------------- state
    def predict(self, t_s: float) -> np.ndarray:
        """Position at ``t_s``: moved by the fitted periodic motion since the last fix when it is valid,
        else by a velocity that fades (``velocity_decay_s``) so a long gap cannot run away.
        """
        dt = max(0.0, t_s - self.t_s)
        if self.motion.valid:
            dt = min(dt, self.params.motion_horizon_s)
            return self.pos + (self.motion(self.t_s + dt) - self.motion(self.t_s))
        tau = self.params.velocity_decay_s
        return self.pos + self.vel * tau * (1.0 - math.exp(-dt / tau))

    def velocity(self, t_s: float) -> np.ndarray:
        """Target velocity (mm/s) for feed-forward: the periodic motion's when valid, else the filter's."""
        return self.motion.velocity(t_s) if self.motion.valid else self.vel.copy()

    def age(self, t_s: float) -> float:
        """Seconds since the last fix."""
        return t_s - self.last_update_s

    @property
    def grace_s(self) -> float:
        """Extra seconds the controller may wait for a fix (paused, following the prediction) before it
        gives up: ``motion_grace_s`` once frozen with a valid motion model, else 0.
        """
        return self.params.motion_grace_s if (self.frozen and self.motion.valid) else 0.0

    def lock(
        self,
        sections: tuple[CrossSection, ...],
        predicted_yz,
        t_s: float,
        gate_mm: float | None = None,
        references=None,
    ) -> bool:
        """Pick the target among ``sections`` (nearest vein to the prediction) and start tracking it.

        ``references``: (y, z) where the *other* vessels the scan confirmed should be in this frame.
        Only cross-sections near one of them ever stand in for the target: a blob that follows the
        probe (an image artefact) would otherwise feed the probe's own motion back into the estimate.
        None: any other cross-section may (tests, hand-made scenes).
        """
        gate = gate_mm if gate_mm is not None else self.params.gate_mm
        best, best_d = None, math.inf
        for s in sections:
            d = math.hypot(s.y_mm - predicted_yz[0], s.z_mm - predicted_yz[1])
            if s.kind == "vein" and d < best_d:
                best, best_d = s, d
        if best is None or best_d > max(gate, 0.75 * best.width_mm):
            return False
        self.locked = True
        self.pos = np.array([best.y_mm, best.z_mm])
        self.vel = np.zeros(2)
        self.t_s = t_s
        self.size_mm = (best.width_mm, best.height_mm)
        self.last_update_s = t_s
        self.n_updates = 1
        self._rel = {}
        self._ema = {}
        self.frozen = False
        self._lock_pos = self.pos.copy()
        self._refs = None if references is None else [np.asarray(r, dtype=float) for r in references]
        self._learn_others(sections, best, t_s)
        self._history.clear()
        self._history.append((t_s, best.y_mm, best.z_mm))
        self.motion.valid = False
        self._fit_t = -math.inf
        self.last_source = "target"
        return True

    def freeze(self, t_s: float) -> None:
        """The needle is about to reach the image plane: its dot, shadow and reverberations will spoil
        the target's own cross-section. From now on the target is its current estimate moved by the
        rigid displacement of the other vessels (each compared with its own smoothed position, so
        per-vessel perception biases cancel); without other vessels, its lateral position only.
        """
        if not self.locked or self.frozen:
            return
        self.frozen = True
        self._anchor = self.predict(t_s)
        self._anchor_layers_z = float(self._anchor[1])
        self._anchor_others = {
            k: v.copy() for k, v in self._ema.items() if self._rel[k][1] >= self.params.min_reference_frames
        }
        self._delta = np.zeros(2)

    def _is_reference(self, p: np.ndarray) -> bool:
        if self._refs is None:
            return True
        shift = self.pos - self._lock_pos  # rigid motion since the lock
        return any(float(np.hypot(*(p - (r + shift)))) < self.params.gate_mm for r in self._refs)

    def _learn_others(self, sections, target: CrossSection, t_s: float) -> None:
        tgt = np.array([target.y_mm, target.z_mm])
        used = set()
        for s in sections:
            if s is target:
                continue
            p = np.array([s.y_mm, s.z_mm])
            if not self._is_reference(p):
                continue
            # which known vessel is it?
            key, best = None, self.params.gate_mm
            for k, (_rel, _n, _kind, last) in self._rel.items():
                if k in used:
                    continue
                d = float(np.hypot(*(p - last)))
                if d < best:
                    key, best = k, d
            if key is None:
                key = max(self._rel, default=-1) + 1
                self._rel[key] = [tgt - p, 1, s.kind, p]
                self._ema[key] = p.copy()
            else:
                rel, n, kind, _ = self._rel[key]
                n2 = min(n + 1, 50)
                self._rel[key] = [rel + (tgt - p - rel) / n2, n2, kind, p]
                self._ema[key] = self._ema[key] + self.params.smoothing * (p - self._ema[key])
            used.add(key)

    def update(
        self, sections: tuple[CrossSection, ...], t_s: float, *, needle_yz=None, layer_dz_mm: float | None = None
    ) -> bool:
        """Feed one frame's cross-sections (world y, z at the probe plane). True if it gave a measurement.

        ``layer_dz_mm``: vertical tissue motion since :meth:`freeze` measured from the image's layers
        (:func:`~ir_robot.control.sensing.profile_shift_mm`); used for the depth once frozen.
        """
        if not self.locked:
            return False
        if self.frozen:
            return self._update_frozen(sections, t_s, needle_yz, layer_dz_mm)
        p = self.params
        pred = self.predict(t_s)
        a, b = self.size_mm[0] / 2, self.size_mm[1] / 2
        occluded = needle_yz is not None and (
            ((needle_yz[0] - pred[0]) / (a + p.occlusion_margin_mm)) ** 2
            + ((needle_yz[1] - pred[1]) / (b + p.occlusion_margin_mm)) ** 2
            < 1.0
        )
        direct = None
        if not occluded:
            best, best_d = None, max(p.gate_mm, 0.75 * self.size_mm[0])
            for s in sections:
                d = math.hypot(s.y_mm - pred[0], s.z_mm - pred[1])
                if d < best_d:
                    best, best_d = s, d
            if best is not None:
                direct = best
        meas = None
        if direct is not None:
            meas = np.array([direct.y_mm, direct.z_mm])
            self._learn_others(sections, direct, t_s)
            self.last_source = "target"
        else:
            # rigid motion: other vessels (seen with the target often enough) predict the target
            votes: list[np.ndarray] = []
            for rel, n, _kind, _last in self._rel.values():
                if n < p.min_reference_frames:
                    continue
                best_q, best_d = None, p.gate_mm
                for s in sections:
                    q = np.array([s.y_mm, s.z_mm])
                    if needle_yz is not None and math.hypot(q[0] - needle_yz[0], q[1] - needle_yz[1]) < (
                        0.5 * s.width_mm + p.occlusion_margin_mm
                    ):
                        continue
                    d = float(np.hypot(*(q + rel - pred)))
                    if d < best_d:
                        best_q, best_d = q, d
                if best_q is not None:
                    votes.append(best_q + rel)
            if votes:
                meas = np.median(np.array(votes), axis=0)
                self.last_source = f"{len(votes)} other vessel(s)"
        if meas is None:
            return False
        return self._filter(meas, t_s, p.alpha)

    def _update_frozen(self, sections, t_s: float, needle_yz, layer_dz_mm=None) -> bool:
        """Near the needle: the target's own cross-section is kept while it agrees with the prediction
        (innovation gate); a jump (needle dot, shadow, reverberation in the mask) or a loss falls back
        to the rigid motion of the reference vessels, then to the target's lateral position with the
        depth held. Nothing containing needle pixels is ever used: the needle follows the estimate, so
        it would measure the controller's own motion (a runaway on small veins).
        """
        p = self.params
        pred = self.predict(t_s)
        gate = min(p.gate_mm, 1.0)
        # the target's own cross-section: near the prediction sideways, plausibly deep (its depth may be
        # spoilt by the needle; only its lateral position is relied on unless it agrees in both)
        direct = None
        for s in sections:
            q = np.array([s.y_mm, s.z_mm])
            if (
                abs(q[0] - pred[0]) < gate
                and abs(q[1] - pred[1]) < 0.5 * self.size_mm[1] + 0.5
                and (direct is None or abs(q[0] - pred[0]) < abs(direct[0] - pred[0]))
            ):
                direct = q
        if direct is not None and float(np.hypot(*(direct - pred))) < p.innovation_gate_mm:
            self.last_source = "target, frozen"
            self._note_references(sections, direct, needle_yz)
            return self._filter(direct, t_s, p.alpha)
        shifts = []
        for a in self._anchor_others.values():
            exp = a + self._delta
            best, best_d = None, gate
            for s in sections:
                q = np.array([s.y_mm, s.z_mm])
                if needle_yz is not None and math.hypot(q[0] - needle_yz[0], q[1] - needle_yz[1]) < (
                    0.5 * s.width_mm + p.occlusion_margin_mm
                ):
                    continue
                d = float(np.hypot(*(q - exp)))
                if d < best_d:
                    best, best_d = q, d
            if best is not None:
                shifts.append(best - a)
        if shifts:
            self._delta = np.median(np.array(shifts), axis=0)
        # depth: the tissue layers' vertical motion (image registration, needle columns excluded), else
        # the reference vessels', else held where the last good fix put it
        if layer_dz_mm is not None:
            z, z_src = self._anchor_layers_z + layer_dz_mm, "layers"
        elif shifts:
            z, z_src = self._anchor[1] + self._delta[1], f"{len(shifts)} other vessel(s)"
        else:
            z, z_src = self._anchor[1] + self._delta[1], "held"
        if direct is not None:
            # the needle hides the lumen symmetrically sideways (an off-centre needle pushes the rest of
            # the lumen the other way: self-correcting) but not in depth: lateral position from the target
            meas = np.array([direct[0], z])
            self.last_source = f"target y, depth from {z_src}"
        elif shifts:
            # the arm's motion along x moves vessels of different slopes differently in this plane:
            # the least accurate lateral source, used only when the target itself is not seen, and only
            # where it agrees with the prediction (the arm's fitted sway, else the filter's own track: an
            # oblique reference, or one the needle's echo cuts, can be a millimetre or two off, and the
            # needle would follow it out of a small lumen; on the still emulated bench phantom, estimates
            # 1-1.7 mm off were taken with the needle in the vein before this gate applied without a motion)
            lateral = self._anchor[0] + self._delta[0]
            if abs(lateral - pred[0]) > p.reference_gate_mm:
                return False
            meas = np.array([lateral, z])
            self.last_source = f"{len(shifts)} other vessel(s), depth from {z_src}"
        else:
            return False
        ok = self._filter(meas, t_s, p.frozen_alpha, observed=z_src != "held")
        if z_src == "held":
            self.vel[1] = 0.0  # no stale vertical velocity
        return ok

    def _note_references(self, sections, target_yz: np.ndarray, needle_yz) -> None:
        """A good target fix while frozen: re-anchor the reference vessels to it."""
        self._anchor = np.asarray(target_yz, dtype=float)
        for k, a in list(self._anchor_others.items()):
            exp = a + self._delta
            for s in sections:
                q = np.array([s.y_mm, s.z_mm])
                if float(np.hypot(*(q - exp))) < min(self.params.gate_mm, 1.0):
                    self._anchor_others[k] = q
                    break
        self._delta = np.zeros(2)

    def _filter(self, meas: np.ndarray, t_s: float, alpha: float, observed: bool = True) -> bool:
        """Alpha-beta update; ``observed``: both coordinates were measured (not a held depth), so the
        fix joins the history :class:`PeriodicMotion` is fitted on.
        """
        p = self.params
        pred = self.predict(t_s)
        dt = t_s - self.t_s
        self.pos = pred
        self.t_s = t_s
        r = meas - pred
        self.pos = self.pos + alpha * r
        if dt > 1e-6:
            self.vel = np.clip(self.vel + p.beta * r / dt, -p.max_speed_mm_s, p.max_speed_mm_s)
        self.last_update_s = t_s
        self.n_updates += 1
        if observed and p.motion_model:
            h = self._history
            if not h or t_s - h[-1][0] >= 0.09:  # at most ~10 fixes a second (the fit's cost)
                h.append((t_s, float(meas[0]), float(meas[1])))
            while h and h[0][0] < t_s - p.motion_window_s:
                h.popleft()
            if t_s - self._fit_t >= p.motion_refit_s:
                self._fit_t = t_s
                a = np.asarray(h)
                self.motion.fit(a[:, 0], a[:, 1:])
        return True
