"""Pictures of the catheter-world imaging: a fluoroscopy frame, an angiogram, a DSA frame and a tip-camera strip.

:func:`write_imaging_figures` is what ``ir-robot sim catheter`` (and the docs) call: it takes the
scene as plain tubes and rods (defaults: the hand-made aorta of :mod:`.demo_scene`) and writes
PNGs (grey images as 8-bit grey, the tip camera as RGB).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from ir_robot.sim.imaging.carm import CArmParams
from ir_robot.sim.imaging.demo_scene import demo_valve, demo_vessels, demo_wire
from ir_robot.sim.imaging.fluoroscopy import FluoroscopyParams, FluoroscopyRenderer, dsa_display
from ir_robot.sim.imaging.scene_inputs import RadiopaqueRod, ValveRing, VesselTube
from ir_robot.sim.imaging.tip_camera import TipCameraParams, TipCameraRenderer

U8 = NDArray[np.uint8]

#: the tip-camera strip: (caption, surface, normal force N)
TIP_STRIP = (("free (blood)", "blood", 0.0), ("tissue 0.1 N", "tissue", 0.1), ("tissue 0.5 N", "tissue", 0.5),
             ("valve 0.3 N", "valve", 0.3), ("valve 1.5 N", "valve", 1.5))  # fmt: skip


def _caption(img: U8, text: str) -> U8:
    """``img`` (grey or RGB) with ``text`` written in its top-left corner."""
    out = np.ascontiguousarray(img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2))
    scale = max(out.shape[0] / 512.0, 0.35)
    cv2.putText(
        out, text, (6, int(22 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 0), 1, cv2.LINE_AA
    )
    return out


def write_imaging_figures(
    out_dir: str | Path,
    seed: int = 0,
    vessels: Sequence[VesselTube] | None = None,
    valve: ValveRing | None = None,
    instruments: Sequence[RadiopaqueRod] | None = None,
    carm: CArmParams | None = None,
    fluoroscopy: FluoroscopyParams | None = None,
    tip_camera: TipCameraParams | None = None,
) -> dict[str, Path]:
    """Write fluoroscopy.png, angiogram.png, dsa.png, fluoroscopy_panel.png and tip_camera_strip.png to ``out_dir``.

    Without a scene the demo aorta (with its valve ring and a guidewire in the arch) is used. The
    angiogram fills every vessel with contrast; the DSA subtracts the contrast-free mask frame.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if vessels is None:
        vessels = demo_vessels()
        valve = demo_valve() if valve is None else valve
    if instruments is None:
        instruments = [demo_wire(0.93)]
    if carm is None:
        carm = CArmParams(lao_deg=30.0, isocentre_mm=(5.0, 30.0, 20.0))
    r = FluoroscopyRenderer(fluoroscopy, carm, seed=seed)
    r.set_anatomy(vessels, valve)
    mask_frame = r.render(instruments)
    angio = r.render(instruments, contrast=1.0)
    dsa = dsa_display(r.dsa(angio, mask_frame))
    paths = {
        "fluoroscopy": out / "fluoroscopy.png",
        "angiogram": out / "angiogram.png",
        "dsa": out / "dsa.png",
        "fluoroscopy_panel": out / "fluoroscopy_panel.png",
        "tip_camera_strip": out / "tip_camera_strip.png",
    }
    cv2.imwrite(str(paths["fluoroscopy"]), mask_frame.image)
    cv2.imwrite(str(paths["angiogram"]), angio.image)
    cv2.imwrite(str(paths["dsa"]), dsa)
    panel = np.hstack(
        [
            _caption(mask_frame.image, f"fluoroscopy LAO {carm.lao_deg:g}"),
            _caption(angio.image, "angiogram"),
            _caption(dsa, "DSA"),
        ]
    )
    cv2.imwrite(str(paths["fluoroscopy_panel"]), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    cam = TipCameraRenderer(tip_camera, seed=seed)
    tiles = [_caption(cam.render(surface, force).image, text) for text, surface, force in TIP_STRIP]
    cv2.imwrite(str(paths["tip_camera_strip"]), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))
    return paths


if __name__ == "__main__":  # python -m ir_robot.sim.imaging.figures OUT_DIR [SEED]
    import sys

    for name, path in write_imaging_figures(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0).items():
        print(f"{name}: {path}")
