"""The safety layer: one :class:`SafeRig` between every controller and every rig backend.

``SafeRig(rig, SafetyConfig())`` is itself a :class:`~ir_robot.devices.base.Rig`, so a
controller (or the ROS controller node, or a person at a prompt) cannot reach the
backend except through it. Every command and every state read passes these checks:

==================  ===========================================================  ==========================
check (``reason``)  trips when                                                    checked on
==================  ===========================================================  ==========================
``joint_limit``     a joint is, or a command would take it within                 command, move_to, read
                    ``command duration`` (at most ``lookahead_s``), beyond the
                    backend's limits shrunk by ``limit_margin_*``
``workspace``       the needle pivot (x, y, z) leaves the configured box         command, move_to, read
``velocity_limit``  a commanded rate exceeds ``velocity_scale`` x the backend's  command, move_to
                    velocity limit, or a rate is not a finite number
``immovable_joint`` a non-zero rate on a joint the backend cannot move           command
``max_depth``       insertion beyond the controller's target + ``max_depth_      command, move_to, read
                    beyond_target_mm`` (set per plan with
                    :meth:`SafeRig.set_insertion_target`)
``force_ceiling``   the median of the last ``force_window`` force readings       read
                    exceeds ``force_ceiling_n``, or one reading exceeds
                    ``force_hard_ceiling_n`` (a single spike below the hard
                    ceiling does not trip; the controller handles it)
``watchdog``        no command for ``command_timeout_s`` while the rig may move   read
``estop``           :meth:`SafeRig.estop` was called                              any time
``backend``         the backend fails a command or a move (a GRBL error reply,    command, move_to
                    a lost serial line): the rig may not be where the
                    controller thinks, so it stops and latches like any trip
==================  ===========================================================  ==========================

A trip calls ``rig.stop(reason)`` at once, *latches*, records a
:class:`~ir_robot.core.errors.SafetyTrip` in :attr:`SafeRig.trip` and refuses every
motion (``command``/``move_to`` raise the trip again) until :meth:`SafeRig.reset`.
Checks on a command raise the trip to the caller; checks on a state read report it
in the returned state (``status="estop"``, ``message`` says why) and in :attr:`trip`,
so a polling loop never dies on a read. ``RigCommand.stop()`` is always accepted
while not latched.

Time comes from ``clock`` (default: the backend's own ``RigState.stamp_s``, i.e.
simulated time for the simulator and wall time for real rigs), so the watchdog works
unchanged under a simulated clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ir_robot.config import param
from ir_robot.control.limits import with_margins
from ir_robot.core.errors import ConfigError, IrRobotError, SafetyTrip
from ir_robot.core.types import JOINT_NAMES, JointVector, RigCommand, RigState
from ir_robot.devices.base import Rig

_LINEAR = np.array([n.endswith("_mm") for n in JOINT_NAMES])
_INSERT = JOINT_NAMES.index("insert_mm")


@dataclass(frozen=True)
class SafetyConfig:
    """Limits enforced by :class:`SafeRig` (see the module docstring for what each check does)."""

    force_ceiling_n: float = param(
        3.0,
        range=(0.05, 50.0),
        unit="N",
        help="sustained axial needle force (median of force_window readings) that trips",
    )
    force_hard_ceiling_n: float = param(
        8.0, range=(0.05, 100.0), unit="N", help="a single force reading above this trips at once"
    )
    force_window: int = param(3, range=(1, 50), help="readings in the force median")
    command_timeout_s: float = param(
        0.5, range=(0.01, 30.0), unit="s", help="watchdog: stop when no command arrives for this long"
    )
    lookahead_s: float = param(
        1.0, range=(0.0, 30.0), unit="s", help="a rate command is checked against the limits over min(duration, this)"
    )
    velocity_scale: float = param(
        1.0, range=(0.01, 1.0), help="fraction of the backend's velocity limits a command may use"
    )
    limit_margin_mm: float = param(0.0, range=(0.0, 20.0), unit="mm", help="keep prismatic joints this far inside")
    limit_margin_rad: float = param(0.0, range=(0.0, 0.5), unit="rad", help="keep revolute joints this far inside")
    limit_tolerance: float = param(1e-3, range=(0.0, 1.0), help="mm / rad of slack before a limit check trips")
    workspace_min_mm: tuple[float, float, float] = param(
        (-45.0, -22.0, 0.0), range=(-1000.0, 1000.0), unit="mm", help="lowest pivot (x, y, z) allowed"
    )
    workspace_max_mm: tuple[float, float, float] = param(
        (45.0, 22.0, 60.0), range=(-1000.0, 1000.0), unit="mm", help="highest pivot (x, y, z) allowed"
    )
    max_depth_beyond_target_mm: float = param(
        12.0, range=(0.0, 40.0), unit="mm", help="insertion allowed past the controller's target (along the needle)"
    )

    def __post_init__(self) -> None:
        if self.force_hard_ceiling_n < self.force_ceiling_n:
            raise ConfigError(
                f"field 'force_hard_ceiling_n': {self.force_hard_ceiling_n} N is below "
                f"force_ceiling_n {self.force_ceiling_n} N; the hard ceiling must be the higher one"
            )
        if any(lo >= hi for lo, hi in zip(self.workspace_min_mm, self.workspace_max_mm, strict=False)):
            raise ConfigError(
                f"field 'workspace_min_mm': {self.workspace_min_mm} must be below workspace_max_mm "
                f"{self.workspace_max_mm} on every axis"
            )


class SafeRig(Rig):
    """A :class:`Rig` that checks everything between a controller and the backend ``rig``."""

    def __init__(self, rig: Rig, config: SafetyConfig | None = None, *, clock: Callable[[], float] | None = None):
        if isinstance(rig, SafeRig):
            raise ConfigError("SafeRig: the rig is already wrapped in a SafeRig; wrap the backend once")
        self.rig = rig
        self.config = config or SafetyConfig()
        self._clock = clock
        self.movable_joints = tuple(rig.movable_joints)
        lo, hi = rig.limits()
        self._lo_raw, self._hi_raw = lo.as_array(), hi.as_array()
        # the margins keep movable joints inside; a fixed joint (equal limits, a 3-axis stage) keeps its value
        self._lo, self._hi = with_margins(self._lo_raw, self._hi_raw, self.config)
        if np.any(self._lo > self._hi):
            raise ConfigError(
                f"SafetyConfig limit margins ({self.config.limit_margin_mm} mm, "
                f"{self.config.limit_margin_rad} rad) leave no room inside the rig's joint limits"
            )
        self._vmax = rig.velocity_limits().as_array() * self.config.velocity_scale
        self._ws_lo = np.asarray(self.config.workspace_min_mm, dtype=float)
        self._ws_hi = np.asarray(self.config.workspace_max_mm, dtype=float)
        self._forces: deque = deque(maxlen=self.config.force_window)
        self._insert_limit: float | None = None
        self._target_insert: float | None = None
        self._deadline: float | None = None
        self._last_state: RigState | None = None
        self.trip: SafetyTrip | None = None
        #: every trip since construction, oldest first (reasons survive reset())
        self.trips: list[SafetyTrip] = []

    # ------------------------------------------------------------ properties
    @property
    def tripped(self) -> bool:
        """True while a trip is latched (motion refused until :meth:`reset`)."""
        return self.trip is not None

    @property
    def insertion_limit_mm(self) -> float | None:
        """Deepest insertion allowed right now (None: only the joint limit)."""
        return self._insert_limit

    def limits(self) -> tuple[JointVector, JointVector]:
        """The backend's joint limits shrunk by the safety margins (a fixed joint keeps its value): what is checked."""
        return JointVector.from_array(self._lo), JointVector.from_array(self._hi)

    def velocity_limits(self) -> JointVector:
        """The backend's velocity limits scaled by ``velocity_scale``: the rates a command may ask for."""
        return JointVector.from_array(self._vmax)

    # ------------------------------------------------------------ plan hooks
    def set_insertion_target(self, target_insert_mm: float | None) -> None:
        """The controller's planned insertion (mm along the needle); None clears the depth check."""
        if target_insert_mm is None:
            self._target_insert = self._insert_limit = None
            return
        if not math.isfinite(target_insert_mm):
            raise ConfigError(f"set_insertion_target: target must be a finite number of mm, got {target_insert_mm!r}")
        self._target_insert = float(target_insert_mm)
        self._insert_limit = float(target_insert_mm) + self.config.max_depth_beyond_target_mm

    # ------------------------------------------------------------ trips
    def _now(self, state: RigState | None = None) -> float:
        if self._clock is not None:
            return float(self._clock())
        if state is not None:
            return float(state.stamp_s)
        if self._last_state is not None:
            return float(self._last_state.stamp_s)
        return float(self.rig.read_state().stamp_s)

    def _trip(self, reason: str, detail: str) -> SafetyTrip:
        exc = SafetyTrip(reason, detail)
        if self.trip is None:
            self.trip = exc
            self.trips.append(exc)
        try:
            self.rig.stop(f"safety trip [{reason}]: {detail}")
        finally:
            self._deadline = None
        return self.trip

    def _refuse_if_latched(self) -> None:
        if self.trip is not None:
            self.rig.stop(str(self.trip))
            raise SafetyTrip(self.trip.reason, f"{self.trip.detail} (latched: call reset() after fixing the cause)")

    def estop(self, reason: str = "operator e-stop") -> None:
        """Emergency stop: halt the backend now and latch until :meth:`reset`."""
        self._trip("estop", reason)

    def reset(self) -> None:
        """Clear a latched trip (after the cause is fixed). The next read re-checks everything."""
        self.trip = None
        self._forces.clear()
        self._deadline = None

    # ------------------------------------------------------------ checks
    def _position_problem(self, q: np.ndarray, what: str) -> tuple[str, str] | None:
        tol = self.config.limit_tolerance
        bad = (q < self._lo - tol) | (q > self._hi + tol)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return "joint_limit", (
                f"{what} {JOINT_NAMES[i]} = {q[i]:.4g} outside [{self._lo[i]:.4g}, {self._hi[i]:.4g}]"
            )
        p = q[:3]
        bad = (p < self._ws_lo - tol) | (p > self._ws_hi + tol)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return "workspace", (
                f"{what} pivot {'xyz'[i]} = {p[i]:.4g} mm outside the workspace "
                f"[{self._ws_lo[i]:.4g}, {self._ws_hi[i]:.4g}] mm"
            )
        if self._insert_limit is not None and q[_INSERT] > self._insert_limit + tol:
            return "max_depth", (
                f"{what} insertion {q[_INSERT]:.3f} mm is more than "
                f"{self.config.max_depth_beyond_target_mm} mm beyond the target "
                f"{self._target_insert:.3f} mm"
            )
        return None

    def _check_state(self, state: RigState) -> None:
        q = state.joints.as_array()
        if not np.all(np.isfinite(q)):
            self._trip("joint_limit", f"backend reported non-finite joints {state.joints}")
            return
        prob = self._position_problem(q, "rig at")
        if prob is not None:
            self._trip(*prob)
            return
        f = float(state.force_n)
        if not math.isfinite(f):
            self._trip("force_ceiling", f"force sensor reported {f!r}")
            return
        if abs(f) > self.config.force_hard_ceiling_n:
            self._trip(
                "force_ceiling", f"needle force {f:.2f} N above the hard ceiling {self.config.force_hard_ceiling_n} N"
            )
            return
        self._forces.append(f)
        srt = sorted(self._forces)
        n = len(srt)
        med = float(srt[n // 2]) if n % 2 else 0.5 * (srt[n // 2 - 1] + srt[n // 2])
        if len(self._forces) == self._forces.maxlen and abs(med) > self.config.force_ceiling_n:
            self._trip(
                "force_ceiling",
                f"needle force {med:.2f} N (median of {len(self._forces)} readings) above "
                f"the ceiling {self.config.force_ceiling_n} N",
            )
            return
        if self._deadline is not None and self._now(state) > self._deadline:
            late = self._now(state) - self._deadline
            self._trip(
                "watchdog",
                f"no command for {self.config.command_timeout_s + late:.3f} s "
                f"(timeout {self.config.command_timeout_s} s)",
            )

    def _check_rates(self, v: np.ndarray) -> None:
        if not np.all(np.isfinite(v)):
            bad = [n for n, x in zip(JOINT_NAMES, v, strict=True) if not math.isfinite(x)]
            raise self._trip("velocity_limit", f"non-finite rate on {bad}")
        fixed = [n for n, x in zip(JOINT_NAMES, v, strict=True) if x != 0.0 and n not in self.movable_joints]
        if fixed:
            raise self._trip(
                "immovable_joint", f"rate on {fixed}, which this rig cannot move (movable: {list(self.movable_joints)})"
            )
        over = np.abs(v) > self._vmax * (1 + 1e-9) + 1e-12
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise self._trip(
                "velocity_limit",
                f"{JOINT_NAMES[i]} rate {v[i]:.4g} above the limit "
                f"{self._vmax[i]:.4g} (velocity_scale {self.config.velocity_scale})",
            )

    # ------------------------------------------------------------ Rig API
    def read_state(self) -> RigState:
        """The backend's state, checked (limits, workspace, depth, force, watchdog); a trip gives ``status="estop"``."""
        state = self.rig.read_state()
        self._last_state = state
        if self.trip is None:
            self._check_state(state)
        if self.trip is not None:
            return dataclasses.replace(state, status="estop", message=str(self.trip))
        return state

    def command(self, cmd: RigCommand) -> None:
        """Checks the rates and where they would take the rig within ``lookahead_s``, then passes the command on; a
        failed check trips (raised). A stop (zero rates or duration) always passes while not latched.
        """
        self._refuse_if_latched()
        v = cmd.velocity.as_array()
        dur = float(cmd.duration_s)
        if not math.isfinite(dur) or dur < 0:
            raise self._trip("velocity_limit", f"command duration {cmd.duration_s!r} s is not a finite time >= 0")
        state = self._last_state or self.rig.read_state()
        now = self._now(state)
        if not np.any(v) or dur == 0.0:
            self._to_backend(self.rig.command, RigCommand(JointVector(), dur))
            self._deadline = None
            return
        self._check_rates(v)
        q = state.joints.as_array()
        q_end = q + v * min(dur, self.config.lookahead_s)
        prob = self._position_problem(q_end, "command would put the rig at")
        if prob is not None:
            raise self._trip(*prob)
        self._to_backend(self.rig.command, cmd)
        self._deadline = now + self.config.command_timeout_s

    def move_to(self, target: JointVector, speed_mm_s: float = 5.0) -> None:
        """Checks the target (limits, workspace, depth, fixed joints) and the speed, then starts the move; the watchdog
        allows the move's duration plus ``command_timeout_s``.
        """
        self._refuse_if_latched()
        q_t = target.as_array()
        if not np.all(np.isfinite(q_t)) or not (math.isfinite(speed_mm_s) and speed_mm_s > 0):
            raise self._trip("joint_limit", f"move_to target {target} / speed {speed_mm_s!r} is not finite")
        prob = self._position_problem(q_t, "move_to target")
        if prob is not None:
            raise self._trip(*prob)
        state = self._last_state or self.rig.read_state()
        dq = np.abs(q_t - state.joints.as_array())
        movable = np.isin(np.array(JOINT_NAMES), np.array(self.movable_joints, dtype=object))
        fixed = [
            n for n, d, m in zip(JOINT_NAMES, dq, movable, strict=True) if not m and d > self.config.limit_tolerance
        ]
        if fixed:
            raise self._trip(
                "immovable_joint",
                f"move_to changes {fixed}, which this rig cannot move (movable: {list(self.movable_joints)})",
            )
        lin = _LINEAR & movable  # a fixed joint's velocity limit is 0 and must not cap the move speed
        lin_max = float(np.min(self._vmax[lin])) if lin.any() else math.inf
        if speed_mm_s > lin_max * (1 + 1e-9):
            raise self._trip("velocity_limit", f"move_to speed {speed_mm_s} mm/s above the limit {lin_max:.4g} mm/s")
        vmax = np.where(_LINEAR, np.minimum(self._vmax, speed_mm_s), self._vmax)
        eta = float(np.max(np.where(movable, dq / np.maximum(vmax, 1e-9), 0.0)))
        self._to_backend(self.rig.move_to, target, speed_mm_s)
        self._deadline = self._now(state) + eta + self.config.command_timeout_s

    def _to_backend(self, call: Callable, *args) -> None:
        """``call(*args)`` on the backend; its failure is the ``backend`` trip (raised), with the rig stopped
        if the backend still takes a stop.
        """
        try:
            call(*args)
        except SafetyTrip:
            raise
        except IrRobotError as exc:
            try:
                trip = self._trip("backend", f"the rig failed a {getattr(call, '__name__', 'call')}: {exc}")
            except IrRobotError:  # the stop failed too (the line is gone): the trip is latched all the same
                assert self.trip is not None  # _trip latches it before it stops the rig
                trip = self.trip
            raise trip from exc

    def stop(self, reason: str = "") -> None:
        """Halts the backend and disarms the watchdog (not a trip: nothing latches)."""
        self._deadline = None
        self.rig.stop(reason)

    def close(self) -> None:
        """Disarms the watchdog and closes the backend."""
        self._deadline = None
        self.rig.close()

    # simulated-clock passthrough (SimRig); real rigs advance with the wall clock
    def advance(self, dt: float):
        """Advances a simulated backend's clock by ``dt``; ConfigError for a wall-clock rig, which has none."""
        advance = getattr(self.rig, "advance", None)
        if advance is None:
            raise ConfigError(f"{type(self.rig).__name__} has no simulated clock (advance); use a wall-clock runner")
        return advance(dt)
