"""The venipuncture controller: the phases' handlers on a :class:`~ir_robot.control.state_machine.StateMachine`
over one :class:`~ir_robot.control.venipuncture.context.Context`, behind ``compute(state, observation, dt)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ir_robot.control.config import ControlParams, VenipunctureConfig
from ir_robot.control.sensing import UsMeasurement
from ir_robot.control.state_machine import StateMachine
from ir_robot.control.tracking import ForceMonitor, ForceReading, TargetTracker
from ir_robot.control.venipuncture.align import align
from ir_robot.control.venipuncture.confirm import confirm, hold
from ir_robot.control.venipuncture.context import (
    INS,
    YAW,
    Context,
    FloatArray,
    Handler,
    Imaging,
    ScanState,
    Tick,
    Y,
    Z,
)
from ir_robot.control.venipuncture.follow import target_at
from ir_robot.control.venipuncture.insert import insert
from ir_robot.control.venipuncture.phases import TRANSITIONS, Outcome, Phase
from ir_robot.control.venipuncture.retract import retract
from ir_robot.control.venipuncture.scan import scan, select
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import JOINT_NAMES, N_JOINTS, ImageFrame, JointVector, Observation, RigCommand, RigState
from ir_robot.planning.insertion import InsertionPlan, fixed_joints
from ir_robot.planning.targets import Candidate
from ir_robot.planning.vessels import CrossSection, NirTrace, VesselEstimate

#: one handler per live phase (ABORT retracts like RETRACT, then fails)
HANDLERS: dict[Phase, Handler] = {
    Phase.SCAN: scan,
    Phase.SELECT: select,
    Phase.ALIGN: align,
    Phase.INSERT: insert,
    Phase.CONFIRM: confirm,
    Phase.HOLD: hold,
    Phase.RETRACT: retract,
    Phase.ABORT: retract,
}

_TRACE_KEYS = (
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


class VenipunctureController:
    """The venipuncture state machine. ``compute(state, observation, dt) -> RigCommand``.

    ``us_perception`` / ``nir_perception``: objects with ``predict(frame)`` (injected, so tests
    can pass fakes). ``lower``/``upper``: the joint limits to plan within (the safety layer's,
    already intersected with its workspace); ``velocity_limits``: the rig's joint rate limits.
    Before each ``compute`` the runner asks :meth:`sensors` which images to take this tick.
    Its state is one :class:`~ir_robot.control.venipuncture.context.Context` (:attr:`ctx`); the
    attributes below read it.
    """

    def __init__(
        self,
        config: VenipunctureConfig,
        us_perception: Any,
        nir_perception: Any = None,
        *,
        lower: JointVector,
        upper: JointVector,
        velocity_limits: JointVector,
    ) -> None:
        lo = lower.as_array()
        #: joints the rig cannot move (equal limits or zero speed limit): held at the rig's value
        self.fixed_joints = fixed_joints(lower, upper, velocity_limits)
        fixed = np.array([n in self.fixed_joints for n in JOINT_NAMES])
        if fixed[YAW] and abs(math.sin(lo[YAW])) < 0.999:
            raise ConfigError(
                f"the rig's probe yaw is fixed at {lo[YAW]:.4g} rad: the venipuncture controller "
                "needs a transverse ultrasound view (yaw pi/2 = 1.5708 rad; mount the probe across the "
                "arm and set fixed.probe_yaw_rad in the rig config)"
            )
        p = config.control
        machine: StateMachine[Phase, Context, FloatArray] = StateMachine(Phase.SCAN, TRANSITIONS, HANDLERS)
        self.ctx = Context(
            cfg=config,
            us_perception=us_perception,
            nir_perception=nir_perception,
            lo=lo,
            hi=upper.as_array(),
            vmax=velocity_limits.as_array() * p.speed_fraction,
            fixed=fixed,
            machine=machine,
            outcome=Outcome(events=machine.events),
            tracker=TargetTracker(config.tracker),
            force=ForceMonitor(config.force),
            scan=ScanState(
                stations=[
                    (x, y)
                    for i, x in enumerate(p.scan_x_mm)
                    for y in (p.scan_y_mm if i % 2 == 0 else tuple(reversed(p.scan_y_mm)))
                ]
            ),
            img=Imaging(want=frozenset({"nir"} if nir_perception is not None else set())),
        )
        if self.fixed_joints:
            self.ctx.event(
                "fixed "
                + ", ".join(f"{n} = {lo[JOINT_NAMES.index(n)]:.4g}" for n in self.fixed_joints)
                + ": held where the rig has them (entry planned at this pitch and height)"
            )
        self.trace: dict[str, list[Any]] = {k: [] for k in _TRACE_KEYS}

    # ================================================================ public
    @property
    def cfg(self) -> VenipunctureConfig:
        """The venipuncture configuration."""
        return self.ctx.cfg

    @property
    def p(self) -> ControlParams:
        """The control parameters (``cfg.control``)."""
        return self.ctx.p

    @property
    def us_perception(self) -> Any:
        """The ultrasound perception (``predict(frame)``)."""
        return self.ctx.us_perception

    @property
    def nir_perception(self) -> Any:
        """The NIR perception (``predict(frame)``), or None."""
        return self.ctx.nir_perception

    @property
    def lo(self) -> FloatArray:
        """Lower joint limits planned within."""
        return self.ctx.lo

    @property
    def hi(self) -> FloatArray:
        """Upper joint limits planned within."""
        return self.ctx.hi

    @property
    def vmax(self) -> FloatArray:
        """Joint rate caps (the rig's velocity limits x ``speed_fraction``)."""
        return self.ctx.vmax

    @property
    def phase(self) -> Phase:
        """The current phase."""
        return self.ctx.machine.phase

    @property
    def done(self) -> bool:
        """Has the procedure ended (DONE or FAILED)?"""
        return self.ctx.machine.done

    @property
    def outcome(self) -> Outcome:
        """The report so far (final once :attr:`done`)."""
        return self.ctx.outcome

    @property
    def t0(self) -> float | None:
        """Rig time of the first tick (None before it)."""
        return self.ctx.machine.t0

    @property
    def t_s(self) -> float:
        """Rig time of the current tick."""
        return self.ctx.machine.now_s

    @property
    def tracker(self) -> TargetTracker:
        """The target tracker (locked from ALIGN on)."""
        return self.ctx.tracker

    @property
    def force(self) -> ForceMonitor:
        """The force monitor (filter, spikes, puncture drops)."""
        return self.ctx.force

    @property
    def sections(self) -> list[CrossSection]:
        """Cross-sections seen during the scan."""
        return self.ctx.scan.sections

    @property
    def nir_traces(self) -> tuple[NirTrace, ...]:
        """Veins seen in the NIR frame."""
        return self.ctx.scan.nir_traces

    @property
    def vessels(self) -> tuple[VesselEstimate, ...]:
        """The vessels fused from the scan (moved with the phantom since)."""
        return self.ctx.sel.vessels

    @property
    def candidates(self) -> list[Candidate]:
        """The ranked target candidates of the last selection."""
        return self.ctx.sel.candidates

    @property
    def target(self) -> VesselEstimate | None:
        """The target vessel (None before SELECT chose one)."""
        return self.ctx.sel.target

    @property
    def plan(self) -> InsertionPlan | None:
        """The insertion plan (None before SELECT made one)."""
        return self.ctx.sel.plan

    @property
    def pulse_verdicts(self) -> dict[int, str]:
        """The artery check's verdicts by vessel index."""
        return self.ctx.artery.verdicts

    @property
    def insertion_target_mm(self) -> float | None:
        """Insertion depth the safety layer may let the needle reach (0 outside an attempt)."""
        return self.ctx.insert.target_mm

    @property
    def last_us(self) -> UsMeasurement | None:
        """The last ultrasound measurement."""
        return self.ctx.img.last_us

    @property
    def last_us_frame(self) -> ImageFrame | None:
        """The last ultrasound frame measured."""
        return self.ctx.img.last_us_frame

    @property
    def last_nir_frame(self) -> ImageFrame | None:
        """The last NIR frame received."""
        return self.ctx.img.last_nir_frame

    def target_at(self, t: float) -> tuple[float, float]:
        """Tracked target centre (y, z) at the plan's target x at time ``t`` (needs a plan)."""
        return target_at(self.ctx, t)

    def sensors(self, state: RigState | None = None) -> frozenset[str]:
        """Images wanted at this tick ("us", "nir")."""
        return self.ctx.img.want

    def abort(self, reason: str) -> None:
        """Abort from outside (operator, runner timeout): retract and fail with ``reason``."""
        if not self.done and self.phase != Phase.ABORT:
            self.ctx.go(Phase.ABORT, reason)

    def fail_now(self, reason: str) -> None:
        """The rig can no longer be moved (safety trip): stop where we are and fail."""
        c = self.ctx
        if not self.done:
            c.event(reason)
            c.outcome.reason = reason
            c.machine.stop(Phase.FAILED, reason)
            c.outcome.transitions.append((c.t_s, "any", Phase.FAILED.value, reason))

    def compute(self, state: RigState, obs: Observation | None, dt: float) -> RigCommand:
        """Joint-rate command for this tick from the rig state and the images taken."""
        c = self.ctx
        obs = obs or Observation()
        t = float(state.stamp_s)
        c.machine.clock(t)
        q = state.joints.as_array()
        reading = c.force.update(state.force_n, float(c.last_rate[INS]))
        c.outcome.peak_force_n = max(c.outcome.peak_force_n, float(reading.filtered_n))
        t0 = c.machine.t0
        c.outcome.duration_s = t - t0 if t0 is not None else 0.0
        if state.status == "estop" and not self.done:
            self.fail_now(f"rig stopped: {state.message or 'e-stop'}")
        if obs.nir is not None:
            c.img.last_nir_frame = obs.nir
        c.img.want = frozenset()
        c.tick = Tick(t, q, obs, dt, reading)
        v = c.machine.step(c)
        if v is None:
            v = np.zeros(N_JOINTS)
        v = np.clip(np.where(np.isfinite(v), v, 0.0), -c.vmax, c.vmax)
        # never leave the limits within one command
        v = np.clip(v, np.minimum(0.0, (c.lo - q) / dt), np.maximum(0.0, (c.hi - q) / dt))
        if self.done:
            v = np.zeros(N_JOINTS)
        c.last_rate = v
        self._record(t, q, reading)
        return RigCommand(JointVector.from_array(v), float(dt) if np.any(v) else 0.0)

    def _record(self, t: float, q: FloatArray, reading: ForceReading) -> None:
        """Append this tick to :attr:`trace` (the target only while tracked)."""
        tr = self.trace
        tr["t_s"].append(t)
        tr["phase"].append(self.phase.value)
        tr["insert_mm"].append(float(q[INS]))
        tr["force_n"].append(float(reading.raw_n))
        tr["force_filtered_n"].append(float(reading.filtered_n))
        if self.tracker.locked:
            ty, tz = self.target_at(t)
        else:
            ty = tz = float("nan")
        tr["target_y_mm"].append(ty)
        tr["target_z_mm"].append(tz)
        tr["pivot_y_mm"].append(float(q[Y]))
        tr["pivot_z_mm"].append(float(q[Z]))
