"""The simulator backend of the rig interface: drives a :class:`NeedleWorld`.

Simulated time advances only through :meth:`SimRig.advance` (the control loop
calls it once per tick); real backends advance with the wall clock instead.
"""

from __future__ import annotations

import numpy as np

from ir_robot.core.types import JOINT_NAMES, JointVector, RigCommand, RigState
from ir_robot.devices.base import Rig


class SimRig(Rig):
    """The rig interface on a simulated world, time moved by the caller.

    Drives a :class:`~ir_robot.sim.world.NeedleWorld` (all joints movable) or a
    :class:`~ir_robot.sim.endovascular.CatheterWorld` (``insert_mm`` and ``roll_rad``): any world
    with ``state()``, ``step(command, dt)``, ``limits()`` and ``velocity_limits()``; a world's own
    ``movable_joints`` narrow the movable set.
    """

    movable_joints = JOINT_NAMES

    def __init__(self, world):
        self.world = world
        self.movable_joints = tuple(getattr(world, "movable_joints", JOINT_NAMES))
        self._cmd = RigCommand.stop()
        self._cmd_t = world.state().t_s
        self._target: np.ndarray | None = None
        self._speed = 5.0
        self._status = "idle"
        self._message = ""
        self.last_clamped: tuple[str, ...] = ()

    # Rig API ---------------------------------------------------------------
    def read_state(self) -> RigState:
        """The world's joints, rates and needle force now; ``estop`` after a stop until the next command or move."""
        s = self.world.state()
        moving = bool(np.any(np.abs(s.velocity.as_array()) > 1e-3))
        return RigState(
            stamp_s=s.t_s,
            joints=s.joints,
            velocity=s.velocity,
            force_n=s.force_n,
            moving=moving,
            status=self._status if self._status in ("estop",) else ("moving" if moving else "idle"),
            message=self._message,
        )

    def command(self, cmd: RigCommand) -> None:
        """Holds ``cmd``'s rates for its duration from now (simulated time), cancelling a move; clears an e-stop."""
        self._target = None
        self._cmd = cmd
        self._cmd_t = self.world.state().t_s
        if self._status == "estop":
            self._status, self._message = "idle", ""

    def move_to(self, target: JointVector, speed_mm_s: float = 5.0) -> None:
        """Starts a coordinated move to ``target`` (clipped to the limits) at ``speed_mm_s``; clears an e-stop."""
        lo, hi = self.world.limits()
        self._target = np.clip(target.as_array(), lo.as_array(), hi.as_array())
        self._speed = float(speed_mm_s)
        self._cmd = RigCommand.stop()
        if self._status == "estop":
            self._status, self._message = "idle", ""

    def stop(self, reason: str = "") -> None:
        """Drops the command and the move target and reports ``estop`` with ``reason`` until the next command."""
        self._cmd = RigCommand.stop()
        self._target = None
        self._status = "estop"
        self._message = reason

    def limits(self) -> tuple[JointVector, JointVector]:
        """The world's (URDF) joint limits."""
        return self.world.limits()

    def velocity_limits(self) -> JointVector:
        """The world's (URDF) joint velocity limits."""
        return self.world.velocity_limits()

    def close(self) -> None:
        """Stops the rig; the world stays open (its owner closes it)."""
        self.stop("close")

    # simulation clock --------------------------------------------------------
    def at_target(self, tol: float = 0.02) -> bool:
        """True when no move is pending or every joint is within ``tol`` of the move's target."""
        if self._target is None:
            return True
        return bool(np.all(np.abs(self.world.state().joints.as_array() - self._target) < tol))

    def advance(self, dt: float):
        """Run the simulator for ``dt`` seconds under the current command or move target."""
        if self._target is not None:
            q = self.world.state().joints.as_array()
            err = self._target - q
            # coordinated move: linear axes at speed_mm_s, rotations at the URDF limit, all arriving together
            vmax = self.world.velocity_limits().as_array().copy()
            lin = np.array([n.endswith("_mm") for n in JOINT_NAMES])
            vmax[lin] = np.minimum(vmax[lin], self._speed)
            t_need = float(np.max(np.abs(err) / np.maximum(vmax, 1e-9)))
            if t_need < 1e-6:
                vel = np.zeros_like(err)
            else:
                vel = err / max(t_need, dt)
            state = self.world.step(RigCommand(JointVector.from_array(vel), dt), dt)
            if self.at_target():
                self._target = None
        else:
            remaining = self._cmd.duration_s - (self.world.state().t_s - self._cmd_t)
            cmd = RigCommand(self._cmd.velocity, max(0.0, remaining))
            state = self.world.step(cmd, dt)
        self.last_clamped = state.clamped
        return state
