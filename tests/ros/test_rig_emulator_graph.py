"""The rig graph end to end without hardware: the emulated_rig node (GRBL + load-cell emulator on ptys, images
rendered from a simulator phantom) in place of the board and the video sources, and every other node as
on the benchtop rig: rig_driver talks GRBL over the serial line, the controller runs its rig config."""

import threading
import time

import numpy as np
import pytest
import yaml

from ir_robot.config import read_yaml
from ir_robot.core.errors import IrRobotError
from ir_robot.core.types import JointVector
from ir_robot.devices.config import default_rig_yaml, load_rig_config
from ir_robot.devices.emulated_phantom import EmulatedPhantom, start_emulator
from ir_robot.devices.factory import RigBackendConfig, connect_serial
from ir_robot.ros.controller_node import joints_at
from ir_robot.ros.emulated_rig_node import emulated_rig_yaml

pytestmark = pytest.mark.ros


def _jv(x: float) -> JointVector:
    return JointVector(x_mm=x, y_mm=0.0, z_mm=3.0, pitch_rad=0.35, insert_mm=0.0, probe_yaw_rad=1.5708)


def test_frames_are_placed_at_the_joints_of_their_stamp():
    # GRBL status reports at 0.00 and 0.05 s (x 0 -> 0.5 mm at 10 mm/s)
    history = [(0.00, _jv(0.0), _jv(10.0)), (0.05, _jv(0.5), _jv(10.0))]
    assert joints_at([], 1.0) is None
    assert joints_at(history, 0.02).x_mm == pytest.approx(0.2)  # between two reports: interpolated
    assert joints_at(history, 0.08).x_mm == pytest.approx(0.8)  # after the last: its velocity
    assert joints_at(history, 0.50).x_mm == pytest.approx(0.5 + 10.0 * 0.1)  # at most 0.1 s ahead
    assert joints_at(history, -1.0).x_mm == 0.0  # before the first: the first


def test_rig_driver_waits_for_the_board_and_says_why_it_gave_up(tmp_path):
    cfg = RigBackendConfig(backend="serial", rig_config=str(tmp_path / "rig.yaml"), connect_timeout_s=0.3, unlock=True)
    t0 = time.monotonic()
    with pytest.raises(IrRobotError, match="rig.yaml"):  # nothing there: the last error, after the timeout
        connect_serial(cfg)
    assert time.monotonic() - t0 >= 0.3
    # the emulated board appears 0.5 s after the driver started waiting for it
    data = emulated_rig_yaml(read_yaml(default_rig_yaml()), str(tmp_path), 20.0)
    emu = None

    def plug_in():
        nonlocal emu
        time.sleep(0.5)
        (tmp_path / "tmp.yaml").write_text(yaml.safe_dump(data))
        rig_config = load_rig_config(tmp_path / "tmp.yaml")
        emu = start_emulator(rig_config, EmulatedPhantom())
        emu.link_ports(str(tmp_path))
        (tmp_path / "tmp.yaml").replace(tmp_path / "rig.yaml")

    th = threading.Thread(target=plug_in)
    th.start()
    try:
        rig = connect_serial(
            RigBackendConfig(
                backend="serial", rig_config=str(tmp_path / "rig.yaml"), connect_timeout_s=20.0, unlock=True
            )
        )
        try:
            assert rig.read_state().status == "idle"  # connected and unlocked ($X): no Alarm
        finally:
            rig.close()
    finally:
        th.join()
        if emu is not None:
            emu.close()


def test_rig_graph_on_the_emulated_bench_completes_a_venipuncture(tmp_path, domain_id, gt_params, probe):
    from std_srvs.srv import Trigger

    from ir_robot.ros.launcher import GraphRunner

    link_dir = tmp_path / "emulated_rig"
    params = tmp_path / "emulated_rig.yaml"
    params.write_text(
        f"emulated_rig:\n  ros__parameters:\n    link_dir: {link_dir}\n"
        f"rig_driver:\n  ros__parameters:\n    rig_config: {link_dir / 'rig.yaml'}\n"
    )
    # ground-truth perception (the emulated rig publishes the rendered labels): the same cross-sections every run, so
    # the test checks the rig path, not the networks. With the trained models 14 of 15 runs succeeded at the
    # first attempt; one picked another vein from a mis-measured scan section and failed safely (docs/rig.md)
    runner = GraphRunner("rig_emulator", params=[gt_params, params], domain_id=domain_id).start()
    try:
        probe.wait(
            lambda: probe.states[-1:] == ["idle"] and len(probe.joints) > 5,
            30,
            "the supervisor and joint states from the emulated GRBL board",
        )
        driver = runner.nodes["rig_driver"]
        assert type(driver.backend).__name__ == "GrblRig" and (link_dir / "grbl").is_symlink()
        assert probe.call(Trigger, "/procedure/start").success
        probe.wait(lambda: probe.summaries, 150, "the procedure summary")
        counts = dict(driver.rig.counts)
        trip = driver.rig.rig.trip
        resets = runner.nodes["emulated_rig"].resets
        joints = np.array(probe.joints)
    finally:
        runner.stop()
    s = probe.summaries[0]
    # scored against the emulated phantom's ground truth, not the controller's own word
    assert s["success"], s["reason"]
    assert s["hold_in_lumen"] and s["flashback"] and not s["back_wall_punctured"] and not s["artery_punctured"]
    assert s["perception"] == "ground_truth" and s["attempts"] == 1
    assert [p[0] for p in s["punctures"]][-1] == "vessel_wall"
    assert resets == 1  # the supervisor asked the emulated rig for a fresh phantom before it started
    # the real serial path carried it: jogs executed, none refused, GRBL never refused a jog
    assert counts["executed"] > 100 and counts["refused"] == 0 and counts["malformed"] == 0 and trip is None
    # while the needle was in (> 15 mm) the stage did not sweep sideways: the phantom does not move (with the
    # simulator's tracker settings it oscillated over 3.2-4.3 mm; now 0.2-1.0 mm in 6 runs, docs/rig.md)
    inside = joints[joints[:, 4] > 0.015]
    assert len(inside) > 20 and np.ptp(inside[:, 1]) < 1.2e-3, np.ptp(inside[:, 1])
