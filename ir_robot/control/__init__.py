"""Control for autonomous venipuncture: the safety layer, the controller state machine,
the procedure runner, the simulated evaluation and the ``ir-robot demo`` / ``evaluate``
commands.

* :mod:`~ir_robot.control.safety` ``SafeRig`` between every controller and every rig backend
* :mod:`~ir_robot.control.state_machine` the controllers' generic state machine (an Enum of
  phases, the allowed transitions, one handler per phase over a typed context, the logs)
* :mod:`~ir_robot.control.venipuncture` the scan -> select -> align -> insert -> confirm -> hold
  -> retract state machine (``VenipunctureController``), its handlers by phase group
* :mod:`~ir_robot.control.tracking` force puncture/spike detection and target tracking
* :mod:`~ir_robot.control.runner` ``run_procedure`` (simulated or wall clock)
* :mod:`~ir_robot.control.episode` one simulated procedure scored against ground truth,
  and the seeded evaluation behind ``ir-robot evaluate venipuncture``

Nothing heavy is imported here.
"""
