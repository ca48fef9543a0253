"""Pictures of a vessel tree: projected lumen silhouettes on a matplotlib axes (reused by the CLI).

Views follow the radiology convention for a supine patient seen from the C-arm detector: ``coronal``
(anteroposterior; the patient's left on the viewer's right), ``lao`` (left anterior oblique by
``lao_deg``; 45 degrees unfolds the arch, the view the arch type is read in), ``sagittal`` (from the
patient's left; anterior on the viewer's left) and ``3d`` (an mplot3d axes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ir_robot.sim.anatomy.graph import VesselTree
from ir_robot.sim.anatomy.measure import GREAT_VESSELS, arch_levels, ostium

FloatArray = npt.NDArray[np.float64]

#: Colour of each vessel group (by branch name prefix).
COLOURS: dict[str, str] = {
    "aort": "#c0392b",
    "ascending": "#c0392b",
    "descending": "#c0392b",
    "abdominal": "#c0392b",
    "brachiocephalic": "#2471a3",
    "right_": "#2471a3",
    "left_": "#2471a3",
    "coeliac": "#7d3c98",
    "sma": "#7d3c98",
    "renal": "#7d3c98",
    "common_iliac": "#1e8449",
    "external_iliac": "#1e8449",
    "common_femoral": "#1e8449",
}

#: Short labels of the procedural branches.
LABELS: dict[str, str] = {
    "brachiocephalic": "BCA",
    "right_subclavian": "RSA",
    "right_common_carotid": "RCCA",
    "left_common_carotid": "LCCA",
    "left_subclavian": "LSA",
    "coeliac": "CT",
    "sma": "SMA",
    "renal_left": "LRA",
    "renal_right": "RRA",
    "common_femoral_left": "LCFA",
    "common_femoral_right": "RCFA",
    "external_iliac_left": "LEIA",
    "external_iliac_right": "REIA",
}


def view_axes(view: str, lao_deg: float = 45.0) -> tuple[FloatArray, FloatArray]:
    """Unit vectors (in the body frame) of the picture's horizontal and vertical axes for a view."""
    if view == "coronal":
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    if view == "lao":
        a = np.radians(lao_deg)
        return np.array([np.cos(a), np.sin(a), 0.0]), np.array([0.0, 0.0, 1.0])
    if view == "sagittal":
        return np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    raise ValueError(f"unknown view '{view}': one of coronal, lao, sagittal, 3d")


def _colour(name: str) -> str:
    for prefix, colour in COLOURS.items():
        if name.startswith(prefix):
            return colour
    return "#7f8c8d"


def plot_anatomy(
    tree: VesselTree,
    ax: Any,
    *,
    view: str = "coronal",
    lao_deg: float = 45.0,
    labels: bool = True,
    branches: Sequence[str] | None = None,
    arch_lines: bool = False,
    valve: bool = True,
) -> None:
    """Draw the lumens of ``tree`` (or of the named ``branches``) on ``ax`` in the given view.

    ``arch_lines`` adds the horizontal levels of the arch's outer and inner curvature and marks the
    great vessels' ostia (what the arch type is read from). Lengths on the axes are millimetres.
    """
    names = tree.names if branches is None else tuple(tree.branch(n).name for n in branches)
    if view == "3d":
        for name in names:
            b = tree.branch(name)
            p = b.points_mm
            ax.plot(p[:, 0], p[:, 1], p[:, 2], color=_colour(name), lw=max(0.5, float(np.mean(b.radii_mm)) / 2.5))
        ax.set_xlabel("x (left) mm")
        ax.set_ylabel("y (posterior) mm")
        ax.set_zlabel("z (cranial) mm")
        return
    h, v = view_axes(view, lao_deg)
    for name in names:
        b = tree.branch(name)
        xy = np.stack([b.points_mm @ h, b.points_mm @ v], axis=1)
        tan = np.gradient(xy, axis=0)
        norm = np.linalg.norm(tan, axis=1, keepdims=True)
        tan = tan / np.where(norm > 1e-9, norm, 1.0)
        nrm = np.stack([-tan[:, 1], tan[:, 0]], axis=1) * b.radii_mm[:, None]
        outline = np.concatenate([xy + nrm, (xy - nrm)[::-1]])
        ax.fill(outline[:, 0], outline[:, 1], color=_colour(name), alpha=0.55, lw=0)
        ax.plot(xy[:, 0], xy[:, 1], color="k", lw=0.3, alpha=0.6)
        if labels and name in LABELS:
            ax.annotate(LABELS[name], xy[-1], fontsize=7, ha="center", va="bottom")
    if valve and tree.valve_ring is not None and (branches is None or tree.root.name in names):
        ring = tree.valve_ring
        c, n = np.asarray(ring.centre_mm), np.asarray(ring.normal)
        e1 = np.cross(n, [0.0, 0.0, 1.0] if abs(n[2]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(n, e1)
        th = np.linspace(0, 2 * np.pi, 90)
        pts = c + ring.radius_mm * (np.cos(th)[:, None] * e1 + np.sin(th)[:, None] * e2)
        ax.plot(pts @ h, pts @ v, color="#f1c40f", lw=1.5)
    if arch_lines and "aortic_arch" in tree.names:
        lv = arch_levels(tree)
        for z, style in ((lv.z_outer_mm, "--"), (lv.z_inner_mm, ":")):
            ax.axhline(z, color="0.3", ls=style, lw=0.8)
        for name in GREAT_VESSELS:
            if name in tree.names:
                o = ostium(tree, name)
                ax.plot([o @ h], [o @ v], "o", ms=3.5, color="k")
    ax.set_aspect("equal")
    ax.set_xlabel(f"{_axis_name(h, view, lao_deg)} (mm)")
    ax.set_ylabel("z, cranial (mm)")


def _axis_name(h: FloatArray, view: str, lao_deg: float) -> str:
    if view == "coronal":
        return "x, patient left"
    if view == "sagittal":
        return "y, posterior"
    return f"LAO {lao_deg:g}: x cos + y sin"


def plot_archetypes(trees: Sequence[tuple[str, VesselTree]], path: str | Path) -> Path:
    """The archetype figure: each tree whole (coronal) above its arch (LAO 45 with the type levels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(trees), figsize=(3.6 * len(trees), 9.0), gridspec_kw={"height_ratios": [1.6, 1]})
    axes = np.atleast_2d(axes).reshape(2, len(trees))
    arch_names = ("ascending_aorta", "aortic_arch", *GREAT_VESSELS, "right_subclavian", "right_common_carotid")
    for k, (title, tree) in enumerate(trees):
        plot_anatomy(tree, axes[0, k], view="coronal", labels=True)
        axes[0, k].set_title(title, fontsize=10)
        present = [n for n in arch_names if n in tree.names]
        plot_anatomy(tree, axes[1, k], view="lao", branches=present, arch_lines=True, labels=True)
        lv = arch_levels(tree)
        axes[1, k].set_ylim(lv.z_inner_mm - 60.0, lv.z_outer_mm + 70.0)
        axes[1, k].set_title("arch, LAO 45: outer (--) / inner (:) curvature", fontsize=8)
        for ax in axes[:, k]:
            ax.tick_params(labelsize=7)
            ax.xaxis.label.set_size(7)
            ax.yaxis.label.set_size(7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
