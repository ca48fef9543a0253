"""Episodes and their scoring: procedures run in the simulator and judged against its ground truth.

The one layer that may read what the controller never sees (the phantom's lumen, the puncture
events); the benchmarks (:mod:`ir_robot.benchmarks`) and the ROS referee build on it.
"""
