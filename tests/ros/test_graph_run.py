"""The real ROS graph in pytest (launch_testing is not on pip): start it, drive a procedure from a separate
test node, check the MCAP recording."""

import json
import time

import pytest

pytestmark = pytest.mark.ros


def test_procedure_through_the_graph_completes_and_is_recorded(tmp_path, domain_id, fast_params, probe):
    from std_srvs.srv import Trigger

    from ir_robot.recording.mcap_io import iter_decoded, summary
    from ir_robot.ros.launcher import GraphRunner

    mcap = tmp_path / "session.mcap"
    runner = GraphRunner("sim", params=[fast_params], record=mcap, domain_id=domain_id).start()
    try:
        probe.wait(lambda: probe.states[-1:] == ["idle"], 20, "the supervisor's latched state")
        t0 = time.monotonic()
        res = probe.call(Trigger, "/procedure/start")
        assert res.success, res.message
        probe.wait(lambda: probe.summaries, 150, "the procedure summary")
        wall_s = time.monotonic() - t0
        probe.wait(lambda: probe.states[-1] in ("done", "failed"), 10, "the final state")
        rig = runner.nodes["sim"].rig.counts
        ctl = runner.nodes["controller"].counts
    finally:
        runner.stop()
    s = probe.summaries[0]
    # the line `ir-robot demo` prints, scored the same way
    assert list(s)[:8] == [
        "success",
        "tip_error_mm",
        "attempts",
        "duration_s",
        "peak_force_n",
        "seed",
        "perception",
        "reason",
    ]
    assert s["perception"] == "ground_truth" and s["seed"] == 0
    assert probe.states[:3] == ["idle", "starting", "running"] and probe.states[-1] in ("done", "failed")
    assert probe.phases[0] == "idle" and probe.phases[-1] in ("done", "failed")
    if s["success"]:
        assert s["hold_in_lumen"] and s["tip_error_mm"] < 1.0 and not s["back_wall_punctured"]
    # the rig obeyed the controller: every command executed, none malformed or refused, and it moved
    assert rig["executed"] == rig["received"] - rig["not_running"] and rig["executed"] > 100
    assert rig["malformed"] == 0 and rig["refused"] == 0
    assert probe.joints and max(abs(a - b) for a, b in zip(probe.joints[0], probe.joints[-1], strict=True)) > 1e-3
    # the recording: every topic of the graph, plausible counts for the time the procedure ran
    info = summary(mcap)
    expect = {
        "/us/image_raw": "sensor_msgs/msg/Image",
        "/us/mask": "sensor_msgs/msg/Image",
        "/us/result": "std_msgs/msg/String",
        "/nir/result": "std_msgs/msg/String",
        "/nir/image_raw": "sensor_msgs/msg/Image",
        "/us/camera_info": "sensor_msgs/msg/CameraInfo",
        "/rig/joint_states": "sensor_msgs/msg/JointState",
        "/rig/command": "sensor_msgs/msg/JointState",
        "/needle/force": "geometry_msgs/msg/WrenchStamped",
        "/procedure/state": "std_msgs/msg/String",
        "/procedure/result": "std_msgs/msg/String",
        "/sim/summary": "std_msgs/msg/String",
        "/us/markers": "visualization_msgs/msg/MarkerArray",
        "/plan/target": "geometry_msgs/msg/PointStamped",
        "/plan/path": "geometry_msgs/msg/PoseArray",
        "/controller/phase": "std_msgs/msg/String",
    }
    for topic, type_name in expect.items():
        assert topic in info and info[topic].type_name == type_name, topic
    # (lower bounds leave room for a busy machine: the simulator slows down rather than skipping time)
    assert 5 * wall_s <= info["/us/image_raw"].count <= 31 * (wall_s + 10)
    assert 1 * wall_s <= info["/nir/image_raw"].count <= 11 * (wall_s + 10)
    assert 5 * wall_s <= info["/rig/joint_states"].count <= 51 * (wall_s + 10)
    assert info["/rig/command"].count >= 0.9 * ctl["commands"]
    assert info["/procedure/state"].count >= 3 and info["/sim/summary"].count == 1  # latched depth 1: may coalesce
    assert info["/procedure/state"].qos[0].durability == "transient_local"
    assert info["/us/image_raw"].qos[0].reliability == "best_effort"
    recorded = [json.loads(m.data) for _, _, m in iter_decoded(mcap, ["/sim/summary"])]
    assert recorded == [s]
    phases = [m.data for _, _, m in iter_decoded(mcap, ["/controller/phase"])]
    for phase in ("scan", "align", "insert"):  # select runs inside one step
        assert phase in phases, (phase, phases, s["reason"])
