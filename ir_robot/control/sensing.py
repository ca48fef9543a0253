"""Perception results -> world-frame measurements the planner and controller use.

Perception objects are injected (``predict(frame) -> UsResult | NirResult``): the learned
predictors, :class:`~ir_robot.perception.inference.GroundTruthPerception`, or fakes in
tests. Everything here is geometry on their outputs; nothing reads ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ir_robot.core.errors import PerceptionError
from ir_robot.core.types import ImageFrame, JointVector, NirView
from ir_robot.planning.geometry import frame_probe, nir_to_world, us_to_world, world_to_us
from ir_robot.planning.vessels import CrossSection, NirTrace


@dataclass(frozen=True)
class UsMeasurement:
    """One transverse ultrasound frame in world terms."""

    stamp_s: float
    probe_x_mm: float
    probe_y_mm: float
    sections: tuple[CrossSection, ...]
    needle_yz_mm: tuple[float, float] | None  # needle cross-section seen in the plane (y, z)
    blank: bool = False  # the frame carried no usable image
    half_width_mm: float = 15.0
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)  # perception's label mask
    profile: np.ndarray | None = field(default=None, repr=False, compare=False)  # layer_profile of the image


def is_blank(image: np.ndarray) -> bool:
    """A frame with (almost) no contrast: lost contact, frozen or black video."""
    img = np.asarray(image)
    return img.size == 0 or float(img.std()) < 1.0


def measure_us(
    frame: ImageFrame,
    perception,
    joints: JointVector | None = None,
    *,
    probe_offset_mm: float = 12.0,
    roi_yz_mm: tuple[float, float] | None = None,
    roi_side_mm: float = 0.0,
) -> UsMeasurement:
    """Run ``perception`` on a transverse frame and place vessels and the needle in the world.

    Cross-sections cut by the image's side edges are dropped (their centre and size are wrong).
    ``roi_yz_mm`` (world y, z at the probe plane) with ``roi_side_mm > 0``: the network sees only a
    square of that side around that point (a zoom: a 1-2 mm target covers more of its input).
    """
    probe = frame_probe(frame, joints, probe_offset_mm)
    h, w = frame.shape
    half = 0.5 * w * frame.spacing_mm[1]
    if is_blank(frame.image):
        return UsMeasurement(frame.stamp_s, probe.x_mm, probe.y_mm, (), None, True, half)
    roi = None
    if roi_yz_mm is not None and roi_side_mm > 0:
        rc, _ = world_to_us(np.array([probe.x_mm, roi_yz_mm[0], roi_yz_mm[1]]), (h, w), frame.spacing_mm, probe)
        roi = (float(rc[0]), float(rc[1]), roi_side_mm / min(frame.spacing_mm))
    try:
        res = perception.predict(frame) if roi is None else perception.predict(frame, roi=roi)
    except PerceptionError:
        return UsMeasurement(frame.stamp_s, probe.x_mm, probe.y_mm, (), None, True, half)
    sections = []
    for v in res.vessels:
        if getattr(v, "band", False):
            continue  # a longitudinal band is not a cross-section
        width = float(v.width_mm) if getattr(v, "width_mm", 0.0) else float(v.diameter_mm)
        lat = (v.centre_px[1] - w / 2 + 0.5) * frame.spacing_mm[1]
        if abs(lat) + 0.5 * width > half - 1.5 * frame.spacing_mm[1]:
            continue  # cut by the image edge: a partial cross-section, centre and size are wrong
        p = us_to_world(v.centre_px, (h, w), frame.spacing_mm, probe)
        height = float(v.height_mm) if getattr(v, "height_mm", 0.0) else float(v.diameter_mm)
        area = float(getattr(v, "area_px", 0) or 0) * frame.spacing_mm[0] * frame.spacing_mm[1]
        sections.append(
            CrossSection(
                v.kind, float(p[0]), float(p[1]), float(p[2]), width, height, float(getattr(v, "confidence", 1.0)), area
            )
        )
    needle = None
    nd = getattr(res, "needle", None)
    if nd is not None:
        p = us_to_world(nd.tip_px, (h, w), frame.spacing_mm, probe)
        needle = (float(p[1]), float(p[2]))
    # tissue layers for depth tracking, without the needle's column band (dot, shadow, reverberations)
    lat_needle = (joints.y_mm - probe.y_mm) if joints is not None else 0.0
    profile = layer_profile(frame.image, frame.spacing_mm, exclude_lateral_mm=(lat_needle, 1.5))
    return UsMeasurement(
        frame.stamp_s, probe.x_mm, probe.y_mm, tuple(sections), needle, False, half, getattr(res, "mask", None), profile
    )


def measure_nir(frame: ImageFrame, perception, view: NirView | None = None) -> tuple[NirTrace, ...]:
    """NIR veins as world-frame centreline traces (sorted by x). Blank frames give none."""
    if is_blank(frame.image):
        return ()
    try:
        res = perception.predict(frame)
    except PerceptionError:
        return ()
    if view is None:
        v = frame.meta.get("view") if isinstance(frame.meta, dict) else None
        view = (
            NirView(float(v["x_mm"]), float(v["y_mm"]), float(v["fov_mm"]))
            if v
            else NirView(0.0, 0.0, frame.shape[1] * frame.spacing_mm[1])
        )
    out = []
    for v in res.veins:
        cl = np.asarray(v.centreline_px, dtype=float).reshape(-1, 2)
        if len(cl) < 2:
            continue
        xy = nir_to_world(cl, frame.shape, frame.spacing_mm, view)
        xy = xy[np.argsort(xy[:, 0])]
        if xy[-1, 0] - xy[0, 0] < 1.0:
            continue  # a vein running across x cannot be followed by this rig's needle plane
        out.append(NirTrace(xy, float(v.width_mm), float(getattr(v, "confidence", 1.0))))
    return tuple(out)


def layer_profile(
    image: np.ndarray, spacing_mm, *, exclude_lateral_mm: tuple[float, float] | None = None, depth_mm: float = 16.0
) -> np.ndarray:
    """The ultrasound image's row profile (median over columns, band-passed) down to ``depth_mm``.

    Skin, fat/muscle fascia and muscle fibres run horizontally, so this profile moves up and down
    with the tissue; the median ignores the few columns crossed by vessels. ``exclude_lateral_mm =
    (centre, half_width)`` drops columns (e.g. the needle, its shadow and reverberations).
    """
    import cv2

    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape
    sy, sx = spacing_mm
    rows = min(h, max(8, int(round(depth_mm / sy))))
    img = img[:rows]
    if exclude_lateral_mm is not None:
        lat = (np.arange(w) - w / 2 + 0.5) * sx
        keep = np.abs(lat - exclude_lateral_mm[0]) > exclude_lateral_mm[1]
        if keep.sum() >= 8:
            img = img[:, keep]
    prof = np.median(img, axis=1).astype(np.float32).reshape(-1, 1)
    prof = cv2.GaussianBlur(prof, (0, 0), 1.0) - cv2.GaussianBlur(prof, (0, 0), 15.0)
    return prof.ravel()


def profile_shift_mm(reference: np.ndarray, current: np.ndarray, spacing_mm, max_mm: float = 1.5) -> float | None:
    """How far (mm, + = up, world z) the tissue moved between two :func:`layer_profile` s.

    Normalised cross-correlation over lags up to ``max_mm``, parabolic sub-pixel peak; None when
    the profiles are flat or the peak is weak.
    """
    a, b = np.asarray(reference, float), np.asarray(current, float)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    sy = spacing_mm[0]
    m = max(1, int(math.ceil(max_mm / sy)))
    if n < 4 * m or a.std() < 1e-6 or b.std() < 1e-6:
        return None
    lags = np.arange(-m, m + 1)
    c = np.empty(len(lags))
    for i, lag in enumerate(lags):
        x, y = (a[: n - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: n + lag])
        x, y = x - x.mean(), y - y.mean()
        c[i] = float(x @ y) / (math.sqrt(float(x @ x) * float(y @ y)) + 1e-12)
    i = int(np.argmax(c))
    if c[i] < 0.5 or i in (0, len(c) - 1):
        return None
    d = c[i - 1] - 2 * c[i] + c[i + 1]
    sub = 0.5 * (c[i - 1] - c[i + 1]) / d if d < 0 else 0.0
    return -float(lags[i] + sub) * sy  # rows grow downwards: tissue moving down shifts the profile down


def in_ellipse(point_yz, centre_yz, semi_axes, margin: float = 1.0) -> bool:
    """Is ``point_yz`` inside the ellipse (``margin`` scales the semi-axes)?"""
    a, b = max(semi_axes[0], 1e-6) * margin, max(semi_axes[1], 1e-6) * margin
    dy = (point_yz[0] - centre_yz[0]) / a
    dz = (point_yz[1] - centre_yz[1]) / b
    return dy * dy + dz * dz < 1.0


def needle_at_x(
    needle_yz, plane_x_mm: float, target_x_mm: float, pitch_rad: float, slab_half_mm: float = 0.0
) -> tuple[float, float]:
    """Where the tip would be if the needle seen in the plane x = plane_x ended at x = target_x.

    The detector reports the deepest needle point it sees; the beam slab shows the needle
    up to ``slab_half_mm`` (half the elevation thickness plus the needle radius) beyond the
    plane, so a tip within that distance is seen itself and needs no correction.
    """
    seen_x = min(target_x_mm, plane_x_mm + slab_half_mm)
    return needle_yz[0], needle_yz[1] - (target_x_mm - seen_x) * math.tan(pitch_rad)
