"""The serial rig backend: a GRBL 1.1 board (+ HX711 load cell) behind the Rig interface.

:class:`GrblRig` is the :class:`~ir_robot.devices.base.Rig` adapter; the pieces under it:

* :mod:`.grbl_board` -- :class:`~ir_robot.devices.grbl_board.GrblBoard`, the connected board
  GrblRig extends: wake-up and settings check, homing, unlock, real-time bytes, waits;
* :mod:`.serial_port` -- opening the port (errors that name the port and the fix), locked writes;
* :mod:`.grbl_link` -- streaming with GRBL's character-counting protocol (never more than
  the RX budget of unacknowledged bytes), pending lines and acks, faults, resets and
  latches, the board's last status;
* :mod:`.grbl_threads` -- the reader thread, the status poller / watchdog (no status
  reply for ``grbl.status_timeout_s``, a silent load cell, or no banner after a
  reset -> halt and a fault naming the port and the fix) and the force trip (each
  load-cell sample above ``loadcell.force_limit_n`` writes ``!`` then 0x18 at once);
* :mod:`.loadcell` -- the HX711 reader.

Commands map to GRBL as:

* ``command(RigCommand)`` -> ``$J=G91 G21 X.. Y.. Z.. F..`` with distance = rate *
  duration and F = the vector speed in mm/min, clipped to the axis max rates and
  ``max_speed_mm_s`` (direction kept); a zero command -> jog cancel (0x85).
* ``jog(joint, distance_mm, speed_mm_s)`` -> ``$J=G90 G21 G53 X.. F..`` to the end point;
  an end outside the travel is refused at once, before anything is sent.
* ``move_to`` -> ``G90 G21 G53 G1 X.. Y.. Z.. F..`` (absolute, machine coordinates).
* ``stop`` -> ``!`` (feed hold) then 0x18 (soft reset); the rig stays stopped
  ("estop") until :meth:`GrblRig.home` or :meth:`GrblRig.unlock`.

Joints are computed from machine position (``MPos``, or ``WPos + WCO``) with the
mapping of :class:`ir_robot.devices.config.RigConfig`. Every deadline, timeout and
stamp comes from ``clock`` (``time.monotonic`` by default).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ir_robot.core.errors import RigError, SafetyTrip
from ir_robot.core.types import JointVector, RigCommand, RigState
from ir_robot.devices import grbl as P
from ir_robot.devices.base import Rig
from ir_robot.devices.config import AXES, FIXED_JOINTS, RigConfig, load_rig_config
from ir_robot.devices.grbl_board import GrblBoard
from ir_robot.devices.grbl_link import StreamResult
from ir_robot.devices.serial_port import open_serial

__all__ = ["GrblRig", "StreamResult", "check_travel", "open_serial"]

_CONFIG = object()

#: how far inside GRBL's soft-limit travel a jog target is kept (mm; GRBL's resolution is 0.001)
_TRAVEL_MARGIN_MM = 0.005


def _mm(value: float) -> str:
    return repr(round(float(value), 3) + 0.0)  # 502.0, 0.125, never -0.0


def check_travel(config: RigConfig, joint: str, end: float, how: str = "") -> None:
    """Refuse (RigError) a joint end point outside the rig's travel, naming the joint, its range and the end.

    The travel is the soft-limit travel ``MPos in [-max_travel_mm, 0]`` in joint
    units (``joint = offset_mm + sign * MPos``), as ``ir-robot rig`` and
    :meth:`GrblRig.limits` give it. ``how`` says where the end comes from.
    """
    lo, hi = config.joint_limits()
    a, b = getattr(lo, joint), getattr(hi, joint)
    if not (a - 1e-9 <= end <= b + 1e-9) or not math.isfinite(end):
        raise RigError(
            f"{joint}: requested end {_mm(end)} mm is outside the travel [{_mm(a)}, {_mm(b)}] mm"
            + (f" ({how})" if how else "")
            + "; the travel comes from config/rig.yaml grbl axes (offset_mm, sign, max_travel_mm)"
        )


class GrblRig(GrblBoard, Rig):
    """The benchtop rig on a GRBL 1.1 board, a drop-in :class:`ir_robot.devices.base.Rig`.

    ``GrblRig(config, port=None, loadcell_port=<config>)`` opens and checks the
    board at once (``connect=False`` to call :meth:`connect` later). Every failure
    is a :class:`RigError` naming the port and the likely fix. ``clock`` gives every
    deadline and stamp (``time.monotonic``; ``RigState.stamp_s`` is on it).
    """

    def __init__(
        self,
        config: RigConfig | None = None,
        port: str | None = None,
        loadcell_port: Any = _CONFIG,
        *,
        connect: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        config = config if config is not None else load_rig_config()
        super().__init__(
            config,
            port or config.grbl.port,
            config.loadcell.port if loadcell_port is _CONFIG else loadcell_port,
            clock,
        )
        self.movable_joints = self.config.axis_joints
        self.last_command_scale = 1.0
        self._jog_deltas: collections.deque = collections.deque(maxlen=64)  # axis deltas (mm) of the jogs sent
        self.jogs_skipped = 0  # rate commands not sent because the planner held enough jog motion
        self.jogs_clipped = 0  # jogs shortened to keep their target inside the soft-limit travel
        if connect:
            self.connect()

    # ================================================================== Rig interface
    def _check_ready(self) -> None:
        link = self.link
        with link.cond:
            if link.fault is not None:
                raise link.fault
            if link.estop_reason is not None:
                if link.trip is not None and link.estop_reason == "force":
                    raise link.trip
                raise RigError(
                    f"rig on {self.port} is stopped ({link.estop_reason}); unlock() or home() "
                    "(`ir-robot rig home`) before moving again"
                )
            if link.alarm is not None:
                raise link.alarm
            if link.status is not None and link.status.state in ("Alarm", "Sleep"):
                raise RigError(
                    f"GRBL on {self.port} is in {link.status.state} (locked, e.g. after power-up with homing "
                    "enabled): home() (`ir-robot rig home`) or unlock() first"
                )
            if link.resetting:
                raise RigError(f"GRBL on {self.port} is resetting; retry in a moment")

    def read_state(self) -> RigState:
        """Joints and axis velocity of the last status report (stamped with its arrival), force, status."""
        link = self.link
        with link.cond:
            report, mpos, t = link.status, link.mpos, link.status_t
            axis_vel = link.axis_vel.copy()
            fault, estop, alarm, trip = link.fault, link.estop_reason, link.alarm, link.trip
        if mpos is None:
            joints = self.config.joints_from_mpos(np.zeros(3))
        else:
            joints = self.config.joints_from_mpos(mpos)
        velocity = self.config.joint_rates_from_axis_rates(axis_vel)
        force = self._loadcell.latest()[1] if self._loadcell is not None else float("nan")
        state = report.state if report is not None else "Unknown"
        moving = state in ("Run", "Jog", "Home") or (state == "Hold" and report is not None and report.substate == 1)
        if fault is not None or estop is not None:
            status = "estop"
        elif state in ("Alarm", "Sleep"):
            status = "alarm"
        elif state in ("Hold", "Door"):
            status = "hold"
        elif moving:
            status = "moving"
        else:
            status = "idle"
        if fault is not None:
            message = str(fault)
        elif estop is not None:
            message = str(trip) if (trip is not None and estop == "force") else f"stopped: {estop}"
        elif alarm is not None:
            message = str(alarm)
        else:
            message = report.full_state if report is not None else ""
        return RigState(
            stamp_s=t,
            joints=joints,
            velocity=velocity,
            force_n=float(force),
            moving=moving,
            status=status,
            message=message,
        )

    def _check_fixed(self, values: JointVector, what: str, rates: bool) -> None:
        for name in FIXED_JOINTS:
            v = getattr(values, name)
            fixed = 0.0 if rates else getattr(self.config.fixed, name)
            if abs(v - fixed) > 1e-6:
                unit = "/s" if rates else ""
                raise RigError(
                    f"{name} is fixed on this rig (GRBL axes drive only {', '.join(self.movable_joints)}; "
                    f"{name} = {getattr(self.config.fixed, name)} from config/rig.yaml fixed.{name}); "
                    f"the {what} asks {v:g}{unit} for it"
                )

    def command(self, cmd: RigCommand) -> None:
        """Jog at the joint rates for ``cmd.duration_s`` (one ``$J=`` block); a zero command cancels the jog."""
        rates = self.config.axis_rates_from_joint_rates(cmd.velocity)
        zero = cmd.duration_s <= 0 or not np.any(np.abs(rates) > 1e-9)
        self._check_fixed(cmd.velocity, "rate command", rates=True)
        if zero:
            self.jog_cancel()
            return
        if not math.isfinite(cmd.duration_s) or not np.all(np.isfinite(rates)):
            raise RigError(f"non-finite rate command {cmd}")
        self._check_retract_only(cmd.velocity.insert_mm > 1e-9)
        self._check_ready()
        limits = np.array([min(ax.max_rate_mm_min / 60.0, self.config.max_speed_mm_s) for ax in self.config.grbl.axes])
        speed = np.abs(rates)
        scale = float(min(1.0, np.min(np.where(speed > 0, limits / np.maximum(speed, 1e-12), np.inf))))
        rates = rates * scale
        self.last_command_scale = scale
        deltas = rates * cmd.duration_s
        if not np.any(np.abs(deltas) >= 0.0005):
            return  # less than GRBL's 0.001 mm resolution: nothing to do
        if self.jog_backlog() >= self.config.grbl.jog_queue_blocks:
            # GRBL runs jogs one after another at their own feed: the stage never catches up with motion
            # queued while it accelerated or reversed, so a steady command stream would lag ever more.
            # The queue already holds the motion of the last few commands: skip this one.
            self.jogs_skipped += 1
            return
        deltas = self._within_travel(deltas)
        if not np.any(np.abs(deltas) >= 0.0005):
            return  # no room left in the travel in the commanded direction
        feed = float(np.linalg.norm(deltas)) / cmd.duration_s * 60.0
        line = P.format_jog({a: float(d) for a, d in zip(AXES, deltas, strict=True)}, feed)
        self.send(line)
        with self.link.cond:
            self.link.jogs_after_status += 1
            self._jog_deltas.append(deltas)

    def _within_travel(self, deltas: np.ndarray) -> np.ndarray:
        """A jog's axis deltas shrunk, axis by axis, so that its target stays inside the soft-limit travel
        (``MPos in [-max_travel_mm, 0]``) wherever the jogs still queued in GRBL's planner end. GRBL plans a
        jog from the end of the queued ones and refuses one whose target is outside (error:15); the host
        sees the stage only in status reports a poll late, so a rate command that the safety layer
        saturated at the joint limit from the last report can still overshoot the travel. The queued jogs
        are the last ``jog_backlog()`` sent (without ``Bf`` in the reports: those since the last report plus
        ``jog_queue_blocks``); their unexecuted part is bounded by their whole deltas.
        """
        if not self.config.grbl.soft_limits:
            return deltas
        link = self.link
        with link.cond:
            mpos, report, after = link.mpos, link.status, link.jogs_after_status
            pending = list(self._jog_deltas)
        if mpos is None:
            return deltas
        if report is not None and report.planner_blocks_free is not None:
            k = self.jog_backlog()
        else:  # no Bf in the reports ($10 without the buffer bit): assume a full jog queue before them
            k = after + self.config.grbl.jog_queue_blocks
        k = min(k, len(pending))
        queued = np.array(pending[len(pending) - k :], dtype=float).reshape(-1, 3)
        end_hi = mpos + np.clip(queued, 0.0, None).sum(axis=0)  # the furthest the queued jogs can take it
        end_lo = mpos + np.clip(queued, None, 0.0).sum(axis=0)
        travel = np.array([ax.max_travel_mm for ax in self.config.grbl.axes], dtype=float)
        room_up = np.maximum(-_TRAVEL_MARGIN_MM - end_hi, 0.0)
        room_down = np.minimum(-travel + _TRAVEL_MARGIN_MM - end_lo, 0.0)
        clipped = np.clip(deltas, room_down, room_up)
        if not np.array_equal(clipped, deltas):
            self.jogs_clipped += 1
        return clipped

    def jog_backlog(self) -> int:
        """Jog blocks waiting in GRBL's planner: the last status report's ``Bf`` plus the jogs accepted since
        (0 when the reports carry no buffer state: set ``$10`` to include it).
        """
        link = self.link
        with link.cond:
            report, after = link.status, link.jogs_after_status
        free = report.planner_blocks_free if report is not None else None
        if report is None or free is None:
            return 0
        options = link.options
        size = options.planner_blocks if options is not None and options.planner_blocks is not None else 15
        queued = 0 if report.state in ("Idle", "Alarm", "Sleep") else max(0, size - free)
        return queued + after

    def jog(self, joint: str, distance_mm: float, speed_mm_s: float = 2.0) -> float:
        """Move one joint by ``distance_mm`` (joint units, from where the last status report has it) at
        ``speed_mm_s`` (capped by the axis max rate and ``max_speed_mm_s``): one ``$J=`` jog to the end
        point in machine coordinates. An end outside the travel is refused at once (RigError naming the
        joint, its range and the end) and nothing is sent. Returns the seconds the jog takes at its speed
        (without the ramps); poll ``read_state().moving`` or :meth:`wait_idle`.
        """
        if joint not in self.movable_joints:
            if joint in FIXED_JOINTS:
                raise RigError(
                    f"{joint} is fixed on this rig (GRBL axes drive only {', '.join(self.movable_joints)}); "
                    "it cannot be jogged"
                )
            raise RigError(f"jog: unknown joint {joint!r}; this rig moves {', '.join(self.movable_joints)}")
        if not (math.isfinite(distance_mm) and distance_mm != 0):
            raise RigError(f"jog distance must be a non-zero number of mm, got {distance_mm!r}")
        if not (speed_mm_s > 0 and math.isfinite(speed_mm_s)):
            raise RigError(f"jog speed must be > 0 mm/s, got {speed_mm_s!r}")
        start = getattr(self.read_state().joints, joint)
        end = start + distance_mm
        check_travel(self.config, joint, end, f"jog from {_mm(start)} mm by {_mm(distance_mm)} mm")
        self._check_retract_only(joint == "insert_mm" and distance_mm > 0)
        self._check_ready()
        i = self.movable_joints.index(joint)
        ax = self.config.grbl.axes[i]
        speed = min(speed_mm_s, ax.max_rate_mm_min / 60.0, self.config.max_speed_mm_s)
        target = (end - ax.offset_mm) * ax.sign
        self.send(f"$J=G90 G21 G53 {AXES[i]}{P.format_number(target)} F{P.format_number(speed * 60.0, 1)}")
        return abs(distance_mm) / speed

    def move_to(self, target: JointVector, speed_mm_s: float = 5.0) -> None:
        """Absolute coordinated move (``G90 G53 G1``); returns once GRBL has planned it.

        A target outside the travel is refused at once (RigError naming the joint, its
        range and the requested end) and nothing is sent.
        """
        self._check_fixed(target, "move_to target", rates=False)
        for name in self.movable_joints:
            check_travel(self.config, name, getattr(target, name), "move_to")
        if not (speed_mm_s > 0 and math.isfinite(speed_mm_s)):
            raise RigError(f"move_to speed must be > 0 mm/s, got {speed_mm_s!r}")
        if self._loadcell is not None and not self.link.force_armed:
            current = self.read_state().joints.insert_mm
            self._check_retract_only(target.insert_mm > current + 1e-6)
        self._check_ready()
        with self.link.cond:
            jogging = self.link.status is not None and self.link.status.state == "Jog"
        if jogging:
            self.jog_cancel()
            self.wait_idle(timeout=5.0)
        mpos = self.config.mpos_from_joints(target)
        feed = min(speed_mm_s, self.config.max_speed_mm_s) * 60.0
        self.send(P.format_move({a: float(m) for a, m in zip(AXES, mpos, strict=True)}, feed))

    def _check_retract_only(self, inserting: bool) -> None:
        if inserting and not self.link.force_armed and self._loadcell is not None:
            force = self._loadcell.latest()[1]
            raise SafetyTrip(
                "force",
                f"needle force is still {force:.2f} N after a force trip: only retraction "
                "(insert_mm decreasing) is allowed until it falls below "
                f"{0.8 * self.config.loadcell.force_limit_n:.2f} N",
            )

    def stop(self, reason: str = "") -> None:
        """E-stop: feed hold ``!`` then soft reset 0x18; the rig stays stopped until home() or unlock()."""
        link = self.link
        t = self.clock()
        live = link.fault is None and link.transport.ser is not None
        if live and link.resetting and t - link.reset_t < self.config.grbl.wake_timeout_s:
            # a reset is already on its way: repeat only the (idempotent) feed hold, so a second
            # stop() cannot make a second banner arrive after the caller has started talking again
            delivered = link.halt_bytes(P.FEED_HOLD)
            link.halts.append((t, reason or "stop", delivered))
            with link.cond:
                link.estop_reason = link.estop_reason or reason or "stop"
            return
        if live:
            link.mark_resetting()
        delivered = link.halt_bytes()
        link.halts.append((t, reason or "stop", delivered))
        with link.cond:
            link.estop_reason = reason or "stop"
            if live:
                link.drop_inflight_locked(f"stop: {reason}" if reason else "stop")

    def limits(self) -> tuple[JointVector, JointVector]:
        """(lower, upper) joint limits: the soft-limit travel in joint units, fixed joints at their values."""
        return self.config.joint_limits()

    def velocity_limits(self) -> JointVector:
        """Joint speed limits (mm/s): each axis's max rate capped by ``max_speed_mm_s``; 0 for fixed joints."""
        return self.config.joint_speed_limits()

    def wait_idle(self, timeout: float = 30.0) -> RigState:
        """Block until GRBL reports Idle with nothing queued (a report newer than the call)."""
        link = self.link
        t0 = self.clock()
        deadline = t0 + timeout
        try:
            link.write(P.STATUS_QUERY)
        except RigError:
            pass
        with link.cond:
            while True:
                if link.fault is not None:
                    raise link.fault
                s = link.status
                if s is not None and link.status_t > t0:
                    if s.state == "Idle" and link.counter.outstanding == 0:
                        break
                    if s.state == "Alarm" and link.alarm is not None:
                        raise link.alarm
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise RigError(f"GRBL on {self.port} still {s.full_state if s else 'silent'} after {timeout:.1f} s")
                link.cond.wait(min(remaining, 0.05))
        return self.read_state()

    # ================================================================== shutdown
    def close(self) -> None:
        """Stop motion if any (e-stop), stop the threads and release both ports."""
        if self.link.closing:
            return
        state = self.read_state() if self.link.transport.ser is not None else None
        if state is not None and state.moving and self.link.fault is None:
            self.stop("close")
        self._shutdown()
