"""Planning for autonomous venipuncture: vessel estimates fused from ultrasound and NIR
(:mod:`~ir_robot.planning.vessels`), target vein selection (:mod:`~ir_robot.planning.targets`),
insertion planning with reach, view and clearance checks (:mod:`~ir_robot.planning.insertion`)
and the shared frames (:mod:`~ir_robot.planning.geometry`). Pure numpy/scipy; no rig, no ROS.
"""
