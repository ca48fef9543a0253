r"""GRBL 1.1 serial protocol: parsing, formatting and character counting. No I/O.

Everything here works on bytes and strings so it can be tested byte for byte
without a port; :mod:`ir_robot.devices.serial_rig` does the I/O and
:mod:`ir_robot.devices.emulator` plays the board.

Protocol summary (GRBL 1.1 interface docs):

* Host -> board: G-code and ``$`` lines ending in ``\\n``; each gets ``ok`` or
  ``error:N``. Real-time bytes (``?`` status, ``!`` feed hold, ``~`` resume,
  0x18 soft reset, 0x85 jog cancel, 0x90-0x9D overrides) are acted on at once
  and never enter the 128-byte RX buffer.
* Board -> host: responses (``ok``, ``error:N``) and pushes: ``<...>`` status
  reports, the ``Grbl 1.1h ['$' for help]`` banner, ``ALARM:N``, ``$N=value``
  settings, ``[MSG:]``, ``[GC:]``, ``[HLP:]``, ``[VER:]``, ``[OPT:]``, ``[echo:]``,
  ``[G54:]``.. ``[PRB:]`` parameters and ``>line:ok`` startup-line results.

:func:`parse_line` turns one received line into one message object or raises
:class:`ProtocolError` saying what is wrong with it.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ir_robot.core.errors import ProtocolError, RigError

# ---------------------------------------------------------------------------- real-time bytes

STATUS_QUERY = b"?"
FEED_HOLD = b"!"
CYCLE_START = b"~"
SOFT_RESET = b"\x18"
SAFETY_DOOR = b"\x84"
JOG_CANCEL = b"\x85"
#: feed override: 100 %, +10 %, -10 %, +1 %, -1 %; rapid: 100 %, 50 %, 25 %;
#: spindle: 100 %, +10, -10, +1, -1, stop; coolant toggles flood, mist
OVERRIDES = {
    "feed_100": b"\x90",
    "feed_plus_10": b"\x91",
    "feed_minus_10": b"\x92",
    "feed_plus_1": b"\x93",
    "feed_minus_1": b"\x94",
    "rapid_100": b"\x95",
    "rapid_50": b"\x96",
    "rapid_25": b"\x97",
    "spindle_100": b"\x99",
    "spindle_plus_10": b"\x9a",
    "spindle_minus_10": b"\x9b",
    "spindle_plus_1": b"\x9c",
    "spindle_minus_1": b"\x9d",
    "spindle_stop": b"\x9e",
    "flood_toggle": b"\xa0",
    "mist_toggle": b"\xa1",
}
#: bytes GRBL picks off the serial stream at once (all extended-ASCII bytes too)
REALTIME_ASCII = frozenset(b"?!~\x18")


def is_realtime_byte(b: int) -> bool:
    """True for a byte GRBL's serial interrupt intercepts instead of buffering."""
    return b in REALTIME_ASCII or b >= 0x80


# ---------------------------------------------------------------------------- code tables

#: error:N meanings, GRBL 1.1 (codes 18-19 are unused)
ERROR_CODES: dict[int, str] = {
    1: "Expected command letter: G-code words consist of a letter and a value; the letter was not found.",
    2: "Bad number format: missing the expected G-code word value or the number format is not valid.",
    3: "Invalid statement: the '$' system command was not recognised or supported.",
    4: "Value < 0: negative value received for an expected positive value.",
    5: "Setting disabled: homing cycle is not enabled via settings ($22=0).",
    6: "Value < 3 usec: minimum step pulse time must be greater than 3 usec.",
    7: "EEPROM read fail: reset and restored to default values.",
    8: "Not idle: this '$' command cannot be used unless GRBL is Idle.",
    9: "G-code lock: G-code commands are locked out during alarm or jog state (unlock with $X or home with $H).",
    10: "Homing not enabled: soft limits cannot be enabled without homing also enabled.",
    11: "Line overflow: max characters per line exceeded; the line was not executed.",
    12: "Step rate > 30 kHz: the '$' setting value would exceed the maximum step rate supported.",
    13: "Check door: safety door detected as opened and door state initiated.",
    14: "Line length exceeded: build info or startup line exceeded the EEPROM line length limit.",
    15: "Travel exceeded: jog target exceeds machine travel; the jog was ignored.",
    16: "Invalid jog command: no '=' or it contains prohibited G-code.",
    17: "Setting disabled: laser mode requires PWM output.",
    20: "Unsupported command: unsupported or invalid G-code command found in the block.",
    21: "Modal group violation: more than one G-code command from the same modal group in the block.",
    22: "Undefined feed rate: feed rate has not yet been set or is undefined.",
    23: "Invalid gcode ID:23: G-code command in the block requires an integer value.",
    24: "Invalid gcode ID:24: more than one G-code command that requires axis words found in the block.",
    25: "Invalid gcode ID:25: repeated G-code word found in the block.",
    26: "Invalid gcode ID:26: no axis words found in the block for a command or modal state that needs them.",
    27: "Invalid gcode ID:27: line number value is invalid (valid range 1 - 9,999,999).",
    28: "Invalid gcode ID:28: G-code command is missing a required value word (P or L).",
    29: "Invalid gcode ID:29: G59.x work coordinate systems are not supported.",
    30: "Invalid gcode ID:30: G53 only allowed with G0 and G1 motion modes.",
    31: "Invalid gcode ID:31: axis words found in the block when no command or modal state uses them.",
    32: "Invalid gcode ID:32: G2 and G3 arcs require at least one in-plane axis word.",
    33: "Invalid gcode ID:33: motion command target is invalid.",
    34: "Invalid gcode ID:34: arc radius value is invalid.",
    35: "Invalid gcode ID:35: G2 and G3 arcs require at least one in-plane offset word.",
    36: "Invalid gcode ID:36: unused value words found in the block.",
    37: "Invalid gcode ID:37: G43.1 dynamic tool length offset is not assigned to the configured tool length axis.",
    38: "Invalid gcode ID:38: tool number greater than the max supported value.",
}

#: ALARM:N meanings, GRBL 1.1
ALARM_CODES: dict[int, str] = {
    1: "Hard limit triggered. Machine position is likely lost due to the sudden halt; re-homing is highly recommended.",
    2: "Soft limit: G-code motion target exceeds machine travel. Machine position retained; the alarm may be unlocked.",
    3: "Reset while in motion. Position is likely lost (missed steps); re-homing is highly recommended.",
    4: "Probe fail: the probe is not in the expected initial state before starting the probe cycle.",
    5: "Probe fail: the probe did not contact the workpiece within the programmed travel.",
    6: "Homing fail: the active homing cycle was reset.",
    7: "Homing fail: the safety door was opened during the homing cycle.",
    8: "Homing fail: pull-off travel failed to clear the limit switch. "
    "Increase the pull-off setting ($27) or check wiring.",
    9: "Homing fail: could not find the limit switch within the search distance. "
    "Check max travel ($130-132), pull-off and wiring.",
}

#: alarms after which GRBL needs a soft reset before it answers again ("[MSG:Reset to continue]")
CRITICAL_ALARMS = frozenset({1, 2})

#: $N settings: (description, unit)
SETTING_NAMES: dict[int, tuple[str, str]] = {
    0: ("step pulse time", "us"),
    1: ("step idle delay", "ms"),
    2: ("step pulse invert", "mask"),
    3: ("step direction invert", "mask"),
    4: ("invert step enable pin", "bool"),
    5: ("invert limit pins", "bool"),
    6: ("invert probe pin", "bool"),
    10: ("status report options", "mask"),
    11: ("junction deviation", "mm"),
    12: ("arc tolerance", "mm"),
    13: ("report in inches", "bool"),
    20: ("soft limits enable", "bool"),
    21: ("hard limits enable", "bool"),
    22: ("homing cycle enable", "bool"),
    23: ("homing direction invert", "mask"),
    24: ("homing locate feed rate", "mm/min"),
    25: ("homing search seek rate", "mm/min"),
    26: ("homing switch debounce delay", "ms"),
    27: ("homing switch pull-off distance", "mm"),
    30: ("maximum spindle speed", "RPM"),
    31: ("minimum spindle speed", "RPM"),
    32: ("laser-mode enable", "bool"),
    100: ("X steps/mm", "steps/mm"),
    101: ("Y steps/mm", "steps/mm"),
    102: ("Z steps/mm", "steps/mm"),
    110: ("X max rate", "mm/min"),
    111: ("Y max rate", "mm/min"),
    112: ("Z max rate", "mm/min"),
    120: ("X acceleration", "mm/s^2"),
    121: ("Y acceleration", "mm/s^2"),
    122: ("Z acceleration", "mm/s^2"),
    130: ("X max travel", "mm"),
    131: ("Y max travel", "mm"),
    132: ("Z max travel", "mm"),
}

#: machine states and the allowed sub-state codes
STATES: dict[str, range | None] = {
    "Idle": None,
    "Run": None,
    "Hold": range(0, 2),
    "Jog": None,
    "Alarm": None,
    "Door": range(0, 4),
    "Check": None,
    "Home": None,
    "Sleep": None,
}
PIN_LETTERS = frozenset("XYZAPDHRS")
ACCESSORY_LETTERS = frozenset("SCFM")
#: largest line GRBL accepts (LINE_BUFFER_SIZE 80 minus the terminator)
MAX_LINE_CHARS = 79
#: longest line the host accepts from the board before declaring it garbage
MAX_RX_LINE_BYTES = 256


def error_meaning(code: int) -> str:
    """What GRBL 1.1's ``error:N`` means, from its table (an unknown code says so)."""
    return ERROR_CODES.get(code, f"unknown error code {code} (not in the GRBL 1.1 table)")


def alarm_meaning(code: int) -> str:
    """What GRBL 1.1's ``ALARM:N`` means, from its table (an unknown code says so)."""
    return ALARM_CODES.get(code, f"unknown alarm code {code} (not in the GRBL 1.1 table)")


def setting_name(number: int) -> str:
    """A ``$N`` setting with its meaning and unit, for error messages (``$110 (x max rate, mm/min)``)."""
    desc, unit = SETTING_NAMES.get(number, ("unknown setting", ""))
    return f"${number} ({desc}{', ' + unit if unit else ''})"


# ---------------------------------------------------------------------------- exceptions


class GrblCommandError(RigError):
    """GRBL answered ``error:N`` to a line. ``code``, ``meaning`` and the offending ``line``."""

    def __init__(self, code: int, line: str = "", port: str = ""):
        self.code = int(code)
        self.meaning = error_meaning(self.code)
        self.line = line
        self.port = port
        where = f"GRBL on {port}" if port else "GRBL"
        sent = f" to {line!r}" if line else ""
        super().__init__(f"{where} answered error:{self.code}{sent}: {self.meaning}")


class GrblAlarm(RigError):
    """GRBL pushed ``ALARM:N``: motion is locked until ``$X`` (unlock) or ``$H`` (home)."""

    def __init__(self, code: int, port: str = ""):
        self.code = int(code)
        self.meaning = alarm_meaning(self.code)
        self.port = port
        where = f"GRBL on {port}" if port else "GRBL"
        fix = (
            "GRBL needs a soft reset (0x18; GrblRig sends it), then home ($H, `ir-robot rig home`)"
            if self.code in CRITICAL_ALARMS
            else "home ($H, `ir-robot rig home`) or unlock ($X) once it is safe"
        )
        super().__init__(f"{where} raised ALARM:{self.code}: {self.meaning} Fix: {fix}.")


class GrblLineError(RigError, ValueError):
    """A line the host was about to send is not valid for GRBL (too long, real-time chars...)."""


# ---------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Ok:
    """``ok``: the oldest line in the board's buffer was accepted."""


@dataclass(frozen=True)
class ErrorReply:
    """``error:N``: the oldest line in the board's buffer was refused (``meaning`` from the table)."""

    code: int
    meaning: str


@dataclass(frozen=True)
class Alarm:
    """``ALARM:N`` pushed by the board: it stopped and locks motion until unlocked or homed."""

    code: int
    meaning: str


@dataclass(frozen=True)
class Welcome:
    """``Grbl 1.1h ['$' for help]``: the board has (re)started."""

    version: str

    @property
    def is_v11(self) -> bool:
        """True for the 1.1 protocol this driver speaks."""
        return self.version.startswith("1.1")


@dataclass(frozen=True)
class Setting:
    """One ``$N=value`` line of the ``$$`` settings report."""

    number: int
    value: float
    text: str


@dataclass(frozen=True)
class StartupLine:
    """``$N0=G54``: a stored startup block (``$N`` query)."""

    index: int
    line: str


@dataclass(frozen=True)
class StartupResult:
    """``>G54G20:ok`` or ``>G54:error:N``: a startup block ran at boot (not part of the stream)."""

    line: str
    error_code: int | None


@dataclass(frozen=True)
class Message:
    """``[MSG:...]`` non-queried feedback."""

    text: str


@dataclass(frozen=True)
class GcState:
    """``[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]`` parser modal state."""

    words: tuple[str, ...]

    def value(self, letter: str) -> float | None:
        """The number after a non-modal-group word letter (e.g. ``F``), or None if absent."""
        for w in self.words:
            if w[0] == letter and letter not in "GM":
                return float(w[1:])
        return None


@dataclass(frozen=True)
class Version:
    """``[VER:1.1h.20190825:user string]``."""

    version: str
    build: str
    text: str


@dataclass(frozen=True)
class Options:
    """``[OPT:VL,15,128]``: build option codes, planner blocks, RX buffer bytes."""

    codes: str
    planner_blocks: int | None
    rx_buffer_bytes: int | None


@dataclass(frozen=True)
class Help:
    """The ``[HLP:...]`` line listing the ``$`` commands."""

    text: str


@dataclass(frozen=True)
class Echo:
    """An ``[echo:...]`` line (a build option that echoes each received line)."""

    text: str


@dataclass(frozen=True)
class Parameter:
    """``[G54:0.000,0.000,0.000]`` .. ``[TLO:0.000]``, ``[PRB:x,y,z:1]`` from ``$#``."""

    name: str
    values: tuple[float, ...]
    success: bool | None = None


@dataclass(frozen=True)
class StatusReport:
    """One ``<...>`` real-time status report with every GRBL 1.1 field.

    Positions are in mm (``$13=0``). Exactly one of ``mpos``/``wpos`` comes with a
    report; :func:`resolve_positions` fills in the other from the last ``WCO``.
    """

    state: str
    substate: int | None = None
    mpos: tuple[float, ...] | None = None
    wpos: tuple[float, ...] | None = None
    wco: tuple[float, ...] | None = None
    planner_blocks_free: int | None = None
    rx_bytes_free: int | None = None
    line_number: int | None = None
    feed: float | None = None
    spindle: float | None = None
    pins: frozenset = frozenset()
    overrides: tuple[int, int, int] | None = None
    accessories: frozenset = frozenset()
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def full_state(self) -> str:
        """The machine state with its substate, as GRBL prints it (``Hold:0``)."""
        return self.state if self.substate is None else f"{self.state}:{self.substate}"


#: every message the board sends
GrblMessage = (
    Ok
    | ErrorReply
    | Alarm
    | Welcome
    | Setting
    | StartupLine
    | StartupResult
    | Message
    | GcState
    | Version
    | Options
    | Help
    | Echo
    | Parameter
    | StatusReport
)

# ---------------------------------------------------------------------------- parsing helpers

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_NUM_RE = re.compile(_NUM + r"\Z")
_INT_RE = re.compile(r"\d{1,9}\Z")
_WELCOME_RE = re.compile(r"Grbl (\d+\.\d+[a-z]?) \['\$' for help\]\Z")
_SETTING_RE = re.compile(r"\$(\d{1,3})=(" + _NUM + r")\Z")
_STARTUP_LINE_RE = re.compile(r"\$N(\d)=(.*)\Z")
_FIELD_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")
_PARAM_NAMES = ("G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92", "TLO", "PRB")


def _bad(line: str, why: str) -> ProtocolError:
    return ProtocolError(f"malformed line from GRBL {line!r}: {why}")


def _num(text: str, line: str, what: str) -> float:
    if not _NUM_RE.match(text):
        raise _bad(line, f"{what} {text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise _bad(line, f"{what} {text!r} is not finite")
    return value


def _int(text: str, line: str, what: str) -> int:
    if not _INT_RE.match(text):
        raise _bad(line, f"{what} {text!r} is not a non-negative integer")
    return int(text)


def _vector(text: str, line: str, what: str, sizes=(3, 4)) -> tuple[float, ...]:
    parts = text.split(",")
    if len(parts) not in sizes:
        raise _bad(line, f"{what} needs {' or '.join(map(str, sizes))} comma-separated values, got {len(parts)}")
    return tuple(_num(p, line, what) for p in parts)


def decode_line(raw: bytes) -> str:
    """Bytes of one received line (terminator removed) -> text; non-printable bytes raise ProtocolError."""
    if len(raw) > MAX_RX_LINE_BYTES:
        raise ProtocolError(
            f"malformed line from GRBL: {len(raw)} bytes without a newline (max {MAX_RX_LINE_BYTES}); "
            "usually a baud-rate mismatch or line noise"
        )
    for i, b in enumerate(raw):
        if not (0x20 <= b <= 0x7E or b == 0x09):
            raise ProtocolError(
                f"malformed line from GRBL {raw[:60]!r}: non-printable byte 0x{b:02x} at position {i}; "
                "usually a baud-rate mismatch (GRBL 1.1 talks at 115200) or electrical noise on the USB cable"
            )
    return raw.decode("ascii")


def parse_status(line: str) -> StatusReport:
    """Parse ``<State|MPos:..|...>`` (the chevrons included)."""
    if not (line.startswith("<") and line.endswith(">")) or len(line) < 3:
        raise _bad(line, "a status report is enclosed in '<' and '>'")
    fields = line[1:-1].split("|")
    state_text = fields[0]
    state, has_sub, sub = state_text.partition(":")
    if state not in STATES:
        raise _bad(line, f"unknown machine state {state!r} (GRBL 1.1 states: {', '.join(STATES)})")
    substate = None
    if has_sub:
        allowed = STATES[state]
        if allowed is None:
            raise _bad(line, f"state {state} has no sub-state, got {state_text!r}")
        substate = _int(sub, line, f"{state} sub-state")
        if substate not in allowed:
            raise _bad(line, f"{state} sub-state must be {allowed.start}-{allowed.stop - 1}, got {substate}")
    values: dict[str, Any] = {}
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()
    for f in fields[1:]:
        name, colon, val = f.partition(":")
        if not colon or not _FIELD_NAME_RE.match(name):
            raise _bad(line, f"field {f!r} is not 'Name:value'")
        if name in seen:
            raise _bad(line, f"field {name} appears twice")
        seen.add(name)
        if name in ("MPos", "WPos", "WCO"):
            values[name.lower()] = _vector(val, line, name)
        elif name == "Bf":
            parts = val.split(",")
            if len(parts) != 2:
                raise _bad(line, "Bf needs 'blocks,bytes'")
            values["planner_blocks_free"] = _int(parts[0], line, "Bf blocks")
            values["rx_bytes_free"] = _int(parts[1], line, "Bf bytes")
        elif name == "Ln":
            values["line_number"] = _int(val, line, "Ln")
        elif name == "F":
            values["feed"] = _num(val, line, "F")
        elif name == "FS":
            parts = val.split(",")
            if len(parts) != 2:
                raise _bad(line, "FS needs 'feed,speed'")
            values["feed"] = _num(parts[0], line, "FS feed")
            values["spindle"] = _num(parts[1], line, "FS speed")
        elif name == "Pn":
            if not val or not set(val) <= PIN_LETTERS or len(set(val)) != len(val):
                raise _bad(line, f"Pn must list distinct pin letters from {''.join(sorted(PIN_LETTERS))}, got {val!r}")
            values["pins"] = frozenset(val)
        elif name == "Ov":
            parts = val.split(",")
            if len(parts) != 3:
                raise _bad(line, "Ov needs 'feed,rapid,spindle' percentages")
            values["overrides"] = tuple(_int(p, line, "Ov") for p in parts)
        elif name == "A":
            if not val or not set(val) <= ACCESSORY_LETTERS or len(set(val)) != len(val):
                raise _bad(line, f"A must list distinct accessory letters from SCFM, got {val!r}")
            values["accessories"] = frozenset(val)
        else:
            extra.append((name, val))
    if ("mpos" in values) == ("wpos" in values):
        raise _bad(line, "a status report carries exactly one of MPos or WPos")
    if "F" in seen and "FS" in seen:
        raise _bad(line, "both F and FS present")
    return StatusReport(state=state, substate=substate, extra=tuple(extra), **values)


def _parse_bracket(line: str) -> GrblMessage:
    body = line[1:-1]
    kind, colon, rest = body.partition(":")
    if not colon:
        raise _bad(line, "a feedback message looks like '[TYPE:...]'")
    if kind == "MSG":
        return Message(rest)
    if kind == "GC":
        words = tuple(rest.split())
        for w in words:
            if len(w) < 2 or not w[0].isalpha() or not _NUM_RE.match(w[1:]):
                raise _bad(line, f"G-code state word {w!r} is not a letter followed by a number")
        return GcState(words)
    if kind == "HLP":
        return Help(rest)
    if kind == "echo":
        return Echo(rest)
    if kind == "VER":
        version, colon2, text = rest.partition(":")
        if not version:
            raise _bad(line, "VER has no version")
        ver, _, build = version.rpartition(".")
        if not ver:
            ver, build = version, ""
        return Version(ver, build, text)
    if kind == "OPT":
        parts = rest.split(",")
        codes = parts[0]
        if len(parts) == 1:
            return Options(codes, None, None)
        if len(parts) != 3:
            raise _bad(line, "OPT looks like '[OPT:codes,planner_blocks,rx_bytes]'")
        return Options(codes, _int(parts[1], line, "OPT planner blocks"), _int(parts[2], line, "OPT RX buffer bytes"))
    if kind in _PARAM_NAMES:
        success = None
        vec = rest
        if kind == "PRB":
            vec, colon2, flag = rest.rpartition(":")
            if not colon2 or flag not in ("0", "1"):
                raise _bad(line, "PRB looks like '[PRB:x,y,z:0|1]'")
            success = flag == "1"
        sizes = (1,) if kind == "TLO" else (3, 4)
        return Parameter(kind, _vector(vec, line, kind, sizes), success)
    raise _bad(line, f"unknown feedback type [{kind}:...]")


def parse_line(line: bytes | str) -> GrblMessage | None:
    r"""Parse one line received from GRBL (with or without its ``\r\n``).

    Returns a message object, or None for a blank line (GRBL prints one before
    the banner). Raises :class:`ProtocolError` naming what is wrong otherwise.
    """
    if isinstance(line, (bytes, bytearray)):
        raw = bytes(line).rstrip(b"\r\n")
        text = decode_line(raw)
    elif isinstance(line, str):
        text = line.rstrip("\r\n")
        if len(text) > MAX_RX_LINE_BYTES or not all(" " <= c <= "~" or c == "\t" for c in text):
            return parse_line(text.encode("latin-1", "replace"))
    else:
        raise TypeError(f"parse_line takes bytes or str, not {type(line).__name__}")
    if not text.strip():
        return None
    if text == "ok":
        return Ok()
    if text.startswith("error:"):
        code = text[6:]
        if not _INT_RE.match(code):
            hint = " (GRBL 0.9 and older send text errors; flash GRBL 1.1)" if code.strip()[:1].isalpha() else ""
            raise _bad(text, f"error code {code!r} is not a number{hint}")
        return ErrorReply(int(code), error_meaning(int(code)))
    if text.startswith("ALARM:"):
        code = text[6:]
        if not _INT_RE.match(code):
            hint = " (GRBL 0.9 and older send text alarms; flash GRBL 1.1)" if code.strip()[:1].isalpha() else ""
            raise _bad(text, f"alarm code {code!r} is not a number{hint}")
        return Alarm(int(code), alarm_meaning(int(code)))
    if text.startswith("<"):
        return parse_status(text)
    if text.startswith("[") and text.endswith("]") and len(text) >= 3:
        return _parse_bracket(text)
    if text.startswith("Grbl "):
        m = _WELCOME_RE.match(text)
        if not m:
            raise _bad(text, "a banner looks like \"Grbl 1.1h ['$' for help]\"")
        return Welcome(m.group(1))
    if text.startswith("$N"):
        m = _STARTUP_LINE_RE.match(text)
        if not m:
            raise _bad(text, "a startup line looks like '$N0=G54'")
        return StartupLine(int(m.group(1)), m.group(2))
    if text.startswith("$"):
        m = _SETTING_RE.match(text)
        if not m:
            raise _bad(text, "a setting looks like '$110=500.000'")
        return Setting(int(m.group(1)), _num(m.group(2), text, "setting value"), m.group(2))
    if text.startswith(">"):
        body = text[1:]
        if body.endswith(":ok"):
            return StartupResult(body[:-3], None)
        head, sep, code = body.rpartition(":error:")
        if sep and _INT_RE.match(code):
            return StartupResult(head, int(code))
        raise _bad(text, "a startup-line result looks like '>G54:ok' or '>G54:error:N'")
    raise _bad(text, "not a GRBL 1.1 message (expected ok, error:N, ALARM:N, <status>, [..], $N=v or the banner)")


class LineSplitter:
    r"""Reassemble received bytes into lines (``\n`` terminated, ``\r`` dropped).

    A run of more than ``max_bytes`` without a newline is emitted as one line so
    the parser reports it instead of the buffer growing forever.
    """

    def __init__(self, max_bytes: int = MAX_RX_LINE_BYTES):
        self.max_bytes = max_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete lines they finish (without terminators)."""
        self._buf += data
        out: list[bytes] = []
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                break
            out.append(bytes(self._buf[:i]).rstrip(b"\r"))
            del self._buf[: i + 1]
        while len(self._buf) > self.max_bytes:
            out.append(bytes(self._buf[: self.max_bytes + 1]))
            del self._buf[: self.max_bytes + 1]
        return out

    def reset(self) -> None:
        """Forget a partial line (the port was reopened or the board reset)."""
        self._buf.clear()

    @property
    def pending(self) -> bytes:
        """The bytes of the unfinished line so far."""
        return bytes(self._buf)


def resolve_positions(
    report: StatusReport, last_wco: tuple[float, ...] | None
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(mpos, wpos, wco) for a report: WPos = MPos - WCO, WCO from this report or the last one.

    Without any WCO yet, the offset is taken as zero.
    """
    wco = report.wco if report.wco is not None else last_wco
    if wco is None:
        n = len(report.mpos if report.mpos is not None else report.wpos or ())
        wco = (0.0,) * n
    if report.mpos is not None:
        mpos = report.mpos
        wpos = tuple(m - o for m, o in zip(mpos, wco, strict=False))
    else:
        if report.wpos is None:
            raise ProtocolError(f"status report without MPos or WPos: {report!r}")
        wpos = report.wpos
        mpos = tuple(w + o for w, o in zip(wpos, wco, strict=False))
    return mpos, wpos, wco


# ---------------------------------------------------------------------------- formatting


def format_number(value: float, decimals: int = 3) -> str:
    """A G-code number: fixed decimals, no exponent, never ``-0.000``."""
    v = float(value)
    if not math.isfinite(v):
        raise GrblLineError(f"cannot send the non-finite number {value!r} to GRBL")
    text = f"{v:.{decimals}f}"
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    return text


def check_line(line: str) -> bytes:
    r"""Validate one line to send and return its bytes with the ``\n`` terminator."""
    if not isinstance(line, str):
        raise GrblLineError(f"a GRBL line must be a str, got {type(line).__name__}")
    if "\n" in line or "\r" in line:
        raise GrblLineError(f"send one line at a time, without newlines: {line!r}")
    if len(line) > MAX_LINE_CHARS:
        raise GrblLineError(
            f"line of {len(line)} characters is longer than GRBL's {MAX_LINE_CHARS}-character limit: {line[:40]!r}..."
        )
    for c in line:
        if not (" " <= c <= "~"):
            raise GrblLineError(f"line {line!r} contains the non-printable character {c!r}")
        if c in "?!~":
            raise GrblLineError(
                f"line {line!r} contains {c!r}, which GRBL treats as a real-time command "
                "(status/feed hold/resume) and would act on at once; remove it (also from comments)"
            )
    return line.encode("ascii") + b"\n"


def _axis_words(values: dict[str, float]) -> str:
    words = []
    for axis in ("X", "Y", "Z", "A"):
        if axis in values:
            words.append(f"{axis}{format_number(values[axis])}")
    unknown = set(values) - {"X", "Y", "Z", "A"}
    if unknown:
        raise GrblLineError(f"unknown GRBL axes {sorted(unknown)}; use X, Y, Z")
    return " ".join(words)


def format_jog(deltas_mm: dict[str, float], feed_mm_min: float) -> str:
    """``$J=G91 G21 X.. Y.. Z.. F..``: an incremental jog (axes with a zero delta are left out)."""
    moving = {a: d for a, d in deltas_mm.items() if abs(float(d)) >= 0.0005}
    if not moving:
        raise GrblLineError("a jog needs at least one axis distance of 0.001 mm or more")
    if not (feed_mm_min > 0 and math.isfinite(feed_mm_min)):
        raise GrblLineError(f"a jog needs a positive feed rate, got {feed_mm_min!r} mm/min")
    return f"$J=G91 G21 {_axis_words(moving)} F{format_number(feed_mm_min, 1)}"


def format_move(targets_mm: dict[str, float], feed_mm_min: float, machine_coords: bool = True) -> str:
    """``G90 G53 G1 X.. Y.. Z.. F..``: an absolute feed move (machine coordinates unless told otherwise)."""
    if not targets_mm:
        raise GrblLineError("a move needs at least one axis target")
    if not (feed_mm_min > 0 and math.isfinite(feed_mm_min)):
        raise GrblLineError(f"a move needs a positive feed rate, got {feed_mm_min!r} mm/min")
    g53 = " G53" if machine_coords else ""
    return f"G90 G21{g53} G1 {_axis_words(targets_mm)} F{format_number(feed_mm_min, 1)}"


# ---------------------------------------------------------------------------- settings


def _fmt_setting(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else format_number(value)


def settings_mismatches(
    actual: dict[int, float], expected: dict[int, float], rel_tol: float = 1e-4, abs_tol: float = 1e-3
) -> list[str]:
    """Human-readable differences between the board's ``$$`` and the expected settings."""
    out = []
    for number, want in sorted(expected.items()):
        if number not in actual:
            out.append(f"{setting_name(number)} is missing from the board's $$ report (expected {_fmt_setting(want)})")
            continue
        have = actual[number]
        if not math.isclose(have, want, rel_tol=rel_tol, abs_tol=abs_tol):
            out.append(
                f"{setting_name(number)} is {_fmt_setting(have)} on the board but the config expects "
                f"{_fmt_setting(want)} (fix: send ${number}={_fmt_setting(want)}, or change the config)"
            )
    return out


# ---------------------------------------------------------------------------- character counting


@dataclass
class _InFlight:
    line: str
    nbytes: int
    token: Any = None


@dataclass
class CharacterCounter:
    """GRBL's character-counting streaming protocol, without I/O.

    Remember each line sent (with its newline); send the next only while the sum
    of unacknowledged bytes stays within ``capacity`` (GRBL's 128-byte RX buffer
    minus one, to be safe); every ``ok``/``error`` frees the oldest line.
    """

    capacity: int = 127
    _queue: deque = field(default_factory=deque)
    _used: int = 0
    sent_lines: int = 0
    acked_lines: int = 0
    max_used: int = 0

    @property
    def used(self) -> int:
        """Bytes of sent, unacknowledged lines now in the board's RX buffer."""
        return self._used

    @property
    def outstanding(self) -> int:
        """Lines sent and not yet answered by ``ok``/``error``."""
        return len(self._queue)

    def fits(self, nbytes: int) -> bool:
        """Whether a line of ``nbytes`` can be sent now without overflowing the RX buffer."""
        return self._used + nbytes <= self.capacity

    def push(self, line: str, nbytes: int | None = None, token: Any = None) -> None:
        """Record a line as sent (its length including the newline counts against the buffer)."""
        n = len(line) + 1 if nbytes is None else int(nbytes)
        if n > self.capacity:
            raise GrblLineError(
                f"line of {n} bytes can never fit GRBL's {self.capacity}-byte receive budget: {line[:40]!r}"
            )
        if not self.fits(n):
            raise GrblLineError(
                f"sending {n} more bytes would overfill GRBL's receive buffer ({self._used}/{self.capacity} in flight)"
            )
        self._queue.append(_InFlight(line, n, token))
        self._used += n
        self.sent_lines += 1
        self.max_used = max(self.max_used, self._used)

    def pop(self) -> tuple[str, Any]:
        """Free the oldest line on ``ok``/``error``; returns (line, token)."""
        if not self._queue:
            raise ProtocolError(
                "GRBL sent ok/error but no line was waiting for one "
                "(another program on the port, a missed reset, or line noise)"
            )
        item = self._queue.popleft()
        self._used -= item.nbytes
        self.acked_lines += 1
        return item.line, item.token

    def head(self) -> tuple[str, Any] | None:
        """(line, token) of the oldest unacknowledged line: the one GRBL is answering now."""
        if not self._queue:
            return None
        return self._queue[0].line, self._queue[0].token

    def clear(self) -> list[tuple[str, Any]]:
        """Forget every line in flight (after a soft reset); returns them."""
        items = [(i.line, i.token) for i in self._queue]
        self._queue.clear()
        self._used = 0
        return items


def iter_messages(lines: Iterable[bytes]):
    """Parse several lines; yields (raw, message_or_None, ProtocolError_or_None)."""
    for raw in lines:
        try:
            yield raw, parse_line(raw), None
        except ProtocolError as exc:
            yield raw, None, exc
