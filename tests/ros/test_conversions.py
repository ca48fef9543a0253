"""Messages <-> core types: SI units on the wire, malformed input refused with a reason."""

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image, JointState

from ir_robot.core.errors import PerceptionError, RigError
from ir_robot.core.types import JOINT_NAMES, JointVector, RigCommand, RigState
from ir_robot.ros import conversions as cv


def test_joint_state_is_si_and_round_trips():
    st = RigState(
        stamp_s=1.5,
        joints=JointVector(10.0, -2.0, 8.0, 0.5, 3.0, 1.2),
        velocity=JointVector(insert_mm=2.0),
        force_n=0.7,
    )
    js, wrench = cv.rig_state_to_msgs(st, cv.to_stamp(1.5))
    assert list(js.name) == list(JOINT_NAMES)
    assert js.position[0] == pytest.approx(0.010) and js.position[3] == pytest.approx(0.5)  # m and rad
    assert js.velocity[4] == pytest.approx(0.002)
    assert wrench.wrench.force.x == pytest.approx(0.7) and wrench.header.frame_id == "needle_tip"
    back = cv.msgs_to_rig_state(js, force_n=0.7)
    np.testing.assert_allclose(back.joints.as_array(), st.joints.as_array())
    assert back.stamp_s == pytest.approx(1.5)


def test_command_message_any_order_and_missing_joints_zero():
    msg = JointState(name=["insert_mm", "pitch_rad"], velocity=[0.002, -0.1])
    cmd = cv.msg_to_command(msg, hold_s=0.1)
    assert cmd.velocity.insert_mm == pytest.approx(2.0) and cmd.velocity.pitch_rad == pytest.approx(-0.1)
    assert cmd.velocity.x_mm == 0.0 and cmd.duration_s == 0.1
    out = cv.command_to_msg(RigCommand(JointVector(insert_mm=1.5), 0.1), cv.to_stamp(2.0))
    assert cv.msg_to_command(out, 0.1).velocity.insert_mm == pytest.approx(1.5)


@pytest.mark.parametrize(
    "msg, words",
    [
        (JointState(name=["elbow"], velocity=[1.0]), "unknown joint"),
        (JointState(name=["x_mm", "y_mm"], velocity=[1.0]), "2 joint names but 1 values"),
        (JointState(name=["x_mm"], velocity=[math.nan]), "non-finite"),
        (JointState(name=["x_mm"], position=[0.01]), "no velocity"),
    ],
)
def test_malformed_commands_are_refused_with_a_reason(msg, words):
    with pytest.raises(RigError, match=words):
        cv.msg_to_command(msg, 0.1)


def test_image_round_trip_and_padded_rows():
    img = np.random.default_rng(0).integers(0, 255, (12, 7), dtype=np.uint8)
    msg = cv.image_to_msg(img, Time(sec=3), "us_image")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (12, 7, 7, "mono8")
    np.testing.assert_array_equal(cv.msg_to_image(msg), img)
    padded = np.zeros((12, 8), np.uint8)
    padded[:, :7] = img
    msg2 = Image(height=12, width=7, step=8, encoding="mono8", data=padded.tobytes())
    np.testing.assert_array_equal(cv.msg_to_image(msg2), img)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(encoding="rgb8", height=2, width=2, step=6, data=bytes(12)), "encoding 'rgb8'"),
        (dict(encoding="mono8", height=4, width=4, step=4, data=bytes(10)), "10 bytes"),
        (dict(encoding="mono8", height=0, width=4, step=4, data=b""), "size 0x4"),
    ],
)
def test_bad_images_raise_perception_error(kwargs, words):
    with pytest.raises(PerceptionError, match=words):
        cv.msg_to_image(Image(**kwargs))


def test_unexpected_size_is_refused():
    msg = cv.image_to_msg(np.zeros((10, 10), np.uint8), Time(), "x")
    with pytest.raises(PerceptionError, match="expected 256x256"):
        cv.msg_to_image(msg, shape=(256, 256))


def test_camera_info_spacing_round_trip_and_us_origin():
    info = cv.camera_info((256, 200), (0.12, 0.15), Time(), "us_image", origin_px=(-0.5, 99.5))
    assert cv.spacing_from_info(info) == pytest.approx((0.12, 0.15))
    # pixel (r, c) -> frame (x, y) = ((c - cx)/fx, (r - cy)/fy): row 0 is half a pixel under the skin
    fx, cx, fy, cy = info.k[0], info.k[2], info.k[4], info.k[5]
    assert (0 - cy) / fy == pytest.approx(0.5 * 0.12e-3)
    assert (100 - cx) / fx == pytest.approx(0.5 * 0.15e-3)
    info.k = [0.0] * 9
    with pytest.raises(PerceptionError, match="no pixel scale"):
        cv.spacing_from_info(info)


@pytest.mark.parametrize("d", [(1, 0, 0), (0.3, 0.0, -0.5), (0, 1, 0), (-1, 0, 0), (0.2, -0.7, 0.1)])
def test_pose_orientation_points_x_along_direction(d):
    pose = cv.pose_msg((1.0, 2.0, -3.0), d, Time(), "world")
    np.testing.assert_allclose(cv.pose_direction(pose.pose), np.array(d) / np.linalg.norm(d), atol=1e-9)
    assert pose.pose.position.z == pytest.approx(-0.003)


def test_stamp_round_trip():
    for t in (0.0, 1.25, 1795487841.042766):
        assert cv.stamp_to_s(cv.to_stamp(t)) == pytest.approx(t, abs=1e-6)
