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
from dataclasses import dataclass

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.ros.params import declare_config
from ir_robot.ros.rig_interface import RigDriverConfig, RigInterface, rig_config_base
from ir_robot.sim.world import WorldConfig


@dataclass(frozen=True)
class RigBackendConfig:
    backend: str = param("sim", choices=("sim", "serial"), help="which Rig implementation to drive")
    rate_hz: float = param(
        50.0, range=(1.0, 1000.0), unit="Hz", help="state publishing rate (and simulation step for backend sim)"
    )
    port: str = param("", help="serial: GRBL port ('' = the one in rig_config)")
    loadcell_port: str = param("", help="serial: load-cell port ('' = the one in rig_config, 'none' = no load cell)")
    rig_config: str = param("", help="serial: rig YAML ('' = config/rig.yaml)")
    unlock: bool = param(
        False,
        help="serial: send $X after connecting (leaves GRBL's start-up Alarm without homing): "
        "for the emulator; home a real rig with `ir-robot rig home` before the launch",
    )
    connect_timeout_s: float = param(
        0.0,
        range=(0.0, 600.0),
        unit="s",
        help="serial: keep trying to open the rig config and the board this long (a board "
        "plugged in, or an emulator started, after the node); 0 = fail at once",
    )
    safety_file: str = param(
        "venipuncture.yaml",
        help="YAML whose `safety` section gives the safety limits (rig.safety.* override single values)",
    )


def make_backend(config: RigBackendConfig, world_config=None):
    """The Rig named by ``config.backend`` (imports only what that backend needs)."""
    if config.backend == "sim":
        from ir_robot.devices.sim_rig import SimRig
        from ir_robot.sim.world import NeedleWorld, WorldConfig

        return SimRig(NeedleWorld(world_config or WorldConfig()))
    if config.backend == "serial":
        return _connect_serial(config)
    raise ConfigError(f"rig_driver: unknown backend {config.backend!r}; use 'sim' or 'serial'")


def _connect_serial(config: RigBackendConfig):
    """GrblRig on the configured ports; retried until ``connect_timeout_s`` (then the last error is raised)."""
    from ir_robot.core.errors import IrRobotError
    from ir_robot.devices.config import load_rig_config
    from ir_robot.devices.serial_rig import GrblRig

    kwargs = {}
    if config.loadcell_port:
        kwargs["loadcell_port"] = None if config.loadcell_port.lower() == "none" else config.loadcell_port
    deadline = time.monotonic() + config.connect_timeout_s
    while True:
        try:
            rig = GrblRig(load_rig_config(config.rig_config or None), port=config.port or None, **kwargs)
        except IrRobotError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)
            continue
        if config.unlock:
            try:
                rig.unlock()
            except BaseException:
                rig.close()
                raise
        return rig


class RigDriverNode(Node):
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
        self.backend = make_backend(cfg, self.world_params.config)
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
        try:
            self.rig.rig.close()
        finally:
            world = getattr(self.backend, "world", None)
            if world is not None:
                world.close()


def main(args=None):
    from ir_robot.ros.run import run_node

    return run_node(RigDriverNode, args)
