"""TF broadcasting where tf2 is installed (ROS 2 installs); a no-op on pip installs without tf2_ros."""

from __future__ import annotations

import math

from ir_robot.ros.conversions import MM


class TfPublisher:
    """Sends world-frame transforms if ``tf2_ros`` imports; ``available`` says whether it does."""

    def __init__(self, node):
        try:
            from geometry_msgs.msg import TransformStamped  # noqa: F401
            from tf2_ros import StaticTransformBroadcaster, TransformBroadcaster
        except ImportError:
            self.available = False
            node.get_logger().info("tf2_ros is not installed: TF frames are not broadcast (topics carry frame ids)")
            return
        self.available = True
        self._dynamic = TransformBroadcaster(node)
        self._static = StaticTransformBroadcaster(node)

    @staticmethod
    def _transform(stamp, parent: str, child: str, xyz_mm, yaw_rad: float = 0.0, quat=None):
        from geometry_msgs.msg import TransformStamped

        t = TransformStamped()
        t.header.stamp = stamp
        t.header.frame_id = parent
        t.child_frame_id = child
        t.transform.translation.x = float(xyz_mm[0]) * MM
        t.transform.translation.y = float(xyz_mm[1]) * MM
        t.transform.translation.z = float(xyz_mm[2]) * MM
        if quat is None:
            quat = (0.0, 0.0, math.sin(yaw_rad / 2), math.cos(yaw_rad / 2))
        t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = quat
        return t

    def send(self, stamp, transforms: list[tuple], static: bool = False) -> None:
        """``transforms``: (parent, child, xyz_mm, yaw_rad | None, quat | None) tuples."""
        if not self.available:
            return
        msgs = [self._transform(stamp, p, c, xyz, yaw or 0.0, quat) for p, c, xyz, yaw, quat in transforms]
        (self._static if static else self._dynamic).sendTransform(msgs)


def us_image_quaternion(yaw_rad: float) -> tuple[float, float, float, float]:
    """Orientation of the ``us_image`` frame (x lateral along the probe, y down into tissue) in world."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    m = np.array([[c, 0.0, -s], [s, 0.0, c], [0.0, -1.0, 0.0]])  # columns: x, y, z axes in world
    q = Rotation.from_matrix(m).as_quat()
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))
