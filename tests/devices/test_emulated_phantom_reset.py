"""The emulated rig's phantom can be replaced between procedures, never with the needle in it."""

import pytest

from ir_robot.core.errors import RigError
from ir_robot.core.types import JointVector
from ir_robot.devices.emulated_phantom import EmulatedPhantom

# the pivot 3 mm above the skin over the forearm phantom's 5 mm deep vein, the stage's 20 deg tilt
PIVOT = JointVector(-21.9, 0.0, 3.0, 0.35, 0.0, 1.5708)


def _insert(phantom: EmulatedPhantom, to_mm: float, t0: float = 0.0, step_mm: float = 0.1) -> float:
    t, s = t0, 0.0
    while s < to_mm:
        s = min(s + step_mm, to_mm)
        t += 0.05
        phantom.force_fn(t, PIVOT.replace(insert_mm=s), step_mm / 0.05)
    return t


def test_reset_gives_a_fresh_phantom_and_is_refused_with_the_needle_in():
    phantom = EmulatedPhantom()
    t = _insert(phantom, 22.0)  # through the skin and the front wall of the vein
    assert phantom.flashback and any(e.membrane == "vessel_wall" for e in phantom.events())
    with pytest.raises(RigError, match="retract it"):
        phantom.reset()
    assert phantom.events()  # refused: nothing forgotten
    s = 22.0
    while s > 0.0:  # out again
        s = max(s - 0.2, 0.0)
        t += 0.05
        phantom.force_fn(t, PIVOT.replace(insert_mm=s), -4.0)
    phantom.reset()
    assert not phantom.flashback and not phantom.events() and not phantom.back_wall_punctured
    _insert(phantom, 22.0, t)  # the new block's membranes tear again
    assert {e.membrane for e in phantom.events()} >= {"skin", "vessel_wall"}
