"""OpenCV video input: frame processing, a real VideoCapture on a file, errors, spacing calibration."""

import dataclasses

import cv2
import numpy as np
import pytest

from ir_robot.core.errors import RigError
from ir_robot.core.types import ImageFrame
from ir_robot.devices.camera import (
    Camera,
    process_frame,
    spacing_from_checkerboard,
    spacing_from_depth,
    spacing_from_points,
)
from ir_robot.devices.config import CameraConfig


def test_process_frame_crops_and_converts():
    cfg = CameraConfig(source="0", modality="ultrasound", crop=(10, 20, 30, 40), spacing_mm=(0.2, 0.25))
    frame = np.zeros((100, 120, 3), np.uint8)
    frame[10:40, 20:60] = (0, 0, 255)  # red area (BGR) = the image region
    out = process_frame(frame, cfg, stamp_s=1.5, meta={"k": 1})
    assert isinstance(out, ImageFrame) and out.modality == "ultrasound"
    assert out.image.shape == (30, 40) and out.image.dtype == np.uint8
    assert np.all(out.image == round(0.299 * 255))  # BGR -> gray
    assert out.spacing_mm == (0.2, 0.25) and out.stamp_s == 1.5 and out.meta == {"k": 1}
    deep = process_frame((np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024), dataclasses.replace(cfg, crop=None))
    assert deep.image.dtype == np.uint8 and deep.image.max() == (63 * 1024) >> 8


def test_bad_crop_names_the_fix():
    cfg = CameraConfig(crop=(0, 0, 200, 50))
    with pytest.raises(RigError, match="does not fit the 100x120 frame"):
        process_frame(np.zeros((100, 120), np.uint8), cfg)


def test_camera_reads_a_video_file(tmp_path):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(5):
        frame = np.full((48, 64, 3), 40 * i, np.uint8)
        writer.write(frame)
    writer.release()
    cfg = CameraConfig(source=path, modality="nir", spacing_mm=(0.1, 0.1), open_timeout_s=0.2)
    with Camera(cfg) as cam:
        frames = [cam.read() for _ in range(5)]
        assert [f.image.shape for f in frames] == [(48, 64)] * 5
        means = [float(f.image.mean()) for f in frames]
        assert means == sorted(means) and means[-1] > 140  # the clip brightens frame by frame
        assert frames[2].meta["frame_index"] == 2 and frames[0].modality == "nir"
        with pytest.raises(RigError, match="no frame"):
            cam.read()  # end of file


@pytest.mark.parametrize("source,why", [("/dev/video987", "does not exist"), ("/tmp/no/such/clip.avi", "not found")])
def test_missing_sources_name_the_fix(source, why):
    with pytest.raises(RigError, match=why):
        Camera(CameraConfig(source=source)).open()


def test_spacing_from_points_and_depth():
    assert spacing_from_points((0, 0), (30, 40), 10.0) == pytest.approx(0.2)
    assert spacing_from_depth(400, 40.0) == pytest.approx(0.1)
    with pytest.raises(RigError):
        spacing_from_points((5, 5), (5, 5), 10.0)


def test_spacing_from_checkerboard():
    square_px_row, square_px_col, rows, cols = 24, 30, 7, 10  # anisotropic pixels: 24 px tall, 30 px wide squares
    board = np.zeros((rows * square_px_row, cols * square_px_col), np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                board[r * square_px_row : (r + 1) * square_px_row, c * square_px_col : (c + 1) * square_px_col] = 255
    img = cv2.copyMakeBorder(board, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    row_mm, col_mm = spacing_from_checkerboard(img, (cols - 1, rows - 1), square_mm=6.0)
    assert row_mm == pytest.approx(6.0 / square_px_row, rel=0.02)
    assert col_mm == pytest.approx(6.0 / square_px_col, rel=0.02)
    with pytest.raises(RigError, match="checkerboard"):
        spacing_from_checkerboard(np.full((100, 100), 128, np.uint8), (9, 6), 6.0)
