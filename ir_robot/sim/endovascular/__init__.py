"""The catheter world: anatomy, instrument mechanics, the catheter drive, fluoroscopy and the tip camera
joined behind the same world API as the needle world (``reset``, ``step``, ``state``, imaging).

See docs/catheter.md, "The world". No rclpy here; PyBullet is imported when a world is made.
"""

from ir_robot.sim.endovascular.lumen import AnatomyLumen
from ir_robot.sim.endovascular.world import DRIVE_JOINTS, CatheterWorld, CatheterWorldConfig, CatheterWorldState

__all__ = ["DRIVE_JOINTS", "AnatomyLumen", "CatheterWorld", "CatheterWorldConfig", "CatheterWorldState"]
