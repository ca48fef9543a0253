"""Perception nodes on their own (callbacks called directly): throttling, bad frames dropped with a reason,
and the mask on the wire rebuilds the same result downstream."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time

from ir_robot.core.types import ImageFrame
from ir_robot.ros.conversions import camera_info, image_to_msg, to_stamp
from ir_robot.ros.perception_nodes import UsPerceptionNode, result_from_mask


def _us_frame():
    """A simple synthetic transverse frame: a dark round vein in speckle, and its labels."""
    rng = np.random.default_rng(0)
    img = rng.integers(90, 140, (256, 256)).astype(np.uint8)
    rr, cc = np.mgrid[:256, :256]
    vein = (rr - 120) ** 2 + (cc - 100) ** 2 < 15**2
    img[vein] = 10
    labels = np.where(vein, 1, 0).astype(np.uint8)
    return img, labels


@pytest.fixture
def us_node(ros_context):
    node = UsPerceptionNode(
        context=ros_context,
        use_global_arguments=False,
        cli_args=["--ros-args", "-p", "model:=classical", "-p", "max_rate_hz:=10.0"],
    )
    node._on_info(camera_info((256, 256), (0.117, 0.117), Time(), "us_image", (-0.5, 127.5)))
    yield node
    node.destroy_node()


@pytest.mark.ros
def test_frames_are_throttled_to_max_rate(us_node):
    img, _ = _us_frame()
    for k in range(30):  # one second of 30 Hz frames
        us_node._on_part(image_to_msg(img, to_stamp(100.0 + k / 30.0), "us_image"), "image")
    assert us_node.counts["frames"] == 10 and us_node.counts["dropped"] == 0


@pytest.mark.ros
def test_bad_frames_are_dropped_with_a_reason_and_the_node_carries_on(us_node):
    img, _ = _us_frame()
    small = image_to_msg(img[:100, :80], to_stamp(1.0), "us_image")
    rgb = image_to_msg(img, to_stamp(2.0), "us_image")
    rgb.encoding = "rgb8"
    us_node._on_part(small, "image")
    us_node._on_part(rgb, "image")
    assert us_node.counts["dropped"] == 2 and us_node.counts["frames"] == 0
    us_node._on_part(image_to_msg(img, to_stamp(3.0), "us_image"), "image")
    assert us_node.counts["frames"] == 1


@pytest.mark.ros
def test_frames_before_the_first_camera_info_wait_for_it(ros_context):
    """camera_info and image_raw are discovered separately, so the first frames may come before any
    pixel spacing: the newest waits for it instead of being dropped; only a frame that waited
    through 8 newer ones without camera_info counts as dropped."""
    node = UsPerceptionNode(
        context=ros_context, use_global_arguments=False, cli_args=["--ros-args", "-p", "model:=classical"]
    )
    try:
        img, _ = _us_frame()
        for k in range(3):
            node._on_part(image_to_msg(img, to_stamp(1.0 + 0.1 * k), "us_image"), "image")
        assert node.counts == {"frames": 0, "dropped": 0, "skipped": 0}
        node._on_info(camera_info((256, 256), (0.117, 0.117), Time(), "us_image", (-0.5, 127.5)))
        assert node.counts["frames"] == 1 and node.counts["dropped"] == 0 and not node._pending
        node._on_part(image_to_msg(img, to_stamp(2.0), "us_image"), "image")
        assert node.counts["frames"] == 2
    finally:
        node.destroy_node()
    node = UsPerceptionNode(
        context=ros_context, use_global_arguments=False, cli_args=["--ros-args", "-p", "model:=classical"]
    )
    try:
        for k in range(10):  # a camera that never sends camera_info
            node._on_part(image_to_msg(img, to_stamp(1.0 + 0.1 * k), "us_image"), "image")
        assert node.counts["frames"] == 0 and node.counts["dropped"] == 2 and len(node._pending) == 8
    finally:
        node.destroy_node()


def test_the_mask_rebuilds_the_ground_truth_result():
    from ir_robot.perception.inference import GroundTruthPerception

    img, labels = _us_frame()
    frame = ImageFrame("us", img, (0.117, 0.117), labels=labels)
    direct = GroundTruthPerception().predict(frame)
    rebuilt = result_from_mask("us", direct.mask, (0.117, 0.117))
    assert len(rebuilt.vessels) == len(direct.vessels) == 1
    assert rebuilt.vessels[0].centre_mm == pytest.approx(direct.vessels[0].centre_mm)
    assert rebuilt.vessels[0].diameter_mm == pytest.approx(direct.vessels[0].diameter_mm)


@pytest.mark.ros
def test_the_node_publishes_its_result_for_the_controller(us_node):
    """The controller consumes /us/result: it must be the node's own analysis of that frame, with its stamp."""
    from ir_robot.core.results import result_from_json
    from ir_robot.ros.conversions import stamp_to_ns

    sent = []
    us_node._result_pub.publish = lambda msg: sent.append(msg.data)
    img, _ = _us_frame()
    stamp = to_stamp(5.0)
    us_node._on_part(image_to_msg(img, stamp, "us_image"), "image")
    assert len(sent) == 1
    result, key = result_from_json(sent[0])
    assert key == stamp_to_ns(stamp)
    direct = us_node.predictor.predict(ImageFrame("us", img, us_node._spacing))
    assert result.vessels == direct.vessels and len(result.vessels) >= 1


def test_graph_perception_keeps_the_vessels_the_controller_keeps():
    """The controller uses the perception node's result: both graphs give the node the controller's area floor."""
    import yaml

    from ir_robot.ros.graph import params_path
    from ir_robot.ros.params import venipuncture_config

    for g in ("sim", "rig"):
        params = yaml.safe_load(params_path(g).read_text())
        file = params["controller"]["ros__parameters"]["node"]["config_file"]
        floor = venipuncture_config(file).control.us_min_vessel_area_mm2
        assert params["us_perception"]["ros__parameters"]["min_vessel_area_mm2"] == floor, g


@pytest.mark.ros
def test_the_us_node_segments_the_controllers_region_of_interest(ros_context):
    """/us/roi (from the controller's tracker) makes the learned model zoom in; all zeros or a stale region:
    whole frames again. The result says which region was segmented."""
    from sensor_msgs.msg import RegionOfInterest

    from ir_robot.core.results import result_from_json

    node = UsPerceptionNode(
        context=ros_context,
        use_global_arguments=False,
        cli_args=["--ros-args", "-p", "model:=learned", "-p", "roi_timeout_s:=30.0"],
    )
    try:
        node._on_info(camera_info((256, 256), (0.117, 0.117), Time(), "us_image", (-0.5, 127.5)))
        sent = []
        node._result_pub.publish = lambda msg: sent.append(result_from_json(msg.data)[0])
        img, _ = _us_frame()

        def frame(t):
            node._on_part(image_to_msg(img, to_stamp(t), "us_image"), "image")
            return sent[-1]

        assert frame(1.0).roi_px is None
        node._on_roi(RegionOfInterest(x_offset=40, y_offset=60, width=160, height=160))
        res = frame(2.0)
        assert res.roi_px == (60, 40, 220, 200)
        assert all(60 <= v.centre_px[0] < 220 and 40 <= v.centre_px[1] < 200 for v in res.vessels)
        node._on_roi(RegionOfInterest())  # all zeros: the whole frame
        assert frame(3.0).roi_px is None
        node._on_roi(RegionOfInterest(x_offset=40, y_offset=60, width=160, height=160))
        node._roi_t -= 31.0  # older than roi_timeout_s
        assert frame(4.0).roi_px is None
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_frames_are_skipped_in_the_configured_controller_phases(ros_context):
    """NIR after the scan: the controller no longer uses it, so the node leaves the cores to ultrasound."""
    from std_msgs.msg import String

    node = UsPerceptionNode(
        context=ros_context,
        use_global_arguments=False,
        cli_args=["--ros-args", "-p", "model:=classical", "-p", "skip_phases:=['align', 'insert']"],
    )
    try:
        node._on_info(camera_info((256, 256), (0.117, 0.117), Time(), "us_image", (-0.5, 127.5)))
        img, _ = _us_frame()
        t = [100.0]

        def frame():
            t[0] += 0.1
            node._on_part(image_to_msg(img, to_stamp(t[0]), "us_image"), "image")

        frame()  # no phase heard yet: processed
        node._on_phase(String(data="scan"))
        frame()
        assert node.counts["frames"] == 2
        node._on_phase(String(data="insert"))
        frame()
        frame()
        assert node.counts["frames"] == 2 and node.counts["skipped"] == 2 and node.counts["dropped"] == 0
        node._on_phase(String(data="done"))
        frame()
        assert node.counts["frames"] == 3
    finally:
        node.destroy_node()
