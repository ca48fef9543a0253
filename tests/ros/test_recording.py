"""MCAP recording without ROS: schemas from installed .msg files, raw CDR and object writes, reading back."""

import pytest

from ir_robot.recording import mcap_io
from ir_robot.recording.msgdefs import MessageDefinitionError, dependencies, message_definition


def test_schema_expands_every_nested_type_once():
    text = message_definition("visualization_msgs/msg/MarkerArray")
    names = [line[5:] for line in text.splitlines() if line.startswith("MSG: ")]
    for dep in (
        "visualization_msgs/Marker",
        "std_msgs/Header",
        "builtin_interfaces/Time",
        "geometry_msgs/Pose",
        "geometry_msgs/Point",
        "std_msgs/ColorRGBA",
        "sensor_msgs/CompressedImage",
    ):
        assert dep in names
    assert len(names) == len(set(names))
    assert message_definition("sensor_msgs/Image") == message_definition("sensor_msgs/msg/Image")


def test_dependencies_skip_constants_and_resolve_same_package():
    deps = dependencies(
        "geometry_msgs", "int32 FOO=1\nstd_msgs/Header header  # c\nPoint[] points\nfloat64[9] k\nstring<=5 s\n"
    )
    assert deps == [("std_msgs", "Header"), ("geometry_msgs", "Point")]


def test_unknown_type_names_the_package_and_the_fix():
    with pytest.raises(MessageDefinitionError, match="no_such_msgs"):
        message_definition("no_such_msgs/msg/Thing")
    with pytest.raises(MessageDefinitionError, match="pkg/msg/Type"):
        message_definition("Image")


def test_write_raw_cdr_and_objects_then_read_back(tmp_path):
    rclpy = pytest.importorskip("rclpy")  # noqa: F841  (only to make raw CDR the way nodes get it)
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    img = Image(height=2, width=3, encoding="mono8", step=3, data=bytes(range(6)))
    img.header.frame_id = "us_image"
    cdr = serialize_message(img)
    path = tmp_path / "s.mcap"
    with mcap_io.McapRecorder(path, metadata={"graph": "sim"}) as rec:
        rec.add_channel("/us/image_raw", "sensor_msgs/msg/Image", [mcap_io.QosInfo("best_effort", "volatile", 5)])
        for i in range(4):
            rec.write_raw("/us/image_raw", cdr, log_time_ns=1_000 + i)
        rec.write("/procedure/state", "std_msgs/msg/String", {"data": "running"}, log_time_ns=2_000)
        with pytest.raises(mcap_io.RecordingError, match="add_channel"):
            rec.write_raw("/nope", b"")
    info = mcap_io.summary(path)
    assert info["/us/image_raw"].count == 4 and info["/us/image_raw"].type_name == "sensor_msgs/msg/Image"
    assert info["/us/image_raw"].qos[0].reliability == "best_effort"
    assert info["/procedure/state"].count == 1
    decoded = list(mcap_io.iter_decoded(path))
    assert [t for t, _, _ in decoded] == ["/us/image_raw"] * 4 + ["/procedure/state"]
    assert bytes(decoded[0][2].data) == bytes(range(6)) and decoded[0][2].header.frame_id == "us_image"
    assert decoded[-1][2].data == "running"
    raw = list(mcap_io.iter_raw(path, ["/us/image_raw"]))
    assert raw[0].data == cdr and raw[0].log_time_ns == 1_000
    assert mcap_io.metadata(path) == {"graph": "sim"}


def test_qos_yaml_reads_both_rosbag2_styles():
    text = mcap_io.qos_to_yaml([mcap_io.QosInfo("reliable", "transient_local", 1)])
    assert "transient_local" in text and "keep_last" in text
    assert mcap_io.qos_from_yaml(text) == (mcap_io.QosInfo("reliable", "transient_local", 1),)
    old = "- history: 3\n  depth: 0\n  reliability: 2\n  durability: 1\n"  # rosbag2 < 9 wrote integers
    assert mcap_io.qos_from_yaml(old)[0].reliability == "best_effort"
    assert mcap_io.qos_from_yaml(old)[0].durability == "transient_local"
    assert mcap_io.qos_from_yaml("") == ()


def test_missing_or_truncated_files_give_clear_errors(tmp_path):
    with pytest.raises(mcap_io.RecordingError, match="not found"):
        mcap_io.summary(tmp_path / "none.mcap")
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 20)
    with pytest.raises(mcap_io.RecordingError, match="bad.mcap"):
        mcap_io.summary(bad)
    with pytest.raises(mcap_io.RecordingError, match="writable"):
        mcap_io.McapRecorder(tmp_path / "bad.mcap" / "x.mcap")
