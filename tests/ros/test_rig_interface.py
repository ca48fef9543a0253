"""The rig's ROS face: command rates are saturated at the joint limits from where the rig is now; the safety
layer still trips on what it owns (velocity, depth past the target); commands outside a procedure or malformed
never reach the backend."""

import pytest
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String

from ir_robot.core.types import JointVector, RigCommand, RigState
from ir_robot.devices.base import Rig
from ir_robot.ros.rig_interface import RigDriverConfig, RigInterface

pytestmark = pytest.mark.ros  # every test here starts an rclpy node

LOWER = JointVector(-45.0, -22.0, 0.0, 0.2618, 0.0, 0.0)
UPPER = JointVector(45.0, 22.0, 60.0, 0.7854, 40.0, 1.5708)


class FakeRig(Rig):
    movable_joints = ("x_mm", "y_mm", "z_mm", "pitch_rad", "insert_mm", "probe_yaw_rad")

    def __init__(self, joints: JointVector):
        self.joints = joints
        self.commands: list[RigCommand] = []
        self.stops: list[str] = []

    def read_state(self) -> RigState:
        return RigState(stamp_s=0.0, joints=self.joints, velocity=JointVector(), force_n=0.0)

    def command(self, cmd: RigCommand) -> None:
        self.commands.append(cmd)

    def move_to(self, target, speed_mm_s=5.0) -> None:
        pass

    def stop(self, reason: str = "") -> None:
        self.stops.append(reason)

    def limits(self):
        return LOWER, UPPER

    def velocity_limits(self) -> JointVector:
        return JointVector(20.0, 20.0, 10.0, 0.5, 10.0, 1.0)


@pytest.fixture
def iface(ros_context):
    node = Node("rig_test", context=ros_context)
    rig = FakeRig(JointVector(44.0, 0.0, 8.0, 0.5, 0.0, 1.56))
    ri = RigInterface(node, rig, RigDriverConfig(command_hold_s=0.1))
    ri.read_state()
    ri._on_procedure_state(String(data="running"))
    yield ri, rig
    node.destroy_node()


def _cmd(**rates_si) -> JointState:
    return JointState(name=list(rates_si), velocity=[float(v) for v in rates_si.values()])


def test_rates_are_saturated_at_the_limits_from_where_the_rig_is(iface):
    ri, rig = iface
    ri._on_command(_cmd(probe_yaw_rad=0.5, insert_mm=-0.002, y_mm=0.005))  # yaw and insert would cross; y not
    cmd = rig.commands[-1]
    assert cmd.velocity.probe_yaw_rad == pytest.approx((1.5708 - 1.56) / 0.1)
    assert cmd.velocity.insert_mm == 0.0  # at its lower limit already
    assert cmd.velocity.y_mm == pytest.approx(5.0)  # untouched
    assert cmd.duration_s == 0.1 and ri.counts["saturated"] == 1 and not ri.rig.tripped
    ri._on_command(_cmd(x_mm=0.02))  # 20 mm/s towards x = 45 from 44: 10 mm/s at most
    assert rig.commands[-1].velocity.x_mm == pytest.approx(10.0)
    ri._on_command(_cmd(y_mm=0.005))
    assert ri.counts["saturated"] == 2 and rig.commands[-1].velocity.y_mm == pytest.approx(5.0)


def test_the_safety_layer_still_trips_on_what_it_owns(iface):
    ri, rig = iface
    ri._on_command(_cmd(pitch_rad=-2.0))  # above the 0.5 rad/s velocity limit
    assert ri.counts["refused"] == 1 and ri.rig.tripped and ri.rig.trip.reason == "velocity_limit"
    assert rig.stops
    ri._on_command(_cmd(y_mm=0.001))  # latched: refused until a reset
    assert ri.counts["refused"] == 2
    ri._on_procedure_state(String(data="idle"))  # /procedure/reset clears the latch
    ri._on_procedure_state(String(data="running"))
    ri._on_target(Float64(data=0.002))  # planned insertion 2 mm: at most 14 mm allowed
    ri._on_command(_cmd(insert_mm=0.001))
    assert rig.commands[-1].velocity.insert_mm == pytest.approx(1.0) and not ri.rig.tripped
    rig.joints = rig.joints.replace(insert_mm=14.5)  # deeper than target + max_depth_beyond_target_mm
    ri.read_state()
    assert ri.rig.tripped and ri.rig.trip.reason == "max_depth"


def test_commands_outside_a_procedure_or_malformed_never_reach_the_backend(iface):
    ri, rig = iface
    ri._on_procedure_state(String(data="done"))
    ri._on_command(_cmd(y_mm=0.001))
    assert ri.counts["not_running"] == 1
    ri._on_procedure_state(String(data="idle"))
    ri._on_procedure_state(String(data="running"))
    ri._on_command(_cmd(shoulder=1.0))
    ri._on_command(JointState(name=["x_mm"], velocity=[float("inf")]))
    assert ri.counts["malformed"] == 2
    assert all(not any(c.velocity.as_array()) for c in rig.commands)  # only stops were sent


def test_a_rig_a_hair_past_its_limit_is_saturated_not_tripped(iface):
    ri, rig = iface
    rig.joints = rig.joints.replace(probe_yaw_rad=1.5708 + 2e-5)  # a position servo settling on the limit
    ri.read_state()
    ri._on_command(_cmd(probe_yaw_rad=0.3))
    assert not ri.rig.tripped and rig.commands[-1].velocity.probe_yaw_rad == 0.0
