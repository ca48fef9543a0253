"""The GRBL 1.1 emulator itself.

Timing is checked on the pure machine (:class:`GrblMachine`) driven with a fake clock, against
numbers derived from the board's ``$`` settings; the real pty + threads path is driven over its pty
with plain pyserial (generous timeouts, no timing asserted).
"""

import time

import numpy as np
import pytest
import serial

from ir_robot.core.types import JointVector
from ir_robot.devices import grbl as P
from ir_robot.devices.emulator import GrblEmulator, GrblMachine
from ir_robot.devices.emulator.hx711 import Hx711Emulator
from ir_robot.devices.emulator.planner import SUBSTEP_S

MS = 0.001  # the fake clock ticks in whole milliseconds (one planner substep)


class Board:
    """The pure machine on a fake clock that ticks in whole milliseconds; replies parsed, stamped."""

    def __init__(self, config, **kw):
        self.k = 0  # now = k ms
        self.m = GrblMachine(config, rng=np.random.default_rng(1), now=0.0, **kw)
        self.split = P.LineSplitter()
        self.inbox: list[tuple[float, object]] = []

    @property
    def now(self) -> float:
        return self.k * MS

    def _parse(self, data: bytes) -> list:
        msgs = [P.parse_line(raw) for raw in self.split.feed(data)]
        msgs = [m for m in msgs if m is not None]
        self.inbox += [(self.now, m) for m in msgs]
        return msgs

    def send(self, data: bytes) -> list:
        """Bytes from the host, now; returns the messages the board answers with at once."""
        return self._parse(self.m.receive(data, self.now))

    def cmd(self, line: str):
        replies = [m for m in self.send(line.encode() + b"\n") if isinstance(m, (P.Ok, P.ErrorReply))]
        assert len(replies) == 1, replies
        return replies[0]

    def tick(self, n: int = 1) -> list:
        """Let ``n`` ms pass, one at a time; returns the messages sent meanwhile."""
        out = []
        for _ in range(n):
            self.k += 1
            out += self._parse(self.m.advance(self.now))
        return out

    def until(self, pred, limit_s: float = 10.0):
        """Tick until ``pred(machine)``; returns the time it first held."""
        while not pred(self.m):
            assert self.now < limit_s, f"not within {limit_s} s"
            self.tick()
        return self.now

    def status(self) -> P.StatusReport:
        (report,) = [m for m in self.send(b"?") if isinstance(m, P.StatusReport)]
        return report


@pytest.fixture
def board(rig_config):
    b = Board(rig_config)
    assert b.cmd("$X") == P.Ok()  # homing is enabled: the board starts in Alarm
    return b


# ============================================================================ pure machine, fake clock


def test_trapezoid_follows_the_rate_and_acceleration_settings(board, rig_config):
    ax = rig_config.grbl.x  # $110 = 600 mm/min, $120 = 50 mm/s^2
    vmax, acc, dist = ax.max_rate_mm_min / 60.0, ax.accel_mm_s2, 20.0
    t_ramp = vmax / acc
    total = dist / vmax + t_ramp  # trapezoid: cruise time + one ramp

    def ideal(t):
        """(distance travelled, speed) of the ideal trapezoid at time t."""
        if t <= t_ramp:
            return 0.5 * acc * t * t, acc * t
        if t <= total - t_ramp:
            return 0.5 * vmax * t_ramp + vmax * (t - t_ramp), vmax
        s = max(total - t, 0.0)
        return dist - 0.5 * acc * s * s, acc * s

    assert board.cmd(f"G1 X-{dist} F{ax.max_rate_mm_min * 2}") == P.Ok()  # asks twice the max rate
    samples = []
    while board.m.state != "Idle":
        board.tick()
        samples.append((board.now, -board.m.mpos[0], board.m.v))
        assert board.now <= total + MS
    t, x, v = (np.array(c) for c in zip(*samples, strict=True))
    x_ideal, v_ideal = (np.array(c) for c in zip(*(ideal(ti) for ti in t), strict=True))
    ramp_up_and_cruise = t <= total - t_ramp
    # accelerating and cruising, the 1 ms integration is the trapezoid itself
    assert np.allclose(v[ramp_up_and_cruise], v_ideal[ramp_up_and_cruise], rtol=0, atol=1e-9)
    assert np.allclose(x[ramp_up_and_cruise], x_ideal[ramp_up_and_cruise], rtol=0, atol=1e-9)
    assert v.max() == vmax  # capped at $110 although F asked for twice that
    # braking, the speed is planned one substep ahead: the stage leads the ideal by at most vmax * substep,
    # so it arrives at most sqrt(2 * vmax * substep / acc) early, never late, and lands exactly on the target
    assert np.all(np.abs(x - x_ideal) <= vmax * SUBSTEP_S + 1e-12)
    assert np.all(np.diff(v) <= acc * SUBSTEP_S + 1e-9)  # never speeds up faster than $120
    assert np.all(np.diff(v[~ramp_up_and_cruise]) < 0)  # braking all the way from the planned point
    assert total - np.sqrt(2 * vmax * SUBSTEP_S / acc) <= t[-1] <= total + 1e-9
    assert board.m.mpos.tolist() == [-dist, 0.0, 0.0] and board.m.v == 0.0


def test_a_corner_is_taken_at_the_junction_deviation_speed(board, rig_config):
    g = rig_config.grbl
    acc = min(g.x.accel_mm_s2, g.y.accel_mm_s2)
    deviation = board.m.settings[11]  # $11 junction deviation, mm
    sin_half = np.sqrt(0.5)  # a 90 degree corner
    v_junction = np.sqrt(acc * deviation * sin_half / (1 - sin_half))
    board.cmd("G1 X-10 F600")
    board.cmd("G1 Y-10")
    assert board.m.planner[1].v_entry_max == pytest.approx(v_junction, abs=1e-12)
    board.until(lambda m: len(m.planner) == 1)  # the corner
    # the speed there is the junction speed, to within one substep of acceleration; never a stop
    assert v_junction <= board.m.v <= v_junction + acc * SUBSTEP_S + 1e-9
    assert board.m.mpos[0] == -10.0


def test_planner_holds_fifteen_blocks_and_the_sixteenth_ok_waits_for_a_free_block(board, rig_config):
    board.cmd("G91 G1 F60")  # 1 mm/s: every 0.5 mm block cruises (blocks in line join at full speed)
    oks = [m for m in board.send(b"X-0.5\n" * 15) if isinstance(m, P.Ok)]
    assert len(oks) == 15 and len(board.m.planner) == 15
    assert board.send(b"X-0.5\n") == []  # 16th: no free block, the line and its ok wait
    s = board.status()
    assert s.planner_blocks_free == 0 and s.state == "Run"
    v, acc = 1.0, rig_config.grbl.x.accel_mm_s2
    t_first_block = v / acc + (0.5 - v * v / (2 * acc)) / v  # ramp, then cruise the rest of 0.5 mm
    t_ok = board.until(lambda m: m.ok_sent == 15 + 3)  # $X, G91 G1 F60, 15 blocks, then this one
    assert t_first_block <= t_ok <= t_first_block + MS + 1e-9
    assert len(board.m.planner) == 15  # the 16th took the freed block
    board.send(b"\x18")
    assert [m.code for _t, m in board.inbox if isinstance(m, P.Alarm)] == [3]  # reset while moving


def test_feed_hold_decelerates_at_the_acceleration_setting_then_resumes(board, rig_config):
    ax = rig_config.grbl.x
    vmax, acc = ax.max_rate_mm_min / 60.0, ax.accel_mm_s2
    board.cmd("G1 X-10 F600")
    board.tick(int(round(vmax / acc / MS)))  # at full speed, 1 mm along
    assert board.m.v == vmax and board.m.mpos[0] == pytest.approx(-1.0, abs=1e-9)
    t_hold = board.now
    board.send(b"!")
    assert (board.m.state, board.m.substate) == ("Hold", 1)
    t_rest = board.until(lambda m: m.substate == 0)
    assert vmax / acc <= t_rest - t_hold <= vmax / acc + MS + 1e-9  # braking at $120, in whole substeps
    assert board.m.mpos[0] == pytest.approx(-2.0, abs=vmax * SUBSTEP_S)  # 1 mm to speed up, 1 mm to stop
    x = board.m.mpos[0]
    board.tick(200)
    assert board.status().mpos[0] == round(x, 3) and board.m.v == 0.0  # held
    board.send(b"~")
    assert board.status().state == "Run"
    board.until(lambda m: m.state == "Idle")
    assert board.m.mpos[0] == -10.0


def test_jog_cancel_decelerates_and_flushes_the_jog(board, rig_config):
    ax = rig_config.grbl.x
    vmax, acc = ax.max_rate_mm_min / 60.0, ax.accel_mm_s2
    assert board.cmd("$J=G91 X-10 F600") == P.Ok()
    board.tick(int(round(vmax / acc / MS)))
    assert board.status().state == "Jog"
    t0 = board.now
    board.send(b"\x85")
    t_idle = board.until(lambda m: m.state == "Idle")
    assert vmax / acc <= t_idle - t0 <= vmax / acc + MS + 1e-9
    s = board.status()
    assert s.state == "Idle" and s.planner_blocks_free == 15
    assert s.mpos[0] == pytest.approx(-2.0, abs=0.01)  # ramp up 1 mm, brake 1 mm: not the 10 mm asked


def test_homing_runs_z_then_xy_at_the_seek_rate_and_ignores_status(rig_config):
    g = rig_config.grbl
    seek, pulloff = g.homing_seek_mm_min / 60.0, g.homing_pulloff_mm  # $25, $27
    start = np.array([-20.0, -10.0, -6.0])
    b = Board(rig_config, start_mpos=start)
    assert b.send(b"$H\n") == [] and b.m.state == "Home"
    t_z = abs(start[2] + pulloff) / seek  # 5 mm of Z first (retracts the needle)
    t_xy = np.abs(start[:2] + pulloff).max() / seek  # then X and Y together
    t_done = t_z + t_xy + 0.02
    path = []
    while not any(isinstance(m, P.Ok) for _t, m in b.inbox):
        assert b.send(b"?") == []  # GRBL does not answer status while homing
        b.tick()
        path.append((b.now, *b.m.mpos))
        assert b.now <= t_done + MS
    path = np.array(path)
    t = path[:, 0]
    assert t_done <= t[-1] <= t_done + MS + 1e-9
    z_phase = t < t_z
    assert np.all(path[z_phase, 1:3] == start[:2])  # X and Y wait for Z
    assert np.allclose(path[z_phase, 3], start[2] + (-pulloff - start[2]) * t[z_phase] / t_z, atol=1e-9)
    assert b.status().state == "Idle" and b.m.mpos.tolist() == [-pulloff] * 3


def test_dwell_holds_the_line_after_it_while_real_time_bytes_jump_the_queue(board):
    assert board.send(b"G4 P0.3\n") == []  # ok after the dwell
    board.tick(50)
    board.send(b"$G\n" + b"?" * 5)
    reports = [m for _t, m in board.inbox if isinstance(m, P.StatusReport)]
    assert len(reports) == 5 and board.m.status_queries == 5
    assert reports[0].rx_bytes_free == 128 - 3  # $G\n waits in the RX buffer behind the dwell
    t_ok = board.until(lambda m: m.ok_sent >= 2)  # $X, then the dwell (the dwell starts on the next tick)
    assert 0.3 <= t_ok <= 0.3 + MS + 1e-9
    # then the waiting $G, in the same tick
    assert [type(m) for _t, m in board.inbox[-3:]] == [P.Ok, P.GcState, P.Ok] and board.m.ok_sent == 3


def test_rx_buffer_overflow_is_detected(board):
    board.send(b"G91 G1 X-0.01 F60\n" * 40)  # 720 bytes at once: far more than 128
    assert board.m.rx_overflow and board.m.rx_max_used == 128 and board.m.rx_overflow_bytes > 0


def test_load_cell_samples_at_its_rate_with_the_calibrated_counts(rig_config):
    cfg = rig_config.loadcell
    hx = Hx711Emulator(cfg, np.random.default_rng(0), noise_counts=0.0)
    hx.restart(0.0)
    due = [k * MS for k in range(10_000) if hx.take_due(k * MS)]  # 10 s of 1 ms ticks
    assert len(due) == 10 * cfg.sample_rate_hz
    assert np.allclose(np.diff(due), 1.0 / cfg.sample_rate_hz, atol=MS)
    assert hx.encode(1.5) == f"{round(cfg.tare_counts + 1.5 * cfg.counts_per_n)}\r\n".encode()
    # far behind (a stalled machine): one sample, then the schedule restarts instead of bursting
    assert hx.take_due(20.0) and not hx.take_due(20.0 + MS)


def test_machine_replays_identically(rig_config):
    def run():
        b = Board(rig_config, baud_mismatch=True)
        out = b.m.receive(b"$$\n?", 0.0) + b.m.advance(0.5)
        return out, b.m.received_lines

    assert run() == run()


# ============================================================================ the pty + threads path


class Host:
    """A bare-bones serial client: send lines/bytes, read parsed messages."""

    def __init__(self, port):
        self.s = serial.Serial(port, 115200, timeout=0.02)
        self.split = P.LineSplitter()
        self.inbox = []

    def pump(self, seconds=0.05):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for raw in self.split.feed(self.s.read(4096)):
                msg = P.parse_line(raw)
                if msg is not None:
                    self.inbox.append(msg)

    def until(self, pred, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.02)
            for i, m in enumerate(self.inbox):
                if pred(m):
                    del self.inbox[: i + 1]
                    return m
        raise AssertionError(f"timed out; inbox {self.inbox[-5:]}")

    def cmd(self, line, timeout=5.0):
        self.s.write(line.encode() + b"\n")
        return self.until(lambda m: isinstance(m, (P.Ok, P.ErrorReply)), timeout)

    def status(self):
        self.s.write(b"?")
        return self.until(lambda m: isinstance(m, P.StatusReport))

    def close(self):
        self.s.close()


@pytest.fixture
def emu(rig_config, flat_force):
    e = GrblEmulator(rig_config, seed=1, force_fn=flat_force).start()
    yield e
    e.close()
    assert e.loop_errors == []


@pytest.fixture
def host(emu):
    h = Host(emu.port)
    h.until(lambda m: isinstance(m, P.Welcome))
    yield h
    h.close()


def test_banner_on_open_and_alarm_lock_with_homing(host):
    assert host.until(lambda m: isinstance(m, P.Message)).text == "'$H'|'$X' to unlock"
    assert host.status().state == "Alarm"
    assert host.cmd("G0 X-1") == P.ErrorReply(9, P.ERROR_CODES[9])
    assert host.cmd("$J=G91 X-1 F100").code == 8
    assert host.cmd("$X") == P.Ok()
    assert host.status().state == "Idle"


def test_info_and_settings(host, rig_config):
    host.s.write(b"$I\n")
    assert host.until(lambda m: isinstance(m, P.Version)).version == "1.1h"
    assert host.until(lambda m: isinstance(m, P.Options)) == P.Options("V", 15, 128)
    host.until(lambda m: isinstance(m, P.Ok))
    host.s.write(b"$$\n")
    settings = {}
    while True:
        m = host.until(lambda m: isinstance(m, (P.Setting, P.Ok)))
        if isinstance(m, P.Ok):
            break
        settings[m.number] = m.value
    assert P.settings_mismatches(settings, rig_config.expected_settings()) == []
    assert host.cmd("$110=abc").code == 2 and host.cmd("$999=1").code == 3 and host.cmd("$110=-1").code == 4
    assert host.cmd("$110=700") == P.Ok()


def test_homing_and_a_move_end_to_end(host, emu):
    assert host.cmd("$H", timeout=10.0) == P.Ok()
    s = host.status()
    assert s.state == "Idle" and s.mpos == (-1.0, -1.0, -1.0)
    assert host.cmd("G1 X-3 Y-2 F600") == P.Ok()
    end = time.monotonic() + 10.0
    while (s := host.status()).state != "Idle":
        assert time.monotonic() < end
        time.sleep(0.02)
    assert s.mpos == (-3.0, -2.0, -1.0)


def test_homing_disabled_gives_error_5(rig_config):
    with GrblEmulator(rig_config, settings={22: 0, 20: 0}, loadcell=False) as emu:
        h = Host(emu.port)
        h.until(lambda m: isinstance(m, P.Welcome))
        assert h.cmd("$H").code == 5
        assert h.status().state == "Idle"  # no alarm at start without homing
        h.close()


def test_soft_limit_gcode_is_a_critical_alarm_2_and_jog_is_error_15(host, emu):
    host.cmd("$X")
    assert host.cmd("$J=G91 X5 F100").code == 15
    host.s.write(b"G1 X10 F100\n")
    assert host.until(lambda m: isinstance(m, P.Alarm)).code == 2
    assert host.until(lambda m: isinstance(m, P.Message)).text == "Reset to continue"
    host.s.write(b"?")
    host.pump(0.2)
    assert not any(isinstance(m, P.StatusReport) for m in host.inbox)  # critical: nothing but reset
    host.s.write(b"\x18")
    host.until(lambda m: isinstance(m, P.Ok))  # the held line is acknowledged after the reset
    host.until(lambda m: isinstance(m, P.Welcome))
    assert host.status().state == "Alarm"


def test_gcode_errors(host):
    host.cmd("$X")
    for line, code in [
        ("G1 X-1", 22),
        ("X", 2),
        ("1G", 1),
        ("G2 X1", 20),
        ("G0 G1 X1", 21),
        ("G1 X1 X2 F1", 25),
        ("G4", 28),
        ("G1 P1 X-1 F10", 36),
        ("N0 G0", 27),
        ("G38.2 Z-1", 20),
        ("G1 F-1", 4),
        ("G1 X-1 F100 " + "Y-1 " * 30, 11),
    ]:
        reply = host.cmd(line)
        assert isinstance(reply, P.ErrorReply) and reply.code == code, line
    assert host.cmd("G4 P0.05") == P.Ok()
    assert host.cmd("") == P.Ok()
    assert host.cmd("(comment only)") == P.Ok()


def test_status_follows_the_report_mask_and_sends_wco_and_overrides(rig_config):
    with GrblEmulator(rig_config, settings={10: 0}, wco_mm=(1, 2, 3), loadcell=False) as emu:
        h = Host(emu.port)
        h.until(lambda m: isinstance(m, P.Welcome))
        first, second = h.status(), h.status()
        assert first.wpos == (-1.0, -2.0, -3.0) and first.wco == (1.0, 2.0, 3.0) and first.planner_blocks_free is None
        assert second.overrides == (100, 100, 100) and second.wco is None
        emu.set_pins("XP")
        assert h.status().pins == frozenset("XP")
        h.close()


def test_overflow_flag_when_rx_buffer_overfills(emu):
    with serial.Serial(emu.port, 115200, timeout=0.1) as s:
        time.sleep(0.2)
        s.write(b"$X\n" + b"G91 G1 X-0.01 F60\n" * 40)
        end = time.monotonic() + 5.0
        while not emu.rx_overflow and time.monotonic() < end:
            time.sleep(0.01)
    assert emu.rx_overflow and emu.rx_max_used == 128


def test_load_cell_streams_counts_from_the_force_model(rig_config):
    cfg = rig_config.loadcell

    def force(t, joints, rate):
        return 1.5

    with GrblEmulator(rig_config, force_fn=force, noise_counts=0.0) as emu:
        with serial.Serial(emu.loadcell_port, 115200, timeout=0.05) as s:
            time.sleep(0.1)
            s.reset_input_buffer()
            data = b""
            end = time.monotonic() + 10.0
            while data.count(b"\r\n") < 12 and time.monotonic() < end:
                data += s.read(4096)
    lines = [ln for ln in data.split(b"\r\n") if ln]
    counts = np.array([int(x) for x in lines[1:-1]])  # the first and last may be cut
    assert len(counts) >= 10 and np.all(counts == round(cfg.tare_counts + 1.5 * cfg.counts_per_n))
    assert len(emu.samples) >= len(counts) and all(f == 1.5 for _t, f in emu.samples)


def test_default_force_comes_from_the_tissue_model(rig_config):
    emu = GrblEmulator(rig_config, seed=3)
    cfg = rig_config
    # the needle pivot is z_mm above the skin; at 0 mm insertion the tip is in air
    assert abs(emu.force_now(time.monotonic())) < 0.05
    # push the tip ~1 mm into the skin: it tents and pushes back
    depth_insert = (cfg.fixed.z_mm + 1.0) / np.sin(cfg.fixed.pitch_rad)
    emu.mpos = cfg.mpos_from_joints(emu.joints().replace(x_mm=-10.0, y_mm=5.0, insert_mm=depth_insert))
    f = emu.force_now(time.monotonic())
    assert 0.2 < f < 5.0
    assert emu.joints() == JointVector(
        x_mm=-10.0,
        y_mm=5.0,
        z_mm=cfg.fixed.z_mm,
        pitch_rad=cfg.fixed.pitch_rad,
        insert_mm=pytest.approx(depth_insert),
        probe_yaw_rad=cfg.fixed.probe_yaw_rad,
    )


def test_garbage_and_determinism(rig_config):
    a = GrblEmulator(rig_config, seed=5)
    b = GrblEmulator(rig_config, seed=5)
    with a, b:
        ga = a.inject_garbage(3)
        gb = b.inject_garbage(3)
    assert ga == gb and all(any(x >= 0x80 for x in line) for line in ga)
    assert all(b"\n" not in line for line in ga)
