"""Planning for a stage with fixed joints (the 3-axis GRBL rig): the fixed pitch and pivot height come
from equal joint limits, the plan uses exactly them, and depths the probe mount does not suit are refused."""

import dataclasses
import math

import pytest

from ir_robot.core.types import JointVector
from ir_robot.devices.config import load_rig_config
from ir_robot.planning.insertion import InsertionParams, UnreachableTarget, fixed_joints, plan_insertion
from ir_robot.planning.vessels import VesselEstimate

RIG = load_rig_config()
LO, HI = RIG.joint_limits()
PITCH, Z = RIG.fixed.pitch_rad, RIG.fixed.z_mm


def vessel(y=0.0, depth=5.0, d=3.0):
    return VesselEstimate("vein", (0.0, y), (0.0, -depth), d, d, (-10.0, 20.0), 30.0, nir_linked=True)


def params(offset_mm: float) -> InsertionParams:
    return InsertionParams(probe_offset_mm=offset_mm)


def test_fixed_joints_come_from_the_limits_and_speed_limits():
    assert fixed_joints(LO, HI) == ("z_mm", "pitch_rad", "probe_yaw_rad", "roll_rad")
    assert fixed_joints(LO, HI, RIG.joint_speed_limits()) == ("z_mm", "pitch_rad", "probe_yaw_rad", "roll_rad")
    wide_lo, wide_hi = JointVector(-45, -22, 0, 0.2, 0, 0, -1), JointVector(45, 22, 60, 0.8, 40, 1.6, 1)
    assert fixed_joints(wide_lo, wide_hi) == ()
    assert fixed_joints(wide_lo, wide_hi, JointVector(10, 10, 0.0, 1, 5, 1, 1)) == ("z_mm",)


def test_plan_uses_the_fixed_pitch_and_height_and_puts_the_tip_at_the_target():
    depth = 5.0
    offset = (Z + depth) / math.tan(PITCH)  # the mount that images this depth in the plane
    v = vessel(y=4.0, depth=depth)
    plan = plan_insertion(v, lower=LO, upper=HI, params=params(offset))
    assert plan.pitch_rad == PITCH  # not the preferred 20 deg or the 15..45 deg grid
    assert plan.pivot_mm[2] == pytest.approx(Z, abs=1e-9)  # the stage's height, not the standoff range
    assert plan.pivot_mm[1] == pytest.approx(4.0)
    assert plan.insert_mm == pytest.approx((Z + depth) / math.sin(PITCH))
    assert plan.tip_at(plan.insert_mm) == pytest.approx(v.centre_at(plan.target_mm[0]), abs=1e-9)
    assert abs(plan.plane_offset_mm) < 1e-6
    assert plan.max_insert_mm <= HI.insert_mm and LO.x_mm + 1.0 <= plan.pivot_mm[0] <= HI.x_mm - 1.0
    assert plan.joints(RIG.fixed.probe_yaw_rad).as_array()[2:4].tolist() == [Z, PITCH]


def test_depths_the_fixed_geometry_cannot_image_are_refused_and_say_why():
    offset = (Z + 5.0) / math.tan(PITCH)
    p = params(offset)
    # +-max_plane_offset (3 mm) along x is +-3 tan(p) ~ 1.1 mm of depth around 5 mm
    plan_insertion(vessel(depth=5.9), lower=LO, upper=HI, params=p)
    with pytest.raises(UnreachableTarget, match="off the ultrasound plane"):
        plan_insertion(vessel(depth=9.0), lower=LO, upper=HI, params=p)
    # a pitch range that excludes the stage's tilt does not matter: the rig has one angle
    plan = plan_insertion(
        vessel(depth=5.0), lower=LO, upper=HI, params=dataclasses.replace(p, pitch_range_deg=(30.0, 45.0))
    )
    assert plan.pitch_rad == PITCH
    below = dataclasses.replace(LO, z_mm=-1.0)
    with pytest.raises(UnreachableTarget, match="not above the skin"):
        plan_insertion(vessel(), lower=below, upper=dataclasses.replace(HI, z_mm=-1.0), params=p)


def test_a_moved_target_slides_along_the_needle_when_the_height_is_fixed():
    offset = (Z + 5.0) / math.tan(PITCH)
    plan = plan_insertion(vessel(depth=5.0), lower=LO, upper=HI, params=params(offset))
    moved = plan.moved(0.4, -0.3, fixed_height=True)
    assert moved.pivot_mm == pytest.approx((plan.pivot_mm[0], plan.pivot_mm[1] + 0.4, plan.pivot_mm[2]))
    assert moved.target_mm[1] == pytest.approx(plan.target_mm[1] + 0.4)
    assert moved.target_mm[2] == pytest.approx(plan.target_mm[2] - 0.3)
    assert moved.tip_at(moved.insert_mm) == pytest.approx(moved.target_mm)  # still on the needle line
    assert moved.insert_mm - plan.insert_mm == pytest.approx(0.3 / math.sin(PITCH))
    assert moved.reserve_mm == pytest.approx(plan.reserve_mm)
    free = plan.moved(0.4, -0.3)  # a rig that can follow in z
    assert free.pivot_mm[2] == pytest.approx(plan.pivot_mm[2] - 0.3) and free.insert_mm == plan.insert_mm
