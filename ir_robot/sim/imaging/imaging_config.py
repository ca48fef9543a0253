"""The catheter-world imaging settings as one typed config: C-arm, fluoroscopy, body background, tip camera.

``config/catheter_imaging.yaml`` holds the defaults; every section is optional and every field
is checked against its range (one :class:`~ir_robot.core.errors.ConfigError` naming the file, the
field and the allowed range).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ir_robot.config import load, param
from ir_robot.sim.imaging.body_background import BodyParams
from ir_robot.sim.imaging.carm import CArmParams
from ir_robot.sim.imaging.fluoroscopy import FluoroscopyParams, FluoroscopyRenderer
from ir_robot.sim.imaging.tip_camera import TipCameraParams, TipCameraRenderer


@dataclass(frozen=True)
class ImagingConfig:
    """All imaging parameters of the catheter world (each section defaults to its dataclass defaults)."""

    carm: CArmParams = param(default_factory=CArmParams, help="C-arm pose and cone-beam geometry")
    fluoroscopy: FluoroscopyParams = param(default_factory=FluoroscopyParams, help="exposure, detector, display")
    body: BodyParams = param(default_factory=BodyParams, help="trunk, spine, ribs")
    tip_camera: TipCameraParams = param(default_factory=TipCameraParams, help="tip camera optics and contact")


def load_imaging_config(path: str | Path, section: str | None = None) -> ImagingConfig:
    """Read an :class:`ImagingConfig` from YAML (optionally from one top-level ``section`` of a larger file)."""
    return load(path, ImagingConfig, section=section)


def renderers_from_config(config: ImagingConfig, seed: int = 0) -> tuple[FluoroscopyRenderer, TipCameraRenderer]:
    """The fluoroscopy and tip-camera renderers a world builds from its config (seeded independently)."""
    fluoro = FluoroscopyRenderer(config.fluoroscopy, config.carm, config.body, seed=seed)
    tip = TipCameraRenderer(config.tip_camera, seed=seed + 1)
    return fluoro, tip
