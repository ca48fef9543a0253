"""The real ROS graph in pytest (launch_testing is not on pip): start it, drive a procedure from a separate
test node, check the recording; bad input never crashes a node; one process per node stops on Ctrl-C."""

import json
import signal
import threading
import time

import pytest

pytestmark = pytest.mark.ros

FAST = """
us_perception:
  ros__parameters:
    model: ground_truth
nir_perception:
  ros__parameters:
    model: ground_truth
sim:
  ros__parameters:
    seed: 0
    world:
      randomize: false
      motion: false
controller:
  ros__parameters:
    node:
      config_file: ""
    control:
      hold_s: 0.3
      travel_speed_mm_s: 20.0
      v_retract_mm_s: 9.0
"""


class Probe:
    """A separate test node in its own context and executor thread (it talks to the graph over DDS)."""

    def __init__(self, domain_id: int):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from ir_robot.ros import qos

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = Node("test_probe", context=self.ctx)
        self.states, self.phases, self.summaries, self.joints = [], [], [], []
        self.node.create_subscription(String, "/procedure/state", lambda m: self.states.append(m.data), qos.latched())
        self.node.create_subscription(String, "/controller/phase", lambda m: self.phases.append(m.data),
                                      qos.events())
        self.node.create_subscription(String, "/sim/summary", lambda m: self.summaries.append(json.loads(m.data)),
                                      qos.latched())
        self.node.create_subscription(JointState, "/rig/joint_states", lambda m: self.joints.append(list(m.position)),
                                      qos.state())
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def call(self, srv_type, name: str, request=None, timeout: float = 20.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
        fut = client.call_async(request or srv_type.Request())
        deadline = time.monotonic() + timeout
        while not fut.done():
            assert time.monotonic() < deadline, f"{name} did not answer"
            time.sleep(0.01)
        return fut.result()

    def wait(self, cond, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


@pytest.fixture
def fast_params(tmp_path):
    p = tmp_path / "fast.yaml"
    p.write_text(FAST)
    return p


def test_procedure_through_the_graph_completes_and_is_recorded(tmp_path, domain_id, fast_params):
    from std_srvs.srv import Trigger

    from ir_robot.recording.mcap_io import iter_decoded, summary
    from ir_robot.ros.launcher import GraphRunner

    mcap = tmp_path / "session.mcap"
    runner = GraphRunner("sim", params=[fast_params], record=mcap, domain_id=domain_id).start()
    probe = Probe(domain_id)
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
        probe.close()
        runner.stop()
    s = probe.summaries[0]
    assert set(s) >= {"success", "tip_error_mm", "attempts", "duration_s", "peak_force_n", "back_wall_punctured"}
    assert probe.states[:3] == ["idle", "starting", "running"] and probe.states[-1] in ("done", "failed")
    assert probe.phases[0] == "idle" and probe.phases[-1] in ("done", "failed")
    if s["success"]:
        assert s["tip_in_lumen_at_confirm"] and s["tip_error_mm"] < 1.0 and not s["back_wall_punctured"]
    # the rig obeyed the controller: every command executed, none malformed or refused, and it moved
    assert rig["executed"] == rig["received"] - rig["not_running"] and rig["executed"] > 100
    assert rig["malformed"] == 0 and rig["refused"] == 0
    assert probe.joints and max(abs(a - b) for a, b in zip(probe.joints[0], probe.joints[-1])) > 1e-3
    # the recording: every topic of the graph, plausible counts for the time the procedure ran
    info = summary(mcap)
    expect = {"/us/image_raw": "sensor_msgs/msg/Image", "/us/mask": "sensor_msgs/msg/Image",
              "/nir/image_raw": "sensor_msgs/msg/Image", "/us/camera_info": "sensor_msgs/msg/CameraInfo",
              "/rig/joint_states": "sensor_msgs/msg/JointState", "/rig/command": "sensor_msgs/msg/JointState",
              "/needle/force": "geometry_msgs/msg/WrenchStamped", "/procedure/state": "std_msgs/msg/String",
              "/procedure/result": "std_msgs/msg/String", "/sim/summary": "std_msgs/msg/String",
              "/us/markers": "visualization_msgs/msg/MarkerArray", "/plan/target": "geometry_msgs/msg/PointStamped",
              "/plan/path": "geometry_msgs/msg/PoseArray", "/controller/phase": "std_msgs/msg/String"}
    for topic, type_name in expect.items():
        assert topic in info and info[topic].type_name == type_name, topic
    assert 10 * wall_s <= info["/us/image_raw"].count <= 31 * (wall_s + 10)
    assert 3 * wall_s <= info["/nir/image_raw"].count <= 11 * (wall_s + 10)
    assert 20 * wall_s <= info["/rig/joint_states"].count <= 51 * (wall_s + 10)
    assert info["/rig/command"].count >= 0.9 * ctl["commands"]
    assert info["/procedure/state"].count >= 3 and info["/sim/summary"].count == 1  # latched depth 1: may coalesce
    assert info["/procedure/state"].qos[0].durability == "transient_local"
    assert info["/us/image_raw"].qos[0].reliability == "best_effort"
    recorded = [json.loads(m.data) for _, _, m in iter_decoded(mcap, ["/sim/summary"])]
    assert recorded == [s]
    phases = [m.data for _, _, m in iter_decoded(mcap, ["/controller/phase"])]
    for phase in ("scan", "align", "insert"):   # select runs inside one step
        assert phase in phases, (phase, phases, s["reason"])


QUIET = """
sim:
  ros__parameters:
    us_rate_hz: 0.0          # the test publishes the ultrasound frames itself
    nir_rate_hz: 0.0
us_perception:
  ros__parameters:
    model: classical
"""


def test_bad_input_is_refused_and_no_node_crashes(domain_id, tmp_path):
    import numpy as np
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import GetParameters, SetParameters
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_srvs.srv import Trigger

    from ir_robot.ros import qos
    from ir_robot.ros.conversions import camera_info, image_to_msg
    from ir_robot.ros.launcher import GraphRunner

    quiet = tmp_path / "quiet.yaml"
    quiet.write_text(QUIET)
    runner = GraphRunner("sim", params=[quiet], domain_id=domain_id,
                         only=["sim", "us_perception", "supervisor"]).start()
    probe = Probe(domain_id)
    try:
        sim, us = runner.nodes["sim"], runner.nodes["us_perception"]
        # a parameter set to an invalid value: rejected with the reason, old value kept
        req = SetParameters.Request(parameters=[ParameterMsg(
            name="us_rate_hz", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=500.0))])
        res = probe.call(SetParameters, "/sim/set_parameters", req).results[0]
        assert not res.successful and "out of range" in res.reason
        req = SetParameters.Request(parameters=[ParameterMsg(
            name="model", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="classical"))])
        res = probe.call(SetParameters, "/us_perception/set_parameters", req).results[0]
        assert not res.successful and "read-only" in res.reason
        got = probe.call(GetParameters, "/sim/get_parameters", GetParameters.Request(names=["us_rate_hz"]))
        assert got.values[0].double_value == 0.0 and sim.params.config.us_rate_hz == 0.0
        # images with an unexpected encoding or size: logged and dropped, later frames still processed
        pub = probe.node.create_publisher(Image, "/us/image_raw", qos.sensor())
        info_pub = probe.node.create_publisher(CameraInfo, "/us/camera_info", qos.sensor())
        rng = np.random.default_rng(0)
        good = rng.integers(0, 255, (256, 256), dtype=np.uint8)
        bad_rgb = Image(height=256, width=256, encoding="rgb8", step=768, data=bytes(256 * 768))
        bad_size = image_to_msg(np.zeros((100, 80), np.uint8), probe.node.get_clock().now().to_msg(), "us_image")

        def send(msg):
            stamp = probe.node.get_clock().now().to_msg()
            info_pub.publish(camera_info((256, 256), (0.117, 0.117), stamp, "us_image"))
            msg.header.stamp = stamp
            pub.publish(msg)
            time.sleep(0.3)

        probe.wait(lambda: pub.get_subscription_count() > 0, 20, "the perception node's subscription")
        for _ in range(2):
            send(image_to_msg(good, probe.node.get_clock().now().to_msg(), "us_image"))
        probe.wait(lambda: us.counts["frames"] >= 1, 20, "a mask from a good frame")
        frames, dropped = us.counts["frames"], us.counts["dropped"]
        send(bad_rgb)
        send(bad_size)
        probe.wait(lambda: us.counts["dropped"] >= dropped + 2, 10, "both bad frames dropped")
        send(image_to_msg(good, probe.node.get_clock().now().to_msg(), "us_image"))
        probe.wait(lambda: us.counts["frames"] > frames, 10, "a mask after the bad frames")
        # malformed and out-of-state rig commands: dropped with a reason, the rig does not move
        cmd = probe.node.create_publisher(JointState, "/rig/command", qos.command())
        time.sleep(0.5)
        cmd.publish(JointState(name=["insert_mm"], velocity=[0.002]))       # not running
        probe.wait(lambda: sim.rig.counts["not_running"] >= 1, 10, "the command refused outside a procedure")
        # a service in the wrong state answers success=false with the reason
        res = probe.call(Trigger, "/procedure/abort")
        assert not res.success and "nothing to abort" in res.message
        assert probe.call(Trigger, "/procedure/start").success
        probe.wait(lambda: probe.states[-1:] == ["running"], 20, "running")
        cmd.publish(JointState(name=["elbow"], velocity=[1.0]))
        cmd.publish(JointState(name=["x_mm"], velocity=[float("nan")]))
        probe.wait(lambda: sim.rig.counts["malformed"] >= 2, 10, "malformed commands dropped")
        res = probe.call(Trigger, "/procedure/start")
        assert not res.success and "already running" in res.message
        # everyone is still alive and publishing
        n = len(probe.joints)
        probe.wait(lambda: len(probe.joints) > n + 5, 10, "joint states after the bad input")
        assert runner.ok
    finally:
        probe.close()
        runner.stop()


def test_one_process_per_node_stops_cleanly_on_ctrl_c(tmp_path, domain_id, fast_params):
    from ir_robot.recording.mcap_io import summary
    from ir_robot.ros.launcher import ProcessRunner

    mcap = tmp_path / "p.mcap"
    runner = ProcessRunner("sim", params=[fast_params], record=mcap, domain_id=domain_id,
                           only=["sim", "supervisor"]).start()
    probe = Probe(domain_id)
    try:
        probe.wait(lambda: probe.states[-1:] == ["idle"] and len(probe.joints) > 10, 60, "the graph's processes")
        assert runner.ok
        time.sleep(1.0)
    finally:
        probe.close()
        codes = runner.stop()   # SIGINT to every process, as Ctrl-C does
    assert codes == {"sim": 0, "supervisor": 0, "recorder": 0}, codes
    info = summary(mcap)        # readable: the recorder finished the file on SIGINT
    assert info["/procedure/state"].count >= 1 and info["/rig/joint_states"].count > 10
    assert signal.SIGINT  # (the signal ProcessRunner.stop sends)


def test_replay_republishes_with_recorded_qos(tmp_path, domain_id):
    import rclpy
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    from ir_robot.recording.mcap_io import McapRecorder, QosInfo
    from ir_robot.ros import qos
    from ir_robot.ros.replay import replay

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
    th = threading.Thread(target=lambda: _spin(ex), daemon=True)
    th.start()
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


def _spin(ex):
    from rclpy.executors import ExternalShutdownException

    try:
        ex.spin()
    except ExternalShutdownException:
        pass
