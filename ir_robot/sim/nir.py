"""Synthetic top-down near-infrared (NIR, ~850 nm) vein images from the analytic phantom.

Geometry (WORLD frame)
----------------------
The camera looks straight down. Pixel ``(r, c)`` of an HxW image sees::

    x = view.x_mm + (c - W/2 + 0.5) * s,   y = view.y_mm + (r - H/2 + 0.5) * s,   s = view.fov_mm / W

(converted to the phantom frame with the motion offset). ``NirParams.fov_mm`` is the
field of view the textures are made for; the geometry always uses ``view.fov_mm``.

Model (per frame, no per-pixel Python loops)
--------------------------------------------
Diffuse reflectance of skin (tone-dependent level, precomputed skin texture: pores,
mottling, creases), times hair (dark curved strands drawn with ``cv2.polylines`` into a
periodic layer), times the absorption of every vessel below. Along a vertical line
through lumen ``i`` the light crosses a chord ``2 b sqrt(1 - dy^2)`` of blood
(``dy``: normalised lateral offset, ``b``: vertical semi-axis), so the vessel darkens
the skin by::

    A = (1 - exp(-mu * chord)) * exp(-top_depth / depth_contrast_mm) * (1 - 0.35 * skin_tone)

(``mu = absorption_per_mm``, times ``artery_absorption_factor`` for arteries; ``top_depth``
is the depth of the lumen's top below the skin), blurred by diffuse scattering with
``sigma = blur_mm_per_mm_depth * centre_depth``. Then a lighting gradient and vignetting,
glare spots, a needle shaft above the skin (the part under the skin is not seen), an
exposure jitter and sensor noise. Skin texture and hair are anchored to the phantom so
they move with the arm; lighting and glare are fixed to the camera.

Labels (rule): a vein's lumen footprint ``|dy| < 1`` is labelled vein (1) at the
columns where its *apparent* contrast, i.e. the peak ``A`` above times the loss from the
blur ``erf(a / (sqrt(2) sigma))`` (``a``: lateral semi-axis), is at least the label
threshold ``max(vein_label_min_contrast, vein_label_clutter_factor * (skin_texture +
noise_sigma))``: a vein is visible when it darkens the skin more than the skin's own
mottling and the sensor noise do (without the clutter term, 13 % of the labelled vein
pixels of the test set darkened their surroundings by less than 2 %: labels of veins
nobody can see); where it lies in the ambiguous band between
``vein_ignore_fraction`` x that threshold and the threshold it is "don't care"
(``LABEL_IGNORE``). Arteries are never labelled vein: wherever a vein of the same
apparent contrast would be labelled vein or don't care (i.e. down to ``vein_ignore_fraction``
x the threshold) they are "don't care" too, since at one NIR wavelength arterial and venous
blood absorb alike (the artery/vein decision is the ultrasound's). Until nir dataset v6 only
arteries above the threshold were; faint ones were background, so a model that saw them as
the veins they look like was scored wrong (about half of the NIR model's false-vein pixels
far from any labelled vein). ``vessel_centres_px`` /
``vessel_depths_mm`` list the labelled veins at the image centre column (where visible
there). ``tip_px`` is the top-down projection of the needle tip when it lies in the
field of view (under the skin or not: it is ground truth, not a detection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.config import param, to_dict
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import LABEL_IGNORE, LABEL_VEIN, ImageFrame, NeedlePose, NirView
from ir_robot.sim.imaging_common import (
    PeriodicBank,
    check_rng,
    check_size,
    cv_float32,
    periodic_noise,
    ridge_lines,
    sample_params,
)
from ir_robot.sim.phantom import Phantom


@dataclass(frozen=True)
class NirParams:
    """NIR camera and skin parameters. Every field can be randomised (:func:`sample_nir_params`)."""

    size_px: tuple[int, int] = param((256, 256), range=(16, 4096), unit="px", help="(H, W)")
    fov_mm: float = param(50.0, range=(5.0, 300.0), unit="mm", help="field of view the textures are made for")
    skin_tone: float = param(0.3, range=(0.0, 1.0), help="0 light .. 1 dark (melanin): lowers reflectance and contrast")
    skin_texture: float = param(0.06, range=(0.0, 0.5), help="pores/mottling/creases relative amplitude")
    hair_density: float = param(0.5, range=(0.0, 20.0), unit="1/cm^2", help="hair strands per cm^2")
    hair_darkness: float = param(0.35, range=(0.0, 1.0))
    lighting_gradient: float = param(0.2, range=(0.0, 0.8), help="relative brightness change across the image")
    vignetting: float = param(0.25, range=(0.0, 0.8), help="relative darkening in the corners")
    glare: float = param(0.3, range=(0.0, 1.0), help="strength/number of specular glare spots")
    noise_sigma: float = param(0.015, range=(0.0, 0.2), help="sensor noise std (image scale 0..1)")
    exposure_jitter: float = param(0.02, range=(0.0, 0.3), help="per-frame relative exposure std")
    absorption_per_mm: float = param(1.2, range=(0.0, 10.0), unit="1/mm", help="blood (deoxy-Hb) at 850 nm, effective")
    artery_absorption_factor: float = param(0.5, range=(0.0, 2.0), help="arteries absorb relative to veins")
    depth_contrast_mm: float = param(5.0, range=(0.3, 30.0), unit="mm", help="contrast ~ exp(-top depth / this)")
    blur_mm_per_mm_depth: float = param(0.35, range=(0.0, 3.0), unit="mm/mm", help="diffuse blur sigma per mm depth")
    optics_blur_px: float = param(0.6, range=(0.0, 5.0), unit="px", help="lens/focus blur sigma")
    vein_label_min_contrast: float = param(0.08, range=(0.0, 1.0), help="apparent contrast needed to label a vein")
    vein_label_clutter_factor: float = param(
        1.0,
        range=(0.0, 10.0),
        help="... and at least this x (skin_texture + noise_sigma): a vein "
        "fainter than the skin's own mottling is not visible",
    )
    vein_ignore_fraction: float = param(
        0.5,
        range=(0.0, 1.0),
        help="veins between this x the label threshold and the threshold, "
        "and arteries down to this x the threshold, are labelled don't-care (255)",
    )
    name: str = param("default", help="label echoed in frame meta")

    def __post_init__(self) -> None:
        check_size(self.size_px, "NirParams")


#: domain-randomisation ranges of :func:`sample_nir_params`
NIR_RANDOM_RANGES: dict[str, tuple[float, float]] = {
    "skin_tone": (0.0, 1.0),
    "skin_texture": (0.02, 0.12),
    "hair_density": (0.0, 2.5),
    "hair_darkness": (0.15, 0.6),
    "lighting_gradient": (0.0, 0.4),
    "vignetting": (0.05, 0.45),
    "glare": (0.0, 0.7),
    "noise_sigma": (0.005, 0.04),
    "exposure_jitter": (0.0, 0.05),
    "absorption_per_mm": (0.7, 1.8),
    "artery_absorption_factor": (0.3, 0.8),
    "depth_contrast_mm": (3.0, 7.0),
    "blur_mm_per_mm_depth": (0.2, 0.6),
    "optics_blur_px": (0.3, 1.5),
}


def sample_nir_params(rng: np.random.Generator, **overrides: Any) -> NirParams:
    """Random but plausible NIR parameters (ranges in :data:`NIR_RANDOM_RANGES`); ``overrides`` fix fields."""
    return sample_params(NirParams, rng, NIR_RANDOM_RANGES, overrides)


_BACKGROUND = 0.06  # table / outside the phantom block


class NirRenderer:
    """Top-down NIR renderer. Construction precomputes skin/hair textures, lighting, glare, noise.

    ``seed`` fixes the precomputed layers; per-frame randomness (noise crop, exposure)
    comes only from the ``rng`` passed to :meth:`render`.
    """

    def __init__(self, params: NirParams = NirParams(), seed: int = 0):
        if not isinstance(params, NirParams):
            raise ConfigError(f"NirRenderer: params must be NirParams, got {type(params).__name__}")
        self.params = p = params
        self.seed = int(seed)
        H, W = self.shape = check_size(p.size_px, "NirParams")
        rng = np.random.default_rng(self.seed)
        s0 = p.fov_mm / W
        period = (2 * H, 2 * W)
        self._skin = PeriodicBank(self._make_skin(rng, period, s0), (H, W))
        self._noise = PeriodicBank(rng.standard_normal((2, *period)).astype(np.float32), (H, W))
        self.reflectance = 0.78 - 0.3 * p.skin_tone
        self._camera, self._glare = self._make_camera(rng)
        self._camera *= np.float32(self.reflectance)
        self._tone_factor = 1.0 - 0.35 * p.skin_tone
        #: apparent contrast a vein needs to be labelled (see the module docstring)
        self.label_threshold = max(
            p.vein_label_min_contrast, p.vein_label_clutter_factor * (p.skin_texture + p.noise_sigma)
        )

    # ------------------------------------------------------------------ construction
    def _make_skin(self, rng: np.random.Generator, shape: tuple[int, int], s_mm: float) -> NDArray[np.float32]:
        p = self.params
        px = 1.0 / s_mm

        def noise(sr_mm: float, sc_mm: float) -> NDArray[np.float32]:
            return periodic_noise(rng, shape, (sr_mm * px, sc_mm * px))

        fine = noise(0.08, 0.08)
        mottle = noise(2.5, 2.5)
        creases = ridge_lines(noise(1.5, 6.0), 0.06) + 0.5 * ridge_lines(noise(0.6, 0.8), 0.04)
        pores = np.clip(noise(0.05, 0.05) - 2.0, 0.0, None)
        skin = 1.0 + p.skin_texture * (0.6 * fine + 0.5 * mottle - 0.8 * creases - 1.5 * pores)
        hair = np.zeros(shape, np.uint8)
        area_cm2 = shape[0] * shape[1] * s_mm * s_mm / 100.0
        n_hair = int(rng.poisson(p.hair_density * area_cm2))
        if n_hair and p.hair_darkness > 0:
            curves = []
            for _ in range(n_hair):
                start = rng.uniform((0, 0), (shape[1], shape[0]))
                angle = rng.normal(0.0, 0.5) + (math.pi if rng.random() < 0.5 else 0.0)  # mostly along the arm
                length = rng.uniform(2.0, 9.0) * px
                bend = rng.normal(0.0, 0.25)
                k = np.linspace(0.0, 1.0, 10)
                theta = angle + bend * k
                steps = np.stack([np.cos(theta), np.sin(theta)], 1) * (length / 9.0)
                pts = start + np.cumsum(steps, 0) - steps[0]
                for dx in (-shape[1], 0, shape[1]):  # wrap so the layer stays periodic
                    for dy in (-shape[0], 0, shape[0]):
                        curves.append(np.round((pts + (dx, dy)) * 16).astype(np.int32))
            thickness = max(1, int(round(0.06 * px)))
            cv2.polylines(hair, curves, False, 255, thickness, cv2.LINE_AA, shift=4)
        skin *= 1.0 - p.hair_darkness * (hair.astype(np.float32) / 255.0)
        return np.clip(skin, 0.05, None)[None].astype(np.float32)

    def _make_camera(self, rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Camera-fixed layers: multiplicative lighting (gradient x vignetting), additive glare."""
        p = self.params
        H, W = self.shape
        yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
        phi = rng.uniform(0, 2 * math.pi)
        light = 1.0 + 0.5 * p.lighting_gradient * (math.cos(phi) * xx + math.sin(phi) * yy)
        light *= 1.0 - p.vignetting * (xx * xx + yy * yy) / 2.0
        glare = np.zeros((H, W), np.float32)
        n_spots = int(rng.poisson(1.0 + 4.0 * p.glare)) if p.glare > 0 else 0
        for _ in range(n_spots):
            cy, cx = rng.uniform(-0.9, 0.9, 2)
            sig = rng.uniform(0.01, 0.06)
            amp = p.glare * rng.uniform(0.2, 0.6)
            elong = rng.uniform(1.0, 2.5)
            glare += amp * np.exp(-(((xx - cx) / (sig * elong)) ** 2 + ((yy - cy) / sig) ** 2) / 2)
        return light.astype(np.float32), glare.astype(np.float32)

    # ------------------------------------------------------------------ geometry
    def pixel_to_world(
        self, rows: ArrayLike, cols: ArrayLike, view: NirView
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """World (x, y) seen by pixel (row, col) under ``view`` (the documented mapping)."""
        H, W = self.shape
        s = view.fov_mm / W
        return (
            view.x_mm + (np.asarray(cols, float) - W / 2 + 0.5) * s,
            view.y_mm + (np.asarray(rows, float) - H / 2 + 0.5) * s,
        )

    def world_to_pixel(self, points_world: ArrayLike, view: NirView) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(row, col) of world points (..., 3) projected straight down; float, not clipped."""
        p = np.asarray(points_world, float)
        H, W = self.shape
        s = view.fov_mm / W
        return (p[..., 1] - view.y_mm) / s + H / 2 - 0.5, (p[..., 0] - view.x_mm) / s + W / 2 - 0.5

    # ------------------------------------------------------------------ render
    def render(
        self, phantom: Phantom, view: NirView, t_s: float, rng: np.random.Generator, needle: NeedlePose | None = None
    ) -> ImageFrame:
        """One NIR frame with vein labels and ground truth at time ``t_s``."""
        check_rng(rng)
        if not isinstance(phantom, Phantom):
            raise ConfigError(f"render: phantom must be an ir_robot.sim.phantom.Phantom, got {type(phantom).__name__}")
        if view.fov_mm <= 0:
            raise ConfigError(f"NirView.fov_mm must be > 0, got {view.fov_mm}")
        p = self.params
        H, W = self.shape
        s = view.fov_mm / W
        off = phantom.offset_mm(t_s)
        xw, yw = self.pixel_to_world(np.arange(H), np.arange(W), view)  # (W,) x per column, (H,) y per row
        xs, ys = xw - off[0], yw - off[1]

        # skin (anchored to the phantom) x camera lighting
        r0 = int(round((view.y_mm - off[1]) / s))
        c0 = int(round((view.x_mm - off[0]) / s))
        img = self._skin.crop(0, r0, c0) * self._camera  # camera map includes the skin reflectance

        labels = np.zeros((H, W), np.uint8)
        a = phantom.radius_mm(t_s)
        b = a * np.array([v.compression for v in phantom.spec.vessels])
        yc, zc = phantom.centreline(xs)  # (W, n)
        yc_mid, zc_mid = phantom.centreline(np.array([view.x_mm - off[0]]))
        centres: list[tuple[float, float]] = []
        depths: list[float] = []
        kinds: list[str] = []
        for i in range(phantom.n_vessels):
            artery = bool(phantom.is_artery[i])
            mu = p.absorption_per_mm * (p.artery_absorption_factor if artery else 1.0)
            depth_c = -zc[:, i]
            sigma_mm = p.blur_mm_per_mm_depth * float(depth_c.mean())
            # blurred absorption profile across the vessel (1D, along y), exact footprint |dy| < 1
            u, prof = self._profile(a[i], b[i], mu, sigma_mm, s)
            gain_c = np.exp(-np.maximum(depth_c - b[i], 0.0) / p.depth_contrast_mm) * self._tone_factor  # (W,)
            half = -u[0]
            rows = np.flatnonzero((ys > yc[:, i].min() - half) & (ys < yc[:, i].max() + half))
            if rows.size == 0:
                continue
            rs = slice(rows[0], rows[-1] + 1)
            rel = ys[rs, None] - yc[None, :, i]
            idx = np.clip(np.rint((rel + half) * (4.0 / s)), 0, u.size - 1).astype(np.intp)
            img[rs] *= 1.0 - prof[idx] * gain_c.astype(np.float32)[None, :]
            peak = float(prof[u.size // 2])
            visible = peak * gain_c >= self.label_threshold  # (W,)
            faint = peak * gain_c >= p.vein_ignore_fraction * self.label_threshold  # (W,)
            inside = np.abs(rel / a[i]) < 1.0
            lab = labels[rs]
            unset = lab == 0
            if artery:  # NIR cannot tell it from a vein: don't care wherever a vein would count or be forgiven
                lab[inside & faint[None, :] & unset] = LABEL_IGNORE
                continue
            lab[inside & faint[None, :] & ~visible[None, :] & unset] = LABEL_IGNORE
            lab[inside & visible[None, :]] = LABEL_VEIN
            d_mid = -float(zc_mid[0, i])
            g_mid = math.exp(-max(d_mid - b[i], 0.0) / p.depth_contrast_mm) * self._tone_factor
            row_mid = (float(yc_mid[0, i]) + off[1] - view.y_mm) / s + H / 2 - 0.5
            if peak * g_mid >= self.label_threshold and -0.5 <= row_mid <= H - 0.5:
                centres.append((float(row_mid), float(W / 2 - 0.5)))
                depths.append(d_mid)
                kinds.append("vein")

        # outside the phantom block: the table
        blk = phantom.spec.block
        col_out = np.abs(xs) > blk.length_mm / 2
        row_out = np.abs(ys) > blk.width_mm / 2
        if col_out.any() or row_out.any():
            img[:, col_out] = _BACKGROUND
            img[row_out, :] = _BACKGROUND
            labels[:, col_out] = 0
            labels[row_out, :] = 0

        needle_meta: dict[str, Any] = {"needle_visible": False}
        tip_px = None
        if needle is not None:
            tip_px, needle_meta = self._draw_needle(img, needle, view, off)

        img += self._glare
        if p.optics_blur_px > 0.3:
            img = cv_float32(cv2.GaussianBlur(img, (0, 0), p.optics_blur_px))
        noise, noise_key = self._noise_crop(rng)
        gain = np.float32(255.0 * (1.0 + p.exposure_jitter * float(rng.standard_normal())))
        img += np.float32(p.noise_sigma) * noise
        img *= gain
        np.clip(img, 0.0, 255.0, out=img)
        image = img.astype(np.uint8)
        meta = {
            "view": {"x_mm": view.x_mm, "y_mm": view.y_mm, "fov_mm": view.fov_mm},
            "params": to_dict(p),
            "params_name": p.name,
            "seed": self.seed,
            "noise_crop": noise_key,
            "phantom": phantom.spec.name,
            "phantom_offset_mm": tuple(float(v) for v in off),
            "label_rule": (
                f"vein lumen footprint where apparent contrast >= {self.label_threshold:.3g}; "
                f"don't care ({LABEL_IGNORE}) for veins >= "
                f"{p.vein_ignore_fraction * self.label_threshold:.3g} and arteries of that contrast"
            ),
            **needle_meta,
        }
        return ImageFrame(
            "nir", image, (s, s), float(t_s), labels, tip_px, tuple(centres), tuple(depths), tuple(kinds), meta
        )

    def _noise_crop(self, rng: np.random.Generator) -> tuple[NDArray[np.float32], tuple[int, int, int, int]]:
        return self._noise.random_crop(rng)

    def _profile(
        self, a: float, b: float, mu: float, sigma_mm: float, s: float
    ) -> tuple[NDArray[np.floating], NDArray[np.float32]]:
        """Absorption across a lumen, ``1 - exp(-mu * chord)``, blurred by ``sigma_mm``; sampled every s/4.

        Returns (offsets_mm, profile) with offsets symmetric about 0 (the centre sample is the peak).
        """
        step = s / 4.0
        half_n = int(math.ceil((a + 4.0 * sigma_mm + 2.0 * s) / step))
        u = np.arange(-half_n, half_n + 1) * step
        q = np.clip(1.0 - (u / a) ** 2, 0.0, None)
        prof = (1.0 - np.exp(-mu * 2.0 * b * np.sqrt(q))).astype(np.float32)[None, :]
        if sigma_mm > 0:
            prof = cv_float32(
                cv2.GaussianBlur(prof, (0, 1), sigmaX=sigma_mm / step, sigmaY=0.0, borderType=cv2.BORDER_CONSTANT)
            )
        return u, prof[0]

    def _draw_needle(
        self, img: NDArray[np.float32], needle: NeedlePose, view: NirView, off: NDArray[np.float64]
    ) -> tuple[tuple[float, float] | None, dict[str, Any]]:
        """Draw the shaft above the skin (metal: dark rim, bright specular centre). Returns (tip_px, meta)."""
        H, W = self.shape
        s = view.fov_mm / W
        T = np.asarray(needle.tip_mm, float)
        D = np.asarray(needle.direction, float)
        norm = float(np.linalg.norm(D))
        if norm < 1e-9:
            raise ConfigError("NeedlePose.direction must be a non-zero vector")
        D = D / norm
        row_t, col_t = self.world_to_pixel(T, view)
        tip_px = None
        if -0.5 <= row_t <= H - 0.5 and -0.5 <= col_t <= W - 0.5:
            tip_px = (float(row_t), float(col_t))
        meta: dict[str, Any] = {"needle_visible": False, "tip_under_skin": bool(T[2] < off[2])}
        # shaft S(s) = T - s D, above the skin where S_z > off_z
        lo, hi = 0.0, float(needle.length_mm)
        if abs(D[2]) > 1e-12:
            s_skin = (T[2] - off[2]) / D[2]
            if D[2] < 0:
                lo = max(lo, s_skin)
            else:
                hi = min(hi, s_skin)
        elif T[2] < off[2]:
            hi = lo - 1.0
        if hi <= lo:
            return tip_px, meta
        pts = np.array([T - lo * D, T - hi * D])
        rr, cc = self.world_to_pixel(pts, view)
        p0 = (int(round(cc[0] * 16)), int(round(rr[0] * 16)))
        p1 = (int(round(cc[1] * 16)), int(round(rr[1] * 16)))
        ok, _, _ = cv2.clipLine((0, 0, W * 16, H * 16), p0, p1)
        if not ok:
            return tip_px, meta
        width = max(1, int(round(needle.diameter_mm / s)))
        cv2.line(img, p0, p1, 0.22 * self.reflectance, width + 2, cv2.LINE_AA, shift=4)
        cv2.line(img, p0, p1, 0.95, max(1, width // 2), cv2.LINE_AA, shift=4)
        meta["needle_visible"] = True
        meta["needle_angle_deg"] = math.degrees(math.atan2(D[1], D[0]))  # top-down heading in the image
        return tip_px, meta
