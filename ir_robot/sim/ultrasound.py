"""Synthetic B-mode ultrasound from the analytic phantom, with exact ground truth.

Geometry (all poses in the WORLD frame)
---------------------------------------
The probe footprint centre ``(probe.x_mm, probe.y_mm)`` sits on the skin plane z = 0.
The lateral image axis is ``u = (cos yaw, sin yaw, 0)``, the beam goes down ``-z``.
Pixel ``(r, c)`` of an HxW image is the world point::

    probe + (c - W/2 + 0.5) * sx * u + (0, 0, -(r + 0.5) * sy),   sx = width_mm / W, sy = depth_mm / H

``yaw = 0`` gives a longitudinal image (the needle plane when the needle pitches in
x-z); ``yaw = pi/2`` a transverse one (vessels appear as ellipses). The image plane
normal is ``n = (-sin yaw, cos yaw, 0)``; the beam has an elevation (slab) thickness
``elevation_mm`` about it.

Model (per frame, no per-pixel Python loops)
--------------------------------------------
1. Tissue map of the pixel grid, exactly :meth:`Phantom.tissue_at` of the grid points
   (checked by the tests) but evaluated separably: layers per row, vessel centrelines
   per column, elliptical distances only inside each vessel's bounding box.
2. Echogenicity per tissue: bright dermis band, dark fat lobules with bright septa,
   hypoechoic muscle with striations (long fibres in a longitudinal section, flecks
   and perimysium in a transverse one, blended with the probe yaw), bright fascia at
   the fat/muscle boundary, bright vessel walls (strongest where the beam hits them
   at normal incidence), near-anechoic lumens. The structure textures are periodic
   fields made at construction and anchored to the probe position in the phantom,
   so tissue structure moves coherently with the probe and with phantom motion.
3. Blur by the point-spread function (axial FWHM ``pulse_cycles * wavelength / 2``,
   lateral FWHM ``f_number * wavelength``, wavelength = 1.54 mm / frequency_MHz), then
   multiplicative speckle: envelope of complex Gaussian scatterers (density
   ``speckle_density`` per mm^2) filtered by the same PSF, i.e. Rayleigh statistics
   in fully developed speckle, averaged over ``compounding`` independent patterns
   (spatial compounding). A bank of such periodic fields is made at construction;
   each frame takes a random field, offset and flip from the ``rng`` passed in.
4. Round-trip attenuation ``attenuation_db_per_cm_mhz * f * 2 * depth``, posterior
   acoustic enhancement below lumens (fluid attenuates less), refraction shadows
   below the lateral vessel walls (grazing incidence) and the needle's acoustic
   shadow, as a cumulative extra attenuation down each beam line (blurred by the
   lateral PSF), electronic noise, then TGC (``tgc_db_per_cm``), gain, and log
   compression to ``dynamic_range_db`` (:data:`REFERENCE_DB` sets the white level).
5. Needle: the part of the shaft under the skin and within ``elevation_mm / 2 +
   radius`` of the image plane is projected into the image; it is labelled, drawn
   bright (specular: brightness falls with the angle between needle and skin plane,
   ``exp(-(angle / needle_specular_width_deg)^2)`` above a diffuse floor, and with
   the elevation beam profile), with a reverberation comet tail (echoes every
   needle diameter, decaying by ``needle_reverb_decay``) and an acoustic shadow
   below. An out-of-plane needle crossing the slab shows only its cross-section
   dot; ``tip_px`` is given only when the tip itself is under the skin, within the
   slab and inside the image.

Ground truth in the returned :class:`ImageFrame`: ``labels`` (vein/artery lumen in the
centre plane, needle), ``tip_px``, per-vessel ``vessel_centres_px`` /
``vessel_depths_mm`` (centre depth below the skin) / ``vessel_kinds``. A vessel that
crosses the plane at more than 30 degrees is reported where its centreline meets the
plane (if inside the image); one running along the plane (e.g. a longitudinal view) is
reported at the image centre column, and only if the plane cuts its lumen there.
``meta``: ``probe``, ``params`` (all fields), ``params_name``, ``seed``, ``speckle_crop``
(bank, row, col, flip drawn from the rng), ``phantom``, ``phantom_offset_mm``,
``needle_visible`` and, when visible, ``needle_angle_deg`` (direction of travel in the
image: 0 = towards +col, positive = going deeper) and ``needle_tilt_deg`` (to the skin).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.config import param, to_dict
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import (
    LABEL_ARTERY,
    LABEL_NEEDLE,
    LABEL_VEIN,
    ImageFrame,
    NeedlePose,
    ProbePose,
    Tissue,
)
from ir_robot.sim.imaging_common import (
    PeriodicBank,
    check_rng,
    check_size,
    cv_float32,
    periodic_noise,
    ridge_lines,
    sample_params,
    speckle_envelope,
)
from ir_robot.sim.phantom import Phantom

#: speed of sound (mm/us): wavelength_mm = SOUND_MM_PER_US / frequency_mhz
SOUND_MM_PER_US = 1.54
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_DB = 20.0 / math.log(10.0)  # natural log -> dB
#: envelope level (dB re echogenicity 1) shown white at 0 dB gain and TGC: sets the overall brightness
REFERENCE_DB = 16.0


@dataclass(frozen=True)
class UltrasoundParams:
    """B-mode imaging parameters. Every field can be randomised (:func:`sample_ultrasound_params`)."""

    size_px: tuple[int, int] = param((256, 256), range=(16, 4096), unit="px", help="(H, W)")
    width_mm: float = param(30.0, range=(5.0, 120.0), unit="mm", help="lateral field of view (columns)")
    depth_mm: float = param(30.0, range=(5.0, 120.0), unit="mm", help="imaging depth (rows); row 0 = skin")
    frequency_mhz: float = param(7.5, range=(2.0, 20.0), unit="MHz", help="sets PSF size and attenuation")
    pulse_cycles: float = param(3.0, range=(1.0, 6.0), help="pulse length: axial FWHM = cycles * wavelength / 2")
    f_number: float = param(3.5, range=(1.0, 8.0), help="lateral FWHM = f_number * wavelength")
    gain_db: float = param(0.0, range=(-30.0, 30.0), unit="dB")
    dynamic_range_db: float = param(50.0, range=(20.0, 100.0), unit="dB")
    attenuation_db_per_cm_mhz: float = param(0.5, range=(0.1, 1.5), unit="dB/cm/MHz", help="soft tissue, one way")
    tgc_db_per_cm: float = param(6.0, range=(0.0, 40.0), unit="dB/cm", help="time-gain compensation")
    speckle_density: float = param(60.0, range=(1.0, 1000.0), unit="1/mm^2", help="scatterers per mm^2 of image")
    compounding: int = param(2, range=(1, 9), help="independent speckle patterns averaged (spatial compounding)")
    elevation_mm: float = param(1.0, range=(0.2, 5.0), unit="mm", help="beam slab thickness (FWHM)")
    skin_echo: float = param(0.55, range=(0.0, 3.0), help="dermis echogenicity (linear envelope)")
    fat_echo: float = param(0.035, range=(0.0, 3.0))
    septa_strength: float = param(0.35, range=(0.0, 3.0), help="fat septa brightness")
    muscle_echo: float = param(0.05, range=(0.0, 3.0))
    striation_strength: float = param(0.35, range=(0.0, 3.0), help="muscle fibre/perimysium brightness")
    fascia_strength: float = param(0.9, range=(0.0, 5.0), help="fat/muscle fascia line brightness")
    wall_echo: float = param(0.7, range=(0.0, 5.0), help="vessel wall echogenicity at normal incidence")
    lumen_echo: float = param(0.002, range=(0.0, 0.5), help="blood echogenicity")
    posterior_enhancement_db_per_mm: float = param(
        2.0, range=(0.0, 6.0), unit="dB/mm", help="less attenuation per mm of lumen on the beam path"
    )
    edge_shadow_db: float = param(
        8.0, range=(0.0, 30.0), unit="dB", help="refraction shadow below the lateral vessel walls"
    )
    reverb_strength: float = param(0.25, range=(0.0, 1.0), help="near-field reverberation of the skin echo")
    needle_brightness: float = param(8.0, range=(0.0, 20.0), help="needle echo at normal incidence")
    needle_specular_width_deg: float = param(
        28.0, range=(5.0, 90.0), unit="deg", help="angle scale of the specular falloff"
    )
    needle_diffuse: float = param(0.06, range=(0.0, 1.0), help="needle echo floor at steep angles")
    needle_reverb_decay: float = param(0.35, range=(0.0, 0.95), help="comet-tail decay per echo")
    needle_reverb_count: int = param(4, range=(0, 30), help="comet-tail echoes drawn")
    needle_shadow_db: float = param(14.0, range=(0.0, 60.0), unit="dB", help="attenuation behind the shaft")
    noise_level: float = param(0.004, range=(0.0, 0.5), help="electronic noise (linear envelope)")
    name: str = param("default", help="label echoed in frame meta")

    def __post_init__(self) -> None:
        check_size(self.size_px, "UltrasoundParams")

    @property
    def wavelength_mm(self) -> float:
        """Acoustic wavelength in tissue (mm) at the centre frequency: sets the PSF size."""
        return SOUND_MM_PER_US / self.frequency_mhz

    @property
    def psf_fwhm_mm(self) -> tuple[float, float]:
        """(axial, lateral) FWHM of the point-spread function."""
        lam = self.wavelength_mm
        return self.pulse_cycles * lam / 2.0, self.f_number * lam


#: domain-randomisation ranges of :func:`sample_ultrasound_params` (plausible scanners and presets)
US_RANDOM_RANGES: dict[str, tuple[float, float]] = {
    "frequency_mhz": (5.0, 12.0),
    "pulse_cycles": (2.0, 4.0),
    "f_number": (2.5, 4.5),
    "gain_db": (-6.0, 6.0),
    "dynamic_range_db": (40.0, 60.0),
    "attenuation_db_per_cm_mhz": (0.35, 0.75),
    "tgc_db_per_cm": (3.0, 9.0),
    "speckle_density": (15.0, 150.0),
    "compounding": (2, 4),
    "elevation_mm": (0.6, 1.8),
    "skin_echo": (0.35, 0.9),
    "fat_echo": (0.025, 0.09),
    "septa_strength": (0.15, 0.6),
    "muscle_echo": (0.03, 0.09),
    "striation_strength": (0.12, 0.5),
    "fascia_strength": (0.4, 1.5),
    "wall_echo": (0.35, 1.2),
    "lumen_echo": (0.0005, 0.006),
    "posterior_enhancement_db_per_mm": (0.3, 1.8),
    "reverb_strength": (0.05, 0.5),
    "edge_shadow_db": (0.0, 12.0),
    "needle_brightness": (4.0, 12.0),
    "needle_specular_width_deg": (18.0, 40.0),
    "needle_diffuse": (0.03, 0.12),
    "needle_reverb_decay": (0.2, 0.55),
    "needle_reverb_count": (2, 7),
    "needle_shadow_db": (6.0, 22.0),
    "noise_level": (0.001, 0.012),
}


def sample_ultrasound_params(rng: np.random.Generator, **overrides: Any) -> UltrasoundParams:
    """Random but plausible imaging parameters (ranges in :data:`US_RANDOM_RANGES`); ``overrides`` fix fields."""
    return sample_params(UltrasoundParams, rng, US_RANDOM_RANGES, overrides)


#: one vessel's ROI in an image: (vessel index, row slice, col slice, wall mask, lumen mask, wall-normal share)
_VesselRoi = tuple[int, slice, slice, NDArray[np.bool_], NDArray[np.bool_], NDArray[np.float64]]


@dataclass(frozen=True)
class _Needle2D:
    """The needle in one image: projected visible segment and what is needed to draw it."""

    a_mm: NDArray[np.float64]  # (lateral, depth) of the visible segment's end nearest the tip
    b_mm: NDArray[np.float64]  # other end
    s_a: float
    s_b: float
    e0: float  # out-of-plane distance of the tip
    en: float  # d(out-of-plane)/d(s)
    angle_deg: float  # in-image angle of travel (0 = towards +col, positive = going deeper)
    tilt_deg: float  # needle angle to the skin plane
    tip_px: tuple[float, float] | None


class UltrasoundRenderer:
    """B-mode renderer. Construction precomputes the speckle bank, textures and depth maps.

    ``seed`` fixes the precomputed textures; per-frame randomness (which speckle crop)
    comes only from the ``rng`` passed to :meth:`render`. Same params, seed and rng
    state give identical frames.
    """

    def __init__(self, params: UltrasoundParams = UltrasoundParams(), seed: int = 0):
        if not isinstance(params, UltrasoundParams):
            raise ConfigError(f"UltrasoundRenderer: params must be UltrasoundParams, got {type(params).__name__}")
        self.params = p = params
        self.seed = int(seed)
        H, W = self.shape = check_size(p.size_px, "UltrasoundParams")
        self.sx = p.width_mm / W
        self.sy = p.depth_mm / H
        self.lateral_mm = (np.arange(W) - W / 2 + 0.5) * self.sx  # (W,)
        self.depth_mm = (np.arange(H) + 0.5) * self.sy  # (H,)
        self._wz = -self.depth_mm  # world z of each row
        ax_fwhm, lat_fwhm = p.psf_fwhm_mm
        self.psf_sigma_px = (ax_fwhm * _FWHM_TO_SIGMA / self.sy, lat_fwhm * _FWHM_TO_SIGMA / self.sx)  # (row, col)
        rng = np.random.default_rng(self.seed)
        period = (2 * H, 2 * W)
        self._speckle = PeriodicBank(self._make_speckle(rng, period, n=4), (H, W))
        self._structure = PeriodicBank(self._make_structure(rng, period), (H, W))
        # depth-dependent terms: attenuation (linear, signal only) and TGC + gain (dB, after noise)
        depth_cm = self.depth_mm / 10.0
        atten_db = 2.0 * p.attenuation_db_per_cm_mhz * p.frequency_mhz * depth_cm
        self._atten_row = (10.0 ** (-atten_db / 20.0)).astype(np.float32)[:, None]
        scale = 255.0 / p.dynamic_range_db
        self._log_scale = np.float32(_DB * scale)
        self._row_offset = (
            (p.tgc_db_per_cm * depth_cm + p.gain_db + p.dynamic_range_db - REFERENCE_DB) * scale
        ).astype(np.float32)[:, None]
        self._enh_db_per_px = np.float32(p.posterior_enhancement_db_per_mm * self.sy)
        self._params_dict = to_dict(p)

    # ------------------------------------------------------------------ construction
    def _make_speckle(self, rng: np.random.Generator, shape: tuple[int, int], n: int) -> NDArray[np.float32]:
        """Envelope of PSF-filtered complex Gaussian scatterers, mean 1 (Rayleigh when dense)."""
        p = self.params
        density_px = min(1.0, p.speckle_density * self.sx * self.sy)
        out = np.empty((n, *shape), np.float32)
        sr, sc = self.psf_sigma_px
        for k in range(n):
            out[k] = sum(speckle_envelope(rng, shape, (sr, sc), density_px) for _ in range(p.compounding))
            out[k] /= out[k].mean()
        return out

    def _make_structure(self, rng: np.random.Generator, shape: tuple[int, int]) -> NDArray[np.float32]:
        """Echogenicity textures: [skin, fat, muscle longitudinal, muscle transverse], periodic."""
        p = self.params
        mm_r, mm_c = 1.0 / self.sy, 1.0 / self.sx  # px per mm

        def noise(sr_mm: float, sc_mm: float) -> NDArray[np.float32]:
            return periodic_noise(rng, shape, (sr_mm * mm_r, sc_mm * mm_c))

        skin = p.skin_echo * np.clip(1.0 + 0.3 * noise(0.15, 0.4), 0.2, None)
        lobules = np.clip(1.0 + 0.35 * noise(0.7, 1.5), 0.2, None)
        septa = ridge_lines(noise(0.8, 2.0), 0.25) + 0.3 * ridge_lines(noise(0.5, 0.8), 0.2)
        fat = p.fat_echo * lobules + p.septa_strength * septa
        fibres = ridge_lines(noise(0.25, 3.0), 0.3) * np.clip(1.0 + 0.6 * noise(1.0, 4.0), 0.0, None)
        sheets = ridge_lines(noise(0.8, 12.0), 0.08)  # perimysium / intramuscular fascia
        base = np.clip(1.0 + 0.25 * noise(0.6, 0.6), 0.3, None)
        m_long = p.muscle_echo * base + p.striation_strength * (0.6 * fibres + sheets)
        flecks = np.clip(noise(0.2, 0.3) - 0.8, 0.0, None)
        network = ridge_lines(noise(1.0, 1.2), 0.2)
        m_trans = p.muscle_echo * base + p.striation_strength * (0.9 * flecks + 0.35 * network)
        return np.stack([skin, fat, m_long, m_trans]).astype(np.float32)

    # ------------------------------------------------------------------ geometry helpers
    def grid_world(self, probe: ProbePose) -> NDArray[np.float64]:
        """World coordinates (H, W, 3) of every pixel centre for ``probe`` (the documented mapping)."""
        cu, su = math.cos(probe.yaw_rad), math.sin(probe.yaw_rad)
        H, W = self.shape
        pts = np.empty((H, W, 3))
        pts[..., 0] = probe.x_mm + self.lateral_mm[None, :] * cu
        pts[..., 1] = probe.y_mm + self.lateral_mm[None, :] * su
        pts[..., 2] = self._wz[:, None]
        return pts

    def world_to_pixel(
        self, points_world: ArrayLike, probe: ProbePose
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(row, col, out_of_plane_mm) of world points (..., 3) for ``probe``; float, not clipped."""
        p = np.asarray(points_world, dtype=float)
        cu, su = math.cos(probe.yaw_rad), math.sin(probe.yaw_rad)
        dx, dy = p[..., 0] - probe.x_mm, p[..., 1] - probe.y_mm
        lat = dx * cu + dy * su
        off = -dx * su + dy * cu
        W = self.shape[1]
        return -p[..., 2] / self.sy - 0.5, lat / self.sx + W / 2 - 0.5, off

    def tissue_map(self, phantom: Phantom, probe: ProbePose, t_s: float) -> NDArray[np.uint8]:
        """:class:`Tissue` code of every pixel centre, equal to ``phantom.tissue_at`` of the grid."""
        return self._geometry(phantom, probe, t_s)[0]

    def _geometry(
        self, phantom: Phantom, probe: ProbePose, t_s: float
    ) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.bool_], list[_VesselRoi], NDArray[np.float64]]:
        """Tissue map plus per-vessel ROI masks, evaluated separably (rows x columns)."""
        H, W = self.shape
        off = phantom.offset_mm(t_s)
        cu, su = math.cos(probe.yaw_rad), math.sin(probe.yaw_rad)
        # same float operations as grid_world() followed by Phantom.to_phantom()
        px = (probe.x_mm + self.lateral_mm * cu) - off[0]
        py = (probe.y_mm + self.lateral_mm * su) - off[1]
        pz = self._wz - off[2]
        depth = -pz
        b1, b2 = phantom.boundaries_mm
        row_t = np.full(H, int(Tissue.MUSCLE), np.uint8)
        row_t[depth < b2] = Tissue.FAT
        row_t[depth < b1] = Tissue.SKIN
        row_t[depth < 0] = Tissue.AIR
        blk = phantom.spec.block
        row_out = depth > blk.height_mm
        col_out = (np.abs(px) > blk.length_mm / 2) | (np.abs(py) > blk.width_mm / 2)
        row_t[row_out] = Tissue.AIR
        tissue = np.repeat(row_t[:, None], W, axis=1)

        spec_v = phantom.spec.vessels
        a = phantom.radius_mm(t_s)
        b = a * np.array([v.compression for v in spec_v])
        wall = np.array([v.wall_thickness_mm for v in spec_v])
        yc, zc = phantom.centreline(px)  # (W, n)
        rois: list[_VesselRoi] = []
        for i in range(len(spec_v)):
            aw, bw = a[i] + wall[i], b[i] + wall[i]
            dyw = (py - yc[:, i]) / aw
            cols = np.flatnonzero(np.abs(dyw) < 1.0)
            if cols.size == 0:
                continue
            c0, c1 = cols[0], cols[-1] + 1
            zlo, zhi = zc[c0:c1, i].min() - bw, zc[c0:c1, i].max() + bw
            rows = np.flatnonzero((pz > zlo) & (pz < zhi) & ~row_out)
            if rows.size == 0:
                continue
            r0, r1 = rows[0], rows[-1] + 1
            dzw = (pz[r0:r1, None] - zc[None, c0:c1, i]) / bw
            dy_w = dyw[None, c0:c1]
            in_wall = (dy_w * dy_w + dzw * dzw) < 1.0
            dy = (py[None, c0:c1] - yc[None, c0:c1, i]) / a[i]
            dz = (pz[r0:r1, None] - zc[None, c0:c1, i]) / b[i]
            in_lumen = (dy * dy + dz * dz) < 1.0
            # share of the wall normal along the beam: specular walls are brightest at normal incidence
            gz, gy = dzw / bw, dy_w / aw
            normal_z2 = gz * gz / (gz * gz + gy * gy + 1e-12)
            rois.append((i, slice(r0, r1), slice(c0, c1), in_wall, in_lumen, normal_z2))
        for _, rs, cs, in_wall, _, _ in rois:
            tissue[rs, cs][in_wall] = Tissue.VESSEL_WALL
        for i, rs, cs, _, in_lumen, _ in rois:
            tissue[rs, cs][in_lumen] = Tissue.ARTERY_LUMEN if phantom.is_artery[i] else Tissue.VEIN_LUMEN
        tissue[:, col_out] = Tissue.AIR
        return tissue, row_t, col_out, rois, off

    # ------------------------------------------------------------------ needle
    def _needle_2d(self, needle: NeedlePose, probe: ProbePose, off: NDArray[np.float64]) -> _Needle2D | None:
        p = self.params
        T = np.asarray(needle.tip_mm, float)
        D = np.asarray(needle.direction, float)
        norm = float(np.linalg.norm(D))
        if norm < 1e-9:
            raise ConfigError("NeedlePose.direction must be a non-zero vector")
        D = D / norm
        r = needle.diameter_mm / 2
        cu, su = math.cos(probe.yaw_rad), math.sin(probe.yaw_rad)
        rel = T - np.array([probe.x_mm, probe.y_mm, 0.0])
        e0 = -su * rel[0] + cu * rel[1]
        en = -su * D[0] + cu * D[1]  # S(s) = T - s D  ->  e(s) = e0 - s en
        half = p.elevation_mm / 2 + r
        lo, hi = 0.0, float(needle.length_mm)
        if abs(en) < 1e-12:
            if abs(e0) > half:
                return None
        else:
            s1, s2 = (e0 - half) / en, (e0 + half) / en
            lo, hi = max(lo, min(s1, s2)), min(hi, max(s1, s2))
        # under the skin: phantom depth > 0  <=>  S_z(s) = T_z - s D_z < off_z
        if abs(D[2]) < 1e-12:
            if not T[2] < off[2]:
                return None
        else:
            s_skin = (T[2] - off[2]) / D[2]
            if D[2] < 0:
                hi = min(hi, s_skin)
            else:
                lo = max(lo, s_skin)
        if hi < lo:
            return None
        lat0 = cu * rel[0] + su * rel[1]
        lu = cu * D[0] + su * D[1]

        def at(s: float) -> NDArray[np.float64]:
            return np.array([lat0 - s * lu, -(T[2] - s * D[2])])

        tip_px = None
        if lo <= 0.0:
            row, col = -T[2] / self.sy - 0.5, lat0 / self.sx + self.shape[1] / 2 - 0.5
            if -0.5 <= row <= self.shape[0] - 0.5 and -0.5 <= col <= self.shape[1] - 0.5:
                tip_px = (float(row), float(col))
        angle = math.degrees(math.atan2(-D[2], lu))
        tilt = math.degrees(math.asin(min(1.0, abs(D[2]))))
        return _Needle2D(at(lo), at(hi), lo, hi, float(e0), float(en), angle, tilt, tip_px)

    def _draw_needle(
        self, nd: _Needle2D, needle: NeedlePose
    ) -> tuple[slice, slice, NDArray[np.bool_], NDArray[np.float32], NDArray[np.float32]] | None:
        """Needle ROI: (row slice, col slice, label mask, echo, shadow dB per px, tail rows)."""
        p = self.params
        H, W = self.shape
        r = needle.diameter_mm / 2
        r_draw = max(r, 0.5 * math.hypot(self.sx, self.sy))
        sr, sc = self.psf_sigma_px
        spacing = max(1, int(round(needle.diameter_mm / self.sy)))
        n_tail = p.needle_reverb_count if p.needle_reverb_decay > 0 else 0
        pad_r, pad_c = r_draw / self.sy + 3 * sr + 2, r_draw / self.sx + 3 * sc + 2
        rows_mm = (nd.a_mm[1], nd.b_mm[1])
        cols_mm = (nd.a_mm[0], nd.b_mm[0])
        r0 = int(max(0, math.floor(min(rows_mm) / self.sy - 0.5 - pad_r)))
        r1 = int(min(H, math.ceil(max(rows_mm) / self.sy + 0.5 + pad_r + n_tail * spacing)))
        c0 = int(max(0, math.floor(min(cols_mm) / self.sx + W / 2 - 0.5 - pad_c)))
        c1 = int(min(W, math.ceil(max(cols_mm) / self.sx + W / 2 + 0.5 + pad_c)))
        if r1 <= r0 or c1 <= c0:
            return None
        lat = self.lateral_mm[None, c0:c1]
        dep = self.depth_mm[r0:r1, None]
        v = nd.b_mm - nd.a_mm
        vv = float(v @ v)
        qx, qy = lat - nd.a_mm[0], dep - nd.a_mm[1]
        if vv > 1e-12:
            t = np.clip((qx * v[0] + qy * v[1]) / vv, 0.0, 1.0)
        else:
            t = np.zeros(np.broadcast_shapes(qx.shape, qy.shape))
        ex, ey = qx - t * v[0], qy - t * v[1]
        dist = np.sqrt(ex * ex + ey * ey)
        label = dist <= r
        if not label.any():  # thinner than a pixel: label the nearest pixel(s)
            label = dist <= r_draw
        # echo: the specular shaft surfaces (upper one strongest, as the beam meets it first),
        # weak fill inside; weighted by the elevation beam profile at the nearest shaft point
        px_mm = min(self.sx, self.sy)
        line_mm = max(2.0 * px_mm, 0.15)
        surface = np.clip(1.5 - np.abs(dist - r_draw + 0.5 * line_mm) / (0.5 * line_mm), 0.0, 1.0)
        surface *= np.where(ey <= 0.0, np.float32(1.0), np.float32(0.45))
        fill = 0.15 * np.clip((r_draw + 0.5 * px_mm - dist) / px_mm, 0.0, 1.0)
        body = np.maximum(surface, fill)
        s = nd.s_a + t * (nd.s_b - nd.s_a)
        e = nd.e0 - s * nd.en
        beam = np.exp(-4.0 * math.log(2.0) * (e / p.elevation_mm) ** 2)
        spec = p.needle_diffuse + (1.0 - p.needle_diffuse) * math.exp(
            -((nd.tilt_deg / p.needle_specular_width_deg) ** 2)
        )
        echo = (body * beam).astype(np.float32) * np.float32(p.needle_brightness * spec)
        weight = (np.clip((r_draw + 0.5 * px_mm - dist) / px_mm, 0.0, 1.0) * beam).astype(np.float32)
        if n_tail:
            tail = np.zeros_like(echo)
            decay = 1.0
            for k in range(1, n_tail + 1):
                shift = k * spacing
                if shift >= echo.shape[0]:
                    break
                decay *= p.needle_reverb_decay
                tail[shift:] += np.float32(decay) * echo[:-shift]
            echo = echo + tail
        echo = cv_float32(cv2.GaussianBlur(echo, (0, 0), sigmaX=max(sc, 0.3), sigmaY=max(sr, 0.3)))
        shadow = weight * np.float32(p.needle_shadow_db * self.sy / max(needle.diameter_mm, self.sy))
        return slice(r0, r1), slice(c0, c1), label, echo, shadow

    # ------------------------------------------------------------------ vessels for ground truth
    def _vessel_truth(
        self, phantom: Phantom, probe: ProbePose, t_s: float, off: NDArray[np.float64]
    ) -> tuple[tuple[tuple[float, float], ...], tuple[float, ...], tuple[str, ...]]:
        H, W = self.shape
        cu, su = math.cos(probe.yaw_rad), math.sin(probe.yaw_rad)
        ox, oy = probe.x_mm - off[0], probe.y_mm - off[1]
        a = phantom.radius_mm(t_s)
        centres: list[tuple[float, float]] = []
        depths: list[float] = []
        kinds: list[str] = []
        for i in range(phantom.n_vessels):
            cl = functools.partial(_centreline_and_slope, phantom, i)
            y0, z0, dy, dz = cl(ox)
            tnorm = math.sqrt(1.0 + dy * dy + dz * dz)
            crossing = abs(-su + cu * dy) / tnorm >= 0.5  # crosses the plane at >= 30 deg
            if crossing:
                x = ox
                for _ in range(6):  # Newton on f(x) = n . (C(x) - O)
                    y, z, dyx, _ = cl(x)
                    f = -su * (x - ox) + cu * (y - oy)
                    fp = -su + cu * dyx
                    x -= f / fp
                y, z, _, _ = cl(x)
                lat = (x - ox) * cu + (y - oy) * su
            else:
                x, y, z, lat = ox, y0, z0, 0.0
                if abs(cu * (y - oy) - su * (x - ox)) >= a[i]:
                    continue
            row = -(z + off[2]) / self.sy - 0.5
            col = lat / self.sx + W / 2 - 0.5
            if not (-0.5 <= row <= H - 0.5 and -0.5 <= col <= W - 0.5):
                continue
            centres.append((float(row), float(col)))
            depths.append(float(-z))
            kinds.append("artery" if phantom.is_artery[i] else "vein")
        return tuple(centres), tuple(depths), tuple(kinds)

    # ------------------------------------------------------------------ render
    def render(
        self, phantom: Phantom, probe: ProbePose, needle: NeedlePose | None, t_s: float, rng: np.random.Generator
    ) -> ImageFrame:
        """One B-mode frame with labels and ground truth at time ``t_s``."""
        check_rng(rng)
        if not isinstance(phantom, Phantom):
            raise ConfigError(f"render: phantom must be an ir_robot.sim.phantom.Phantom, got {type(phantom).__name__}")
        p = self.params
        H, W = self.shape
        tissue, row_t, col_out, rois, off = self._geometry(phantom, probe, t_s)
        a_lumen = phantom.radius_mm(t_s)

        # ---- echogenicity map (structure textures anchored to the probe position in the phantom)
        cu, su = math.cos(probe.yaw_rad), math.sin(probe.yaw_rad)
        ox, oy = probe.x_mm - off[0], probe.y_mm - off[1]
        along, across = ox * cu + oy * su, -ox * su + oy * cu
        slab = math.floor(across / p.elevation_mm)  # a new tissue slice every elevation thickness
        tr0 = int(round(off[2] / self.sy)) + 37 * slab
        tc0 = int(round(along / self.sx)) + 101 * slab
        echo = np.zeros((H, W), np.float32)
        for code, tex in ((Tissue.SKIN, 0), (Tissue.FAT, 1)):
            rows = np.flatnonzero(row_t == code)
            if rows.size:
                rs = slice(rows[0], rows[-1] + 1)
                echo[rs] = self._structure.crop(tex, tr0, tc0)[rs]
        rows = np.flatnonzero(row_t == Tissue.MUSCLE)
        if rows.size:
            rs = slice(rows[0], rows[-1] + 1)
            w_long = np.float32(cu * cu)  # muscle fibres run along x
            echo[rs] = w_long * self._structure.crop(2, tr0, tc0)[rs]
            echo[rs] += (1 - w_long) * self._structure.crop(3, tr0, tc0)[rs]
        # specular lines across the beam: skin entry, fat/muscle fascia, near-field reverberation
        depth = self.depth_mm + off[2]
        sig_ax = max(p.psf_fwhm_mm[0] * _FWHM_TO_SIGMA, 0.5 * self.sy)
        b1, b2 = phantom.boundaries_mm
        lines = p.fascia_strength * np.exp(-0.5 * ((depth - b2) / sig_ax) ** 2)
        lines += 0.6 * p.skin_echo * np.exp(-0.5 * ((depth - 0.15) / sig_ax) ** 2)
        for k in (2, 3, 4):
            lines += p.skin_echo * p.reverb_strength ** (k - 1) * np.exp(-0.5 * ((depth - k * b1) / (2 * sig_ax)) ** 2)
        lines[row_t == Tissue.AIR] = 0.0
        echo += lines.astype(np.float32)[:, None]
        labels = np.zeros((H, W), np.uint8)
        for i, rs, cs, in_wall, in_lumen, nz2 in rois:
            sub = echo[rs, cs]
            sub[in_wall] = (p.wall_echo * (0.25 + 0.75 * nz2[in_wall])).astype(np.float32)
            sub[in_lumen] = p.lumen_echo
            labels[rs, cs][in_lumen] = LABEL_ARTERY if phantom.is_artery[i] else LABEL_VEIN
        echo[:, col_out] = 0.0
        labels[:, col_out] = 0

        # ---- PSF blur, speckle, attenuation
        sr, sc = self.psf_sigma_px
        env = cv_float32(cv2.GaussianBlur(echo, (0, 0), sigmaX=max(sc, 0.3), sigmaY=max(sr, 0.3)))
        speckle, sp_key = self._speckle.random_crop(rng)
        env *= speckle
        env *= self._atten_row

        # extra attenuation along each beam line (dB per pixel): lumens (negative: posterior
        # enhancement) and the needle (acoustic shadow); accumulated down the columns
        sources: list[tuple[slice, slice, NDArray[np.float32]]] = []
        for i, rs, cs, in_wall, in_lumen, nz2 in rois:
            db = in_lumen.astype(np.float32) * -self._enh_db_per_px
            if p.edge_shadow_db > 0:
                # refraction at grazing incidence on the lateral walls: dark streaks below the edges
                wall_px = (phantom.spec.vessels[i].wall_thickness_mm + 0.5 * a_lumen[i]) / self.sy
                graze = np.where(in_wall, (1.0 - nz2) ** 4, 0.0).astype(np.float32)
                db += graze * np.float32(p.edge_shadow_db / max(wall_px, 1.0))
            sources.append((rs, cs, db))
        needle_info: tuple[_Needle2D, slice, slice, NDArray[np.float32], bool] | None = None
        if needle is not None:
            nd = self._needle_2d(needle, probe, off)
            if nd is not None:
                drawn = self._draw_needle(nd, needle)
                if drawn is not None:
                    nrs, ncs, nlabel, necho, nshadow = drawn
                    labels[nrs, ncs][nlabel] = LABEL_NEEDLE
                    sources.append((nrs, ncs, nshadow))
                    needle_info = (nd, nrs, ncs, necho, bool(nlabel.any()))
        if sources:
            r_first = min(rs.start for rs, _, _ in sources)
            c_lo = min(cs.start for _, cs, _ in sources)
            c_hi = max(cs.stop for _, cs, _ in sources)
            extra = np.zeros((H - r_first, c_hi - c_lo), np.float32)
            for rs, cs, db in sources:
                extra[rs.start - r_first : rs.stop - r_first, cs.start - c_lo : cs.stop - c_lo] += db
            # column-wise cumulative sum via the integral image (fast; float32 error << 0.01 dB)
            integ = cv2.integral(extra, sdepth=cv2.CV_32F)
            cum = integ[1:, 1:] - integ[1:, :-1]
            cum *= np.float32(-1.0 / _DB)
            k = 2 * int(math.ceil(2.5 * sc)) + 1  # beams have the lateral PSF width
            cum = cv_float32(cv2.GaussianBlur(cum, (k, 1), sigmaX=max(sc, 0.3), sigmaY=0))
            env[r_first:, c_lo:c_hi] *= cv2.exp(cum)
        if needle_info is not None:
            nd, nrs, ncs, necho, _ = needle_info
            env[nrs, ncs] += necho * self._atten_row[nrs]
        noise, _ = self._speckle.random_crop(rng)
        env += np.float32(p.noise_level) * noise

        # ---- log compression with TGC and gain
        cv2.max(env, 1e-7, dst=env)  # type: ignore[call-overload]  # a scalar src2 works; the stubs list arrays only
        cv2.log(env, dst=env)
        env *= self._log_scale
        env += self._row_offset
        np.clip(env, 0.0, 255.0, out=env)
        image = env.astype(np.uint8)

        centres, depths, kinds = self._vessel_truth(phantom, probe, t_s, off)
        meta = {
            "probe": {"x_mm": probe.x_mm, "y_mm": probe.y_mm, "yaw_rad": probe.yaw_rad},
            "params": dict(self._params_dict),
            "params_name": p.name,
            "seed": self.seed,
            "speckle_crop": sp_key,
            "phantom": phantom.spec.name,
            "phantom_offset_mm": tuple(float(v) for v in off),
            "needle_visible": False,
        }
        tip_px = None
        if needle_info is not None:
            nd, _, _, _, visible = needle_info
            meta["needle_visible"] = visible
            tip_px = nd.tip_px
            if visible:
                meta["needle_angle_deg"] = nd.angle_deg
                meta["needle_tilt_deg"] = nd.tilt_deg
        return ImageFrame("us", image, (self.sy, self.sx), float(t_s), labels, tip_px, centres, depths, kinds, meta)


def _centreline_and_slope(phantom: Phantom, i: int, x: float, h: float = 1e-3) -> tuple[float, float, float, float]:
    """Vessel ``i`` centre (y, z) at phantom x and its slopes dy/dx, dz/dx (finite difference)."""
    y, z = phantom.centreline(np.array([x, x + h]))
    return y[0, i], z[0, i], (y[1, i] - y[0, i]) / h, (z[1, i] - z[0, i]) / h
