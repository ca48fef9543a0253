"""The lumen test's verdict (``lumen_verdict``) on force traces shaped like the needle world's.

A flat force while the needle advances means no membrane ahead; a wall tenting ahead pushes
back harder with every 0.1 mm. Right after a tear the torn membrane's residual force relaxes,
and that fall can cancel the tenting wall's rise during the short probe: the forward travel
from the drop to the probe's start must be flat too.
"""

import numpy as np
import pytest

from ir_robot.control.venipuncture import SETTLE_TICKS, lumen_verdict, probe_sample_ready

THRESHOLD = 0.15  # N/mm, config/venipuncture.yaml
TEAR = 0.08  # N, the force monitor's drop threshold


def trace(s0, s1, force, n=12, noise=0.0, seed=0):
    s = np.linspace(s0, s1, n)
    f = force(s) + noise * np.random.default_rng(seed).standard_normal(n)
    return list(zip(s.tolist(), f.tolist(), strict=True))


def test_a_flat_force_in_the_lumen_passes_with_or_without_an_approach():
    lumen = trace(14.15, 14.55, lambda s: 0.30 + 0.02 * (s - 14.15), noise=0.01)
    ok, why = lumen_verdict(lumen, [], THRESHOLD, TEAR)
    assert ok and "flat" in why
    # after a real tear short of the start, the residual force falls on the way: still the lumen
    relaxing = trace(13.7, 14.1, lambda s: 0.6 - 0.5 * (s - 13.7))
    ok, why = lumen_verdict(lumen, relaxing, THRESHOLD, TEAR)
    assert ok and "on the way" in why


def test_a_wall_tenting_during_the_probe_fails():
    tenting = trace(14.15, 14.55, lambda s: 0.2 + 0.6 * (s - 14.15))
    ok, why = lumen_verdict(tenting, [], THRESHOLD, TEAR)
    assert not ok and "rising" in why


def test_a_wall_pushed_on_the_way_to_the_probe_fails_even_if_the_probe_reads_flat():
    """Held-out seed 7146 (2.8 mm vein): the fascia tore 0.9 mm short of the target; on the way to
    the probe's start the force rose 0.06 -> 0.48 N (the vein wall tenting), then read flat
    (+0.13 N/mm) while the fascia's residual relaxed. Confirming there left the tip in a tented
    wall, outside the lumen, for the whole hold."""
    approach = trace(13.74, 14.14, lambda s: 0.17 + 0.77 * (s - 13.74), noise=0.01)
    probe = trace(14.14, 14.54, lambda s: 0.48 + 0.125 * (s - 14.14), noise=0.01, seed=1)
    ok, why = lumen_verdict(probe, approach, THRESHOLD, TEAR)
    assert not ok
    assert "rising +0.7" in why and "on the way" in why
    # the probe alone would have passed: the approach is what catches it
    assert lumen_verdict(probe, [], THRESHOLD, TEAR)[0]


def test_a_wall_that_tore_between_the_approach_and_the_probe_is_the_lumen():
    """Small-vein seed 5069 (1.4 mm vein): the wall tented on the way (+0.87 N/mm, up to 0.59 N) and
    tore as the probe started, with the needle standing still, so no drop was counted; the probe
    then read flat at ~0 N. The tip is in the lumen: searching deeper would find the back wall."""
    approach = trace(14.72, 14.92, lambda s: 0.42 + 0.87 * (s - 14.72), n=5)
    probe = trace(14.94, 15.33, lambda s: 0.0 * s, noise=0.01)
    ok, why = lumen_verdict(probe, approach, THRESHOLD, TEAR)
    assert ok and "tore" in why
    # a fall smaller than a tear (the residual's relaxation) does not void the approach
    held = trace(14.94, 15.33, lambda s: 0.58 + 0.0 * s, noise=0.005)
    assert not lumen_verdict(held, approach, THRESHOLD, TEAR)[0]


@pytest.mark.parametrize("probe", [[], [(14.2, 0.3), (14.3, 0.3)], [(14.2, 0.3), (14.21, 0.3), (14.22, 0.3)]])
def test_too_short_a_probe_never_confirms(probe):
    ok, why = lumen_verdict(probe, [], THRESHOLD, TEAR)
    assert not ok and "too few" in why


def test_a_short_approach_is_noise_not_a_wall():
    """Held-out seed 7043: 4 samples over 0.13 mm in the lumen fitted +0.14 N/mm: a 0.02 N rise, a
    quarter of a puncture drop. A short noisy approach must not send the needle on towards the
    back wall; the same slope over a real tenting travel must."""
    lumen = trace(14.80, 15.19, lambda s: 0.0 * s, noise=0.008, seed=3)
    short = trace(14.66, 14.79, lambda s: 0.3 * (s - 14.66), n=4)
    assert lumen_verdict(lumen, short, THRESHOLD, TEAR)[0]
    long = trace(14.0, 14.79, lambda s: 0.3 * (s - 14.0), n=20)
    assert not lumen_verdict(trace(14.80, 15.19, lambda s: 0.24 + 0.0 * s), long, THRESHOLD, TEAR)[0]


def test_a_stage_that_starts_late_does_not_fill_the_probe_with_the_friction_turning_round():
    """The emulated GRBL rig (ROS rig graph, 2026-11-25): after stepping back to the probe's start the stage
    stood for 4 ticks before its jog ran, with the shaft friction reversed (-0.06 N), and the filtered force
    caught up 2 ticks after it moved (+0.17 N, flat in the lumen). Sampling from the 4th tick on read that
    turn-round as +0.49 N/mm, a membrane ahead; samples wait for the travel the settle ticks cover."""
    dt, v = 0.05, 0.4  # control period, probe speed (config/venipuncture.yaml)
    s0, ticks = 23.118, []
    for k in range(1, 22):
        moving = max(k - 4, 0)  # the jog starts on the 5th tick
        s = min(s0 + moving * v * dt, 23.52)
        f = -0.06 if moving <= 2 else 0.17 + 0.01 * (s - s0)
        ticks.append((k, s, f))

    def probe(ready):
        return [(s, f) for k, s, f in ticks if ready(k, s - s0)]

    ok, why = lumen_verdict(probe(lambda k, d: probe_sample_ready(k, d, dt, v)), [], THRESHOLD, TEAR)
    assert ok and "flat" in why, why
    ok, why = lumen_verdict(probe(lambda k, d: k > SETTLE_TICKS), [], THRESHOLD, TEAR)  # ticks alone
    assert not ok and "rising" in why
