"""Video in: the ultrasound frame grabber and the NIR camera through cv2.VideoCapture.

:class:`Camera` turns captured frames into :class:`ir_robot.core.types.ImageFrame`
(uint8, single channel, cropped to the image area, with the calibrated pixel
spacing). Sources: a device index (``"0"``), a device path (``/dev/video2``), a
video file or a stream URL -- anything cv2.VideoCapture opens.

Pixel spacing calibration (docs/rig.md):

* :func:`spacing_from_checkerboard` -- a printed checkerboard of known square size
  under the NIR camera (``cv2.findChessboardCorners``);
* :func:`spacing_from_points` -- two points a known distance apart (an ultrasound
  depth ruler, wires in a water bath);
* :func:`spacing_from_depth` -- the scanner's displayed depth over the image height.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Literal

import numpy as np

from ir_robot.core.errors import RigError
from ir_robot.core.types import ImageFrame
from ir_robot.devices.config import CameraConfig

if TYPE_CHECKING:
    import cv2


def _source_value(source: str):
    s = str(source).strip()
    return int(s) if s.isdigit() else s


def _open_failure(source: str) -> RigError:
    s = str(source).strip()
    dev = f"/dev/video{s}" if s.isdigit() else s
    if dev.startswith("/dev/"):
        if not os.path.exists(dev):
            return RigError(
                f"camera {dev} does not exist: plug in the frame grabber / camera and list devices with "
                "`v4l2-ctl --list-devices` (package v4l-utils); then set the source in config/rig.yaml"
            )
        if not os.access(dev, os.R_OK | os.W_OK):
            return RigError(
                f"permission denied on camera {dev}: add your user to the video group "
                "(`sudo usermod -aG video $USER`, then log out and back in)"
            )
        return RigError(
            f"camera {dev} exists but OpenCV cannot open it: another program may hold it (close other "
            "viewers), or it is not a capture node (try the next /dev/videoN)"
        )
    if "://" not in s and not os.path.exists(s):
        return RigError(f"video source {s!r} not found: give a device index ('0'), /dev/videoN, a video file or a URL")
    return RigError(f"OpenCV cannot open the video source {s!r} (unsupported codec or stream)")


def process_frame(
    frame: np.ndarray, config: CameraConfig, stamp_s: float = 0.0, meta: dict | None = None
) -> ImageFrame:
    """Crop, convert to single-channel uint8 and wrap a captured frame (pure; no device)."""
    import cv2

    img = np.asarray(frame)
    if img.ndim not in (2, 3) or img.size == 0:
        raise RigError(f"captured frame has shape {img.shape}; expected (H, W) or (H, W, C)")
    if config.crop is not None:
        r, c, h, w = config.crop
        if r < 0 or c < 0 or h <= 0 or w <= 0 or r + h > img.shape[0] or c + w > img.shape[1]:
            raise RigError(
                f"crop {tuple(config.crop)} (row, col, height, width) does not fit the {img.shape[0]}x"
                f"{img.shape[1]} frame of {config.source!r}; fix the camera's crop in config/rig.yaml"
            )
        img = img[r : r + h, c : c + w]
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if config.grayscale and img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
        else:
            raise RigError(f"captured frame has {img.shape[2]} channels; expected 1, 3 or 4")
    return ImageFrame(
        modality=config.modality,
        image=np.ascontiguousarray(img),
        spacing_mm=(config.spacing_mm[0], config.spacing_mm[1]),
        stamp_s=stamp_s,
        meta=dict(meta or {}),
    )


class Camera:
    """One cv2.VideoCapture source producing :class:`ImageFrame` s. Use as a context manager."""

    def __init__(self, config: CameraConfig, source: str | None = None):
        self.config = config
        self.source = str(source) if source is not None else config.source
        self._cap: cv2.VideoCapture | None = None
        self.frames_read = 0

    def open(self) -> Camera:
        """Opens the source and asks it for the configured width, height and fps; RigError naming the likely fix if it
        cannot be opened.
        """
        import cv2

        cap = cv2.VideoCapture(_source_value(self.source))
        if not cap.isOpened():
            cap.release()
            raise _open_failure(self.source)
        c = self.config
        if c.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
        if c.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
        if c.fps:
            cap.set(cv2.CAP_PROP_FPS, c.fps)
        self._cap = cap
        return self

    def read(self) -> ImageFrame:
        """Grab the next frame; RigError if the source stopped delivering."""
        if self._cap is None:
            self.open()
        assert self._cap is not None  # open() sets it or raises
        deadline = time.monotonic() + self.config.open_timeout_s
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None:
                break
            if time.monotonic() > deadline:
                raise RigError(
                    f"no frame from {self.source!r} within {self.config.open_timeout_s:.1f} s (end of the file, "
                    "grabber unplugged, or no signal on its input)"
                )
            time.sleep(0.01)
        self.frames_read += 1
        return process_frame(
            frame, self.config, time.monotonic(), {"source": self.source, "frame_index": self.frames_read - 1}
        )

    def close(self) -> None:
        """Releases the source; safe to call twice."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> Camera:
        return self.open()

    def __exit__(self, *exc) -> Literal[False]:
        self.close()
        return False


# ---------------------------------------------------------------------------- calibration


def spacing_from_points(p0_px, p1_px, distance_mm: float) -> float:
    """Isotropic pixel size (mm/px) from two points ``distance_mm`` apart (pixel (row, col))."""
    d_px = float(np.hypot(*(np.asarray(p1_px, float) - np.asarray(p0_px, float))))
    if d_px < 1.0 or not distance_mm > 0:
        raise RigError(f"spacing needs two distinct points (got {d_px:.2f} px apart) and a distance > 0 mm")
    return float(distance_mm) / d_px


def spacing_from_depth(image_height_px: int, depth_mm: float) -> float:
    """Ultrasound axial pixel size: the scanner's displayed depth over the B-mode height in pixels."""
    if image_height_px <= 0 or not depth_mm > 0:
        raise RigError("spacing_from_depth needs a positive height in pixels and a depth in mm")
    return float(depth_mm) / int(image_height_px)


def spacing_from_checkerboard(image: np.ndarray, pattern: tuple[int, int], square_mm: float) -> tuple[float, float]:
    """(row, col) pixel size in mm from a checkerboard photo.

    ``pattern`` = inner corners (per row, per column) as OpenCV counts them, e.g.
    (9, 6) for a 10x7-square board; ``square_mm`` = printed square size.
    """
    import cv2

    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    img = img.astype(np.uint8)
    found, corners = cv2.findChessboardCorners(img, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH)
    if not found:
        raise RigError(
            f"no {pattern[0]}x{pattern[1]} inner-corner checkerboard found: fill more of the view with the "
            "board, light it evenly, and check the pattern size (inner corners, not squares)"
        )
    corners = cv2.cornerSubPix(
        img, corners, (5, 5), (-1, -1), (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    )
    grid = corners.reshape(pattern[1], pattern[0], 2)  # (rows, cols, (x, y))
    along_cols = np.linalg.norm(np.diff(grid, axis=1), axis=2).mean()  # neighbouring corners along a row of the board
    along_rows = np.linalg.norm(np.diff(grid, axis=0), axis=2).mean()
    # board rows may run along image columns or rows: attribute each direction by its dominant image axis
    d_cols = np.abs(np.diff(grid, axis=1)).reshape(-1, 2).mean(axis=0)  # (dx, dy)
    if d_cols[0] >= d_cols[1]:
        col_px, row_px = along_cols, along_rows
    else:
        col_px, row_px = along_rows, along_cols
    return float(square_mm / row_px), float(square_mm / col_px)
