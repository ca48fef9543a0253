"""Build the rig a config names: the simulated rig on a needle world, or the GRBL benchtop rig.

One place for the choice, so the ROS ``rig_driver`` node, the CLI and tests make rigs the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.devices.base import Rig

if TYPE_CHECKING:
    from ir_robot.devices.serial_rig import GrblRig
    from ir_robot.sim.world import WorldConfig


@dataclass(frozen=True)
class RigBackendConfig:
    """Which rig backend to build and how to reach it (the ``rig_driver`` node's parameters)."""

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


def make_rig(config: RigBackendConfig, world_config: WorldConfig | None = None) -> Rig:
    """The Rig named by ``config.backend`` (imports only what that backend needs)."""
    if config.backend == "sim":
        from ir_robot.devices.sim_rig import SimRig
        from ir_robot.sim.world import NeedleWorld, WorldConfig

        return SimRig(NeedleWorld(world_config or WorldConfig()))
    if config.backend == "serial":
        return connect_serial(config)
    raise ConfigError(f"unknown rig backend {config.backend!r}; use 'sim' or 'serial'")


def connect_serial(config: RigBackendConfig) -> GrblRig:
    """GrblRig on the configured ports; retried until ``connect_timeout_s`` (then the last error is raised)."""
    from ir_robot.core.errors import IrRobotError
    from ir_robot.devices.config import load_rig_config
    from ir_robot.devices.serial_rig import GrblRig

    kwargs: dict[str, Any] = {}
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
