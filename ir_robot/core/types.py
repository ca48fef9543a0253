"""Frozen value types shared by sim, devices, perception, planning, control and ros.

Conventions
-----------
* Lengths are millimetres and angles radians unless a name says otherwise
  (``*_mm``, ``*_rad``, ``*_deg``, ``*_n`` for newtons, ``*_s`` for seconds).
* The *phantom frame*: origin on the skin surface at the centre of the block,
  x along the arm (block length), y across it, z up; tissue is at z < 0 and
  ``depth_mm = -z``. The *world frame* equals the phantom frame when the
  phantom has not moved; phantom motion is an offset ``p_world = p_phantom + offset(t)``.
* Images are row-major ``(H, W)``; pixel coordinates are ``(row, col)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: Rig joints, in the order used by arrays. Units: mm for prismatic, rad for revolute.
JOINT_NAMES: tuple[str, ...] = ("x_mm", "y_mm", "z_mm", "pitch_rad", "insert_mm", "probe_yaw_rad", "roll_rad")
#: length of a joint vector as an array
N_JOINTS = len(JOINT_NAMES)
#: probe footprint ahead of the needle pivot on the rig (urdf/ir_rig.urdf, joint probe_mount_fixed)
PROBE_OFFSET_MM = 12.0

#: Perception label codes (ultrasound uses all four, NIR uses background/vein).
LABEL_BACKGROUND = 0
LABEL_VEIN = 1
LABEL_ARTERY = 2
LABEL_NEEDLE = 3
#: "don't care" pixels (Cityscapes-style void): excluded from training losses and from Dice.
#: NIR uses it for arteries (one NIR wavelength cannot tell arterial from venous blood; the
#: artery/vein decision is the ultrasound's) and for veins whose apparent contrast is in the
#: ambiguous band just below the labelling threshold.
LABEL_IGNORE = 255
LABEL_NAMES: tuple[str, ...] = ("background", "vein", "artery", "needle")


class Tissue(enum.IntEnum):
    """What a point of the phantom is made of (the needle-tip ground truth)."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    VESSEL_WALL = 4
    VEIN_LUMEN = 5
    ARTERY_LUMEN = 6


@dataclass(frozen=True)
class JointVector:
    """One value per rig joint. Used for positions (mm, rad) and for rates (mm/s, rad/s).

    ``x_mm, y_mm, z_mm``: needle pivot (the point the needle rotates about) in the
    world frame. ``pitch_rad``: needle angle below horizontal. ``insert_mm``: travel
    along the needle axis from the pivot; the tip is at
    ``pivot + insert_mm * (cos(pitch), 0, -sin(pitch))``. ``probe_yaw_rad``: 0 gives
    a longitudinal ultrasound image (in the needle plane), pi/2 a transverse one.
    ``roll_rad``: the tool turned about its own axis.

    The catheter rig (``urdf/catheter_rig.urdf``) drives two of them: ``insert_mm`` is the
    instrument's travel through the access sheath and ``roll_rad`` its rotation at the hub; its
    other joints are fixed. The venipuncture rig holds ``roll_rad`` fixed at 0. One joint vector
    for both rigs keeps one rig interface and one safety layer.
    """

    x_mm: float = 0.0
    y_mm: float = 0.0
    z_mm: float = 0.0
    pitch_rad: float = 0.0
    insert_mm: float = 0.0
    probe_yaw_rad: float = 0.0
    roll_rad: float = 0.0

    def as_array(self) -> np.ndarray:
        """The joints as a float array in ``JOINT_NAMES`` order."""
        return np.array([getattr(self, n) for n in JOINT_NAMES], dtype=float)

    @classmethod
    def from_array(cls, values: ArrayLike) -> JointVector:
        """A JointVector from one value per joint in ``JOINT_NAMES`` order (a clear error for any other count)."""
        arr = np.asarray(values, dtype=float).reshape(-1)
        if arr.shape != (len(JOINT_NAMES),):
            raise ValueError(f"JointVector needs {len(JOINT_NAMES)} values {JOINT_NAMES}, got shape {arr.shape}")
        return cls(*(float(v) for v in arr))

    def replace(self, **changes: float) -> JointVector:
        """A copy with the named joints changed (an unknown joint name is an error, not ignored)."""
        unknown = set(changes) - set(JOINT_NAMES)
        if unknown:
            raise KeyError(f"unknown joint(s) {sorted(unknown)}; joints are {JOINT_NAMES}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: float(v) for k, v in changes.items()})
        return JointVector(**values)


def needle_direction(pitch_rad: float) -> np.ndarray:
    """Unit vector of needle travel for a pitch below horizontal (inserting towards +x)."""
    return np.array([np.cos(pitch_rad), 0.0, -np.sin(pitch_rad)])


@dataclass(frozen=True)
class RigCommand:
    """A joint-rate command (mm/s, rad/s) to hold for ``duration_s`` or until the next one.

    Every backend treats a command as valid for at most ``duration_s``; the safety
    watchdog stops the rig if no new command arrives in time.
    """

    velocity: JointVector = field(default_factory=JointVector)
    duration_s: float = 0.1

    @staticmethod
    def stop() -> RigCommand:
        """The zero-velocity command: hold still."""
        return RigCommand(JointVector(), 0.0)


@dataclass(frozen=True)
class RigState:
    """What any rig backend reports: joints, measured needle force and status."""

    stamp_s: float
    joints: JointVector
    velocity: JointVector
    force_n: float
    moving: bool = False
    status: str = "idle"  # idle | moving | hold | alarm | estop
    message: str = ""


@dataclass(frozen=True)
class ProbePose:
    """Ultrasound probe footprint on the skin (world frame). yaw 0: image lateral axis = +x."""

    x_mm: float
    y_mm: float
    yaw_rad: float = 0.0


@dataclass(frozen=True)
class NirView:
    """Top-down NIR camera footprint: centre (world frame) and square field of view.

    Pixel (row, col) of an HxW image sees x = x_mm + (col - W/2 + 0.5) * s,
    y = y_mm + (row - H/2 + 0.5) * s with s = fov_mm / W.
    """

    x_mm: float = 0.0
    y_mm: float = 0.0
    fov_mm: float = 50.0


@dataclass(frozen=True)
class NeedlePose:
    """Needle as a segment in the world frame: the tip, a unit direction of travel, a diameter."""

    tip_mm: tuple[float, float, float]
    direction: tuple[float, float, float]
    diameter_mm: float = 0.9  # 20 G
    length_mm: float = 40.0  # shaft length behind the tip that can appear in images


@dataclass(frozen=True, eq=False)
class ImageFrame:
    """One synthetic or captured image with its ground truth (when known).

    ``image``: uint8 (H, W). ``labels``: uint8 (H, W) of LABEL_* codes or None for
    real images. ``spacing_mm``: (row, col) size of a pixel. ``tip_px``: needle tip
    (row, col) if a needle is in the image. ``vessel_centres_px`` and
    ``vessel_depths_mm``: per visible vessel, in the order of ``vessel_kinds``.
    """

    modality: str
    image: np.ndarray
    spacing_mm: tuple[float, float]
    stamp_s: float = 0.0
    labels: np.ndarray | None = None
    tip_px: tuple[float, float] | None = None
    vessel_centres_px: tuple[tuple[float, float], ...] = ()
    vessel_depths_mm: tuple[float, ...] = ()
    vessel_kinds: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the image in pixels."""
        return self.image.shape[:2]


@dataclass(frozen=True)
class Observation:
    """Images available to the controller at one tick (None: not taken this tick)."""

    us: ImageFrame | None = None
    nir: ImageFrame | None = None
