"""Rig backends behind one interface (:class:`ir_robot.devices.base.Rig`)."""
