"""Phantom YAML validation and geometry."""

import numpy as np
import pytest
import yaml

from ir_robot.core.errors import ConfigError
from ir_robot.core.types import Tissue
from ir_robot.sim.phantom import Phantom, PhantomSpec, load_phantom, phantom_to_dict, sample_phantom


def _write(tmp_path, data, name="p.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_default_phantom_loads(forearm_yaml):
    spec = load_phantom(forearm_yaml)
    assert [layer.name for layer in spec.layers] == ["skin", "fat", "muscle"]
    assert 2 <= len(spec.vessels) <= 4
    assert any(v.kind == "artery" for v in spec.vessels)


def test_missing_field_names_file_and_field(tmp_path, forearm_yaml):
    data = yaml.safe_load(forearm_yaml.read_text())
    del data["layers"][0]["thickness_mm"]
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        load_phantom(path)
    msg = str(exc.value)
    assert str(path) in msg and "layers[0].thickness_mm" in msg and "missing" in msg


def test_unknown_field_rejected(tmp_path, forearm_yaml):
    data = yaml.safe_load(forearm_yaml.read_text())
    data["vessels"][0]["diamter_mm"] = 3.0
    with pytest.raises(ConfigError, match=r"vessels\[0\]\.diamter_mm.*unknown field"):
        load_phantom(_write(tmp_path, data))


def test_negative_diameter_gives_range(tmp_path, forearm_yaml):
    data = yaml.safe_load(forearm_yaml.read_text())
    data["vessels"][0]["diameter_mm"] = -2.0
    with pytest.raises(ConfigError, match=r"vessels\[0\]\.diameter_mm.*allowed range \[0\.8, 10\.0\] mm"):
        load_phantom(_write(tmp_path, data))


def test_vessel_outside_block_rejected(tmp_path, forearm_yaml):
    data = yaml.safe_load(forearm_yaml.read_text())
    data["vessels"][0]["depth_mm"] = 29.5
    with pytest.raises(ConfigError, match=r"vessels\[0\]\.depth_mm.*outside the tissue.*allowed range"):
        load_phantom(_write(tmp_path, data))
    data["vessels"][0]["depth_mm"] = 5.0
    data["vessels"][0]["y_mm"] = 24.0
    with pytest.raises(ConfigError, match=r"vessels\[0\]\.y_mm.*allowed range"):
        load_phantom(_write(tmp_path, data))


def test_wrong_type_and_bad_yaml(tmp_path, forearm_yaml):
    data = yaml.safe_load(forearm_yaml.read_text())
    data["block"]["length_mm"] = "long"
    with pytest.raises(ConfigError, match=r"block\.length_mm.*expected a number"):
        load_phantom(_write(tmp_path, data))
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_phantom(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_phantom(tmp_path / "nope.yaml")


def test_round_trip(tmp_path, forearm_yaml):
    spec = load_phantom(forearm_yaml)
    again = load_phantom(_write(tmp_path, phantom_to_dict(spec)))
    assert again == spec


def test_tissue_at_geometry(forearm_yaml):
    ph = Phantom(load_phantom(forearm_yaml))
    v = ph.spec.vessels[0]
    yc, zc = ph.centreline(np.array(0.0))
    centre = np.array([0.0, yc[0], zc[0]])
    assert ph.tissue_at(centre) == Tissue.VEIN_LUMEN
    above_wall = centre + [0, 0, v.diameter_mm / 2 * v.compression + v.wall_thickness_mm / 2]
    assert ph.tissue_at(above_wall) == Tissue.VESSEL_WALL
    assert ph.tissue_at(np.array([0.0, 5.0, 1.0])) == Tissue.AIR
    assert ph.tissue_at(np.array([0.0, 5.0, -0.5])) == Tissue.SKIN
    assert ph.tissue_at(np.array([0.0, 5.0, -(ph.boundaries_mm[0] + 0.5)])) == Tissue.FAT
    assert ph.tissue_at(np.array([0.0, 5.0, -20.0])) == Tissue.MUSCLE
    art = next(i for i, s in enumerate(ph.spec.vessels) if s.kind == "artery")
    assert ph.tissue_at(np.array([0.0, yc[art], zc[art]])) == Tissue.ARTERY_LUMEN


def test_artery_pulsates_and_motion_moves(forearm_yaml):
    spec = load_phantom(forearm_yaml)
    ph = Phantom(spec)
    art = next(i for i, s in enumerate(spec.vessels) if s.kind == "artery")
    radii = np.array([ph.radius_mm(t)[art] for t in np.linspace(0, 1, 50)])
    assert radii.max() - radii.min() > 0.05
    assert np.allclose(ph.offset_mm(3.0), 0.0)  # motion disabled in the file
    import dataclasses

    moving = Phantom(dataclasses.replace(spec, motion=dataclasses.replace(spec.motion, enabled=True)))
    assert np.linalg.norm(moving.offset_mm(1.3)) > 0.1


def test_sampling_is_seeded_and_physical():
    a = sample_phantom(np.random.default_rng(7), motion=True)
    b = sample_phantom(np.random.default_rng(7), motion=True)
    assert a == b
    assert a != sample_phantom(np.random.default_rng(8), motion=True)
    rng = np.random.default_rng(0)
    for _ in range(100):
        spec = sample_phantom(rng)
        assert isinstance(spec, PhantomSpec)  # __post_init__ validated it
        veins = [v for v in spec.vessels if v.kind == "vein"]
        assert veins and all(1.5 <= v.diameter_mm <= 5.0 for v in veins)
        for v in veins:  # 2-12 mm deep, always below the skin
            assert 2.0 <= v.depth_mm <= 12.0
            assert v.depth_mm - v.diameter_mm / 2 - v.wall_thickness_mm > spec.layers[0].thickness_mm
        ph = Phantom(spec)
        yc, zc = ph.centreline(np.array(0.0))
        for i, v in enumerate(spec.vessels):  # every vessel's centre really is lumen
            want = Tissue.VEIN_LUMEN if v.kind == "vein" else Tissue.ARTERY_LUMEN
            assert ph.tissue_at(np.array([0.0, yc[i], zc[i]])) == want
