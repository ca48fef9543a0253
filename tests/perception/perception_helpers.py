"""Hand-made images for the perception tests (imported by the test modules)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ir_robot.core.types import LABEL_ARTERY, LABEL_NEEDLE, LABEL_VEIN, ImageFrame

SPACING = (30.0 / 256, 30.0 / 256)


def needle_mask(shape, tip_rc, angle_deg, length_px, width_px):
    """Boolean capsule mask (pixel centres within width/2 of the shaft) of a needle ending at
    ``tip_rc``, like the renderer's labels. ``angle_deg`` is the in-image direction of travel,
    ``atan2(drow, dcol)``: the tail is at ``tip - length * (sin, cos)`` in (row, col)."""
    a = math.radians(angle_deg)
    d = np.array([math.sin(a), math.cos(a)])
    tip = np.asarray(tip_rc, float)
    tail = tip - length_px * d
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    q = np.stack([rr - tail[0], cc - tail[1]], axis=-1)
    t = np.clip(q @ d, 0.0, length_px)
    dist = np.linalg.norm(q - t[..., None] * d, axis=-1)
    return dist <= width_px / 2


def fake_us_frame(rng: np.random.Generator, size=64, needle=True, spacing=(30.0 / 64, 30.0 / 64)):
    """A tiny fake ultrasound frame: speckle, a dark vein, a dark round artery, a bright needle."""
    img = rng.gamma(2.0, 40.0, (size, size)).clip(0, 255).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 0.8)
    labels = np.zeros((size, size), np.uint8)
    cy, cx = rng.uniform(0.35, 0.7) * size, rng.uniform(0.25, 0.45) * size
    ry = rng.uniform(0.06, 0.1) * size
    cv2.ellipse(labels, (int(cx), int(cy)), (int(ry * 1.3), int(ry)), 0, 0, 360, LABEL_VEIN, -1)
    ay, ax = rng.uniform(0.4, 0.75) * size, rng.uniform(0.65, 0.8) * size
    cv2.circle(labels, (int(ax), int(ay)), int(0.08 * size), LABEL_ARTERY, -1)
    img[labels > 0] *= 0.08
    ring = cv2.dilate((labels == LABEL_ARTERY).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    img[ring & (labels == 0)] = 220
    tip = None
    if needle:
        tip = (float(rng.uniform(0.4, 0.6) * size), float(rng.uniform(0.45, 0.6) * size))
        nm = needle_mask((size, size), tip, rng.uniform(20, 40), 0.5 * size, 2.5)
        labels[nm] = LABEL_NEEDLE
        img[nm] = 250
    return ImageFrame("us", img.clip(0, 255).astype(np.uint8), spacing, 0.0, labels, tip)
