"""One graph description: the launch file and the pip launcher read the same nodes, params and remappings."""

import importlib.util
import sys
import types

import pytest
import yaml

from ir_robot.ros.graph import (
    GRAPHS,
    NODES,
    RECORDER,
    console_scripts,
    graph,
    node_spec,
    params_files,
    params_path,
    ros_arguments,
)


def _fake_launch_modules(monkeypatch):
    """Just enough of launch / launch_ros (not on pip) to evaluate launch/sim.launch.py."""
    made = []

    class Node:
        def __init__(self, **kw):
            self.kw = kw
            made.append(kw)

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class Action:
        def __init__(self, *a, **kw):
            self.a, self.kw = a, kw

    launch = types.ModuleType("launch")
    launch.LaunchDescription = lambda actions: actions
    launch.actions = types.ModuleType("launch.actions")
    launch.actions.DeclareLaunchArgument = Action
    launch.actions.OpaqueFunction = Action
    launch.substitutions = types.ModuleType("launch.substitutions")
    launch.substitutions.LaunchConfiguration = LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    launch_ros.actions = types.ModuleType("launch_ros.actions")
    launch_ros.actions.Node = Node
    for name, mod in {
        "launch": launch,
        "launch.actions": launch.actions,
        "launch.substitutions": launch.substitutions,
        "launch_ros": launch_ros,
        "launch_ros.actions": launch_ros.actions,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return made


def test_launch_file_starts_exactly_the_graph_description(monkeypatch, root):
    made = _fake_launch_modules(monkeypatch)
    spec = importlib.util.spec_from_file_location("sim_launch", root / "launch" / "sim.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    actions = mod.generate_launch_description()
    opaque = actions[-1]
    opaque.kw["function"]({"graph": "sim", "params_file": "/tmp/extra.yaml", "record": "/tmp/s.mcap"})
    expected = [*graph("sim"), RECORDER]
    assert [m["name"] for m in made] == [s.name for s in expected]
    assert [m["executable"] for m in made] == [s.executable for s in expected]
    for m, s in zip(made, expected, strict=True):
        assert m["package"] == "ir_robot" and m["remappings"] == list(s.remappings)
        assert m["parameters"][-1 if s is not RECORDER else -2] == "/tmp/extra.yaml"
    assert made[-1]["parameters"][-1] == {"path": "/tmp/s.mcap"}
    assert str(params_path("sim")) == made[0]["parameters"][0]


def test_pip_launcher_arguments_follow_the_description():
    spec = graph("sim")[0]
    args = ros_arguments(spec, ["a.yaml", "b.yaml"])
    assert args[:3] == ["--ros-args", "-r", f"__node:={spec.name}"]
    assert args.index("a.yaml") < args.index("b.yaml")  # later files win, as in ROS


def test_every_node_class_and_entry_point_exists():
    from ir_robot.ros.run import load_class

    for spec in NODES.values():
        cls = load_class(spec.node_class)
        assert cls.NODE_NAME == spec.name
        module = importlib.import_module(spec.module)
        assert callable(getattr(module, spec.main))
    lines = console_scripts()
    assert "ir_robot_sim = ir_robot.ros.sim_node:main" in lines
    assert len(lines) == len({s.executable for s in NODES.values()})


@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
def test_shipped_params_files_validate_against_the_node_configs(graph_name):
    """Every section of config/ros/*.yaml builds the node's config dataclasses (ranges, choices, no typos)."""
    from ir_robot.ros.params import validate_section
    from ir_robot.ros.run import load_class

    data: dict = {}  # the files in the order they apply (a base graph's first), later values win, as in ROS
    for path in params_files(graph_name):
        for node, section in yaml.safe_load(path.read_text()).items():
            merged = data.setdefault(node, {"ros__parameters": {}})["ros__parameters"]
            _deep_update(merged, section["ros__parameters"])
    for spec in GRAPHS[graph_name]:
        assert spec.name in data, f"{graph_name}.yaml has no section for {spec.name}"
        cls = load_class(spec.node_class)
        validate_section(cls.PARAMS, data[spec.name]["ros__parameters"], f"{graph_name}.yaml:{spec.name}")


def _deep_update(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _deep_update(into[k], v)
        else:
            into[k] = v


def test_a_graph_reads_its_base_graphs_params_first():
    files = params_files("rig_emulator")
    assert [f.name for f in files] == ["rig.yaml", "rig_emulator.yaml"] and all(f.is_file() for f in files)
    assert params_files("sim") == [params_path("sim")]
    from ir_robot.ros.launcher import _node_args

    args = _node_args(node_spec("rig_driver"), "rig_emulator", ["extra.yaml"], None)
    given = [args[i + 1] for i, a in enumerate(args) if a == "--params-file"]
    assert given == [str(files[0]), str(files[1]), "extra.yaml"]


def test_validate_section_names_the_bad_parameter():
    from ir_robot.core.errors import ConfigError
    from ir_robot.ros.params import validate_section
    from ir_robot.ros.run import load_class

    cls = load_class(NODES["sim"].node_class)
    with pytest.raises(ConfigError, match="unknown parameter 'world.phantomm'"):
        validate_section(cls.PARAMS, {"world": {"phantomm": "x"}}, "f.yaml:sim")
    with pytest.raises(ConfigError, match=r"f.yaml:sim: field 'us_rate_hz'.*allowed range"):
        validate_section(cls.PARAMS, {"us_rate_hz": 500.0}, "f.yaml:sim")


def test_unknown_graph_and_node_names_are_clear():
    from ir_robot.core.errors import ConfigError
    from ir_robot.ros.graph import node_spec

    with pytest.raises(ConfigError, match="graphs are"):
        graph("nope")
    with pytest.raises(ConfigError, match="nodes are"):
        node_spec("nope")
