"""Domain packages import with rclpy blocked (only ir_robot.ros may use ROS)."""

import subprocess
import sys

DOMAIN = [
    "ir_robot.core",
    "ir_robot.config",
    "ir_robot.sim",
    "ir_robot.devices",
    "ir_robot.perception",
    "ir_robot.planning",
    "ir_robot.control",
    "ir_robot.envs",
    "ir_robot.rl",
    "ir_robot.recording",
    "ir_robot.cli",
]

BLOCKER = r"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == 'rclpy' or name.startswith('rclpy.') or name.split('.')[0].endswith('_msgs'):
            raise ImportError('rclpy is blocked in domain code: ' + name)
        return None
sys.meta_path.insert(0, Block())
mods = sys.argv[1:]
seen = []
for top in mods:
    try:
        m = importlib.import_module(top)
    except ModuleNotFoundError as e:
        if e.name == top:
            continue
        raise
    seen.append(top)
    if hasattr(m, '__path__'):
        for info in pkgutil.walk_packages(m.__path__, top + '.'):
            importlib.import_module(info.name)
            seen.append(info.name)
print(len(seen))
"""


def test_domain_imports_without_rclpy():
    res = subprocess.run([sys.executable, "-c", BLOCKER, *DOMAIN], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.strip().splitlines()[-1]) >= 5
