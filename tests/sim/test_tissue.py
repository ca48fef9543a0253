"""Needle-tissue force model: puncture events, lumen detection, friction, caching, determinism."""

import dataclasses
import math

import numpy as np
import pytest

from ir_robot.config import from_dict
from ir_robot.core.errors import ConfigError, IrRobotError
from ir_robot.core.types import Tissue
from ir_robot.paths import data_path
from ir_robot.sim.phantom import Phantom, load_phantom, sample_phantom
from ir_robot.sim.tissue import ForceModelParams, NeedleTissueModel, insertion_profile


def aim(phantom: Phantom, vessel: int, pitch_deg: float = 30.0, x_mm: float = 0.0, standoff_mm: float = 3.0):
    """Pivot ``standoff_mm`` above the skin on a line through the lumen centre of ``vessel`` at ``x_mm``,
    heading along the vessel. Returns (pivot, direction, distance from pivot to the centre)."""
    yc, zc = phantom.centreline(np.array([x_mm, x_mm + 1e-3]))
    heading = math.atan2(yc[1, vessel] - yc[0, vessel], 1e-3)
    p = math.radians(pitch_deg)
    d = np.array([math.cos(p) * math.cos(heading), math.cos(p) * math.sin(heading), -math.sin(p)])
    centre = np.array([x_mm, yc[0, vessel], zc[0, vessel]])
    dist = (standoff_mm - centre[2]) / math.sin(p)
    return centre - dist * d, d, dist


def drop_after(trace: dict, ev, window_mm: float = 0.2) -> float:
    """Fractional force drop from an event's peak over the next ``window_mm`` of insertion."""
    sel = (trace["insert_mm"] > ev.insert_mm) & (trace["insert_mm"] <= ev.insert_mm + window_mm)
    assert sel.any(), "no samples after the event"
    return 1.0 - trace["force_n"][sel].min() / ev.peak_force_n


def first(events, membrane: str, vessel: int | None = None):
    for e in events:
        if e.membrane == membrane and (vessel is None or e.vessel_index == vessel):
            return e
    return None


@pytest.fixture(scope="module")
def forearm():
    return Phantom(load_phantom(data_path("sim", "phantoms", "forearm.yaml")))


@pytest.fixture(scope="module")
def deep_trace(forearm):
    """Default phantom, 30 deg, through vessel 0 (a vein) and 8 mm beyond its centre."""
    pivot, d, dist = aim(forearm, 0)
    depths = np.arange(0.0, dist + 8.0, 0.005)
    return insertion_profile(forearm, pivot, d, depths, rate_mm_s=2.0), dist, pivot, d


def test_skin_and_vein_wall_give_peak_and_drop(forearm, deep_trace):
    tr, dist, pivot, d = deep_trace
    skin, wall = first(tr["events"], "skin"), first(tr["events"], "vessel_wall", 0)
    assert skin is not None and wall is not None
    assert skin.insert_mm < wall.insert_mm < dist
    # the skin tears at its puncture force (nothing else acts on the tip in air)
    assert skin.peak_force_n == pytest.approx(forearm.spec.layers[0].puncture_force_n, abs=0.02)
    assert wall.peak_force_n > forearm.spec.vessels[0].wall_puncture_force_n
    for ev in (skin, wall):
        assert drop_after(tr, ev) >= 0.3, ev
    # the force trace itself shows the peak at the event
    at = np.argmin(np.abs(tr["insert_mm"] - skin.insert_mm))
    assert tr["force_n"][at] == pytest.approx(skin.peak_force_n, abs=0.01)


def test_lumen_reached_only_after_the_wall_tears(forearm, deep_trace):
    tr, dist, pivot, d = deep_trace
    wall = first(tr["events"], "vessel_wall", 0)
    ins, lumen = tr["insert_mm"], tr["in_lumen"]
    assert not lumen[ins < wall.insert_mm].any()
    assert lumen[(ins > wall.insert_mm) & (ins < wall.insert_mm + 0.2)].any()
    at_centre = np.argmin(np.abs(ins - dist))
    assert lumen[at_centre] and tr["lumen_vessel"][at_centre] == 0
    assert tr["tissue"][at_centre] == Tissue.VEIN_LUMEN
    # just before the tear the tip tents the wall: geometrically past it, physically still in fat
    before = np.flatnonzero(ins < wall.insert_mm)[-1]
    assert tr["tenting_mm"][before] > 0.5
    assert tr["tissue"][before] == Tissue.FAT
    tip = pivot + ins[before] * d
    assert forearm.tissue_at(tip) != Tissue.FAT


def test_tip_in_air_while_tenting_the_skin(deep_trace):
    tr, *_ = deep_trace
    skin = first(tr["events"], "skin")
    pre = tr["insert_mm"] < skin.insert_mm
    assert (tr["tissue"][pre] == Tissue.AIR).all()
    assert tr["tenting_mm"][pre].max() > 1.0  # the skin was pushed in by more than a millimetre


def test_force_rises_monotonically_before_each_puncture(deep_trace):
    tr, *_ = deep_trace
    f, ins = tr["force_n"], tr["insert_mm"]
    # every membrane on the way through the vein and out of its back wall tears (else the loop checks nothing)
    assert [(e.membrane, e.vessel_index) for e in tr["events"]] == [
        ("skin", -1),
        ("fat", -1),
        ("vessel_wall", 0),
        ("back_wall", 0),
        ("muscle", -1),
    ]
    prev = 0.0
    for ev in tr["events"]:
        sel = (ins > prev + 0.3) & (ins < ev.insert_mm)
        seg = f[sel]
        assert seg.size > 10
        assert np.diff(seg).min() >= -1e-9, ev
        assert seg[-1] > seg[0]
        prev = ev.insert_mm


def test_back_wall_puncture_when_going_too_far(deep_trace):
    tr, dist, *_ = deep_trace
    wall, back = first(tr["events"], "vessel_wall", 0), first(tr["events"], "back_wall", 0)
    assert back is not None and back.insert_mm > dist > wall.insert_mm
    assert drop_after(tr, back) >= 0.3
    ins = tr["insert_mm"]
    assert not tr["back_wall_punctured"][ins < back.insert_mm].any()
    assert tr["back_wall_punctured"][ins >= back.insert_mm].all()
    # while the back wall tents the tip is still in the lumen; after it tears it is not
    assert tr["in_lumen"][ins < back.insert_mm][-1]
    assert not tr["in_lumen"][ins > back.insert_mm + 0.2].any()


def test_components_add_up_and_cutting_is_zero_in_the_lumen(deep_trace):
    tr, dist, *_ = deep_trace
    total = tr["stiffness_n"] + tr["friction_n"] + tr["cutting_n"]
    assert np.allclose(total, tr["force_n"])
    assert (tr["cutting_n"][tr["in_lumen"]] == 0).all()
    assert (tr["friction_n"] >= 0).all() and (tr["force_n"] >= 0).all()
    solid = np.isin(tr["tissue"], [Tissue.SKIN, Tissue.FAT, Tissue.MUSCLE])
    assert (tr["cutting_n"][solid] > 0).all()
    # friction only grows while inserting (more shaft in tissue), except when a tented membrane tears:
    # the shaft beyond its rest position was wrapped in the near-side tissue and is now in the lumen
    grow = np.diff(tr["friction_n"])
    at_tear = np.zeros(grow.size, bool)
    for ev in tr["events"]:
        at_tear |= (tr["insert_mm"][:-1] < ev.insert_mm) & (ev.insert_mm <= tr["insert_mm"][1:])
    assert at_tear.sum() == len(tr["events"]) == 5  # each tear falls in one step of the trace
    assert grow[~at_tear].min() >= -1e-9
    assert grow[at_tear].min() > -0.05


def test_retraction_friction_reverses_and_nothing_tears(forearm):
    pivot, d, dist = aim(forearm, 0)
    inward = np.append(np.arange(0.0, dist - 0.005, 0.01), dist)
    depths = np.concatenate([inward, np.arange(dist - 0.01, dist - 4.0, -0.01)])
    tr = insertion_profile(forearm, pivot, d, depths, rate_mm_s=2.0)
    n_in = inward.size - 1
    back = slice(n_in + 1, None)
    before_turn = tr["friction_n"][n_in - 1]
    assert before_turn > 0
    assert (tr["friction_n"][back] < 0).all()
    assert (tr["cutting_n"][back] == 0).all()
    assert (tr["force_n"][back] < 0).all()
    # same shaft length, same speed: equal and opposite Coulomb + viscous friction
    assert tr["friction_n"][n_in + 1] == pytest.approx(-before_turn, rel=0.02)
    assert all(e.insert_mm <= dist for e in tr["events"])  # no event while retracting
    assert [e.membrane for e in tr["events"]].count("vessel_wall") == 1


def test_torn_membranes_stay_torn_in_the_skin_and_heal_outside(forearm):
    pivot, d, dist = aim(forearm, 0)
    rng = np.random.default_rng(0)
    model = NeedleTissueModel(forearm)
    t = 0.0

    def go(a, b, rate=4.0):
        nonlocal t
        events, last = [], None
        step = 0.004 if b > a else -0.004
        for x in np.arange(a, b, step):
            t += 1e-3
            last = model.update(pivot, d, x, rate if b > a else -rate, t, rng)
            events += [e.membrane for e in last.events]
        return events, last

    ev, c = go(0.0, dist)
    assert "skin" in ev and "vessel_wall" in ev and c.in_lumen
    ev, c = go(dist, dist - 3.0)  # back out of the vein, still under the skin
    assert ev == [] and not c.in_lumen and c.inserted_mm > 0
    ev, c = go(dist - 3.0, dist)  # back in through the same hole: no new puncture
    assert ev == [] and c.in_lumen
    ev, c = go(dist, 1.0)  # out of the skin
    assert c.tip_tissue == Tissue.AIR and model.torn == frozenset()
    ev, c = go(1.0, dist)  # a new insertion punctures again
    assert "skin" in ev and "vessel_wall" in ev and c.in_lumen


def test_same_seed_same_measured_forces(forearm):
    pivot, d, dist = aim(forearm, 0)
    depths = np.arange(0.0, dist, 0.05)
    a = insertion_profile(forearm, pivot, d, depths, rng=np.random.default_rng(7))
    b = insertion_profile(forearm, pivot, d, depths, rng=np.random.default_rng(7))
    c = insertion_profile(forearm, pivot, d, depths, rng=np.random.default_rng(8))
    assert np.array_equal(a["measured_force_n"], b["measured_force_n"])
    assert not np.array_equal(a["measured_force_n"], c["measured_force_n"])
    assert np.array_equal(a["force_n"], c["force_n"])  # noise only touches the measurement
    noise = a["measured_force_n"] - a["force_n"]
    assert 0.005 < noise.std() < 0.02  # default noise_n = 0.01 N


def test_random_phantoms_every_vein_gives_skin_and_wall_events():
    rng = np.random.default_rng(2024)
    checked = reached_at_centre = 0
    for _ in range(20):
        ph = Phantom(sample_phantom(rng))
        for i, v in enumerate(ph.spec.vessels):
            if v.kind != "vein":
                continue
            pitch = float(rng.uniform(25.0, 35.0))
            x0 = float(rng.uniform(-5.0, 5.0))
            pivot, d, dist = aim(ph, i, pitch, x0)
            # beyond the centre: a fascia tenting just above the vein pushes it ahead of the tip
            tr = insertion_profile(ph, pivot, d, np.arange(0.0, dist + 4.0, 0.01), rate_mm_s=5.0, rng=rng)
            info = f"phantom {ph.spec.layers}, vessel {i} {v}, pitch {pitch:.1f}"
            skin, wall = first(tr["events"], "skin"), first(tr["events"], "vessel_wall", i)
            assert skin is not None and wall is not None, info
            assert skin.insert_mm < wall.insert_mm, info
            assert drop_after(tr, skin) >= 0.3, info
            assert drop_after(tr, wall) >= 0.3, info
            ins, lumen = tr["insert_mm"], tr["in_lumen"]
            assert not lumen[ins < wall.insert_mm].any(), info
            after = (ins > wall.insert_mm) & (ins < wall.insert_mm + 0.3)
            assert lumen[after].any() and (tr["lumen_vessel"][after & lumen] == i).all(), info
            reached_at_centre += bool(lumen[np.argmin(np.abs(ins - dist))])
            checked += 1
    assert checked >= 30
    assert reached_at_centre >= 0.8 * checked  # most veins are entered before the tip reaches the centre


def test_artery_lumen_is_reported_with_its_index(forearm):
    artery = next(i for i, v in enumerate(forearm.spec.vessels) if v.kind == "artery")
    pivot, d, dist = aim(forearm, artery, 35.0)
    tr = insertion_profile(forearm, pivot, d, np.arange(0.0, dist, 0.01), rate_mm_s=4.0)
    assert first(tr["events"], "vessel_wall", artery) is not None
    assert tr["tissue"][-1] == Tissue.ARTERY_LUMEN and tr["lumen_vessel"][-1] == artery


def test_moving_phantom_matches_an_uncached_model(forearm):
    spec = forearm.spec
    moving = Phantom(
        dataclasses.replace(
            spec, motion=dataclasses.replace(spec.motion, enabled=True, amplitude_mm=(2.0, 1.5, 0.5), frequency_hz=0.5)
        )
    )
    pivot, d, dist = aim(moving, 0)
    cached = NeedleTissueModel(moving, ForceModelParams(noise_n=0.0))
    exact = NeedleTissueModel(moving, ForceModelParams(noise_n=0.0, profile_tolerance_mm=0.001))
    rng = np.random.default_rng(0)
    xs = np.arange(0.0, dist + 6.0, 0.01)  # through the vein and its back wall
    fa, fb, ta, tb, ea, eb = [], [], [], [], [], []
    for k, x in enumerate(xs):
        t = 2.0 + k * 2.5e-3  # 4 mm/s while the arm moves at up to 6 mm/s
        a = cached.update(pivot, d, x, 4.0, t, rng)
        b = exact.update(pivot, d, x, 4.0, t, rng)
        fa.append(a.force_n), fb.append(b.force_n), ta.append(a.tip_tissue), tb.append(b.tip_tissue)
        ea += [(e.membrane, e.insert_mm) for e in a.events]
        eb += [(e.membrane, e.insert_mm) for e in b.events]
    assert cached.profile_builds < exact.profile_builds / 5  # the cache is actually used
    assert [m for m, _ in ea] == [m for m, _ in eb] and "back_wall" in [m for m, _ in ea]
    assert np.allclose([x for _, x in ea], [x for _, x in eb], atol=0.03)
    # away from the tears (where one step earlier or later flips peak and drop) forces agree closely
    near = np.zeros(xs.size, bool)
    for _, x in ea + eb:
        near |= np.abs(xs - x) < 0.06
    assert np.abs(np.array(fa) - np.array(fb))[~near].max() < 0.03
    assert np.mean(np.array(ta) == np.array(tb)) > 0.99


def test_static_needle_reuses_its_profile(forearm):
    pivot, d, dist = aim(forearm, 0)
    model = NeedleTissueModel(forearm)
    rng = np.random.default_rng(0)
    for k in range(200):
        model.update(pivot, d, 5.0 + 0.01 * k, 2.0, k * 1e-3, rng)
    assert model.profile_builds == 1


def test_karnopp_stick_band(forearm):
    pivot, d, dist = aim(forearm, 0)
    params = ForceModelParams(noise_n=0.0, karnopp_viscous_n_s_per_mm2=0.0)
    model = NeedleTissueModel(forearm, params)
    rng = np.random.default_rng(0)
    t = 0.0
    for x in np.arange(0.0, dist, 0.005):  # into the lumen: no stiffness, no cutting left
        t += 2.5e-3
        moving = model.update(pivot, d, x, 2.0, t, rng)
    t += 1.0
    still = model.update(pivot, d, dist, 0.0, t, rng)
    assert still.force_n == pytest.approx(0.0, abs=1e-12)
    coulomb = moving.components["friction"]
    assert coulomb > 0
    held = model.update(pivot, d, dist, 0.0, t, rng, applied_force_n=0.5 * coulomb)
    assert held.components["friction"] == pytest.approx(0.5 * coulomb, rel=1e-6)
    slipping = model.update(pivot, d, dist, 0.0, t, rng, applied_force_n=10.0)
    assert slipping.components["friction"] == pytest.approx(params.karnopp_static_ratio * coulomb, rel=1e-6)
    creeping = model.update(pivot, d, dist, 0.5 * params.karnopp_stick_band_mm_s, t, rng)
    assert 0 < creeping.components["friction"] < slipping.components["friction"]


def test_friction_and_cutting_scale_with_needle_diameter(forearm):
    pivot, d, dist = aim(forearm, 0)
    depths = np.arange(0.0, dist - 3.0, 0.01)
    thin = insertion_profile(forearm, pivot, d, depths, params=ForceModelParams(karnopp_viscous_n_s_per_mm2=0.0))
    thick = insertion_profile(
        forearm, pivot, d, depths, needle_diameter_mm=1.8, params=ForceModelParams(karnopp_viscous_n_s_per_mm2=0.0)
    )
    k = np.argmax(thin["friction_n"] > 0.05)
    assert thick["friction_n"][k] == pytest.approx(2 * thin["friction_n"][k], rel=1e-6)


def test_bad_inputs_are_refused_with_a_clear_message(forearm):
    model = NeedleTissueModel(forearm)
    with pytest.raises(IrRobotError, match="direction"):
        model.update(np.zeros(3), np.zeros(3), 1.0, 1.0, 0.0, np.random.default_rng(0))
    with pytest.raises(IrRobotError, match="Phantom"):
        NeedleTissueModel(forearm.spec)
    with pytest.raises(ConfigError, match="relax_mm"):
        from_dict(ForceModelParams, {"relax_mm": -1.0})
    with pytest.raises(IrRobotError, match="depths_mm"):
        insertion_profile(forearm, np.zeros(3), np.array([1.0, 0, 0]), [])


def test_a_line_missing_the_block_feels_nothing(forearm):
    model = NeedleTissueModel(forearm)
    c = model.update(np.array([0.0, 0.0, 10.0]), np.array([1.0, 0.0, 0.0]), 20.0, 2.0, 0.0, np.random.default_rng(0))
    assert c.force_n == 0.0 and c.tip_tissue == Tissue.AIR and c.inserted_mm == 0.0 and not c.in_lumen
