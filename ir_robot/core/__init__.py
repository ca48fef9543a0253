"""Plain types and errors shared by every layer (no rclpy, no pybullet, no torch)."""

from ir_robot.core.errors import (
    ConfigError,
    IrRobotError,
    PerceptionError,
    ProtocolError,
    RigError,
    SafetyTrip,
)
from ir_robot.core.types import (
    JOINT_NAMES,
    LABEL_ARTERY,
    LABEL_BACKGROUND,
    LABEL_NAMES,
    LABEL_NEEDLE,
    LABEL_VEIN,
    ImageFrame,
    JointVector,
    NeedlePose,
    NirView,
    ProbePose,
    RigCommand,
    RigState,
    Tissue,
)

__all__ = [
    "ConfigError",
    "IrRobotError",
    "PerceptionError",
    "ProtocolError",
    "RigError",
    "SafetyTrip",
    "JOINT_NAMES",
    "LABEL_ARTERY",
    "LABEL_BACKGROUND",
    "LABEL_NAMES",
    "LABEL_NEEDLE",
    "LABEL_VEIN",
    "ImageFrame",
    "JointVector",
    "NeedlePose",
    "NirView",
    "ProbePose",
    "RigCommand",
    "RigState",
    "Tissue",
]
