"""The summary line of a procedure from the simulated hardware's ground truth, for the nodes that have it.

The ``sim`` node and the ``emulated_rig`` node both know what the controller cannot (where the
needle tip really is, which membranes tore). :class:`RefereeMixin` gives them the same plumbing: it
follows ``/procedure/state``, the controller's ``/controller/phase`` and the perception in use
(``/us/perception_info``), and when the controller reports ``/procedure/result`` it publishes the
node's :meth:`referee` of it on ``/sim/summary`` (latched; what ``ir-robot launch --procedures`` prints).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from std_msgs.msg import String

from ir_robot.ros import qos
from ir_robot.ros.conversions import perception_model_name

if TYPE_CHECKING:  # the mixin is used on rclpy Nodes: type-check it as one; at run time it derives from object
    from rclpy.node import Node as _NodeBase
else:
    _NodeBase = object


class RefereeMixin(_NodeBase):
    """Mixed into an rclpy ``Node``: call :meth:`_init_referee` in ``__init__``; implement :meth:`referee`
    (result dict -> summary dict) and optionally :meth:`_on_procedure_state_change`.
    """

    def _init_referee(self, callback_group, lock=None) -> None:
        self.perception = ""
        self.procedure_state = "idle"
        self.phase = ""
        self.summaries: list[dict] = []
        self._last_result = ""
        self._referee_lock = lock
        self._summary_pub = self.create_publisher(String, "/sim/summary", qos.latched())
        self.create_subscription(
            String, "/procedure/state", self._on_procedure_state, qos.latched(), callback_group=callback_group
        )
        self.create_subscription(
            String, "/procedure/result", self._on_result, qos.latched(), callback_group=callback_group
        )
        self.create_subscription(
            String, "/controller/phase", self._on_phase, qos.events(), callback_group=callback_group
        )
        self.create_subscription(
            String, "/us/perception_info", self._on_perception, qos.latched(), callback_group=callback_group
        )

    def referee(self, result: dict) -> dict:  # pragma: no cover - each node scores with its own truth
        """The summary line for the controller's ``result`` dict, with what only this node knows (ground truth)."""
        raise NotImplementedError

    def _on_procedure_state_change(self, state: str, previous: str) -> None:
        """Hook: the procedure state changed (``running``: a procedure began)."""

    def _on_procedure_state(self, msg: String) -> None:
        # the hook first: a node that scores while the state is running has its new scorer before that
        self._on_procedure_state_change(msg.data, self.procedure_state)
        self.procedure_state = msg.data

    def _on_phase(self, msg: String) -> None:
        self.phase = msg.data

    def _on_perception(self, msg: String) -> None:
        name = perception_model_name(msg.data)
        if name is not None:
            self.perception = name

    def _on_result(self, msg: String) -> None:
        """The controller's report + what only this node knows = one summary line on /sim/summary."""
        if msg.data == self._last_result:
            return
        self._last_result = msg.data
        try:
            result = json.loads(msg.data)
        except ValueError:
            return
        if self._referee_lock is not None:
            with self._referee_lock:
                summary = self.referee(result)
        else:
            summary = self.referee(result)
        self.summaries.append(summary)
        self._summary_pub.publish(String(data=json.dumps(summary)))
        self.get_logger().info(f"summary: {json.dumps(summary)}")
