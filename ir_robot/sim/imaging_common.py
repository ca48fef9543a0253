"""Helpers shared by the ultrasound and NIR image synthesis.

* Periodic noise textures made once at renderer construction (FFT-filtered white
  noise, so any crop offset taken modulo the period is seamless) and cropped per
  frame as array *views* (no copy, no per-pixel Python).
* Parameter sampling for domain randomisation: draw every randomisable field of a
  frozen params dataclass from a plausible range, validate the result through
  :func:`ir_robot.config.from_dict` (so overrides get the same range checks as YAML).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import scipy.fft as sfft
from numpy.typing import ArrayLike, NDArray

from ir_robot.config import from_dict, to_dict
from ir_robot.core.errors import ConfigError

if TYPE_CHECKING:
    import cv2
    from _typeshed import DataclassInstance

#: a frozen params dataclass (UltrasoundParams, NirParams)
P = TypeVar("P", bound="DataclassInstance")


def check_rng(rng: object) -> np.random.Generator:
    """Refuse anything but a numpy Generator (no global RNG anywhere)."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"rng: expected a numpy.random.Generator, got {type(rng).__name__}; pass np.random.default_rng(seed)"
        )
    return rng


def gaussian_gain(shape: tuple[int, int], sigma_px: tuple[float, float], real: bool = True) -> NDArray[np.float32]:
    """Fourier-domain transfer function of an (row, col) Gaussian blur, for rfft2 (``real``) or fft2."""
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = (np.fft.rfftfreq(w) if real else np.fft.fftfreq(w))[None, :]
    sr, sc = sigma_px
    return np.exp(-2.0 * math.pi**2 * ((sr * ky) ** 2 + (sc * kx) ** 2)).astype(np.float32)


def periodic_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma_px: tuple[float, float]
) -> NDArray[np.float32]:
    """Zero-mean, unit-std Gaussian noise low-passed by an (row, col) Gaussian of ``sigma_px``; periodic.

    Made in the Fourier domain, so the field wraps around seamlessly at both edges.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    if max(sigma_px) > 0:
        white = sfft.irfft2(sfft.rfft2(white, workers=1) * gaussian_gain(shape, sigma_px), s=shape, workers=1)
    out = white - white.mean()
    std = out.std()
    return (out / (std if std > 0 else 1.0)).astype(np.float32)


def speckle_envelope(
    rng: np.random.Generator, shape: tuple[int, int], sigma_px: tuple[float, float], density: float = 1.0
) -> NDArray[np.float32]:
    """Periodic speckle: |complex Gaussian scatterers (kept with probability ``density``) * Gaussian PSF|.

    Rayleigh-distributed when ``density`` is high (fully developed speckle); the grain size
    follows the PSF ``sigma_px`` (row, col). Mean normalised to 1.
    """
    z = rng.standard_normal((*shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
    if density < 1.0:
        z = z * (rng.random(shape, dtype=np.float32) < density)
    env = np.abs(sfft.ifft2(sfft.fft2(z, workers=1) * gaussian_gain(shape, sigma_px, real=False), workers=1))
    return (env / max(float(env.mean()), 1e-12)).astype(np.float32)


def cv_float32(img: cv2.typing.MatLike) -> NDArray[np.float32]:
    """An OpenCV result typed as the float32 image it is: OpenCV keeps its input's dtype, while its
    stubs say only "some image". No conversion happens here.
    """
    return cast("NDArray[np.float32]", img)


def ridge_lines(field: NDArray[np.float32], width: float) -> NDArray[np.float32]:
    """Thin curvy lines (values in [0, 1]) along the zero level set of a smooth noise field."""
    return np.exp(-((field / np.float32(width)) ** 2)).astype(np.float32)


class PeriodicBank:
    """A stack of periodic textures, padded by one crop size so every crop is a slice (a view).

    ``crop(k, r0, c0)`` returns an (H, W) view of texture ``k`` starting at (r0, c0) taken
    modulo the period; offsets may be any integers (negative too).
    """

    def __init__(self, textures: ArrayLike, crop_shape: tuple[int, int]):
        textures = np.asarray(textures, dtype=np.float32)
        if textures.ndim == 2:
            textures = textures[None]
        self.period = textures.shape[1:]
        self.crop_shape = (int(crop_shape[0]), int(crop_shape[1]))
        h, w = self.crop_shape
        reps_r = -(-h // self.period[0])
        reps_c = -(-w // self.period[1])
        tiled = np.tile(textures, (1, reps_r + 1, reps_c + 1))
        self._data = np.ascontiguousarray(tiled[:, : self.period[0] + h, : self.period[1] + w])

    def __len__(self) -> int:
        return self._data.shape[0]

    def crop(self, k: int, r0: int, c0: int) -> NDArray[np.float32]:
        """An (H, W) view (no copy) of texture ``k`` from (r0, c0), offsets taken modulo the period."""
        h, w = self.crop_shape
        r0 = int(r0) % self.period[0]
        c0 = int(c0) % self.period[1]
        return self._data[k, r0 : r0 + h, c0 : c0 + w]

    def random_crop(self, rng: np.random.Generator) -> tuple[NDArray[np.float32], tuple[int, int, int, int]]:
        """A random texture, offset and flip drawn from ``rng``; returns (view, (k, r0, c0, flip))."""
        k, r0, c0, flip = (int(v) for v in rng.integers(0, (len(self), self.period[0], self.period[1], 4)))
        view = self.crop(k, r0, c0)
        if flip & 1:
            view = view[::-1]
        if flip & 2:
            view = view[:, ::-1]
        return view, (k, r0, c0, flip)


def sample_params(
    cls: type[P], rng: np.random.Generator, ranges: dict[str, tuple[float, float]], overrides: dict[str, Any]
) -> P:
    """Instance of params dataclass ``cls`` with fields in ``ranges`` drawn uniformly from ``rng``.

    ``ranges`` maps field name -> (lo, hi) (ints drawn as integers). ``overrides`` fix
    fields; unknown names and out-of-range values raise :class:`ConfigError`.
    """
    check_rng(rng)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; fields are {sorted(names)}")
    data = to_dict(cls())
    for name in sorted(ranges):  # sorted: the draw order never depends on dict order
        lo, hi = ranges[name]
        value: float
        if isinstance(lo, int) and isinstance(hi, int):
            value = int(rng.integers(lo, hi + 1))
        else:
            value = float(rng.uniform(lo, hi))
        if name not in overrides:
            data[name] = value
    data.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()})
    data["name"] = overrides.get("name", "sampled")
    return from_dict(cls, data, source=f"sample_{cls.__name__}")


def check_size(size_px: Iterable[float], what: str) -> tuple[int, int]:
    """An image size (rows, cols) as ints, refusing one under 16x16 pixels with ``what`` named in the error."""
    h, w = (int(v) for v in size_px)
    if h < 16 or w < 16:
        raise ConfigError(f"{what}.size_px: image must be at least 16x16 pixels, got {size_px}")
    return h, w
