"""Is this vessel an artery? A check that does not depend on the segmenter's artery/vein class.

An artery pulsates: its lumen swells and shrinks with every heart beat (0.8-3 Hz); a vein
does not, and the probe's pressure squashes it into an ellipse while an artery stays round.
Both cues come from the *size* of the vessel's cross-section in transverse ultrasound, which
a segmenter gets right far more reliably than the class it assigns the pixels.

Hold the probe transverse over the candidate for ~2 s, measure the cross-section of the
tracked vessel in every frame (area, lateral width), then::

    series = CrossSectionSeries.from_samples(t_s, area_mm2, width_mm)
    result = assess_pulsatility(series, PulsatilityParams())
    result.verdict        # "artery" | "vein" | "unknown"
    result.describe()     # the evidence, for the event log

**Pulsatility index.** The area series is made relative to its mean; a straight line (slow
drift: arm motion moving the image plane along a sloped vessel, tracking drift) and one
sinusoid are fitted together by least squares, the sinusoid's frequency scanned over the
pulse band (``band_hz``; a Lomb-Scargle periodogram with a trend term, so samples need not be
evenly spaced). The index is the fitted sinusoid's amplitude: the fractional area swing
(half peak-to-peak). A lumen whose radius swings by a fraction ``p`` swings in area by about
``2 p``, so the simulator's arteries (``p`` 0.04-0.10) give 0.08-0.20 and veins 0 plus
measurement noise. ``band_fraction`` is the share of the detrended variance the sinusoid
explains: a real pulse is one coherent frequency, segmentation noise is spread over all of
them, so a large amplitude that explains little is noise, not a pulse.

**The band starts at 0.8 Hz** (48 beats a minute). The arm's sway (0.05-0.5 Hz, the
tracker's ``motion_band_hz``) moves the image plane along a sloped vessel, so a vein's area swings
at the sway's frequency too; a 2 s dwell holds less than one such cycle, and a sinusoid at the
band's edge fits it as well as a pulse. So a candidate pulse must also explain more of the
variance than the best sinusoid in ``sway_band_hz``. With the band from 0.5 Hz, veins were called arteries
that way (fits at 0.50 Hz) on 1 of 131 test-clip vessels and 2 of 133 validation-clip vessels
(``ir-robot bench perception``; docs/perception.md).

**Shape.** ``aspect`` = height / width of the lumen, from the area and the lateral width
(``4 A / (pi w^2)``, an ellipse's axis ratio), median over the frames. A compressed lumen
(``aspect < compressed_aspect``) is vein-like; a round one says nothing either way (veins may
be round too).

**Verdict.** ``artery``: index >= ``artery_index`` and band fraction >= ``min_band_fraction``
(a clear coherent pulse). ``vein``: index < ``vein_index`` (no pulse larger than the noise
floor allows). Anything between, or a large but incoherent swing, is ``unknown``. A series too
short, too sparse for the band (Nyquist), with gaps, non-increasing stamps or non-finite or
non-positive sizes raises :class:`PulsatilityError` saying which. Frames whose area is far from
the median (``outlier_deviation``: the segmenter merged the lumen with a shadow, or lost half of
it) are left out; more than ``max_outlier_fraction`` of them is an error too (no verdict on an
unstable segmentation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.config import param

ARTERY, VEIN, UNKNOWN = "artery", "vein", "unknown"


class PulsatilityError(ValueError):
    """The series cannot be assessed (too short, too sparse, gaps, bad values)."""


@dataclass(frozen=True)
class PulsatilityParams:
    """Thresholds of :func:`assess_pulsatility` and the dwell that feeds it."""

    enabled: bool = param(True, help="check every target for a pulse before inserting")
    dwell_s: float = param(
        2.0,
        range=(0.5, 20.0),
        unit="s",
        help="time the probe stays transverse over the target collecting its cross-section",
    )
    max_dwell_s: float = param(
        4.0, range=(0.5, 30.0), unit="s", help="dwell at most this long waiting for enough usable frames"
    )
    band_hz: tuple[float, float] = param(
        (0.8, 3.0),
        range=(0.05, 20.0),
        unit="Hz",
        help="heart-rate band searched (48-180 per minute; see the module doc)",
    )
    artery_index: float = param(
        0.05, range=(0.0, 1.0), help="fractional area swing (half peak-to-peak) at or above which it pulsates"
    )
    vein_index: float = param(0.025, range=(0.0, 1.0), help="below this it does not pulsate")
    min_band_fraction: float = param(
        0.7, range=(0.0, 1.0), help="share of the detrended area variance a pulse must explain"
    )
    compressed_aspect: float = param(
        0.85, range=(0.1, 1.0), help="height/width below this: a compressed (vein-like) lumen"
    )
    min_samples: int = param(10, range=(4, 10000), help="frames needed")
    min_duration_s: float = param(1.5, range=(0.1, 60.0), unit="s", help="time span the frames must cover")
    max_gap_s: float = param(0.45, range=(0.01, 10.0), unit="s", help="largest gap allowed between frames")
    outlier_deviation: float = param(
        0.35,
        range=(0.05, 10.0),
        help="a frame whose area is this far (fraction) from the median is a segmentation outlier and left out",
    )
    max_outlier_fraction: float = param(
        0.2, range=(0.0, 1.0), help="more outliers than this share of the frames: unstable, no verdict"
    )
    freq_step_hz: float = param(0.02, range=(0.001, 1.0), unit="Hz", help="frequency grid of the periodogram")
    sway_band_hz: tuple[float, float] = param(
        (0.05, 0.5),
        range=(0.01, 20.0),
        unit="Hz",
        help="slower swings (the arm's sway): a pulse must fit better than "
        "any of them (empty band (x, x) disables the comparison)",
    )

    def __post_init__(self) -> None:
        if not self.band_hz[0] < self.band_hz[1]:
            raise ValueError(f"PulsatilityParams.band_hz must be (low, high) with low < high, got {self.band_hz}")
        if not self.vein_index <= self.artery_index:
            raise ValueError(
                f"PulsatilityParams: vein_index {self.vein_index} must not exceed artery_index {self.artery_index}"
            )
        if self.max_dwell_s < self.dwell_s:
            raise ValueError(
                f"PulsatilityParams: max_dwell_s {self.max_dwell_s} is shorter than dwell_s {self.dwell_s}"
            )


@dataclass(frozen=True, eq=False)
class CrossSectionSeries:
    """A vessel's cross-section over time: stamps (s), lumen area (mm^2) and lateral width (mm)."""

    t_s: NDArray[np.float64]
    area_mm2: NDArray[np.float64]
    width_mm: NDArray[np.float64] | None = None

    @classmethod
    def from_samples(cls, t_s: ArrayLike, area_mm2: ArrayLike, width_mm: ArrayLike | None = None) -> CrossSectionSeries:
        """A series from any sequences (flattened to float arrays), refusing ones of different lengths."""
        t = np.asarray(t_s, dtype=float).ravel()
        a = np.asarray(area_mm2, dtype=float).ravel()
        w = None if width_mm is None else np.asarray(width_mm, dtype=float).ravel()
        if len(a) != len(t) or (w is not None and len(w) != len(t)):
            raise PulsatilityError(
                f"series lengths differ: {len(t)} stamps, {len(a)} areas"
                + (f", {len(w)} widths" if w is not None else "")
            )
        return cls(t, a, w)

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def duration_s(self) -> float:
        """Time from the first stamp to the last (s), 0 for an empty series."""
        return float(self.t_s[-1] - self.t_s[0]) if len(self.t_s) else 0.0


@dataclass(frozen=True)
class PulsatilityResult:
    """The verdict and its evidence."""

    verdict: str  # "artery" | "vein" | "unknown"
    index: float  # fitted fractional area swing (half peak-to-peak)
    frequency_hz: float  # of the best-fitting sinusoid in the band
    band_fraction: float  # share of the detrended variance it explains
    aspect: float  # median height/width (nan without widths)
    compressed: bool  # aspect < compressed_aspect
    mean_area_mm2: float
    n_samples: int
    duration_s: float
    reason: str

    def describe(self) -> str:
        """The verdict with its evidence in one line, for the event log."""
        shape = (
            f", aspect {self.aspect:.2f}{' (compressed)' if self.compressed else ''}"
            if math.isfinite(self.aspect)
            else ""
        )
        return (
            f"{self.verdict}: area swing {100 * self.index:.1f} % at {self.frequency_hz:.2f} Hz "
            f"(explains {100 * self.band_fraction:.0f} % of the variation){shape}; "
            f"{self.n_samples} frames over {self.duration_s:.1f} s; {self.reason}"
        )


def check_series(series: CrossSectionSeries, params: PulsatilityParams = PulsatilityParams()) -> None:
    """Raise :class:`PulsatilityError` if ``series`` cannot be assessed with ``params``."""
    t, a = series.t_s, series.area_mm2
    n = len(t)
    if n < params.min_samples:
        raise PulsatilityError(f"too short: {n} frame(s), need at least {params.min_samples}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(a))):
        raise PulsatilityError("non-finite stamps or areas in the series")
    if np.any(a <= 0):
        raise PulsatilityError(f"non-positive area in the series (min {float(a.min()):.3g} mm^2)")
    dt = np.diff(t)
    if np.any(dt <= 0):
        i = int(np.argmax(dt <= 0))
        raise PulsatilityError(f"stamps not strictly increasing (frame {i + 1}: {t[i + 1]:.3f} s after {t[i]:.3f} s)")
    if series.duration_s < params.min_duration_s:
        raise PulsatilityError(f"too short: the frames span {series.duration_s:.2f} s, need {params.min_duration_s} s")
    if float(dt.max()) > params.max_gap_s:
        i = int(np.argmax(dt))
        raise PulsatilityError(
            f"irregular: a gap of {dt[i]:.2f} s between frames (at {t[i]:.2f} s; at most {params.max_gap_s} s allowed)"
        )
    nyquist = 0.5 / float(np.median(dt))
    if nyquist < params.band_hz[1]:
        raise PulsatilityError(
            f"sampled too slowly: median interval {float(np.median(dt)):.3f} s resolves up to "
            f"{nyquist:.2f} Hz, the band goes to {params.band_hz[1]} Hz"
        )


def pulse_fit(
    t_s: ArrayLike, rel: ArrayLike, band_hz: tuple[float, float], step_hz: float = 0.02
) -> tuple[float, float, float]:
    """Best sinusoid in ``band_hz`` fitted jointly with a straight line to ``rel`` (least squares).

    Returns ``(amplitude, frequency_hz, band_fraction)``: the sinusoid's amplitude, its frequency and
    the fraction of the variance left after the line that it explains (0 for a flat series).
    """
    t = np.asarray(t_s, dtype=float)
    y = np.asarray(rel, dtype=float)
    tc = t - t.mean()
    base = np.stack([np.ones_like(tc), tc], axis=1)
    coef, *_ = np.linalg.lstsq(base, y, rcond=None)
    r0 = y - base @ coef
    rss0 = float(r0 @ r0)
    if rss0 <= 1e-18:
        return 0.0, float("nan"), 0.0
    freqs = np.arange(band_hz[0], band_hz[1] + 0.5 * step_hz, step_hz)
    best = (0.0, float("nan"), 0.0)
    best_rss = rss0
    for f in freqs:
        w = 2 * math.pi * f * tc
        x = np.concatenate([base, np.cos(w)[:, None], np.sin(w)[:, None]], axis=1)
        c, *_ = np.linalg.lstsq(x, y, rcond=None)
        r = y - x @ c
        rss = float(r @ r)
        if rss < best_rss:
            best_rss = rss
            best = (float(math.hypot(c[2], c[3])), float(f), 1.0 - rss / rss0)
    return best


def assess_pulsatility(
    series: CrossSectionSeries, params: PulsatilityParams = PulsatilityParams()
) -> PulsatilityResult:
    """Pulsatility index, shape and verdict of one vessel's cross-section series (module docstring)."""
    check_series(series, params)
    dev = np.abs(series.area_mm2 / float(np.median(series.area_mm2)) - 1.0)
    keep = dev <= params.outlier_deviation
    n_out = int((~keep).sum())
    if n_out > params.max_outlier_fraction * len(series):
        raise PulsatilityError(
            f"unstable segmentation: {n_out} of {len(series)} frames' areas are more than "
            f"{100 * params.outlier_deviation:.0f} % from the median"
        )
    if n_out:
        series = CrossSectionSeries(
            series.t_s[keep], series.area_mm2[keep], None if series.width_mm is None else series.width_mm[keep]
        )
        check_series(series, params)
    a = series.area_mm2
    mean = float(a.mean())
    amp, freq, frac = pulse_fit(series.t_s, a / mean - 1.0, params.band_hz, params.freq_step_hz)
    aspect = float("nan")
    if series.width_mm is not None and np.all(np.isfinite(series.width_mm)) and np.all(series.width_mm > 0):
        aspect = float(np.median(4.0 * a / (math.pi * series.width_mm**2)))
    compressed = bool(math.isfinite(aspect) and aspect < params.compressed_aspect)
    pulsing = amp >= params.artery_index and frac >= params.min_band_fraction
    sway_frac = 0.0  # fitted only for a candidate pulse: the second periodogram is not needed otherwise
    if pulsing and params.sway_band_hz[0] < params.sway_band_hz[1]:
        sway_frac = pulse_fit(series.t_s, a / mean - 1.0, params.sway_band_hz, params.freq_step_hz)[2]
    if pulsing and frac <= sway_frac:
        verdict, reason = (
            UNKNOWN,
            (
                f"a slower swing (the arm's sway, {params.sway_band_hz[0]}-"
                f"{params.sway_band_hz[1]} Hz) explains {100 * sway_frac:.0f} %: not a pulse"
            ),
        )
    elif pulsing:
        verdict, reason = (
            ARTERY,
            (
                f"pulsatile (swing >= {100 * params.artery_index:.1f} %, coherent)"
                + ("; compressed like a vein, but a pulse is not" if compressed else "")
            ),
        )
    elif amp < params.vein_index:
        verdict, reason = (
            VEIN,
            (f"no pulse (swing < {100 * params.vein_index:.1f} %)" + ("; compressed" if compressed else "")),
        )
    elif amp >= params.artery_index:
        verdict, reason = (
            UNKNOWN,
            (
                f"large but incoherent swing (explains < {100 * params.min_band_fraction:.0f} %): "
                "measurement noise or a weak pulse"
            ),
        )
    else:
        verdict, reason = UNKNOWN, "weak swing between the vein and artery thresholds"
    if n_out:
        reason += f"; {n_out} outlier frame(s) left out"
    return PulsatilityResult(
        verdict, float(amp), float(freq), float(frac), aspect, compressed, mean, len(series), series.duration_s, reason
    )
