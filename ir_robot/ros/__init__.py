"""ROS 2 adapters: the only package that imports rclpy and ROS messages.

* :mod:`~ir_robot.ros.graph` the one description of the graph (nodes, params, remappings)
  read by ``launch/sim.launch.py`` and by ``ir-robot launch``
* :mod:`~ir_robot.ros.conversions` messages <-> ``ir_robot.core`` types (SI units on the wire)
* :mod:`~ir_robot.ros.qos`, :mod:`~ir_robot.ros.params` QoS profiles and typed parameters
* nodes: ``sim_node``, ``rig_driver``, ``perception_nodes``, ``planner_node``,
  ``controller_node``, ``supervisor``, ``recorder``
* :mod:`~ir_robot.ros.launcher`, :mod:`~ir_robot.ros.replay` the pip launcher and MCAP replay

Importing ``ir_robot.ros`` itself does not import rclpy; its modules do.
"""
