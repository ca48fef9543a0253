"""The QoS profiles of the graph, in one place (see docs/ros.md).

* ``sensor()``: images and camera_info - best effort, keep last 5, volatile
  (``rclpy.qos.qos_profile_sensor_data``): a slow subscriber gets the newest frame, never a backlog.
* ``command()``: detections and small messages - reliable, keep last 10, volatile.
* ``rig_command()``: ``/rig/command`` - reliable, keep last 100 on both ends, so a rig
  that is busy for a moment (or a slow network) still receives every command.
* ``state()``: joint states and force - reliable, keep last 10.
* ``latched()``: operating state, results, plans - reliable, transient local, keep last 1,
  so a node that joins late still gets the current value (and only that: a subscriber
  that falls behind may miss intermediate values, never the latest).
* ``events()``: a latched history (keep last 20), for phase changes a recorder must not miss.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)


def sensor() -> QoSProfile:
    """Images and camera info: best effort, keep last 5, volatile (a slow subscriber gets the newest frame)."""
    return QoSProfile(
        history=qos_profile_sensor_data.history,
        depth=qos_profile_sensor_data.depth,
        reliability=qos_profile_sensor_data.reliability,
        durability=qos_profile_sensor_data.durability,
    )


def command() -> QoSProfile:
    """Detections and small messages: reliable, keep last 10, volatile."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def rig_command() -> QoSProfile:
    """``/rig/command``: reliable, keep last 100, so a rig busy for a moment still receives every command."""
    profile = command()
    profile.depth = 100
    return profile


def state() -> QoSProfile:
    """Joint states and force: reliable, keep last 10."""
    return command()


def latched() -> QoSProfile:
    """Operating state, results and plans: reliable, transient local, keep last 1 (late joiners get the value)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def events() -> QoSProfile:
    """A latched history of 20 (phase changes a recorder must not miss)."""
    profile = latched()
    profile.depth = 20
    return profile


def to_info(profile: QoSProfile):
    """A profile as the recorder's ``QosInfo`` (names as rosbag2 writes them)."""
    from ir_robot.recording.mcap_io import QosInfo

    rel = "best_effort" if profile.reliability == ReliabilityPolicy.BEST_EFFORT else "reliable"
    dur = "transient_local" if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL else "volatile"
    return QosInfo(rel, dur, int(profile.depth or 1))


def from_info(info) -> QoSProfile:
    """The profile to offer when replaying a topic recorded with ``info``."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=max(1, int(info.depth)),
        reliability=ReliabilityPolicy.BEST_EFFORT if info.reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL
        if info.durability == "transient_local"
        else DurabilityPolicy.VOLATILE,
    )
