"""Autonomous US/NIR-guided venipuncture: the controller state machine (Chen et al. 2020).

::

    SCAN -> SELECT -> ALIGN -> INSERT -> CONFIRM -> HOLD -> RETRACT -> DONE
      |        |        |        |          |         |        |
      +--------+--------+--------+----------+---------+--------+--> ABORT -> FAILED
                                 |          |                  |
                                 +----------+--> RETRACT ------+--> ALIGN (next attempt) | FAILED

=========  ====================================================================================
phase      what happens
=========  ====================================================================================
SCAN       probe transverse; one NIR frame; transverse ultrasound frames at the scan stations
           (``scan_x_mm`` x ``scan_y_mm``); blank frames are retaken
SELECT     fuse cross-sections and NIR traces into vessels (:func:`~ir_robot.planning.vessels.fuse_scan`),
           reject arteries and veins failing the diameter/depth/straightness criteria, plan the
           insertion into the best reachable vein (:func:`~ir_robot.planning.insertion.plan_insertion`)
ALIGN      move pivot, pitch and probe over the target (target in the ultrasound plane); lock the
           tracker on the target's cross-section; re-plan if it moved more than ``replan_threshold_mm``.
           Artery check (``pulsatility``): before the first insertion into a vessel, dwell ``dwell_s``
           transverse over it and measure its cross-section; a pulsating one is an artery whatever the
           classifier said: back to SELECT, which rejects it and takes the next candidate. A vein
           whose call was uncertain (``criteria.uncertain_needs_pulse``) is punctured only on a
           "vein" verdict (no pulse); "unknown" or no verdict rules it out as well
INSERT     visual servoing keeps the needle plane on the tracked target (pivot y, z follow it; near the
           image plane the tracker stops trusting needle-spoilt fixes: depth from the tissue layers);
           speed profile air -> skin -> tissue -> slow near the vein; a puncture (filtered force drop)
           near or past the front wall starts the *lumen test*: to ``s* - d``, advance ``d`` at
           ``v_probe``: a flat force means the tip is in the lumen (no membrane ahead), a rising one
           means a tenting wall still ahead (search deeper for the next puncture); a drop short of
           ``s* - d`` must also see no rise on the way there (``lumen_verdict``). A force that fell
           across a pause or the end of a lumen test near the wall (drops go unseen while the needle
           stops or turns) starts the lumen test too
CONFIRM    the tip held at the lumen centre; ultrasound must show the needle inside the lumen
HOLD       ``hold_s`` with tracking (the blood draw)
RETRACT    needle out along its axis, pivot up; then DONE, the next attempt or FAILED
ABORT      from any phase: retract (never advance), report the reason, FAILED
=========  ====================================================================================

Faults: no fresh target fix for ``perception_max_age_s`` -> insertion pauses; for
``dropout_timeout_s`` -> the attempt is given up and the needle retracted (at the lumen, with
the needle at the image plane and the arm's sway fitted, ``tracker.motion_grace_s`` later: the
needle hides a small lumen, and the pause follows the predicted target). A force reading
far above its neighbours is a sensor spike: insertion pauses ``spike_pause_s`` (too many spikes:
retract). A force above ``force_pause_n`` pauses, and retracts if it persists. A target the rig
cannot follow (out of reach) or that leaves the image pauses and then retracts. The needle never
advances without a fresh target fix.

**Stages with fixed joints.** Joints whose lower and upper limits are equal or whose speed limit is
zero (the 3-axis GRBL rig: pivot height, needle pitch and probe yaw are set by the build) are held
where the rig has them: no yaw turn (the fixed probe must already be transverse, else the controller
refuses to start), the scan runs at the rig's height and pitch, the entry is planned at the fixed
pitch and height (:func:`~ir_robot.planning.insertion.plan_insertion`), and tracking follows the
target sideways only (a fixed height cannot follow it up and down). Nothing to configure: the mode
follows from the limits the rig reports (``config/venipuncture_rig.yaml`` tunes speeds and the
probe mount for the benchtop rig).

The controller is computed from state, observation and dt only (``compute``) and drives the
:class:`~ir_robot.devices.base.Rig` interface through joint-rate commands, so the same code runs the
simulator and the serial rig; it never sees ground truth.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ir_robot.control.config import VenipunctureConfig
from ir_robot.control.sensing import UsMeasurement, in_ellipse, measure_nir, measure_us, needle_at_x, profile_shift_mm
from ir_robot.control.tracking import ForceMonitor, TargetTracker
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import JOINT_NAMES, JointVector, Observation, RigCommand, RigState
from ir_robot.planning.insertion import InsertionPlan, UnreachableTarget, fixed_joints, plan_insertion
from ir_robot.planning.pulsatility import ARTERY, VEIN, CrossSectionSeries, PulsatilityError, assess_pulsatility
from ir_robot.planning.targets import Candidate, rank_targets
from ir_robot.planning.vessels import CrossSection, NirTrace, VesselEstimate, fuse_scan

X, Y, Z, PITCH, INS, YAW = range(6)
_ANGULAR = np.array([not n.endswith("_mm") for n in JOINT_NAMES])
#: after the force monitor went blind near the vein wall (a pause, the end of a lumen test), the
#: force is compared with the one at that moment for this long once the needle advances again
PAUSE_WATCH_S = 0.5


class Phase(str, enum.Enum):
    SCAN = "scan"
    SELECT = "select"
    ALIGN = "align"
    INSERT = "insert"
    CONFIRM = "confirm"
    HOLD = "hold"
    RETRACT = "retract"
    ABORT = "abort"
    DONE = "done"
    FAILED = "failed"


#: allowed transitions (anything else is a bug and raises)
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.SCAN: frozenset({Phase.SELECT, Phase.ABORT}),
    Phase.SELECT: frozenset({Phase.ALIGN, Phase.ABORT}),
    Phase.ALIGN: frozenset({Phase.INSERT, Phase.SELECT, Phase.ABORT}),  # SELECT: the artery check rejected it
    Phase.INSERT: frozenset({Phase.CONFIRM, Phase.RETRACT, Phase.ABORT}),
    Phase.CONFIRM: frozenset({Phase.HOLD, Phase.RETRACT, Phase.ABORT}),
    Phase.HOLD: frozenset({Phase.RETRACT, Phase.ABORT}),
    Phase.RETRACT: frozenset({Phase.DONE, Phase.ALIGN, Phase.FAILED, Phase.ABORT}),
    Phase.ABORT: frozenset({Phase.FAILED}),
    Phase.DONE: frozenset(),
    Phase.FAILED: frozenset(),
}


@dataclass
class Outcome:
    """What the controller reports at the end (no ground truth in here)."""

    success: bool = False
    reason: str = ""
    attempts: int = 0
    confirmed: bool = False
    confirm_t_s: float | None = None
    duration_s: float = 0.0
    peak_force_n: float = 0.0
    plan: InsertionPlan | None = None
    candidates: list[str] = field(default_factory=list)
    attempt_failures: list[str] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    transitions: list[tuple[float, str, str, str]] = field(default_factory=list)


#: force samples of a lumen test (and of the approach to it) start this many ticks into the move: the
#: median-filtered force still holds readings from before. The lumen test's own samples also wait until
#: the needle has moved the distance these ticks cover at the probe speed: a stage that starts late
#: (GRBL runs jogs queued from before) would otherwise fill them with the needle standing still and the
#: shaft friction turning round after the step back to the start (a rise read as a membrane ahead)
SETTLE_TICKS = 3


def probe_sample_ready(ticks: int, travelled_mm: float, dt: float, v_probe_mm_s: float) -> bool:
    """Does the lumen test's probe take this tick's force sample? From the tick after :data:`SETTLE_TICKS`,
    once the needle has travelled what those ticks cover at the probe speed (see :data:`SETTLE_TICKS`).
    """
    return ticks > SETTLE_TICKS and travelled_mm >= SETTLE_TICKS * dt * v_probe_mm_s - 1e-6


def _slope(samples: list[tuple[float, float]]) -> float | None:
    """Force rise per mm of insertion fitted to (insertion, force) samples; None if too short to say."""
    if len(samples) < 3:
        return None
    a = np.asarray(samples)
    if np.ptp(a[:, 0]) < 0.05:
        return None
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def lumen_verdict(
    probe: list[tuple[float, float]], approach: list[tuple[float, float]], threshold_n_per_mm: float, tear_drop_n: float
) -> tuple[bool, str]:
    """The lumen test's verdict from (insertion mm, filtered force N) samples: is the tip in the lumen?

    ``probe``: the test's own advance of ``d`` to the target depth. ``approach``: the forward travel
    from the drop to the test's start, when the drop came more than ``d`` short of it (else empty).
    After a tear, the torn membrane's residual force relaxes as the needle moves on, and that fall
    can cancel the rise of a vessel wall tenting ahead of the tip during the probe (held-out seed
    7146: a fascia torn 0.9 mm short of the target, then the vein wall pushed: +0.77 N/mm on the
    approach, +0.13 N/mm in the probe). So a rise of ``threshold_n_per_mm`` or more on the approach
    also means a membrane ahead, if it adds up to ``tear_drop_n`` (a puncture drop's size: a short
    approach's slope is noise, e.g. +0.14 N/mm over 0.13 mm in a lumen on held-out seed 7043) --
    unless the force fell by ``tear_drop_n`` from the approach's end to the probe: then that membrane
    tore in between (small-vein seed 5069: the wall tore as the probe started, unseen as a drop
    because the needle stood still), and the probe alone decides.
    """
    slope, before = _slope(probe), _slope(approach)
    if slope is None:
        return False, "too few samples to fit the force"
    if slope >= threshold_n_per_mm:
        return False, f"force rising {slope:+.3f} N/mm"
    if before is None:
        return True, f"force flat ({slope:+.3f} N/mm)"
    rose = before * (approach[-1][0] - approach[0][0])
    if before < threshold_n_per_mm or rose < tear_drop_n:
        return True, f"force flat ({slope:+.3f} N/mm, {before:+.3f} N/mm on the way to it)"
    fell = approach[-1][1] - min(f for _, f in probe)
    if fell < tear_drop_n:
        return False, f"force flat ({slope:+.3f} N/mm) but rising {before:+.3f} N/mm (+{rose:.2f} N) on the way to it"
    return True, (
        f"force flat ({slope:+.3f} N/mm); it rose {before:+.3f} N/mm on the way, then fell "
        f"{fell:.2f} N: that membrane tore"
    )


class VenipunctureController:
    """The venipuncture state machine. ``compute(state, observation, dt) -> RigCommand``.

    ``us_perception`` / ``nir_perception``: objects with ``predict(frame)`` (injected, so tests
    can pass fakes). ``lower``/``upper``: the joint limits to plan within (the safety layer's,
    already intersected with its workspace); ``velocity_limits``: the rig's joint rate limits.
    Before each ``compute`` the runner asks :meth:`sensors` which images to take this tick.
    """

    def __init__(
        self,
        config: VenipunctureConfig,
        us_perception,
        nir_perception=None,
        *,
        lower: JointVector,
        upper: JointVector,
        velocity_limits: JointVector,
    ):
        self.cfg = config
        self.p = config.control
        self.us_perception = us_perception
        self.nir_perception = nir_perception
        self.lo = lower.as_array()
        self.hi = upper.as_array()
        self.vmax = velocity_limits.as_array() * self.p.speed_fraction
        #: joints the rig cannot move (equal limits or zero speed limit): held at the rig's value
        self.fixed_joints = fixed_joints(lower, upper, velocity_limits)
        self._fixed = np.array([n in self.fixed_joints for n in JOINT_NAMES])
        if self._fixed[YAW] and abs(math.sin(self.lo[YAW])) < 0.999:
            raise ConfigError(
                f"the rig's probe yaw is fixed at {self.lo[YAW]:.4g} rad: the venipuncture controller "
                "needs a transverse ultrasound view (yaw pi/2 = 1.5708 rad; mount the probe across the "
                "arm and set fixed.probe_yaw_rad in the rig config)"
            )
        self.phase = Phase.SCAN
        self.outcome = Outcome()
        self.t0: float | None = None
        self.t_s = 0.0
        self._want: frozenset[str] = frozenset({"nir"} if nir_perception is not None else set())
        self._last_us_t = -math.inf
        # scan
        self._stations = [
            (x, y)
            for i, x in enumerate(self.p.scan_x_mm)
            for y in (self.p.scan_y_mm if i % 2 == 0 else tuple(reversed(self.p.scan_y_mm)))
        ]
        self._station = 0
        self._tries = 0
        self._blank_frames = 0
        self._settled_ticks = 0
        self.sections: list[CrossSection] = []
        self.nir_traces: tuple[NirTrace, ...] = ()
        # selection / plan
        self.vessels: tuple[VesselEstimate, ...] = ()
        self.candidates: list[Candidate] = []
        self.target: VesselEstimate | None = None
        self.plan: InsertionPlan | None = None
        # artery check (pulsatility): vessel index -> (t, area, width) samples / verdict
        self._pulse_samples: dict[int, list[tuple[float, float, float]]] = {}
        self._pulse_since: dict[int, float] = {}
        self.pulse_verdicts: dict[int, str] = {}
        self._needs_vein_verdict = False  # the target's vein/artery call was uncertain: puncture only on "vein"
        # tracking / insertion
        self.tracker = TargetTracker(config.tracker)
        self.force = ForceMonitor(config.force)
        self.insertion_target_mm: float | None = 0.0
        self._last_rate = np.zeros(6)
        self._phase_t = 0.0
        self._sub = ""
        self._lock_count = 0
        self._candidate_s: float | None = None
        self._probe: list[tuple[float, float]] = []
        self._probe_from = 0.0  # insertion where the lumen test's probe began
        self._probe_ticks = 0
        # forward travel from a drop to the lumen test's start (a drop before s* - d): its force
        self._approach: list[tuple[float, float]] = []
        self._approach_ticks = 0
        # force when the monitor last went blind near the vein wall (a pause, the end of a lumen test),
        # its cause, and until when to compare with it once advancing again (None: not yet advancing)
        self._pause_force: float | None = None
        self._pause_cause = ""
        self._watch_until: float | None = None
        self._pause_until = -math.inf
        self._spikes: deque = deque()
        self._force_high_since: float | None = None
        self._blocked_since: float | None = None
        self._paused_msg = ""
        self._outside_frames = 0
        self._align_settled_since: float | None = None
        self._retract_then: Phase = Phase.FAILED
        self._abort_reason = ""
        self._success = False
        self.last_us: UsMeasurement | None = None
        self._layers_ref = None
        self.last_us_frame = None
        self.last_nir_frame = None
        if self.fixed_joints:
            self._event(
                "fixed "
                + ", ".join(f"{n} = {self.lo[JOINT_NAMES.index(n)]:.4g}" for n in self.fixed_joints)
                + ": held where the rig has them (entry planned at this pitch and height)"
            )
        self.trace: dict[str, list] = {
            k: []
            for k in (
                "t_s",
                "phase",
                "insert_mm",
                "force_n",
                "force_filtered_n",
                "target_y_mm",
                "target_z_mm",
                "pivot_y_mm",
                "pivot_z_mm",
            )
        }

    # ================================================================ public
    @property
    def done(self) -> bool:
        return self.phase in (Phase.DONE, Phase.FAILED)

    def sensors(self, state: RigState | None = None) -> frozenset[str]:
        """Images wanted at this tick ("us", "nir")."""
        return self._want

    def abort(self, reason: str) -> None:
        """Abort from outside (operator, runner timeout): retract and fail with ``reason``."""
        if not self.done and self.phase != Phase.ABORT:
            self._go(Phase.ABORT, reason)

    def fail_now(self, reason: str) -> None:
        """The rig can no longer be moved (safety trip): stop where we are and fail."""
        if not self.done:
            self._event(reason)
            self.outcome.reason = reason
            self.phase = Phase.FAILED
            self.outcome.transitions.append((self.t_s, "any", Phase.FAILED.value, reason))

    def compute(self, state: RigState, obs: Observation | None, dt: float) -> RigCommand:
        obs = obs or Observation()
        t = float(state.stamp_s)
        if self.t0 is None:
            self.t0 = t
            self._phase_t = t
        self.t_s = t
        q = state.joints.as_array()
        reading = self.force.update(state.force_n, float(self._last_rate[INS]))
        self.outcome.peak_force_n = max(self.outcome.peak_force_n, float(reading.filtered_n))
        self.outcome.duration_s = t - self.t0
        if state.status == "estop" and not self.done:
            self.fail_now(f"rig stopped: {state.message or 'e-stop'}")
        if obs.nir is not None:
            self.last_nir_frame = obs.nir
        self._want = frozenset()
        handler = {
            Phase.SCAN: self._scan,
            Phase.SELECT: self._select,
            Phase.ALIGN: self._align,
            Phase.INSERT: self._insert,
            Phase.CONFIRM: self._confirm,
            Phase.HOLD: self._hold,
            Phase.RETRACT: self._retract,
            Phase.ABORT: self._retract,
        }.get(self.phase)
        v = handler(t, q, obs, dt) if handler is not None else np.zeros(6)
        v = np.clip(np.where(np.isfinite(v), v, 0.0), -self.vmax, self.vmax)
        # never leave the limits within one command
        v = np.clip(v, np.minimum(0.0, (self.lo - q) / dt), np.maximum(0.0, (self.hi - q) / dt))
        if self.done:
            v = np.zeros(6)
        self._last_rate = v
        self._record(t, q, reading)
        return RigCommand(JointVector.from_array(v), float(dt) if np.any(v) else 0.0)

    # ================================================================ helpers
    def _event(self, msg: str) -> None:
        self.outcome.events.append((round(self.t_s - (self.t0 or 0.0), 3), msg))

    def _go(self, phase: Phase, why: str = "") -> None:
        if phase not in TRANSITIONS[self.phase]:
            raise RuntimeError(f"illegal transition {self.phase.value} -> {phase.value} ({why})")
        self.outcome.transitions.append((round(self.t_s - (self.t0 or 0.0), 3), self.phase.value, phase.value, why))
        if why:
            self._event(f"{self.phase.value} -> {phase.value}: {why}")
        if phase == Phase.ABORT:
            self._abort_reason = why
            self.outcome.reason = why
        if phase == Phase.FAILED and not self.outcome.reason:
            self.outcome.reason = why
        if phase == Phase.DONE:
            self.outcome.success = True
            self.outcome.reason = why
        self.phase = phase
        self._phase_t = self.t_s
        self._sub = ""
        self._settled_ticks = 0

    def _servo(
        self,
        q: np.ndarray,
        goal: dict[int, float],
        dt: float,
        ff: dict[int, float] | None = None,
        speed: dict[int, float] | None = None,
    ) -> np.ndarray:
        """Joint rates toward ``goal`` (joint index -> position), with feed-forward rates and speed caps."""
        v = np.zeros(6)
        ff = ff or {}
        speed = speed or {}
        for i, g in goal.items():
            g = float(np.clip(g, self.lo[i], self.hi[i]))
            err = g - q[i]
            if abs(err) < 1e-6 and not ff.get(i, 0.0):
                continue  # deadband: hold still, no numerical dust
            vi = err / max(self.p.servo_tau_s, dt) + ff.get(i, 0.0)
            cap = min(self.vmax[i], speed.get(i, math.inf))
            vi = float(np.clip(vi, -cap, cap))
            if abs((vi - ff.get(i, 0.0)) * dt) > abs(err):  # no overshoot within one tick
                vi = err / dt + ff.get(i, 0.0)
                vi = float(np.clip(vi, -cap, cap))
            v[i] = vi
        return v

    def _settled(self, q: np.ndarray, goal: dict[int, float]) -> bool:
        tol = self.p.settle_tolerance_mm
        for i, g in goal.items():
            g = float(np.clip(g, self.lo[i], self.hi[i]))
            if abs(q[i] - g) > (tol * 0.1 if _ANGULAR[i] else tol):
                return False
        return True

    def _travel_speeds(self) -> dict[int, float]:
        s = self.p.travel_speed_mm_s
        return {X: s, Y: s, Z: s}

    def _record(self, t, q, reading) -> None:
        tr = self.trace
        tr["t_s"].append(t)
        tr["phase"].append(self.phase.value)
        tr["insert_mm"].append(float(q[INS]))
        tr["force_n"].append(float(reading.raw_n))
        tr["force_filtered_n"].append(float(reading.filtered_n))
        if self.tracker.locked:
            ty, tz = self._target_at(t)
        else:
            ty = tz = float("nan")
        tr["target_y_mm"].append(ty)
        tr["target_z_mm"].append(tz)
        tr["pivot_y_mm"].append(float(q[Y]))
        tr["pivot_z_mm"].append(float(q[Z]))

    # ================================================================ SCAN
    def _station_goal(self) -> dict[int, float]:
        x, y = self._stations[self._station]
        return {
            X: x - self.p.probe_offset_mm,
            Y: y,
            Z: self.p.safe_height_mm,
            PITCH: math.radians(self.p.scan_pitch_deg),
            INS: 0.0,
            YAW: math.pi / 2,
        }

    def _scan(self, t, q, obs, dt):
        if obs.nir is not None and self.nir_perception is not None:
            self.nir_traces = measure_nir(obs.nir, self.nir_perception)
            self._event(f"NIR: {len(self.nir_traces)} vein(s) seen from above")
        if not self._stations:
            self._go(Phase.SELECT, "no scan stations configured")
            return np.zeros(6)
        goal = self._station_goal()
        if self._settled(q, goal):
            self._settled_ticks += 1
        else:
            self._settled_ticks = 0
        if self._settled_ticks >= 2 and obs.us is not None:
            self.last_us_frame = obs.us
            # placed by the rig's joints unless the frame says where the probe was (a camera frame does not)
            m = measure_us(
                obs.us, self.us_perception, JointVector.from_array(q), probe_offset_mm=self.p.probe_offset_mm
            )
            if m.blank:
                self._blank_frames += 1
                self._tries += 1
                self._event(f"scan station {self._station}: blank ultrasound frame")
            else:
                self.sections.extend(m.sections)
                self.last_us = m
                self._tries = self.p.scan_frame_retries
            if self._tries >= self.p.scan_frame_retries:
                self._station += 1
                self._tries = 0
                self._settled_ticks = 0
                if self._station >= len(self._stations):
                    if not self.sections:
                        why = (
                            "ultrasound frames were blank at every scan station (check probe contact and video)"
                            if self._blank_frames
                            else "no vessel found in ultrasound during the scan"
                        )
                        self._go(Phase.ABORT, why)
                        return np.zeros(6)
                    self._go(Phase.SELECT, f"scan done: {len(self.sections)} cross-section(s)")
                    return self._select(t, q, obs, dt)
                goal = self._station_goal()
        if self._settled_ticks >= 1:
            self._want = self._want | {"us"}
        return self._servo(q, goal, dt, speed=self._travel_speeds())

    # ================================================================ SELECT
    def _select(self, t, q, obs, dt):
        self.vessels, unmatched = fuse_scan(self.sections, self.nir_traces, self.cfg.fusion)
        # vessels the artery check found pulsating are arteries, whatever the classifier said
        self.vessels = tuple(
            dataclasses.replace(v, kind="artery") if self.pulse_verdicts.get(i) == ARTERY else v
            for i, v in enumerate(self.vessels)
        )
        self.candidates = rank_targets(
            self.vessels,
            self.cfg.criteria,
            pulse_check=self.cfg.pulsatility.enabled,
            pulse_verdicts=self.pulse_verdicts,
        )
        self.outcome.candidates = [c.describe() for c in self.candidates]
        for c in self.candidates:
            self._event(c.describe())
        accepted = [c for c in self.candidates if c.accepted]
        if not accepted:
            detail = "; ".join(c.describe() for c in self.candidates) or "no vessels"
            self._go(Phase.ABORT, f"no suitable vein: {detail}")
            return np.zeros(6)
        failures = []
        for c in accepted:
            obstacles = [v for v in self.vessels if v is not c.vessel]
            try:
                plan = plan_insertion(
                    c.vessel,
                    obstacles,
                    lower=JointVector.from_array(self.lo),
                    upper=JointVector.from_array(self.hi),
                    params=self.cfg.insertion,
                    vessel_index=c.index,
                )
            except UnreachableTarget as exc:
                failures.append(f"vessel {c.index}: {exc}")
                continue
            self.target, self.plan = c.vessel, plan
            self._needs_vein_verdict = c.needs_pulse
            self.outcome.plan = plan
            self._go(
                Phase.ALIGN,
                f"target vessel {c.index}: {c.vessel.diameter_mm:.2f} mm vein at "
                f"{-plan.target_mm[2]:.2f} mm, pitch {math.degrees(plan.pitch_rad):.1f} deg, "
                f"insertion {plan.insert_mm:.1f} mm",
            )
            return np.zeros(6)
        self._go(Phase.ABORT, "unreachable target: " + " | ".join(failures))
        return np.zeros(6)

    # ================================================================ tracking
    def _target_at(self, t: float) -> tuple[float, float]:
        """Tracked target centre (y, z) at the plan's target x (extrapolated from the probe plane)."""
        yz = self.tracker.predict(t)
        dydx, dzdx = self.target.slope_at(self.plan.target_mm[0]) if self.target is not None else (0.0, 0.0)
        off = self.plan.plane_offset_mm
        return float(yz[0] + dydx * off), float(yz[1] + dzdx * off)

    def _plane_prediction(self) -> tuple[float, float]:
        """The plan's target moved back to the ultrasound plane (for locking)."""
        dydx, dzdx = self.target.slope_at(self.plan.target_mm[0])
        off = self.plan.plane_offset_mm
        return self.plan.target_mm[1] - dydx * off, self.plan.target_mm[2] - dzdx * off

    def _process_us(self, obs, q) -> UsMeasurement | None:
        if obs.us is None:
            return None
        roi = None
        # the zoom serves the tracking (align, insert); the confirmation and the hold see the
        # whole frame, and with the zoom on the confirmation needs that frame to agree
        if self.tracker.locked and self.p.us_roi_mm > 0 and self.phase not in (Phase.CONFIRM, Phase.HOLD):
            roi = tuple(self.tracker.predict(obs.us.stamp_s))
        m = measure_us(
            obs.us,
            self.us_perception,
            JointVector.from_array(q),
            probe_offset_mm=self.p.probe_offset_mm,
            roi_yz_mm=roi,
            roi_side_mm=self.p.us_roi_mm,
        )
        self.last_us, self.last_us_frame = m, obs.us
        if self.tracker.locked and not m.blank:
            dz = None
            if self.tracker.frozen and self._layers_ref is not None and m.profile is not None:
                dz = profile_shift_mm(self._layers_ref, m.profile, obs.us.spacing_mm)
            self.tracker.update(m.sections, m.stamp_s, needle_yz=m.needle_yz_mm, layer_dz_mm=dz)
        return m

    def _want_us(self, t: float) -> None:
        if t + 1e-9 >= self._last_us_t + self.p.us_period_s - 0.5 * self.p.dt_s:
            self._want = self._want | {"us"}
            self._last_us_t = t

    def _tracking_goal(self, t: float, dt: float) -> tuple[dict[int, float], dict[int, float], str]:
        """Pivot (y, z) goals that keep the needle line through the tracked target, feed-forward, problem."""
        ty, tz = self._target_at(t + dt)
        rise = self.plan.pivot_mm[2] - self.plan.target_mm[2]
        goal = {Y: ty, Z: tz + rise}
        vel = self.tracker.velocity(t)
        ff = {Y: float(vel[0]), Z: float(vel[1])}
        problem = ""
        m = 0.2
        z_ok = self._fixed[Z] or self.lo[Z] + m <= goal[Z] <= self.hi[Z] - m  # a fixed height is not servoed
        if not (self.lo[Y] + m <= goal[Y] <= self.hi[Y] - m) or not z_ok:
            problem = f"target moved out of the rig's reach (pivot y {goal[Y]:.1f}, z {goal[Z]:.1f} mm)"
        elif (
            self.last_us is not None
            and abs(ty - self.last_us.probe_y_mm) > self.last_us.half_width_mm - self.p.view_margin_mm
        ):
            problem = "target moved out of the ultrasound view"
        return goal, ff, problem

    # ================================================================ ALIGN
    def _align(self, t, q, obs, dt):
        m = self._process_us(obs, q)
        if not self.tracker.locked:
            goal = {
                X: self.plan.pivot_mm[0],
                Y: self.plan.pivot_mm[1],
                Z: self.plan.pivot_mm[2],
                PITCH: self.plan.pitch_rad,
                INS: 0.0,
                YAW: math.pi / 2,
            }
            ff = {}
            if m is not None and self._settled_ticks >= 1 and not m.blank:
                shift = self._constellation_shift(m)
                pred = self._plane_prediction()
                refs = None
                if shift is not None:
                    refs = [
                        (float(v.y_at(m.probe_x_mm)) + shift[0], float(v.z_at(m.probe_x_mm)) + shift[1])
                        for v in self.vessels
                        if v is not self.target
                    ]
                if shift is not None and self.tracker.lock(
                    m.sections, (pred[0] + shift[0], pred[1] + shift[1]), m.stamp_s, gate_mm=1.0, references=refs
                ):
                    self._lock_count = 1
                    self._event(
                        f"locked on the target at y {self.tracker.pos[0]:.2f}, z {self.tracker.pos[1]:.2f} mm "
                        f"({shift[0]:+.2f}, {shift[1]:+.2f} mm from the scan)"
                    )
        else:
            goal_yz, ff, problem = self._tracking_goal(t, dt)
            goal = {X: self.plan.pivot_mm[0], PITCH: self.plan.pitch_rad, INS: 0.0, YAW: math.pi / 2, **goal_yz}
            if m is not None and not m.blank and self.tracker.last_update_s == m.stamp_s:
                self._lock_count += 1
                self._pulse_sample(m)
            if self._lock_count >= self.p.lock_frames and self._settled(q, goal) and self._artery_check(t):
                if not self._start_insertion(t):
                    return np.zeros(6)
            if self.phase != Phase.ALIGN:  # the artery check rejected the target
                return np.zeros(6)
        gy = float(np.clip(goal[Y], self.lo[Y], self.hi[Y]))
        gz = float(np.clip(goal[Z], self.lo[Z], self.hi[Z]))
        timeout = self.p.align_timeout_s + (self.cfg.pulsatility.max_dwell_s if self.cfg.pulsatility.enabled else 0.0)
        if t - self._phase_t > timeout:
            self._go(Phase.ABORT, f"could not reach the insertion pose and lock on the target within {timeout:.0f} s")
            return np.zeros(6)
        if (
            self._settled(q, {k: v for k, v in goal.items() if k in (X, PITCH, YAW)})
            and abs(q[Y] - gy) < 0.5
            and abs(q[Z] - gz) < 0.5
        ):
            self._settled_ticks += 1
            self._want_us(t)
        else:
            self._settled_ticks = 0
        if self._settled_ticks and self._align_settled_since is None:
            self._align_settled_since = t
        if (
            not self.tracker.locked
            and self._align_settled_since is not None
            and t - self._align_settled_since > self.p.lock_timeout_s
        ):
            self._go(
                Phase.ABORT,
                f"target not found in ultrasound at the insertion pose for {self.p.lock_timeout_s} s "
                f"(perception drop-out or the vein moved)",
            )
            return np.zeros(6)
        if self.tracker.locked and self.tracker.age(t) > self.p.lock_timeout_s:
            self._go(
                Phase.ABORT, f"lost the target in ultrasound before inserting (no fix for {self.tracker.age(t):.1f} s)"
            )
            return np.zeros(6)
        return self._servo(q, goal, dt, ff=ff, speed=self._travel_speeds())

    # ---------------------------------------------------------------- artery check (pulsatility)
    def _pulse_sample(self, m: UsMeasurement) -> None:
        """Record the size of the target's own cross-section in this frame (the one the tracker used)."""
        if self.plan is None or self.tracker.last_source != "target" or self.tracker.frozen:
            return
        s = min(
            m.sections,
            key=lambda c: math.hypot(c.y_mm - self.tracker.pos[0], c.z_mm - self.tracker.pos[1]),
            default=None,
        )
        if (
            s is not None
            and s.area_mm2 > 0
            and math.hypot(s.y_mm - self.tracker.pos[0], s.z_mm - self.tracker.pos[1]) < self.tracker.params.gate_mm
        ):
            self._pulse_samples.setdefault(self.plan.vessel_index, []).append((m.stamp_s, s.area_mm2, s.width_mm))

    def _reject_target(self, t: float, why: str) -> None:
        """The artery check rules the target out: back to SELECT, which takes the next candidate."""
        self.tracker.locked = False
        self._lock_count = 0
        self._align_settled_since = None
        self._go(Phase.SELECT, why)
        self._select(t, None, None, 0.0)

    def _artery_check(self, t: float) -> bool:
        """True when the target may be punctured. Before the first insertion into a vessel, dwell until
        ``pulsatility.dwell_s`` of its cross-section is recorded and judge it
        (:func:`~ir_robot.planning.pulsatility.assess_pulsatility`): a pulsating vessel is an artery
        whatever the classifier said: go back to SELECT, which rejects it and takes the next candidate.
        No verdict within ``max_dwell_s`` (target rarely seen whole, unstable segmentation): the
        classifier's call stands (logged). A target whose call was uncertain (``needs_pulse``) is
        punctured only on a "vein" verdict; anything else sends it back to SELECT too.
        """
        pp = self.cfg.pulsatility
        idx = self.plan.vessel_index
        if not pp.enabled or idx in self.pulse_verdicts:
            return True
        samples = self._pulse_samples.get(idx, [])
        since = min(self._pulse_since.setdefault(idx, t), samples[0][0] if samples else t)
        span = samples[-1][0] - samples[0][0] if samples else 0.0
        waited = t - since
        if span < pp.dwell_s - 1e-6 and waited < pp.max_dwell_s:
            return False
        try:
            res = assess_pulsatility(
                CrossSectionSeries.from_samples(*zip(*samples)) if samples else CrossSectionSeries.from_samples([], []),
                pp,
            )
        except PulsatilityError as exc:
            if waited < pp.max_dwell_s:
                return False
            self.pulse_verdicts[idx] = "none"
            if self._needs_vein_verdict:
                self._event(f"artery check of vessel {idx}: no verdict after {waited:.1f} s ({exc})")
                self._reject_target(
                    t, f"vessel {idx}: uncertain vein/artery call and no verdict on its pulse: not punctured"
                )
                return False
            self._event(
                f"artery check of vessel {idx}: no verdict after {waited:.1f} s ({exc}); "
                f"the classifier's vein call stands"
            )
            return True
        self.pulse_verdicts[idx] = res.verdict
        self._event(f"artery check of vessel {idx}: {res.describe()}")
        if res.verdict == ARTERY:
            self._reject_target(t, f"vessel {idx} pulsates: an artery, not punctured")
            return False
        if self._needs_vein_verdict and res.verdict != VEIN:
            self._reject_target(
                t,
                f"vessel {idx}: uncertain vein/artery call and its pulse is not clearly absent "
                f"({res.verdict}): not punctured",
            )
            return False
        return True

    def _constellation_shift(self, m: UsMeasurement) -> tuple[float, float] | None:
        """Rigid (dy, dz) of the phantom since the scan: the shift that best lays every scanned
        vessel (predicted at this plane) onto this frame's cross-sections, with the target on a vein.
        """
        x = m.probe_x_mm
        tgt = np.array(self._plane_prediction())
        dets = np.array([[s.y_mm, s.z_mm] for s in m.sections]) if m.sections else np.zeros((0, 2))
        if not len(dets):
            return None
        refs = np.array([[float(v.y_at(x)), float(v.z_at(x))] for v in self.vessels if v is not self.target])
        refs = refs[np.abs(refs[:, 0] - m.probe_y_mm) < m.half_width_mm] if len(refs) else refs
        cap = 2.0
        best, best_cost = None, math.inf
        for s in m.sections:
            if s.kind != "vein":
                continue
            shift = np.array([s.y_mm, s.z_mm]) - tgt
            if np.hypot(*shift) > self.p.lock_search_mm:
                continue
            cost = 0.0
            for r in refs:
                cost += min(cap, float(np.min(np.hypot(*(dets - (r + shift)).T))))
            cost += 0.05 * float(np.hypot(*shift)) + 0.2 * abs(s.width_mm - self.target.diameter_mm)
            if cost < best_cost:
                best, best_cost = shift, cost
        return None if best is None else (float(best[0]), float(best[1]))

    def _shift_scene(self, dy: float, dz: float) -> None:
        """The phantom moved rigidly by (dy, dz): move every vessel estimate and the plan with it."""
        self.vessels = tuple(v.shifted(0.0, dy, dz) for v in self.vessels)
        idx = next((i for i, v in enumerate(self.vessels) if v.sections is self.target.sections), None)
        self.target = self.vessels[idx] if idx is not None else self.target.shifted(0.0, dy, dz)
        self.plan = self.plan.moved(dy, dz, fixed_height=bool(self._fixed[Z]))

    def _start_insertion(self, t: float) -> bool:
        ty, tz = self._target_at(t)
        dy, dz = ty - self.plan.target_mm[1], tz - self.plan.target_mm[2]
        self._shift_scene(dy, dz)
        if math.hypot(dy, dz) > self.p.replan_threshold_mm:
            obstacles = [v for v in self.vessels if v is not self.target]
            try:
                plan = plan_insertion(
                    self.target,
                    obstacles,
                    lower=JointVector.from_array(self.lo),
                    upper=JointVector.from_array(self.hi),
                    params=self.cfg.insertion,
                    vessel_index=self.plan.vessel_index,
                    target_x_mm=(self.plan.target_mm[0],),
                )
            except UnreachableTarget as exc:
                self._go(Phase.ABORT, f"unreachable target after the arm moved {math.hypot(dy, dz):.1f} mm: {exc}")
                return False
            self.plan = plan
            self._event(f"re-planned: target moved {dy:+.2f} mm sideways, {dz:+.2f} mm up")
        self.outcome.plan = self.plan
        self.outcome.attempts += 1
        self.force.disarm()
        self._candidate_s = None
        self._pause_force = None
        self._watch_until = None
        self._probe = []
        self._outside_frames = 0
        self.insertion_target_mm = self.plan.insert_mm
        self._go(
            Phase.INSERT,
            f"attempt {self.outcome.attempts}: inserting to {self.plan.insert_mm:.2f} mm "
            f"(front wall at {self.plan.near_wall_insert_mm:.2f} mm)",
        )
        self._sub = "advance"
        return True

    # ================================================================ INSERT
    def _fail_attempt(self, why: str) -> None:
        if self.outcome.attempts < self.p.max_attempts:
            self._retract_then = Phase.ALIGN
        else:
            self._retract_then = Phase.FAILED
        self.outcome.reason = why
        self.outcome.attempt_failures.append(why)
        self._go(Phase.RETRACT, why)

    def _fix_timeout_s(self) -> float:
        """How long the target may go without a fix before the attempt is given up. At the lumen (lumen
        test, confirmation, hold, retraction) the fitted motion predicts a target the needle hides, so
        the wait is ``tracker.grace_s`` longer (paused: the needle never advances on the prediction).
        Not while still searching for the vein wall: a tear during a long pause goes unfelt (the force
        monitor ignores drops while the needle stops) and the search would go on through a small lumen.
        """
        searching = self.phase == Phase.INSERT and self._sub == "advance"
        return self.p.dropout_timeout_s + (0.0 if searching else self.tracker.grace_s)

    def _guard(self, t: float, reading, problem: str) -> tuple[bool, str | None]:
        """(may advance, reason to give the attempt up). Logs pauses once."""
        p = self.p
        if reading.spike:
            self._spikes.append(t)
            self._pause_until = t + p.spike_pause_s
            self._event(f"force-sensor spike {reading.raw_n:.2f} N (filtered {reading.filtered_n:.2f} N): pausing")
        while self._spikes and t - self._spikes[0] > p.spike_window_s:
            self._spikes.popleft()
        if len(self._spikes) >= p.max_spikes:
            return False, f"force sensor unreliable: {len(self._spikes)} spikes in {p.spike_window_s} s"
        if reading.filtered_n > p.force_pause_n:
            if self._force_high_since is None:
                self._force_high_since = t
                self._event(f"force {reading.filtered_n:.2f} N above {p.force_pause_n} N: pausing")
            elif t - self._force_high_since > p.force_pause_timeout_s:
                return False, f"force stayed above {p.force_pause_n} N for {p.force_pause_timeout_s} s"
        else:
            self._force_high_since = None
        age = self.tracker.age(t)
        if age > self._fix_timeout_s():
            return False, f"perception lost the target: no ultrasound fix for {age:.1f} s"
        if problem:
            if self._blocked_since is None:
                self._blocked_since = t
            elif t - self._blocked_since > p.dropout_timeout_s:
                return False, problem
        else:
            self._blocked_since = None
        ok = t >= self._pause_until and self._force_high_since is None and age <= p.perception_max_age_s and not problem
        if not ok:
            msg = "paused: " + (
                "waiting for a fresh target fix"
                if age > p.perception_max_age_s
                else problem.split(" (")[0]
                if problem
                else "force spike"
                if t < self._pause_until
                else "force high"
            )
            if msg != self._paused_msg:
                self._paused_msg = msg
                self._event(msg)
        else:
            self._paused_msg = ""
        return ok, None

    def _insert(self, t, q, obs, dt):
        p, plan = self.p, self.plan
        tip_x = q[X] + q[INS] * math.cos(q[PITCH])
        if not self.tracker.frozen and tip_x >= plan.probe_x_mm - p.us_slab_half_mm - p.freeze_distance_mm:
            self.tracker.freeze(t)
            self._layers_ref = self.last_us.profile if self.last_us is not None else None
            self._event(
                f"needle {plan.probe_x_mm - tip_x:.1f} mm from the image plane: tracking the target "
                f"through the other vessels' motion"
            )
        self._process_us(obs, q)
        self._want_us(t)
        goal_yz, ff, problem = self._tracking_goal(t, dt)
        reading = self.force.last
        ok, give_up = self._guard(t, reading, problem)
        if give_up:
            self._fail_attempt(give_up)
            return self._retract(t, q, obs, dt)
        s = q[INS]
        s_star = plan.insert_mm
        delta = float(np.clip(0.5 * plan.lumen_half_path_mm, *p.probe_depth_mm))
        if reading.drop_n > 0:
            if s >= plan.near_wall_insert_mm - p.candidate_tolerance_mm:
                self._candidate_s = s
                self._event(f"puncture-like force drop {reading.drop_n:.2f} N at {s:.2f} mm: lumen test")
                self._start_lumen_test()
            else:
                self._event(f"membrane puncture {reading.drop_n:.2f} N at {s:.2f} mm (before the vein)")
        elif self._sub == "advance":
            # a wall that tears as the needle stops (a pause) or turns (the end of a lumen test) is not
            # seen as a drop: the monitor ignores drops then, since slowing down alone lowers the force.
            # So compare the force with the one at that moment until advancing for PAUSE_WATCH_S
            if not ok:
                if self._pause_force is None and s >= plan.near_wall_insert_mm - p.candidate_tolerance_mm:
                    self._pause_force, self._pause_cause = reading.filtered_n, "a pause"
                self._watch_until = None
            elif self._pause_force is not None:
                if self._watch_until is None:
                    self._watch_until = t + PAUSE_WATCH_S
                fell = self._pause_force - reading.filtered_n
                if fell >= self.force.params.drop_threshold_n:
                    self._candidate_s = s
                    self._event(f"force fell {fell:.2f} N across {self._pause_cause} at {s:.2f} mm: lumen test")
                    self._start_lumen_test()
                    self._pause_force = None
                elif t >= self._watch_until:
                    self._pause_force = None
        v_ins = 0.0
        if self._sub == "advance":
            if s >= plan.max_insert_mm - 1e-3:
                self._fail_attempt(
                    f"no puncture of the vein wall felt by {s:.1f} mm (target {s_star:.1f} mm, reserve used up)"
                )
                return self._retract(t, q, obs, dt)
            if s < plan.skin_insert_mm - p.skin_zone_mm:
                v_ins = p.v_air_mm_s
            elif s < plan.near_wall_insert_mm - p.slow_zone_mm:
                v_ins = p.v_tissue_mm_s
            else:
                v_ins = p.v_slow_mm_s
            v_ins = min(v_ins, (plan.max_insert_mm - s) / dt)
        elif self._sub == "to_probe":
            start = s_star - delta
            if abs(s - start) < 0.01:
                self._probe_ticks += 1
                if self._probe_ticks >= 2:
                    self._sub = "probe"
                    self._probe = []
                    self._probe_ticks = 0
                    self._probe_from = s
            else:
                self._probe_ticks = 0
                v_ins = float(np.clip((start - s) / max(p.lumen_test_tau_s, dt), -p.v_slow_mm_s * 2, p.v_slow_mm_s))
                if v_ins > 0 and ok:  # the drop came short of the start: this travel is a test of its own
                    self._approach_ticks += 1
                    if self._approach_ticks > SETTLE_TICKS:
                        self._approach.append((s, reading.filtered_n))
                elif not ok:  # a pause: a tented wall relaxes while the needle stands; start the fit again
                    self._approach, self._approach_ticks = [], 0
        elif self._sub == "probe":
            self._probe_ticks += 1
            if probe_sample_ready(self._probe_ticks, s - self._probe_from, dt, p.v_probe_mm_s):
                self._probe.append((s, reading.filtered_n))
            if s >= s_star - 1e-3:
                in_lumen, why = lumen_verdict(
                    self._probe, self._approach, p.lumen_slope_n_per_mm, self.force.params.drop_threshold_n
                )
                if in_lumen:
                    self.outcome.confirmed = False
                    self._event(f"lumen test: {why} -> tip in the lumen")
                    self._go(Phase.CONFIRM, f"lumen test passed at {s:.2f} mm")
                    return self._servo(q, {INS: s_star, **goal_yz}, dt, ff=ff)
                self._event(f"lumen test: {why} -> a membrane is still ahead; searching deeper")
                self._sub = "advance"
                self.force.disarm()
                self._pause_force, self._pause_cause = reading.filtered_n, "the end of the lumen test"
                self._watch_until = t + PAUSE_WATCH_S
            else:
                v_ins = min(p.v_probe_mm_s, (s_star - s) / dt)
        if v_ins > 0 and not ok:
            v_ins = 0.0
        v = self._servo(q, {X: plan.pivot_mm[0], PITCH: plan.pitch_rad, YAW: math.pi / 2, **goal_yz}, dt, ff=ff)
        v[INS] = v_ins
        return v

    def _start_lumen_test(self) -> None:
        self._sub = "to_probe"
        self._probe_ticks = 0
        self._approach = []
        self._approach_ticks = 0

    # ================================================================ CONFIRM / HOLD
    def _confirm(self, t, q, obs, dt):
        p, plan = self.p, self.plan
        m = self._process_us(obs, q)
        self._want_us(t)
        goal_yz, ff, problem = self._tracking_goal(t, dt)
        _, give_up = self._guard(t, self.force.last, problem)
        if give_up:
            self._fail_attempt(give_up)
            return self._retract(t, q, obs, dt)
        if not p.require_us_confirmation:
            self._confirmed(t, "force only")
        elif m is not None and m.needle_yz_mm is not None:
            tip = needle_at_x(m.needle_yz_mm, m.probe_x_mm, plan.target_mm[0], plan.pitch_rad, p.us_slab_half_mm)
            centre = self._target_at(m.stamp_s)
            semi = (self.tracker.size_mm[0] / 2, self.tracker.size_mm[1] / 2)
            inside = in_ellipse(tip, centre, semi, p.lumen_margin)
            # tracked with the zoom, the whole frame must also show a vessel there: the zoomed view
            # may have followed something else
            agrees = p.us_roi_mm <= 0 or any(in_ellipse((c.y_mm, c.z_mm), centre, semi, 1.5) for c in m.sections)
            if inside and agrees:
                self._confirmed(
                    t,
                    f"ultrasound tip {abs(tip[0] - centre[0]):.2f} mm / "
                    f"{abs(tip[1] - centre[1]):.2f} mm from the lumen centre",
                )
            else:
                self._outside_frames += 1
                if self._outside_frames >= 3:
                    self._fail_attempt(
                        f"ultrasound shows the tip outside the lumen ({tip[0] - centre[0]:+.2f}, "
                        f"{tip[1] - centre[1]:+.2f}) mm from its centre"
                        if not inside
                        else "the whole ultrasound frame shows no vessel at the tracked target "
                        "(the zoomed tracking is not confirmed)"
                    )
                    return self._retract(t, q, obs, dt)
        elif t - self._phase_t > p.confirm_timeout_s:
            self._fail_attempt(f"ultrasound does not show the needle tip after {p.confirm_timeout_s} s")
            return self._retract(t, q, obs, dt)
        return self._servo(
            q, {X: plan.pivot_mm[0], PITCH: plan.pitch_rad, YAW: math.pi / 2, INS: plan.insert_mm, **goal_yz}, dt, ff=ff
        )

    def _confirmed(self, t: float, how: str) -> None:
        self.outcome.confirmed = True
        self.outcome.confirm_t_s = t - (self.t0 or 0.0)
        self._go(Phase.HOLD, f"confirmed: force drop + lumen test + {how}")

    def _hold(self, t, q, obs, dt):
        plan = self.plan
        self._process_us(obs, q)
        self._want_us(t)
        goal_yz, ff, problem = self._tracking_goal(t, dt)
        _, give_up = self._guard(t, self.force.last, problem)
        if give_up:
            self._success = False
            self._fail_attempt(f"during hold: {give_up}")
            return self._retract(t, q, obs, dt)
        if t - self._phase_t >= self.p.hold_s:
            self._success = True
            self._retract_then = Phase.DONE
            self._go(Phase.RETRACT, f"held {self.p.hold_s:.1f} s in the lumen")
        return self._servo(
            q, {X: plan.pivot_mm[0], PITCH: plan.pitch_rad, YAW: math.pi / 2, INS: plan.insert_mm, **goal_yz}, dt, ff=ff
        )

    # ================================================================ RETRACT / ABORT
    def _retract(self, t, q, obs, dt):
        """Needle out along its axis (never in), following the target while in tissue; then pivot up."""
        s = q[INS]
        goal: dict[int, float] = {INS: 0.0}
        ff: dict[int, float] = {}
        if self.tracker.locked and self.plan is not None and s > 0.05:
            self._process_us(obs, q)
            self._want_us(t)
            goal_yz, ff, _ = self._tracking_goal(t, dt)
            if self.tracker.age(t) < self._fix_timeout_s():
                goal.update(goal_yz)
        v = self._servo(q, goal, dt, ff=ff, speed={INS: self.p.v_retract_mm_s})
        v[INS] = min(v[INS], 0.0)
        if s <= 0.05:
            v = self._servo(q, {INS: 0.0, Z: max(self.p.safe_height_mm, q[Z])}, dt, speed=self._travel_speeds())
            v[INS] = min(v[INS], 0.0)
            # the needle is out: done now, or lift the pivot before travelling to a new attempt
            if self._retract_then == Phase.DONE or q[Z] >= min(self.p.safe_height_mm, self.hi[Z]) - 0.05:
                self.insertion_target_mm = 0.0
                if self.phase == Phase.ABORT:
                    self._go(Phase.FAILED, self._abort_reason)
                elif self._retract_then == Phase.DONE:
                    self._go(Phase.DONE, "venipuncture completed")
                elif self._retract_then == Phase.ALIGN:
                    if self.tracker.locked and self.tracker.age(t) < self.p.dropout_timeout_s:
                        ty, tz = self._target_at(t)
                        self._shift_scene(ty - self.plan.target_mm[1], tz - self.plan.target_mm[2])
                        try:
                            self.plan = plan_insertion(
                                self.target,
                                [v for v in self.vessels if v is not self.target],
                                lower=JointVector.from_array(self.lo),
                                upper=JointVector.from_array(self.hi),
                                params=self.cfg.insertion,
                                vessel_index=self.plan.vessel_index,
                                target_x_mm=(self.plan.target_mm[0],),
                            )
                        except UnreachableTarget as exc:
                            self._go(Phase.ABORT, f"unreachable target for a new attempt: {exc}")
                            return np.zeros(6)
                    self.tracker.locked = False
                    self._lock_count = 0
                    self._align_settled_since = None
                    self._go(Phase.ALIGN, f"retrying (attempt {self.outcome.attempts + 1})")
                else:
                    self._go(Phase.FAILED, self.outcome.reason or "attempts used up")
                return np.zeros(6)
        return v
