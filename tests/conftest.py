import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# every test process talks only to itself on the ROS graph
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def forearm_yaml(root) -> Path:
    return root / "sim" / "phantoms" / "forearm.yaml"
