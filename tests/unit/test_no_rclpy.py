"""Domain code imports with rclpy blocked (only ir_robot.ros may use ROS).

Every module of ir_robot/ outside ir_robot/ros is found on disk and imported in a fresh interpreter
whose import system refuses rclpy and the ROS message/interface packages; the number imported must
equal the number found, so a module that is skipped, missing or new cannot slip through.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ir_robot"

BLOCKER = r"""
import importlib, sys

BLOCK = sys.argv[1] == "block"


class Block:
    def find_spec(self, name, path=None, target=None):
        top = name.split('.')[0]
        if top in ('rclpy', 'rcl_interfaces', 'builtin_interfaces', 'tf2_ros') or top.endswith(('_msgs', '_srvs')):
            raise ImportError('rclpy is blocked in domain code: ' + name)
        return None


if BLOCK:
    sys.meta_path.insert(0, Block())
imported = 0
for name in sys.argv[2:]:
    importlib.import_module(name)
    imported += 1
print(imported)
"""


def domain_modules() -> list[str]:
    """Every module under ir_robot/ (packages by their __init__) except ir_robot/ros, from the files on disk."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if parts[:2] == ("ir_robot", "ros"):
            continue
        names.append(".".join(parts))
    return names


def run_blocker(modules, block=True, extra_path=None):
    env = dict(os.environ)
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    args = [sys.executable, "-c", BLOCKER, "block" if block else "open", *modules]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT))


def test_every_domain_module_imports_without_rclpy():
    modules = domain_modules()
    # the domain packages are all there (a wrong root or a renamed tree would leave a handful)
    for pkg in ("ir_robot.core", "ir_robot.sim", "ir_robot.devices", "ir_robot.perception", "ir_robot.control"):
        assert pkg in modules and any(m.startswith(pkg + ".") for m in modules), pkg
    assert not any(m.startswith("ir_robot.ros") for m in modules)
    res = run_blocker(modules)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.strip().splitlines()[-1]) == len(modules)


def test_the_blocker_fails_a_module_that_imports_rclpy(tmp_path):
    """Negative control: the same check on a module that imports rclpy (or a message package) fails, and only
    because of the block: without it the module imports."""
    (tmp_path / "uses_rclpy.py").write_text("import rclpy.node\n")
    (tmp_path / "uses_msgs.py").write_text("from std_msgs.msg import String\n")
    (tmp_path / "uses_srvs.py").write_text("from std_srvs.srv import Trigger\n")
    for module in ("uses_rclpy", "uses_msgs", "uses_srvs"):
        open_run = run_blocker([module], block=False, extra_path=tmp_path)
        assert open_run.returncode == 0 and open_run.stdout.strip() == "1", open_run.stderr
        blocked = run_blocker(["ir_robot.core", module], block=True, extra_path=tmp_path)
        assert blocked.returncode != 0, module
        assert "rclpy is blocked in domain code" in blocked.stderr, blocked.stderr
