"""The emulated GRBL 1.1 board as a pure state machine: bytes and times in, bytes out; no threads, no clock.

:class:`GrblMachine` is everything the board does between its serial pins:
``receive(data, now)`` takes what the host wrote at time ``now`` and ``advance(now)``
lets time pass; both return the bytes the board sends back. Time is whatever the
caller says it is, so a test can drive it with a fake clock and get the same
episode every run; :class:`~ir_robot.devices.emulator.GrblEmulator` runs it on a pty
with the wall clock.

What it does, as GRBL 1.1:

* banner on power-on (after ``boot_delay_s``) and on soft reset; Alarm at start when
  homing is enabled (``$22=1``) with ``[MSG:'$H'|'$X' to unlock]``;
* a 128-byte serial RX buffer with overflow detection (:attr:`rx_overflow`), and
  real-time bytes (``? ! ~ 0x18 0x85``) picked off before the buffer and acted on at once;
* lines executed by the :class:`~ir_robot.devices.emulator.interpreter.Interpreter`,
  motion by the :class:`~ir_robot.devices.emulator.planner.MotionPlanner`; feed hold
  with deceleration, resume, jog cancel; homing (status queries are not answered
  while homing); dwell after the planner empties;
* soft limits: ALARM:2 for G-code (critical: nothing but a reset is answered);
* status reports ``<State|MPos|Bf|FS|WCO|Ov|Pn|Ln>`` following ``$10``.

Everything a test checks is recorded with the caller's time stamps:
:attr:`received_lines`, :attr:`realtime_log`, :attr:`alarms_sent`, :attr:`rx_max_used`...
"""

from __future__ import annotations

import math

import numpy as np

from ir_robot.devices import grbl as P
from ir_robot.devices.config import RigConfig
from ir_robot.devices.emulator import defaults
from ir_robot.devices.emulator.faults import MARLIN_BANNER, scramble
from ir_robot.devices.emulator.interpreter import Interpreter, Result
from ir_robot.devices.emulator.planner import Block, HomingCycle, MotionPlanner

PERSONALITIES = ("grbl", "silent", "marlin")


class GrblMachine:
    """GRBL 1.1 behind its serial pins, driven by :meth:`receive` and :meth:`advance` with explicit times.

    Parameters
    ----------
    config: the rig config whose expected ``$`` settings the board holds.
    rng: the Generator behind the bytes of a baud mismatch.
    now: the time of power-on.
    settings: ``{N: value}`` overriding the board's ``$N``.
    wco_mm: work coordinate offset (G54) reported as ``WCO``.
    boot_delay_s: time from a reset to the banner.
    personality: ``"grbl"``; ``"silent"`` (never answers) or ``"marlin"`` (a 3D printer).
    baud_mismatch: everything sent arrives as garbage and nothing received is understood.
    """

    def __init__(
        self,
        config: RigConfig,
        *,
        rng: np.random.Generator,
        now: float,
        settings: dict[int, float] | None = None,
        wco_mm=(0.0, 0.0, 0.0),
        boot_delay_s: float = 0.05,
        personality: str = "grbl",
        baud_mismatch: bool = False,
        rx_buffer_size: int = 128,
        planner_blocks: int = 15,
        start_mpos=(0.0, 0.0, 0.0),
    ) -> None:
        if personality not in PERSONALITIES:
            raise ValueError(f"personality must be 'grbl', 'silent' or 'marlin', got {personality!r}")
        self.rng = rng
        self.default_settings: dict[int, float] = {
            **defaults.DEFAULT_SETTINGS,
            **{k: float(v) for k, v in config.expected_settings().items()},
        }
        self.settings: dict[int, float] = {
            **self.default_settings,
            **{int(k): float(v) for k, v in (settings or {}).items()},
        }
        self.wco = np.array(wco_mm, dtype=float)
        self.boot_delay_s = float(boot_delay_s)
        self.personality = personality
        self.baud_mismatch = baud_mismatch
        self.rx_buffer_size = int(rx_buffer_size)
        self.planner_blocks = int(planner_blocks)
        self.start_mpos = np.array(start_mpos, dtype=float)
        #: nothing is processed or sent while stalled; real-time bytes are still logged
        self.stalled = False
        #: input pins reported as triggered in ``Pn:`` (e.g. ``"PX"``)
        self.pins = ""

        # recorded for tests -------------------------------------------------------------
        self.received_lines: list[str] = []  # every line taken from the RX buffer, in order
        self.realtime_log: list[tuple[float, bytes]] = []  # (t, byte) for real-time bytes except '?'
        self.status_queries = 0
        self.status_replies = 0
        self.ok_sent = 0
        self.errors_sent: list[tuple[str, int]] = []
        self.alarms_sent: list[tuple[float, int]] = []
        self.rx_overflow = False
        self.rx_overflow_bytes = 0
        self.rx_max_used = 0
        self.resets = 0

        self._out = bytearray()
        self.motion = MotionPlanner(self.planner_blocks, self.start_mpos)
        self.interpreter = Interpreter(self)
        self.power_on(now, announce=False)

    # ================================================================== the seam
    def receive(self, data: bytes, now: float) -> bytes:
        """Bytes the host wrote, arriving at ``now``; returns what the board sends back by then."""
        self._advance(now)
        self._take(data, now)
        self._service(now)
        return self._flush()

    def advance(self, now: float) -> bytes:
        """Let time pass until ``now`` (motion, homing, dwell, boot, queued lines); returns what the board sends."""
        self._advance(now)
        self._service(now)
        return self._flush()

    def power_on(self, now: float, announce: bool = True) -> bytes:
        """Power-on (or an Arduino reset by DTR): position back to the start, banner after the boot delay."""
        self.motion.mpos = self.start_mpos.copy()
        self.state = "Alarm" if self.settings.get(22, 0) else "Idle"
        self._reset_common(now)
        self._boot_until = now + self.boot_delay_s if announce else math.inf
        self._critical = False
        return self._flush()

    def push_alarm(self, code: int, now: float) -> bytes:
        """Throw ``ALARM:code`` at ``now`` (1 and 2 are critical: the board then waits for a reset)."""
        self.alarm(code, now)
        return self._flush()

    @property
    def busy(self) -> bool:
        """Something is happening that time alone moves on (motion, homing, dwell, boot)."""
        m = self.motion
        return bool(m.blocks or self.homing is not None or self.dwell_until is not None or m.v > 0) or (
            self._boot_until < math.inf
        )

    # ------------------------------------------------------------------ motion state, as tests read it
    @property
    def mpos(self) -> np.ndarray:
        """Machine position (mm, X Y Z)."""
        return self.motion.mpos

    @mpos.setter
    def mpos(self, value) -> None:
        self.motion.mpos = np.asarray(value, dtype=float)

    @property
    def v(self) -> float:
        """Path speed (mm/s)."""
        return self.motion.v

    @property
    def planner(self) -> list[Block]:
        """The blocks queued in the planner, the executing one first."""
        return self.motion.blocks

    # ================================================================== state
    def _reset_common(self, now: float) -> None:
        self.rx = bytearray()
        self._linebuf = bytearray()
        self._held: str | None = None
        self._held_ok = False
        self.motion.reset()
        self.substate: int | None = None
        self.dwell_until: float | None = None
        self.dwell_s = 0.0
        self.homing: HomingCycle | None = None
        self.interpreter.reset()
        self._report_count = 0
        self._wco_due = True
        self._ov_due = 2
        self._last_t = now

    # ================================================================== output
    def send(self, text: str) -> None:
        """Queue one line for the host (dropped while stalled, scrambled on a baud mismatch)."""
        if self.stalled:
            return
        data = text.encode("ascii") + b"\r\n"
        if self.baud_mismatch:
            data = scramble(self.rng, data)
        self._out += data

    def _flush(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _respond(self, result: str | int) -> None:
        # count before sending: a client may act on the reply before the caller runs again
        if result == "ok":
            self.ok_sent += 1
            self.send("ok")
        else:
            self.errors_sent.append((self.received_lines[-1] if self.received_lines else "", int(result)))
            self.send(f"error:{int(result)}")

    def _banner(self) -> None:
        self.send("")
        self.send(f"Grbl {defaults.VERSION} ['$' for help]")
        if self.state in ("Alarm", "Sleep"):
            self.send("[MSG:'$H'|'$X' to unlock]")

    def _service(self, now: float) -> None:
        if self._boot_until <= now:
            self._boot_until = math.inf
            if self.personality == "grbl":
                self._banner()
            elif self.personality == "marlin":
                for line in MARLIN_BANNER:
                    self.send(line)
        if not self.stalled and self.personality == "grbl":
            self._process_lines(now)

    # ================================================================== input
    def _take(self, data: bytes, now: float) -> None:
        booting = self._boot_until < math.inf
        for b in data:
            if P.is_realtime_byte(b):
                if b == 0x3F:
                    self.status_queries += 1
                else:
                    self.realtime_log.append((now, bytes([b])))
                if booting or self.stalled or self.baud_mismatch:
                    continue
                if self.personality == "grbl":
                    self._realtime(b, now)
                continue
            if booting or self.baud_mismatch:
                continue
            if self.personality == "marlin":
                if b == 0x0A:
                    self.send("ok")
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
        m = self.motion
        if b == 0x3F:  # ?
            if self.homing is None and not self._critical:
                self._status_report(now)
        elif b == 0x21:  # !
            if self.state in ("Run", "Jog"):
                m.hold = True
                self.state, self.substate = "Hold", 1
                if m.blocks and m.blocks[0].jog:
                    m.cancel = True
            elif self.state == "Idle":
                self.state, self.substate = "Hold", 0
        elif b == 0x7E:  # ~
            if self.state == "Hold" and self.substate == 0:
                m.hold = False
                self.substate = None
                self.state = ("Jog" if m.blocks[0].jog else "Run") if m.blocks else "Idle"
        elif b == 0x18:  # soft reset
            self._soft_reset(now)
        elif b == 0x85:  # jog cancel
            if self.state == "Jog":
                m.cancel = True
                m.hold = True
        # other extended-ASCII bytes (overrides, door) are accepted and ignored

    def _soft_reset(self, now: float) -> None:
        self.resets += 1
        moving = (
            self.motion.v > 1e-9
            or self.state in ("Run", "Jog", "Home")
            or (self.state == "Hold" and self.substate == 1)
        )
        if self.homing is not None:
            self.alarm(6, now, announce=False)
            self.send("ALARM:6")
        elif moving:
            self.alarm(3, now, announce=False)
            self.send("ALARM:3")
        if self._held_ok:
            self.send("ok")  # the line that hit the soft limit is acknowledged only now
        if self.state not in ("Alarm", "Sleep"):
            self.state = "Idle"
        self._critical = False
        self._reset_common(now)
        self._banner()

    def alarm(self, code: int, now: float, announce: bool = True) -> None:
        """Enter Alarm: motion, homing and dwell stop at once; critical alarms wait for a reset."""
        self.alarms_sent.append((now, code))
        self.motion.blocks.clear()
        self.motion.v = 0.0
        self.motion.hold = False
        self.homing = None
        self.dwell_until = None
        self.state, self.substate = "Alarm", None
        if announce:
            self.send(f"ALARM:{code}")
        if code in P.CRITICAL_ALARMS:
            self._critical = True
            if announce:
                self.send("[MSG:Reset to continue]")

    # ================================================================== what the interpreter asks for
    def plan(self, target: np.ndarray, rate_mm_s: float, *, jog: bool) -> Result:
        """Queue a move: ``"ok"``, or None while the planner is full (the line and its ok wait)."""
        queued = self.motion.plan(
            target, rate_mm_s, jog=jog, line_number=self.interpreter.line_number, settings=self.settings
        )
        if queued == "full":
            return None
        if queued == "queued" and self.state == "Idle":
            self.state = "Jog" if jog else "Run"
        return "ok"

    def start_dwell(self, seconds: float) -> None:
        """G4: wait for the planner to empty, then ``seconds``; the line's ``ok`` comes at the end."""
        self.dwell_s = seconds
        self.dwell_until = -1.0

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
            if self.homing is not None or self.dwell_until is not None:
                return  # blocked until homing or the dwell ends
            result = self.interpreter.execute(self._held, now)
            if result is None:  # blocked (planner full, dwell, homing)
                return
            self._held = None
            if result == "held":  # soft-limit alarm: ok comes after the reset
                self._held_ok = True
                return
            self._respond(result)

    # ================================================================== time
    def _advance(self, now: float) -> None:
        dt_total = now - self._last_t
        self._last_t = now
        m = self.motion
        if self.homing is not None:
            h = self.homing
            if h.done(now):
                m.mpos = h.target.copy()
                m.end = m.mpos.copy()
                self.homing = None
                self.state = "Idle"
                self._held = None
                self._respond("ok")
            else:
                m.mpos = h.position(now)
            return
        if self.dwell_until is not None:
            if self.dwell_until < 0 and not m.blocks and m.v == 0.0:
                self.dwell_until = now + self.dwell_s
            if 0 <= self.dwell_until <= now:
                self.dwell_until = None
                self._held = None
                self._respond("ok")
        if not m.blocks:
            m.v = 0.0
            return
        stopped = m.advance(dt_total)
        if stopped == "cancelled":
            self.state, self.substate = "Idle", None
        elif stopped == "held":
            self.substate = 0
        if not m.blocks and not m.hold and self.state in ("Run", "Jog"):
            m.v = 0.0
            self.state = "Idle"
        elif m.blocks and self.state == "Run" and m.blocks[0].jog:
            self.state = "Jog"

    # ================================================================== status
    def _status_report(self, now: float) -> None:
        self._advance(now)
        m = self.motion
        mask = int(self.settings.get(10, 1))
        state = self.state if self.substate is None else f"{self.state}:{self.substate}"
        fields = [state]
        if mask & 1:
            fields.append("MPos:" + ",".join(f"{v:.3f}" for v in m.mpos))
        else:
            fields.append("WPos:" + ",".join(f"{v:.3f}" for v in m.mpos - self.wco))
        if mask & 2:
            fields.append(f"Bf:{self.planner_blocks - len(m.blocks)},{self.rx_buffer_size - len(self.rx)}")
        if m.blocks and m.blocks[0].line_number is not None and not m.blocks[0].jog:
            fields.append(f"Ln:{m.blocks[0].line_number}")
        fields.append(f"FS:{m.v * 60.0:.0f},0")
        if self.pins:
            fields.append(f"Pn:{self.pins}")
        self._report_count += 1
        if self._wco_due or self._report_count % 10 == 0:
            fields.append("WCO:" + ",".join(f"{v:.3f}" for v in self.wco))
            self._wco_due = False
        elif self._ov_due == 1 or self._report_count % 20 == 0:
            fields.append("Ov:100,100,100")
            gc = self.interpreter.gc
            acc = (
                ("S" if gc.spindle == 3 else "C" if gc.spindle == 4 else "")
                + ("F" if gc.coolant == 8 else "")
                + ("M" if gc.coolant == 7 else "")
            )
            if acc:
                fields.append(f"A:{acc}")
        self._ov_due = max(0, self._ov_due - 1)
        self.send("<" + "|".join(fields) + ">")
        self.status_replies += 1
