"""``rig_driver``: a rig backend behind the safety layer, named by the parameter ``backend``.

* ``sim``: a :class:`~ir_robot.devices.sim_rig.SimRig` on its own headless needle world
  (no images), stepped in wall-clock time at ``rate_hz`` - for exercising controllers
  without the imaging simulator (the ``sim`` node is the full simulated hardware).
* ``serial``: the benchtop rig, :class:`~ir_robot.devices.serial_rig.GrblRig` on ``port``
  with ``rig_config`` (default ``config/rig.yaml``).

Topics and safety behaviour are :class:`~ir_robot.ros.rig_interface.RigInterface`'s:
``/rig/command`` in, ``/rig/joint_states``, ``/needle/force``, ``/rig/status`` out.
"""

from __future__ import annotations

import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node

from ir_robot.devices.factory import RigBackendConfig, make_rig
from ir_robot.ros.params import declare_config
from ir_robot.ros.rig_interface import RigDriverConfig, RigInterface, rig_config_base
from ir_robot.sim.world import WorldConfig


class RigDriverNode(Node):
    """A rig backend (``sim`` or ``serial``) behind the safety layer on the rig topics; its state goes out at
    ``rate_hz``.
    """

    NODE_NAME = "rig_driver"
    PARAMS = ((RigBackendConfig, ""), (WorldConfig, "world."), (RigDriverConfig, "rig."))

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.params = declare_config(self, RigBackendConfig, read_only=True)
        self.world_params = declare_config(self, WorldConfig, prefix="world", read_only=True)
        self.rig_params = declare_config(
            self,
            RigDriverConfig,
            prefix="rig",
            base=rig_config_base(self.params.config.safety_file),
            on_change=lambda c, _n: self.rig.set_config(c),
        )
        cfg = self.params.config
        self.backend = make_rig(cfg, self.world_params.config)
        self.rig = RigInterface(self, self.backend, self.rig_params.config, callback_group=ReentrantCallbackGroup())
        self._dt = 1.0 / cfg.rate_hz
        self.create_timer(self._dt, self._tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f"rig backend '{cfg.backend}' ready")

    def _tick(self) -> None:
        if self.params.config.backend == "sim":
            with self.rig.lock:
                self.rig.rig.advance(self._dt)
        now = self.get_clock().now()
        state = self.rig.read_state()
        self.rig.publish_state(self._measured_at(now, state).to_msg(), state)

    def _measured_at(self, now, state):
        """The ROS time the state was measured: GrblRig's joints are those of its last status report
        (``stamp_s``, monotonic clock), up to a poll period plus the serial line old. Stamping them with
        the publish time would place every ultrasound frame where the stage was a status ago (the
        controller pairs frames with joint states by stamp). The sim backend's state is of now.
        """
        if self.params.config.backend != "serial" or not state.stamp_s > 0:
            return now
        age = min(max(time.monotonic() - state.stamp_s, 0.0), 1.0)
        return now - Duration(nanoseconds=int(age * 1e9))

    def close(self) -> None:
        """Closes the rig (through the safety layer), then the simulated backend's world if it has one."""
        try:
            self.rig.rig.close()
        finally:
            world = getattr(self.backend, "world", None)
            if world is not None:
                world.close()


def main(args=None):
    """Entry point of ``ir_robot_rig_driver``: spins the node until shutdown; returns the exit code."""
    from ir_robot.ros.run import run_node

    return run_node(RigDriverNode, args)
