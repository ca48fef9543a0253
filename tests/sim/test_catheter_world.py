"""The catheter world: reset/step/state/imaging, the rig interface and safety layer on it, contact and bad input."""

import math

import numpy as np
import pytest

from ir_robot.control.safety import SafeRig, SafetyConfig
from ir_robot.core.errors import ConfigError, SafetyTrip
from ir_robot.core.types import JointVector, RigCommand
from ir_robot.devices.sim_rig import SimRig
from ir_robot.sim.anatomy.graph import Branch, ValveRing, VesselTree
from ir_robot.sim.catheter.contact import WALL_FORCE_LIMIT_N
from ir_robot.sim.endovascular import CatheterWorld, CatheterWorldConfig

DT = 0.1


def push(insert=0.0, roll=0.0, duration=DT):
    return RigCommand(JointVector(insert_mm=insert, roll_rad=roll), duration)


def straight_vessel(ring_offset_mm=None) -> VesselTree:
    """A 12 mm-radius vessel along -z from the origin (blind round end at z = 0), optionally a valve ring
    near that end placed so the vessel's axis runs into the ring's tube."""
    z = np.linspace(0.0, -160.0, 33)
    pts = np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=1)
    root = Branch("aorta", None, 0.0, pts, np.full(len(z), 12.0))
    ring = None
    if ring_offset_mm is not None:
        ring = ValveRing((ring_offset_mm, 0.0, -15.0), (0.0, 0.0, 1.0), 9.0, 1.5)
    return VesselTree((root,), valve_ring=ring, source="test vessel")


@pytest.fixture(scope="module")
def world():
    w = CatheterWorld(CatheterWorldConfig(anatomy="type1", instrument="guidewire_035_angled"))
    yield w
    w.close()


def test_same_seed_same_anatomy_motion_and_frames(world):
    def run():
        world.reset(seed=5)
        for k in range(25):
            world.step(push(35.0, math.pi * (1 if k % 10 < 5 else -1)), DT)
        return world.device.positions.copy(), world.state(), world.fluoroscopy().image

    pos_a, state_a, img_a = run()
    pos_b, state_b, img_b = run()
    np.testing.assert_array_equal(pos_a, pos_b)
    assert state_a == state_b
    np.testing.assert_array_equal(img_a, img_b)
    world.reset(seed=6)
    assert world.tree.content_hash() != CatheterWorld.__dict__ and world.access_point.tolist() != pytest.approx(
        state_a.tip_mm
    )


def test_the_wire_stays_in_the_lumen_at_the_fastest_drive(world):
    world.reset(seed=2)
    worst = -np.inf
    for k in range(120):
        s = world.step(push(35.0, math.pi if (k // 7) % 2 else -math.pi), DT)
        x = world.device.positions[:-1]
        d, _ = world.lumen.signed_distance(x)
        worst = max(worst, float(np.max(d + world.spec.contact_diameter_mm / 2)))
    assert s.inserted_mm == pytest.approx(120 * 3.5, abs=1e-6)
    assert s.tip_branch in ("abdominal_aorta", "descending_aorta")  # climbed the iliacs into the aorta
    assert worst < 0.1, f"a node went {worst:.3f} mm into the wall"


def test_commands_beyond_the_drive_limits_are_clamped_and_reported(world):
    world.reset(seed=1)
    s = world.step(push(80.0, 10.0), DT)
    assert s.inserted_mm == pytest.approx(3.5)
    assert s.joints.roll_rad == pytest.approx(math.pi * DT)
    assert any("insert_mm rate 80" in c for c in s.clamped) and any("roll_rad rate 10" in c for c in s.clamped)
    s = world.step(RigCommand(JointVector(pitch_rad=0.3), DT), DT)
    assert any("pitch_rad" in c and "fixed" in c for c in s.clamped) and s.joints.pitch_rad == 0.0
    s = world.step(push(-35.0), DT)
    s = world.step(push(-35.0), DT)
    assert s.inserted_mm == 0.0 and any("insert_mm target" in c for c in s.clamped)


def test_the_rig_interface_and_safety_layer_drive_it_unchanged(world):
    world.reset(seed=3)
    rig = SimRig(world)
    assert set(rig.movable_joints) == {"insert_mm", "roll_rad"}
    safe = SafeRig(rig, SafetyConfig(force_ceiling_n=3.0, force_hard_ceiling_n=5.0))
    for _ in range(10):
        safe.command(push(30.0, 1.0, 0.2))
        rig.advance(DT)
        st = safe.read_state()
    assert st.joints.insert_mm == pytest.approx(30.0, abs=1e-6) and st.status != "estop"
    with pytest.raises(SafetyTrip) as exc:
        safe.command(RigCommand(JointVector(x_mm=1.0), 0.2))
    assert exc.value.reason == "immovable_joint"
    safe.reset()
    with pytest.raises(SafetyTrip) as exc:
        safe.command(push(50.0))  # over the URDF's 35 mm/s
    assert exc.value.reason == "velocity_limit"


def test_pushing_into_a_blind_end_raises_the_force_and_the_event():
    cfg = CatheterWorldConfig(access="aorta", instrument="catheter_4fr_straight")
    with CatheterWorld(cfg, tree=straight_vessel()) as w:
        forces = []
        for _ in range(100):  # 155 mm from the access to the blind end, 200 mm driven
            s = w.step(push(20.0), DT)
            forces.append(s.true_force_n)
        assert s.tip_branch == "aorta" and s.tip_mm[2] > 5.0  # in the end's round cap (z up to +12 mm)
        assert max(forces[:60]) < 0.2 < forces[-1]  # free travel first, then the load cell reads the compression
        assert s.max_wall_force_n > WALL_FORCE_LIMIT_N
        assert any(e["kind"] == "wall_force_over_limit" for e in s.events)
        cam = w.tip_camera()
        assert cam.label == "tissue" and cam.normal_force_n > 0.0 and cam.contact_ratio > 0.0


def test_tip_camera_sees_blood_when_free_and_the_valve_ring_when_pressed_on_it():
    cfg = CatheterWorldConfig(access="aorta", instrument="catheter_4fr_straight")
    with CatheterWorld(cfg, tree=straight_vessel(ring_offset_mm=9.0)) as w:
        for _ in range(50):  # 100 mm of the 140 mm to the ring
            w.step(push(20.0), DT)
        assert w.tip_camera().label == "blood" and w.tip_camera().contact_ratio == 0.0
        for _ in range(60):
            s = w.step(push(10.0), DT)
        assert s.tip_mm[2] < -15.0  # stopped by the ring, short of the blind end
        surface, force = w.tip_contact()
        cam = w.tip_camera()
        assert surface == "valve" and cam.label == "valve" and cam.normal_force_n == pytest.approx(force)
        assert 0.0 < cam.contact_ratio <= 1.0


def test_fluoroscopy_tip_keypoint_is_the_projected_tip():
    with CatheterWorld(CatheterWorldConfig(access="aorta"), tree=straight_vessel()) as w:
        for _ in range(37):  # the tip 130 mm in, inside the C-arm's field of view around the origin
            w.step(push(35.0), DT)
        frame = w.fluoroscopy()
        tip = np.append(w.state().tip_mm, 1.0)
        uvw = frame.projection @ tip
        np.testing.assert_allclose(frame.tip_px[0], uvw[:2] / uvw[2], atol=0.5)
        assert frame.instrument_mask.sum() > 50
        r, c = np.nonzero(frame.instrument_mask)
        assert frame.image[r, c].mean() < np.median(frame.image)  # the wire is darker than the body around it
        dsa = w.dsa()
        assert dsa[frame.vessel_mask].mean() > 5 * abs(dsa[~frame.vessel_mask].mean())


def test_bad_input_names_the_field_and_the_choices():
    with pytest.raises(ConfigError, match="right_femoral|common_femoral_right"):
        CatheterWorld(CatheterWorldConfig(anatomy="type1", access="left_ventricle"))
    with pytest.raises(ConfigError, match="instrument|not_a_wire"):
        CatheterWorld(CatheterWorldConfig(instrument="not_a_wire"))
    with pytest.raises(ConfigError, match="anatomy"):
        CatheterWorld(CatheterWorldConfig(anatomy="no_such_anatomy.txt"))


def test_the_rods_lumen_is_the_trees_lumen_minus_the_valve_ring(world):
    world.reset(seed=7)
    tree, lumen = world.tree, world.lumen
    rng = np.random.default_rng(0)
    lo, hi = tree.bounds()
    pts = rng.uniform(lo, hi, size=(400, 3))
    near = tree.branch("aortic_arch").points_mm[::5] + rng.normal(
        0.0, 6.0, size=(len(tree.branch("aortic_arch").points_mm[::5]), 3)
    )
    pts = np.concatenate([pts, near])
    d, grad = lumen.tubes.signed_distance(pts)
    np.testing.assert_allclose(d, tree.signed_distance(pts), atol=1e-9)
    ring = tree.valve_ring
    on_ring = np.asarray(ring.centre_mm) + ring.radius_mm * np.cross(ring.normal, [1.0, 0.0, 0.0]) / np.linalg.norm(
        np.cross(ring.normal, [1.0, 0.0, 0.0])
    )
    d_free, g_free = lumen.signed_distance(on_ring[None])
    assert d_free[0] == pytest.approx(ring.tube_radius_mm, abs=1e-6)  # inside the solid ring: outside the free space
    assert lumen.on_valve_ring(on_ring[None])[0]


def test_a_point_counts_as_in_a_side_branch_only_once_it_has_left_the_parent(world):
    world.reset(seed=7)
    tree = world.tree
    lcca = tree.branch("left_common_carotid")
    assert world.lumen.branch_at(lcca.points_mm[0])[0] == "aortic_arch"  # the ostium's centre is in the arch
    assert world.lumen.branch_at(lcca.point_at(40.0))[0] == "left_common_carotid"


def test_a_centreline_guided_insertion_reaches_a_renal_artery():
    from ir_robot.sim.endovascular.navigate import InsertionParams, insert_to_target

    with CatheterWorld(CatheterWorldConfig(anatomy="type1")) as w:
        w.reset(seed=11)
        res = insert_to_target(w, "renal_left", InsertionParams(guide_force_n=0.08, max_time_s=40.0))
        assert res.reached, res.reason
        assert res.states[-1].tip_branch == "renal_left"
        with pytest.raises(Exception, match="no branch named"):
            insert_to_target(w, "left_ventricle")
