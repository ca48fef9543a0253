"""The GRBL 1.1 emulator itself, driven over its pty with plain pyserial."""

import time

import numpy as np
import pytest
import serial

from ir_robot.core.types import JointVector
from ir_robot.devices import grbl as P
from ir_robot.devices.emulator import GrblEmulator


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

    def until(self, pred, timeout=3.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.02)
            for i, m in enumerate(self.inbox):
                if pred(m):
                    del self.inbox[: i + 1]
                    return m
        raise AssertionError(f"timed out; inbox {self.inbox[-5:]}")

    def cmd(self, line, timeout=3.0):
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


def test_homing_moves_to_pulloff_and_ignores_status_while_homing(host, emu):
    host.s.write(b"$H\n")
    time.sleep(0.05)
    host.s.write(b"?")
    host.pump(0.1)
    assert emu.state == "Home"
    assert not any(isinstance(m, P.StatusReport) for m in host.inbox)
    host.until(lambda m: isinstance(m, P.Ok))
    s = host.status()
    assert s.state == "Idle" and s.mpos == (-1.0, -1.0, -1.0)


def test_homing_retracts_z_before_moving_x_and_y(rig_config):
    with GrblEmulator(rig_config, start_mpos=(-20.0, -10.0, -6.0), loadcell=False) as emu:
        h = Host(emu.port)
        h.until(lambda m: isinstance(m, P.Welcome))
        h.s.write(b"$H\n")
        path = []
        while emu.state != "Idle" or not path:
            path.append(emu.mpos.copy())
            time.sleep(0.005)
        path = np.array(path + [emu.mpos.copy()])
        moving_z = path[:, 2] < -1.0 - 1e-9
        assert moving_z.any() and np.all(path[moving_z, 0] == -20.0) and np.all(path[moving_z, 1] == -10.0)
        assert np.allclose(path[-1], [-1.0, -1.0, -1.0])
        h.close()


def test_homing_disabled_gives_error_5(rig_config):
    with GrblEmulator(rig_config, settings={22: 0, 20: 0}, loadcell=False) as emu:
        h = Host(emu.port)
        h.until(lambda m: isinstance(m, P.Welcome))
        assert h.cmd("$H").code == 5
        assert h.status().state == "Idle"  # no alarm at start without homing
        h.close()


def test_trapezoidal_profile_respects_rate_and_acceleration(host, emu, rig_config):
    host.cmd("$X")
    ax = rig_config.grbl.x
    vmax, acc = ax.max_rate_mm_min / 60.0, ax.accel_mm_s2
    dist = 20.0
    t0 = time.monotonic()
    assert host.cmd(f"G1 X-{dist} F{ax.max_rate_mm_min * 2}") == P.Ok()
    samples = []
    while emu.state != "Idle" or not samples:
        samples.append((time.monotonic(), emu.mpos[0], emu.v))
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    t_acc = vmax / acc
    expected = dist / vmax + t_acc  # trapezoid: cruise time + one ramp
    assert elapsed == pytest.approx(expected, rel=0.1, abs=0.05)
    speeds = np.array([v for _t, _x, v in samples])
    assert speeds.max() <= vmax + 1e-6 and speeds.max() > 0.95 * vmax
    # acceleration over 100 ms windows (sampling from another thread jitters by a few ms)
    t = np.array([s[0] for s in samples])
    j = np.searchsorted(t, t + 0.1)
    ok = j < len(t)
    accel = np.abs(speeds[j[ok]] - speeds[ok]) / (t[j[ok]] - t[ok])
    assert accel.max() <= acc * 1.15 and accel.max() > acc * 0.7
    assert emu.mpos[0] == pytest.approx(-dist)


def test_planner_holds_fifteen_blocks_and_delays_the_ok(host, emu):
    host.cmd("$X")
    host.cmd("G91 G1 F60")
    host.s.write(b"X-0.5\n" * 15)  # 90 bytes: fits the RX buffer
    host.pump(0.2)
    assert len(emu.planner) == 15
    oks = sum(isinstance(m, P.Ok) for m in host.inbox)
    host.inbox.clear()
    host.s.write(b"X-0.5\n")
    host.pump(0.1)
    assert oks == 15 and not any(isinstance(m, P.Ok) for m in host.inbox)  # 16th waits for a free block
    host.s.write(b"?")
    s = host.until(lambda m: isinstance(m, P.StatusReport))
    assert s.planner_blocks_free == 0 and s.state == "Run"
    host.s.write(b"\x18")
    assert host.until(lambda m: isinstance(m, P.Alarm)).code == 3


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


def test_feed_hold_resume_and_jog_cancel(host, emu):
    host.cmd("$X")
    host.cmd("G1 X-10 F600")
    time.sleep(0.2)
    host.s.write(b"!")
    time.sleep(0.4)
    s = host.status()
    assert (s.state, s.substate) == ("Hold", 0)
    x = s.mpos[0]
    time.sleep(0.2)
    assert host.status().mpos[0] == x
    host.s.write(b"~")
    time.sleep(0.05)
    assert host.status().state == "Run"
    host.s.write(b"\x18")
    host.until(lambda m: isinstance(m, P.Welcome))
    host.cmd("$X")
    assert host.cmd("$J=G91 X-10 F600") == P.Ok()
    time.sleep(0.2)
    assert host.status().state == "Jog"
    host.s.write(b"\x85")
    time.sleep(0.4)
    s = host.status()
    assert s.state == "Idle" and s.planner_blocks_free == 15 and -10 < s.mpos[0] < -1


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


def test_realtime_bytes_are_picked_off_and_never_buffered(host, emu):
    host.cmd("$X")
    host.s.write(b"G4 P0.3\n")
    time.sleep(0.05)
    host.s.write(b"$G\n" + b"?" * 5)  # the status query jumps the queue of the dwell
    s = host.until(lambda m: isinstance(m, P.StatusReport), timeout=0.2)
    assert s.rx_bytes_free == 128 - 3
    assert emu.status_queries >= 5


def test_overflow_flag_when_rx_buffer_overfills(emu):
    with serial.Serial(emu.port, 115200, timeout=0.1) as s:
        time.sleep(0.2)
        s.write(b"$X\n" + b"G91 G1 X-0.01 F60\n" * 40)
        time.sleep(0.3)
    assert emu.rx_overflow and emu.rx_max_used == 128


def test_load_cell_streams_80_hz_counts_from_the_force_model(rig_config):
    cfg = rig_config.loadcell

    def force(t, joints, rate):
        return 1.5

    with GrblEmulator(rig_config, force_fn=force, noise_counts=0.0) as emu:
        with serial.Serial(emu.loadcell_port, 115200, timeout=0.05) as s:
            time.sleep(0.1)
            s.reset_input_buffer()
            t0 = time.monotonic()
            data = b""
            while time.monotonic() - t0 < 1.0:
                data += s.read(4096)
    lines = [ln for ln in data.split(b"\r\n") if ln]
    assert 60 <= len(lines) <= 90
    counts = np.array([int(x) for x in lines[1:-1]])
    assert np.all(counts == round(cfg.tare_counts + 1.5 * cfg.counts_per_n))


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
