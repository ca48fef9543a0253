"""The emulated board's line interpreter: GRBL's pre-parser, ``$`` system commands, G-code words and modal state.

:class:`Interpreter` executes one line taken from the RX buffer and answers as GRBL
1.1 does: ``"ok"``, an ``error:N`` code, ``None`` when the line must wait (planner
full, dwell, homing) or ``"held"`` when a soft-limit alarm holds its ``ok`` until
the reset. It owns the parser's modal state (``$G``), the last ``N`` line number and
the startup lines; everything else (run state, settings, motion) it reads and
changes on the board it is given (:class:`Board`: the
:class:`~ir_robot.devices.emulator.machine.GrblMachine`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ir_robot.devices import grbl as P
from ir_robot.devices.emulator import defaults
from ir_robot.devices.emulator.planner import HomingCycle, MotionPlanner

_WORD_RE = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))")

#: what executing a line gives: ``"ok"``, an error code, ``None`` (wait and retry) or ``"held"``
Result = str | int | None


@dataclass
class GcModal:
    """The G-code parser's modal state as ``$G`` reports it (feed in mm/min, always metric inside)."""

    motion: int = 0
    distance: int = 90
    units: int = 21
    feed: float = 0.0
    wcs: int = 54
    plane: int = 17
    feed_mode: int = 94
    spindle: int = 5
    coolant: int = 9
    tool: int = 0
    speed: float = 0.0

    def report(self) -> str:
        """The ``[GC:...]`` line."""
        return (
            f"[GC:G{self.motion} G{self.wcs} G{self.plane} G{self.units} G{self.distance} G{self.feed_mode} "
            f"M{self.spindle} M{self.coolant} T{self.tool} F{self.feed:g} S{self.speed:g}]"
        )


def clean_line(line: str) -> str | int:
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


def split_words(line: str) -> list[tuple[str, str]] | int:
    """``[(letter, value_text)]`` of a cleaned line, or the error code of its first bad word."""
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


def within_travel(target: np.ndarray, settings: Mapping[int, float]) -> bool:
    """Whether a machine position lies inside the soft-limit travel ``MPos in [-$130..132, 0]``."""
    travel = np.array([settings[130], settings[131], settings[132]])
    return bool(np.all(target <= 1e-6) and np.all(target >= -travel - 1e-6))


class Board(Protocol):
    """What the interpreter reads and changes on the board it runs on."""

    state: str
    settings: dict[int, float]
    default_settings: dict[int, float]
    planner_blocks: int
    rx_buffer_size: int
    wco: np.ndarray
    motion: MotionPlanner
    homing: HomingCycle | None

    def send(self, text: str) -> None:
        """Queue one line for the host."""

    def alarm(self, code: int, now: float, announce: bool = True) -> None:
        """Enter Alarm with ``code``."""

    def plan(self, target: np.ndarray, rate_mm_s: float, *, jog: bool) -> Result:
        """Queue a move: ``"ok"``, or None while the planner is full."""

    def start_dwell(self, seconds: float) -> None:
        """Dwell once the planner is empty; the line's ``ok`` comes at the end."""


class Interpreter:
    """Executes cleaned lines against a :class:`Board`, keeping the parser's own state."""

    def __init__(self, machine: Board) -> None:
        self.m = machine
        self.startup_lines = ["", ""]
        self.reset()

    def reset(self) -> None:
        """Back to the power-on modal state (the startup lines survive a reset)."""
        self.gc = GcModal()
        self.line_number: int | None = None

    def execute(self, raw: str, now: float) -> Result:
        """``"ok"`` | error code | ``None`` (blocked, retry later) | ``"held"`` for one received line."""
        line = clean_line(raw)
        if isinstance(line, int):
            return line
        if line == "":
            return "ok"
        if line.startswith("$"):
            return self._system(line, now)
        state = self.m.state
        if state == "Check":
            return self._gcode(line, now)
        if state in ("Alarm", "Sleep") or state == "Jog":
            return 9
        return self._gcode(line, now)

    # ------------------------------------------------------------------ $ commands
    def _system(self, line: str, now: float) -> Result:
        m = self.m
        st = m.state
        busy = st in ("Run", "Hold", "Home", "Door") or (st == "Jog")
        if line.startswith("$J="):
            if st not in ("Idle", "Jog"):
                return 8
            return self._jog(line[3:])
        if line == "$":
            m.send("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]")
            return "ok"
        if line == "$$":
            if busy:
                return 8
            for n in sorted(m.settings):
                v = m.settings[n]
                m.send(f"${n}={int(v)}" if n in defaults.INTEGER_SETTINGS else f"${n}={v:.3f}")
            return "ok"
        if line == "$G":
            m.send(self.gc.report())
            return "ok"
        if line == "$I":
            m.send(f"[VER:{defaults.VERSION}.{defaults.BUILD_DATE}:]")
            m.send(f"[OPT:V,{m.planner_blocks},{m.rx_buffer_size}]")
            return "ok"
        if line == "$N":
            for i, s in enumerate(self.startup_lines):
                m.send(f"$N{i}={s}")
            return "ok"
        if line == "$#":
            for name in ("G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92"):
                vec = m.wco if name == "G54" else np.zeros(3)
                m.send(f"[{name}:{','.join(f'{v:.3f}' for v in vec)}]")
            m.send("[TLO:0.000]")
            m.send("[PRB:0.000,0.000,0.000:0]")
            return "ok"
        if line == "$X":
            if busy:
                return 8
            if st == "Alarm":
                m.state = "Idle"
                m.send("[MSG:Caution: Unlocked]")
            return "ok"
        if line == "$H":
            if not m.settings.get(22, 0):
                return 5
            if st not in ("Idle", "Alarm"):
                return 8
            m.homing = HomingCycle.begin(now, m.motion.mpos, m.settings)
            m.state = "Home"
            return None  # the $H line stays held until homing ends
        if line == "$C":
            if busy:
                return 8
            if m.state == "Check":
                m.state = "Idle"
                m.send("[MSG:Disabled]")
                return "ok"
            m.state = "Check"
            m.send("[MSG:Enabled]")
            return "ok"
        if line == "$SLP":
            m.state = "Sleep"
            m.motion.blocks.clear()
            m.motion.v = 0.0
            m.send("[MSG:Sleeping]")
            return "ok"
        match = re.fullmatch(r"\$N(\d)=(.*)", line)
        if match:
            idx = int(match.group(1))
            if idx >= len(self.startup_lines):
                return 3
            self.startup_lines[idx] = match.group(2)
            return "ok"
        match = re.fullmatch(r"\$(\d+)=(.*)", line)
        if match:
            if busy:
                return 8
            n = int(match.group(1))
            if n not in m.settings:
                return 3
            if not re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)", match.group(2)):
                return 2
            value = float(match.group(2))
            if value < 0:
                return 4
            if n in (20,) and value and not m.settings.get(22, 0):
                return 10
            m.settings[n] = value
            return "ok"
        if line.startswith("$RST="):
            if line in ("$RST=$", "$RST=*"):
                m.settings = dict(m.default_settings)
                m.send("[MSG:Restoring defaults]")
                return "ok"
            if line == "$RST=#":
                return "ok"
            return 3
        return 3

    # ------------------------------------------------------------------ G-code
    def _gcode(self, line: str, now: float) -> Result:
        m = self.m
        words = split_words(line)
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
        gc = dataclasses.replace(self.gc)
        motion = None
        non_modal = None
        groups: set[str] = set()

        def group(name: str) -> bool:
            if name in groups:
                return False
            groups.add(name)
            return True

        for code in g_codes:
            if code != int(code):
                return 20  # G38.x probing, G59.x, G43.1 ...: not in this emulator
            g = int(code)
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
                gc.distance = g
            elif g in (20, 21):
                if not group("units"):
                    return 21
                gc.units = g
            elif g in (17, 18, 19):
                if not group("plane"):
                    return 21
                gc.plane = g
            elif g in (54, 55, 56, 57, 58, 59):
                if not group("wcs"):
                    return 21
                gc.wcs = g
            elif g == 94:
                if not group("feed_mode"):
                    return 21
            else:
                return 20  # G2/G3 arcs, G10, G28, G38, G92, G93 ...: not in this emulator
        for code in m_codes:
            if code != int(code) or int(code) not in (0, 1, 2, 3, 4, 5, 7, 8, 9, 30):
                return 20
            mc = int(code)
            if mc in (3, 4, 5):
                gc.spindle = mc
            elif mc in (7, 8, 9):
                gc.coolant = mc
        for letter in values:
            if letter not in "FNPSTXYZ":
                return 20
        if "N" in values:
            n = values["N"]
            if n != int(n) or not 1 <= n <= 9_999_999:
                return 27
            self.line_number = int(n)
        else:
            self.line_number = None
        scale = 25.4 if gc.units == 20 else 1.0
        if "F" in values:
            if values["F"] < 0:
                return 4
            gc.feed = values["F"] * scale
        if "S" in values:
            if values["S"] < 0:
                return 4
            gc.speed = values["S"]
        if "T" in values:
            if values["T"] != int(values["T"]):
                return 23
            gc.tool = int(values["T"])
        if motion is not None:
            gc.motion = motion
        axes = {k: values[k] * scale for k in "XYZ" if k in values}
        if non_modal == 4:
            if "P" not in values:
                return 28
            if values["P"] < 0:
                return 4
            if axes:
                return 24 if motion is not None else 31
            self.gc = gc
            if m.state == "Check":
                return "ok"
            m.start_dwell(float(values["P"]))
            return None  # waits for the planner to empty, then dwells; the machine answers ok
        if "P" in values:
            return 36
        if non_modal == 53 and gc.motion not in (0, 1):
            return 30
        if not axes:  # G0/G1 without axis words only set the modal state (GRBL ignores the motion)
            self.gc = gc
            return "ok"
        if gc.motion == 80:
            return 31
        if gc.motion == 1 and gc.feed <= 0:
            return 22
        base = m.motion.end
        target = base.copy()
        for i, k in enumerate("XYZ"):
            if k not in axes:
                continue
            if non_modal == 53:
                target[i] = axes[k]
            elif gc.distance == 91:
                target[i] = base[i] + axes[k]
            else:
                target[i] = axes[k] + m.wco[i]
        self.gc = gc
        if m.state == "Check":
            return "ok"
        if m.settings.get(20, 0) and not within_travel(target, m.settings):
            m.alarm(2, now)
            return "held"
        rate = float("inf") if gc.motion == 0 else gc.feed / 60.0
        return m.plan(target, rate, jog=False)

    def _jog(self, body: str) -> Result:
        m = self.m
        words = split_words(body)
        if isinstance(words, int):
            return words
        distance, units = self.gc.distance, self.gc.units
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
        base = m.motion.end
        target = base.copy()
        for i, k in enumerate("XYZ"):
            if k in axes:
                if g53:
                    target[i] = axes[k] * scale
                elif distance == 91:
                    target[i] = base[i] + axes[k] * scale
                else:
                    target[i] = axes[k] * scale + m.wco[i]
        if m.settings.get(20, 0) and not within_travel(target, m.settings):
            return 15
        return m.plan(target, values["F"] * scale / 60.0, jog=True)
