"""The shapes in core.protocols are what the implementations really are (checked structurally)."""

from ir_robot.control.config import VenipunctureConfig
from ir_robot.control.venipuncture import VenipunctureController
from ir_robot.core.protocols import Controller, Perception
from ir_robot.core.types import JointVector
from ir_robot.evaluation.episode import make_perception


def test_the_venipuncture_controller_is_a_controller_and_perception_is_perception():
    cfg = VenipunctureConfig()
    us, nir = make_perception("ground_truth", cfg)
    assert isinstance(us, Perception) and isinstance(nir, Perception)
    lo = JointVector(x_mm=-50, y_mm=-50, z_mm=0, pitch_rad=0.1, insert_mm=0, probe_yaw_rad=-3.2)
    hi = JointVector(x_mm=50, y_mm=50, z_mm=60, pitch_rad=1.0, insert_mm=60, probe_yaw_rad=3.2)
    vmax = JointVector(x_mm=20, y_mm=20, z_mm=20, pitch_rad=1, insert_mm=10, probe_yaw_rad=2)
    controller = VenipunctureController(cfg, us, nir, lower=lo, upper=hi, velocity_limits=vmax)
    assert isinstance(controller, Controller)


def test_an_object_missing_compute_is_not_a_controller():
    class NotAController:
        done = False
        outcome = None

        def sensors(self, state=None):
            return frozenset()

    assert not isinstance(NotAController(), Controller)
