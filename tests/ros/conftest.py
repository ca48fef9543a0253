import itertools
import json
import os
import time

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
    p.write_text(
        "us_perception:\n  ros__parameters:\n    model: ground_truth\n"
        "nir_perception:\n  ros__parameters:\n    model: ground_truth\n"
    )
    return p


@pytest.fixture
def ros_context(domain_id):
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    yield ctx
    rclpy.try_shutdown(context=ctx)


class Probe:
    """A separate test node in its own context and executor thread (it talks to the graph over DDS)."""

    def __init__(self, domain_id: int):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from ir_robot.ros import qos
        from ir_robot.ros.run import spin_in_background

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = Node("test_probe", context=self.ctx)
        self.states, self.phases, self.summaries, self.joints = [], [], [], []
        self.node.create_subscription(String, "/procedure/state", lambda m: self.states.append(m.data), qos.latched())
        self.node.create_subscription(String, "/controller/phase", lambda m: self.phases.append(m.data), qos.events())
        self.node.create_subscription(
            String, "/sim/summary", lambda m: self.summaries.append(json.loads(m.data)), qos.latched()
        )
        self.node.create_subscription(
            JointState, "/rig/joint_states", lambda m: self.joints.append(list(m.position)), qos.state()
        )
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = spin_in_background(self.executor, "test-probe")

    def call(self, srv_type, name: str, request=None, timeout: float = 20.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
        fut = client.call_async(request or srv_type.Request())
        deadline = time.monotonic() + timeout
        while not fut.done():
            assert time.monotonic() < deadline, f"{name} did not answer"
            time.sleep(0.01)
        return fut.result()

    def wait(self, cond, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


@pytest.fixture
def probe(domain_id):
    """A test node of its own (own context and executor thread) in this test's domain."""
    p = Probe(domain_id)
    yield p
    p.close()


FAST = """
us_perception:
  ros__parameters:
    model: ground_truth
nir_perception:
  ros__parameters:
    model: ground_truth
sim:
  ros__parameters:
    seed: 0
    world:
      randomize: false
      motion: false
controller:
  ros__parameters:
    control:
      hold_s: 0.3
      travel_speed_mm_s: 20.0
      v_retract_mm_s: 9.0
"""


@pytest.fixture
def fast_params(tmp_path):
    """Ground-truth perception, a still phantom and a shorter hold: a complete procedure in ~20 s."""
    p = tmp_path / "fast.yaml"
    p.write_text(FAST)
    return p
