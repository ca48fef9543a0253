"""``us_perception`` and ``nir_perception``: segmentation as ROS nodes.

Each node subscribes to ``/<m>/image_raw`` and ``/<m>/camera_info`` (sensor-data QoS,
depth 1: a busy node always takes the newest frame) and runs one predictor from
``ir_robot.perception`` (parameter ``model``: ``learned`` = the shipped weights or
``weights``, ``classical`` = the OpenCV baseline, ``ground_truth`` = the simulator's
``/<m>/labels`` through the same post-processing, ``auto`` = learned when the weights
exist, else ground truth, as ``ir-robot demo`` does). Outputs, all stamped with the
image's stamp and in the image's frame (``us_image`` / ``nir_image``):

=========================  =================================  =================================================
``/us/mask``               sensor_msgs/Image mono8            LABEL_* codes (0 bg, 1 vein, 2 artery, 3 needle)
``/us/vessel``             geometry_msgs/PointStamped         best vein centre (x lateral, y depth), if any
``/us/needle_tip``         geometry_msgs/PoseStamped          needle tip, +x along the shaft (towards the tip)
``/us/markers``            visualization_msgs/MarkerArray     every vessel (sphere, diameter) and the needle
``/nir/mask``              sensor_msgs/Image mono8            0 background, 1 vein
``/nir/vein``              geometry_msgs/PointStamped         widest vein centre (x, y from the view centre)
``/nir/markers``           visualization_msgs/MarkerArray     vein centrelines
``/<m>/result``            std_msgs/String JSON               every detection of the frame at full precision,
                                                              with ``stamp_ns`` (the image's stamp); no mask
``/<m>/perception_info``   std_msgs/String JSON, latched      the model in use: {"model", "requested", "weights"}
=========================  =================================  =================================================

``/<m>/result`` (:func:`ir_robot.core.results.result_to_json`) is what the
controller consumes: it uses this node's analysis (soft-vote artery/vein from the
class probabilities, needle confidence) instead of repeating it on the mask.
:func:`result_from_mask` still rebuilds a result from a recorded mask. An image
with an unexpected encoding or size is logged and dropped; the node never crashes
on input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Point, PointStamped, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from ir_robot.config import param
from ir_robot.core.errors import IrRobotError, PerceptionError
from ir_robot.core.results import result_to_json
from ir_robot.core.types import ImageFrame
from ir_robot.ros import qos
from ir_robot.ros.conversions import (
    MM,
    image_to_msg,
    msg_to_image,
    next_due,
    point_msg,
    pose_msg,
    spacing_from_info,
    stamp_to_ns,
    stamp_to_s,
)
from ir_robot.ros.params import declare_config
from ir_robot.ros.trace import LatencyTrace

_COLOURS = {"vein": (0.1, 0.4, 1.0), "artery": (1.0, 0.15, 0.15), "needle": (1.0, 0.9, 0.0)}


@dataclass(frozen=True)
class PerceptionNodeConfig:
    """Parameters of a perception node: which predictor, input checks, markers, rate cap, ROI and skipped phases."""

    model: str = param(
        "auto",
        choices=("auto", "learned", "classical", "ground_truth"),
        help="learned: shipped/`weights` model; classical: OpenCV baseline; ground_truth: the "
        "simulator's /<m>/labels; auto: learned if the weights exist, else ground_truth "
        "(as `ir-robot demo`)",
    )
    weights: str = param("", help="weights file for model=learned ('' = models/<m>_seg/model.pt)")
    threads: int = param(1, range=(1, 16), help="torch threads")
    expected_size_px: tuple[int, int] = param(
        (256, 256), range=(0, 8192), help="(rows, cols) accepted; other sizes are dropped ((0, 0) = any)"
    )
    publish_markers: bool = param(True, help="publish visualization_msgs/MarkerArray for RViz/Foxglove")
    max_rate_hz: float = param(
        0.0,
        range=(0.0, 1000.0),
        unit="Hz",
        help="process at most this many frames per second (0: every frame); saves CPU when "
        "the controller wants fewer frames than the camera gives",
    )
    min_vessel_area_mm2: float = param(
        0.8,
        range=(0.0, 100.0),
        unit="mm^2",
        help="ultrasound: smaller vessel components are ignored (the graphs set "
        "the controller's control.us_min_vessel_area_mm2)",
    )
    use_roi: bool = param(
        True,
        help="ultrasound, learned model: segment only the controller's /us/roi (the "
        "square around its tracked target, a zoom for small veins) while it is fresh",
    )
    roi_timeout_s: float = param(
        1.0, range=(0.0, 60.0), unit="s", help="a /us/roi older than this is ignored (whole frames again)"
    )
    skip_phases: tuple[str, ...] = param(
        (),
        help="controller phases (/controller/phase) in which frames are not "
        "processed, e.g. NIR after the scan: the controller uses NIR only "
        "in its scan, and the cores go to the ultrasound path; () = none",
    )


def resolve_model(modality: str, config: PerceptionNodeConfig) -> str:
    """``auto`` -> ``learned`` when the weights file exists, else ``ground_truth``."""
    if config.model != "auto":
        return config.model
    from pathlib import Path

    from ir_robot.perception.inference import default_weights_path

    weights = Path(config.weights) if config.weights else default_weights_path(modality)
    return "learned" if weights.is_file() else "ground_truth"


def make_predictor(modality: str, config: PerceptionNodeConfig):
    """The perception object named by the node's parameters (raises PerceptionError if unusable)."""
    from ir_robot.perception import inference

    kind = "model" if config.model == "learned" else config.model
    return inference.make_predictor(
        modality,
        kind,
        weights=config.weights or None,
        threads=config.threads,
        us_min_vessel_area_mm2=config.min_vessel_area_mm2,
    )


def result_from_mask(modality: str, mask: np.ndarray, spacing_mm, image: np.ndarray | None = None, postprocess=None):
    """Rebuild a UsResult / NirResult from a published mask with the shared post-processing."""
    from ir_robot.perception.postprocess import DEFAULT_POSTPROCESS, analyse_nir, analyse_us

    post = postprocess or DEFAULT_POSTPROCESS
    if modality == "us":
        return analyse_us(mask, tuple(spacing_mm), None, post, source="ros_mask")
    return analyse_nir(mask, tuple(spacing_mm), None, image, post, source="ros_mask")


class _PerceptionNode(Node):
    MODALITY = ""
    NODE_NAME = ""
    PARAMS = ((PerceptionNodeConfig, ""),)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        m = self.MODALITY
        self.params = declare_config(self, PerceptionNodeConfig, read_only=("model", "weights", "threads"))
        cfg = self.params.config
        self.model = resolve_model(m, cfg)
        if cfg.model == "auto" and self.model == "ground_truth":
            self.get_logger().warning(
                f"model 'auto': no trained {m} weights, using ground-truth perception "
                f"(train them with `ir-robot train-perception {m}`)"
            )
        self.predictor = make_predictor(m, dataclasses.replace(cfg, model=self.model))
        self._spacing: tuple[float, float] | None = None
        self._pending: OrderedDict[int, dict] = OrderedDict()
        self._next_frame_s = 0.0
        self.process_ms: deque = deque(maxlen=100_000)
        self.counts = {"frames": 0, "dropped": 0, "skipped": 0}
        self.trace = LatencyTrace(self.NODE_NAME, directory=None if m == "us" else "")  # the us path only
        newest = qos.sensor()
        newest.depth = 1
        group = MutuallyExclusiveCallbackGroup()
        self.create_subscription(CameraInfo, f"/{m}/camera_info", self._on_info, qos.sensor(), callback_group=group)
        if self.model == "ground_truth":
            self.create_subscription(
                Image, f"/{m}/labels", lambda msg: self._on_part(msg, "labels"), newest, callback_group=group
            )
        self.create_subscription(
            Image, f"/{m}/image_raw", lambda msg: self._on_part(msg, "image"), newest, callback_group=group
        )
        self._roi: tuple[float, float, float] | None = None  # (centre row, centre col, side) px
        self._roi_t = -math.inf
        if m == "us":
            self.create_subscription(RegionOfInterest, "/us/roi", self._on_roi, qos.command(), callback_group=group)
        self._phase = ""  # the controller's phase, from /controller/phase ('' until heard)
        self.create_subscription(String, "/controller/phase", self._on_phase, qos.events(), callback_group=group)
        self._mask_pub = self.create_publisher(Image, f"/{m}/mask", qos.sensor())
        self._result_pub = self.create_publisher(String, f"/{m}/result", qos.sensor())
        self._marker_pub = self.create_publisher(MarkerArray, f"/{m}/markers", qos.sensor())
        self._make_publishers()
        info = self.create_publisher(String, f"/{m}/perception_info", qos.latched())
        info.publish(
            String(
                data=json.dumps(
                    {
                        "model": self.model,
                        "requested": cfg.model,
                        "weights": cfg.weights if self.model == "learned" else "",
                    }
                )
            )
        )
        self.get_logger().info(f"{m} perception: model '{self.model}'")

    # --------------------------------------------------------------- inputs
    def _on_info(self, msg: CameraInfo) -> None:
        first = self._spacing is None
        try:
            self._spacing = spacing_from_info(msg)
        except PerceptionError as exc:
            self.get_logger().error(f"/{self.MODALITY}/camera_info ignored: {exc}", throttle_duration_sec=2.0)
            return
        if first:
            # frames that came before the first camera_info (the two topics are discovered separately):
            # the newest is processed now; older ones are superseded, as keep-last-1 skips them
            ready = [k for k, e in self._pending.items() if self._complete(e)]
            for k in ready[:-1]:
                del self._pending[k]
            if ready:
                self._process(self._pending.pop(ready[-1]))

    def _on_roi(self, msg: RegionOfInterest) -> None:
        if msg.width == 0 or msg.height == 0:
            self._roi = None  # all zeros: the whole frame
        else:
            side = float(max(msg.width, msg.height))
            self._roi = (msg.y_offset + 0.5 * msg.height, msg.x_offset + 0.5 * msg.width, side)
        self._roi_t = time.monotonic()

    def _on_phase(self, msg: String) -> None:
        self._phase = msg.data

    def _current_roi(self):
        cfg = self.params.config
        if (
            self._roi is None
            or not cfg.use_roi
            or self.model != "learned"
            or time.monotonic() - self._roi_t > cfg.roi_timeout_s
        ):
            return None
        return self._roi

    def _on_part(self, msg: Image, part: str) -> None:
        key = stamp_to_ns(msg.header.stamp)
        if part == "image" and self.trace.enabled:
            self.trace(key, "perc_in")
        entry = self._pending.setdefault(key, {})
        entry[part] = msg
        while len(self._pending) > 8:
            _, old = self._pending.popitem(last=False)
            if self._complete(old):  # a whole frame that waited for camera_info in vain
                self._drop_no_info()
        if self._complete(entry) and self._spacing is not None:  # else it waits for the first camera_info
            del self._pending[key]
            self._process(entry)

    def _complete(self, entry: dict) -> bool:
        needed = ("image", "labels") if self.model == "ground_truth" else ("image",)
        return all(p in entry for p in needed)

    def _drop_no_info(self) -> None:
        self.counts["dropped"] += 1
        self.get_logger().warning(
            f"/{self.MODALITY}/image_raw dropped: no camera_info yet (pixel spacing unknown)", throttle_duration_sec=2.0
        )

    def _process(self, parts: dict) -> None:
        t0 = time.perf_counter()
        msg = parts["image"]
        cfg = self.params.config
        log = self.get_logger()
        if self._phase and self._phase in cfg.skip_phases:
            self.counts["skipped"] += 1
            return
        if cfg.max_rate_hz > 0:
            t = stamp_to_s(msg.header.stamp)
            if t < self._next_frame_s:
                return
            self._next_frame_s = next_due(self._next_frame_s, t, cfg.max_rate_hz)
        if self._spacing is None:
            self._drop_no_info()
            return
        shape = tuple(cfg.expected_size_px) if any(cfg.expected_size_px) else None
        try:
            image = msg_to_image(msg, shape=shape)
            labels = msg_to_image(parts["labels"], shape=image.shape) if "labels" in parts else None
            frame = ImageFrame(self.MODALITY, image, self._spacing, stamp_s=stamp_to_s(msg.header.stamp), labels=labels)
            roi = self._current_roi()
            result = self.predictor.predict(frame) if roi is None else self.predictor.predict(frame, roi=roi)
        except (PerceptionError, IrRobotError, ValueError) as exc:
            self.counts["dropped"] += 1
            log.error(f"/{self.MODALITY}/image_raw frame dropped: {exc}", throttle_duration_sec=1.0)
            return
        stamp, frame_id = msg.header.stamp, msg.header.frame_id
        self._result_pub.publish(String(data=result_to_json(result, stamp_to_ns(stamp))))
        if self.trace.enabled:
            self.trace(stamp_to_ns(stamp), "perc_pub")
        self._mask_pub.publish(image_to_msg(result.mask, stamp, frame_id))
        self._publish_results(result, stamp, frame_id)
        self.counts["frames"] += 1
        self.process_ms.append((time.perf_counter() - t0) * 1e3)

    # --------------------------------------------------------------- outputs
    def _make_publishers(self) -> None:
        raise NotImplementedError

    def _publish_results(self, result, stamp, frame_id: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _marker(stamp, frame_id: str, ns: str, mid: int, mtype: int, colour, scale) -> Marker:
        m = Marker()
        m.header.stamp = stamp
        m.header.frame_id = frame_id
        m.ns, m.id, m.type, m.action = ns, mid, mtype, Marker.ADD
        m.pose.orientation.w = 1.0
        m.scale.x, m.scale.y, m.scale.z = (float(s) for s in scale)
        m.color.r, m.color.g, m.color.b = colour
        m.color.a = 0.8
        m.lifetime.nanosec = 200_000_000
        return m


class UsPerceptionNode(_PerceptionNode):
    """Ultrasound segmentation node: vessels and needle tip from ``/us/image_raw`` (see the module docstring)."""

    MODALITY = "us"
    NODE_NAME = "us_perception"

    def _make_publishers(self) -> None:
        self._vessel_pub = self.create_publisher(PointStamped, "/us/vessel", qos.command())
        self._needle_pub = self.create_publisher(PoseStamped, "/us/needle_tip", qos.command())

    def _publish_results(self, result, stamp, frame_id: str) -> None:
        veins = sorted(result.veins(), key=lambda v: -v.diameter_mm)
        if veins:
            v = veins[0]
            self._vessel_pub.publish(point_msg((v.centre_mm[0], v.centre_mm[1], 0.0), stamp, frame_id))
        nd = result.needle
        if nd is not None:
            if nd.angle_deg is not None:
                a = math.radians(nd.angle_deg)
                direction = (math.cos(a), math.sin(a), 0.0)
            else:
                direction = (0.0, 0.0, 1.0)  # out-of-plane dot: the shaft crosses the image plane
            self._needle_pub.publish(pose_msg((nd.tip_mm[0], nd.tip_mm[1], 0.0), direction, stamp, frame_id))
        if not self.params.config.publish_markers:
            return
        arr = MarkerArray()
        clear = Marker()
        clear.action = Marker.DELETEALL
        arr.markers.append(clear)
        for i, v in enumerate(result.vessels):
            m = self._marker(
                stamp,
                frame_id,
                "us_vessels",
                i,
                Marker.SPHERE,
                _COLOURS.get(v.kind, (1, 1, 1)),
                (v.diameter_mm * MM,) * 3,
            )
            m.pose.position = Point(x=v.centre_mm[0] * MM, y=v.centre_mm[1] * MM, z=0.0)
            arr.markers.append(m)
        if nd is not None:
            m = self._marker(stamp, frame_id, "us_needle", 0, Marker.SPHERE, _COLOURS["needle"], (0.8 * MM,) * 3)
            m.pose.position = Point(x=nd.tip_mm[0] * MM, y=nd.tip_mm[1] * MM, z=0.0)
            arr.markers.append(m)
        self._marker_pub.publish(arr)


class NirPerceptionNode(_PerceptionNode):
    """NIR segmentation node: vein centrelines from ``/nir/image_raw`` (see the module docstring)."""

    MODALITY = "nir"
    NODE_NAME = "nir_perception"

    def _make_publishers(self) -> None:
        self._vein_pub = self.create_publisher(PointStamped, "/nir/vein", qos.command())

    def _publish_results(self, result, stamp, frame_id: str) -> None:
        if result.veins:
            v = max(result.veins, key=lambda v: v.width_mm)
            self._vein_pub.publish(point_msg((v.centre_mm[0], v.centre_mm[1], 0.0), stamp, frame_id))
        if not self.params.config.publish_markers:
            return
        from ir_robot.perception.postprocess import nir_px_to_mm

        arr = MarkerArray()
        clear = Marker()
        clear.action = Marker.DELETEALL
        arr.markers.append(clear)
        for i, v in enumerate(result.veins):
            m = self._marker(
                stamp,
                frame_id,
                "nir_veins",
                i,
                Marker.LINE_STRIP,
                _COLOURS["vein"],
                (max(v.width_mm, 0.5) * MM, 0.0, 0.0),
            )
            xy = nir_px_to_mm(v.centreline_px, result.mask.shape, result.spacing_mm) * MM
            m.points = [Point(x=float(p[0]), y=float(p[1]), z=0.0) for p in np.asarray(xy).reshape(-1, 2)]
            arr.markers.append(m)
        self._marker_pub.publish(arr)


def main_us(args=None):
    """Entry point of ``ir_robot_us_perception``: spins the node until shutdown; returns the exit code."""
    from ir_robot.ros.run import run_node

    return run_node(UsPerceptionNode, args)


def main_nir(args=None):
    """Entry point of ``ir_robot_nir_perception``: spins the node until shutdown; returns the exit code."""
    from ir_robot.ros.run import run_node

    return run_node(NirPerceptionNode, args)
