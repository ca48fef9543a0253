"""The tip camera: what an optical window at the catheter tip sees (haptic vision, Fagogenis et al. 2019).

Free in the lumen the window sees opaque blood: dark red, no texture, shaded by the LED's
fall-off. Pressed on a surface, the blood is squeezed out of a contact patch that shows the
surface: vessel wall / myocardium (pink fibrous tissue, capillaries) or the prosthetic valve
(the sewing ring's fabric weave and the frame's metal struts).

Contact patch (Hertz): a sphere of radius ``R`` (the window's dome) pressed with normal force
``F`` on an elastic half-space of effective modulus ``E*`` touches over a disc of radius
``a = (3 F R / (4 E*))^(1/3)``; its area grows as ``F^(2/3)``. The contact ratio is the fraction of
the window's disc in contact, ``min(a / window_radius, 1)^2``. Tissue is soft (E* ~ 60 kPa), the
valve's sewing ring on its frame stiffer (E* ~ 300 kPa), so the same force shows a smaller patch
on the valve.

Speed: textures (periodic, seeded) are made once; a frame only blends the disc (with a soft blood
rim) over the pre-shaded blood image, in the disc's bounding box, and adds noise cut from a seeded
bank at a random offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.sim.imaging.checks import check_ranges, check_value
from ir_robot.sim.imaging_common import periodic_noise

F32 = NDArray[np.float32]
U8 = NDArray[np.uint8]

#: surface classes, in ground-truth index order
CLASSES = ("blood", "tissue", "valve")


@dataclass(frozen=True)
class TipCameraParams:
    """Optics, contact mechanics, colours and noise of the tip camera (RGB images)."""

    size_px: int = param(128, range=(1, 2048), unit="px", help="square image side")
    window_radius_mm: float = param(3.0, range=(0.5, 10.0), unit="mm", help="optical window radius (image disc)")
    dome_radius_mm: float = param(4.0, range=(0.5, 50.0), unit="mm", help="radius of curvature of the window")
    tissue_modulus_kpa: float = param(60.0, range=(1.0, 1.0e4), unit="kPa", help="effective E* of wall/myocardium")
    valve_modulus_kpa: float = param(300.0, range=(1.0, 1.0e5), unit="kPa", help="effective E* of the sewing ring")
    max_force_n: float = param(5.0, range=(0.1, 50.0), unit="N", help="largest accepted normal force")
    blood_rgb: tuple[float, float, float] = param((80.0, 10.0, 12.0), range=(0.0, 255.0))
    tissue_rgb: tuple[float, float, float] = param((215.0, 135.0, 125.0), range=(0.0, 255.0))
    fabric_rgb: tuple[float, float, float] = param((225.0, 220.0, 205.0), range=(0.0, 255.0))
    strut_rgb: tuple[float, float, float] = param((120.0, 120.0, 128.0), range=(0.0, 255.0))
    illumination_falloff: float = param(0.45, range=(0.0, 1.0), help="brightness lost at the window's rim")
    rim_px: float = param(2.5, range=(0.1, 50.0), unit="px", help="width of the blood film at the patch edge")
    noise_std: float = param(3.0, range=(0.0, 50.0), help="sensor noise, 8-bit levels")
    texture_period_px: int = param(256, range=(32, 4096), unit="px")

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class TipCameraFrame:
    """A tip-camera image (uint8 RGB, H x W x 3) with its ground truth: class, contact ratio, force, patch radius."""

    image: U8
    label: str
    class_index: int
    contact_ratio: float
    normal_force_n: float
    patch_radius_mm: float


def hertz_contact_radius_mm(force_n: float, dome_radius_mm: float, modulus_kpa: float) -> float:
    """Hertz contact radius ``a = (3 F R / (4 E*))^(1/3)`` in mm (F in N, R in mm, E* in kPa)."""
    if force_n <= 0.0:
        return 0.0
    a_m = math.cbrt(3.0 * force_n * (dome_radius_mm * 1e-3) / (4.0 * modulus_kpa * 1e3))
    return a_m * 1e3


def _colour(field: F32, rgb: tuple[float, float, float]) -> F32:
    out: F32 = (field[..., None] * np.asarray(rgb, dtype=np.float32)[None, None, :]).astype(np.float32)
    return out


class TipCameraRenderer:
    """Renders tip-camera frames from the contact state; textures and noise are seeded at construction."""

    def __init__(self, params: TipCameraParams | None = None, seed: int = 0):
        self.params = p = params if params is not None else TipCameraParams()
        n = p.size_px
        rng = np.random.default_rng(seed)
        self._rng = np.random.default_rng(rng.integers(2**63))
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        c = (n - 1) / 2.0
        self._rr = np.hypot(yy - c, xx - c).astype(np.float32)  # px from the centre
        half = n / 2.0
        self._px_per_mm = half / p.window_radius_mm
        window = np.clip(half - self._rr + 0.5, 0.0, 1.0)  # the round field; the housing outside is black
        self._window = window
        self._n_window = float(np.count_nonzero(self._rr <= half))
        self._illum = ((1.0 - p.illumination_falloff * (self._rr / half) ** 2) * window).astype(np.float32)
        self._illum3 = np.repeat(self._illum[..., None], 3, axis=2)
        self._blood_flat = _colour(np.ones((n, n), dtype=np.float32), p.blood_rgb)
        self._rr_rim = (0.5 - self._rr / np.float32(p.rim_px)).astype(np.float32)  # + r_px / rim -> soft edge
        period = p.texture_period_px
        self._textures = {
            "tissue": self._pad(self._tissue_texture(rng, period), n),
            "valve": self._pad(self._valve_texture(rng, period), n),
        }
        bank = rng.standard_normal((2 * n, 2 * n, 3), dtype=np.float32) * np.float32(p.noise_std)
        self._noise_bank = bank

    @staticmethod
    def _pad(tex: F32, n: int) -> F32:
        out: F32 = np.pad(tex, ((0, n), (0, n), (0, 0)), mode="wrap")
        return out

    def _tissue_texture(self, rng: np.random.Generator, period: int) -> F32:
        """Pink fibrous tissue: oriented fibres, blotchy perfusion and a few dark capillaries."""
        shape = (period, period)
        fibres = periodic_noise(rng, shape, (1.2, 7.0))
        blotch = periodic_noise(rng, shape, (12.0, 12.0))
        cap_field = periodic_noise(rng, shape, (6.0, 6.0))
        capillaries = np.exp(-((cap_field / np.float32(0.06)) ** 2))
        shade = 1.0 + 0.10 * fibres + 0.10 * blotch
        base = _colour(shade.astype(np.float32), self.params.tissue_rgb)
        vessel_rgb = np.asarray((150.0, 40.0, 45.0), dtype=np.float32)
        w = (0.6 * capillaries)[..., None]
        out: F32 = (base * (1.0 - w) + vessel_rgb * w).astype(np.float32)
        return out

    def _valve_texture(self, rng: np.random.Generator, period: int) -> F32:
        """Woven sewing-ring fabric (over-under threads) crossed by metal frame struts with a highlight."""
        p = self.params
        cell = 8
        yy, xx = np.mgrid[0:period, 0:period].astype(np.float32)
        fy = (yy % cell) / cell
        fx = (xx % cell) / cell
        over = ((yy // cell + xx // cell) % 2).astype(np.float32)
        thread_h = np.sin(np.pi * fy) ** 0.6
        thread_v = np.sin(np.pi * fx) ** 0.6
        weave = over * thread_h + (1.0 - over) * thread_v
        fuzz = periodic_noise(rng, (period, period), (0.8, 0.8))
        shade = (0.55 + 0.45 * weave + 0.05 * fuzz).astype(np.float32)
        out = _colour(shade, p.fabric_rgb)
        # struts: straight bars at seeded angles (periodic: integer wave numbers across the tile)
        centre = p.size_px / 2.0  # the texture position seen at offset (0, 0)
        for j in range(2):
            kx, ky = int(rng.integers(-2, 3)), int(rng.integers(1, 3))
            # the first strut passes a seeded 10-25 px from the window centre, so a firm press shows it
            dist = rng.uniform(10.0, 25.0) * math.hypot(kx, ky) / period if j == 0 else rng.uniform(0.0, 1.0)
            phase = (dist - (kx + ky) * centre / period) % 1.0
            s = ((kx * xx + ky * yy) / period + phase) % 1.0
            d = np.minimum(s, 1.0 - s) * period / math.hypot(kx, ky)
            width = 7.0
            bar = np.clip(width - d, 0.0, 1.0)
            highlight = np.exp(-((d / 2.0) ** 2)) * 0.5
            metal = _colour((0.8 + highlight).astype(np.float32), p.strut_rgb)
            out = out * (1.0 - bar[..., None]) + metal * bar[..., None]
        res: F32 = out.astype(np.float32)
        return res

    def contact_radius_mm(self, label: str, force_n: float) -> float:
        """The contact patch radius (mm) on ``label``'s surface at normal force ``force_n`` (Hertz)."""
        p = self.params
        if label == "blood" or force_n <= 0.0:
            return 0.0
        modulus = p.tissue_modulus_kpa if label == "tissue" else p.valve_modulus_kpa
        return hertz_contact_radius_mm(force_n, p.dome_radius_mm, modulus)

    def render(
        self,
        surface: str,
        normal_force_n: float,
        surface_offset_mm: tuple[float, float] = (0.0, 0.0),
        roll_rad: float = 0.0,
    ) -> TipCameraFrame:
        """One frame of the tip on ``surface`` ("blood" = free, "tissue", "valve") pressed with ``normal_force_n``.

        ``surface_offset_mm`` is where on the surface the tip touches (texture position: sliding moves
        it); ``roll_rad`` the catheter's roll (the surface turns counter-clockwise in the image by it).
        """
        p = self.params
        if surface not in CLASSES:
            raise ConfigError(f"tip_camera.surface: {surface!r} is not one of {list(CLASSES)}")
        force = check_value("tip_camera", "normal_force_n", normal_force_n, 0.0, p.max_force_n, "N")
        a_mm = self.contact_radius_mm(surface, force)
        label = surface if a_mm > 0.0 else "blood"
        ratio = min(a_mm / p.window_radius_mm, 1.0) ** 2
        n = p.size_px
        img = self._blood_flat.copy()
        if a_mm > 0.0:
            r_px = a_mm * self._px_per_mm
            c = (n - 1) / 2.0
            lo = max(int(math.floor(c - r_px - p.rim_px)), 0)
            hi = min(int(math.ceil(c + r_px + p.rim_px)) + 1, n)
            period = p.texture_period_px
            oy = int(round(surface_offset_mm[1] * self._px_per_mm)) % period
            ox = int(round(surface_offset_mm[0] * self._px_per_mm)) % period
            tex = self._textures[label][oy + lo : oy + hi, ox + lo : ox + hi]
            if roll_rad != 0.0:  # turn the patch's content about the window centre (the disc stays a disc)
                rot = cv2.getRotationMatrix2D((c - lo, c - lo), math.degrees(roll_rad), 1.0)
                turned = cv2.warpAffine(
                    np.ascontiguousarray(tex),
                    rot,
                    (hi - lo, hi - lo),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT,
                )
                tex = np.asarray(turned, dtype=np.float32)
            alpha = np.clip(self._rr_rim[lo:hi, lo:hi] + np.float32(r_px / p.rim_px), 0.0, 1.0)
            img[lo:hi, lo:hi] = cv2.blendLinear(np.ascontiguousarray(tex), img[lo:hi, lo:hi], alpha, 1.0 - alpha)
        img = np.asarray(cv2.multiply(img, self._illum3), dtype=np.float32)
        oy = int(self._rng.integers(0, n + 1))
        ox = int(self._rng.integers(0, n + 1))
        img = np.asarray(cv2.add(img, np.ascontiguousarray(self._noise_bank[oy : oy + n, ox : ox + n])), np.float32)
        out = np.asarray(cv2.convertScaleAbs(img), dtype=np.uint8)
        return TipCameraFrame(out, label, CLASSES.index(label), ratio, force, a_mm)
