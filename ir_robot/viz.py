"""Pictures for people: label colouring, overlays, PNG writing, plots (OpenCV + matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: BGR colours for LABEL_* codes: background, vein (blue), artery (red), needle (yellow)
LABEL_COLOURS_BGR = np.array([[0, 0, 0], [255, 120, 0], [40, 40, 230], [0, 230, 255]], dtype=np.uint8)


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W) label codes -> (H, W, 3) BGR uint8."""
    lab = np.clip(np.asarray(labels), 0, len(LABEL_COLOURS_BGR) - 1).astype(np.intp)
    return LABEL_COLOURS_BGR[lab]


def overlay(image: np.ndarray, labels: np.ndarray | None = None, alpha: float = 0.45) -> np.ndarray:
    """Grey image with coloured labels blended on top (BGR uint8)."""
    import cv2

    img = np.asarray(image)
    base = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    if labels is None:
        return base
    col = colorize_labels(labels)
    mask = np.asarray(labels) > 0
    out = base.copy()
    out[mask] = (base[mask] * (1 - alpha) + col[mask] * alpha).astype(np.uint8)
    return out


def draw_marker(
    img: np.ndarray, rc: tuple[float, float] | None, colour: tuple[int, int, int] = (0, 255, 0), size: int = 6
) -> np.ndarray:
    """A cross drawn in place at pixel ``rc`` (row, col) of a BGR image; no marker when ``rc`` is None."""
    import cv2

    if rc is not None:
        cv2.drawMarker(img, (int(round(rc[1])), int(round(rc[0]))), colour, cv2.MARKER_CROSS, size, 1)
    return img


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """The image written to ``path`` (parent folders made), raising OSError if OpenCV cannot write it."""
    import cv2

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), np.asarray(image)):
        raise OSError(f"could not write {p}")
    return p


def new_figure(*args, **kwargs):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)
