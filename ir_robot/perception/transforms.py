"""Image checks and the transforms shared by training and inference.

Every image entering perception goes through :func:`validate_image`, which either
returns a contiguous ``uint8 (H, W)`` array or raises one :class:`PerceptionError`
naming the problem and the fix: never a silent garbage mask. Files go through
:func:`read_image` (PNG/JPEG/... or one frame of a video).

Model input: the image is resized (``cv2.INTER_AREA``) to the model's square input
size and standardised per image (zero mean, unit std, std floored so a flat image is
not blown up into noise). Model output probabilities are resized back (bilinear) to
the original image size before the argmax, so masks have sub-pixel-smooth borders.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ir_robot.core.errors import PerceptionError

#: smallest and largest image side accepted (pixels)
MIN_SIDE_PX = 32
MAX_SIDE_PX = 4096
#: largest accepted aspect ratio (long side / short side) before resizing to a square model input
MAX_ASPECT = 4.0
#: per-image std floor (in units of full scale) used by :func:`standardise`
STD_FLOOR = 0.04

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm")


def validate_image(image, *, what: str = "image") -> np.ndarray:
    """Check an image and return it as a contiguous ``uint8 (H, W)`` array.

    Accepts ``(H, W)`` and ``(H, W, 1)`` uint8, and grey images stored as 3/4-channel
    colour (all colour channels equal, as screenshots and many PNG writers produce).
    Refuses anything else with a :class:`PerceptionError`.
    """
    if image is None:
        raise PerceptionError(f"{what}: got None instead of an image array")
    if not isinstance(image, np.ndarray):
        raise PerceptionError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = (
            "scale and convert it, e.g. (img / img.max() * 255).astype(np.uint8)"
            if image.dtype.kind in "fuib"
            else "convert it to 8-bit grey"
        )
        raise PerceptionError(
            f"{what}: dtype {image.dtype} is not supported; perception expects uint8 grey images (0-255): {hint}"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        colour = image[:, :, :3]
        if not (np.array_equal(colour[:, :, 0], colour[:, :, 1]) and np.array_equal(colour[:, :, 0], colour[:, :, 2])):
            raise PerceptionError(
                f"{what}: has {image.shape[2]} colour channels that differ; the models take single-channel grey "
                f"ultrasound/NIR images: convert with cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if it really is "
                f"a grey image in colour"
            )
        image = colour[:, :, 0]
    elif image.ndim != 2:
        raise PerceptionError(
            f"{what}: shape {image.shape} is not an image; expected (H, W) grey "
            f"(or (H, W, 1), or grey stored as (H, W, 3))"
        )
    h, w = image.shape
    if min(h, w) < MIN_SIDE_PX or max(h, w) > MAX_SIDE_PX:
        raise PerceptionError(
            f"{what}: size {h}x{w} px is outside the supported {MIN_SIDE_PX}..{MAX_SIDE_PX} px "
            f"per side; crop or resize it first"
        )
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise PerceptionError(
            f"{what}: aspect ratio {h}x{w} is more elongated than {MAX_ASPECT:g}:1; crop it to the imaging sector first"
        )
    return np.ascontiguousarray(image)


def read_image(path: str | Path, frame_index: int | None = None) -> np.ndarray:
    """Read a grey image from a file (any format OpenCV reads) or frame ``frame_index`` of a video.

    Colour files are refused unless their channels are equal (see :func:`validate_image`);
    16-bit files are refused (perception expects 8-bit).
    """
    p = Path(path)
    if not p.exists():
        raise PerceptionError(f"input image {p}: file not found")
    if not p.is_file():
        raise PerceptionError(f"input image {p}: is not a file")
    if p.stat().st_size == 0:
        raise PerceptionError(f"input image {p}: the file is empty (0 bytes)")
    if p.suffix.lower() in VIDEO_SUFFIXES or frame_index is not None:
        cap = cv2.VideoCapture(str(p))
        try:
            if not cap.isOpened():
                raise PerceptionError(f"input video {p}: OpenCV cannot open it (corrupt or unsupported codec)")
            k = int(frame_index or 0)
            if k < 0:
                raise PerceptionError(f"input video {p}: frame index {k} is negative")
            if k:
                cap.set(cv2.CAP_PROP_POS_FRAMES, k)
            ok, frame = cap.read()
        finally:
            cap.release()
        if not ok or frame is None:
            raise PerceptionError(f"input video {p}: cannot read frame {frame_index or 0} (past the end or corrupt)")
        # codecs return BGR even for grey video; equal channels pass, real colour is refused below
        img = frame
    else:
        data = np.fromfile(str(p), dtype=np.uint8)
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise PerceptionError(f"input image {p}: not a readable image (corrupt file or unknown format)")
        img = decoded
    if img.dtype != np.uint8:
        raise PerceptionError(
            f"input image {p}: {img.dtype} pixels ({8 * img.dtype.itemsize}-bit); perception "
            f"expects 8-bit grey images: convert it to 8 bits first"
        )
    if img.ndim == 3 and img.shape[2] in (3, 4) and not _channels_equal(img):
        # a lossy video codec perturbs channels slightly; accept near-grey frames from video only
        if p.suffix.lower() in VIDEO_SUFFIXES and _near_grey(img):
            img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)
    return validate_image(img, what=f"input image {p}")


def _channels_equal(img: np.ndarray) -> bool:
    c = img[:, :, :3]
    return bool(np.array_equal(c[:, :, 0], c[:, :, 1]) and np.array_equal(c[:, :, 0], c[:, :, 2]))


def _near_grey(img: np.ndarray, tol: int = 12) -> bool:
    c = img[:, :, :3].astype(np.int16)
    return bool(np.percentile(np.abs(c - c.mean(axis=2, keepdims=True)), 99) <= tol)


def resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a uint8/float image to ``(H, W)``: area averaging when shrinking, bilinear when enlarging."""
    h, w = int(size_hw[0]), int(size_hw[1])
    if image.shape[:2] == (h, w):
        return image
    shrink = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_labels(labels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a label mask with nearest neighbour (labels are categories, never averaged)."""
    h, w = int(size_hw[0]), int(size_hw[1])
    if labels.shape[:2] == (h, w):
        return labels
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)


def roi_box(centre_rc, side_px: float, shape_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(r0, c0, r1, c1)``: a square of ``side_px`` (at most the image's shorter side) around
    ``centre_rc`` (row, col), shifted to lie inside an image of ``shape_hw``.
    """
    h, w = int(shape_hw[0]), int(shape_hw[1])
    side = int(round(min(max(float(side_px), 1.0), h, w)))
    r0 = int(round(float(centre_rc[0]) - side / 2))
    c0 = int(round(float(centre_rc[1]) - side / 2))
    r0 = min(max(r0, 0), h - side)
    c0 = min(max(c0, 0), w - side)
    return r0, c0, r0 + side, c0 + side


def standardise(images: np.ndarray) -> np.ndarray:
    """uint8 ``(..., H, W)`` -> float32 with zero mean and unit std per image (std floored)."""
    x = images.astype(np.float32) * (1.0 / 255.0)
    axes = (-2, -1)
    mean = x.mean(axis=axes, keepdims=True)
    std = np.maximum(x.std(axis=axes, keepdims=True), STD_FLOOR)
    return (x - mean) / std


def to_model_input(images: np.ndarray, input_size: int) -> np.ndarray:
    """Validated uint8 ``(H, W)`` or a stack ``(N, H, W)`` -> float32 ``(N, 1, S, S)`` model input."""
    stack = images[None] if images.ndim == 2 else images
    out = np.empty((stack.shape[0], 1, input_size, input_size), np.float32)
    for i, img in enumerate(stack):
        out[i, 0] = standardise(resize(img, (input_size, input_size)))
    return out


def probs_to_size(probs: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Class probabilities ``(C, h, w)`` -> ``(C, H, W)`` (bilinear). The bilinear weights of a
    pixel sum to one, so the resized probabilities still sum to 1 (to float rounding, ~1e-7):
    no renormalisation (it cost 2 ms a frame, more than the resize).
    """
    c = probs.shape[0]
    if probs.shape[1:] == tuple(size_hw):
        return probs
    h, w = size_hw
    hwc = np.ascontiguousarray(probs.transpose(1, 2, 0))
    if c <= 4:
        up = cv2.resize(hwc, (w, h), interpolation=cv2.INTER_LINEAR)
        up = up.reshape(h, w, c)
    else:
        up = np.stack(
            [cv2.resize(np.ascontiguousarray(hwc[:, :, k]), (w, h), interpolation=cv2.INTER_LINEAR) for k in range(c)],
            axis=-1,
        )
    return up.transpose(2, 0, 1)


def scaled_spacing(
    spacing_mm: tuple[float, float], from_hw: tuple[int, int], to_hw: tuple[int, int]
) -> tuple[float, float]:
    """Pixel spacing after resizing an image covering the same field of view from ``from_hw`` to ``to_hw``."""
    return (float(spacing_mm[0]) * from_hw[0] / to_hw[0], float(spacing_mm[1]) * from_hw[1] / to_hw[1])


def check_spacing(spacing_mm, *, what: str = "spacing_mm") -> tuple[float, float]:
    """A (row, col) pixel spacing in mm: two finite positive numbers below 10 mm."""
    try:
        sy, sx = (float(v) for v in spacing_mm)
    except (TypeError, ValueError):
        raise PerceptionError(f"{what}: expected two numbers (row, col) in mm per pixel, got {spacing_mm!r}") from None
    if not (np.isfinite(sy) and np.isfinite(sx) and 0 < sy < 10 and 0 < sx < 10):
        raise PerceptionError(
            f"{what}: ({sy}, {sx}) mm per pixel is not a plausible pixel size; expected positive values below 10 mm"
        )
    return sy, sx
