"""``recorder``: every topic of the graph to one MCAP file (ros2 profile; ``ros2 bag`` and Foxglove read it).

Topics are discovered every ``discovery_period_s``; each is subscribed *raw* (the
CDR bytes are written as received, never deserialised) with a QoS adapted to what
its publishers offer, the way rosbag2 does: reliable only if every publisher is,
transient local only if every publisher is (so latched state is recorded even if
published before the recorder joined). The offered QoS is stored per channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ir_robot.config import param
from ir_robot.ros import qos as qos_mod
from ir_robot.ros.params import declare_config

#: ROS-internal topics never worth recording
_SKIP = re.compile(r"^/(rosout|parameter_events)$|/_action/|^/clock$")


@dataclass(frozen=True)
class RecorderConfig:
    """Parameters of the recorder node: output file, discovery period and topic filters."""

    path: str = param("session.mcap", help="output MCAP file")
    discovery_period_s: float = param(0.25, range=(0.05, 10.0), unit="s", help="how often to look for new topics")
    include_regex: str = param("", help="record only topics matching this regex ('' = all)")
    exclude_regex: str = param("", help="never record topics matching this regex ('' = none)")


class RecorderNode(Node):
    """Records every topic of the graph, raw, to one MCAP file (see the module docstring)."""

    NODE_NAME = "recorder"
    PARAMS = ((RecorderConfig, ""),)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        from ir_robot.recording.mcap_io import McapRecorder

        self.params = declare_config(self, RecorderConfig, read_only=True)
        cfg = self.params.config
        self._include = re.compile(cfg.include_regex) if cfg.include_regex else None
        self._exclude = re.compile(cfg.exclude_regex) if cfg.exclude_regex else None
        self.writer = McapRecorder(cfg.path, metadata={"recorder": self.get_fully_qualified_name()})
        self._subs: dict[str, object] = {}
        self._group = ReentrantCallbackGroup()
        self._discover()
        self.create_timer(cfg.discovery_period_s, self._discover, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f"recording to {cfg.path}")

    def _wanted(self, topic: str) -> bool:
        if _SKIP.search(topic):
            return False
        if self._include is not None and not self._include.search(topic):
            return False
        return not (self._exclude is not None and self._exclude.search(topic))

    def _discover(self) -> None:
        from ir_robot.recording.msgdefs import MessageDefinitionError
        from ir_robot.ros.run import load_class

        for topic, types in self.get_topic_names_and_types():
            if topic in self._subs or not self._wanted(topic) or len(types) != 1:
                continue
            pubs = self.get_publishers_info_by_topic(topic)
            pubs = [p for p in pubs if p.node_name != self.get_name()]
            if not pubs:
                continue
            type_name = types[0]
            pkg, _, name = type_name.partition("/msg/")
            try:
                msg_cls = load_class(f"{pkg}.msg:{name}")
                profile = self._adapted_qos(pubs)
                self.writer.add_channel(topic, type_name, [qos_mod.to_info(p.qos_profile) for p in pubs])
            except (ImportError, AttributeError, MessageDefinitionError) as exc:
                self.get_logger().warning(f"not recording {topic} ({type_name}): {exc}")
                self._subs[topic] = None
                continue
            self._subs[topic] = self.create_subscription(
                msg_cls,
                topic,
                lambda data, t=topic: self._write(t, data),
                profile,
                raw=True,
                callback_group=self._group,
            )

    @staticmethod
    def _adapted_qos(pubs) -> QoSProfile:
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
        latched = all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
        profile = qos_mod.command()
        profile.depth = 100
        profile.reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        profile.durability = DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE
        return profile

    def _write(self, topic: str, data: bytes) -> None:
        self.writer.write_raw(topic, data, self.get_clock().now().nanoseconds)

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic so far."""
        return dict(self.writer.counts)

    def close(self) -> None:
        """Finishes and closes the MCAP file."""
        self.writer.close()


def main(args=None):
    """Entry point of ``ir_robot_recorder``: spins the node until shutdown; returns the exit code."""
    from ir_robot.ros.run import run_node

    return run_node(RecorderNode, args)
