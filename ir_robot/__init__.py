"""ir_robot: AI-assisted interventional radiology robotics research stack.

Domain packages (core, sim, devices, perception, planning, control, envs, rl,
recording) are plain Python and never import rclpy; only ``ir_robot.ros`` does.
"""

__version__ = "0.1.0"
