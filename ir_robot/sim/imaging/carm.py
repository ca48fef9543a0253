"""C-arm cone-beam geometry: LAO/RAO and cranial/caudal angles -> source, detector and a 3x4 projection matrix.

Patient frame (mm): DICOM LPS, +x patient left, +y posterior, +z cranial. At LAO 0 / cranial 0
the source is posterior (under the table) and the detector anterior (an AP view); image columns
run to the patient's left (+x), rows run caudally (-z), as a radiologist reads an AP image (the
patient seen from the front: a mirror of a camera at the source, so the rotation rows (u, v, view)
have determinant -1). Positive ``lao_deg`` swings the detector towards the patient's left
(negative = RAO); positive ``cranial_deg`` tilts it towards the head (negative = caudal).

Pixel (col, row) centres sit at integer coordinates; the projection matrix ``P = K [R | -R s]``
maps a homogeneous patient point to ``(col * w, row * w, w)`` with ``w`` its depth from the source
along the central ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.sim.imaging.checks import check_ranges

F64 = NDArray[np.float64]

#: mechanical range of the C-arm (deg): LAO/RAO and cranial/caudal
LAO_RANGE_DEG = (-120.0, 120.0)
CRANIAL_RANGE_DEG = (-50.0, 50.0)


@dataclass(frozen=True)
class CArmParams:
    """C-arm pose and cone-beam geometry: angles, isocentre, distances, detector size and pixels."""

    lao_deg: float = param(0.0, range=LAO_RANGE_DEG, unit="deg", help="LAO (+) / RAO (-) angle")
    cranial_deg: float = param(0.0, range=CRANIAL_RANGE_DEG, unit="deg", help="cranial (+) / caudal (-) angle")
    isocentre_mm: tuple[float, float, float] = param(
        (0.0, 0.0, 0.0), range=(-2000.0, 2000.0), unit="mm", help="isocentre in the patient frame (table position)"
    )
    source_to_isocentre_mm: float = param(750.0, range=(300.0, 1500.0), unit="mm")
    source_to_detector_mm: float = param(1200.0, range=(500.0, 2000.0), unit="mm")
    detector_size_mm: tuple[float, float] = param((300.0, 300.0), range=(50.0, 600.0), unit="mm", help="(H, W)")
    size_px: tuple[int, int] = param((512, 512), range=(1, 4096), unit="px", help="(H, W) detector pixels")

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.source_to_detector_mm <= self.source_to_isocentre_mm:
            raise ConfigError(
                f"CArmParams.source_to_detector_mm: value {self.source_to_detector_mm!r} must exceed "
                f"source_to_isocentre_mm ({self.source_to_isocentre_mm!r}): the detector lies beyond the isocentre"
            )


class CArmGeometry:
    """The cone-beam geometry of one C-arm pose: source position, detector axes, projection matrix, pixel rays."""

    def __init__(self, params: CArmParams):
        self.params = params
        a = math.radians(params.lao_deg)
        c = math.radians(params.cranial_deg)
        #: unit central ray, source -> detector
        self.view_dir = np.array([math.sin(a) * math.cos(c), -math.cos(a) * math.cos(c), math.sin(c)])
        #: detector column (u) and row (v) axes
        self.u_axis = np.array([math.cos(a), math.sin(a), 0.0])
        self.v_axis = np.cross(self.u_axis, self.view_dir)
        iso = np.asarray(params.isocentre_mm, dtype=np.float64)
        self.source_mm = iso - params.source_to_isocentre_mm * self.view_dir
        h, w = params.size_px
        self.shape = (int(h), int(w))
        self.pitch_mm = (params.detector_size_mm[0] / h, params.detector_size_mm[1] / w)
        sdd = params.source_to_detector_mm
        self.focal_px = (sdd / self.pitch_mm[1], sdd / self.pitch_mm[0])  # (fx along cols, fy along rows)
        self.centre_px = ((w - 1) / 2.0, (h - 1) / 2.0)
        rot = np.stack([self.u_axis, self.v_axis, self.view_dir])
        k = np.array(
            [[self.focal_px[0], 0.0, self.centre_px[0]], [0.0, self.focal_px[1], self.centre_px[1]], [0.0, 0.0, 1.0]]
        )
        self.rotation = rot
        self.projection = k @ np.hstack([rot, (-rot @ self.source_mm)[:, None]])
        #: pixel size projected to the isocentre plane (mm), for the dose-area product
        mag = sdd / params.source_to_isocentre_mm
        self.pixel_area_at_isocentre_mm2 = (self.pitch_mm[0] / mag) * (self.pitch_mm[1] / mag)

    def project(self, points_mm: F64) -> tuple[F64, F64]:
        """Pixel coordinates (M, 2) as (col, row) and depth from the source along the central ray (M,) mm."""
        p = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        hom = p @ self.projection[:, :3].T + self.projection[:, 3]
        depth = hom[:, 2]
        return hom[:, :2] / depth[:, None], depth

    def pixel_rays(self, rows: slice | None = None, cols: slice | None = None) -> F64:
        """Unit ray directions (h, w, 3) from the source through the given pixel centres."""
        h, w = self.shape
        rs = np.arange(h, dtype=np.float64)[rows if rows is not None else slice(None)]
        cs = np.arange(w, dtype=np.float64)[cols if cols is not None else slice(None)]
        sdd = self.params.source_to_detector_mm
        du = (cs - self.centre_px[0]) * self.pitch_mm[1]
        dv = (rs - self.centre_px[1]) * self.pitch_mm[0]
        d = (
            sdd * self.view_dir[None, None, :]
            + du[None, :, None] * self.u_axis[None, None, :]
            + dv[:, None, None] * self.v_axis[None, None, :]
        )
        out: F64 = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return out
