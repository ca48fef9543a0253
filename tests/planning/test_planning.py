"""Planner geometry on hand-made scenes: fusion, target selection, insertion plans, frames."""

import dataclasses
import math

import numpy as np
import pytest

from ir_robot.core.types import JointVector, NirView, ProbePose, needle_direction
from ir_robot.planning.geometry import nir_to_world, tip_of, us_to_world, world_to_nir, world_to_us
from ir_robot.planning.insertion import InsertionParams, UnreachableTarget, lumen_path, plan_insertion
from ir_robot.planning.targets import TargetCriteria, rank_targets
from ir_robot.planning.vessels import CrossSection, FusionParams, NirTrace, VesselEstimate, fuse_scan, straight_length

# the rig of urdf/ir_rig.urdf
LO = JointVector(-45.0, -22.0, 0.0, math.radians(15), 0.0, 0.0)
HI = JointVector(45.0, 22.0, 60.0, math.radians(45), 40.0, math.pi / 2)


def vessel(
    y=0.0,
    depth=5.0,
    d=2.0,
    h=None,
    kind="vein",
    slope_y=0.0,
    slope_z=0.0,
    x_range=(-10.0, 20.0),
    straight=30.0,
    nir=True,
):
    return VesselEstimate(
        kind, (slope_y, y), (slope_z, -depth), d, h if h is not None else d, x_range, straight, nir_linked=nir
    )


def path_gap(plan, other: VesselEstimate, wall=0.5) -> float:
    """Smallest clearance of the planned needle (skin .. max insertion) to another vessel's outer wall."""
    s = np.linspace(plan.skin_insert_mm, plan.max_insert_mm, 400)
    pts = np.asarray(plan.pivot_mm) + s[:, None] * needle_direction(plan.pitch_rad)
    dy = pts[:, 1] - other.y_at(pts[:, 0])
    dz = pts[:, 2] - other.z_at(pts[:, 0])
    r = np.sqrt((dy / (other.diameter_mm / 2 + wall)) ** 2 + (dz / (other.height_mm / 2 + wall)) ** 2)
    return float(((r - 1) * np.hypot(dy, dz) / r).min())


# ----------------------------------------------------------------------------- frames


def test_ultrasound_pixels_round_trip_and_match_the_documented_formula():
    probe = ProbePose(3.0, -2.0, math.pi / 2)
    rc = np.array([[10.0, 128.0], [200.5, 3.25]])
    w = us_to_world(rc, (256, 256), (30 / 256, 30 / 256), probe)
    # transverse: lateral axis is +y, rows go down
    assert w[0] == pytest.approx([3.0, -2.0 + 0.5 * 30 / 256, -10.5 * 30 / 256])
    back, off = world_to_us(w, (256, 256), (30 / 256, 30 / 256), probe)
    assert np.allclose(back, rc) and np.allclose(off, 0.0)
    xy = nir_to_world(rc, (256, 256), (50 / 256, 50 / 256), NirView(1.0, 2.0, 50.0))
    assert np.allclose(world_to_nir(xy, (256, 256), (50 / 256, 50 / 256), NirView(1.0, 2.0, 50.0)), rc)


def test_tip_from_joints():
    j = JointVector(1.0, 2.0, 5.0, math.radians(30), 10.0, 0.0)
    assert tip_of(j) == pytest.approx([1 + 10 * math.cos(math.radians(30)), 2.0, 5 - 10 * 0.5])


# ----------------------------------------------------------------------------- fusion


def test_fuse_scan_groups_cross_sections_fits_slopes_and_links_nir():
    secs = [
        # vein A at y = 2 + 0.1 x, z = -5 - 0.05 x, seen at x = 0 and x = 10
        CrossSection("vein", 0.0, 2.0, -5.0, 2.0, 1.6),
        CrossSection("vein", 10.0, 3.0, -5.5, 2.2, 1.6),
        # artery B at y = -9, z = -9
        CrossSection("artery", 0.0, -9.0, -9.0, 3.0, 3.0),
        CrossSection("vein", 10.0, -9.1, -9.0, 3.0, 3.0),
        CrossSection("artery", 10.0, -9.05, -9.0, 3.0, 3.0),
    ]
    xs = np.linspace(-20, 20, 41)
    trace_a = NirTrace(np.stack([xs, 2.0 + 0.1 * xs], axis=1), 2.0)
    trace_far = NirTrace(np.stack([xs, np.full_like(xs, 15.0)], axis=1), 1.5)  # a vein no US frame saw
    vessels, unmatched = fuse_scan(secs, [trace_a, trace_far])
    assert len(vessels) == 2 and len(unmatched) == 1 and unmatched[0] is trace_far
    a = next(v for v in vessels if v.kind == "vein")
    b = next(v for v in vessels if v.kind == "artery")
    assert a.nir_linked and a.y_at(5.0) == pytest.approx(2.5, abs=1e-6)
    assert a.slope_at(5.0) == pytest.approx((0.1, -0.05), abs=1e-6)
    assert a.x_range_mm == (-20.0, 20.0)  # NIR extends the observed stretch
    assert a.diameter_mm == pytest.approx(2.1) and a.height_mm == pytest.approx(1.6)
    assert b.kind_confidence == pytest.approx(2 / 3)  # majority vote over the three views
    assert not b.nir_linked


def test_fusion_links_an_angled_vein_across_stations_but_keeps_neighbours_apart():
    # a vein at 8 deg plus 1 mm of arm motion between stations: 2.4 mm sideways over 10 mm of x
    secs = [
        CrossSection("vein", 0.0, -3.0, -10.3, 4.2, 2.8),
        CrossSection("vein", 10.0, -0.6, -10.0, 4.2, 2.8),
        # its neighbour 6 mm away, same depth, and a vessel right above it at another depth
        CrossSection("vein", 0.0, 3.0, -10.2, 2.0, 2.0),
        CrossSection("vein", 10.0, 5.3, -10.1, 2.0, 2.0),
        CrossSection("vein", 0.0, -3.0, -5.0, 2.0, 2.0),
        CrossSection("vein", 10.0, -2.5, -5.1, 2.0, 2.0),
        # a one-off blob seen at one station only
        CrossSection("vein", 0.0, 12.0, -4.0, 1.0, 1.0),
    ]
    vessels, _ = fuse_scan(secs)
    assert sorted(v.n_views for v in vessels) == [2, 2, 2]
    wide = max(vessels, key=lambda v: v.diameter_mm)
    assert wide.slope_at(0.0)[0] == pytest.approx(0.24) and wide.depth_at(0.0) == pytest.approx(10.3)
    vessels1, _ = fuse_scan(secs, params=dataclasses.replace(FusionParams(), min_stations=1))
    assert len(vessels1) == 4


def test_straight_length_of_a_curved_vein():
    # y = c x^2 deviates from its chord by c L^2 / 4 over length L
    c, tol = 0.002, 0.3
    assert straight_length((c, 0.0, 0.0), (-40.0, 40.0), tol) == pytest.approx(2 * math.sqrt(tol / c))
    assert straight_length((0.0, 0.1, 0.0), (-5.0, 15.0), tol) == pytest.approx(20.0)


def test_shifted_vessel_moves_rigidly():
    v = VesselEstimate("vein", (0.003, 0.1, 2.0), (0.05, -5.0), 2.0, 2.0, (0.0, 10.0), 10.0)
    m = v.shifted(1.5, -2.0, 0.3)
    for x in (-3.0, 0.0, 7.0):
        assert m.y_at(x + 1.5) == pytest.approx(v.y_at(x) - 2.0)
        assert m.z_at(x + 1.5) == pytest.approx(v.z_at(x) + 0.3)
    assert m.x_range_mm == (1.5, 11.5)


# ----------------------------------------------------------------------------- selection


def test_selection_rejects_arteries_small_deep_and_curved_veins_and_ranks_the_rest():
    vs = [
        vessel(y=-10, depth=6, d=4.0, kind="artery"),  # biggest, but an artery
        vessel(y=0, depth=4, d=0.6),  # too small
        vessel(y=5, depth=20, d=3.0),  # too deep
        vessel(y=10, depth=5, d=2.5, straight=3.0),  # too curved
        vessel(y=15, depth=6, d=2.0),  # ok
        vessel(y=-4, depth=3, d=2.2),  # ok, better (wider, shallower), but 2.9 mm from the artery
    ]
    cands = rank_targets(vs, TargetCriteria(min_artery_clearance_mm=2.0))
    by_index = {c.index: c for c in cands}
    assert not by_index[0].accepted and "artery" in by_index[0].reasons[0]
    assert not by_index[1].accepted and "diameter" in by_index[1].reasons[0]
    assert not by_index[2].accepted and "deeper" in by_index[2].reasons[0]
    assert not by_index[3].accepted and "straight" in by_index[3].reasons[0]
    assert by_index[4].accepted and by_index[5].accepted
    assert [c.index for c in cands if c.accepted] == [5, 4]
    # a vein right next to the artery is rejected when more clearance is asked for
    cands = rank_targets(vs, TargetCriteria(min_artery_clearance_mm=4.0))
    assert [c.index for c in cands if c.accepted] == [4]
    assert any("from an artery" in r for r in {c.index: c for c in cands}[5].reasons)


def test_an_uncertain_call_is_a_candidate_only_for_a_caller_that_checks_the_pulse():
    import dataclasses

    vs = [
        dataclasses.replace(vessel(y=0, depth=5, d=4.0), kind_confidence=0.55),  # best score, uncertain
        vessel(y=12, depth=6, d=2.0),  # sure vein
        dataclasses.replace(vessel(y=-12, depth=5, d=3.0), kind_confidence=0.45, kind="artery"),
    ]
    plain = {c.index: c for c in rank_targets(vs, TargetCriteria())}
    assert not plain[0].accepted and "uncertain" in plain[0].reasons[0] and not plain[0].needs_pulse
    cands = rank_targets(vs, TargetCriteria(), pulse_check=True)
    # sure veins first, then the uncertain one, which needs a "vein" verdict; an artery stays rejected
    assert [(c.index, c.accepted, c.needs_pulse) for c in cands] == [
        (1, True, False),
        (0, True, True),
        (2, False, False),
    ]
    assert "its pulse is found absent" in cands[1].describe()
    # switched off: as without a pulse check
    off = {c.index: c for c in rank_targets(vs, TargetCriteria(uncertain_needs_pulse=False), pulse_check=True)}
    assert not off[0].accepted


# ----------------------------------------------------------------------------- insertion plans


def test_plan_puts_the_tip_at_the_lumen_centre_in_the_ultrasound_plane():
    v = vessel(y=3.0, depth=6.0, d=2.0, slope_y=0.05, slope_z=-0.02)
    p = InsertionParams()
    plan = plan_insertion(v, lower=LO, upper=HI, params=p)
    target = np.asarray(plan.target_mm)
    assert plan.tip_at(plan.insert_mm) == pytest.approx(target, abs=1e-9)
    assert target == pytest.approx(v.centre_at(target[0]), abs=1e-9)
    assert plan.pivot_mm[1] == pytest.approx(target[1])  # needle plane through the target
    assert abs(plan.plane_offset_mm) < 0.05  # the probe images the target
    standoff = plan.pivot_mm[2]
    assert p.standoff_range_mm[0] - 1e-9 <= standoff <= p.standoff_range_mm[1] + 1e-9
    assert math.radians(15) <= plan.pitch_rad <= math.radians(45)
    assert plan.max_insert_mm - plan.insert_mm == pytest.approx(p.reserve_mm)
    # the lumen is entered before the target and left after it, symmetric along the needle
    assert plan.near_wall_insert_mm < plan.lumen_entry_insert_mm < plan.insert_mm < plan.back_wall_insert_mm
    assert plan.skin_insert_mm == pytest.approx(standoff / math.sin(plan.pitch_rad))


def test_lumen_half_path_follows_the_ellipse():
    v = vessel(depth=5.0, d=2.0, h=1.2)
    half, wall = lumen_path(v, 0.0, math.radians(30), wall_mm=0.3)
    assert half == pytest.approx(0.6 / 0.5) and wall == pytest.approx(0.3 / 0.5)


def test_plan_steers_clear_of_a_vessel_crossing_over_the_target():
    target = vessel(y=0.0, depth=8.0, d=2.5, x_range=(-10.0, 20.0))
    # a shallower vein crossing diagonally right above the target around x = 0..5
    crossing = vessel(y=-1.0, depth=4.0, d=2.0, slope_y=0.5, x_range=(-10.0, 20.0))
    free = plan_insertion(target, lower=LO, upper=HI)
    assert path_gap(free, crossing) < 1.0  # without the obstacle the cheapest plan goes through it
    plan = plan_insertion(target, [crossing], lower=LO, upper=HI)
    assert path_gap(plan, crossing) >= InsertionParams().clearance_mm - 0.05
    assert plan.clearance_mm >= InsertionParams().clearance_mm
    assert plan.tip_at(plan.insert_mm) == pytest.approx(target.centre_at(plan.target_mm[0]), abs=1e-9)


def test_vessel_directly_above_all_along_makes_the_target_unreachable():
    target = vessel(y=0.0, depth=9.0, d=2.0)
    above = vessel(y=0.0, depth=4.5, d=2.0)
    with pytest.raises(UnreachableTarget) as err:
        plan_insertion(target, [above], lower=LO, upper=HI)
    assert "another vessel" in str(err.value)


@pytest.mark.parametrize(
    "v, params, words",
    [
        (vessel(depth=30.0, d=3.0), InsertionParams(), "off the ultrasound plane"),  # too deep for the probe geometry
        (
            vessel(depth=30.0, d=3.0),
            InsertionParams(max_plane_offset_mm=50.0),
            "insertion axis",
        ),  # and for 40 mm travel
        (vessel(y=21.8, depth=5.0), InsertionParams(), "pivot y outside the rig's travel"),  # beyond the Y carriage
        (vessel(depth=5.0, d=2.0, h=0.2), InsertionParams(), "lumen path shorter"),  # flattened to nothing
    ],
)
def test_unreachable_targets_say_why(v, params, words):
    with pytest.raises(UnreachableTarget) as err:
        plan_insertion(v, lower=LO, upper=HI, params=params)
    assert words in str(err.value)
    assert err.value.reasons


def test_deep_vein_is_planned_beyond_the_plane_within_the_limit():
    v = vessel(depth=12.0, d=3.0)
    p = InsertionParams()
    plan = plan_insertion(v, lower=LO, upper=HI, params=p)
    assert 0.0 < plan.plane_offset_mm <= p.max_plane_offset_mm
    assert plan.pitch_rad == pytest.approx(math.radians(45), abs=1e-9)  # as steep as the rig allows
    with pytest.raises(UnreachableTarget):
        plan_insertion(v, lower=LO, upper=HI, params=InsertionParams(max_plane_offset_mm=0.5))
