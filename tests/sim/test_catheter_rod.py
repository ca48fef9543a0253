"""Guidewire/catheter mechanics: fidelity against rod theory, contact, forces, drive, determinism, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ir_robot.config import from_dict
from ir_robot.core.errors import ConfigError
from ir_robot.sim.catheter import (
    WALL_FORCE_LIMIT_N,
    CatheterDevice,
    DriveCommand,
    InstrumentSpec,
    available_instruments,
    discretise,
    load_instrument,
    max_penetration_mm,
)
from ir_robot.sim.catheter.drive import DriveLimits, plan_substeps
from ir_robot.sim.catheter.instrument import instruments_dir
from ir_robot.sim.catheter.lumen import TubeLumen, arc_tube, straight_tube, tortuous_tube, y_bifurcation

X = np.array([1.0, 0.0, 0.0])
PENETRATION_TOL_MM = 0.1  # a node may sink this far into the wall (a 5 N penalty force at 50 N/mm)


def _uniform_wire(seg_mm: float = 1.5, length_mm: float = 400.0, bends: list[dict] | None = None) -> InstrumentSpec:
    data = {
        "name": "test_wire",
        "kind": "guidewire",
        "length_mm": length_mm,
        "contact_diameter_mm": 0.889,
        "segment_length_mm": seg_mm,
        "tip_segment_length_mm": seg_mm,
        "tip_region_mm": 0.0,
        "transition_mm": 0.0,
        "sections": [{"length_mm": length_mm, "outer_diameter_mm": 0.45, "youngs_modulus_mpa": 50000.0}],
        "bends": bends or [],
        "friction_coefficient": 0.1,
    }
    return from_dict(InstrumentSpec, data, source="test")


def test_shipped_instruments_load_with_60_plus_segments_and_a_floppy_tip():
    names = available_instruments()
    for shape in ("straight", "angled", "j"):
        assert f"guidewire_035_{shape}" in names
    assert {"catheter_5fr_cobra", "catheter_5fr_simmons", "catheter_5fr_angled", "catheter_4fr_straight"} <= set(names)
    for name in names:
        spec = load_instrument(name)
        d = discretise(spec)
        assert d.n_nodes - 1 >= 60, name
        assert d.ei[0] < 0.2 * d.ei[-1], f"{name}: the tip must be floppier than the body"
        assert np.all(d.seg_len > 0)
        if spec.shape != "straight":
            assert abs(d.rest_angle).sum() > math.radians(20), name


def test_cantilever_tip_deflection_matches_beam_theory():
    spec = _uniform_wire(seg_mm=1.5)
    length = float(discretise(spec).sigma[60])  # 60 segments, the clamp node exactly at the access point
    lumen = straight_tube(200.0, 15.0, start=(-50.0, 0.0, 0.0))  # free space: no wall in reach
    dev = CatheterDevice(spec, lumen, [0.0, 0.0, 0.0], X, inserted_mm=length)
    ei = discretise(spec).ei[1]
    force = 2e-4  # N: a small deflection (about 0.5 % of the length)
    ext = np.zeros((dev.rod.disc.n_nodes, 3))
    ext[0, 2] = force
    for _ in range(30):
        dev.step(DriveCommand(), 0.1, external=ext)
    expected = force * length**3 / (3.0 * ei)
    deflection = dev.tip[2]
    print(f"cantilever: tip deflection {deflection:.4f} mm, F L^3/3EI {expected:.4f} mm")
    assert abs(deflection - expected) / expected < 0.10, (deflection, expected)
    assert abs(dev.tip[0] - length) < 0.01


def _tip_angle_deg(dev: CatheterDevice, back_mm: float) -> float:
    """Angle between the tip segment and the segment ``back_mm`` proximal to the tip."""
    x = dev.rod.x
    sigma = dev.rod.disc.sigma
    j = int(np.searchsorted(sigma, back_mm))
    t0 = x[0] - x[1]
    tj = x[j] - x[j + 1]
    c = float(t0 @ tj / np.linalg.norm(t0) / np.linalg.norm(tj))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def test_precurved_tip_straightens_in_a_narrow_tube_and_recovers_outside():
    spec = load_instrument("guidewire_035_angled")  # 45 degrees over 2..8 mm from the tip
    narrow = 0.5 * spec.contact_diameter_mm + 0.25
    lumen = TubeLumen([np.array([[0.0, 0, 0], [60.0, 0, 0]]), np.array([[60.0, 0, 0], [120.0, 0, 0]])], [narrow, 15.0])
    dev = CatheterDevice(spec, lumen, [1.0, 0.0, 0.0], X, inserted_mm=0.0)
    for _ in range(12):  # 42 mm in: the tip is deep in the narrow tube
        dev.step(DriveCommand(35.0, 0.0), 0.1)
    inside = _tip_angle_deg(dev, 20.0)
    assert max_penetration_mm(dev.rod) < PENETRATION_TOL_MM
    for _ in range(10):  # 35 mm more: the tip is 17 mm into the wide chamber
        dev.step(DriveCommand(35.0, 0.0), 0.1)
    for _ in range(5):
        dev.step(DriveCommand(), 0.1)
    outside = _tip_angle_deg(dev, 20.0)
    assert inside < 12.0, inside  # straightened by the wall (rest 45)
    assert abs(outside - 45.0) < 0.15 * 45.0, outside  # recovered


def _roll_of(vec: np.ndarray) -> float:
    return math.atan2(float(vec[2]), float(vec[1]))


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def test_base_rotation_reaches_the_tip_with_a_bounded_lag():
    spec = load_instrument("guidewire_035_angled")
    lumen = straight_tube(300.0, 2.0)
    dev = CatheterDevice(spec, lumen, [1.0, 0.0, 0.0], X, inserted_mm=0.0)
    for _ in range(30):
        dev.step(DriveCommand(35.0, 0.0), 0.1)
    for _ in range(5):
        dev.step(DriveCommand(), 0.1)
    start = _roll_of(dev.rod.material_d1()[0])
    # turn the hub by pi/2 at pi rad/s, then hold; follow the tip's bend direction about the axis
    lags = []
    base = 0.0
    for _ in range(5):
        dev.step(DriveCommand(0.0, math.pi), 0.1)
        base += math.pi * 0.1
        tip = _roll_of(dev.rod.material_d1()[0]) - start
        lags.append(_wrap(base - tip))
    settle_steps = None
    for i in range(20):
        dev.step(DriveCommand(), 0.1)
        tip = _roll_of(dev.rod.material_d1()[0]) - start
        lags.append(_wrap(base - tip))
        if settle_steps is None and abs(lags[-1]) < math.radians(10.0):
            settle_steps = i + 1
    print(f"roll lag: max {math.degrees(max(lags)):.1f} deg during the turn; within 10 deg {settle_steps} steps after")
    assert max(lags) < math.pi / 2  # the tip moves while the hub turns
    assert settle_steps is not None and settle_steps <= 10
    assert abs(lags[-1]) < math.radians(10.0)
    # and the bend points where the tip's director says: the tip's offset from the axis turned too
    off = dev.tip[1:] / np.linalg.norm(dev.tip[1:])
    assert abs(_wrap(math.atan2(off[1], off[0]) - _roll_of(dev.rod.material_d1()[0]))) < math.radians(25.0)


@pytest.mark.parametrize("which", ["tortuous", "bifurcation"])
def test_no_tunnelling_at_the_fastest_drive(which):
    spec = load_instrument("guidewire_035_angled")
    if which == "tortuous":
        lumen = tortuous_tube(220.0, 3.5, amplitude_mm=10.0, n=300, seed=3)
        steps = 55
    else:
        lumen = y_bifurcation(trunk_mm=60.0, branch_mm=80.0, trunk_radius_mm=4.0, branch_radius_mm=2.5)
        steps = 35
    dev = CatheterDevice(spec, lumen, [2.0, 0.0, 0.0], X, inserted_mm=0.0)
    worst = -math.inf
    for i in range(steps):
        res = dev.step(DriveCommand(35.0, math.pi if (i // 10) % 2 == 0 else -math.pi), 0.1)
        assert res.substeps >= 1
        pen = max_penetration_mm(dev.rod)
        worst = max(worst, pen)
        assert pen <= PENETRATION_TOL_MM, (i, pen)
    assert dev.rod.inserted_mm > 0.9 * steps * 3.5
    print(f"{which}: worst penetration {worst:.4f} mm")


def test_pushing_into_a_blind_end_raises_wall_force_and_fires_the_event():
    spec = load_instrument("catheter_4fr_straight")
    lumen = straight_tube(60.0, 2.5)  # closed (round cap) at x = 60
    dev = CatheterDevice(spec, lumen, [1.0, 0.0, 0.0], X, inserted_mm=0.0)
    peaks, axial, fired = [], [], []
    for _ in range(25):
        res = dev.step(DriveCommand(35.0, 0.0), 0.1)
        peaks.append(res.max_wall_force_n)
        axial.append(res.forces.axial_force_n)
        fired.extend(res.events)
    assert max(peaks[:5]) < 0.5  # free travel: small forces
    assert peaks[-1] > WALL_FORCE_LIMIT_N
    assert fired and fired[0]["kind"] == "wall_force_over_limit"
    assert fired[0]["force_n"] > WALL_FORCE_LIMIT_N
    # the load cell at the drive feels the anatomy resisting: compressive and rising
    assert axial[-1] > 0.5 and axial[-1] > axial[5]
    f = dev.rod.last_forces
    assert f.tip_force[0] > WALL_FORCE_LIMIT_N  # the tip presses distally on the cap
    assert np.sum(f.wall_forces[:, 0]) < -WALL_FORCE_LIMIT_N  # and the cap pushes the device back


def test_same_inputs_give_identical_outputs():
    def run() -> tuple[np.ndarray, np.ndarray, list[float]]:
        spec = load_instrument("catheter_5fr_cobra")
        lumen = tortuous_tube(200.0, 4.0, n=200, seed=1)
        dev = CatheterDevice(spec, lumen, [2.0, 0.0, 0.0], X, inserted_mm=0.0)
        forces = []
        for i in range(20):
            res = dev.step(DriveCommand(30.0, 2.0 if i % 2 else -1.0), 0.1)
            forces.append(res.forces.axial_force_n)
        return dev.rod.x.copy(), dev.rod.phi.copy(), forces

    a, b = run(), run()
    assert np.array_equal(a[0], b[0])
    assert np.array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_drive_clamps_commands_beyond_the_limits_and_says_so():
    limits = DriveLimits()
    applied, clamped, n = plan_substeps(DriveCommand(100.0, -10.0), 0.1, limits)
    assert applied == DriveCommand(35.0, -math.pi)
    assert clamped == ("translation", "rotation")
    assert n >= 1 and 3.5 / n <= limits.max_advance_per_substep_mm
    with pytest.raises(ValueError):
        plan_substeps(DriveCommand(float("nan"), 0.0), 0.1, limits)


def _bad_yaml(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((instruments_dir() / "guidewire_035_angled.yaml").read_text())
    mutate(data)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_bad_yaml_names_the_file_the_field_and_the_range(tmp_path):
    def negative_modulus(d):
        d["sections"][0]["youngs_modulus_mpa"] = -5.0

    p = _bad_yaml(tmp_path, negative_modulus)
    with pytest.raises(ConfigError) as exc:
        load_instrument(p)
    msg = str(exc.value)
    assert str(p) in msg and "sections[0].youngs_modulus_mpa" in msg and "allowed range" in msg

    def unknown(d):
        d["stiffnes"] = 3

    with pytest.raises(ConfigError, match="stiffnes"):
        load_instrument(_bad_yaml(tmp_path, unknown))

    def missing(d):
        del d["contact_diameter_mm"]

    with pytest.raises(ConfigError, match="contact_diameter_mm.*missing"):
        load_instrument(_bad_yaml(tmp_path, missing))

    def bad_shape(d):
        d["shape"] = "pigtail"

    with pytest.raises(ConfigError, match="shape"):
        load_instrument(_bad_yaml(tmp_path, bad_shape))

    with pytest.raises(ConfigError, match="unknown instrument"):
        load_instrument("no_such_wire")


def test_base_rotation_in_a_bend_winds_up_but_reaches_the_tip():
    spec = load_instrument("guidewire_035_angled")
    lumen = arc_tube(25.0, math.pi, 2.5, lead_in_mm=60.0)
    dev = CatheterDevice(spec, lumen, [1.0, 0.0, 0.0], X, inserted_mm=0.0)
    for _ in range(30):
        dev.step(DriveCommand(35.0, 0.0), 0.1)
    rod = dev.rod
    assert rod.last_forces.n_contacts >= 2  # the wire rides the bend's walls: friction acts
    phi0 = rod.phi[0] - rod.roll_rad
    lags = []
    for _ in range(20):  # one full hub turn at pi rad/s
        dev.step(DriveCommand(0.0, math.pi), 0.1)
        lags.append(rod.roll_rad - (rod.phi[0] - phi0))
    for _ in range(10):
        dev.step(DriveCommand(), 0.1)
    final = rod.roll_rad - (rod.phi[0] - phi0)
    print(
        f"bend: tip roll lag max {math.degrees(max(lags)):.1f} deg while turning, {math.degrees(final):.1f} after 1 s"
    )
    assert abs(rod.roll_rad - 2.0 * math.pi) < 1e-9
    assert rod.phi[0] - phi0 > 2.0 * math.pi - math.pi / 2  # the tip turned nearly as much as the hub
    assert max(lags) < math.pi / 2  # bounded lag
    assert final < math.pi / 2  # static friction may hold some windup, but it stays bounded


def test_tube_lumen_cell_table_gives_the_exact_signed_distance():
    rng = np.random.default_rng(0)
    for lumen in (tortuous_tube(200.0, 3.0, n=200, seed=2), y_bifurcation()):
        idx = rng.integers(0, lumen.a.shape[0], 300)
        pts = lumen.a[idx] + rng.normal(0.0, 2.0, (300, 3))
        d, grad = lumen.signed_distance(pts)
        m = lumen.a.shape[0]
        sd, _, _ = lumen._segment_sd(pts, np.broadcast_to(np.arange(m), (300, m)))
        np.testing.assert_allclose(d, sd.min(axis=1), atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(grad, axis=1), 1.0, atol=1e-9)
