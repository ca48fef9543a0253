"""The needle world: URDF limits enforced, clamping reported, seeding, a straight insertion."""

import math
import xml.etree.ElementTree as ET

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


def _urdf_limits(root):
    tree = ET.parse(root / "urdf" / "ir_rig.urdf")
    out = {}
    for j in tree.getroot().iter("joint"):
        lim = j.find("limit")
        if lim is not None:
            scale = 1000.0 if j.get("type") == "prismatic" else 1.0
            out[j.get("name")] = (
                float(lim.get("lower")) * scale,
                float(lim.get("upper")) * scale,
                float(lim.get("velocity")) * scale,
            )
    return out


def test_limits_come_from_urdf(world, root):
    urdf = _urdf_limits(root)
    lo, hi = world.limits()
    vmax = world.velocity_limits()
    for name in JOINT_NAMES:
        assert getattr(lo, name) == pytest.approx(urdf[name][0])
        assert getattr(hi, name) == pytest.approx(urdf[name][1])
        assert getattr(vmax, name) == pytest.approx(urdf[name][2])


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
    for a, b in zip(outs[0][1:], outs[1][1:]):
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
