"""Packaging: setup.py installs every data folder and every ROS node executable the graph needs."""

import ast
import re

from ir_robot.paths import data_path, share_dir


def _setup_entry_points(root):
    tree = ast.parse((root / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == "console_scripts":
                    return [ast.literal_eval(e) for e in v.elts]
    raise AssertionError("no console_scripts in setup.py")


def test_console_scripts_match_the_graph(root):
    from ir_robot.ros import graph

    scripts = _setup_entry_points(root)
    assert "ir-robot = ir_robot.cli:main" in scripts
    assert set(graph.console_scripts()) <= set(scripts)


def test_data_files_and_lookup(root):
    text = (root / "setup.py").read_text()
    for folder in ("launch", "config", "urdf", "sim", "models"):
        assert re.search(rf'tree\("{folder}"\)', text), folder
        assert (root / folder).is_dir()
    assert share_dir() == root
    assert data_path("urdf", "ir_rig.urdf").is_file()
    xml = (root / "package.xml").read_text()
    assert "<build_type>ament_python</build_type>" in xml and 'format="3"' in xml
    cfg = (root / "setup.cfg").read_text()
    assert "script_dir=$base/lib/ir_robot" in cfg and "install_scripts=$base/lib/ir_robot" in cfg
