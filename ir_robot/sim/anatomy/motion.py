"""Cardiac and respiratory motion: a small, smooth displacement field of time applied to the centrelines.

Off by default. When on, a point ``x`` of the resting anatomy moves to ``x + u(x, t)`` with

* cardiac: ``u_c = A_c * g(f_c t) * exp(-|x - c_heart|^2 / (2 s_c^2)) * n_valve``, the root and
  ascending aorta pushed along the valve axis each beat (60-100 bpm), fading with distance;
* respiratory: ``u_r = -A_r * g(f_r t) * exp(-(z - z_diaphragm)^2 / (2 s_r^2)) * z_hat``, the vessels
  near the diaphragm pushed caudally on inspiration, fading above and below.

``g(phase) = (1 - cos(2 pi phase)) / 2`` is smooth, 0 at ``t = 0`` and 1 at the half period; the
field's gradient stays well below 1 for the allowed amplitudes and widths, so the tree stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ir_robot.config import param

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MotionSpec:
    """Amplitudes, rates and widths of the cardiac and respiratory displacement (off by default)."""

    enabled: bool = param(False, help="apply the displacement field at all")
    heart_rate_bpm: float = param(72.0, range=(60.0, 100.0), unit="1/min")
    cardiac_amplitude_mm: float = param(3.0, range=(0.0, 10.0), unit="mm", help="peak shift at the annulus")
    cardiac_width_mm: float = param(60.0, range=(20.0, 300.0), unit="mm", help="Gaussian fall-off from the heart")
    respiratory_rate_per_min: float = param(15.0, range=(6.0, 30.0), unit="1/min")
    respiratory_amplitude_mm: float = param(5.0, range=(0.0, 20.0), unit="mm", help="peak caudal shift")
    respiratory_width_mm: float = param(120.0, range=(40.0, 400.0), unit="mm", help="fall-off from the diaphragm")


def _pulse(phase: float) -> float:
    """Smooth periodic waveform in [0, 1], 0 at phase 0."""
    return float(0.5 * (1.0 - np.cos(2.0 * np.pi * phase)))


def displacement(
    spec: MotionSpec,
    points: FloatArray,
    t_s: float,
    *,
    heart_centre_mm: FloatArray,
    valve_normal: FloatArray,
    diaphragm_z_mm: float,
) -> FloatArray:
    """The displacement ``u(x, t)`` (mm) of resting points ``(n, 3)`` at time ``t_s``; zero when disabled."""
    points = np.asarray(points, dtype=np.float64)
    out = np.zeros_like(points)
    if not spec.enabled:
        return out
    g_c = _pulse(spec.heart_rate_bpm / 60.0 * t_s)
    if spec.cardiac_amplitude_mm > 0.0 and g_c != 0.0:
        d2 = np.sum((points - heart_centre_mm) ** 2, axis=1)
        w = np.exp(-d2 / (2.0 * spec.cardiac_width_mm**2))
        out += (spec.cardiac_amplitude_mm * g_c * w)[:, None] * valve_normal[None, :]
    g_r = _pulse(spec.respiratory_rate_per_min / 60.0 * t_s)
    if spec.respiratory_amplitude_mm > 0.0 and g_r != 0.0:
        dz = points[:, 2] - diaphragm_z_mm
        w = np.exp(-(dz**2) / (2.0 * spec.respiratory_width_mm**2))
        out[:, 2] -= spec.respiratory_amplitude_mm * g_r * w
    return out
