"""Guidewire and catheter mechanics for the catheter world: instruments as data, a quasi-static
elastic rod against a lumen's signed distance, wall contact forces and the proximal drive.

No rclpy and no PyBullet here: numpy and scipy only. See docs/catheter.md, "Instruments and mechanics".
"""

from ir_robot.sim.catheter.contact import WALL_FORCE_LIMIT_N, ForceReport
from ir_robot.sim.catheter.drive import CatheterDevice, DriveCommand, DriveLimits, StepResult
from ir_robot.sim.catheter.instrument import InstrumentSpec, available_instruments, discretise, load_instrument
from ir_robot.sim.catheter.lumen import Lumen, TubeLumen
from ir_robot.sim.catheter.rod import ElasticRod, max_penetration_mm

__all__ = [
    "WALL_FORCE_LIMIT_N",
    "CatheterDevice",
    "DriveCommand",
    "DriveLimits",
    "ElasticRod",
    "ForceReport",
    "InstrumentSpec",
    "Lumen",
    "StepResult",
    "TubeLumen",
    "available_instruments",
    "discretise",
    "load_instrument",
    "max_penetration_mm",
]
