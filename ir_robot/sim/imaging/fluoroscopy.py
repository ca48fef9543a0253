"""Fluoroscopy and angiography frames of the catheter world, by Beer-Lambert attenuation without a CT.

``I = I0 exp(-sum mu * length)`` along each ray, with analytic path lengths through the trunk,
the bones, the contrast-filled vessels, the valve ring and the instruments
(:mod:`~ir_robot.sim.imaging.tube_projection`, :mod:`~ir_robot.sim.imaging.body_background`).

Speed comes from caching: the static attenuation (trunk, bones, valve ring) is ray-cast once per
C-arm pose, each vessel's path-length image once per pose, and the detector counts behind them
once per (pose, contrast); a frame then adds only the instruments' thin contribution (an
image-space splat in their bounding box, blurred there), the noise and the display mapping.

Noise: quantum noise is Poisson with mean = the expected photon count; at the counts used here
(hundreds to tens of thousands per pixel) it is drawn as a Gaussian with variance = mean, plus
the electronic noise variance, from a seeded bank of standard normals cut at a random offset each
frame (frames are reproducible from the seed; noise in successive frames is drawn from one bank,
so it is not independent over long runs). Below ~20 expected photons per pixel the Gaussian is a
coarse stand-in for Poisson (it can go negative: the display clips at its black level and the DSA
floors counts at 1).

Detector blur is a Gaussian on the expected counts (before noise); scatter is a uniform fraction
of the mean primary; the display is an automatic-brightness window on the counts of the
contrast-free static image of the pose, then a gamma curve, as an 8-bit image.

Collimation: ``render(..., roi=(r0, r1, c0, c1))`` irradiates and renders only the region of
interest; the outside is held from the last full-field frame (the first frame of a pose is always
full field). The dose counter adds photons per pixel x irradiated pixels x the pixel area at the
isocentre (a dose-area-product proxy, photon mm^2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.sim.imaging.body_background import BodyParams, bone_tubes, trunk_chords
from ir_robot.sim.imaging.carm import CArmGeometry, CArmParams
from ir_robot.sim.imaging.checks import check_ranges, check_value
from ir_robot.sim.imaging.scene_inputs import RadiopaqueRod, ValveRing, VesselTube
from ir_robot.sim.imaging.tube_projection import InstrumentSplatter, tube_chord_image

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]
Roi = tuple[int, int, int, int]


@dataclass(frozen=True)
class FluoroscopyParams:
    """Exposure, contrast agent, detector and display settings of the fluoroscopy renderer."""

    dose_photons_per_px: float = param(
        2.0e4, range=(1.0, 1.0e8), unit="photons/px", help="unattenuated photons per pixel per frame"
    )
    electronic_noise_photons: float = param(3.0, range=(0.0, 1.0e4), unit="photons", help="read-noise std")
    blur_sigma_px: float = param(0.6, range=(0.0, 10.0), unit="px", help="detector (scintillator) blur")
    scatter_fraction: float = param(0.08, range=(0.0, 2.0), help="uniform scatter as a fraction of the mean primary")
    contrast_excess_mu_per_mm: float = param(
        0.06, range=(0.0, 1.0), unit="1/mm", help="iodinated contrast at full concentration, minus blood"
    )
    gamma: float = param(1.6, range=(0.2, 5.0), help="display gamma (>1 lifts the dark body centre)")
    window_percentiles: tuple[float, float] = param(
        (0.5, 99.8), range=(0.0, 100.0), unit="%", help="display window: these percentiles of the static counts"
    )
    window_floor: float = param(
        0.35, range=(0.0, 1.0), help="the window's black level is this x the low percentile (room for contrast)"
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.window_percentiles[0] >= self.window_percentiles[1]:
            raise ConfigError("FluoroscopyParams.window_percentiles: need low < high, in [0, 100] %")


@dataclass(frozen=True)
class FluoroFrame:
    """One fluoroscopy frame with its ground truth.

    ``image`` uint8 (H, W) display; ``counts`` float32 (H, W) detected photons (for DSA);
    ``instrument_mask`` and ``vessel_mask`` bool (H, W; the vessel mask is read-only, shared by the
    frames of a pose); ``tip_px`` (n_instruments, 2) float
    (col, row) of each instrument's tip; ``projection`` the 3x4 matrix; ``roi`` the irradiated
    region (r0, r1, c0, c1); ``dose_area_product`` this frame's DAP proxy (photon mm^2).
    """

    image: U8
    counts: F32
    instrument_mask: NDArray[np.bool_]
    vessel_mask: NDArray[np.bool_]
    tip_px: F64
    projection: F64
    roi: Roi
    dose_area_product: float
    contrast: tuple[float, ...]


def contrast_bolus(
    t_s: float, arrival_s: Sequence[float], time_to_peak_s: float = 1.0, alpha: float = 3.0
) -> tuple[float, ...]:
    """Per-vessel contrast concentration (0..1) at time ``t_s`` of an injection: a gamma-variate bolus.

    ``c = x^alpha exp(alpha (1 - x))`` with ``x = (t - arrival) / time_to_peak`` for ``t > arrival``
    (peak 1 at arrival + time_to_peak, washing out after), 0 before the bolus arrives.
    """
    out = []
    for a in arrival_s:
        x = (t_s - a) / time_to_peak_s
        out.append(float(x**alpha * np.exp(alpha * (1.0 - x))) if x > 0.0 else 0.0)
    return tuple(out)


@dataclass
class _PoseCache:
    geom: CArmGeometry
    static_mu_len: F32  # sum mu * length of trunk, bones, valve ring (H, W)
    vessels: list[tuple[Roi, F32] | None]
    vessel_mask: NDArray[np.bool_]
    window: tuple[float, float]
    splatter: InstrumentSplatter
    contrast_key: tuple[float, ...] | None = None
    transmission: F32 | None = None  # exp(-static - contrast), unblurred
    counts: F32 | None = None  # dose * (blur(T) + scatter)
    sigma: F32 | None = None  # sqrt(counts + e^2)
    last_full: FluoroFrame | None = None


class FluoroscopyRenderer:
    """A C-arm imaging a vessel tree, bones and instruments; call :meth:`render` once per frame."""

    def __init__(
        self,
        params: FluoroscopyParams | None = None,
        carm: CArmParams | None = None,
        body: BodyParams | None = None,
        seed: int = 0,
    ):
        self.params = params if params is not None else FluoroscopyParams()
        self.carm = carm if carm is not None else CArmParams()
        self.body = body if body is not None else BodyParams()
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        self._bones = bone_tubes(self.body, np.random.default_rng(rng.integers(2**63)))
        self._noise_rng = np.random.default_rng(rng.integers(2**63))
        self._bank_seed = int(rng.integers(2**63))
        self._bank: F32 | None = None
        self._vessels: list[VesselTube] = []
        self._valve: ValveRing | None = None
        self._cache: _PoseCache | None = None
        self.total_dose_area_product = 0.0
        self._lut = (255.0 * np.linspace(0.0, 1.0, 256) ** (1.0 / self.params.gamma) + 0.5).astype(np.uint8)

    # -- scene ---------------------------------------------------------------------------------------------
    def set_anatomy(self, vessels: Sequence[VesselTube], valve: ValveRing | None = None) -> None:
        """The vessel tubes (contrast fills them during an injection) and the valve ring, if any."""
        self._vessels = list(vessels)
        self._valve = valve
        self._cache = None

    def set_pose(
        self,
        lao_deg: float | None = None,
        cranial_deg: float | None = None,
        isocentre_mm: tuple[float, float, float] | None = None,
    ) -> None:
        """Move the C-arm (angles checked against its range) or the table; the pose's cache is rebuilt lazily."""
        changes: dict[str, object] = {}
        if lao_deg is not None:
            changes["lao_deg"] = lao_deg
        if cranial_deg is not None:
            changes["cranial_deg"] = cranial_deg
        if isocentre_mm is not None:
            changes["isocentre_mm"] = tuple(float(v) for v in isocentre_mm)
        new = dataclasses.replace(self.carm, **changes)  # type: ignore[arg-type]
        if new != self.carm:
            self.carm = new
            self._cache = None

    @property
    def geometry(self) -> CArmGeometry:
        """The current pose's geometry (projection matrix, source, detector axes)."""
        return self._pose().geom

    # -- caches --------------------------------------------------------------------------------------------
    def _pose(self) -> _PoseCache:
        if self._cache is not None:
            return self._cache
        geom = CArmGeometry(self.carm)
        rays = geom.pixel_rays()
        b = self.body
        mu_len = b.soft_tissue_mu_per_mm * trunk_chords(b, geom.source_mm, rays)
        vertebrae, ribs = self._bones
        bones = [(t, False, b.bone_excess_mu_per_mm) for t in vertebrae] + [
            (t, True, b.rib_excess_mu_per_mm) for t in ribs
        ]
        for tube, caps, mu in bones:
            got = tube_chord_image(geom, rays, tube, caps)
            if got is not None:
                (r0, r1, c0, c1), ch = got
                mu_len[r0:r1, c0:c1] += mu * ch
        if self._valve is not None:
            got = tube_chord_image(geom, rays, self._valve.as_tube())
            if got is not None:
                (r0, r1, c0, c1), ch = got
                mu_len[r0:r1, c0:c1] += self._valve.attenuation_per_mm * ch
        vessels = [tube_chord_image(geom, rays, t) for t in self._vessels]
        vmask = np.zeros(geom.shape, dtype=bool)
        for v in vessels:
            if v is not None:
                (r0, r1, c0, c1), ch = v
                vmask[r0:r1, c0:c1] |= ch > 0.0
        vmask.flags.writeable = False
        static = mu_len.astype(np.float32)
        counts0 = self._expected_counts(np.exp(-static))
        lo, hi = np.percentile(counts0, self.params.window_percentiles)
        lo *= self.params.window_floor
        self._cache = _PoseCache(
            geom, static, vessels, vmask, (float(lo), float(max(hi, lo + 1e-3))), InstrumentSplatter(geom)
        )
        return self._cache

    def _expected_counts(self, transmission: F32) -> F32:
        p = self.params
        t = transmission
        if p.blur_sigma_px > 0.0:
            t = np.asarray(cv2.GaussianBlur(t, (0, 0), p.blur_sigma_px, borderType=cv2.BORDER_REFLECT), np.float32)
        out: F32 = (p.dose_photons_per_px * (t + p.scatter_fraction * float(transmission.mean()))).astype(np.float32)
        return out

    def _contrast_tuple(self, contrast: float | Sequence[float]) -> tuple[float, ...]:
        n = len(self._vessels)
        if isinstance(contrast, (int, float)):
            c = check_value("render", "contrast", float(contrast), 0.0, 1.0)
            return (c,) * n
        vals = tuple(float(v) for v in contrast)
        if len(vals) != n:
            raise ConfigError(f"render.contrast: expected one concentration per vessel ({n}), got {len(vals)}")
        for v in vals:
            check_value("render", "contrast", v, 0.0, 1.0)
        return vals

    def _static(self, pc: _PoseCache, key: tuple[float, ...]) -> None:
        if pc.contrast_key == key and pc.counts is not None:
            return
        mu_len = pc.static_mu_len.copy()
        mu_c = self.params.contrast_excess_mu_per_mm
        for c, v in zip(key, pc.vessels, strict=True):
            if v is not None and c > 0.0:
                (r0, r1, c0, c1), ch = v
                mu_len[r0:r1, c0:c1] += np.float32(mu_c * c) * ch
        t = np.exp(-mu_len).astype(np.float32)
        pc.transmission = t
        pc.counts = self._expected_counts(t)
        e = self.params.electronic_noise_photons
        pc.sigma = np.sqrt(pc.counts + np.float32(e * e)).astype(np.float32)
        pc.contrast_key = key

    def _noise(self, shape: tuple[int, int]) -> F32:
        h, w = self.carm.size_px
        if self._bank is None or self._bank.shape != (2 * h, 2 * w):
            self._bank = np.random.default_rng(self._bank_seed).standard_normal((2 * h, 2 * w), dtype=np.float32)
        oy = int(self._noise_rng.integers(0, h + 1))
        ox = int(self._noise_rng.integers(0, w + 1))
        return self._bank[oy : oy + shape[0], ox : ox + shape[1]]

    # -- frames --------------------------------------------------------------------------------------------
    def render(
        self,
        instruments: Sequence[RadiopaqueRod] = (),
        contrast: float | Sequence[float] = 0.0,
        roi: Roi | None = None,
    ) -> FluoroFrame:
        """One frame: the instruments over the (possibly contrast-filled) anatomy, collimated to ``roi`` if given."""
        pc = self._pose()
        key = self._contrast_tuple(contrast)
        self._static(pc, key)
        assert pc.counts is not None and pc.sigma is not None and pc.transmission is not None
        h, w = pc.geom.shape
        if roi is None or pc.last_full is None:
            roi_t: Roi = (0, h, 0, w)
        else:
            roi_t = self._check_roi(roi, h, w)
        r0, r1, c0, c1 = roi_t
        z = self._noise((r1 - r0, c1 - c0))
        noisy = np.multiply(pc.sigma[r0:r1, c0:c1], z)
        noisy += pc.counts[r0:r1, c0:c1]
        inst_mask = np.zeros((h, w), dtype=bool)
        tips = np.zeros((len(instruments), 2))
        if instruments:
            self._add_instruments(pc, instruments, roi_t, noisy, z, inst_mask, tips)
        lo, hi = pc.window
        alpha = 255.0 / (hi - lo)
        scaled = cv2.convertScaleAbs(np.maximum(noisy, np.float32(lo)), alpha=alpha, beta=-lo * alpha)
        img: U8 = np.asarray(cv2.LUT(scaled, self._lut), dtype=np.uint8)
        dap = self.params.dose_photons_per_px * (r1 - r0) * (c1 - c0) * pc.geom.pixel_area_at_isocentre_mm2
        self.total_dose_area_product += dap
        full = (r1 - r0, c1 - c0) == (h, w)
        if full:
            image, counts_out = img, noisy
        else:
            assert pc.last_full is not None
            image = pc.last_full.image.copy()
            image[r0:r1, c0:c1] = img
            counts_out = pc.last_full.counts.copy()
            counts_out[r0:r1, c0:c1] = noisy
        frame = FluoroFrame(
            image, counts_out, inst_mask, pc.vessel_mask, tips, pc.geom.projection.copy(), roi_t, dap, key
        )
        if full:
            pc.last_full = frame
        return frame

    @staticmethod
    def _check_roi(roi: Roi, h: int, w: int) -> Roi:
        r0, r1, c0, c1 = (int(v) for v in roi)
        if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
            raise ConfigError(f"render.roi: {roi!r} must satisfy 0 <= r0 < r1 <= {h} and 0 <= c0 < c1 <= {w}")
        return (r0, r1, c0, c1)

    def _add_instruments(
        self,
        pc: _PoseCache,
        instruments: Sequence[RadiopaqueRod],
        roi: Roi,
        noisy: F32,
        z: F32,
        inst_mask: NDArray[np.bool_],
        tips: F64,
    ) -> None:
        """Re-draw ``noisy`` (the ROI crop) in the rods' blurred bounding box, attenuated by them (same noise ``z``)."""
        assert pc.transmission is not None
        h, w = pc.geom.shape
        r0, r1, c0, c1 = roi
        ys_all, xs_all, att_all = [], [], []
        for i, rod in enumerate(instruments):
            tip_uv, _ = pc.geom.project(rod.tip_mm)
            tips[i] = tip_uv[0]
            ys, xs, chord = pc.splatter.chords(rod)
            ys_all.append(ys)
            xs_all.append(xs)
            att_all.append(rod.attenuation_per_mm * chord)
        ys = np.concatenate(ys_all)
        xs = np.concatenate(xs_all)
        att = np.concatenate(att_all)
        if len(ys) == 0:
            return
        inst_mask[ys, xs] = True
        pad = int(np.ceil(3.0 * self.params.blur_sigma_px)) + 1
        br0, br1 = max(int(ys.min()) - pad, r0), min(int(ys.max()) + pad + 1, r1)
        bc0, bc1 = max(int(xs.min()) - pad, c0), min(int(xs.max()) + pad + 1, c1)
        if br0 >= br1 or bc0 >= bc1:
            return
        if (r0, r1, c0, c1) != (0, h, 0, w):
            keep = (ys >= br0) & (ys < br1) & (xs >= bc0) & (xs < bc1)
            ys, xs, att = ys[keep], xs[keep], att[keep]
        ys = ys - br0
        xs = xs - bc0
        if len(instruments) > 1:  # rods may overlap (a wire inside a catheter): sum per pixel
            total = np.zeros((br1 - br0, bc1 - bc0), dtype=np.float64)
            np.add.at(total, (ys, xs), att)
            ys, xs = np.nonzero(total)
            att = total[ys, xs]
        delta = np.zeros((br1 - br0, bc1 - bc0), dtype=np.float32)
        delta[ys, xs] = pc.transmission[br0:br1, bc0:bc1][ys, xs] * (np.exp(-att) - 1.0)
        if self.params.blur_sigma_px > 0.0:
            blurred = cv2.GaussianBlur(delta, (0, 0), self.params.blur_sigma_px, borderType=cv2.BORDER_CONSTANT)
            delta = np.asarray(blurred, dtype=np.float32)
        assert pc.counts is not None
        cb = pc.counts[br0:br1, bc0:bc1] + np.float32(self.params.dose_photons_per_px) * delta
        np.maximum(cb, 0.0, out=cb)
        e = self.params.electronic_noise_photons
        zb = z[br0 - r0 : br1 - r0, bc0 - c0 : bc1 - c0]
        noisy[br0 - r0 : br1 - r0, bc0 - c0 : bc1 - c0] = cb + np.sqrt(cb + np.float32(e * e)) * zb

    def dsa(self, live: FluoroFrame, mask: FluoroFrame) -> F32:
        """Digital subtraction: ``ln(mask) - ln(live)`` per pixel, i.e. the contrast's sum of mu * length."""
        floor = np.float32(1.0)
        out: F32 = (np.log(np.maximum(mask.counts, floor)) - np.log(np.maximum(live.counts, floor))).astype(np.float32)
        return out


def dsa_display(dsa: F32, full_scale: float = 1.5) -> U8:
    """A DSA image for viewing: 0 (no contrast) mid-grey-white, contrast dark, as angiographers read it."""
    v = np.clip(1.0 - dsa / full_scale, 0.0, 1.0) * 235.0 + 10.0
    out: U8 = v.astype(np.uint8)
    return out
