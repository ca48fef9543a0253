"""Each safety check trips, stops the rig, says why and refuses motion until reset()."""

import math

import pytest

from ir_robot.control.safety import SafeRig, SafetyConfig
from ir_robot.core.errors import ConfigError, RigError, SafetyTrip
from ir_robot.core.types import JOINT_NAMES, JointVector, RigCommand

from .conftest import KinematicRig


def rate(**kw) -> RigCommand:
    return RigCommand(JointVector(**kw), 0.1)


def assert_tripped(safe: SafeRig, rig: KinematicRig, reason: str) -> None:
    assert safe.tripped and safe.trip.reason == reason
    assert rig.stops and reason in rig.stops[-1]  # the backend was stopped, with the reason
    assert rig.status == "estop"
    st = safe.read_state()
    assert st.status == "estop" and reason in st.message  # reads report it too
    with pytest.raises(SafetyTrip) as again:  # latched: no motion until reset
        safe.command(rate(x_mm=1.0))
    assert again.value.reason == reason
    assert not any(rig.v)


def test_a_valid_command_passes_through(kin_rig):
    safe = SafeRig(kin_rig)
    safe.read_state()
    safe.command(rate(x_mm=5.0, insert_mm=1.0))
    kin_rig.advance(0.1)
    assert safe.read_state().joints.x_mm == pytest.approx(0.5)
    assert not safe.tripped and not kin_rig.stops


def test_joint_limit(kin_rig):
    safe = SafeRig(kin_rig)
    kin_rig.q[4] = 39.95
    safe.read_state()
    with pytest.raises(SafetyTrip) as err:
        safe.command(rate(insert_mm=5.0))  # would reach 40.45 mm > 40 mm within the command
    assert err.value.reason == "joint_limit" and "insert_mm" in str(err.value)
    assert_tripped(safe, kin_rig, "joint_limit")
    safe.reset()
    safe.command(rate(insert_mm=-1.0))  # after reset, motion back inside is fine
    assert not safe.tripped


def test_joint_limit_margin_and_state_outside(kin_rig):
    safe = SafeRig(kin_rig, SafetyConfig(limit_margin_mm=2.0))
    lo, hi = safe.limits()
    assert hi.x_mm == pytest.approx(43.0) and lo.z_mm == pytest.approx(2.0)
    kin_rig.q[0] = 44.0  # backend reports a joint beyond the margin
    safe.read_state()
    assert_tripped(safe, kin_rig, "joint_limit")


def test_workspace(kin_rig):
    safe = SafeRig(kin_rig, SafetyConfig(workspace_min_mm=(-45.0, -5.0, 0.0), workspace_max_mm=(45.0, 5.0, 60.0)))
    kin_rig.q[1] = 4.9
    safe.read_state()
    with pytest.raises(SafetyTrip):
        safe.command(rate(y_mm=2.0))
    assert_tripped(safe, kin_rig, "workspace")


def test_velocity_limit_and_non_finite_rates(kin_rig):
    safe = SafeRig(kin_rig, SafetyConfig(velocity_scale=0.5))
    safe.read_state()
    with pytest.raises(SafetyTrip):
        safe.command(rate(x_mm=11.0))  # 0.5 * 20 mm/s allowed
    assert_tripped(safe, kin_rig, "velocity_limit")
    rig2 = KinematicRig()
    safe2 = SafeRig(rig2)
    with pytest.raises(SafetyTrip):
        safe2.command(rate(z_mm=float("nan")))
    assert_tripped(safe2, rig2, "velocity_limit")


def test_immovable_joint():
    class ThreeAxis(KinematicRig):
        movable_joints = ("x_mm", "y_mm", "z_mm")

    rig = ThreeAxis()
    safe = SafeRig(rig)
    with pytest.raises(SafetyTrip):
        safe.command(rate(pitch_rad=0.1))
    assert_tripped(safe, rig, "immovable_joint")


def test_max_depth_beyond_target(kin_rig):
    safe = SafeRig(kin_rig, SafetyConfig(max_depth_beyond_target_mm=1.5))
    kin_rig.q[4] = 11.0
    safe.set_insertion_target(10.0)
    assert safe.insertion_limit_mm == pytest.approx(11.5)
    safe.read_state()
    safe.command(rate(insert_mm=4.0))  # 11.4 mm: allowed
    kin_rig.advance(0.1)
    safe.read_state()
    with pytest.raises(SafetyTrip) as err:
        safe.command(rate(insert_mm=4.0))  # 11.8 mm: more than 1.5 mm past the target
    assert "beyond the target" in str(err.value)
    assert_tripped(safe, kin_rig, "max_depth")
    # a state already past the limit trips on read
    rig2 = KinematicRig()
    rig2.q[4] = 13.0
    safe2 = SafeRig(rig2, SafetyConfig(max_depth_beyond_target_mm=1.5))
    safe2.set_insertion_target(10.0)
    safe2.read_state()
    assert_tripped(safe2, rig2, "max_depth")


def test_force_ceiling_sustained_and_hard_but_not_a_single_spike(kin_rig):
    safe = SafeRig(kin_rig, SafetyConfig(force_ceiling_n=3.0, force_hard_ceiling_n=8.0, force_window=3))
    for f in (1.0, 5.0, 1.2, 1.1):  # one 5 N spike: the median stays low
        kin_rig.force_n = f
        safe.read_state()
    assert not safe.tripped
    for f in (3.5, 3.6, 3.7):  # sustained: trips
        kin_rig.force_n = f
        safe.read_state()
    assert_tripped(safe, kin_rig, "force_ceiling")
    rig2 = KinematicRig()
    safe2 = SafeRig(rig2)
    rig2.force_n = 9.0  # one reading above the hard ceiling trips at once
    safe2.read_state()
    assert_tripped(safe2, rig2, "force_ceiling")


def test_watchdog_stops_a_rig_nobody_commands(kin_rig):
    safe = SafeRig(kin_rig, SafetyConfig(command_timeout_s=0.5))
    safe.read_state()
    safe.command(RigCommand(JointVector(x_mm=1.0), 10.0))  # a long command, then silence
    for _ in range(4):
        kin_rig.advance(0.1)
        safe.read_state()
    assert not safe.tripped
    for _ in range(3):
        kin_rig.advance(0.1)
        safe.read_state()
    assert_tripped(safe, kin_rig, "watchdog")


def test_stop_commands_never_arm_the_watchdog(kin_rig):
    safe = SafeRig(kin_rig, SafetyConfig(command_timeout_s=0.2))
    safe.command(RigCommand.stop())
    for _ in range(10):
        kin_rig.advance(0.1)
        safe.read_state()
    assert not safe.tripped


def test_estop(kin_rig):
    safe = SafeRig(kin_rig)
    safe.command(rate(x_mm=3.0))
    safe.estop("operator pressed the button")
    assert "operator pressed the button" in kin_rig.stops[-1]
    assert_tripped(safe, kin_rig, "estop")
    safe.reset()
    safe.command(rate(x_mm=3.0))
    assert not safe.tripped


class FailingRig(KinematicRig):
    """A backend that refuses commands (a GRBL error reply) and, with ``stop_fails``, cannot even stop (the
    serial line is gone)."""

    def __init__(self, stop_fails: bool = False):
        super().__init__()
        self.stop_fails = stop_fails

    def command(self, cmd: RigCommand) -> None:
        if any(cmd.velocity.as_array()):
            raise RigError("GRBL answered error:15 to '$J=G91 G21 X0.500 F300': Travel exceeded")
        super().command(cmd)

    def move_to(self, target: JointVector, speed_mm_s: float = 5.0) -> None:
        raise RigError("GRBL answered error:15 to 'G90 G53 G1 X0 F300': Travel exceeded")

    def stop(self, reason: str = "") -> None:
        super().stop(reason)
        if self.stop_fails:
            raise RigError("serial port /dev/ttyACM0 vanished")


def test_a_failing_backend_trips_stops_and_says_why():
    rig = FailingRig()
    safe = SafeRig(rig)
    with pytest.raises(SafetyTrip) as info:
        safe.command(rate(x_mm=5.0))
    assert info.value.reason == "backend" and "error:15" in str(info.value) and "command" in str(info.value)
    assert_tripped(safe, rig, "backend")
    safe.reset()
    with pytest.raises(SafetyTrip, match=r"backend.*move_to"):
        safe.move_to(JointVector(0.0, 0.0, 10.0, 0.5, 0.0, 0.0))


def test_a_backend_that_cannot_even_stop_still_latches_the_trip():
    rig = FailingRig(stop_fails=True)
    safe = SafeRig(rig)
    with pytest.raises(SafetyTrip) as info:  # not the RigError of the failed stop: the caller sees the trip
        safe.command(rate(x_mm=5.0))
    assert info.value.reason == "backend" and safe.tripped and safe.trip.reason == "backend"
    assert rig.stops and "backend" in rig.stops[-1]  # the stop was attempted


def test_move_to_is_checked_too(kin_rig):
    safe = SafeRig(kin_rig)
    with pytest.raises(SafetyTrip):
        safe.move_to(JointVector(0.0, 30.0, 10.0, 0.5, 0.0, 0.0))
    assert_tripped(safe, kin_rig, "joint_limit")


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="hard ceiling"):
        SafetyConfig(force_ceiling_n=5.0, force_hard_ceiling_n=4.0)
    with pytest.raises(ConfigError, match="workspace_min_mm"):
        SafetyConfig(workspace_min_mm=(0.0, 0.0, 0.0), workspace_max_mm=(1.0, -1.0, 1.0))
    with pytest.raises(ConfigError, match="already wrapped"):
        SafeRig(SafeRig(KinematicRig()))


def test_force_trip_leaves_the_simulated_rig_stopped():
    """On the real simulator backend: a force trip stops the needle where it is."""
    from ir_robot.devices.sim_rig import SimRig
    from ir_robot.sim.scenes import plan_straight_insertion
    from ir_robot.sim.world import NeedleWorld, WorldConfig

    with NeedleWorld(WorldConfig()) as world:
        plan = plan_straight_insertion(world.phantom, vessel=0, pitch_deg=30.0)
        world.reset_joints(JointVector(*plan.pivot_mm, plan.pitch_rad, 0.0, 0.0))
        safe = SafeRig(SimRig(world), SafetyConfig(force_ceiling_n=0.4, force_window=2))
        dt = 0.05
        for _ in range(400):
            st = safe.read_state()
            if safe.tripped:
                break
            safe.command(RigCommand(JointVector(insert_mm=2.0), dt))
            safe.advance(dt)
        assert safe.tripped and safe.trip.reason == "force_ceiling"
        stopped_at = world.state().joints.insert_mm
        assert stopped_at < plan.distance_mm  # it never reached the vessel
        with pytest.raises(SafetyTrip):
            safe.command(RigCommand(JointVector(insert_mm=2.0), dt))
        for _ in range(20):
            safe.advance(dt)
        assert world.state().joints.insert_mm == pytest.approx(stopped_at, abs=0.02)
        assert st.status == "estop" or safe.read_state().status == "estop"
        assert set(JOINT_NAMES) == set(safe.movable_joints)
        assert math.isfinite(stopped_at)
