"""Fault injection for the venipuncture controller: bad sensors and bad input on purpose.

* :class:`SpikyForceRig` adds force-sensor spikes to a rig's readings (a Rig itself);
* :class:`DropoutPerception` makes a predictor find nothing (no vessel, no needle) in
  time windows (a perception drop-out);
* :func:`blank_camera` replaces the images of a camera function by black frames in time
  windows (lost probe contact, frozen video).

Windows are ``(start_s, end_s)`` in the rig's clock (frame ``stamp_s`` for images).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol, cast

import numpy as np

from ir_robot.core.types import JointVector, Observation, RigCommand, RigState
from ir_robot.devices.base import Rig


class _SimulatedClock(Protocol):
    """A rig on a simulated clock (SimRig, or a SafeRig around one): time moves only through ``advance``."""

    def advance(self, dt: float) -> object: ...


def _inside(t: float, windows) -> bool:
    return any(a <= t < b for a, b in windows)


class SpikyForceRig(Rig):
    """Wraps a rig; readings inside ``windows`` get ``spike_n`` added (single-sample spikes when
    the windows are shorter than a control period).
    """

    def __init__(self, rig: Rig, windows: list[tuple[float, float]], spike_n: float = 3.0):
        self.rig = rig
        self.windows = list(windows)
        self.spike_n = float(spike_n)
        self.movable_joints = rig.movable_joints
        self.spikes_sent = 0

    def read_state(self) -> RigState:
        """The wrapped rig's state, with ``spike_n`` added to the force inside the windows."""
        s = self.rig.read_state()
        if _inside(s.stamp_s, self.windows):
            self.spikes_sent += 1
            return dataclasses.replace(s, force_n=s.force_n + self.spike_n)
        return s

    def command(self, cmd: RigCommand) -> None:
        """Passes the command to the wrapped rig."""
        self.rig.command(cmd)

    def move_to(self, target: JointVector, speed_mm_s: float = 5.0) -> None:
        """Passes the move to the wrapped rig."""
        self.rig.move_to(target, speed_mm_s)

    def stop(self, reason: str = "") -> None:
        """Stops the wrapped rig."""
        self.rig.stop(reason)

    def limits(self):
        """The wrapped rig's joint limits."""
        return self.rig.limits()

    def velocity_limits(self):
        """The wrapped rig's velocity limits."""
        return self.rig.velocity_limits()

    def advance(self, dt: float):
        """Advances the wrapped (simulated) rig's clock by ``dt``."""
        return cast(_SimulatedClock, self.rig).advance(dt)


class DropoutPerception:
    """A predictor that returns empty results (nothing found) for frames inside ``windows``."""

    def __init__(self, inner, windows: list[tuple[float, float]]):
        self.inner = inner
        self.windows = list(windows)
        self.dropped = 0

    def predict(self, frame, spacing_mm=None, *, roi=None):
        """The inner predictor's result, emptied (no vessel, needle or vein) for a frame inside the windows."""
        res = self.inner.predict(frame, spacing_mm) if roi is None else self.inner.predict(frame, spacing_mm, roi=roi)
        if _inside(frame.stamp_s, self.windows):
            self.dropped += 1
            empty = np.zeros_like(res.mask)
            if hasattr(res, "vessels"):
                return dataclasses.replace(res, mask=empty, vessels=(), needle=None)
            return dataclasses.replace(res, mask=empty, veins=())
        return res


def blank_camera(
    camera: Callable[[frozenset], Observation],
    windows: list[tuple[float, float]],
    modalities: tuple[str, ...] = ("us",),
) -> Callable[[frozenset], Observation]:
    """A camera function whose ``modalities`` frames are black inside ``windows``."""

    def cam(wanted: frozenset) -> Observation:
        obs = camera(wanted)
        repl = {}
        for m in modalities:
            fr = getattr(obs, m)
            if fr is not None and _inside(fr.stamp_s, windows):
                repl[m] = dataclasses.replace(
                    fr,
                    image=np.zeros_like(fr.image),
                    labels=np.zeros_like(fr.labels) if fr.labels is not None else None,
                )
        return dataclasses.replace(obs, **repl) if repl else obs

    return cam
