"""``us_camera`` / ``nir_camera``: a video source (frame grabber, UVC camera, video file) as image topics.

One executable (``ir_robot_camera``) for both modalities: the parameter ``modality`` (``us`` |
``nir``) picks the topics and the image frame; the rig graph (``ir-robot launch rig``) runs it
twice, as ``us_camera`` and ``nir_camera``, in place of the simulator's images. Frames come from
:class:`ir_robot.devices.camera.Camera` (cv2.VideoCapture: a device index ``"0"``,
``/dev/videoN``, a video file or a stream URL), cropped to ``crop_px`` and converted to
single-channel uint8 there, and are published with the simulator node's message conversion
(:func:`ir_robot.ros.conversions.frame_to_msgs`), so the perception nodes cannot tell them apart:

=====================  ===========================  ===========
``/<m>/image_raw``     sensor_msgs/Image mono8      sensor data
``/<m>/camera_info``   sensor_msgs/CameraInfo       sensor data  (pixel spacing from ``spacing_mm``)
=====================  ===========================  ===========

A capture thread owns the source and publishes (``VideoCapture.read`` blocks until the next
frame and must not block the executor the rest of the graph may share); each frame is stamped
with its capture time. A device is published at most at ``rate_hz`` (frames in between are
dropped); a video file is read and published at ``rate_hz``, every frame once, and at its end is
rewound when ``loop`` is true, else the node logs the end and stops publishing. A source that cannot be
opened or stops delivering (grabber unplugged, wrong index) is reported once with the fix and
retried every ``reopen_s``; the rest of the graph keeps running.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from ir_robot.config import param
from ir_robot.core.errors import ConfigError, RigError
from ir_robot.devices.config import CameraConfig
from ir_robot.ros import qos
from ir_robot.ros.conversions import frame_to_msgs

#: CameraConfig modality for each topic prefix
_MODALITY = {"us": "ultrasound", "nir": "nir"}


@dataclass(frozen=True)
class CameraNodeConfig:
    """Parameters of a camera node: the video source, which topics, pixel spacing, rate, crop and reopening."""

    source: str = param("0", help="cv2.VideoCapture source: device index ('0'), /dev/videoN, a video file or a URL")
    modality: str = param("us", choices=("us", "nir"), help="publish on /us/... or /nir/...")
    spacing_mm: tuple[float, ...] = param(
        (0.1, 0.1),
        range=(1e-4, 10.0),
        unit="mm",
        help="(row, col) pixel size after cropping (docs/rig.md 'Pixel spacing')",
    )
    rate_hz: float = param(30.0, range=(0.1, 240.0), unit="Hz", help="publishing rate (video files are read at it)")
    crop_px: tuple[int, ...] = param(
        (0, 0, 0, 0),
        range=(0, 100000),
        help="(row, col, height, width) of the image area in the grabbed frame; zero height or width = the whole frame",
    )
    loop: bool = param(False, help="rewind a video file at its end (otherwise stop publishing)")
    reopen_s: float = param(1.0, range=(0.05, 60.0), unit="s", help="retry period while the source cannot be opened")
    read_timeout_s: float = param(
        1.0, range=(0.1, 30.0), unit="s", help="a device that delivers no frame for this long is reported and reopened"
    )

    def camera_config(self) -> CameraConfig:
        """The :class:`~ir_robot.devices.camera.CameraConfig` these parameters describe (single-channel frames);
        ConfigError for a spacing or crop of the wrong length.
        """
        if len(self.spacing_mm) != 2:
            raise ConfigError(f"field 'spacing_mm': give (row, col) mm per pixel, got {list(self.spacing_mm)}")
        if len(self.crop_px) != 4:
            raise ConfigError(f"field 'crop_px': give (row, col, height, width) in pixels, got {list(self.crop_px)}")
        crop = None
        if self.crop_px[2] > 0 and self.crop_px[3] > 0:
            r, c, h, w = (int(v) for v in self.crop_px)
            crop = (r, c, h, w)
        return CameraConfig(
            source=self.source,
            modality=_MODALITY[self.modality],
            crop=crop,
            spacing_mm=(float(self.spacing_mm[0]), float(self.spacing_mm[1])),
            grayscale=True,
            open_timeout_s=self.read_timeout_s,
        )


def is_video_file(source: str) -> bool:
    """True for a source that is an existing file (not a device index, ``/dev/`` path or URL): read at the rate."""
    s = str(source).strip()
    return not s.isdigit() and "://" not in s and not s.startswith("/dev/") and os.path.isfile(s)


class CameraNode(Node):
    """Publishes one video source as ``/<modality>/image_raw`` + ``/<modality>/camera_info``."""

    NODE_NAME = "camera"
    PARAMS = ((CameraNodeConfig, ""),)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        from ir_robot.ros.params import declare_config

        self.params = declare_config(self, CameraNodeConfig, read_only=True)
        cfg = self.params.config
        self.modality = cfg.modality
        self.is_file = is_video_file(cfg.source)
        self.camera_config = cfg.camera_config()
        if self.is_file:  # a file's end is immediate: do not wait read_timeout_s for more frames
            self.camera_config = dataclasses.replace(self.camera_config, open_timeout_s=0.1)
        sensor = qos.sensor()
        self._image_pub = self.create_publisher(Image, f"/{cfg.modality}/image_raw", sensor)
        self._info_pub = self.create_publisher(CameraInfo, f"/{cfg.modality}/camera_info", sensor)
        self.frames_read = 0
        self.frames_published = 0
        self.ended = False
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._reader, name=f"{self.get_name()}-capture", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"{cfg.modality} video from {cfg.source!r} at {cfg.rate_hz:g} Hz, "
            f"{cfg.spacing_mm[0]:g} x {cfg.spacing_mm[1]:g} mm per pixel"
        )

    # ------------------------------------------------------------------ capture thread (reads and publishes)
    def _report(self, message: str) -> None:
        if message != self.last_error:
            self.last_error = message
            self.get_logger().error(message)

    def _reader(self) -> None:
        from ir_robot.devices.camera import Camera

        cfg = self.params.config
        period = 1.0 / cfg.rate_hz
        camera = None
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                if camera is None:
                    try:
                        camera = Camera(self.camera_config).open()
                    except RigError as exc:
                        self._report(f"{exc} (retrying every {cfg.reopen_s:g} s)")
                        self._stop.wait(cfg.reopen_s)
                        continue
                    if self.last_error:
                        self.get_logger().info(f"video source {cfg.source!r} open")
                        self.last_error = ""
                if self.is_file:  # a file delivers as fast as it is read: pace it to the rate
                    self._stop.wait(max(0.0, next_t - time.monotonic()))
                    next_t = max(next_t + period, time.monotonic() - period)
                try:
                    frame = camera.read()
                except RigError as exc:
                    camera.close()
                    camera = None
                    if self.is_file:
                        if cfg.loop and self.frames_read:
                            continue
                        self.ended = True
                        self.get_logger().info(
                            f"end of the video file {cfg.source!r} after {self.frames_read} "
                            "frame(s) (set loop: true to rewind)"
                        )
                        return
                    self._report(f"{exc} (reopening every {cfg.reopen_s:g} s)")
                    self._stop.wait(cfg.reopen_s)
                    continue
                stamp = self.get_clock().now()  # capture time: the image's age counts as latency
                self.frames_read += 1
                if not self.is_file:  # a device delivers at its own rate: publish at most rate_hz
                    if time.monotonic() < next_t:
                        continue
                    next_t = max(next_t + period, time.monotonic() - period)
                image_msg, info_msg = frame_to_msgs(frame, stamp.to_msg(), self.modality)
                self._image_pub.publish(image_msg)
                self._info_pub.publish(info_msg)
                self.frames_published += 1
        finally:
            if camera is not None:
                camera.close()

    def close(self) -> None:
        """Stops the capture thread, which closes the source (waiting at most max(2 s, read timeout + 1 s))."""
        self._stop.set()
        self._thread.join(timeout=max(2.0, self.params.config.read_timeout_s + 1.0))


class UsCameraNode(CameraNode):
    """The ultrasound frame grabber (``modality: us`` in config/ros/rig.yaml)."""

    NODE_NAME = "us_camera"


class NirCameraNode(CameraNode):
    """The NIR camera (``modality: nir`` in config/ros/rig.yaml)."""

    NODE_NAME = "nir_camera"


def main(args=None):
    """``ir_robot_camera``: one camera node; its name and ``modality`` come from the launch (``--ros-args``)."""
    from ir_robot.ros.run import run_node

    return run_node(CameraNode, args)
