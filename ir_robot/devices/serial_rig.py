"""The serial rig backend: a GRBL 1.1 board (+ HX711 load cell) behind the Rig interface.

Threads (all daemons, stopped by :meth:`GrblRig.close`):

* **reader** -- reads the GRBL port, splits lines, parses them (:mod:`.grbl`) and
  dispatches: ``ok``/``error:N`` free the oldest line of the character counter,
  ``<...>`` updates the state, ``ALARM:N`` latches an alarm, pushes are kept.
  A vanished port (unplugged cable) is a fault within one read timeout: the
  host reports it and attempts a feed hold + soft reset.
* **poller** -- sends ``?`` at ``grbl.status_poll_hz`` (5 Hz) and is the watchdog:
  no status reply for ``grbl.status_timeout_s`` (0.5 s), a silent load cell, or
  no banner after a reset -> halt and a fault naming the port and the fix.
* **load cell** -- :class:`ir_robot.devices.loadcell.LoadCell`; each sample above
  ``loadcell.force_limit_n`` writes ``!`` then 0x18 to GRBL from that thread at once.

Streaming uses GRBL's character-counting protocol (never more than the RX
budget of unacknowledged bytes). Commands map to GRBL as:

* ``command(RigCommand)`` -> ``$J=G91 G21 X.. Y.. Z.. F..`` with distance = rate *
  duration and F = the vector speed in mm/min, clipped to the axis max rates and
  ``max_speed_mm_s`` (direction kept); a zero command -> jog cancel (0x85).
* ``move_to`` -> ``G90 G21 G53 G1 X.. Y.. Z.. F..`` (absolute, machine coordinates).
* ``stop`` -> ``!`` (feed hold) then 0x18 (soft reset); the rig stays stopped
  ("estop") until :meth:`GrblRig.home` or :meth:`GrblRig.unlock`.

Joints are computed from machine position (``MPos``, or ``WPos + WCO``) with the
mapping of :class:`ir_robot.devices.config.RigConfig`.
"""

from __future__ import annotations

import collections
import errno
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ir_robot.core.errors import ProtocolError, RigError, SafetyTrip
from ir_robot.core.types import JointVector, RigCommand, RigState
from ir_robot.devices import grbl as P
from ir_robot.devices.base import Rig
from ir_robot.devices.config import AXES, FIXED_JOINTS, RigConfig, load_rig_config

log = logging.getLogger(__name__)

_CONFIG = object()
_DIALOUT_FIX = "add your user to the dialout group (`sudo usermod -aG dialout $USER`, then log out and back in)"


def _open_error(port: str, what: str, baud: int, exc: BaseException) -> RigError:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.ENOENT,) or "No such file" in text:
        return RigError(
            f"{what} port {port} does not exist: is the board plugged in and powered? List the ports with "
            "`python -m serial.tools.list_ports -v` (an Arduino Uno shows as /dev/ttyACM0, CH340 clones as "
            "/dev/ttyUSB0) and pass --port or set it in config/rig.yaml"
        )
    if code in (errno.EACCES, errno.EPERM) or "ermission denied" in text:
        return RigError(f"permission denied opening the {what} port {port}: {_DIALOUT_FIX}")
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in text.lower():
        return RigError(
            f"{what} port {port} is in use by another program (a G-code sender, the Arduino serial monitor, "
            "screen or another ir-robot): close it and retry"
        )
    if code in (errno.ENXIO, errno.ENODEV, errno.EIO):
        return RigError(f"{what} port {port} exists but the device is gone (unplugged or powered off): reconnect it")
    if code in (errno.ENOTTY, errno.EINVAL) or "Inappropriate ioctl" in text:
        return RigError(f"{port} is not a serial port ({text}); point --port at the {what}'s /dev/tty* device")
    return RigError(f"cannot open the {what} port {port} at {baud} baud: {text}")


def open_serial(port: str, baud: int, what: str = "serial device", timeout_s: float = 0.05):
    """Pyserial port opened exclusively, with errors that name the port and the fix."""
    import serial

    try:
        return serial.Serial(port=port, baudrate=baud, timeout=timeout_s, write_timeout=2.0, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise _open_error(port, what, baud, exc) from None


class _Pending:
    """One line sent to GRBL and waiting for its ok/error."""

    __slots__ = ("line", "event", "error", "pushes", "t_sent", "t_done")

    def __init__(self, line: str):
        self.line = line
        self.event = threading.Event()
        self.error: BaseException | None = None
        self.pushes: list = []
        self.t_sent = time.monotonic()
        self.t_done: float | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.t_done = time.monotonic()
        self.event.set()


@dataclass
class StreamResult:
    """Outcome of :meth:`GrblRig.stream`: line counts and the errors by line index."""

    sent: int = 0
    ok: int = 0
    errors: list[tuple[int, P.GrblCommandError]] = field(default_factory=list)
    max_in_flight_bytes: int = 0
    elapsed_s: float = 0.0


#: how far inside GRBL's soft-limit travel a jog target is kept (mm; GRBL's resolution is 0.001)
_TRAVEL_MARGIN_MM = 0.005


class GrblRig(Rig):
    """The benchtop rig on a GRBL 1.1 board, a drop-in :class:`ir_robot.devices.base.Rig`.

    ``GrblRig(config, port=None, loadcell_port=<config>)`` opens and checks the
    board at once (``connect=False`` to call :meth:`connect` later). Every failure
    is a :class:`RigError` naming the port and the likely fix.
    """

    def __init__(
        self, config: RigConfig | None = None, port: str | None = None, loadcell_port=_CONFIG, *, connect: bool = True
    ):
        self.config = config if config is not None else load_rig_config()
        g = self.config.grbl
        self.port = port or g.port
        self.loadcell_port = self.config.loadcell.port if loadcell_port is _CONFIG else loadcell_port
        self.movable_joints = self.config.axis_joints
        self._ser = None
        self._wlock = threading.Lock()
        self._cond = threading.Condition()
        self._counter = P.CharacterCounter(g.rx_buffer_bytes)
        self._banner = threading.Event()
        self._closing = False
        self._connected = False
        self._threads: list[threading.Thread] = []
        self._loadcell = None
        # what the board told us
        self.version: str | None = None
        self.build: P.Version | None = None
        self.options: P.Options | None = None
        self.settings: dict[int, float] = {}
        self.messages: collections.deque = collections.deque(maxlen=50)
        self.gc_state: P.GcState | None = None
        self._status: P.StatusReport | None = None
        self._status_t = 0.0
        self._status_seq = 0
        self._mpos: np.ndarray | None = None
        self._wco: tuple[float, ...] | None = None
        self._axis_vel = np.zeros(3)
        self._last_status_rx = time.monotonic()
        # faults and latches
        self._fault: RigError | None = None
        self.fault_time: float | None = None
        self._estop_reason: str | None = None
        self._trip: SafetyTrip | None = None
        self._alarm: P.GrblAlarm | None = None
        self._alarm_t = 0.0
        self._resetting = False
        self._reset_t = 0.0
        self._watchdog_suspended = 0
        self._force_armed = True
        self.halts: list[tuple[float, str, bool]] = []  # (time, reason, bytes delivered)
        self.protocol_errors: collections.deque = collections.deque(maxlen=200)
        self.protocol_error_count = 0
        self._perr_times: collections.deque = collections.deque()
        self._wake_lines: list[bytes] = []
        self._rx_bytes = 0
        self._fault_callbacks: list[Callable[[RigError], None]] = []
        self.last_command_scale = 1.0
        self._jogs_after_status = 0  # jog blocks GRBL accepted after the last status report
        self._jog_deltas: collections.deque = collections.deque(maxlen=64)  # axis deltas (mm) of the jogs sent
        self.jogs_skipped = 0  # rate commands not sent because the planner held enough jog motion
        self.jogs_clipped = 0  # jogs shortened to keep their target inside the soft-limit travel
        if connect:
            self.connect()

    # ================================================================== connection
    def connect(self) -> GrblRig:
        """Open the port, wake GRBL, read ``$I`` and ``$$``, check settings, start polling."""
        g = self.config.grbl
        try:
            self._ser = open_serial(self.port, g.baud, "GRBL board")
            self._start_thread(self._reader_loop, "grbl-reader")
            self._wake()
            self._read_build_info()
            self._read_settings()
            if self.loadcell_port:
                from ir_robot.devices.loadcell import LoadCell

                self._loadcell = LoadCell(self.config.loadcell, self.loadcell_port, on_sample=self._on_force_sample)
                self._loadcell.open(timeout_s=max(g.wake_timeout_s, 1.0))
            self._last_status_rx = time.monotonic()
            self._connected = True
            self._start_thread(self._poller_loop, "grbl-poller")
            self._wait_status_after(time.monotonic() - 1e-3, timeout=max(4 * g.status_timeout_s, 1.0))
        except BaseException:
            self._shutdown()
            raise
        return self

    def _start_thread(self, target, name: str) -> None:
        th = threading.Thread(target=target, name=f"{name}-{self.port}", daemon=True)
        self._threads.append(th)
        th.start()

    def _wake(self) -> None:
        g = self.config.grbl
        if not self._banner.wait(g.wake_timeout_s):
            # no banner: the board was not reset by opening the port (or it was missed); reset it
            self._write_raw(P.SOFT_RESET)
            if not self._banner.wait(g.wake_timeout_s):
                raise self._wake_error()
        if not self.version or not self.version.startswith("1.1"):
            raise RigError(
                f"{self.port} runs Grbl {self.version}; ir_robot needs GRBL 1.1 (flash grbl 1.1h from "
                "github.com/gnea/grbl with the Arduino IDE)"
            )
        # let a second banner (board reset by the port opening *and* by us) arrive before talking
        time.sleep(0.02)

    def _wake_error(self) -> RigError:
        wait = 2 * self.config.grbl.wake_timeout_s
        baud = self.config.grbl.baud
        if self._rx_bytes == 0:
            return RigError(
                f"no reply from {self.port} within {wait:.1f} s at {baud} baud: not a GRBL board, GRBL is not "
                "flashed on it, or it is still booting (raise grbl.wake_timeout_s). Check --port "
                "(`python -m serial.tools.list_ports -v`)"
            )
        lines = self._wake_lines[:6]
        printable = [ln for ln in lines if all(0x20 <= b <= 0x7E or b == 9 for b in ln)]
        if len(printable) < max(1, len(lines) // 2) or not lines:
            return RigError(
                f"only garbage bytes from {self.port} ({self._rx_bytes} bytes, e.g. {lines[:1]!r}): a baud-rate "
                f"mismatch (GRBL 1.1 talks at 115200; grbl.baud is {baud}) or a noisy USB cable"
            )
        return RigError(
            f"{self.port} answers but is not a GRBL 1.1 board (it sent {printable[:3]!r}): wrong port? The load "
            "cell, a 3D printer or another device may be on it; point --port / grbl.port at the GRBL Arduino"
        )

    def _read_build_info(self) -> None:
        pushes = self.send("$I")
        for msg in pushes:
            if isinstance(msg, P.Version):
                self.build = msg
            elif isinstance(msg, P.Options):
                self.options = msg
        if self.options is not None and self.options.rx_buffer_bytes:
            cap = min(self.config.grbl.rx_buffer_bytes, self.options.rx_buffer_bytes - 1)
            with self._cond:
                self._counter.capacity = cap

    def _read_settings(self) -> None:
        pushes = self.send("$$")
        self.settings = {m.number: m.value for m in pushes if isinstance(m, P.Setting)}
        if not self.settings:
            raise RigError(f"GRBL on {self.port} sent no settings for $$; is it a GRBL 1.1 board?")
        if self.config.grbl.check_settings:
            problems = P.settings_mismatches(self.settings, self.config.expected_settings())
            if problems:
                raise RigError(
                    f"GRBL settings on {self.port} do not match config/rig.yaml:\n  - "
                    + "\n  - ".join(problems)
                    + "\nSend the $N=value lines in a serial terminal (with the machine idle), or fix the config "
                    "(grbl.check_settings: false skips this check)"
                )

    # ================================================================== I/O primitives
    def _write_raw(self, data: bytes) -> None:
        failure = None
        with self._wlock:
            ser = self._ser
            if ser is None:
                raise RigError(f"GRBL port {self.port} is closed")
            try:
                ser.write(data)
            except Exception as exc:  # SerialException, OSError, write timeout
                failure = exc
        if failure is not None:  # outside the write lock: the fault path writes the halt bytes
            self._on_port_lost(failure)
            raise self._fault from None

    def _halt_bytes(self, data: bytes = P.FEED_HOLD + P.SOFT_RESET) -> bool:
        """Feed hold then soft reset, best effort; True when the bytes reached the port."""
        with self._wlock:
            ser = self._ser
            if ser is None:
                return False
            try:
                ser.write(data)
                return True
            except Exception:
                return False

    def _send_line(self, line: str, timeout: float | None = None) -> _Pending:
        data = P.check_line(line)
        timeout = self.config.grbl.ack_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._fault is not None:
                    raise self._fault
                if self._resetting:
                    pass
                elif self._counter.fits(len(data)):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    what = (
                        "to finish resetting"
                        if self._resetting
                        else f"to free its RX buffer ({self._counter.used} bytes in flight)"
                    )
                    self._fault_locked(
                        f"GRBL on {self.port} did not answer within {timeout:.1f} s {what}; "
                        "the board is hung or the link lost bytes"
                    )
                    raise self._fault
                self._cond.wait(min(remaining, 0.05))
            pending = _Pending(line)
            self._counter.push(line, len(data), pending)
            self._write_raw(data)
        return pending

    def _wait(self, pending: _Pending, timeout: float | None = None) -> list:
        timeout = self.config.grbl.ack_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pending.event.is_set():
                if self._fault is not None:
                    raise self._fault
                if self._alarm is not None and self._alarm_t >= pending.t_sent:
                    raise self._alarm
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fault_locked(
                        f"GRBL on {self.port} did not acknowledge {pending.line!r} within {timeout:.1f} s "
                        "(board hung, or an ok was lost on the link)"
                    )
                    raise self._fault
                self._cond.wait(min(remaining, 0.05))
        if pending.error is not None:
            raise pending.error
        return pending.pushes

    def send(self, line: str, timeout: float | None = None) -> list:
        """Send one line and wait for its ``ok``; returns the pushes that came with it ($$, $I, $G...).

        Raises :class:`GrblCommandError` on ``error:N``, :class:`GrblAlarm` if an alarm
        came meanwhile, :class:`RigError` on timeout or a lost port.
        """
        return self._wait(self._send_line(line, timeout), timeout)

    def stream(self, lines: Iterable[str], stop_on_error: bool = False, timeout: float | None = None) -> StreamResult:
        """Stream G-code with character counting; returns counts and the errors by line index.

        GRBL keeps executing lines already in its buffer after an error; with
        ``stop_on_error`` no further lines are sent once an error is seen.
        """
        t0 = time.monotonic()
        result = StreamResult()
        pendings: collections.deque = collections.deque()

        def harvest(block: bool) -> bool:
            while pendings and (block or pendings[0][1].event.is_set()):
                i, p = pendings.popleft()
                try:
                    self._wait(p, timeout)
                    result.ok += 1
                except P.GrblCommandError as exc:
                    result.errors.append((i, exc))
                    if stop_on_error:
                        return False
            return True

        for i, line in enumerate(lines):
            pendings.append((i, self._send_line(line, timeout)))
            result.sent += 1
            if not harvest(False):
                break
        harvest(True)
        with self._cond:
            result.max_in_flight_bytes = self._counter.max_used
        result.elapsed_s = time.monotonic() - t0
        return result

    # ================================================================== reader thread
    def _reader_loop(self) -> None:
        splitter = P.LineSplitter()
        ser = self._ser
        while not self._closing:
            try:
                data = ser.read(ser.in_waiting or 1)
            except Exception as exc:  # SerialException on unplug, TypeError/AttributeError when closed
                if not self._closing:
                    self._on_port_lost(exc)
                return
            if not data:
                continue
            self._rx_bytes += len(data)
            for raw in splitter.feed(data):
                if len(self._wake_lines) < 20 and not self._connected and raw:
                    self._wake_lines.append(raw)
                try:
                    self._handle(raw)
                except Exception:  # never let one bad line kill the reader
                    log.exception("GRBL reader failed on %r", raw)

    def _handle(self, raw: bytes) -> None:
        t = time.monotonic()
        try:
            msg = P.parse_line(raw)
        except ProtocolError as exc:
            self._on_protocol_error(exc, t)
            return
        if msg is None:
            return
        if isinstance(msg, (P.Ok, P.ErrorReply)):
            self._on_ack(msg, raw, t)
        elif isinstance(msg, P.StatusReport):
            self._on_status(msg, t)
        elif isinstance(msg, P.Welcome):
            self._on_welcome(msg, t)
        elif isinstance(msg, P.Alarm):
            self._on_alarm(msg, t)
        else:
            if isinstance(msg, P.Message):
                self.messages.append((t, msg.text))
                if msg.text == "Reset to continue":
                    self._request_reset("critical alarm")
            elif isinstance(msg, P.GcState):
                self.gc_state = msg
            with self._cond:
                head = self._counter.head()
                if head is not None and not self._resetting:
                    head[1].pushes.append(msg)

    def _on_ack(self, msg, raw: bytes, t: float) -> None:
        with self._cond:
            if self._resetting:
                return  # answer to a line the reset already discarded
            try:
                line, pending = self._counter.pop()
            except ProtocolError as exc:
                self._on_protocol_error(exc, t)
                return
            if isinstance(msg, P.ErrorReply):
                err = P.GrblCommandError(msg.code, line, self.port)
                if msg.code in (8, 9) and self._status is not None:
                    err.args = (f"{err.args[0]} (GRBL state: {self._status.full_state})",)
                pending.finish(err)
            else:
                pending.finish()
            self._cond.notify_all()

    def _on_status(self, report: P.StatusReport, t: float) -> None:
        mpos, _wpos, wco = P.resolve_positions(report, self._wco)
        mpos = np.asarray(mpos[:3], dtype=float)
        with self._cond:
            if self._mpos is not None and t - self._status_t > 1e-3:
                self._axis_vel = (mpos - self._mpos) / (t - self._status_t)
            if report.state in ("Idle", "Alarm", "Sleep") or (report.state == "Hold" and report.substate == 0):
                self._axis_vel = np.zeros(3)
            self._status, self._mpos, self._wco, self._status_t = report, mpos, wco, t
            self._jogs_after_status = 0
            self._last_status_rx = t
            self._status_seq += 1
            if report.state != "Alarm" and self._alarm is not None and t > self._alarm_t:
                self._alarm = None
            self._cond.notify_all()

    def _on_welcome(self, msg: P.Welcome, t: float) -> None:
        with self._cond:
            expected = self._resetting or not self._connected
            self.version = msg.version
            dropped = self._counter.clear()
            err = RigError(f"GRBL on {self.port} restarted before answering this line")
            for _line, pending in dropped:
                pending.finish(err)
            self._resetting = False
            self._last_status_rx = t
            self._wco = None
            if not expected:
                self._estop_reason = self._estop_reason or "board restarted"
                self.messages.append(
                    (
                        t,
                        "GRBL restarted unexpectedly (power glitch, or another program reset it); "
                        "position may be lost: home again",
                    )
                )
            self._cond.notify_all()
        self._banner.set()

    def _on_alarm(self, msg: P.Alarm, t: float) -> None:
        alarm = P.GrblAlarm(msg.code, self.port)
        with self._cond:
            self._alarm, self._alarm_t = alarm, t
            self._cond.notify_all()
        self.messages.append((t, str(alarm)))
        log.warning("%s", alarm)
        if msg.code in P.CRITICAL_ALARMS:
            self._request_reset(f"ALARM:{msg.code}")

    def _on_protocol_error(self, exc: ProtocolError, t: float) -> None:
        self.protocol_errors.append(exc)
        self.protocol_error_count += 1
        if not self._connected:
            return  # collected for the wake-up diagnosis
        self._perr_times.append(t)
        if len(self._perr_times) <= 3:
            log.warning("%s", exc)
        while self._perr_times and t - self._perr_times[0] > 1.0:
            self._perr_times.popleft()
        if len(self._perr_times) > self.config.grbl.max_protocol_errors:
            self._declare_fault(
                f"the link to GRBL on {self.port} is corrupt: {len(self._perr_times)} malformed lines within 1 s "
                f"(last: {exc}). Likely a baud mismatch, another program on the port, or a bad USB cable"
            )

    def _on_port_lost(self, exc: BaseException) -> None:
        self._declare_fault(
            f"GRBL port {self.port} vanished ({exc}): the USB cable was unplugged or the board lost power. "
            "Motion could not be confirmed stopped: check the rig (hit the e-stop button if it still moves), "
            "reconnect and home"
        )

    # ================================================================== faults and resets
    def _fault_locked(self, message: str) -> bool:
        """Record a fault (caller holds the condition). Returns False if one was already recorded."""
        if self._fault is not None:
            return False
        self._fault = RigError(message)
        self.fault_time = time.monotonic()
        self._estop_reason = self._estop_reason or "fault"
        for _line, pending in self._counter.clear():
            pending.finish(self._fault)
        self._cond.notify_all()
        return True

    def _declare_fault(self, message: str) -> None:
        with self._cond:
            new = self._fault_locked(message)
        if not new:
            return
        t = time.monotonic()
        delivered = self._halt_bytes()
        self.halts.append((t, "fault", delivered))
        log.error("%s", self._fault)
        for fn in list(self._fault_callbacks):
            try:
                fn(self._fault)
            except Exception:
                log.exception("fault callback failed")

    def _mark_resetting(self) -> None:
        """Call *before* writing 0x18: from now on acks are stale until the banner comes back.

        Plain attribute writes (no lock) so the e-stop and force paths stay fast;
        the banner can only clear the flag after the reset bytes went out.
        """
        now = time.monotonic()
        self._banner.clear()
        self._reset_t = now
        self._last_status_rx = now
        self._resetting = True

    def _drop_inflight_locked(self, reason: str) -> None:
        """Fail every line in flight: a reset discards GRBL's RX buffer and planner."""
        err = RigError(f"line discarded: GRBL on {self.port} was reset ({reason})")
        for _line, pending in self._counter.clear():
            pending.finish(err)
        self._cond.notify_all()

    def _request_reset(self, reason: str) -> None:
        with self._cond:
            if self._resetting:
                return  # one reset at a time (ALARM:2 is followed by [MSG:Reset to continue])
            self._mark_resetting()
            self._drop_inflight_locked(reason)
        try:
            self._write_raw(P.SOFT_RESET)
        except RigError:
            pass

    def add_fault_callback(self, fn: Callable[[RigError], None]) -> None:
        """``fn(error)`` runs (on an internal thread) when the link faults: port lost, watchdog, corrupt link."""
        self._fault_callbacks.append(fn)

    @property
    def fault(self) -> RigError | None:
        return self._fault

    # ================================================================== poller / watchdog
    def _poller_loop(self) -> None:
        g = self.config.grbl
        period = 1.0 / g.status_poll_hz
        next_q = time.monotonic()
        while not self._closing and self._fault is None:
            time.sleep(0.01)
            now = time.monotonic()
            with self._cond:
                suspended = self._watchdog_suspended > 0
                resetting, reset_t, last = self._resetting, self._reset_t, self._last_status_rx
            if now >= next_q:
                next_q = now + period if now - next_q > period else next_q + period
                if not suspended:
                    try:
                        self._write_raw(P.STATUS_QUERY)
                    except RigError:
                        return
            if resetting and now - reset_t > g.wake_timeout_s:
                self._declare_fault(
                    f"GRBL on {self.port} did not restart within {g.wake_timeout_s:.1f} s of a soft reset "
                    "(no banner): the board is hung; power-cycle it"
                )
            elif not suspended and not resetting and now - last > g.status_timeout_s:
                self._declare_fault(
                    f"no status reply from GRBL on {self.port} for {now - last:.2f} s (limit "
                    f"{g.status_timeout_s:.2f} s): the board is hung, busy or disconnected; motion halted. "
                    "Check the USB cable and power, then reconnect and home"
                )
            lc = self._loadcell
            if lc is not None and self._fault is None:
                if lc.error is not None:
                    self._declare_fault(str(lc.error) + "; motion halted")
                elif lc.age_s(now) > self.config.loadcell.timeout_s:
                    self._declare_fault(
                        f"load cell on {lc.port} silent for {lc.age_s(now):.2f} s (limit "
                        f"{self.config.loadcell.timeout_s:.2f} s): motion halted; check its cable and board"
                    )

    # ================================================================== force trip
    def _on_force_sample(self, t: float, force_n: float) -> None:
        limit = self.config.loadcell.force_limit_n
        over = abs(force_n) > limit
        latched = self._estop_reason is not None
        if over and not latched and (self._force_armed or abs(force_n) > 2.0 * limit):
            self._force_armed = False
            self._mark_resetting()
            delivered = self._halt_bytes()  # nothing else stands between the sample and the bytes
            self.halts.append((time.monotonic(), "force", delivered))
            trip = SafetyTrip(
                "force",
                f"needle force {force_n:.2f} N beyond the {limit:.2f} N ceiling (load cell "
                f"{self.loadcell_port}); GRBL on {self.port} feed-held and reset. Retract the "
                "needle (unlock, then jog insert_mm back) before anything else",
            )
            with self._cond:
                if self._trip is None or self._estop_reason is None:
                    self._trip = trip
                self._estop_reason = "force"
                self._drop_inflight_locked("force trip")
            log.error("%s", trip)
        elif not over and not self._force_armed and abs(force_n) < 0.8 * limit and self._estop_reason is None:
            self._force_armed = True

    # ================================================================== Rig interface
    def _check_ready(self) -> None:
        with self._cond:
            if self._fault is not None:
                raise self._fault
            if self._estop_reason is not None:
                if self._trip is not None and self._estop_reason == "force":
                    raise self._trip
                raise RigError(
                    f"rig on {self.port} is stopped ({self._estop_reason}); unlock() or home() "
                    "(`ir-robot rig home`) before moving again"
                )
            if self._alarm is not None:
                raise self._alarm
            if self._status is not None and self._status.state in ("Alarm", "Sleep"):
                raise RigError(
                    f"GRBL on {self.port} is in {self._status.state} (locked, e.g. after power-up with homing "
                    "enabled): home() (`ir-robot rig home`) or unlock() first"
                )
            if self._resetting:
                raise RigError(f"GRBL on {self.port} is resetting; retry in a moment")

    def read_state(self) -> RigState:
        with self._cond:
            report, mpos, t = self._status, self._mpos, self._status_t
            axis_vel = self._axis_vel.copy()
            fault, estop, alarm, trip = self._fault, self._estop_reason, self._alarm, self._trip
        if mpos is None:
            joints = self.config.joints_from_mpos(np.zeros(3))
        else:
            joints = self.config.joints_from_mpos(mpos)
        velocity = self.config.joint_rates_from_axis_rates(axis_vel)
        force = self._loadcell.latest()[1] if self._loadcell is not None else float("nan")
        state = report.state if report is not None else "Unknown"
        moving = state in ("Run", "Jog", "Home") or (state == "Hold" and report.substate == 1)
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
        line = P.format_jog({a: float(d) for a, d in zip(AXES, deltas)}, feed)
        self.send(line)
        with self._cond:
            self._jogs_after_status += 1
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
        with self._cond:
            mpos, report, after = self._mpos, self._status, self._jogs_after_status
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
        with self._cond:
            report, after = self._status, self._jogs_after_status
        if report is None or report.planner_blocks_free is None:
            return 0
        size = self.options.planner_blocks if self.options is not None else 15
        queued = 0 if report.state in ("Idle", "Alarm", "Sleep") else max(0, size - report.planner_blocks_free)
        return queued + after

    def move_to(self, target: JointVector, speed_mm_s: float = 5.0) -> None:
        """Absolute coordinated move (``G90 G53 G1``); returns once GRBL has planned it."""
        self._check_fixed(target, "move_to target", rates=False)
        lo, hi = self.config.joint_limits()
        for name in self.movable_joints:
            v, a, b = getattr(target, name), getattr(lo, name), getattr(hi, name)
            if not (a - 1e-9 <= v <= b + 1e-9) or not math.isfinite(v):
                raise RigError(
                    f"move_to {name}={v:g} is outside the rig's travel [{a:g}, {b:g}] "
                    "(config/rig.yaml grbl axes: offset_mm, sign, max_travel_mm)"
                )
        if not (speed_mm_s > 0 and math.isfinite(speed_mm_s)):
            raise RigError(f"move_to speed must be > 0 mm/s, got {speed_mm_s!r}")
        if self._loadcell is not None and not self._force_armed:
            current = self.read_state().joints.insert_mm
            self._check_retract_only(target.insert_mm > current + 1e-6)
        self._check_ready()
        with self._cond:
            jogging = self._status is not None and self._status.state == "Jog"
        if jogging:
            self.jog_cancel()
            self.wait_idle(timeout=5.0)
        mpos = self.config.mpos_from_joints(target)
        feed = min(speed_mm_s, self.config.max_speed_mm_s) * 60.0
        self.send(P.format_move({a: float(m) for a, m in zip(AXES, mpos)}, feed))

    def _check_retract_only(self, inserting: bool) -> None:
        if inserting and not self._force_armed and self._loadcell is not None:
            force = self._loadcell.latest()[1]
            raise SafetyTrip(
                "force",
                f"needle force is still {force:.2f} N after a force trip: only retraction "
                "(insert_mm decreasing) is allowed until it falls below "
                f"{0.8 * self.config.loadcell.force_limit_n:.2f} N",
            )

    def stop(self, reason: str = "") -> None:
        """E-stop: feed hold ``!`` then soft reset 0x18; the rig stays stopped until home() or unlock()."""
        t = time.monotonic()
        live = self._fault is None and self._ser is not None
        if live and self._resetting and t - self._reset_t < self.config.grbl.wake_timeout_s:
            # a reset is already on its way: repeat only the (idempotent) feed hold, so a second
            # stop() cannot make a second banner arrive after the caller has started talking again
            delivered = self._halt_bytes(P.FEED_HOLD)
            self.halts.append((t, reason or "stop", delivered))
            with self._cond:
                self._estop_reason = self._estop_reason or reason or "stop"
            return
        if live:
            self._mark_resetting()
        delivered = self._halt_bytes()
        self.halts.append((t, reason or "stop", delivered))
        with self._cond:
            self._estop_reason = reason or "stop"
            if live:
                self._drop_inflight_locked(f"stop: {reason}" if reason else "stop")

    def limits(self) -> tuple[JointVector, JointVector]:
        return self.config.joint_limits()

    def velocity_limits(self) -> JointVector:
        return self.config.joint_speed_limits()

    # ================================================================== GRBL operations
    def _wait_banner_if_resetting(self) -> None:
        with self._cond:
            resetting = self._resetting
        if resetting and not self._banner.wait(self.config.grbl.wake_timeout_s):
            raise RigError(f"GRBL on {self.port} did not come back from a soft reset (no banner)")

    def _clear_latches(self) -> None:
        with self._cond:
            self._estop_reason = None
            self._trip = None
            self._alarm = None
        if self._loadcell is not None:
            force = self._loadcell.latest()[1]
            self._force_armed = not (abs(force) >= 0.8 * self.config.loadcell.force_limit_n)

    def home(self, timeout: float | None = None) -> None:
        """``$H`` homing cycle (GRBL does not answer status while homing; the watchdog waits)."""
        if self._fault is not None:
            raise self._fault
        self._wait_banner_if_resetting()
        with self._cond:
            self._watchdog_suspended += 1
            self._alarm = None
        try:
            self.send("$H", timeout or self.config.grbl.homing_timeout_s)
        finally:
            with self._cond:
                self._watchdog_suspended -= 1
                self._last_status_rx = time.monotonic()
        self._clear_latches()
        self._wait_status_after(time.monotonic())

    def unlock(self) -> None:
        """``$X``: leave Alarm without homing (position may be wrong after ALARM:1/3)."""
        if self._fault is not None:
            raise self._fault
        self._wait_banner_if_resetting()
        with self._cond:
            self._alarm = None
        self.send("$X")
        self._clear_latches()
        self._wait_status_after(time.monotonic())

    def feed_hold(self) -> None:
        self._write_raw(P.FEED_HOLD)

    def resume(self) -> None:
        self._write_raw(P.CYCLE_START)

    def jog_cancel(self) -> None:
        """Real-time jog cancel (0x85): GRBL decelerates and flushes queued jogs. Best effort."""
        try:
            self._write_raw(P.JOG_CANCEL)
        except RigError:
            pass

    def soft_reset(self, wait: bool = True) -> None:
        """0x18 without feed hold (ALARM:3 if moving); waits for the banner."""
        self._request_reset("soft reset")
        if wait:
            self._wait_banner_if_resetting()

    def gcode_state(self) -> P.GcState:
        """``$G``: the parser's modal state."""
        for msg in self.send("$G"):
            if isinstance(msg, P.GcState):
                return msg
        raise ProtocolError(f"GRBL on {self.port} answered $G without a [GC:...] line")

    def status(self) -> P.StatusReport | None:
        with self._cond:
            return self._status

    def positions(self):
        """(MPos, WPos, WCO) of the last status report."""
        with self._cond:
            report, wco = self._status, self._wco
        if report is None:
            return None
        return P.resolve_positions(report, wco)

    @property
    def loadcell(self):
        return self._loadcell

    @property
    def rx_budget_bytes(self) -> int:
        return self._counter.capacity

    @property
    def max_in_flight_bytes(self) -> int:
        return self._counter.max_used

    def _wait_status_after(self, t0: float, timeout: float = 2.0) -> P.StatusReport:
        deadline = time.monotonic() + timeout
        try:
            self._write_raw(P.STATUS_QUERY)  # do not wait for the next poll (GRBL drops duplicate queries)
        except RigError:
            pass
        with self._cond:
            while self._status is None or self._status_t <= t0:
                if self._fault is not None:
                    raise self._fault
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RigError(f"no status report from GRBL on {self.port} within {timeout:.1f} s")
                self._cond.wait(min(remaining, 0.05))
            return self._status

    def wait_idle(self, timeout: float = 30.0) -> RigState:
        """Block until GRBL reports Idle with nothing queued (a report newer than the call)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            self._write_raw(P.STATUS_QUERY)
        except RigError:
            pass
        with self._cond:
            while True:
                if self._fault is not None:
                    raise self._fault
                s = self._status
                if s is not None and self._status_t > t0:
                    if s.state == "Idle" and self._counter.outstanding == 0:
                        break
                    if s.state == "Alarm" and self._alarm is not None:
                        raise self._alarm
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RigError(f"GRBL on {self.port} still {s.full_state if s else 'silent'} after {timeout:.1f} s")
                self._cond.wait(min(remaining, 0.05))
        return self.read_state()

    # ================================================================== shutdown
    def close(self) -> None:
        """Stop motion if any (e-stop), stop the threads and release both ports."""
        if self._closing:
            return
        state = self.read_state() if self._ser is not None else None
        if state is not None and state.moving and self._fault is None:
            self.stop("close")
        self._shutdown()

    def _shutdown(self) -> None:
        self._closing = True
        if self._ser is not None:
            try:
                self._ser.cancel_read()
            except Exception:
                pass
        for th in self._threads:
            if th is not threading.current_thread():
                th.join(timeout=1.0)
        self._threads.clear()
        if self._loadcell is not None:
            self._loadcell.close()
        with self._wlock:
            if self._ser is not None:
                try:
                    self._ser.close()
                except Exception:
                    pass
                self._ser = None
        with self._cond:
            self._cond.notify_all()

    def __repr__(self) -> str:
        return f"GrblRig(port={self.port!r}, loadcell_port={self.loadcell_port!r}, version={self.version!r})"
