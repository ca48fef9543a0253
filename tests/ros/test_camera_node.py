"""The camera node (``us_camera`` / ``nir_camera`` of the rig graph): a video file written with
cv2.VideoWriter comes out as mono8 images + orthographic camera info, each frame once and in
order, cropped and with the configured pixel spacing; a file can loop; a missing device is
reported and retried without taking the node down; the rig graph feeds the perception node."""

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

N_FRAMES = 8
H, W = 120, 160


def _levels():
    return [30 + 25 * i for i in range(N_FRAMES)]


@pytest.fixture
def video(tmp_path):
    """An MJPG AVI: frame i is flat grey level 30 + 25 i with a white square in the crop area's corner."""
    import cv2

    path = tmp_path / "us.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    for level in _levels():
        img = np.full((H, W, 3), level, np.uint8)
        img[20:36, 40:56] = 255
        writer.write(img)
    writer.release()
    return path


def _spin(ros_context, nodes, until, timeout: float):
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=ros_context)
    for n in nodes:
        ex.add_node(n)
    deadline = time.monotonic() + timeout
    try:
        while not until() and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.02)
    finally:
        ex.shutdown()


def _listener(ros_context, modality: str):
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image

    from ir_robot.ros import qos

    node = Node("camera_listener", context=ros_context)
    got = {"image": [], "info": []}
    node.create_subscription(Image, f"/{modality}/image_raw", got["image"].append, qos.sensor())
    node.create_subscription(CameraInfo, f"/{modality}/camera_info", got["info"].append, qos.sensor())
    return node, got


def _camera(ros_context, cls, **params):
    args = ["--ros-args"]
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    return cls(context=ros_context, cli_args=args, use_global_arguments=False)


def test_video_file_is_published_cropped_with_its_spacing_each_frame_once(ros_context, video):
    from ir_robot.ros.camera_node import UsCameraNode
    from ir_robot.ros.conversions import msg_to_image, spacing_from_info, stamp_to_s

    listener, got = _listener(ros_context, "us")
    cam = _camera(
        ros_context,
        UsCameraNode,
        source=str(video),
        modality="us",
        rate_hz=20.0,
        spacing_mm="[0.2, 0.125]",
        crop_px="[10, 30, 100, 120]",
    )
    try:
        _spin(ros_context, [cam, listener], lambda: cam.ended and cam.frames_published == cam.frames_read, 20.0)
        assert cam.ended and cam.frames_read == N_FRAMES
        assert cam.frames_published == N_FRAMES  # each frame once, none repeated
        _spin(ros_context, [cam, listener], lambda: False, 0.3)
        images = [msg_to_image(m) for m in got["image"]]
        assert len(images) >= N_FRAMES - 2  # the first one or two may precede discovery
        assert all(m.encoding == "mono8" and m.header.frame_id == "us_image" for m in got["image"])
        assert all(img.shape == (100, 120) for img in images)  # cropped
        # order and content: the flat grey level of each frame, and the white square at the crop's (10, 10)
        means = [float(np.median(img)) for img in images]
        expected = _levels()[N_FRAMES - len(images) :]
        assert means == pytest.approx(expected, abs=4)
        assert all(img[12:24, 12:24].min() > 230 for img in images)
        stamps = [stamp_to_s(m.header.stamp) for m in got["image"]]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        info = got["info"][-1]
        assert (info.height, info.width, info.header.frame_id) == (100, 120, "us_image")
        assert spacing_from_info(info) == pytest.approx((0.2, 0.125))
        assert info.k[2] == pytest.approx(120 / 2 - 0.5) and info.k[5] == pytest.approx(-0.5)  # probe face on top
    finally:
        cam.close()
        cam.destroy_node()
        listener.destroy_node()


def test_nir_file_loops_and_a_missing_device_is_reported_not_fatal(ros_context, video):
    from ir_robot.ros.camera_node import NirCameraNode, UsCameraNode

    listener, got = _listener(ros_context, "nir")
    nir = _camera(ros_context, NirCameraNode, source=str(video), modality="nir", rate_hz=40.0, loop=True)
    missing = _camera(ros_context, UsCameraNode, source="/dev/video97", modality="us", reopen_s=0.1)
    try:
        _spin(ros_context, [nir, missing, listener], lambda: nir.frames_read > 2 * N_FRAMES + 2, 20.0)
        assert nir.frames_read > 2 * N_FRAMES and not nir.ended  # rewound at the end of the file
        assert got["image"] and got["image"][-1].header.frame_id == "nir_image"
        assert got["info"][-1].k[2] == pytest.approx((W - 1) / 2)  # NIR origin: the image centre
        assert "/dev/video97 does not exist" in missing.last_error and missing.frames_read == 0
        assert missing._thread.is_alive()  # still retrying
    finally:
        for n in (nir, missing):
            n.close()
            n.destroy_node()
        listener.destroy_node()


def test_rig_graph_feeds_the_camera_into_perception(tmp_path, video, domain_id):
    from ir_robot.ros.launcher import GraphRunner

    params = tmp_path / "cams.yaml"
    params.write_text(
        f"us_camera:\n  ros__parameters:\n    source: {video}\n    loop: true\n    rate_hz: 20.0\n"
        "us_perception:\n  ros__parameters:\n    model: classical\n    expected_size_px: [120, 160]\n"
    )
    runner = GraphRunner("rig", params=[params], domain_id=domain_id, only=["us_camera", "us_perception"]).start()
    try:
        deadline = time.monotonic() + 30.0
        perception = runner.nodes["us_perception"]
        while perception.counts["frames"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.nodes["us_camera"].modality == "us"
        assert perception.counts["frames"] >= 3 and perception.counts["dropped"] == 0
    finally:
        runner.stop()
