"""One process per node (the way ros2 launch runs them) stops cleanly on Ctrl-C; replay republishes a recording."""

import time

import pytest

pytestmark = pytest.mark.ros


def test_one_process_per_node_stops_cleanly_on_ctrl_c(tmp_path, domain_id, fast_params, probe):
    from ir_robot.recording.mcap_io import summary
    from ir_robot.ros.launcher import ProcessRunner

    mcap = tmp_path / "p.mcap"
    runner = ProcessRunner(
        "sim", params=[fast_params], record=mcap, domain_id=domain_id, only=["sim", "supervisor"]
    ).start()
    try:
        probe.wait(lambda: probe.states[-1:] == ["idle"] and len(probe.joints) > 10, 60, "the graph's processes")
        assert runner.ok
        # nodes off the image-to-command path run niced (NodeSpec.nice): the supervisor yields to the sim
        import os

        base = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, runner.procs["supervisor"].pid) == min(base + 5, 19)
        assert os.getpriority(os.PRIO_PROCESS, runner.procs["sim"].pid) == base
        time.sleep(1.0)
    finally:
        codes = runner.stop()  # SIGINT to every process, as Ctrl-C does
    assert codes == {"sim": 0, "supervisor": 0, "recorder": 0}, codes
    info = summary(mcap)  # readable: the recorder finished the file on SIGINT
    assert info["/procedure/state"].count >= 1 and info["/rig/joint_states"].count > 10


def test_replay_republishes_with_recorded_qos(tmp_path, domain_id):
    import rclpy
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    from ir_robot.recording.mcap_io import McapRecorder, QosInfo
    from ir_robot.ros import qos
    from ir_robot.ros.replay import replay
    from ir_robot.ros.run import spin_in_background

    path = tmp_path / "r.mcap"
    with McapRecorder(path) as rec:
        rec.add_channel("/procedure/state", "std_msgs/msg/String", [QosInfo("reliable", "transient_local", 1)])
        rec.add_channel("/chatter", "std_msgs/msg/String", [QosInfo("reliable", "volatile", 10)])
        for i in range(20):
            rec.write_raw("/chatter", serialize_message(String(data=f"m{i}")), log_time_ns=1_000_000_000 + i * 10**7)
        rec.write_raw("/procedure/state", serialize_message(String(data="running")), log_time_ns=1_000_000_000)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    got = []
    node = rclpy.create_node("listener", context=ctx)
    node.create_subscription(String, "/chatter", lambda m: got.append(m.data), qos.command())
    ex = rclpy.executors.SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    spin_in_background(ex)
    try:
        counts = replay(path, rate=4.0, domain_id=domain_id, wait_s=1.0)
        assert counts == {"/procedure/state": 1, "/chatter": 20}
        deadline = time.monotonic() + 5
        while len(got) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == [f"m{i}" for i in range(20)]
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_ir_robot_launch_stops_cleanly_on_ctrl_c_or_sigterm(tmp_path, domain_id, gt_params, how):
    import signal
    import subprocess
    import sys

    from ir_robot.recording.mcap_io import summary

    mcap = tmp_path / "cli.mcap"
    cmd = [
        sys.executable,
        "-m",
        "ir_robot.cli",
        "launch",
        "sim",
        "--record",
        str(mcap),
        "--params",
        str(gt_params),
        "--domain-id",
        str(domain_id),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        time.sleep(3.0)
        proc.send_signal(getattr(signal, how))
        code = proc.wait(timeout=30)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, "".join(lines) + rest
    assert "recording closed" in rest
    info = summary(mcap)
    assert info["/us/image_raw"].count > 10 and info["/procedure/state"].count >= 1
