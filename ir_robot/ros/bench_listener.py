"""The benchmark's probe node for ``ir-robot bench ros`` (:mod:`ir_robot.benchmarks.ros`): a listener in
its own context that records ultrasound stamps, command latency and the nodes' stats.
"""

from __future__ import annotations

import json
import time


class BenchListener:
    """Own context + executor: ultrasound stamps, command latency, the nodes' stats, summaries."""

    def __init__(self, domain_id: int | None):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String

        from ir_robot.ros import qos
        from ir_robot.ros.conversions import stamp_to_ns
        from ir_robot.ros.run import spin_in_background

        self._stamp_ns = stamp_to_ns
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)  # None: the environment's ROS_DOMAIN_ID
        self.node = Node("ir_robot_bench", context=self.ctx)
        self.image_stamps: set[int] = set()
        self.frames: list[float] = []
        self.latency_ms: list[float] = []
        self.recorded_stamps: list[int] = []
        self.commands = 0
        self.stats: dict[str, dict] = {"rig": {}, "controller": {}}
        self.recording = False
        deep = qos.rig_command()
        self.node.create_subscription(Image, "/us/image_raw", self._on_image, qos.sensor())
        self.node.create_subscription(JointState, "/rig/command", self._on_command, deep)
        self.node.create_subscription(String, "/rig/stats", lambda m: self._on_stats("rig", m), qos.command())
        self.node.create_subscription(
            String, "/controller/stats", lambda m: self._on_stats("controller", m), qos.command()
        )
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = spin_in_background(self.executor, "ir_robot-bench")

    def _on_image(self, msg) -> None:
        self.image_stamps.add(self._stamp_ns(msg.header.stamp))
        if self.recording:
            self.frames.append(time.monotonic())

    def _on_command(self, msg) -> None:
        now = self.node.get_clock().now().nanoseconds
        self.commands += 1
        key = self._stamp_ns(msg.header.stamp)
        if self.recording and key in self.image_stamps:
            self.latency_ms.append((now - key) * 1e-6)
            self.recorded_stamps.append(key)

    def _on_stats(self, who: str, msg) -> None:
        try:
            self.stats[who] = json.loads(msg.data)
        except ValueError:
            pass

    def close(self) -> None:
        """Stops the executor and its thread, destroys the node and shuts its context down."""
        import rclpy

        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
