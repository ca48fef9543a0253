"""Gymnasium environments on the simulator; importing this package registers their ids.

* ``ir_robot/CatheterNav-v0``: :class:`ir_robot.envs.catheter_nav.CatheterNavEnv` (spec in its docstring),
  300 steps (30 s) per episode.

``gym.make("ir_robot/CatheterNav-v0", target="LCCA")`` passes keyword arguments to the constructor.
"""

from gymnasium.envs.registration import register, registry

CATHETER_NAV_ID = "ir_robot/CatheterNav-v0"

if CATHETER_NAV_ID not in registry:
    register(
        id=CATHETER_NAV_ID,
        entry_point="ir_robot.envs.catheter_nav:CatheterNavEnv",
        max_episode_steps=300,
    )

__all__ = ["CATHETER_NAV_ID"]
