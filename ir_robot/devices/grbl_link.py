"""Streaming to one GRBL 1.1 board: character counting, pending lines, acks, and the latches that gate them.

:class:`GrblLink` is the host's side of the serial line to the board, shared by
the threads of :class:`~ir_robot.devices.serial_rig.GrblRig`:

* **streaming** -- :meth:`GrblLink.send` / :meth:`GrblLink.stream` send lines with
  GRBL's character-counting protocol (never more than the RX budget of
  unacknowledged bytes); every ``ok``/``error:N`` the reader hands to :meth:`GrblLink.on_ack`
  frees the oldest line and wakes whoever waits for it;
* **latches** -- a fault (port lost, watchdog, corrupt link, a line never
  acknowledged) fails every pending line and halts the board (feed hold + soft
  reset, best effort); a soft reset makes acks stale until the banner comes back;
  an alarm, an e-stop and a force trip are remembered until cleared;
* **what the board told us** -- the last status report, position, version,
  settings and messages, updated by the reader thread under :attr:`GrblLink.cond`.

Every deadline and stamp comes from ``clock`` (``time.monotonic`` by default).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ir_robot.core.errors import ProtocolError, RigError, SafetyTrip
from ir_robot.devices import grbl as P
from ir_robot.devices.config import RigConfig
from ir_robot.devices.serial_port import SerialTransport

log = logging.getLogger("ir_robot.devices.serial_rig")

Clock = Callable[[], float]


class Pending:
    """One line sent to GRBL and waiting for its ok/error."""

    __slots__ = ("line", "event", "error", "pushes", "t_sent", "t_done", "_clock")

    def __init__(self, line: str, clock: Clock):
        self.line = line
        self.event = threading.Event()
        self.error: BaseException | None = None
        self.pushes: list = []
        self._clock = clock
        self.t_sent = clock()
        self.t_done: float | None = None

    def finish(self, error: BaseException | None = None) -> None:
        """The board answered (``error`` set for error:N, a reset or a fault): wake the waiter."""
        self.error = error
        self.t_done = self._clock()
        self.event.set()


@dataclass
class StreamResult:
    """Outcome of :meth:`GrblRig.stream`: line counts and the errors by line index."""

    sent: int = 0
    ok: int = 0
    errors: list[tuple[int, P.GrblCommandError]] = field(default_factory=list)
    max_in_flight_bytes: int = 0
    elapsed_s: float = 0.0


class GrblLink:
    """The serial line to one GRBL board: transport, line stream, latches and the board's last word.

    Attributes that threads share are read and written under :attr:`cond` (a
    condition every waiter sleeps on), except the few plain flags documented at
    :meth:`mark_resetting`.
    """

    def __init__(self, config: RigConfig, port: str, clock: Clock) -> None:
        self.config = config
        self.port = port
        self.clock = clock
        self.transport = SerialTransport(port, "GRBL board")
        self.cond = threading.Condition()
        self.counter = P.CharacterCounter(config.grbl.rx_buffer_bytes)
        self.banner = threading.Event()
        self.closing = False
        self.connected = False
        # what the board told us
        self.version: str | None = None
        self.build: P.Version | None = None
        self.options: P.Options | None = None
        self.settings: dict[int, float] = {}
        self.messages: collections.deque = collections.deque(maxlen=50)
        self.gc_state: P.GcState | None = None
        self.status: P.StatusReport | None = None
        self.status_t = 0.0
        self.status_seq = 0
        self.mpos: np.ndarray | None = None
        self.wco: tuple[float, ...] | None = None
        self.axis_vel = np.zeros(3)
        self.last_status_rx = clock()
        self.jogs_after_status = 0  # jog blocks GRBL accepted after the last status report
        # faults and latches
        self.fault: RigError | None = None
        self.fault_time: float | None = None
        self.estop_reason: str | None = None
        self.trip: SafetyTrip | None = None
        self.alarm: P.GrblAlarm | None = None
        self.alarm_t = 0.0
        self.resetting = False
        self.reset_t = 0.0
        self.watchdog_suspended = 0
        self.force_armed = True
        self.halts: list[tuple[float, str, bool]] = []  # (time, reason, bytes delivered)
        self.protocol_errors: collections.deque = collections.deque(maxlen=200)
        self.protocol_error_count = 0
        self._perr_times: collections.deque = collections.deque()
        self.wake_lines: list[bytes] = []
        self.rx_bytes = 0
        self.fault_callbacks: list[Callable[[RigError], None]] = []

    # ================================================================== writes
    def write(self, data: bytes) -> None:
        """Write bytes; a failed write is a fault (port lost) and raises it."""
        failure = self.transport.write(data)
        if failure is not None:  # outside the write lock: the fault path writes the halt bytes
            self.on_port_lost(failure)
            raise self._current_fault() from None

    def halt_bytes(self, data: bytes = P.FEED_HOLD + P.SOFT_RESET) -> bool:
        """Feed hold then soft reset, best effort; True when the bytes reached the port."""
        return self.transport.try_write(data)

    def _current_fault(self) -> RigError:
        fault = self.fault
        assert fault is not None
        return fault

    # ================================================================== streaming
    def send_line(self, line: str, timeout: float | None = None) -> Pending:
        """Send one line once it fits the RX budget (waits for acks to free room); returns its Pending."""
        data = P.check_line(line)
        timeout = self.config.grbl.ack_timeout_s if timeout is None else timeout
        deadline = self.clock() + timeout
        with self.cond:
            while True:
                if self.fault is not None:
                    raise self.fault
                if self.resetting:
                    pass
                elif self.counter.fits(len(data)):
                    break
                remaining = deadline - self.clock()
                if remaining <= 0:
                    what = (
                        "to finish resetting"
                        if self.resetting
                        else f"to free its RX buffer ({self.counter.used} bytes in flight)"
                    )
                    self.fault_locked(
                        f"GRBL on {self.port} did not answer within {timeout:.1f} s {what}; "
                        "the board is hung or the link lost bytes"
                    )
                    raise self._current_fault()
                self.cond.wait(min(remaining, 0.05))
            pending = Pending(line, self.clock)
            self.counter.push(line, len(data), pending)
            self.write(data)
        return pending

    def wait(self, pending: Pending, timeout: float | None = None) -> list:
        """Wait for a line's ok (returns its pushes); raises its error, an alarm since it was sent, or a fault."""
        timeout = self.config.grbl.ack_timeout_s if timeout is None else timeout
        deadline = self.clock() + timeout
        with self.cond:
            while not pending.event.is_set():
                if self.fault is not None:
                    raise self.fault
                if self.alarm is not None and self.alarm_t >= pending.t_sent:
                    raise self.alarm
                remaining = deadline - self.clock()
                if remaining <= 0:
                    self.fault_locked(
                        f"GRBL on {self.port} did not acknowledge {pending.line!r} within {timeout:.1f} s "
                        "(board hung, or an ok was lost on the link)"
                    )
                    raise self._current_fault()
                self.cond.wait(min(remaining, 0.05))
        if pending.error is not None:
            raise pending.error
        return pending.pushes

    def send(self, line: str, timeout: float | None = None) -> list:
        """Send one line and wait for its ``ok``; returns the pushes that came with it ($$, $I, $G...)."""
        return self.wait(self.send_line(line, timeout), timeout)

    def stream(self, lines: Iterable[str], stop_on_error: bool = False, timeout: float | None = None) -> StreamResult:
        """Stream lines with character counting; returns counts and the errors by line index."""
        t0 = self.clock()
        result = StreamResult()
        pendings: collections.deque = collections.deque()

        def harvest(block: bool) -> bool:
            while pendings and (block or pendings[0][1].event.is_set()):
                i, p = pendings.popleft()
                try:
                    self.wait(p, timeout)
                    result.ok += 1
                except P.GrblCommandError as exc:
                    result.errors.append((i, exc))
                    if stop_on_error:
                        return False
            return True

        for i, line in enumerate(lines):
            pendings.append((i, self.send_line(line, timeout)))
            result.sent += 1
            if not harvest(False):
                break
        harvest(True)
        with self.cond:
            result.max_in_flight_bytes = self.counter.max_used
        result.elapsed_s = self.clock() - t0
        return result

    def on_ack(self, msg: P.Ok | P.ErrorReply, t: float) -> None:
        """``ok``/``error:N`` from the board: free the oldest line and finish it (stale during a reset)."""
        with self.cond:
            if self.resetting:
                return  # answer to a line the reset already discarded
            try:
                line, pending = self.counter.pop()
            except ProtocolError as exc:
                self.on_protocol_error(exc, t)
                return
            if isinstance(msg, P.ErrorReply):
                err = P.GrblCommandError(msg.code, line, self.port)
                if msg.code in (8, 9) and self.status is not None:
                    err.args = (f"{err.args[0]} (GRBL state: {self.status.full_state})",)
                pending.finish(err)
            else:
                pending.finish()
            self.cond.notify_all()

    def add_push(self, msg: Any) -> None:
        """A message that answers the line at the head of the stream ($$ settings, [VER:], [GC:] ...)."""
        with self.cond:
            head = self.counter.head()
            if head is not None and not self.resetting:
                head[1].pushes.append(msg)

    # ================================================================== faults and resets
    def on_protocol_error(self, exc: ProtocolError, t: float) -> None:
        """A malformed line: recorded; too many within a second is a corrupt link (fault)."""
        self.protocol_errors.append(exc)
        self.protocol_error_count += 1
        if not self.connected:
            return  # collected for the wake-up diagnosis
        self._perr_times.append(t)
        if len(self._perr_times) <= 3:
            log.warning("%s", exc)
        while self._perr_times and t - self._perr_times[0] > 1.0:
            self._perr_times.popleft()
        if len(self._perr_times) > self.config.grbl.max_protocol_errors:
            self.declare_fault(
                f"the link to GRBL on {self.port} is corrupt: {len(self._perr_times)} malformed lines within 1 s "
                f"(last: {exc}). Likely a baud mismatch, another program on the port, or a bad USB cable"
            )

    def on_port_lost(self, exc: BaseException) -> None:
        """The port vanished (read or write failed): a fault."""
        self.declare_fault(
            f"GRBL port {self.port} vanished ({exc}): the USB cable was unplugged or the board lost power. "
            "Motion could not be confirmed stopped: check the rig (hit the e-stop button if it still moves), "
            "reconnect and home"
        )

    def fault_locked(self, message: str) -> bool:
        """Record a fault (caller holds the condition). Returns False if one was already recorded."""
        if self.fault is not None:
            return False
        self.fault = RigError(message)
        self.fault_time = self.clock()
        self.estop_reason = self.estop_reason or "fault"
        for _line, pending in self.counter.clear():
            pending.finish(self.fault)
        self.cond.notify_all()
        return True

    def declare_fault(self, message: str) -> None:
        """Record a fault, attempt the halt bytes and tell the fault callbacks (once)."""
        with self.cond:
            new = self.fault_locked(message)
        if not new:
            return
        fault = self._current_fault()
        t = self.clock()
        delivered = self.halt_bytes()
        self.halts.append((t, "fault", delivered))
        log.error("%s", fault)
        for fn in list(self.fault_callbacks):
            try:
                fn(fault)
            except Exception:
                log.exception("fault callback failed")

    def mark_resetting(self) -> None:
        """Call *before* writing 0x18: from now on acks are stale until the banner comes back.

        Plain attribute writes (no lock) so the e-stop and force paths stay fast;
        the banner can only clear the flag after the reset bytes went out.
        """
        now = self.clock()
        self.banner.clear()
        self.reset_t = now
        self.last_status_rx = now
        self.resetting = True

    def drop_inflight_locked(self, reason: str) -> None:
        """Fail every line in flight: a reset discards GRBL's RX buffer and planner."""
        err = RigError(f"line discarded: GRBL on {self.port} was reset ({reason})")
        for _line, pending in self.counter.clear():
            pending.finish(err)
        self.cond.notify_all()

    def request_reset(self, reason: str) -> None:
        """Soft reset (0x18) unless one is already on its way; lines in flight fail."""
        with self.cond:
            if self.resetting:
                return  # one reset at a time (ALARM:2 is followed by [MSG:Reset to continue])
            self.mark_resetting()
            self.drop_inflight_locked(reason)
        try:
            self.write(P.SOFT_RESET)
        except RigError:
            pass

    def wait_banner_if_resetting(self) -> None:
        """After a soft reset, wait for the banner (a RigError if it does not come)."""
        with self.cond:
            resetting = self.resetting
        if resetting and not self.banner.wait(self.config.grbl.wake_timeout_s):
            raise RigError(f"GRBL on {self.port} did not come back from a soft reset (no banner)")

    def wait_status_after(self, t0: float, timeout: float = 2.0) -> P.StatusReport:
        """A status report received after ``t0`` (asks for one at once)."""
        deadline = self.clock() + timeout
        try:
            self.write(P.STATUS_QUERY)  # do not wait for the next poll (GRBL drops duplicate queries)
        except RigError:
            pass
        with self.cond:
            while self.status is None or self.status_t <= t0:
                if self.fault is not None:
                    raise self.fault
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise RigError(f"no status report from GRBL on {self.port} within {timeout:.1f} s")
                self.cond.wait(min(remaining, 0.05))
            return self.status
