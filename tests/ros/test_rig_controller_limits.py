"""The controller node of the rig graph plans within the GRBL rig's limits (config/rig.yaml): z, pitch
and probe yaw fixed, so the controller runs in its fixed-joint mode; the sim graph keeps the URDF's."""

import pytest
import yaml

pytestmark = pytest.mark.ros


def _controller(ros_context, *params):
    from ir_robot.ros.controller_node import ControllerNode

    args = ["--ros-args"] + [a for p in params for a in ("-p", p)]
    return ControllerNode(context=ros_context, cli_args=args, use_global_arguments=False)


def test_rig_graph_controller_takes_the_rig_limits_and_fixed_joints(ros_context):
    from ir_robot.control.venipuncture import VenipunctureController
    from ir_robot.devices.config import load_rig_config
    from ir_robot.ros.graph import params_path

    node_params = yaml.safe_load(params_path("rig").read_text())["controller"]["ros__parameters"]["node"]
    node = _controller(
        ros_context, f"node.rig_config:={node_params['rig_config']}", f"node.config_file:={node_params['config_file']}"
    )
    try:
        rig = load_rig_config()
        assert node.lower.pitch_rad == node.upper.pitch_rad == rig.fixed.pitch_rad
        assert node.lower.z_mm == node.upper.z_mm == rig.fixed.z_mm
        assert node.vmax.probe_yaw_rad == 0.0 and node.vmax.x_mm > 0
        assert node.vp_params.config.control.probe_offset_mm == 21.0  # config/venipuncture_rig.yaml
        ctl = VenipunctureController(
            node.vp_params.config, None, None, lower=node.lower, upper=node.upper, velocity_limits=node.vmax
        )
        assert ctl.fixed_joints == ("z_mm", "pitch_rad", "probe_yaw_rad", "roll_rad")
    finally:
        node.destroy_node()
    sim = _controller(ros_context)
    try:
        assert sim.lower.pitch_rad < sim.upper.pitch_rad and sim.lower.z_mm < sim.upper.z_mm  # URDF limits
    finally:
        sim.destroy_node()


def test_controller_sends_its_region_of_interest_only_when_it_changes_or_stands(ros_context):
    """/us/roi: a new box is sent at once, a standing one refreshed, 'whole frames' (all zeros) sent once."""
    from ir_robot.ros import controller_node

    node = _controller(ros_context)
    try:
        sent = []
        node._roi_pub.publish = lambda msg: sent.append((msg.y_offset, msg.x_offset, msg.height, msg.width))
        node._publish_roi(None)  # the default: whole frames, nothing new to say
        node._publish_roi((10, 20, 138, 148))
        node._publish_roi((10, 20, 138, 148))  # unchanged, just sent
        node._publish_roi((12, 20, 140, 148))
        node._roi_sent_t -= controller_node.ROI_REFRESH_S + 0.01
        node._publish_roi((12, 20, 140, 148))  # standing: refreshed
        node._publish_roi(None)
        node._publish_roi(None)
        assert sent == [(10, 20, 128, 128), (12, 20, 128, 128), (12, 20, 128, 128), (0, 0, 0, 0)]
    finally:
        node.destroy_node()
