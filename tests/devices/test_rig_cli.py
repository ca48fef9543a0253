"""`ir-robot rig ...` and `ir-robot rig-emulator` end to end."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ir_robot.cli import main
from ir_robot.config import to_dict
from ir_robot.devices import grbl as P
from ir_robot.devices.emulator import GrblEmulator
from ir_robot.devices.serial_rig import GrblRig


@pytest.fixture
def config_file(tmp_path, rig_config):
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(to_dict(rig_config)))
    return str(p)


@pytest.fixture
def emu(rig_config, flat_force):
    with GrblEmulator(rig_config, force_fn=flat_force) as e:
        yield e


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_json(capsys, emu, config_file):
    code, out, _ = run(
        capsys,
        "rig",
        "status",
        "--port",
        emu.port,
        "--loadcell-port",
        emu.loadcell_port,
        "--config",
        config_file,
        "--json",
    )
    assert code == 0
    d = json.loads(out)
    assert d["grbl_version"] == "1.1h" and d["grbl_state"] == "Alarm" and d["rx_buffer_budget_bytes"] == 127
    assert d["joints"]["pitch_rad"] == 0.35 and d["force_n"] is not None


def test_move_and_jog_with_homing_in_the_same_session(capsys, emu, config_file):
    code, out, _ = run(
        capsys,
        "rig",
        "move",
        "--home",
        "--x-mm",
        "40",
        "--insert-mm",
        "2",
        "--speed-mm-s",
        "10",
        "--port",
        emu.port,
        "--loadcell-port",
        "none",
        "--config",
        config_file,
        "--json",
    )
    assert code == 0
    d = json.loads(out)
    assert d["joints"]["x_mm"] == 40.0 and d["joints"]["insert_mm"] == 2.0 and d["status"] == "idle"
    code, out, _ = run(
        capsys,
        "rig",
        "jog",
        "--home",
        "--joint",
        "insert_mm",
        "--distance-mm",
        "1.5",
        "--speed-mm-s",
        "3",
        "--port",
        emu.port,
        "--loadcell-port",
        "none",
        "--config",
        config_file,
        "--json",
    )
    assert code == 0 and json.loads(out)["joints"]["insert_mm"] == 2.5  # homed at insert 1.0, +1.5


def test_move_without_homing_explains_the_alarm(capsys, emu, config_file):
    code, _, err = run(
        capsys, "rig", "move", "--x-mm", "45", "--port", emu.port, "--loadcell-port", "none", "--config", config_file
    )
    assert code == 2 and "Alarm" in err and "rig home" in err


def test_estop(capsys, emu, config_file):
    code, out, _ = run(capsys, "rig", "estop", "--port", emu.port, "--config", config_file)
    assert code == 0 and "restarted" in out
    rt = [b for _t, b in emu.realtime_log]
    assert rt[-2:] == [P.FEED_HOLD, P.SOFT_RESET]


def test_errors_are_one_clear_line(capsys, config_file):
    code, _, err = run(capsys, "rig", "status", "--port", "/dev/ttyNOPE9", "--config", config_file)
    assert code == 2 and err.startswith("ir-robot: error: GRBL board port /dev/ttyNOPE9 does not exist")


def test_rig_emulator_process_serves_until_ctrl_c(tmp_path, config_file, rig_config):
    links = tmp_path / "links"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ir_robot.cli",
            "rig-emulator",
            "--config",
            config_file,
            "--boot-delay-s",
            "0.05",
            "--link-dir",
            str(links),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        ports = dict(ln.split(":", 1) for ln in lines if ln.startswith("  ") and ":" in ln)
        grbl_port = ports["  grbl port"].strip()
        assert os.readlink(links / "grbl") == grbl_port
        with GrblRig(rig_config, port=str(links / "grbl"), loadcell_port=str(links / "loadcell")) as rig:
            rig.home()
            assert rig.read_state().status == "idle"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert not (links / "grbl").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_jog_beyond_a_short_travel_fails_at_once_naming_the_joint_and_range(capsys, tmp_path, rig_config, flat_force):
    # a board whose X travel is 5 mm (x_mm in [0, 5]): unlocked at MPos 0, x_mm is 5, the travel's end
    x = dataclasses.replace(rig_config.grbl.x, offset_mm=5.0, max_travel_mm=5.0)
    cfg = dataclasses.replace(rig_config, grbl=dataclasses.replace(rig_config.grbl, x=x))
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    with GrblEmulator(cfg, force_fn=flat_force) as emu:
        argv = ["--port", emu.port, "--loadcell-port", "none", "--config", str(path)]
        t0 = time.monotonic()
        code, _, err = run(capsys, "rig", "jog", "--unlock", "--joint", "x_mm", "--distance-mm", "500", *argv)
        elapsed = time.monotonic() - t0
        assert code == 2
        assert err.startswith("ir-robot: error: x_mm: requested end 505.0 mm is outside the travel [0.0, 5.0] mm")
        assert elapsed < 5.0  # connecting and refusing; it used to crawl towards the travel end for 100 s
        assert not any(line.startswith("$J=") for line in emu.received_lines)
        assert emu.mpos.tolist() == [0.0, 0.0, 0.0] and emu.state == "Idle"


def test_move_beyond_the_travel_fails_before_connecting(capsys, config_file):
    code, _, err = run(capsys, "rig", "move", "--x-mm", "500", "--port", "/dev/ttyNOPE9", "--config", config_file)
    assert code == 2
    assert err.startswith("ir-robot: error: x_mm: requested end 500.0 mm is outside the travel [-45.0, 45.0] mm")
