"""config/rig.yaml: loading, the GRBL settings it implies, joint <-> machine mapping, refusals."""

import numpy as np
import pytest
import yaml

from ir_robot.config import from_dict, to_dict
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import JointVector
from ir_robot.devices.config import RigConfig, load_rig_config


def test_shipped_config_loads_and_implies_the_settings():
    cfg = load_rig_config()
    assert cfg.axis_joints == ("x_mm", "y_mm", "insert_mm")
    s = cfg.expected_settings()
    assert s[20] == 1.0 and s[22] == 1.0 and s[13] == 0.0
    assert (s[100], s[110], s[120], s[130]) == (400.0, 600.0, 50.0, 90.0)
    assert (s[102], s[112], s[122], s[132]) == (800.0, 300.0, 20.0, 40.0)


def test_joint_mapping_round_trip_and_limits():
    cfg = load_rig_config()
    j = JointVector(
        x_mm=12.5,
        y_mm=-7.0,
        z_mm=cfg.fixed.z_mm,
        pitch_rad=cfg.fixed.pitch_rad,
        insert_mm=18.0,
        probe_yaw_rad=cfg.fixed.probe_yaw_rad,
    )
    mpos = cfg.mpos_from_joints(j)
    assert np.allclose(mpos, [-32.5, -29.0, -18.0])
    assert cfg.joints_from_mpos(mpos) == j
    lo, hi = cfg.joint_limits()
    assert (lo.x_mm, hi.x_mm, lo.y_mm, hi.y_mm, lo.insert_mm, hi.insert_mm) == (-45.0, 45.0, -22.0, 22.0, 0.0, 40.0)
    assert lo.pitch_rad == hi.pitch_rad == cfg.fixed.pitch_rad
    v = cfg.joint_speed_limits()
    assert (v.x_mm, v.insert_mm, v.z_mm) == (10.0, 5.0, 0.0)  # 600 mm/min capped by max_speed 10; 300 mm/min
    rates = cfg.axis_rates_from_joint_rates(JointVector(x_mm=1.0, insert_mm=2.0))
    assert np.allclose(rates, [1.0, 0.0, -2.0])
    assert cfg.joint_rates_from_axis_rates(rates) == JointVector(x_mm=1.0, insert_mm=2.0)


def test_round_trip_through_yaml(tmp_path):
    cfg = load_rig_config()
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_rig_config(p) == cfg


def test_refusals_name_the_field(tmp_path):
    data = to_dict(load_rig_config())
    bad = dict(data, grbl=dict(data["grbl"], y=dict(data["grbl"]["y"], joint="x_mm")))
    with pytest.raises(ConfigError, match="three different joints"):
        from_dict(RigConfig, bad)
    bad = dict(data, grbl=dict(data["grbl"], extra_settings={"$27": 1.0}))
    with pytest.raises(ConfigError, match="extra_settings"):
        from_dict(RigConfig, bad)
    bad = dict(data, loadcell=dict(data["loadcell"], sample_rate_hz=40))
    with pytest.raises(ConfigError, match="sample_rate_hz"):
        from_dict(RigConfig, bad)
    bad = dict(data, grbl=dict(data["grbl"], x=dict(data["grbl"]["x"], sign=2)))
    with pytest.raises(ConfigError, match="grbl.x.sign"):
        from_dict(RigConfig, bad)
    extra = dict(data, grbl=dict(data["grbl"], extra_settings={1: 255}))
    assert from_dict(RigConfig, extra).expected_settings()[1] == 255.0
