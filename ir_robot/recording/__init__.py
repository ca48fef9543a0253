"""MCAP session recording and replay (the ``ros2`` MCAP profile: CDR messages, ``ros2msg`` schemas).

Writing and reading need no ROS: :mod:`~ir_robot.recording.msgdefs` finds message
definitions in the installed ``share/<pkg>/msg/*.msg`` files,
:mod:`~ir_robot.recording.mcap_io` writes raw CDR (from rclpy) or plain objects and
reads files back. The ROS side (the recorder node, ``ir-robot replay``) lives in
``ir_robot.ros``.
"""
