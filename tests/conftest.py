import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# every test process talks only to itself on the ROS graph
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

#: the serial port of a real benchtop rig, for tests marked `hardware` (also `--hardware PORT`)
HARDWARE_ENV = "IR_ROBOT_HARDWARE_PORT"


def pytest_addoption(parser):
    parser.addoption(
        "--hardware",
        metavar="PORT",
        default=None,
        help=f"run the tests marked `hardware` against the rig on this serial port (or set ${HARDWARE_ENV})",
    )


def _hardware_port(config) -> str | None:
    return config.getoption("--hardware") or os.environ.get(HARDWARE_ENV) or None


def pytest_collection_modifyitems(config, items):
    if _hardware_port(config):
        return
    skip = pytest.mark.skip(reason=f"needs a real rig: pass --hardware PORT or set {HARDWARE_ENV}")
    for item in items:
        if item.get_closest_marker("hardware") is not None:
            item.add_marker(skip)


@pytest.fixture
def hardware_port(request) -> str:
    """The real rig's serial port (tests marked `hardware` only run when one is given)."""
    port = _hardware_port(request.config)
    assert port, "hardware_port is for tests marked `hardware`"
    return port


@pytest.fixture(autouse=True)
def _rclpy_only_in_ros_tests(request, monkeypatch):
    """A test that starts rclpy (every node needs an initialised context) must be marked `ros`, so that
    `-m "not ros"` really runs no ROS graph: initialising a context in an unmarked test fails it."""
    if request.node.get_closest_marker("ros") is not None or importlib.util.find_spec("rclpy") is None:
        return
    from rclpy.context import Context

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts rclpy: mark it with @pytest.mark.ros")

    monkeypatch.setattr(Context, "init", refuse)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def forearm_yaml(root) -> Path:
    return root / "sim" / "phantoms" / "forearm.yaml"
