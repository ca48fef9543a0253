"""The two shapes every layer above relies on: a perception model and a controller.

Structural types (``typing.Protocol``): the learned predictors, the ground-truth and classical
perception, and test fakes are all a :class:`Perception` without inheriting from anything; the
venipuncture controller (and the catheter navigators after it) is a :class:`Controller`, which is
all the control loop (:func:`ir_robot.control.runner.run_procedure`) and the ROS controller node need.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ir_robot.core.results import NirResult, UsResult
from ir_robot.core.types import ImageFrame, Observation, RigCommand, RigState


@runtime_checkable
class Perception(Protocol):
    """Anything that turns one image into a perception result."""

    def predict(self, frame: ImageFrame) -> UsResult | NirResult:
        """The result for ``frame`` (its mask, vessels, needle or veins)."""
        ...


@runtime_checkable
class Controller(Protocol):
    """A procedure as a state machine stepped by the control loop: ``compute(state, obs, dt) -> command``."""

    @property
    def done(self) -> bool:
        """True once the procedure has ended (successfully or not); commands are then zero."""
        ...

    @property
    def outcome(self) -> Any:
        """What the controller reports at the end (its own dataclass; never ground truth)."""
        ...

    def sensors(self, state: RigState | None = None) -> frozenset[str]:
        """The images wanted at this tick (e.g. ``{"us"}``), asked before :meth:`compute`."""
        ...

    def compute(self, state: RigState, obs: Observation | None, dt: float) -> RigCommand:
        """One command from the rig's state and this tick's images."""
        ...

    def abort(self, reason: str) -> None:
        """Stop the procedure from outside (operator, time limit): retract safely, then fail."""
        ...

    def fail_now(self, reason: str) -> None:
        """The rig can no longer move (a safety trip): end at once where it stands."""
        ...
