"""A GRBL 1.1 board and an HX711 load cell on pseudo-terminals, for tests and demos.

:class:`GrblEmulator` opens two pty pairs (``os.openpty``): clients open
:attr:`GrblEmulator.port` and :attr:`GrblEmulator.loadcell_port` exactly as they
would open ``/dev/ttyACM0`` and ``/dev/ttyUSB1``. The GRBL side behaves as GRBL 1.1:

* banner on open (like an Arduino reset by DTR; ``reset_on_open``) and on soft reset;
  Alarm at start when homing is enabled (``$22=1``) with ``[MSG:'$H'|'$X' to unlock]``;
* a 128-byte serial RX buffer with overflow detection (:attr:`rx_overflow`), and
  real-time bytes (``? ! ~ 0x18 0x85``) picked off before the buffer and acted on at once;
* a 15-block planner with per-axis trapezoidal acceleration and rate limits
  (``$110-112``, ``$120-122``), junction deviation (``$11``), planning to a stop
  at the end of the queue, feed hold with deceleration, resume, jog cancel;
* soft limits (``$20``, travel ``MPos in [-$130..132, 0]``): ALARM:2 for G-code
  (critical: nothing but a reset is answered) and error:15 for jogs; homing
  (``$22``, ``$H``; status queries are not answered while homing);
* ``$$ $I $X $H $G $N $# $C $SLP $N=value $J=``, G0/G1/G4/G20/G21/G53/G54/G90/G91/G94,
  M0-M9 (accepted, no effect), error codes as GRBL 1.1 gives them;
* status reports ``<State|MPos|Bf|FS|WCO|Ov|Pn|Ln>`` following ``$10``.

The load cell streams one raw HX711 count per line at the configured rate (80
samples/s) with the force from ``force_fn`` (default: the tissue model
:class:`ir_robot.sim.tissue.NeedleTissueModel` on ``sim/phantoms/forearm.yaml``,
needle pivot ``(x_mm, y_mm, z_mm fixed)``, direction ``(cos p, 0, -sin p)``).

Faults on demand: :meth:`unplug`, :meth:`inject_garbage`, :meth:`stall`,
:meth:`push_alarm`, :meth:`force_spike`, and constructor modes ``baud_mismatch``
and ``personality="silent"|"marlin"``. Random content (noise, garbage) comes
from a Generator seeded by ``seed``; timing follows the wall clock.

Everything the tests check is recorded with ``time.monotonic()`` stamps:
:attr:`received_lines`, :attr:`realtime_log`, :attr:`samples`, :attr:`rx_max_used`...
"""

from __future__ import annotations

import collections
import errno
import logging
import math
import os
import re
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ir_robot.core.errors import RigError
from ir_robot.core.types import JointVector, needle_direction
from ir_robot.devices import grbl as P
from ir_robot.devices.config import RigConfig, load_rig_config

log = logging.getLogger(__name__)

ForceFn = Callable[[float, JointVector, float], float]
"""force_fn(t_s, joints, insert_rate_mm_s) -> axial needle force in newtons."""

VERSION = "1.1h"
BUILD_DATE = "20190825"
#: GRBL defaults for the settings a rig config does not pin down
DEFAULT_SETTINGS: dict[int, float] = {
    0: 10,
    1: 25,
    2: 0,
    3: 0,
    4: 0,
    5: 0,
    6: 0,
    10: 3,
    11: 0.010,
    12: 0.002,
    13: 0,
    20: 0,
    21: 0,
    22: 0,
    23: 0,
    24: 25.0,
    25: 500.0,
    26: 250,
    27: 1.0,
    30: 1000,
    31: 0,
    32: 0,
    100: 250.0,
    101: 250.0,
    102: 250.0,
    110: 500.0,
    111: 500.0,
    112: 500.0,
    120: 10.0,
    121: 10.0,
    122: 10.0,
    130: 200.0,
    131: 200.0,
    132: 200.0,
}
_INTEGER_SETTINGS = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32})
_WORD_RE = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))")
_SUBSTEP_S = 0.001


@dataclass
class _Block:
    start: np.ndarray
    end: np.ndarray
    unit: np.ndarray
    length: float
    v_cruise: float  # mm/s
    accel: float  # mm/s^2
    jog: bool
    line_number: int | None
    v_entry_max: float = 0.0
    v_exit: float = 0.0  # planned exit speed (entry of the next block)


class _Pty:
    """One pty pair; the emulator keeps the master, clients open the slave path."""

    def __init__(self):
        master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)  # no opener: the master reports POLLHUP until a client opens the path
        os.set_blocking(master, False)
        self.fd: int | None = master
        self._poll = select.poll()
        self._poll.register(master, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.dropped_bytes = 0

    def poll(self, timeout_s: float) -> tuple[bool, bool]:
        """(client connected, data readable) after waiting up to ``timeout_s``."""
        if self.fd is None:
            time.sleep(timeout_s)
            return False, False
        events = self._poll.poll(max(0, int(timeout_s * 1000)))
        if not events:
            return True, False
        ev = events[0][1]
        if ev & (select.POLLHUP | select.POLLERR):
            return False, False
        return True, bool(ev & select.POLLIN)

    def connected(self) -> bool:
        return self.poll(0)[0]

    def read(self) -> bytes:
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def write(self, data: bytes) -> None:
        if self.fd is None or not data:
            return
        try:
            n = os.write(self.fd, data)
            self.dropped_bytes += len(data) - n
        except (BlockingIOError, OSError):
            self.dropped_bytes += len(data)

    def close(self) -> None:
        if self.fd is not None:
            try:
                self._poll.unregister(self.fd)
            except (KeyError, ValueError):
                pass
            os.close(self.fd)
            self.fd = None


class GrblEmulator:
    """GRBL 1.1 + HX711 load cell on two ptys. Use as a context manager or call start()/close().

    Parameters
    ----------
    config: the rig config (settings, joint mapping, load-cell calibration); default ``config/rig.yaml``.
    seed: seeds the Generator behind sensor noise and garbage bytes.
    force_fn: ``force_fn(t_s, joints, insert_rate_mm_s) -> N``; default: the tissue model.
    settings: ``{N: value}`` overriding the board's ``$N`` (e.g. to provoke a mismatch).
    wco_mm: work coordinate offset (G54) reported as ``WCO``.
    reset_on_open: restart (banner, position lost, Alarm if homing) whenever a client opens the port.
    boot_delay_s: time from a reset to the banner (Arduino bootloader ~0.5-2 s; small in tests).
    personality: ``"grbl"``; ``"silent"`` (never answers) or ``"marlin"`` (a 3D printer) for wrong-device tests.
    baud_mismatch: everything the board sends arrives as garbage and what it receives is not understood.
    loadcell: also serve the load-cell pty.
    noise_counts: sigma of the HX711 reading noise in counts.
    """

    def __init__(
        self,
        config: RigConfig | None = None,
        *,
        seed: int = 0,
        force_fn: ForceFn | None = None,
        settings: dict[int, float] | None = None,
        wco_mm=(0.0, 0.0, 0.0),
        reset_on_open: bool = True,
        boot_delay_s: float = 0.05,
        personality: str = "grbl",
        baud_mismatch: bool = False,
        loadcell: bool = True,
        noise_counts: float = 20.0,
        rx_buffer_size: int = 128,
        planner_blocks: int = 15,
        start_mpos=(0.0, 0.0, 0.0),
    ):
        if personality not in ("grbl", "silent", "marlin"):
            raise ValueError(f"personality must be 'grbl', 'silent' or 'marlin', got {personality!r}")
        self.config = config if config is not None else load_rig_config()
        self.rng = np.random.default_rng(seed)
        self._force_rng = np.random.default_rng([seed, 1])
        self._force_fn = force_fn
        self.default_settings = {
            **DEFAULT_SETTINGS,
            **{k: float(v) for k, v in self.config.expected_settings().items()},
        }
        self.settings: dict[int, float] = {
            **self.default_settings,
            **{int(k): float(v) for k, v in (settings or {}).items()},
        }
        self.wco = np.array(wco_mm, dtype=float)
        self.reset_on_open = reset_on_open
        self.boot_delay_s = float(boot_delay_s)
        self.personality = personality
        self.baud_mismatch = baud_mismatch
        self.loadcell_enabled = loadcell
        self.noise_counts = float(noise_counts)
        self.rx_buffer_size = int(rx_buffer_size)
        self.planner_blocks = int(planner_blocks)
        self._start_mpos = np.array(start_mpos, dtype=float)

        # recorded for tests -------------------------------------------------------------
        self.received_lines: list[str] = []  # every line taken from the RX buffer, in order
        self.realtime_log: list[
            tuple[float, bytes]
        ] = []  # (t, byte) for ! ~ 0x18 0x85 and other real-time bytes except '?'
        self.status_queries = 0
        self.status_replies = 0
        self.ok_sent = 0
        self.errors_sent: list[tuple[str, int]] = []
        self.alarms_sent: list[tuple[float, int]] = []
        self.rx_overflow = False
        self.rx_overflow_bytes = 0
        self.rx_max_used = 0
        self.samples: collections.deque = collections.deque(maxlen=100_000)  # (t, force_n) of load-cell samples
        self.garbage_lines_sent = 0
        self.unplug_time: float | None = None
        self.resets = 0
        self.connects = 0
        self.loop_errors: list[BaseException] = []

        self._lock = threading.RLock()
        self._actions: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._grbl_pty: _Pty | None = None
        self._lc_pty: _Pty | None = None
        self._stalled = False
        self._spikes: list[tuple[float, float, float]] = []  # (t0, t1, extra force)
        self._force_model = None
        self._t_start = time.monotonic()
        self._power_on(time.monotonic(), announce=False)

    # ================================================================== lifecycle
    @property
    def port(self) -> str:
        if self._grbl_pty is None:
            raise RigError("emulator not started: call start() or use it as a context manager")
        return self._grbl_pty.path

    @property
    def loadcell_port(self) -> str | None:
        return self._lc_pty.path if self._lc_pty is not None else None

    def start(self) -> GrblEmulator:
        if self._grbl_pty is not None:
            return self
        self._grbl_pty = _Pty()
        self._threads.append(threading.Thread(target=self._grbl_loop, name="grbl-emulator", daemon=True))
        if self.loadcell_enabled:
            self._lc_pty = _Pty()
            self._threads.append(threading.Thread(target=self._loadcell_loop, name="hx711-emulator", daemon=True))
        for th in self._threads:
            th.start()
        return self

    def link_ports(self, link_dir) -> list[str]:
        """Symlinks ``link_dir/grbl`` (and ``link_dir/loadcell``) to the ptys, replacing old ones: fixed names a
        config can point at (the pty paths change every start). Returns the links made.
        """
        links = []
        os.makedirs(link_dir, exist_ok=True)
        for name, path in (("grbl", self.port), ("loadcell", self.loadcell_port)):
            if path is None:
                continue
            link = os.path.join(link_dir, name)
            if os.path.islink(link) or os.path.exists(link):
                os.remove(link)
            os.symlink(path, link)
            links.append(link)
        return links

    def close(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=2.0)
        self._threads.clear()
        for p in (self._grbl_pty, self._lc_pty):
            if p is not None:
                p.close()

    def __enter__(self) -> GrblEmulator:
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def serve_forever(self) -> None:
        """Block until Ctrl-C (the CLI's ``ir-robot rig-emulator``)."""
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.close()

    # ================================================================== faults
    def _call(self, fn, wait: bool = True, timeout: float = 2.0):
        """Run ``fn`` on the emulator thread (between two loop iterations)."""
        done = threading.Event()
        box = {}

        def run():
            try:
                box["value"] = fn()
            finally:
                done.set()

        self._actions.append(run)
        if wait and not done.wait(timeout):
            raise RigError("emulator thread did not run the request (is it started?)")
        return box.get("value")

    def unplug(self) -> float:
        """Close the GRBL pty as if the USB cable was pulled; returns the time it happened."""

        def run():
            self.unplug_time = time.monotonic()
            self._grbl_pty.close()
            return self.unplug_time

        return self._call(run)

    def stall(self, on: bool = True) -> None:
        """Stop (or restart) answering: real-time bytes are still logged, nothing is processed or sent."""

        def run():
            self._stalled = on

        self._call(run)

    def inject_garbage(self, n_lines: int = 1, length: int = 24) -> list[bytes]:
        """Send ``n_lines`` lines of random bytes (each holds at least one non-ASCII byte)."""
        lines = []
        for _ in range(n_lines):
            raw = self.rng.integers(0, 256, size=max(1, length)).astype(np.uint8)
            raw[raw == ord("\n")] = 0xFF
            raw[raw == ord("\r")] = 0xFE
            raw[self.rng.integers(0, raw.size)] = self.rng.integers(0x80, 0x100)
            lines.append(raw.tobytes())

        def run():
            for raw in lines:
                self._grbl_pty.write(raw + b"\r\n")
            self.garbage_lines_sent += len(lines)

        self._call(run)
        return lines

    def push_alarm(self, code: int) -> None:
        """Throw ``ALARM:code`` now (1 and 2 are critical: the board then waits for a reset)."""
        self._call(lambda: self._alarm(int(code), time.monotonic()))

    def force_spike(self, force_n: float = 10.0, duration_s: float = 0.2) -> float:
        """Add ``force_n`` to the load-cell force for ``duration_s`` from now; returns the start time."""
        t0 = time.monotonic()
        with self._lock:
            self._spikes.append((t0, t0 + duration_s, float(force_n)))
        return t0

    def set_pins(self, pins: str) -> None:
        """Input pins reported as triggered in ``Pn:`` (e.g. ``"XP"``)."""
        self._call(lambda: setattr(self, "_pins", "".join(sorted(set(pins)))))

    # ================================================================== state
    def _power_on(self, now: float, announce: bool = True) -> None:
        with self._lock:
            self.mpos = self._start_mpos.copy()
            self.state = "Alarm" if self.settings.get(22, 0) else "Idle"
            self._reset_common(now)
            self._boot_until = now + self.boot_delay_s if announce else math.inf
            self._critical = False

    def _reset_common(self, now: float) -> None:
        self.rx = bytearray()
        self._linebuf = bytearray()
        self._held: str | None = None
        self._held_ok = False
        self.planner: list[_Block] = []
        self._s = 0.0  # progress along the first block
        self.v = 0.0  # path speed mm/s
        self._hold = False
        self._cancel = False
        self.substate: int | None = None
        self._dwell_until: float | None = None
        self._homing: dict | None = None
        self._gc = {
            "motion": 0,
            "distance": 90,
            "units": 21,
            "feed": 0.0,
            "wcs": 54,
            "plane": 17,
            "feed_mode": 94,
            "spindle": 5,
            "coolant": 9,
            "tool": 0,
            "speed": 0.0,
        }
        self._gc_pos = self.mpos.copy()
        self._report_count = 0
        self._wco_due = True
        self._ov_due = 2
        self._pins = getattr(self, "_pins", "")
        self._last_t = now
        self._check_mode = False
        self._line_number: int | None = None
        self._startup_lines = getattr(self, "_startup_lines", ["", ""])

    # ================================================================== output
    def _send(self, text: str) -> None:
        if self._stalled or self._grbl_pty is None:
            return
        data = text.encode("ascii") + b"\r\n"
        if self.baud_mismatch:
            data = self._scramble(data)
        self._grbl_pty.write(data)

    def _scramble(self, data: bytes) -> bytes:
        """What a byte stream looks like read at the wrong baud: mostly high, random bytes, few newlines."""
        n = max(1, int(len(data) * self.rng.uniform(0.3, 1.2)))
        out = self.rng.integers(0x80, 0x100, size=n).astype(np.uint8)
        if self.rng.random() < 0.5:
            out[-1] = ord("\n")
        return out.tobytes()

    def _respond(self, result) -> None:
        # count before sending: a client may act on the reply before this thread runs again
        if result == "ok":
            self.ok_sent += 1
            self._send("ok")
        else:
            self.errors_sent.append((self.received_lines[-1] if self.received_lines else "", int(result)))
            self._send(f"error:{int(result)}")

    def _banner(self) -> None:
        self._send("")
        self._send(f"Grbl {VERSION} ['$' for help]")
        if self.state in ("Alarm", "Sleep"):
            self._send("[MSG:'$H'|'$X' to unlock]")

    # ================================================================== main loop
    def _grbl_loop(self) -> None:
        state = {"connected": False}
        while not self._stop.is_set():
            try:
                self._grbl_step(state)
            except Exception as exc:  # keep serving; a test inspects loop_errors
                self.loop_errors.append(exc)
                log.exception("GRBL emulator step failed")
                time.sleep(0.01)

    def _grbl_step(self, st: dict) -> None:
        pty = self._grbl_pty
        connected = st["connected"]
        while self._actions:
            with self._lock:
                self._actions.popleft()()
        if pty.fd is None:  # unplugged
            time.sleep(0.01)
            return
        busy = (
            self.planner or self._homing or self._dwell_until is not None or self.v > 0 or self._boot_until < math.inf
        )
        now_connected, readable = pty.poll(0.002 if busy else 0.01)
        now = time.monotonic()
        if now_connected != connected:
            connected = st["connected"] = now_connected
            if connected:
                self.connects += 1
                if self.reset_on_open or self.connects == 1:
                    self._on_open(now)
                return
        if not connected:
            time.sleep(0.005)
            return
        with self._lock:
            self._advance(now)
            if readable:
                data = pty.read()
                if data:
                    self._receive(data, time.monotonic())
            if self._boot_until <= now:
                self._boot_until = math.inf
                if self.personality == "grbl":
                    self._banner()
                elif self.personality == "marlin":
                    self._send("start")
                    self._send("echo:Marlin 2.1.2")
                    self._send("echo: Last Updated: 2023-01-01 | Author: (none, default config)")
            if not self._stalled and self.personality == "grbl":
                self._process_lines(now)

    def _on_open(self, now: float) -> None:
        self._power_on(now, announce=True)

    # ================================================================== input
    def _receive(self, data: bytes, now: float) -> None:
        booting = self._boot_until < math.inf
        for b in data:
            if P.is_realtime_byte(b):
                if b == 0x3F:
                    self.status_queries += 1
                else:
                    self.realtime_log.append((now, bytes([b])))
                if booting or self._stalled or self.baud_mismatch:
                    continue
                if self.personality == "grbl":
                    self._realtime(b, now)
                continue
            if booting or self.baud_mismatch:
                continue
            if self.personality == "marlin":
                if b == 0x0A:
                    self._send("ok")
                continue
            if (
                len(self.rx) >= self.rx_buffer_size
                and self._held is None
                and not any(c in (0x0A, 0x0D) for c in self.rx)
            ):
                # one long line: GRBL's main loop moves it into its line buffer as it arrives
                self._linebuf += self.rx
                del self._linebuf[1024:]
                self.rx.clear()
            if len(self.rx) >= self.rx_buffer_size:
                # Strict on purpose: bytes of complete lines that arrive while the buffer is full are lost,
                # even though a real board may have parsed a line meanwhile. A host that keeps at most
                # 127 unacknowledged bytes (character counting) can never get here.
                self.rx_overflow = True
                self.rx_overflow_bytes += 1
                continue
            self.rx.append(b)
            self.rx_max_used = max(self.rx_max_used, len(self.rx))

    def _realtime(self, b: int, now: float) -> None:
        if b == 0x3F:  # ?
            if self._homing is None and not self._critical:
                self._status_report(now)
        elif b == 0x21:  # !
            if self.state in ("Run", "Jog"):
                self._hold = True
                self.state, self.substate = "Hold", 1
                if self.planner and self.planner[0].jog:
                    self._cancel = True
            elif self.state == "Idle":
                self.state, self.substate = "Hold", 0
        elif b == 0x7E:  # ~
            if self.state == "Hold" and self.substate == 0:
                self._hold = False
                self.substate = None
                self.state = ("Jog" if self.planner[0].jog else "Run") if self.planner else "Idle"
        elif b == 0x18:  # soft reset
            self._soft_reset(now)
        elif b == 0x85:  # jog cancel
            if self.state == "Jog":
                self._cancel = True
                self._hold = True
        # other extended-ASCII bytes (overrides, door) are accepted and ignored

    def _soft_reset(self, now: float) -> None:
        self.resets += 1
        moving = self.v > 1e-9 or self.state in ("Run", "Jog", "Home") or (self.state == "Hold" and self.substate == 1)
        if self._homing is not None:
            self._alarm(6, now, announce=False)
            self._send("ALARM:6")
        elif moving:
            self._alarm(3, now, announce=False)
            self._send("ALARM:3")
        if self._held_ok:
            self._send("ok")  # the line that hit the soft limit is acknowledged only now
        if self.state not in ("Alarm", "Sleep"):
            self.state = "Idle"
        self._critical = False
        self._reset_common(now)
        self._banner()

    def _alarm(self, code: int, now: float, announce: bool = True) -> None:
        self.alarms_sent.append((now, code))
        self.planner.clear()
        self.v = 0.0
        self._hold = False
        self._homing = None
        self._dwell_until = None
        self.state, self.substate = "Alarm", None
        if announce:
            self._send(f"ALARM:{code}")
        if code in P.CRITICAL_ALARMS:
            self._critical = True
            if announce:
                self._send("[MSG:Reset to continue]")

    # ================================================================== line processing
    def _process_lines(self, now: float) -> None:
        while not self._critical:
            if self._held is None:
                # like GRBL's main loop: characters leave the RX buffer for the line buffer as
                # soon as the previous line is done; a long line never fills the RX buffer
                i = next((k for k, c in enumerate(self.rx) if c in (0x0A, 0x0D)), -1)
                if i < 0:
                    self._linebuf += self.rx
                    self.rx.clear()
                    del self._linebuf[1024:]
                    return
                raw = bytes(self._linebuf + self.rx[:i])
                del self.rx[: i + 1]
                self._linebuf.clear()
                text = raw.decode("latin-1")
                self.received_lines.append(text)
                self._held = text
            result = self._execute(self._held, now)
            if result is None:  # blocked (planner full, dwell, homing)
                return
            self._held = None
            if result == "held":  # soft-limit alarm: ok comes after the reset
                self._held_ok = True
                return
            self._respond(result)

    @staticmethod
    def _clean(line: str) -> str | int:
        """GRBL's pre-parser: drop spaces, comments and control chars, upper-case; error code on overflow."""
        out = []
        depth = 0
        for c in line:
            if depth:
                if c == ")":
                    depth = 0
                continue
            if c == "(":
                depth = 1
            elif c == ";":
                break
            elif c > " " and c <= "~":
                out.append(c.upper() if c.islower() else c)
        text = "".join(out)
        if len(text) > P.MAX_LINE_CHARS:
            return 11
        return text

    def _execute(self, raw: str, now: float):
        """Ok | error code | None (blocked, retry later) | 'held'."""
        if self._homing is not None or self._dwell_until is not None:
            return None
        line = self._clean(raw)
        if isinstance(line, int):
            return line
        if line == "":
            return "ok"
        if line.startswith("$"):
            return self._system(line, now)
        if self.state == "Check":
            return self._gcode(line, now)
        if self.state in ("Alarm", "Sleep") or self.state == "Jog":
            return 9
        return self._gcode(line, now)

    # ------------------------------------------------------------------ $ commands
    def _system(self, line: str, now: float):
        st = self.state
        busy = st in ("Run", "Hold", "Home", "Door") or (st == "Jog")
        if line.startswith("$J="):
            if st not in ("Idle", "Jog"):
                return 8
            return self._jog(line[3:], now)
        if line == "$":
            self._send("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]")
            return "ok"
        if line == "$$":
            if busy:
                return 8
            for n in sorted(self.settings):
                v = self.settings[n]
                self._send(f"${n}={int(v)}" if n in _INTEGER_SETTINGS else f"${n}={v:.3f}")
            return "ok"
        if line == "$G":
            g = self._gc
            self._send(
                f"[GC:G{g['motion']} G{g['wcs']} G{g['plane']} G{g['units']} G{g['distance']} G{g['feed_mode']} "
                f"M{g['spindle']} M{g['coolant']} T{g['tool']} F{g['feed']:g} S{g['speed']:g}]"
            )
            return "ok"
        if line == "$I":
            self._send(f"[VER:{VERSION}.{BUILD_DATE}:]")
            self._send(f"[OPT:V,{self.planner_blocks},{self.rx_buffer_size}]")
            return "ok"
        if line == "$N":
            for i, s in enumerate(self._startup_lines):
                self._send(f"$N{i}={s}")
            return "ok"
        if line == "$#":
            for name in ("G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92"):
                vec = self.wco if name == "G54" else np.zeros(3)
                self._send(f"[{name}:{','.join(f'{v:.3f}' for v in vec)}]")
            self._send("[TLO:0.000]")
            self._send("[PRB:0.000,0.000,0.000:0]")
            return "ok"
        if line == "$X":
            if busy:
                return 8
            if st == "Alarm":
                self.state = "Idle"
                self._send("[MSG:Caution: Unlocked]")
            return "ok"
        if line == "$H":
            if not self.settings.get(22, 0):
                return 5
            if st not in ("Idle", "Alarm"):
                return 8
            return self._start_homing(now)
        if line == "$C":
            if busy:
                return 8
            if self.state == "Check":
                self.state = "Idle"
                self._send("[MSG:Disabled]")
                return "ok"
            self.state = "Check"
            self._send("[MSG:Enabled]")
            return "ok"
        if line == "$SLP":
            self.state = "Sleep"
            self.planner.clear()
            self.v = 0.0
            self._send("[MSG:Sleeping]")
            return "ok"
        m = re.fullmatch(r"\$N(\d)=(.*)", line)
        if m:
            idx = int(m.group(1))
            if idx >= len(self._startup_lines):
                return 3
            self._startup_lines[idx] = m.group(2)
            return "ok"
        m = re.fullmatch(r"\$(\d+)=(.*)", line)
        if m:
            if busy:
                return 8
            n = int(m.group(1))
            if n not in self.settings:
                return 3
            if not re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)", m.group(2)):
                return 2
            value = float(m.group(2))
            if value < 0:
                return 4
            if n in (20,) and value and not self.settings.get(22, 0):
                return 10
            self.settings[n] = value
            return "ok"
        if line.startswith("$RST="):
            if line in ("$RST=$", "$RST=*"):
                self.settings = dict(self.default_settings)
                self._send("[MSG:Restoring defaults]")
                return "ok"
            if line == "$RST=#":
                return "ok"
            return 3
        return 3

    def _start_homing(self, now: float):
        """GRBL's default cycles: Z first (clears the workspace: here it retracts the needle), then X and Y."""
        seek = max(self.settings.get(25, 500.0), 1.0) / 60.0
        pulloff = self.settings.get(27, 1.0)
        start = self.mpos.copy()
        after_z = start.copy()
        after_z[2] = -pulloff
        target = -np.full(3, pulloff)
        t_z = max(abs(start[2] + pulloff) / seek, 0.05)  # search + locate + pull-off, lumped at the seek rate
        t_xy = max(float(np.abs(start[:2] + pulloff).max()) / seek, 0.05)
        self._homing = {
            "t0": now,
            "t_z": now + t_z,
            "t1": now + t_z + t_xy + 0.02,
            "start": start,
            "after_z": after_z,
            "target": target,
        }
        self.state = "Home"
        return None  # the $H line stays held until homing ends

    # ------------------------------------------------------------------ G-code
    def _words(self, line: str):
        """[(letter, value_text)] or an error code."""
        words = []
        pos = 0
        while pos < len(line):
            if not line[pos].isalpha():
                return 1
            m = _WORD_RE.match(line, pos)
            if not m:
                return 2
            words.append((m.group(1), m.group(2)))
            pos = m.end()
        return words

    def _gcode(self, line: str, now: float):
        words = self._words(line)
        if isinstance(words, int):
            return words
        g_codes: list[float] = []
        m_codes: list[float] = []
        values: dict[str, float] = {}
        for letter, text in words:
            v = float(text)
            if letter == "G":
                g_codes.append(v)
            elif letter == "M":
                m_codes.append(v)
            else:
                if letter in values:
                    return 25
                values[letter] = v
        gc = dict(self._gc)
        motion = None
        non_modal = None
        groups: set[str] = set()

        def group(name):
            if name in groups:
                return False
            groups.add(name)
            return True

        for g in g_codes:
            if g != int(g):
                return 20  # G38.x probing, G59.x, G43.1 ...: not in this emulator
            g = int(g)
            if g in (0, 1, 80):
                if not group("motion"):
                    return 21
                motion = g
            elif g in (4, 53):
                if not group("non_modal"):
                    return 21
                non_modal = g
            elif g in (90, 91):
                if not group("distance"):
                    return 21
                gc["distance"] = g
            elif g in (20, 21):
                if not group("units"):
                    return 21
                gc["units"] = g
            elif g in (17, 18, 19):
                if not group("plane"):
                    return 21
                gc["plane"] = g
            elif g in (54, 55, 56, 57, 58, 59):
                if not group("wcs"):
                    return 21
                gc["wcs"] = g
            elif g == 94:
                if not group("feed_mode"):
                    return 21
            else:
                return 20  # G2/G3 arcs, G10, G28, G38, G92, G93 ...: not in this emulator
        for m in m_codes:
            if m != int(m) or int(m) not in (0, 1, 2, 3, 4, 5, 7, 8, 9, 30):
                return 20
            m = int(m)
            if m in (3, 4, 5):
                gc["spindle"] = m
            elif m in (7, 8, 9):
                gc["coolant"] = m
        for letter in values:
            if letter not in "FNPSTXYZ":
                return 20
        if "N" in values:
            n = values["N"]
            if n != int(n) or not 1 <= n <= 9_999_999:
                return 27
            self._line_number = int(n)
        else:
            self._line_number = None
        scale = 25.4 if gc["units"] == 20 else 1.0
        if "F" in values:
            if values["F"] < 0:
                return 4
            gc["feed"] = values["F"] * scale
        if "S" in values:
            if values["S"] < 0:
                return 4
            gc["speed"] = values["S"]
        if "T" in values:
            if values["T"] != int(values["T"]):
                return 23
            gc["tool"] = int(values["T"])
        if motion is not None:
            gc["motion"] = motion
        axes = {k: values[k] * scale for k in "XYZ" if k in values}
        if non_modal == 4:
            if "P" not in values:
                return 28
            if values["P"] < 0:
                return 4
            if axes:
                return 24 if motion is not None else 31
            self._gc = gc
            if self._check_mode_active():
                return "ok"
            self._dwell = float(values["P"])
            return self._dwell_start(now)
        if "P" in values:
            return 36
        if non_modal == 53 and gc["motion"] not in (0, 1):
            return 30
        if not axes:  # G0/G1 without axis words only set the modal state (GRBL ignores the motion)
            self._gc = gc
            return "ok"
        if gc["motion"] == 80:
            return 31
        if gc["motion"] == 1 and gc["feed"] <= 0:
            return 22
        target = self._gc_pos.copy()
        for i, k in enumerate("XYZ"):
            if k not in axes:
                continue
            if non_modal == 53:
                target[i] = axes[k]
            elif gc["distance"] == 91:
                target[i] = self._gc_pos[i] + axes[k]
            else:
                target[i] = axes[k] + self.wco[i]
        self._gc = gc
        if self._check_mode_active():
            return "ok"
        if self.settings.get(20, 0) and not self._within_travel(target):
            self._alarm(2, now)
            return "held"
        rate = math.inf if gc["motion"] == 0 else gc["feed"] / 60.0
        return self._plan(target, rate, jog=False, now=now)

    def _check_mode_active(self) -> bool:
        return self.state == "Check"

    def _dwell_start(self, now: float):
        self._dwell_until = -1.0  # waits for the planner to empty, then dwells
        return None

    def _jog(self, body: str, now: float):
        words = self._words(body)
        if isinstance(words, int):
            return words
        distance, units = self._gc["distance"], self._gc["units"]
        values: dict[str, float] = {}
        g53 = False
        for letter, text in words:
            v = float(text)
            if letter == "G":
                if v == 90 or v == 91:
                    distance = int(v)
                elif v == 20 or v == 21:
                    units = int(v)
                elif v == 53:
                    g53 = True
                else:
                    return 16
            elif letter in "XYZFN":
                if letter in values:
                    return 25
                values[letter] = v
            else:
                return 16
        if "F" not in values:
            return 22
        axes = {k: values[k] for k in "XYZ" if k in values}
        if not axes:
            return 26
        scale = 25.4 if units == 20 else 1.0
        base = self._gc_pos
        target = base.copy()
        for i, k in enumerate("XYZ"):
            if k in axes:
                if g53:
                    target[i] = axes[k] * scale
                elif distance == 91:
                    target[i] = base[i] + axes[k] * scale
                else:
                    target[i] = axes[k] * scale + self.wco[i]
        if self.settings.get(20, 0) and not self._within_travel(target):
            return 15
        return self._plan(target, values["F"] * scale / 60.0, jog=True, now=now)

    def _within_travel(self, target: np.ndarray) -> bool:
        travel = np.array([self.settings[130], self.settings[131], self.settings[132]])
        return bool(np.all(target <= 1e-6) and np.all(target >= -travel - 1e-6))

    # ================================================================== planner
    def _axis_limits(self):
        rate = np.array([self.settings[110], self.settings[111], self.settings[112]]) / 60.0
        acc = np.array([self.settings[120], self.settings[121], self.settings[122]])
        return rate, acc

    def _plan(self, target: np.ndarray, rate_mm_s: float, jog: bool, now: float):
        if len(self.planner) >= self.planner_blocks:
            return None  # planner full: hold the line (and its ok) until a block finishes
        delta = target - self._gc_pos
        length = float(np.linalg.norm(delta))
        if length < 1e-9:
            return "ok"
        unit = delta / length
        max_rate, max_acc = self._axis_limits()
        nz = np.abs(unit) > 1e-12
        v_cap = float(np.min(max_rate[nz] / np.abs(unit[nz])))
        a_cap = float(np.min(max_acc[nz] / np.abs(unit[nz])))
        block = _Block(
            start=self._gc_pos.copy(),
            end=target.copy(),
            unit=unit,
            length=length,
            v_cruise=min(rate_mm_s, v_cap),
            accel=a_cap,
            jog=jog,
            line_number=self._line_number,
        )
        if self.planner:
            prev = self.planner[-1]
            block.v_entry_max = self._junction_speed(prev, block)
        self.planner.append(block)
        self._gc_pos = target.copy()
        self._replan()
        if self.state == "Idle":
            self.state = "Jog" if jog else "Run"
        return "ok"

    def _junction_speed(self, prev: _Block, nxt: _Block) -> float:
        cos_theta = -float(prev.unit @ nxt.unit)
        vmax = min(prev.v_cruise, nxt.v_cruise)
        if cos_theta < -0.999999:
            return vmax  # straight on
        if cos_theta > 0.999999:
            return 0.0  # reversal
        sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
        dev = max(self.settings.get(11, 0.01), 1e-6)
        acc = min(prev.accel, nxt.accel)
        return min(vmax, math.sqrt(acc * dev * sin_half / (1.0 - sin_half)))

    def _replan(self) -> None:
        """Reverse pass: every block can still stop by the end of the queue."""
        v_next = 0.0
        for b in reversed(self.planner):
            b.v_exit = v_next
            v_next = min(b.v_entry_max, math.sqrt(v_next * v_next + 2 * b.accel * b.length))

    def _advance(self, now: float) -> None:
        dt_total = now - self._last_t
        self._last_t = now
        if self._homing is not None:
            h = self._homing
            if now >= h["t1"]:
                self.mpos = h["target"].copy()
                self._gc_pos = self.mpos.copy()
                self._homing = None
                self.state = "Idle"
                self._held = None
                self._respond("ok")
            elif now < h["t_z"]:
                frac = (now - h["t0"]) / max(h["t_z"] - h["t0"], 1e-9)
                self.mpos = h["start"] + (h["after_z"] - h["start"]) * frac
            else:
                frac = (now - h["t_z"]) / max(h["t1"] - h["t_z"], 1e-9)
                self.mpos = h["after_z"] + (h["target"] - h["after_z"]) * min(1.0, frac)
            return
        if self._dwell_until is not None:
            if self._dwell_until < 0 and not self.planner and self.v == 0.0:
                self._dwell_until = now + self._dwell
            if 0 <= self._dwell_until <= now:
                self._dwell_until = None
                self._held = None
                self._respond("ok")
        if not self.planner:
            self.v = 0.0
            return
        t_left = dt_total
        while t_left > 1e-12 and self.planner:
            dt = min(_SUBSTEP_S, t_left)
            t_left -= dt
            b = self.planner[0]
            remaining = b.length - self._s
            if self._hold:
                v_new = max(0.0, self.v - b.accel * dt)
            else:
                v_allow = math.sqrt(b.v_exit * b.v_exit + 2 * b.accel * max(remaining, 0.0))
                v_new = min(self.v + b.accel * dt, b.v_cruise, v_allow)
                if v_new <= 0.0 and remaining > 0:
                    v_new = min(b.accel * dt, b.v_cruise)
            step = 0.5 * (self.v + v_new) * dt
            self.v = v_new
            if step >= remaining:
                self.planner.pop(0)
                self._s = 0.0
                self.mpos = b.end.copy()
                if not self.planner and not self._hold:
                    self.v = 0.0
            else:
                self._s += step
                self.mpos = b.start + b.unit * self._s
            if self._hold and self.v <= 0.0:
                self.v = 0.0
                if self._cancel:  # jog cancel / hold during jog: flush and go idle
                    self.planner.clear()
                    self._s = 0.0
                    self._gc_pos = self.mpos.copy()
                    self._cancel = False
                    self._hold = False
                    self.state, self.substate = "Idle", None
                else:
                    self.substate = 0
                break
        if not self.planner and not self._hold and self.state in ("Run", "Jog"):
            self.v = 0.0
            self.state = "Idle"
        elif self.planner and self.state == "Run" and self.planner[0].jog:
            self.state = "Jog"

    # ================================================================== status
    def _status_report(self, now: float) -> None:
        self._advance(now)
        mask = int(self.settings.get(10, 1))
        state = self.state if self.substate is None else f"{self.state}:{self.substate}"
        fields = [state]
        if mask & 1:
            fields.append("MPos:" + ",".join(f"{v:.3f}" for v in self.mpos))
        else:
            fields.append("WPos:" + ",".join(f"{v:.3f}" for v in self.mpos - self.wco))
        if mask & 2:
            fields.append(f"Bf:{self.planner_blocks - len(self.planner)},{self.rx_buffer_size - len(self.rx)}")
        if self.planner and self.planner[0].line_number is not None and not self.planner[0].jog:
            fields.append(f"Ln:{self.planner[0].line_number}")
        fields.append(f"FS:{self.v * 60.0:.0f},0")
        if self._pins:
            fields.append(f"Pn:{self._pins}")
        self._report_count += 1
        if self._wco_due or self._report_count % 10 == 0:
            fields.append("WCO:" + ",".join(f"{v:.3f}" for v in self.wco))
            self._wco_due = False
        elif self._ov_due == 1 or self._report_count % 20 == 0:
            fields.append("Ov:100,100,100")
            acc = (
                ("S" if self._gc["spindle"] == 3 else "C" if self._gc["spindle"] == 4 else "")
                + ("F" if self._gc["coolant"] == 8 else "")
                + ("M" if self._gc["coolant"] == 7 else "")
            )
            if acc:
                fields.append(f"A:{acc}")
        self._ov_due = max(0, self._ov_due - 1)
        self._send("<" + "|".join(fields) + ">")
        self.status_replies += 1

    # ================================================================== load cell
    def joints(self) -> JointVector:
        return self.config.joints_from_mpos(self.mpos)

    def insert_rate_mm_s(self) -> float:
        if not self.planner or self.v == 0.0:
            return 0.0
        axis_v = self.planner[0].unit * self.v
        return float(self.config.joint_rates_from_axis_rates(axis_v).insert_mm)

    def _default_force(self, t: float, joints: JointVector, rate: float) -> float:
        if self._force_model is None:
            from ir_robot.paths import data_path
            from ir_robot.sim.phantom import Phantom, load_phantom
            from ir_robot.sim.tissue import ForceModelParams, NeedleTissueModel

            phantom = Phantom(load_phantom(data_path("sim", "phantoms", "forearm.yaml")))
            self._force_model = NeedleTissueModel(phantom, ForceModelParams(), needle_diameter_mm=0.9)
        pivot = (joints.x_mm, joints.y_mm, joints.z_mm)
        contact = self._force_model.update(
            pivot, needle_direction(joints.pitch_rad), joints.insert_mm, rate, t, self._force_rng
        )
        return float(contact.measured_force_n)

    def force_now(self, t_mono: float) -> float:
        """Force (N) at monotonic time ``t_mono``: the force model at the current joints plus active spikes."""
        with self._lock:
            joints = self.joints()
            rate = self.insert_rate_mm_s()
            spikes = [s for s in self._spikes if s[0] <= t_mono <= s[1]]
        fn = self._force_fn or self._default_force
        force = float(fn(t_mono - self._t_start, joints, rate))
        return force + sum(s[2] for s in spikes)

    def _loadcell_loop(self) -> None:
        cfg = self.config.loadcell
        period = 1.0 / cfg.sample_rate_hz
        pty = self._lc_pty
        t_next = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < t_next:
                time.sleep(min(t_next - now, 0.05))
                continue
            t_next += period
            if t_next < now - 1.0:  # fell far behind (machine busy): do not burst
                t_next = now + period
            if not pty.connected():
                continue
            pty.read()  # discard anything the host sends
            force = self.force_now(now)
            counts = (
                cfg.tare_counts + cfg.sign * force * cfg.counts_per_n + self._force_rng.normal(0.0, self.noise_counts)
            )
            counts = int(np.clip(round(counts), -(2**23), 2**23 - 1))
            t_emit = time.monotonic()
            pty.write(f"{counts}\r\n".encode("ascii"))
            self.samples.append((t_emit, force))
