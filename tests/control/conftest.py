import math

import numpy as np
import pytest

from ir_robot.control.config import VenipunctureConfig
from ir_robot.core.types import JOINT_NAMES, N_JOINTS, JointVector, RigCommand, RigState
from ir_robot.devices.base import Rig
from ir_robot.evaluation.episode import make_perception, make_world


class KinematicRig(Rig):
    """A rig that integrates joint rates exactly (no physics), with a settable force reading."""

    movable_joints = JOINT_NAMES

    def __init__(self, q0=(0.0, 0.0, 10.0, 0.5, 0.0, 0.0, 0.0)):
        self.q = np.array(q0, dtype=float)
        self.v = np.zeros(N_JOINTS)
        self.t = 0.0
        self.force_n = 0.0
        self._until = 0.0
        self.stops: list[str] = []
        self.commands: list[RigCommand] = []
        self.status = "idle"

    def read_state(self) -> RigState:
        return RigState(
            self.t,
            JointVector.from_array(self.q),
            JointVector.from_array(self.v),
            self.force_n,
            bool(np.any(self.v)),
            self.status,
            self.stops[-1] if self.stops else "",
        )

    def command(self, cmd: RigCommand) -> None:
        self.commands.append(cmd)
        self.v = cmd.velocity.as_array()
        self._until = self.t + cmd.duration_s
        self.status = "moving" if np.any(self.v) else "idle"

    def move_to(self, target: JointVector, speed_mm_s: float = 5.0) -> None:
        self.q = target.as_array()

    def stop(self, reason: str = "") -> None:
        self.stops.append(reason)
        self.v = np.zeros(N_JOINTS)
        self.status = "estop"

    def limits(self):
        return (
            JointVector(-45.0, -22.0, 0.0, 0.2618, 0.0, 0.0),
            JointVector(45.0, 22.0, 60.0, 0.7854, 40.0, math.pi / 2),
        )

    def velocity_limits(self):
        return JointVector(20.0, 20.0, 10.0, 0.5, 10.0, 1.0)

    def advance(self, dt: float) -> None:
        run = max(0.0, min(dt, self._until - self.t))
        self.q = self.q + self.v * run
        if run < dt:
            self.v = np.zeros(N_JOINTS)
        self.t += dt


@pytest.fixture
def kin_rig():
    return KinematicRig()


# the venipuncture config, ground-truth perception and one simulated world, shared within a test module
@pytest.fixture(scope="module")
def cfg():
    return VenipunctureConfig()


@pytest.fixture(scope="module")
def gt(cfg):
    return make_perception("ground_truth", cfg)


@pytest.fixture(scope="module")
def world():
    w = make_world(motion=True)
    yield w
    w.close()
