"""The one rig interface every backend implements and every controller drives.

Controllers never know whether they drive the PyBullet world, the serial GRBL
rig or the pty emulator. Safety (limits, force ceiling, watchdog, e-stop) wraps
a Rig once (``ir_robot.control.safety``), between controller and backend.
"""

from __future__ import annotations

import abc

from ir_robot.core.types import JointVector, RigCommand, RigState


class Rig(abc.ABC):
    """A positioning rig carrying a needle (and probe), with a needle force sensor.

    Joint names/units are ``ir_robot.core.types.JOINT_NAMES``. Backends that lack
    a joint (e.g. a 3-axis GRBL stage with a fixed needle pitch) report the fixed
    value from their config and refuse rates on it.
    """

    #: joints this backend can actually move
    movable_joints: tuple[str, ...] = ()

    @abc.abstractmethod
    def read_state(self) -> RigState:
        """Latest joints, joint rates and needle force. Never blocks for long."""

    @abc.abstractmethod
    def command(self, cmd: RigCommand) -> None:
        """Move at the given joint rates for at most ``cmd.duration_s``."""

    @abc.abstractmethod
    def move_to(self, target: JointVector, speed_mm_s: float = 5.0) -> None:
        """Start a coordinated absolute move (non-blocking); poll ``read_state().moving``."""

    @abc.abstractmethod
    def stop(self, reason: str = "") -> None:
        """Halt now and discard queued motion (e-stop path). Must be safe to call twice."""

    def limits(self) -> tuple[JointVector, JointVector]:
        """(lower, upper) joint position limits."""
        raise NotImplementedError

    def velocity_limits(self) -> JointVector:
        """Per-joint speed limits (mm/s, rad/s); 0 for a joint the backend cannot move."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the device (stops motion first)."""
        self.stop("close")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
