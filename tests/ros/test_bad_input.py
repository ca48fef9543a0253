"""Bad input never crashes a node: invalid parameters, images of the wrong encoding or size, malformed rig
commands and services called in the wrong state are refused with a reason."""

import time

import pytest

pytestmark = pytest.mark.ros


QUIET = """
sim:
  ros__parameters:
    us_rate_hz: 0.0          # the test publishes the ultrasound frames itself
    nir_rate_hz: 0.0
us_perception:
  ros__parameters:
    model: classical
"""


def test_bad_input_is_refused_and_no_node_crashes(domain_id, tmp_path, probe):
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
    runner = GraphRunner(
        "sim", params=[quiet], domain_id=domain_id, only=["sim", "us_perception", "supervisor"]
    ).start()
    try:
        sim, us = runner.nodes["sim"], runner.nodes["us_perception"]
        # a parameter set to an invalid value: rejected with the reason, old value kept
        req = SetParameters.Request(
            parameters=[
                ParameterMsg(
                    name="us_rate_hz", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=500.0)
                )
            ]
        )
        res = probe.call(SetParameters, "/sim/set_parameters", req).results[0]
        assert not res.successful and "out of range" in res.reason
        req = SetParameters.Request(
            parameters=[
                ParameterMsg(
                    name="model", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="classical")
                )
            ]
        )
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
        cmd.publish(JointState(name=["insert_mm"], velocity=[0.002]))  # not running
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
        # e-stop: the rig latches stopped, start is refused until an explicit reset, which clears the latch
        assert probe.call(Trigger, "/rig/estop").success
        probe.wait(lambda: sim.rig.rig.tripped, 10, "the rig's safety latch")
        res = probe.call(Trigger, "/procedure/start")
        assert not res.success and "e-stop is latched" in res.message
        assert probe.call(Trigger, "/procedure/reset").success
        probe.wait(lambda: not sim.rig.rig.tripped and probe.states[-1:] == ["idle"], 10, "the latch cleared")
        # everyone is still alive and publishing
        n = len(probe.joints)
        probe.wait(lambda: len(probe.joints) > n + 5, 10, "joint states after the bad input")
        assert runner.ok
    finally:
        runner.stop()
