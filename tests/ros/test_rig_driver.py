"""rig_driver: the serial backend (GrblRig) against the GRBL + load-cell emulator on real ptys, behind the
safety layer and the operating state; the same topics as the simulated rig."""

import time

import pytest
import yaml

pytestmark = pytest.mark.ros


@pytest.fixture
def serial_rig(tmp_path, root):
    from ir_robot.devices.config import load_rig_config
    from ir_robot.devices.emulator import GrblEmulator

    data = yaml.safe_load((root / "config" / "rig.yaml").read_text())
    data["grbl"]["homing"] = False  # the emulator starts unlocked, at MPos 0
    cfg_path = tmp_path / "rig.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    emu = GrblEmulator(
        load_rig_config(cfg_path), seed=3, force_fn=lambda t, j, r: 0.05, start_mpos=(-45.0, -22.0, 0.0)
    ).start()
    data["grbl"]["port"], data["loadcell"]["port"] = emu.port, emu.loadcell_port
    cfg_path.write_text(yaml.safe_dump(data))
    params = tmp_path / "ros.yaml"
    params.write_text(
        f"rig_driver:\n  ros__parameters:\n    backend: serial\n    rig_config: {cfg_path}\n    rate_hz: 20.0\n"
    )
    yield params
    emu.close()
    assert emu.loop_errors == []


def test_serial_rig_moves_on_rig_command_and_stops_on_estop(serial_rig, domain_id, probe):
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from ir_robot.ros import qos
    from ir_robot.ros.launcher import GraphRunner

    runner = GraphRunner("rig", params=[serial_rig], domain_id=domain_id, only=["rig_driver", "supervisor"]).start()
    try:
        driver = runner.nodes["rig_driver"]
        probe.wait(lambda: len(probe.joints) > 5 and probe.states[-1:] == ["idle"], 30, "joint states from GRBL")
        x0 = probe.joints[-1][0]
        assert x0 == pytest.approx(0.0, abs=1e-4)  # MPos -45 mm -> x_mm 0 (metres on the wire)
        cmd = probe.node.create_publisher(JointState, "/rig/command", qos.rig_command())
        assert probe.call(Trigger, "/procedure/start").success  # reset_service '' on the rig graph
        probe.wait(lambda: probe.states[-1:] == ["running"], 10, "running")
        for _ in range(15):  # 5 mm/s along x for ~1.5 s
            cmd.publish(JointState(name=["x_mm"], velocity=[0.005]))
            time.sleep(0.1)
        probe.wait(lambda: probe.joints[-1][0] > x0 + 0.003, 10, "the stage to move along x")
        assert driver.rig.counts["refused"] == 0 and driver.rig.counts["executed"] >= 10
        assert probe.call(Trigger, "/rig/estop").success
        probe.wait(lambda: driver.rig.rig.tripped, 5, "the safety layer to latch the e-stop")
        time.sleep(0.5)
        x_stop = probe.joints[-1][0]
        cmd.publish(JointState(name=["x_mm"], velocity=[0.005]))  # refused while the e-stop is latched
        time.sleep(0.8)
        assert abs(probe.joints[-1][0] - x_stop) < 2e-4
        assert driver.rig.counts["not_running"] >= 1
    finally:
        runner.stop()
