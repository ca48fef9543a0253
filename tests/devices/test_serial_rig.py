"""GrblRig against the GRBL 1.1 emulator over real pseudo-terminals (issue #6 acceptance)."""

import errno
import os
import re
import time

import numpy as np
import pytest

from ir_robot.core.errors import RigError, SafetyTrip
from ir_robot.core.types import JointVector, RigCommand
from ir_robot.devices import grbl as P
from ir_robot.devices.base import Rig
from ir_robot.devices.emulator import GrblEmulator
from ir_robot.devices.serial_rig import GrblRig


def wait_for(pred, timeout=3.0, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def joints(cfg, x=0.0, y=0.0, insert=0.0):
    return JointVector(
        x_mm=x,
        y_mm=y,
        z_mm=cfg.fixed.z_mm,
        pitch_rad=cfg.fixed.pitch_rad,
        insert_mm=insert,
        probe_yaw_rad=cfg.fixed.probe_yaw_rad,
    )


# ----------------------------------------------------------------------------- wake-up and queries


def test_connect_reads_banner_build_info_and_settings(rig, emulator):
    assert isinstance(rig, Rig)
    assert rig.version == "1.1h"
    assert rig.build.version == "1.1h" and rig.build.build == "20190825"
    assert rig.options.rx_buffer_bytes == 128 and rig.options.planner_blocks == 15
    assert rig.rx_budget_bytes == 127
    assert rig.settings[110] == 600.0 and rig.settings[22] == 1.0
    # homing is enabled: GRBL starts locked in Alarm with the unlock hint
    st = rig.read_state()
    assert st.status == "alarm" and not st.moving
    with pytest.raises(RigError, match="Alarm"):
        rig.command(RigCommand(JointVector(x_mm=-1.0), 0.1))


def test_settings_mismatch_names_the_setting(rig_config, flat_force):
    with GrblEmulator(rig_config, settings={111: 450.0}, force_fn=flat_force) as emu:
        with pytest.raises(RigError) as info:
            GrblRig(rig_config, port=emu.port, loadcell_port=None)
    msg = str(info.value)
    assert "$111 (Y max rate, mm/min) is 450" in msg and "$111=600" in msg and emu.port in msg


def test_unlock_home_and_messages(rig, emulator):
    rig.unlock()
    assert any("Caution: Unlocked" in text for _t, text in rig.messages)
    assert rig.read_state().status == "idle"
    rig.home()
    mpos, _wpos, _wco = rig.positions()
    assert mpos == pytest.approx((-1.0, -1.0, -1.0))
    gc = rig.gcode_state()
    assert "G21" in gc.words and "G90" in gc.words


def test_status_reports_keep_coming_from_the_poller(rig, emulator):
    n0 = emulator.status_replies
    assert wait_for(lambda: emulator.status_replies >= n0 + 2)  # the rate itself: test_status_poll_schedule
    s = rig.status()
    assert s.planner_blocks_free == 15 and s.rx_bytes_free == 128 and s.feed == 0.0 and s.mpos is not None


def test_wpos_reports_are_converted_with_wco(rig_config, flat_force):
    with GrblEmulator(rig_config, settings={10: 0}, wco_mm=(1.0, 2.0, 3.0), force_fn=flat_force) as emu:
        with GrblRig(rig_config, port=emu.port, loadcell_port=None) as rig:
            rig.home()
            time.sleep(0.25)
            mpos, wpos, wco = rig.positions()
            assert rig.status().wpos is not None and rig.status().mpos is None
            assert wco == (1.0, 2.0, 3.0)
            assert mpos == pytest.approx((-1.0, -1.0, -1.0)) and wpos == pytest.approx((-2.0, -3.0, -4.0))
            assert rig.read_state().joints == rig_config.joints_from_mpos(mpos)


# ----------------------------------------------------------------------------- motion


def test_move_to_reaches_the_target_in_machine_coordinates(ready_rig, emulator, rig_config):
    target = joints(rig_config, x=40.0, y=19.0, insert=2.5)
    ready_rig.move_to(target, speed_mm_s=8.0)
    assert emulator.received_lines[-1].startswith("G90 G21 G53 G1 X-5.000 Y-3.000 Z-2.500 F480")
    st = ready_rig.wait_idle(timeout=10)
    assert st.joints.x_mm == pytest.approx(40.0, abs=1e-3) and st.joints.insert_mm == pytest.approx(2.5, abs=1e-3)
    assert np.allclose(emulator.mpos, [-5.0, -3.0, -2.5])


def test_move_to_refuses_fixed_joints_and_out_of_travel(ready_rig, emulator, rig_config):
    n = len(emulator.received_lines)
    with pytest.raises(RigError, match="pitch_rad is fixed"):
        ready_rig.move_to(joints(rig_config, 40, 19).replace(pitch_rad=0.5))
    with pytest.raises(RigError, match=r"^x_mm: requested end 60\.0 mm is outside the travel \[-45\.0, 45\.0\] mm"):
        ready_rig.move_to(joints(rig_config, 60, 19))
    assert len(emulator.received_lines) == n  # nothing sent


def test_jog_distance_is_rate_times_duration(ready_rig, emulator, rig_config):
    ready_rig.command(RigCommand(JointVector(x_mm=-2.0, insert_mm=1.0), duration_s=0.5))
    line = emulator.received_lines[-1]
    assert line == "$J=G91 G21 X-1.000 Z-0.500 F134.2"  # |(-2, -1)| mm/s * 60 = 134.16 mm/min
    st = ready_rig.wait_idle(timeout=5)
    assert st.joints.x_mm == pytest.approx(44.0 - 1.0, abs=1e-3)
    assert st.joints.insert_mm == pytest.approx(1.0 + 0.5, abs=1e-3)


def test_jog_rates_are_clipped_to_the_max_rates_keeping_direction(ready_rig, emulator):
    # Z (insert) max rate 300 mm/min = 5 mm/s: 20 mm/s asks 4x too much
    ready_rig.command(RigCommand(JointVector(x_mm=-4.0, insert_mm=20.0), duration_s=0.1))
    words = dict(re.findall(r"([XYZF])(-?[\d.]+)", emulator.received_lines[-1]))
    assert float(words["Z"]) == pytest.approx(-0.5) and float(words["X"]) == pytest.approx(-0.1)
    assert float(words["F"]) == pytest.approx(np.hypot(1.0, 5.0) * 60, abs=0.1)
    assert ready_rig.last_command_scale == pytest.approx(0.25)
    ready_rig.command(RigCommand.stop())


def test_zero_command_cancels_the_jog(ready_rig, emulator):
    ready_rig.command(RigCommand(JointVector(x_mm=-5.0), duration_s=3.0))
    assert wait_for(lambda: emulator.state == "Jog" and emulator.mpos[0] < -1.5)
    ready_rig.command(RigCommand.stop())
    assert wait_for(lambda: emulator.state == "Idle")
    assert emulator.realtime_log[-1][1] == P.JOG_CANCEL
    st = ready_rig.wait_idle(timeout=3)
    assert 29.0 < st.joints.x_mm < 43.5  # stopped part way along the 15 mm jog


def test_rate_on_a_fixed_joint_raises(ready_rig):
    with pytest.raises(RigError, match="z_mm is fixed on this rig"):
        ready_rig.command(RigCommand(JointVector(z_mm=1.0), 0.1))
    with pytest.raises(RigError, match="probe_yaw_rad is fixed"):
        ready_rig.command(RigCommand(JointVector(x_mm=1.0, probe_yaw_rad=0.1), 0.1))


def test_jog_beyond_travel_stops_at_the_travel_end_instead_of_error_15(ready_rig, emulator):
    # homed at MPos -1 mm: +5 mm/s in X for 1 s would end at MPos +4, outside the soft-limit travel [-90, 0],
    # and GRBL would refuse the whole jog (error:15); GrblRig shortens it to end just inside
    ready_rig.command(RigCommand(JointVector(x_mm=5.0), duration_s=1.0))
    assert ready_rig.jogs_clipped == 1
    words = dict(re.findall(r"([XYZF])(-?[\d.]+)", emulator.received_lines[-1]))
    assert 0.99 <= float(words["X"]) < 1.0 and float(words["F"]) == pytest.approx(float(words["X"]) * 60, abs=0.2)
    ready_rig.wait_idle(timeout=5)
    assert -0.01 <= emulator.mpos[0] <= 0.0
    # at the travel end a further jog that way is not sent at all; the other way still works
    n = len(emulator.received_lines)
    ready_rig.command(RigCommand(JointVector(x_mm=5.0), duration_s=0.2))
    assert len(emulator.received_lines) == n and ready_rig.jogs_clipped == 2
    ready_rig.command(RigCommand(JointVector(x_mm=-1.0), duration_s=0.1))
    assert emulator.received_lines[-1].startswith("$J=G91 G21 X-0.100")
    # and GRBL's own refusal still reads as what it means
    with pytest.raises(P.GrblCommandError) as info:
        ready_rig.send("$J=G91 G21 X5.000 F300")
    assert info.value.code == 15 and "exceeds machine travel" in str(info.value)


def test_jogs_still_queued_count_against_the_travel(ready_rig, emulator):
    # four 0.4 mm jogs towards MPos 0 sent at once from MPos -1: GRBL plans each from the end of the last,
    # so the third may add only what is left (0.2 mm) and the fourth nothing; no jog is refused
    for _ in range(4):
        ready_rig.command(RigCommand(JointVector(x_mm=4.0), duration_s=0.1))
    jogs = [
        float(dict(re.findall(r"([XYZF])(-?[\d.]+)", line))["X"])
        for line in emulator.received_lines
        if line.startswith("$J=")
    ]
    assert sum(jogs) <= 1.0 and jogs[:2] == [0.4, 0.4] and ready_rig.jogs_clipped >= 1
    ready_rig.wait_idle(timeout=5)
    assert -0.01 <= emulator.mpos[0] <= 0.0


def test_error_codes_map_to_exceptions_with_meaning(ready_rig):
    cases = {
        "G2 X1 Y1 I1": 20,
        "G1 X-1": 22,
        "$J=G91 X-1": 22,
        "$J=G91 M3 X-1 F10": 16,
        "G4": 28,
        "$FOO": 3,
        "G0 G1 X-1": 21,
    }
    for line, code in cases.items():
        with pytest.raises(P.GrblCommandError) as info:
            ready_rig.send(line)
        assert info.value.code == code, line
        assert P.ERROR_CODES[code] in str(info.value) and line in str(info.value)


def test_feed_hold_and_resume(ready_rig, emulator, rig_config):
    ready_rig.move_to(joints(rig_config, x=36.0, y=19.0, insert=1.0), speed_mm_s=10.0)
    assert wait_for(lambda: emulator.state == "Run")
    ready_rig.feed_hold()
    assert wait_for(lambda: (emulator.state, emulator.substate) == ("Hold", 0))
    x_hold = emulator.mpos[0]
    assert wait_for(lambda: ready_rig.read_state().status == "hold", timeout=1.0)
    time.sleep(0.2)
    assert emulator.mpos[0] == x_hold  # held
    ready_rig.resume()
    st = ready_rig.wait_idle(timeout=10)
    assert st.joints.x_mm == pytest.approx(36.0, abs=1e-3)


def test_stop_sends_feed_hold_then_reset_and_latches(ready_rig, emulator, rig_config):
    ready_rig.move_to(joints(rig_config, x=10.0, y=19.0, insert=1.0), speed_mm_s=10.0)
    assert wait_for(lambda: emulator.state == "Run")
    ready_rig.stop("test e-stop")
    ready_rig.stop("twice is fine")
    assert wait_for(lambda: emulator.state == "Alarm")
    rt = [b for _t, b in emulator.realtime_log]
    i = rt.index(P.FEED_HOLD)
    assert rt[i + 1] == P.SOFT_RESET
    assert any(code == 3 for _t, code in emulator.alarms_sent)  # reset while moving
    assert ready_rig.read_state().status == "estop"
    with pytest.raises(RigError, match="stopped"):
        ready_rig.command(RigCommand(JointVector(x_mm=-1.0), 0.1))
    ready_rig.home()
    assert ready_rig.read_state().status == "idle"


def test_alarm_push_raises_with_meaning_and_resets_critical_alarms(ready_rig, emulator):
    emulator.push_alarm(1)  # hard limit: critical, GRBL waits for a reset
    assert wait_for(lambda: emulator.resets >= 1)
    assert wait_for(lambda: ready_rig.read_state().status == "alarm")
    with pytest.raises(P.GrblAlarm) as info:
        ready_rig.command(RigCommand(JointVector(x_mm=-1.0), 0.1))
    assert info.value.code == 1 and "Hard limit" in str(info.value)
    time.sleep(0.7)  # the watchdog is happy again after the reset
    assert ready_rig.fault is None
    ready_rig.home()
    ready_rig.command(RigCommand(JointVector(x_mm=-1.0), 0.1))


# ----------------------------------------------------------------------------- streaming


def test_streaming_ten_thousand_lines_none_lost_none_duplicated(ready_rig, emulator):
    lines = [f"N{i + 1} G{90 + i % 2} G21" if i % 3 else f"N{i + 1} F{100 + i % 900}" for i in range(10_000)]
    n_before = len(emulator.received_lines)
    ok_before = emulator.ok_sent
    res = ready_rig.stream(lines)
    assert res.sent == 10_000 and res.ok == 10_000 and res.errors == []
    assert emulator.received_lines[n_before:] == lines  # none lost, none duplicated, in order
    assert emulator.ok_sent - ok_before == 10_000
    assert not emulator.rx_overflow and emulator.rx_overflow_bytes == 0
    assert emulator.rx_max_used <= 127 and res.max_in_flight_bytes <= 127
    assert res.max_in_flight_bytes > 100  # the budget was really used, not one line at a time


def test_stream_with_motion_waits_for_the_planner(ready_rig, emulator):
    lines = ["G91 G1 X-0.05 F3000" for _ in range(60)]  # more blocks than the 15-block planner holds
    res = ready_rig.stream(lines + ["G90"])
    assert res.ok == 61 and not emulator.rx_overflow
    st = ready_rig.wait_idle(timeout=10)
    assert st.joints.x_mm == pytest.approx(44.0 - 3.0, abs=1e-3)


def test_stream_reports_errors_by_index_and_keeps_going(ready_rig, emulator):
    res = ready_rig.stream(["G21", "G2 X1", "G90", "G1 X-1"] * 10)
    assert res.ok == 20 and [i for i, _ in res.errors] == [i for i in range(40) if i % 4 in (1, 3)]
    assert {e.code for _, e in res.errors} == {20, 22}


def test_naive_flooding_does_overflow_the_emulator(emulator):
    """The overflow detector works: without character counting the RX buffer overfills."""
    import serial

    with serial.Serial(emulator.port, 115200, timeout=0.2) as s:
        time.sleep(0.2)
        s.write(b"$X\n")
        s.write(b"".join(f"N{i} G91 G1 X-0.01 F100\n".encode() for i in range(1, 400)))
        assert wait_for(lambda: emulator.rx_overflow, timeout=2.0)
    assert emulator.rx_overflow_bytes > 0 and emulator.rx_max_used == 128


# ----------------------------------------------------------------------------- faults


def test_port_vanishing_mid_move_is_reported_and_halted_within_100_ms(ready_rig, emulator, rig_config):
    ready_rig.move_to(joints(rig_config, x=0.0, y=19.0, insert=1.0), speed_mm_s=10.0)
    assert wait_for(lambda: emulator.state == "Run")
    t_unplug = emulator.unplug()
    assert wait_for(lambda: ready_rig.fault is not None, timeout=1.0)
    assert ready_rig.fault_time - t_unplug < 0.100
    # the reader thread records the fault, then sends the halt bytes and logs the halt
    assert wait_for(lambda: any(h[1] == "fault" for h in ready_rig.halts), timeout=1.0)
    t_halt, reason, delivered = ready_rig.halts[-1]
    assert reason == "fault" and t_halt - t_unplug < 0.100 and delivered is False  # attempted; the port is gone
    st = ready_rig.read_state()
    assert st.status == "estop" and "vanished" in st.message and ready_rig.port in st.message
    with pytest.raises(RigError, match="vanished"):
        ready_rig.move_to(joints(rig_config, x=10.0, y=19.0, insert=1.0))


def test_write_failure_is_a_fault_not_a_hang(ready_rig, monkeypatch):
    import serial

    def broken(data):
        raise serial.SerialException("write failed: [Errno 5] Input/output error")

    monkeypatch.setattr(ready_rig.transport.ser, "write", broken)
    t0 = time.monotonic()
    with pytest.raises(RigError, match="vanished"):
        ready_rig.command(RigCommand(JointVector(x_mm=-1.0), 0.1))
    assert time.monotonic() - t0 < 1.0
    assert ready_rig.halts[-1][1:] == ("fault", False)


def test_no_status_reply_for_500_ms_halts_with_a_clear_error(ready_rig, emulator):
    time.sleep(0.25)
    emulator.stall()
    t_stall = time.monotonic()
    assert wait_for(lambda: ready_rig.fault is not None, timeout=2.0)
    waited = ready_rig.fault_time - t_stall
    assert 0.3 < waited < 1.0
    assert "no status reply" in str(ready_rig.fault) and ready_rig.port in str(ready_rig.fault)

    def after():
        return [b for t, b in emulator.realtime_log if t >= t_stall]

    assert wait_for(lambda: len(after()) >= 2)
    assert after()[:2] == [P.FEED_HOLD, P.SOFT_RESET]  # halt attempted even though the board is mute
    assert ready_rig.read_state().status == "estop"


def test_garbage_lines_are_surfaced_as_protocol_errors(ready_rig, emulator):
    n0 = ready_rig.protocol_error_count
    emulator.inject_garbage(5)
    assert wait_for(lambda: ready_rig.protocol_error_count - n0 == 5)
    assert all("malformed line from GRBL" in str(e) for e in list(ready_rig.protocol_errors)[-5:])
    assert ready_rig.fault is None
    ready_rig.send("$G")  # still in sync
    emulator.inject_garbage(40)  # a corrupt link halts the rig
    assert wait_for(lambda: ready_rig.fault is not None)
    assert "corrupt" in str(ready_rig.fault) and "baud" in str(ready_rig.fault)


def test_force_above_threshold_feed_holds_and_resets_within_50_ms(ready_rig, emulator, rig_config):
    limit = rig_config.loadcell.force_limit_n
    ready_rig.move_to(joints(rig_config, x=20.0, y=19.0, insert=1.0), speed_mm_s=10.0)
    assert wait_for(lambda: emulator.state == "Run")
    t0 = emulator.force_spike(force_n=limit + 2.0, duration_s=0.3)
    assert wait_for(lambda: ready_rig.read_state().status == "estop", timeout=1.0)
    t_over = next(t for t, f in list(emulator.samples) if t >= t0 and f > limit)

    def after():
        return [(t, b) for t, b in emulator.realtime_log if t >= t_over]

    assert wait_for(lambda: len(after()) >= 2)  # the emulator thread may log them a moment later
    (t_hold, b1), (t_reset, b2) = after()[:2]
    assert (b1, b2) == (P.FEED_HOLD, P.SOFT_RESET)
    assert t_reset - t_over < 0.050
    st = ready_rig.read_state()
    assert "force" in st.message and st.force_n > limit
    with pytest.raises(SafetyTrip) as info:
        ready_rig.command(RigCommand(JointVector(x_mm=-1.0), 0.1))
    assert info.value.reason == "force"
    assert wait_for(lambda: ready_rig.read_state().force_n < limit, timeout=2.0)
    ready_rig.home()
    ready_rig.command(RigCommand(JointVector(insert_mm=1.0), 0.1))  # re-armed: inserting allowed again


def test_force_still_high_after_unlock_allows_only_retraction(rig_config):
    high = {"on": True}

    def force(t, j, rate):
        return 5.0 if high["on"] else 0.0

    with GrblEmulator(rig_config, force_fn=force) as emu:
        with GrblRig(rig_config, port=emu.port, loadcell_port=emu.loadcell_port) as rig:
            assert wait_for(lambda: rig.read_state().status == "estop")  # tripped at once
            rig.unlock()
            with pytest.raises(SafetyTrip, match="only retraction"):
                rig.command(RigCommand(JointVector(insert_mm=0.5), 0.1))
            rig.command(RigCommand(JointVector(x_mm=-0.5), 0.1))  # not inserting: allowed
            high["on"] = False
            assert wait_for(lambda: rig.read_state().force_n < 1.0)
            time.sleep(0.05)
            rig.command(RigCommand(JointVector(x_mm=-0.5, insert_mm=0.5), 0.1))


def test_load_cell_going_silent_halts(rig_config, flat_force):
    with GrblEmulator(rig_config, force_fn=flat_force) as emu:
        with GrblRig(rig_config, port=emu.port, loadcell_port=emu.loadcell_port) as rig:
            emu._lc_pty.close()
            assert wait_for(lambda: rig.fault is not None, timeout=2.0)
            assert "load cell" in str(rig.fault)


# ----------------------------------------------------------------------------- connection errors


def test_wrong_port_names_it_and_the_fix(rig_config):
    with pytest.raises(RigError) as info:
        GrblRig(rig_config, port="/dev/ttyDOESNOTEXIST0", loadcell_port=None)
    assert "/dev/ttyDOESNOTEXIST0" in str(info.value) and "list_ports" in str(info.value)


def test_permission_denied_suggests_dialout(rig_config, monkeypatch, tmp_path):
    import serial

    def refuse(*a, **k):
        raise serial.SerialException(errno.EACCES, "could not open port /dev/ttyACM0: [Errno 13] Permission denied")

    monkeypatch.setattr(serial, "Serial", refuse)
    with pytest.raises(RigError) as info:
        GrblRig(rig_config, port="/dev/ttyACM0", loadcell_port=None)
    assert "permission denied" in str(info.value) and "/dev/ttyACM0" in str(info.value) and "dialout" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_on_a_real_device(rig_config):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.chmod(path, 0)
    try:
        with pytest.raises(RigError, match="dialout"):
            GrblRig(rig_config, port=path, loadcell_port=None)
    finally:
        os.close(master)
        os.close(slave)


def test_silent_device_is_not_grbl(rig_config):
    with GrblEmulator(rig_config, personality="silent", loadcell=False) as emu:
        with pytest.raises(RigError) as info:
            GrblRig(rig_config, port=emu.port, loadcell_port=None)
    assert emu.port in str(info.value) and "no reply" in str(info.value) and "not a GRBL board" in str(info.value)
    assert P.SOFT_RESET in [b for _t, b in emu.realtime_log]  # it tried a reset before giving up


def test_other_device_is_not_grbl(rig_config):
    with GrblEmulator(rig_config, personality="marlin", loadcell=False) as emu:
        with pytest.raises(RigError) as info:
            GrblRig(rig_config, port=emu.port, loadcell_port=None)
    assert "is not a GRBL 1.1 board" in str(info.value) and "Marlin" in str(info.value) and emu.port in str(info.value)


def test_load_cell_port_given_as_grbl_port(rig_config, flat_force):
    with GrblEmulator(rig_config, force_fn=flat_force) as emu:
        with pytest.raises(RigError, match="not a GRBL 1.1 board.*load"):
            GrblRig(rig_config, port=emu.loadcell_port, loadcell_port=None)


def test_baud_mismatch_garbage(rig_config):
    with GrblEmulator(rig_config, baud_mismatch=True, loadcell=False) as emu:
        with pytest.raises(RigError) as info:
            GrblRig(rig_config, port=emu.port, loadcell_port=None)
    assert "baud" in str(info.value) and "garbage" in str(info.value) and emu.port in str(info.value)


def test_old_grbl_version_refused(rig_config, monkeypatch):
    import ir_robot.devices.emulator.defaults as E

    monkeypatch.setattr(E, "VERSION", "0.9j")
    with GrblEmulator(rig_config, loadcell=False) as emu:
        with pytest.raises(RigError, match="needs GRBL 1.1"):
            GrblRig(rig_config, port=emu.port, loadcell_port=None)


def test_reconnect_without_reset_on_open_uses_a_soft_reset(rig_config):
    cfg = rig_config
    with GrblEmulator(cfg, reset_on_open=False, loadcell=False) as emu:
        with GrblRig(cfg, port=emu.port, loadcell_port=None) as rig:
            rig.home()
        with GrblRig(cfg, port=emu.port, loadcell_port=None) as rig2:  # no banner on open: GrblRig resets
            assert rig2.version == "1.1h"
            assert rig2.positions()[0] == pytest.approx((-1.0, -1.0, -1.0))  # position kept across the reset
        assert emu.resets >= 1


def test_close_stops_threads_and_releases_the_port(rig_config, flat_force):
    import threading

    with GrblEmulator(rig_config, force_fn=flat_force) as emu:
        rig = GrblRig(rig_config, port=emu.port, loadcell_port=emu.loadcell_port)
        rig.close()
        rig.close()
        assert not [t for t in threading.enumerate() if t.name.endswith(emu.port) and t.is_alive()]
        again = GrblRig(rig_config, port=emu.port, loadcell_port=emu.loadcell_port)  # exclusive lock released
        again.close()


# ----------------------------------------------------------------------------- jog and move beyond the travel


def test_jog_beyond_the_travel_is_refused_at_once_and_nothing_moves(ready_rig, emulator):
    n, before = len(emulator.received_lines), emulator.mpos.copy()  # homed: x_mm 44, insert_mm 1
    t0 = time.monotonic()
    with pytest.raises(
        RigError,
        match=r"^x_mm: requested end 544\.0 mm is outside the travel \[-45\.0, 45\.0\] mm \(jog from 44\.0 mm by 500",
    ):
        ready_rig.jog("x_mm", 500.0, 5.0)
    assert time.monotonic() - t0 < 0.5  # answered at once: no motion, no waiting
    with pytest.raises(RigError, match=r"^insert_mm: requested end -4\.0 mm is outside the travel \[0\.0, 40\.0\] mm"):
        ready_rig.jog("insert_mm", -5.0, 2.0)
    with pytest.raises(RigError, match="pitch_rad is fixed"):
        ready_rig.jog("pitch_rad", 0.1, 1.0)
    ready_rig.wait_idle(timeout=5)  # a status report newer than the refusals
    assert len(emulator.received_lines) == n and np.array_equal(emulator.mpos, before)  # nothing sent or moved
    assert ready_rig.read_state().status == "idle"
    # inside the travel the jog goes to the end asked, at the speed asked (capped by the axis max rate)
    assert ready_rig.jog("x_mm", -4.0, 5.0) == pytest.approx(0.8)
    assert emulator.received_lines[-1] == "$J=G90 G21 G53 X-5.000 F300.0"
    assert ready_rig.wait_idle(timeout=5).joints.x_mm == pytest.approx(40.0, abs=1e-3)
    assert ready_rig.jog("x_mm", 5.0, 50.0) == pytest.approx(0.5)  # 10 mm/s: $110 and max_speed_mm_s
    assert emulator.received_lines[-1] == "$J=G90 G21 G53 X0.000 F600.0"
    assert ready_rig.wait_idle(timeout=5).joints.x_mm == pytest.approx(45.0, abs=1e-3)  # the travel's very end


# ----------------------------------------------------------------------------- poller / watchdog on a fake clock


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


class FakeSerial:
    """Records what is written, with the fake clock's time."""

    def __init__(self, clock):
        self.clock = clock
        self.writes = []

    def write(self, data):
        self.writes.append((self.clock.t, bytes(data)))


def fake_link(cfg):
    from ir_robot.devices.grbl_link import GrblLink

    clock = FakeClock()
    link = GrblLink(cfg, "/dev/ttyFAKE0", clock)
    link.transport.ser = FakeSerial(clock)
    link.connected = True
    return link, clock


def test_status_poll_schedule(rig_config):
    from ir_robot.devices.grbl_threads import Watchdog

    link, clock = fake_link(rig_config)
    clock.t = 0.0
    dog = Watchdog(link)
    tick = 0.001
    for k in range(1, 10_001):  # 10 s of the poller's ticks, every status answered at once
        clock.t = k * tick
        link.last_status_rx = clock.t
        assert dog.check(clock.t) and link.fault is None
    queries = np.array([t for t, data in link.transport.ser.writes if data == P.STATUS_QUERY])
    period = 1.0 / rig_config.grbl.status_poll_hz
    assert np.count_nonzero(queries < 10.0) == 10.0 * rig_config.grbl.status_poll_hz  # 50 at 5 Hz
    assert np.allclose(np.diff(queries), period, atol=tick)  # one per period, to within a tick
    # a poller that fell behind by more than a period sends one query, not a burst
    n = len(queries)
    for t in (12.0, 12.0 + tick):
        clock.t = link.last_status_rx = t
        dog.check(clock.t)
    assert len(link.transport.ser.writes) == n + 1 and dog.next_query == pytest.approx(12.0 + period)


def test_watchdog_halts_once_the_board_is_silent_past_the_status_timeout(rig_config):
    from ir_robot.devices.grbl_threads import GrblReader, Watchdog

    link, clock = fake_link(rig_config)
    dog = Watchdog(link)
    dog.next_query = 1e9  # no queries in this test
    limit = rig_config.grbl.status_timeout_s
    GrblReader(link).handle(b"<Idle|MPos:-1.000,-1.000,-1.000|FS:0,0>", clock.t)  # a reply at t = 100
    clock.t = 100.0 + limit
    dog.check(clock.t)
    assert link.fault is None  # exactly the limit: still fine
    clock.t = 100.0 + limit + 0.001
    dog.check(clock.t)
    assert link.fault is not None and link.fault_time == clock.t
    assert f"no status reply from GRBL on /dev/ttyFAKE0 for {limit + 0.001:.2f} s" in str(link.fault)
    assert link.halts == [(clock.t, "fault", True)] and link.transport.ser.writes[-1] == (clock.t, b"!\x18")


def test_watchdog_waits_for_the_banner_after_a_reset_and_not_while_homing(rig_config):
    from ir_robot.devices.grbl_threads import Watchdog

    link, clock = fake_link(rig_config)
    dog = Watchdog(link)
    dog.next_query = 1e9
    link.watchdog_suspended = 1  # homing: GRBL does not answer status
    clock.t += 60.0
    dog.check(clock.t)
    assert link.fault is None
    link.watchdog_suspended = 0
    clock.t = 0.0
    link.mark_resetting()  # 0x18 sent at t = 0: no status replies until the banner
    wake = rig_config.grbl.wake_timeout_s
    clock.t = wake
    dog.check(clock.t)
    assert link.fault is None
    clock.t += 0.001
    dog.check(clock.t)
    assert f"did not restart within {wake:.1f} s of a soft reset" in str(link.fault)


def test_watchdog_halts_on_a_silent_load_cell(rig_config):
    from ir_robot.devices.grbl_threads import Watchdog
    from ir_robot.devices.loadcell import LoadCell

    link, clock = fake_link(rig_config)
    lc = LoadCell(rig_config.loadcell, "/dev/ttyFAKE1", clock=clock)  # never opened: samples set by hand
    dog = Watchdog(link, lc)
    dog.next_query = 1e9
    lc.latest_t = clock.t
    limit = rig_config.loadcell.timeout_s
    clock.t += limit
    link.last_status_rx = clock.t
    dog.check(clock.t)
    assert link.fault is None
    clock.t += 0.001
    link.last_status_rx = clock.t
    dog.check(clock.t)
    assert f"load cell on /dev/ttyFAKE1 silent for {limit + 0.001:.2f} s" in str(link.fault)


def test_force_trip_halts_on_the_first_sample_over_the_ceiling_once(rig_config):
    from ir_robot.devices.grbl_threads import ForceTrip

    link, clock = fake_link(rig_config)
    trip = ForceTrip(link, "/dev/ttyFAKE1")
    limit = rig_config.loadcell.force_limit_n
    trip.on_sample(clock.t, limit)  # at the ceiling: not over it
    assert link.transport.ser.writes == [] and link.estop_reason is None
    clock.t += 0.0125
    trip.on_sample(clock.t, limit + 0.01)
    assert link.transport.ser.writes == [(clock.t, b"!\x18")] and link.halts == [(clock.t, "force", True)]
    assert link.estop_reason == "force" and link.resetting and not link.force_armed
    trip.on_sample(clock.t + 0.0125, 3 * limit)  # latched: no second halt
    assert len(link.transport.ser.writes) == 1
