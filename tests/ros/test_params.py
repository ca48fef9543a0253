"""Node parameters come from the same config dataclasses; bad values are refused with a reason."""

from dataclasses import dataclass, field

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.ros.params import declare_config

pytestmark = pytest.mark.ros  # every test here starts an rclpy node


@dataclass(frozen=True)
class Inner:
    gain_n: float = param(1.0, range=(0.0, 5.0), unit="N", help="a gain")


@dataclass(frozen=True)
class Cfg:
    rate_hz: float = param(30.0, range=(1.0, 100.0), unit="Hz", help="frame rate")
    mode: str = param("a", choices=("a", "b"))
    count: int = param(3, range=(1, 10))
    home_mm: tuple[float, float] = param((1.0, 2.0), range=(-10.0, 10.0))
    inner: Inner = field(default_factory=Inner)
    weights: str | None = None
    locked: float = param(1.0, range=(0.0, 2.0))


def _node(ctx, tmp_path, text: str | None = None) -> Node:
    args = None
    if text is not None:
        p = tmp_path / "p.yaml"
        p.write_text(text)
        args = ["--ros-args", "--params-file", str(p)]
    return Node("t", context=ctx, cli_args=args, use_global_arguments=False)


def test_params_file_values_reach_the_config_with_int_for_float(ros_context, tmp_path):
    node = _node(
        ros_context,
        tmp_path,
        "t:\n  ros__parameters:\n    rate_hz: 20\n    inner:\n      gain_n: 2\n"
        "    home_mm: [3, 4]\n    weights: w.pt\n",
    )
    try:
        cfg = declare_config(node, Cfg).config
        assert cfg == Cfg(rate_hz=20.0, home_mm=(3.0, 4.0), inner=Inner(2.0), weights="w.pt")
        desc = node.describe_parameter("rate_hz")
        assert desc.floating_point_range[0].to_value == 100.0 and "[Hz]" in desc.description
        assert "one of ['a', 'b']" in node.describe_parameter("mode").additional_constraints
    finally:
        node.destroy_node()


def test_bad_params_file_fails_at_start_naming_field_and_range(ros_context, tmp_path):
    node = _node(ros_context, tmp_path, "t:\n  ros__parameters:\n    mode: c\n")
    try:
        with pytest.raises(ConfigError, match=r"mode.*'c'.*\['a', 'b'\]"):
            declare_config(node, Cfg)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("rate_hz", 500.0, "out of range"),
        ("mode", "z", "not one of"),
        ("count", 0, "out of range"),
        ("inner.gain_n", -1.0, "out of range"),
        ("home_mm", [30.0, 0.0], "outside the allowed range"),
        ("rate_hz", "fast", "type"),
        ("locked", 1.5, "read-only"),
    ],
)
def test_invalid_set_is_rejected_with_reason_and_old_value_kept(ros_context, tmp_path, name, value, words):
    node = _node(ros_context, tmp_path)
    changes = []
    try:
        bound = declare_config(node, Cfg, read_only=("locked",), on_change=lambda c, n: changes.append(n))
        before = bound.config
        res = node.set_parameters([Parameter(name, value=value)])[0]
        assert not res.successful and words in res.reason
        assert bound.config == before and changes == []
        assert node.get_parameter(name).value == Parameter(name, value=_get(before, name)).value
    finally:
        node.destroy_node()


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return list(cfg) if isinstance(cfg, tuple) else cfg


def test_valid_set_rebuilds_config_and_calls_on_change(ros_context, tmp_path):
    node = _node(ros_context, tmp_path)
    changes = []
    try:
        bound = declare_config(node, Cfg, on_change=lambda c, n: changes.append((c, n)))
        assert node.set_parameters([Parameter("rate_hz", value=50)])[0].successful  # int accepted for a double
        assert node.set_parameters([Parameter("inner.gain_n", value=4.5)])[0].successful
        assert bound.config.rate_hz == 50.0 and bound.config.inner.gain_n == 4.5
        assert [n for _, n in changes] == [("rate_hz",), ("inner.gain_n",)]
        assert node.set_parameters([Parameter("weights", value="")])[0].successful
        assert bound.config.weights is None
    finally:
        node.destroy_node()
