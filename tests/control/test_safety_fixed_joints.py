"""SafeRig over a rig with fixed joints (a 3-axis GRBL stage): the fixed joints' zero speed
limits must not block moves on the movable ones, and any motion on a fixed joint is refused."""

import numpy as np
import pytest

from ir_robot.control.safety import SafeRig, SafetyConfig
from ir_robot.core.errors import SafetyTrip
from ir_robot.core.types import JOINT_NAMES, JointVector, RigCommand, RigState
from ir_robot.devices.base import Rig

FIXED = JointVector(0.0, 0.0, 8.0, 0.5236, 0.0, 0.0)


class ThreeAxisRig(Rig):
    """x_mm, y_mm, insert_mm move; z, pitch and probe yaw are fixed (velocity limit 0)."""

    movable_joints = ("x_mm", "y_mm", "insert_mm")

    def __init__(self):
        self.q = FIXED
        self.moves, self.commands, self.stops = [], [], []

    def read_state(self):
        return RigState(stamp_s=0.0, joints=self.q, velocity=JointVector(), force_n=0.0)

    def command(self, cmd):
        self.commands.append(cmd)

    def move_to(self, target, speed_mm_s=5.0):
        self.moves.append((target, speed_mm_s))

    def stop(self, reason=""):
        self.stops.append(reason)

    def limits(self):
        lo = np.array([-45, -22, 8.0, 0.5236, 0, 0.0, 0.0])
        hi = np.array([45, 22, 8.0, 0.5236, 40, 0.0, 0.0])
        return JointVector.from_array(lo), JointVector.from_array(hi)

    def velocity_limits(self):
        return JointVector(20.0, 20.0, 0.0, 0.0, 10.0, 0.0)


def test_move_on_movable_joints_passes_despite_zero_limits_on_fixed_ones():
    rig = ThreeAxisRig()
    safe = SafeRig(rig, SafetyConfig(workspace_min_mm=(-45, -22, 0), workspace_max_mm=(45, 22, 60)))
    safe.read_state()
    safe.move_to(FIXED.replace(x_mm=10.0, insert_mm=5.0), speed_mm_s=5.0)
    assert rig.moves and rig.moves[-1][0].x_mm == 10.0 and not rig.stops


def test_motion_on_a_fixed_joint_is_refused_and_stops_the_rig():
    rig = ThreeAxisRig()
    safe = SafeRig(rig, SafetyConfig())
    safe.read_state()
    with pytest.raises(SafetyTrip) as exc:
        safe.command(RigCommand(JointVector(pitch_rad=0.1), 0.1))
    assert exc.value.reason == "immovable_joint" and rig.stops and not rig.commands
    assert set(JOINT_NAMES) >= set(ThreeAxisRig.movable_joints)
