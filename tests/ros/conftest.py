import itertools
import os

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

_counter = itertools.count()


@pytest.fixture
def domain_id() -> int:
    """A ROS domain of this test alone: parallel pytest runs (and tests in sequence) never hear each other."""
    return 100 + (os.getpid() * 13 + next(_counter)) % 130


@pytest.fixture
def gt_params(tmp_path):
    """Ground-truth perception (no weights needed, fast) for graph tests."""
    p = tmp_path / "gt.yaml"
    p.write_text("us_perception:\n  ros__parameters:\n    model: ground_truth\n"
                 "nir_perception:\n  ros__parameters:\n    model: ground_truth\n")
    return p


@pytest.fixture
def ros_context(domain_id):
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    yield ctx
    rclpy.try_shutdown(context=ctx)
