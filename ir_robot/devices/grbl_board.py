"""A connected GRBL 1.1 board: the link, its threads, the wake-up handshake and the GRBL operations.

:class:`GrblBoard` opens the port, starts the reader thread, wakes the board
(banner, ``$I``, ``$$`` checked against the rig config), opens the load cell with
its force trip and starts the status poller / watchdog; then it offers what GRBL
itself offers: lines (:meth:`~GrblBoard.send`, :meth:`~GrblBoard.stream`), homing,
unlock, real-time bytes, ``$G``, the last status and positions.
:class:`~ir_robot.devices.serial_rig.GrblRig` adds the Rig interface on top.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Self

from ir_robot.core.errors import ProtocolError, RigError
from ir_robot.devices import grbl as P
from ir_robot.devices.config import RigConfig
from ir_robot.devices.grbl_link import GrblLink, StreamResult
from ir_robot.devices.grbl_threads import ForceTrip, GrblReader, Watchdog, start_thread
from ir_robot.devices.loadcell import LoadCell


def _link_attr(name: str, doc: str) -> Any:
    """A read-only property forwarding to the link's attribute ``name``."""
    return property(lambda self: getattr(self.link, name), doc=doc)


class GrblBoard:
    """One GRBL 1.1 board over a serial port, with a load cell beside it (optional).

    Every deadline, timeout and stamp comes from ``clock``.
    """

    def __init__(self, config: RigConfig, port: str, loadcell_port: str | None, clock: Callable[[], float]) -> None:
        self.config = config
        self.port = port
        self.loadcell_port = loadcell_port
        self.clock = clock
        self.link = GrblLink(config, port, clock)
        self._threads: list[threading.Thread] = []
        self._loadcell: LoadCell | None = None

    version = _link_attr("version", "GRBL version from the banner (``1.1h``).")
    build = _link_attr("build", "``$I`` build info.")
    options = _link_attr("options", "``$I`` options: planner blocks, RX buffer size.")
    settings = _link_attr("settings", "The board's ``$$`` settings.")
    messages = _link_attr("messages", "``(t, text)`` of the board's messages and alarms.")
    gc_state = _link_attr("gc_state", "The last ``[GC:...]`` modal state.")
    halts = _link_attr("halts", "``(t, reason, bytes delivered)`` of every halt attempted.")
    protocol_errors = _link_attr("protocol_errors", "The last malformed lines from the board.")
    protocol_error_count = _link_attr("protocol_error_count", "Malformed lines from the board so far.")
    fault = _link_attr("fault", "The link's fault (port lost, watchdog, corrupt link), None while healthy.")
    fault_time = _link_attr("fault_time", "When the fault was declared (on ``clock``).")

    @property
    def transport(self):
        """The GRBL port (:class:`~ir_robot.devices.serial_port.SerialTransport`)."""
        return self.link.transport

    # ================================================================== connection
    def connect(self) -> Self:
        """Open the port, wake GRBL, read ``$I`` and ``$$``, check settings, start polling."""
        g = self.config.grbl
        link = self.link
        try:
            link.transport.open(g.baud)
            start_thread(GrblReader(link).run, f"grbl-reader-{self.port}", self._threads)
            self._wake()
            self._read_build_info()
            self._read_settings()
            if self.loadcell_port:
                trip = ForceTrip(link, self.loadcell_port)
                self._loadcell = LoadCell(
                    self.config.loadcell, self.loadcell_port, on_sample=trip.on_sample, clock=self.clock
                )
                self._loadcell.open(timeout_s=max(g.wake_timeout_s, 1.0))
            link.last_status_rx = self.clock()
            link.connected = True
            start_thread(Watchdog(link, self._loadcell).run, f"grbl-poller-{self.port}", self._threads)
            link.wait_status_after(self.clock() - 1e-3, timeout=max(4 * g.status_timeout_s, 1.0))
        except BaseException:
            self._shutdown()
            raise
        return self

    def _wake(self) -> None:
        g = self.config.grbl
        link = self.link
        if not link.banner.wait(g.wake_timeout_s):
            # no banner: the board was not reset by opening the port (or it was missed); reset it
            link.write(P.SOFT_RESET)
            if not link.banner.wait(g.wake_timeout_s):
                raise self._wake_error()
        if not link.version or not link.version.startswith("1.1"):
            raise RigError(
                f"{self.port} runs Grbl {link.version}; ir_robot needs GRBL 1.1 (flash grbl 1.1h from "
                "github.com/gnea/grbl with the Arduino IDE)"
            )
        # let a second banner (board reset by the port opening *and* by us) arrive before talking
        time.sleep(0.02)

    def _wake_error(self) -> RigError:
        wait = 2 * self.config.grbl.wake_timeout_s
        baud = self.config.grbl.baud
        if self.link.rx_bytes == 0:
            return RigError(
                f"no reply from {self.port} within {wait:.1f} s at {baud} baud: not a GRBL board, GRBL is not "
                "flashed on it, or it is still booting (raise grbl.wake_timeout_s). Check --port "
                "(`python -m serial.tools.list_ports -v`)"
            )
        lines = self.link.wake_lines[:6]
        printable = [ln for ln in lines if all(0x20 <= b <= 0x7E or b == 9 for b in ln)]
        if len(printable) < max(1, len(lines) // 2) or not lines:
            return RigError(
                f"only garbage bytes from {self.port} ({self.link.rx_bytes} bytes, e.g. {lines[:1]!r}): a baud-rate "
                f"mismatch (GRBL 1.1 talks at 115200; grbl.baud is {baud}) or a noisy USB cable"
            )
        return RigError(
            f"{self.port} answers but is not a GRBL 1.1 board (it sent {printable[:3]!r}): wrong port? The load "
            "cell, a 3D printer or another device may be on it; point --port / grbl.port at the GRBL Arduino"
        )

    def _read_build_info(self) -> None:
        link = self.link
        for msg in self.send("$I"):
            if isinstance(msg, P.Version):
                link.build = msg
            elif isinstance(msg, P.Options):
                link.options = msg
        if link.options is not None and link.options.rx_buffer_bytes:
            cap = min(self.config.grbl.rx_buffer_bytes, link.options.rx_buffer_bytes - 1)
            with link.cond:
                link.counter.capacity = cap

    def _read_settings(self) -> None:
        pushes = self.send("$$")
        self.link.settings = {m.number: m.value for m in pushes if isinstance(m, P.Setting)}
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

    # ================================================================== streaming
    def send(self, line: str, timeout: float | None = None) -> list:
        """Send one line and wait for its ``ok``; returns the pushes that came with it ($$, $I, $G...).

        Raises :class:`GrblCommandError` on ``error:N``, :class:`GrblAlarm` if an alarm
        came meanwhile, :class:`RigError` on timeout or a lost port.
        """
        return self.link.send(line, timeout)

    def stream(self, lines: Iterable[str], stop_on_error: bool = False, timeout: float | None = None) -> StreamResult:
        """Stream G-code with character counting; returns counts and the errors by line index.

        GRBL keeps executing lines already in its buffer after an error; with
        ``stop_on_error`` no further lines are sent once an error is seen.
        """
        return self.link.stream(lines, stop_on_error, timeout)

    def add_fault_callback(self, fn: Callable[[RigError], None]) -> None:
        """``fn(error)`` runs (on an internal thread) when the link faults: port lost, watchdog, corrupt link."""
        self.link.fault_callbacks.append(fn)

    # ================================================================== GRBL operations
    def _clear_latches(self) -> None:
        link = self.link
        with link.cond:
            link.estop_reason = None
            link.trip = None
            link.alarm = None
        if self._loadcell is not None:
            force = self._loadcell.latest()[1]
            link.force_armed = not (abs(force) >= 0.8 * self.config.loadcell.force_limit_n)

    def home(self, timeout: float | None = None) -> None:
        """``$H`` homing cycle (GRBL does not answer status while homing; the watchdog waits)."""
        link = self.link
        if link.fault is not None:
            raise link.fault
        link.wait_banner_if_resetting()
        with link.cond:
            link.watchdog_suspended += 1
            link.alarm = None
        try:
            self.send("$H", timeout or self.config.grbl.homing_timeout_s)
        finally:
            with link.cond:
                link.watchdog_suspended -= 1
                link.last_status_rx = self.clock()
        self._clear_latches()
        link.wait_status_after(self.clock())

    def unlock(self) -> None:
        """``$X``: leave Alarm without homing (position may be wrong after ALARM:1/3)."""
        link = self.link
        if link.fault is not None:
            raise link.fault
        link.wait_banner_if_resetting()
        with link.cond:
            link.alarm = None
        self.send("$X")
        self._clear_latches()
        link.wait_status_after(self.clock())

    def feed_hold(self) -> None:
        """Real-time feed hold (``!``): GRBL decelerates to a stop and keeps the queue."""
        self.link.write(P.FEED_HOLD)

    def resume(self) -> None:
        """Real-time cycle start (``~``): resume after a feed hold."""
        self.link.write(P.CYCLE_START)

    def jog_cancel(self) -> None:
        """Real-time jog cancel (0x85): GRBL decelerates and flushes queued jogs. Best effort."""
        try:
            self.link.write(P.JOG_CANCEL)
        except RigError:
            pass

    def soft_reset(self, wait: bool = True) -> None:
        """0x18 without feed hold (ALARM:3 if moving); waits for the banner."""
        self.link.request_reset("soft reset")
        if wait:
            self.link.wait_banner_if_resetting()

    def gcode_state(self) -> P.GcState:
        """``$G``: the parser's modal state."""
        for msg in self.send("$G"):
            if isinstance(msg, P.GcState):
                return msg
        raise ProtocolError(f"GRBL on {self.port} answered $G without a [GC:...] line")

    def status(self) -> P.StatusReport | None:
        """The last status report (None before the first)."""
        with self.link.cond:
            return self.link.status

    def positions(self):
        """(MPos, WPos, WCO) of the last status report."""
        with self.link.cond:
            report, wco = self.link.status, self.link.wco
        if report is None:
            return None
        return P.resolve_positions(report, wco)

    @property
    def loadcell(self) -> LoadCell | None:
        """The load-cell reader (None without a load-cell port)."""
        return self._loadcell

    @property
    def rx_budget_bytes(self) -> int:
        """Unacknowledged bytes allowed in flight (GRBL's RX buffer minus one)."""
        return self.link.counter.capacity

    @property
    def max_in_flight_bytes(self) -> int:
        """Most unacknowledged bytes ever in flight."""
        return self.link.counter.max_used

    def _shutdown(self) -> None:
        link = self.link
        link.closing = True
        link.transport.cancel_read()
        for th in self._threads:
            if th is not threading.current_thread():
                th.join(timeout=1.0)
        self._threads.clear()
        if self._loadcell is not None:
            self._loadcell.close()
        link.transport.close()
        with link.cond:
            link.cond.notify_all()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(port={self.port!r}, loadcell_port={self.loadcell_port!r}, version={self.version!r})"
        )
