"""Artery or vein from a few seconds of ultrasound: the pulse, not the single frame.

A single B-mode frame separates arteries from veins only by wall thickness and roundness,
1-3 pixels at the network's input, and the segmenter's artery/vein vote is right for about
92 % of the vessels (docs/perception.md). An artery pulsates; a vein does not. With the probe
held still, :class:`VesselKindTracker` follows every cross-section over the last
``window_s`` seconds of frames and lets the pulse decide::

    kinds = VesselKindTracker()
    for frame in frames:                          # one probe position, ~10 frames/s
        res = kinds.update(us.predict(frame), frame.stamp_s)
    res.vessels[k].kind                           # "artery" if its area pulses, "vein" if it clearly does not

Vessels are followed by their centre (nearest within ``gate_mm`` of the last position). The
verdict comes from :func:`ir_robot.planning.pulsatility.assess_pulsatility` (the same test the
controller's artery check uses before inserting) on the vessel's lumen area and width; an
``unknown`` verdict (too few frames, an unstable segmentation, a weak or incoherent swing)
keeps the segmenter's vote. A probe that moves changes the cross-sections by itself: call
:meth:`VesselKindTracker.reset` when it does.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ir_robot.planning.pulsatility import (
    ARTERY,
    VEIN,
    CrossSectionSeries,
    PulsatilityError,
    PulsatilityParams,
    assess_pulsatility,
)

if TYPE_CHECKING:
    from ir_robot.perception.postprocess import UsResult, VesselDetection


#: the pulsatility test's thresholds unless a tracker is given others
DEFAULT_PULSATILITY = PulsatilityParams()


@dataclasses.dataclass(eq=False)
class _Track:
    centre_mm: NDArray[np.float64]
    samples: deque[tuple[float, float, float]]  # (t_s, area_mm2, width_mm)
    last_s: float
    verdict: str = ""


class VesselKindTracker:
    """Per-vessel pulsatility over a sliding window of ultrasound results (see the module docstring).

    Args:
        window_s: seconds of frames a verdict is made from (the pulse band needs >= 1.5 s).
        gate_mm: a cross-section continues a track whose last centre is this close.
        params: the pulsatility test's thresholds (``band_hz``, ``artery_index``, ...).
    """

    def __init__(self, window_s: float = 2.0, gate_mm: float = 1.0, params: PulsatilityParams = DEFAULT_PULSATILITY):
        if not window_s > 0 or not gate_mm > 0:
            raise ValueError(f"window_s and gate_mm must be > 0, got {window_s}, {gate_mm}")
        self.window_s = float(window_s)
        self.gate_mm = float(gate_mm)
        self.params = params
        self._tracks: list[_Track] = []
        self._last_s = -math.inf

    def reset(self) -> None:
        """Forget every track (the probe moved)."""
        self._tracks.clear()
        self._last_s = -math.inf

    def update(self, result: UsResult, stamp_s: float) -> UsResult:
        """Add one frame's :class:`~ir_robot.core.results.UsResult`; return it with each vessel's
        ``kind`` set by its pulse where the test gives a verdict (else the segmenter's vote).
        """
        t = float(stamp_s)
        if not math.isfinite(t) or t <= self._last_s:
            raise ValueError(f"stamps must increase: {t} after {self._last_s}")
        self._last_s = t
        self._tracks = [tr for tr in self._tracks if t - tr.last_s <= self.window_s]
        sy, sx = result.spacing_mm
        out: list[VesselDetection] = []
        free = list(self._tracks)
        for v in result.vessels:
            if v.band:
                out.append(v)
                continue
            c = np.asarray(v.centre_mm, dtype=float)
            best = min(free, key=lambda tr: float(np.hypot(*(tr.centre_mm - c))), default=None)
            if best is None or float(np.hypot(*(best.centre_mm - c))) > self.gate_mm:
                best = _Track(c, deque(), t)
                self._tracks.append(best)
            else:
                free.remove(best)
            best.centre_mm, best.last_s = c, t
            best.samples.append((t, v.area_px * sy * sx, v.width_mm or v.diameter_mm))
            while best.samples and t - best.samples[0][0] > self.window_s:
                best.samples.popleft()
            best.verdict = self._assess(best)
            out.append(dataclasses.replace(v, kind=best.verdict) if best.verdict in (ARTERY, VEIN) else v)
        return dataclasses.replace(result, vessels=tuple(out))

    def _assess(self, track: _Track) -> str:
        t, a, w = (np.array(x, dtype=float) for x in zip(*track.samples, strict=True))
        try:
            return assess_pulsatility(CrossSectionSeries.from_samples(t, a, w), self.params).verdict
        except PulsatilityError:
            return ""
