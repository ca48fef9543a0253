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

from dataclasses import dataclass

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.ros.params import declare_config
from ir_robot.ros.rig_interface import RigDriverConfig, RigInterface, rig_config_base
from ir_robot.sim.world import WorldConfig


@dataclass(frozen=True)
class RigBackendConfig:
    backend: str = param("sim", choices=("sim", "serial"), help="which Rig implementation to drive")
    rate_hz: float = param(50.0, range=(1.0, 1000.0), unit="Hz",
                           help="state publishing rate (and simulation step for backend sim)")
    port: str = param("", help="serial: GRBL port ('' = the one in rig_config)")
    rig_config: str = param("", help="serial: rig YAML ('' = config/rig.yaml)")
    safety_file: str = param("venipuncture.yaml", help="YAML whose `safety` section gives the safety limits "
                                                       "(rig.safety.* override single values)")


def make_backend(config: RigBackendConfig, world_config=None):
    """The Rig named by ``config.backend`` (imports only what that backend needs)."""
    if config.backend == "sim":
        from ir_robot.devices.sim_rig import SimRig
        from ir_robot.sim.world import NeedleWorld, WorldConfig

        return SimRig(NeedleWorld(world_config or WorldConfig()))
    if config.backend == "serial":
        from ir_robot.devices.config import load_rig_config
        from ir_robot.devices.serial_rig import GrblRig

        return GrblRig(load_rig_config(config.rig_config or None), port=config.port or None)
    raise ConfigError(f"rig_driver: unknown backend {config.backend!r}; use 'sim' or 'serial'")


class RigDriverNode(Node):
    NODE_NAME = "rig_driver"
    PARAMS = ((RigBackendConfig, ""), (WorldConfig, "world."), (RigDriverConfig, "rig."))

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.params = declare_config(self, RigBackendConfig, read_only=True)
        self.world_params = declare_config(self, WorldConfig, prefix="world", read_only=True)
        self.rig_params = declare_config(self, RigDriverConfig, prefix="rig", base=rig_config_base(
            self.params.config.safety_file), on_change=lambda c, _n: self.rig.set_config(c))
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
        self.rig.publish_state(self.get_clock().now().to_msg())

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
