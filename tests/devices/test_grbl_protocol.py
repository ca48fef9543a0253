"""GRBL 1.1 protocol, byte for byte, without a port."""

import numpy as np
import pytest

from ir_robot.core.errors import ProtocolError, RigError
from ir_robot.devices import grbl as P

# ----------------------------------------------------------------------------- responses and pushes


def test_ok_and_error_replies():
    assert P.parse_line(b"ok\r\n") == P.Ok()
    assert P.parse_line("ok") == P.Ok()
    e = P.parse_line(b"error:9\r\n")
    assert e == P.ErrorReply(9, P.ERROR_CODES[9])
    assert "locked out" in e.meaning
    assert P.parse_line(b"error:99").meaning.startswith("unknown error code 99")


def test_text_errors_of_grbl_09_are_refused_with_a_hint():
    with pytest.raises(ProtocolError, match="0.9"):
        P.parse_line(b"error: Bad number format")
    with pytest.raises(ProtocolError, match="0.9"):
        P.parse_line(b"ALARM: Hard limit")


def test_banner_blank_line_and_version():
    assert P.parse_line(b"\r\n") is None
    w = P.parse_line(b"Grbl 1.1h ['$' for help]\r\n")
    assert w == P.Welcome("1.1h") and w.is_v11
    assert not P.parse_line(b"Grbl 0.9j ['$' for help]").is_v11
    with pytest.raises(ProtocolError, match="banner"):
        P.parse_line(b"Grbl 1.1h")


def test_alarm_codes_and_meanings():
    a = P.parse_line(b"ALARM:2")
    assert a == P.Alarm(2, P.ALARM_CODES[2]) and "travel" in a.meaning
    assert set(P.ALARM_CODES) == set(range(1, 10))
    exc = P.GrblAlarm(9, "/dev/ttyACM0")
    assert "ALARM:9" in str(exc) and "limit switch" in str(exc) and "/dev/ttyACM0" in str(exc)
    assert isinstance(exc, RigError)


def test_full_error_table():
    assert set(P.ERROR_CODES) == set(range(1, 39)) - {18, 19}
    exc = P.GrblCommandError(15, "$J=G91 X500 F100", "/dev/ttyACM0")
    assert exc.code == 15 and "exceeds machine travel" in str(exc) and "$J=G91 X500 F100" in str(exc)
    assert isinstance(exc, RigError)


def test_feedback_messages():
    assert P.parse_line(b"[MSG:'$H'|'$X' to unlock]") == P.Message("'$H'|'$X' to unlock")
    gc = P.parse_line(b"[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]")
    assert gc.words[0] == "G0" and len(gc.words) == 11 and gc.value("F") == 0.0
    assert P.parse_line(b"[VER:1.1h.20190825:my rig]") == P.Version("1.1h", "20190825", "my rig")
    assert P.parse_line(b"[VER:1.1h.20190825:]") == P.Version("1.1h", "20190825", "")
    assert P.parse_line(b"[OPT:VL,15,128]") == P.Options("VL", 15, 128)
    assert P.parse_line(b"[OPT:V]") == P.Options("V", None, None)
    assert isinstance(P.parse_line(b"[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]"), P.Help)
    assert P.parse_line(b"[echo:G1X0.540Y10.4F100]") == P.Echo("G1X0.540Y10.4F100")
    assert P.parse_line(b"[G54:1.000,-2.500,0.000]") == P.Parameter("G54", (1.0, -2.5, 0.0))
    assert P.parse_line(b"[PRB:0.000,0.000,-1.000:1]") == P.Parameter("PRB", (0.0, 0.0, -1.0), True)
    assert P.parse_line(b"[TLO:0.000]") == P.Parameter("TLO", (0.0,))
    for bad in (b"[OPT:V,15]", b"[GC:G0 X]", b"[FOO:1]", b"[PRB:0,0,0]", b"[MSG]"):
        with pytest.raises(ProtocolError):
            P.parse_line(bad)


def test_settings_and_startup_lines():
    assert P.parse_line(b"$110=600.000") == P.Setting(110, 600.0, "600.000")
    assert P.parse_line(b"$10=3") == P.Setting(10, 3.0, "3")
    assert P.parse_line(b"$N0=G54") == P.StartupLine(0, "G54")
    assert P.parse_line(b">G54G20:ok") == P.StartupResult("G54G20", None)
    assert P.parse_line(b">:error:7") == P.StartupResult("", 7)
    for bad in (b"$110=abc", b"$=5", b"$110=1e5", b">G54", b"$N=G54"):
        with pytest.raises(ProtocolError):
            P.parse_line(bad)


# ----------------------------------------------------------------------------- status reports


def test_status_report_with_every_field():
    s = P.parse_line(
        b"<Run|MPos:-10.000,-2.500,-0.125|Bf:14,100|Ln:42|FS:600,0|Pn:XZP|WCO:1.000,2.000,3.000|Ov:100,90,110|A:SF>\r\n"
    )
    assert s.state == "Run" and s.substate is None and s.full_state == "Run"
    assert s.mpos == (-10.0, -2.5, -0.125) and s.wpos is None
    assert (s.planner_blocks_free, s.rx_bytes_free) == (14, 100)
    assert s.line_number == 42 and s.feed == 600.0 and s.spindle == 0.0
    assert s.pins == frozenset("XZP") and s.overrides == (100, 90, 110) and s.accessories == frozenset("SF")
    assert s.wco == (1.0, 2.0, 3.0)


def test_status_f_only_and_unknown_fields_kept():
    s = P.parse_line(b"<Idle|WPos:1.000,2.000,3.000|F:500|Xtra:1,2>")
    assert s.feed == 500.0 and s.spindle is None and s.extra == (("Xtra", "1,2"),)


@pytest.mark.parametrize("state,sub", [("Hold", 0), ("Hold", 1), ("Door", 0), ("Door", 1), ("Door", 2), ("Door", 3)])
def test_substates(state, sub):
    s = P.parse_line(f"<{state}:{sub}|MPos:0.000,0.000,0.000|FS:0,0>".encode())
    assert (s.state, s.substate, s.full_state) == (state, sub, f"{state}:{sub}")


@pytest.mark.parametrize("state", ["Idle", "Run", "Jog", "Alarm", "Check", "Home", "Sleep", "Hold", "Door"])
def test_every_state(state):
    assert P.parse_line(f"<{state}|MPos:0,0,0>").state == state


@pytest.mark.parametrize(
    "line,why",
    [
        (b"<Hold:2|MPos:0,0,0>", "sub-state"),
        (b"<Door:4|MPos:0,0,0>", "sub-state"),
        (b"<Idle:0|MPos:0,0,0>", "no sub-state"),
        (b"<Hold:|MPos:0,0,0>", "integer"),
        (b"<Walking|MPos:0,0,0>", "unknown machine state"),
        (b"<Idle|FS:0,0>", "exactly one of MPos or WPos"),
        (b"<Idle|MPos:0,0,0|WPos:0,0,0>", "exactly one"),
        (b"<Idle|MPos:0,0>", "3 or 4"),
        (b"<Idle|MPos:0,0,nan>", "not a number"),
        (b"<Idle|MPos:0,0,0|MPos:0,0,0>", "twice"),
        (b"<Idle|MPos:0,0,0|Bf:15>", "Bf"),
        (b"<Idle|MPos:0,0,0|Pn:Q>", "Pn"),
        (b"<Idle|MPos:0,0,0|Ov:100,100>", "Ov"),
        (b"<Idle|MPos:0,0,0|garbage>", "Name:value"),
        (b"<Idle|MPos:0,0,0", "enclosed in"),
        (b"<Idle|MPos:0,0,0|F:1|FS:1,0>", "both F and FS"),
    ],
)
def test_malformed_status_reports(line, why):
    with pytest.raises(ProtocolError, match=why):
        P.parse_line(line)


def test_wpos_mpos_conversion_with_wco():
    wco = (1.0, 2.0, 3.0)
    s = P.parse_line(b"<Idle|MPos:5.000,5.000,5.000|WCO:1.000,2.000,3.000>")
    mpos, wpos, w = P.resolve_positions(s, None)
    assert mpos == (5.0, 5.0, 5.0) and wpos == (4.0, 3.0, 2.0) and w == wco
    s2 = P.parse_line(b"<Idle|WPos:4.000,3.000,2.000>")  # no WCO in this report: the last one applies
    mpos2, wpos2, _ = P.resolve_positions(s2, wco)
    assert mpos2 == (5.0, 5.0, 5.0) and wpos2 == (4.0, 3.0, 2.0)
    assert P.resolve_positions(s2, None)[0] == (4.0, 3.0, 2.0)


# ----------------------------------------------------------------------------- bytes and lines


def test_non_printable_bytes_are_a_protocol_error_naming_baud():
    with pytest.raises(ProtocolError, match="baud"):
        P.parse_line(b"o\xffk")
    with pytest.raises(ProtocolError, match="0x00"):
        P.parse_line(b"ok\x00")
    with pytest.raises(ProtocolError, match="without a newline"):
        P.parse_line(b"x" * 1000)


def test_line_splitter_byte_by_byte_equals_chunks():
    stream = b"\r\nGrbl 1.1h ['$' for help]\r\n[MSG:'$H'|'$X' to unlock]\r\nok\r\nerror:20\r\n<Idle|MPos:0,0,0>\r\n"
    a = P.LineSplitter()
    one = [ln for b in stream for ln in a.feed(bytes([b]))]
    b = P.LineSplitter()
    assert one == b.feed(stream)
    assert one[0] == b"" and one[1] == b"Grbl 1.1h ['$' for help]" and len(one) == 6
    assert [type(P.parse_line(x)).__name__ for x in one] == [
        "NoneType",
        "Welcome",
        "Message",
        "Ok",
        "ErrorReply",
        "StatusReport",
    ]


def test_line_splitter_caps_runaway_lines():
    s = P.LineSplitter(max_bytes=16)
    out = s.feed(b"\xaa" * 40)
    assert out and all(len(x) == 17 for x in out) and len(s.pending) < 17
    for raw in out:
        with pytest.raises(ProtocolError):
            P.parse_line(raw)


def test_realtime_bytes():
    assert P.FEED_HOLD == b"!" and P.CYCLE_START == b"~" and P.SOFT_RESET == b"\x18" and P.JOG_CANCEL == b"\x85"
    assert P.STATUS_QUERY == b"?"
    assert all(P.is_realtime_byte(b) for b in b"?!~\x18\x85\x90\x9d")
    assert not any(P.is_realtime_byte(b) for b in b"G1X$J=\n")


# ----------------------------------------------------------------------------- formatting


def test_format_jog_and_move():
    assert P.format_jog({"X": 1.0, "Y": 0.0, "Z": -0.25}, 300.0) == "$J=G91 G21 X1.000 Z-0.250 F300.0"
    assert P.format_move({"X": -10, "Y": -5.5, "Z": 0.0}, 480) == "G90 G21 G53 G1 X-10.000 Y-5.500 Z0.000 F480.0"
    assert P.format_move({"X": 1}, 60, machine_coords=False) == "G90 G21 G1 X1.000 F60.0"
    assert P.format_number(-0.0001) == "0.000" and P.format_number(2.5, 1) == "2.5"
    for bad in (
        lambda: P.format_jog({"X": 0.0}, 100),
        lambda: P.format_jog({"X": 1}, 0),
        lambda: P.format_move({"X": float("nan")}, 100),
        lambda: P.format_jog({"Q": 1}, 100),
    ):
        with pytest.raises(P.GrblLineError):
            bad()


def test_check_line_refuses_realtime_characters_and_long_lines():
    assert P.check_line("G1 X1 F100") == b"G1 X1 F100\n"
    for bad in ("G1 X1 (why?)", "G1!", "~", "G1\nG2", "G1 " + "X1 " * 40, "G1 X\x01"):
        with pytest.raises(P.GrblLineError):
            P.check_line(bad)


def test_settings_mismatch_messages_name_the_setting():
    out = P.settings_mismatches({110: 500.0, 22: 0.0, 20: 1.0}, {110: 600.0, 22: 1.0, 20: 1.0, 130: 100.0})
    assert len(out) == 3
    assert any("$110 (X max rate, mm/min) is 500" in m and "$110=600" in m for m in out)
    assert any("$22 (homing cycle enable, bool) is 0" in m for m in out)
    assert any("$130" in m and "missing" in m for m in out)
    assert P.settings_mismatches({110: 600.00001}, {110: 600.0}) == []


# ----------------------------------------------------------------------------- character counting


def test_character_counter_never_exceeds_capacity_and_frees_oldest():
    rng = np.random.default_rng(3)
    c = P.CharacterCounter(127)
    lines = [f"G1 X{rng.uniform(-100, 0):.3f} F{rng.integers(1, 5000)}" for _ in range(2000)]
    sent, acked = [], []
    i = 0
    while len(acked) < len(lines):
        if i < len(lines) and c.fits(len(lines[i]) + 1) and rng.random() < 0.7:
            c.push(lines[i], token=i)
            sent.append(i)
            i += 1
        elif c.outstanding:
            acked.append(c.pop()[1])
        assert c.used <= 127
    assert acked == list(range(len(lines))) and c.max_used <= 127 and c.max_used > 100
    with pytest.raises(ProtocolError, match="no line was waiting"):
        c.pop()
    with pytest.raises(P.GrblLineError):
        c.push("x" * 200)
    c.push("G1 X1", token="a")
    assert c.head() == ("G1 X1", "a") and c.clear() == [("G1 X1", "a")] and c.used == 0


# ----------------------------------------------------------------------------- fuzz

VALID = [
    b"ok",
    b"error:22",
    b"ALARM:3",
    b"Grbl 1.1h ['$' for help]",
    b"$110=600.000",
    b"[MSG:Caution: Unlocked]",
    b"[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]",
    b"[VER:1.1h.20190825:]",
    b"[OPT:V,15,128]",
    b"<Jog|MPos:-1.000,-2.000,-3.000|Bf:15,128|FS:600,0|WCO:0.000,0.000,0.000>",
    b"<Hold:1|WPos:1.000,2.000,3.000|Ov:100,100,100|A:S>",
    b"[G54:0.000,0.000,0.000]",
    b">G54:ok",
]


def _malformed(rng: np.random.Generator) -> bytes:
    """A line that is certainly not valid GRBL 1.1."""
    kind = int(rng.integers(0, 8))
    if kind == 0:  # random bytes with at least one non-printable
        raw = bytearray(rng.integers(0, 256, size=int(rng.integers(1, 60))).astype(np.uint8).tobytes())
        raw = raw.replace(b"\n", b"\xff")
        raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0x80, 0x100))
        return bytes(raw)
    if kind == 1:  # a valid line with one byte replaced by a control or high byte
        raw = bytearray(VALID[int(rng.integers(len(VALID)))])
        raw[int(rng.integers(len(raw)))] = int(rng.choice([0x00, 0x07, 0x1B, 0x7F, 0x80, 0xC3, 0xFF]))
        return bytes(raw)
    if kind == 2:  # a status report cut short or with a broken number
        s = b"<Run|MPos:-1.000,-2.000,-3.000|FS:600,0>"
        return s[: int(rng.integers(2, len(s) - 1))] if rng.random() < 0.5 else s.replace(b"-2.000", b"-2.0.0")
    if kind == 3:  # unknown machine state
        word = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=5))
        return f"<Q{word}|MPos:0,0,0>".encode()
    if kind == 4:  # non-numeric codes
        return (b"error:" if rng.random() < 0.5 else b"ALARM:") + rng.choice([b"", b"x", b"-1", b"1.5", b" 3"])
    if kind == 5:  # unknown bracket type / broken OPT
        return rng.choice([b"[WHAT:1]", b"[OPT:V,15]", b"[OPT:V,x,128]", b"[G54:1,2]", b"[PRB:1,2,3:7]"])
    if kind == 6:  # free text (a wrong device)
        return b"zz " + "".join(rng.choice(list("abc def ghi 123"), size=int(rng.integers(0, 40)))).encode()
    return rng.choice([b"$1x0=5", b"$110=", b"Grbl 1.1", b">G54", b"$N=G0"])


def test_ten_thousand_malformed_lines_each_raise_a_clear_protocol_error():
    rng = np.random.default_rng(2024)
    for _ in range(10_000):
        raw = _malformed(rng)
        with pytest.raises(ProtocolError) as info:
            P.parse_line(raw)
        assert "malformed line from GRBL" in str(info.value)


def test_ten_thousand_random_mutations_never_crash_the_parser():
    rng = np.random.default_rng(11)
    kinds = set()
    for _ in range(10_000):
        raw = bytearray(VALID[int(rng.integers(len(VALID)))])
        for _ in range(int(rng.integers(1, 4))):
            op = rng.integers(0, 3)
            pos = int(rng.integers(0, len(raw) + 1))
            if op == 0 and raw:
                del raw[min(pos, len(raw) - 1)]
            elif op == 1:
                raw.insert(pos, int(rng.integers(0x20, 0x7F)))
            elif raw:
                raw[min(pos, len(raw) - 1)] = int(rng.integers(0, 256))
        try:
            msg = P.parse_line(bytes(raw))
            kinds.add(type(msg).__name__)
        except ProtocolError:
            kinds.add("ProtocolError")
    assert "ProtocolError" in kinds and len(kinds) > 3
