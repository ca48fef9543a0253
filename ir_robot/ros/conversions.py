"""ROS messages <-> ``ir_robot.core`` types. SI units on the wire (REP-103), mm inside.

* Joints: ``sensor_msgs/JointState`` with ``name = JOINT_NAMES`` (the URDF joint names);
  prismatic joints in metres and m/s, revolute joints in rad and rad/s - the URDF's
  units, so ``robot_state_publisher`` and RViz read our joint states as they are.
  The ``_mm`` in a joint's *name* is its name, not the wire unit.
* Rig commands: ``JointState`` on ``/rig/command`` with ``velocity`` filled (m/s, rad/s),
  ``position``/``effort`` empty; ``header.stamp`` is the stamp of the newest image the
  command was computed from (for latency accounting), the receiver holds the rate for
  its ``command_hold_s``.
* Force: ``geometry_msgs/WrenchStamped`` in frame ``needle_tip`` (+x = direction of
  travel): ``force.x`` is the axial force the needle pushes into the tissue (N,
  positive while the tissue resists insertion), torque zero.
* Images: ``sensor_msgs/Image`` ``mono8``; ultrasound and NIR are orthographic
  pictures, so ``CameraInfo`` carries pixels per metre (``k[0] = 1/sx``, ``k[4] = 1/sy``)
  and the principal point, with an empty distortion model; :func:`spacing_from_info`
  recovers the pixel spacing in mm.
"""

from __future__ import annotations

import json
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PointStamped, Pose, PoseStamped, Quaternion, WrenchStamped
from sensor_msgs.msg import CameraInfo, Image, JointState

from ir_robot.core.errors import PerceptionError, RigError
from ir_robot.core.types import JOINT_NAMES, JointVector, RigCommand, RigState

MM = 1e-3
#: per joint: wire value = internal value * _SI (mm -> m for prismatic, 1 for revolute)
_SI = np.array([MM if n.endswith("_mm") else 1.0 for n in JOINT_NAMES])

# frame ids (REP-105 style names; see docs/ros.md)
WORLD_FRAME = "world"
BASE_FRAME = "base_link"
PHANTOM_FRAME = "phantom"
US_FRAME = "us_image"
NIR_FRAME = "nir_image"
NEEDLE_TIP_FRAME = "needle_tip"

ENCODINGS_MONO8 = ("mono8", "8UC1")


# ---------------------------------------------------------------------------- time
def to_stamp(t_s: float) -> Time:
    """A ``builtin_interfaces/Time`` for ``t_s`` seconds (nanoseconds rounded)."""
    sec = math.floor(t_s)
    return Time(sec=int(sec), nanosec=int(round((t_s - sec) * 1e9)) % 1_000_000_000)


def stamp_to_s(stamp) -> float:
    """A message stamp in seconds (float: for arithmetic, not as a key)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def stamp_to_ns(stamp) -> int:
    """A message stamp in integer nanoseconds: exact, so it keys images to their results."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Exact inverse of :func:`stamp_to_ns`."""
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def perception_model_name(info_json: str) -> str | None:
    """The perception in use from a ``/us/perception_info`` message, named as ``ir-robot demo`` prints it
    (``model`` for the learned one); None if the message is not that JSON.
    """
    try:
        model = json.loads(info_json).get("model", "")
    except (ValueError, AttributeError):
        return None
    return {"learned": "model"}.get(model, model)


def next_due(due_s: float, now_s: float, rate_hz: float) -> float:
    """When the next periodic event is due after one taken at ``now_s`` (it was due at ``due_s``): on the
    ``rate_hz`` grid, or one period from now after falling behind (no burst to catch up).
    """
    period = 1.0 / rate_hz
    return due_s + period if due_s + period > now_s else now_s + period


# ---------------------------------------------------------------------------- joints
def joints_to_si(values: JointVector) -> list[float]:
    """Joint values in SI units for the wire (mm -> m for prismatic joints), in JOINT_NAMES order."""
    return (values.as_array() * _SI).tolist()


def _indexed(msg_names, values, what: str) -> np.ndarray:
    names = list(msg_names)
    vals = list(values)
    if len(vals) != len(names):
        raise RigError(f"{what}: {len(names)} joint names but {len(vals)} values")
    unknown = sorted(set(names) - set(JOINT_NAMES))
    if unknown:
        raise RigError(f"{what}: unknown joint(s) {unknown}; the rig's joints are {list(JOINT_NAMES)}")
    out = np.zeros(len(JOINT_NAMES))
    for n, v in zip(names, vals, strict=True):
        out[JOINT_NAMES.index(n)] = v
    if not np.all(np.isfinite(out)):
        bad = [n for n, v in zip(JOINT_NAMES, out, strict=True) if not math.isfinite(v)]
        raise RigError(f"{what}: non-finite value on {bad}")
    return out / _SI


def rig_state_to_msgs(state: RigState, stamp) -> tuple[JointState, WrenchStamped]:
    """The rig state as (``JointState`` in SI units, ``WrenchStamped`` axial force at the needle tip)."""
    js = JointState()
    js.header.stamp = stamp
    js.header.frame_id = BASE_FRAME
    js.name = list(JOINT_NAMES)
    js.position = joints_to_si(state.joints)
    js.velocity = joints_to_si(state.velocity)
    w = WrenchStamped()
    w.header.stamp = stamp
    w.header.frame_id = NEEDLE_TIP_FRAME
    w.wrench.force.x = float(state.force_n)
    return js, w


def msgs_to_rig_state(js: JointState, force_n: float = 0.0, status: str = "idle") -> RigState:
    """A RigState from a joint-state message (+ the latest force). Raises RigError on a malformed message."""
    q = _indexed(js.name, js.position, "joint state positions")
    v = _indexed(js.name, js.velocity, "joint state velocities") if len(js.velocity) else np.zeros(len(JOINT_NAMES))
    moving = bool(np.any(np.abs(v) > 1e-3))
    return RigState(
        stamp_s=stamp_to_s(js.header.stamp),
        joints=JointVector.from_array(q),
        velocity=JointVector.from_array(v),
        force_n=float(force_n),
        moving=moving,
        status=status,
    )


def command_to_msg(cmd: RigCommand, stamp) -> JointState:
    """A ``/rig/command`` message for ``cmd``: the joint rates in ``velocity`` (m/s, rad/s)."""
    msg = JointState()
    msg.header.stamp = stamp
    msg.header.frame_id = BASE_FRAME
    msg.name = list(JOINT_NAMES)
    msg.velocity = joints_to_si(cmd.velocity)
    return msg


def msg_to_command(msg: JointState, hold_s: float) -> RigCommand:
    """The RigCommand a ``/rig/command`` message asks for (missing joints: 0). RigError if malformed."""
    if len(msg.velocity) == 0 and len(msg.name) > 0:
        raise RigError("rig command has joint names but no velocity values; fill JointState.velocity (m/s, rad/s)")
    v = _indexed(msg.name, msg.velocity, "rig command")
    return RigCommand(JointVector.from_array(v), float(hold_s))


# ---------------------------------------------------------------------------- images
def image_to_msg(image: np.ndarray, stamp, frame_id: str) -> Image:
    """A (H, W) uint8 array as a mono8 ``Image``; PerceptionError for any other dtype or shape."""
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim != 2:
        raise PerceptionError(f"only mono8 images are published, got dtype {img.dtype} shape {img.shape}")
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = "mono8"
    msg.is_bigendian = 0
    msg.step = int(img.shape[1])
    msg.data = img.tobytes()
    return msg


def msg_to_image(msg: Image, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mono8 image message as a (H, W) uint8 array (a copy). PerceptionError names what is wrong."""
    if msg.encoding not in ENCODINGS_MONO8:
        raise PerceptionError(f"image encoding {msg.encoding!r} is not supported; publish mono8 (8-bit grey)")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise PerceptionError(f"image has size {h}x{w}")
    if shape is not None and (h, w) != tuple(shape):
        raise PerceptionError(f"image is {h}x{w}, expected {shape[0]}x{shape[1]} (parameter 'expected_size_px')")
    if step < w or len(msg.data) < step * h:
        raise PerceptionError(
            f"image data has {len(msg.data)} bytes for {h} rows of step {step} (needs {h * step}, step >= width {w})"
        )
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=step * h).reshape(h, step)
    return np.array(buf[:, :w])


def camera_info(
    shape: tuple[int, int],
    spacing_mm: tuple[float, float],
    stamp,
    frame_id: str,
    origin_px: tuple[float, float] | None = None,
) -> CameraInfo:
    """Orthographic camera info: k holds pixels per metre; (cx, cy) the pixel of the frame origin."""
    h, w = int(shape[0]), int(shape[1])
    sy, sx = float(spacing_mm[0]) * MM, float(spacing_mm[1]) * MM
    cy, cx = origin_px if origin_px is not None else ((h - 1) / 2.0, (w - 1) / 2.0)
    info = CameraInfo()
    info.header.stamp = stamp
    info.header.frame_id = frame_id
    info.height, info.width = h, w
    info.distortion_model = ""
    info.k = [1.0 / sx, 0.0, float(cx), 0.0, 1.0 / sy, float(cy), 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [1.0 / sx, 0.0, float(cx), 0.0, 0.0, 1.0 / sy, float(cy), 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def image_origin_px(modality: str, shape: tuple[int, int]) -> tuple[float, float] | None:
    """Pixel (row, col) of an image frame's origin: the probe face centre (above the first row) for
    ultrasound, the image centre (None: the default) for NIR and cameras.
    """
    if modality in ("us", "ultrasound"):
        return (-0.5, shape[1] / 2 - 0.5)
    return None


def frame_to_msgs(frame, stamp, modality: str | None = None) -> tuple[Image, CameraInfo]:
    """An :class:`~ir_robot.core.types.ImageFrame` as (``Image`` mono8, orthographic ``CameraInfo``) in its
    image frame (``us_image`` / ``nir_image``); ``modality`` ("us" | "nir") defaults to the frame's own.
    """
    m = modality or frame.modality
    frame_id = US_FRAME if m in ("us", "ultrasound") else NIR_FRAME
    return (
        image_to_msg(frame.image, stamp, frame_id),
        camera_info(frame.image.shape, frame.spacing_mm, stamp, frame_id, image_origin_px(m, frame.image.shape)),
    )


class FramePublisher:
    """Publishes rendered frames as the rig's camera nodes publish captured ones (``/<m>/image_raw`` +
    ``/<m>/camera_info``), plus the renderer's label mask on ``/<m>/labels`` first, so a ground-truth
    perception node has both when the image arrives. Used by the ``sim`` node and the ``emulated_rig`` node.
    """

    def __init__(self, node, qos_profile):
        self._images = {
            name: node.create_publisher(Image, f"/{name}", qos_profile)
            for name in ("us/image_raw", "us/labels", "nir/image_raw", "nir/labels")
        }
        self._infos = {m: node.create_publisher(CameraInfo, f"/{m}/camera_info", qos_profile) for m in ("us", "nir")}

    def publish(self, frame, stamp, labels: bool = True) -> None:
        """Publishes ``frame`` stamped ``stamp``: labels first (if any and ``labels``), then image and camera info."""
        m = frame.modality
        image_msg, info_msg = frame_to_msgs(frame, stamp, m)
        if labels and frame.labels is not None:
            self._images[f"{m}/labels"].publish(image_to_msg(frame.labels, stamp, image_msg.header.frame_id))
        self._images[f"{m}/image_raw"].publish(image_msg)
        self._infos[m].publish(info_msg)


def spacing_from_info(info: CameraInfo) -> tuple[float, float]:
    """(row, col) pixel spacing in mm from an orthographic CameraInfo."""
    fx, fy = float(info.k[0]), float(info.k[4])
    if not (fx > 0 and fy > 0 and math.isfinite(fx) and math.isfinite(fy)):
        raise PerceptionError(f"camera_info k = {list(info.k)} has no pixel scale (k[0], k[4] must be > 0)")
    return (1.0 / fy / MM, 1.0 / fx / MM)


# ---------------------------------------------------------------------------- geometry
def point_msg(xyz_mm, stamp, frame_id: str) -> PointStamped:
    """A ``PointStamped`` at ``xyz_mm`` (sent in metres)."""
    msg = PointStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.point = Point(x=float(xyz_mm[0]) * MM, y=float(xyz_mm[1]) * MM, z=float(xyz_mm[2]) * MM)
    return msg


def quaternion_x_to(direction) -> Quaternion:
    """The rotation taking +x onto ``direction`` (shortest arc)."""
    d = np.asarray(direction, dtype=float)
    n = float(np.linalg.norm(d))
    if not n > 0:
        return Quaternion(w=1.0)
    d = d / n
    x = np.array([1.0, 0.0, 0.0])
    c = float(np.dot(x, d))
    if c < -1 + 1e-12:
        return Quaternion(x=0.0, y=0.0, z=1.0, w=0.0)
    axis = np.cross(x, d)
    q = np.array([axis[0], axis[1], axis[2], 1.0 + c])
    q /= np.linalg.norm(q)
    return Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def pose_msg(position_mm, direction, stamp, frame_id: str) -> PoseStamped:
    """A pose at ``position_mm`` whose +x axis points along ``direction``."""
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.pose = Pose(
        position=Point(x=float(position_mm[0]) * MM, y=float(position_mm[1]) * MM, z=float(position_mm[2]) * MM),
        orientation=quaternion_x_to(direction),
    )
    return msg


def pose_direction(pose) -> np.ndarray:
    """The +x axis of a Pose's orientation (unit vector)."""
    q = pose.orientation
    x, y, z, w = q.x, q.y, q.z, q.w
    return np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)])
