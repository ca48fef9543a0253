"""The needle world: URDF limits enforced, clamping reported, seeding, a straight insertion."""

import math

import numpy as np
import pytest

from ir_robot.core.types import JOINT_NAMES, JointVector, RigCommand, Tissue
from ir_robot.sim.scenes import plan_straight_insertion, run_straight_insertion
from ir_robot.sim.world import NeedleWorld, WorldConfig


@pytest.fixture(scope="module")
def world():
    w = NeedleWorld(WorldConfig())
    yield w
    w.close()


def test_limits_come_from_urdf(world, root):
    """The world's limits are the robot description's, and PyBullet reads the same numbers from it."""
    import pybullet as pb

    from ir_robot.urdf import read_joint_limits

    urdf = read_joint_limits(root / "urdf" / "ir_rig.urdf")
    lo, hi = world.limits()
    vmax = world.velocity_limits()
    for name in JOINT_NAMES:
        assert getattr(lo, name) == urdf[name].lower
        assert getattr(hi, name) == urdf[name].upper
        assert getattr(vmax, name) == urdf[name].velocity
        assert urdf[name].lower < urdf[name].upper or urdf[name].lower == urdf[name].upper
    # PyBullet's own parse of the file (what its joint motors use) agrees exactly
    client = pb.connect(pb.DIRECT)
    try:
        body = pb.loadURDF(str(root / "urdf" / "ir_rig.urdf"), useFixedBase=True, physicsClientId=client)
        seen = 0
        for j in range(pb.getNumJoints(body, physicsClientId=client)):
            info = pb.getJointInfo(body, j, physicsClientId=client)
            name = info[1].decode()
            if name in urdf:
                lim = urdf[name]
                assert (info[8] * lim.scale, info[9] * lim.scale, info[11] * lim.scale, info[10]) == (
                    lim.lower,
                    lim.upper,
                    lim.velocity,
                    lim.effort,
                ), name
                seen += 1
        assert seen == len(JOINT_NAMES)
    finally:
        pb.disconnect(physicsClientId=client)


def test_a_urdf_without_a_joint_limit_is_a_clear_error(tmp_path):
    from ir_robot.core.errors import ConfigError
    from ir_robot.urdf import read_joint_limits

    bad = tmp_path / "rig.urdf"
    bad.write_text(
        '<robot name="r"><joint name="x_mm" type="prismatic"><limit lower="0" upper="0.1" '
        'velocity="0.01" effort="10"/></joint></robot>'
    )
    with pytest.raises(ConfigError, match=r"no <limit> for joints \[.*'y_mm'"):
        read_joint_limits(bad)


def test_velocity_beyond_limit_is_clamped_and_reported(world):
    world.reset(seed=0)
    vmax = world.velocity_limits().x_mm
    x0 = world.state().joints.x_mm
    s = world.step(RigCommand(JointVector(x_mm=10 * vmax), 1.0), 0.5)
    assert any("x_mm rate" in c and "clamped" in c for c in s.clamped)
    moved = s.joints.x_mm - x0
    assert moved == pytest.approx(0.5 * vmax, rel=0.05)  # moved at the limit, not 10x


def test_position_beyond_limit_is_clamped_and_reported(world):
    world.reset(seed=0)
    _, hi = world.limits()
    world.reset_joints(world.state().joints.replace(y_mm=hi.y_mm - 1.0))
    s = world.step(RigCommand(JointVector(y_mm=10.0), 1.0), 0.5)
    assert any("y_mm target" in c for c in s.clamped)
    assert s.joints.y_mm <= hi.y_mm + 1e-3
    s = world.step(RigCommand(JointVector(pitch_rad=0.5), 2.0), 2.0)
    assert s.joints.pitch_rad <= world.limits()[1].pitch_rad + 1e-3


def test_non_finite_command_is_not_executed(world):
    world.reset(seed=0)
    q0 = world.state().joints.as_array()
    s = world.step(RigCommand(JointVector(x_mm=math.nan, insert_mm=math.inf), 0.2), 0.2)
    assert any("non-finite" in c for c in s.clamped)
    assert np.allclose(s.joints.as_array(), q0, atol=1e-3)


def test_command_expires_after_its_duration(world):
    world.reset(seed=0)
    x0 = world.state().joints.x_mm
    s = world.step(RigCommand(JointVector(x_mm=5.0), 0.1), 1.0)  # valid for 0.1 s only
    assert s.joints.x_mm - x0 == pytest.approx(0.5, abs=0.05)


def test_straight_insertion_reaches_lumen_with_force_events(world):
    world.reset(seed=0)
    plan = plan_straight_insertion(world.phantom, vessel=0, pitch_deg=30)
    trace, _ = run_straight_insertion(world, plan, rate_mm_s=2.0)
    s = world.state()
    assert s.in_lumen and s.tip_tissue == Tissue.VEIN_LUMEN and not s.back_wall_punctured
    tip = np.array(s.tip_mm)
    assert np.linalg.norm(tip - np.array(plan.target_mm)) < 0.05
    membranes = [e.membrane for e in s.events]
    assert "skin" in membranes and "vessel_wall" in membranes
    f = trace["true_force_n"]
    for ev in s.events:
        if ev.membrane in ("skin", "vessel_wall"):
            after = f[(trace["insert_mm"] > ev.insert_mm) & (trace["insert_mm"] < ev.insert_mm + 0.3)]
            assert after.min() <= 0.7 * ev.peak_force_n, ev  # drop of at least 30 % of the peak


def test_same_seed_same_frames_and_forces():
    cfg = WorldConfig(randomize=True, motion=True)
    outs = []
    for _ in range(2):
        with NeedleWorld(cfg) as w:
            w.reset(seed=42)
            plan = plan_straight_insertion(w.phantom, vessel=0)
            trace, _ = run_straight_insertion(w, plan, rate_mm_s=3.0)
            outs.append((w.phantom.spec, trace["force_n"], w.ultrasound().image, w.nir().image))
    assert outs[0][0] == outs[1][0]
    for a, b in zip(outs[0][1:], outs[1][1:], strict=True):
        assert np.array_equal(a, b)
    with NeedleWorld(cfg) as w:
        w.reset(seed=43)
        assert w.phantom.spec != outs[0][0]


def test_frames_carry_ground_truth(world):
    world.reset(seed=0)
    plan = plan_straight_insertion(world.phantom, vessel=0)
    run_straight_insertion(world, plan, rate_mm_s=3.0)
    us = world.ultrasound()
    assert us.image.shape == us.labels.shape and us.image.dtype == np.uint8
    assert us.tip_px is not None and (us.labels == 3).any() and (us.labels == 1).any()
    nir = world.nir()
    assert nir.image.shape == nir.labels.shape and (nir.labels == 1).any()


def test_the_probe_offset_constant_is_the_urdf_mount(root):
    import xml.etree.ElementTree as ET

    from ir_robot.core.types import PROBE_OFFSET_MM

    mount = next(
        j
        for j in ET.parse(root / "urdf" / "ir_rig.urdf").getroot().iter("joint")
        if j.get("name") == "probe_mount_fixed"
    )
    assert float(mount.find("origin").get("xyz").split()[0]) * 1000.0 == pytest.approx(PROBE_OFFSET_MM)
