"""Control: the safety layer, the controller state machines and the procedure runner.

* :mod:`~ir_robot.control.safety` ``SafeRig`` between every controller and every rig backend
* :mod:`~ir_robot.control.state_machine` the controllers' generic state machine (an Enum of
  phases, the allowed transitions, one handler per phase over a typed context, the logs)
* :mod:`~ir_robot.control.venipuncture` the scan -> select -> align -> insert -> confirm -> hold
  -> retract state machine (``VenipunctureController``), its handlers by phase group
* :mod:`~ir_robot.control.tracking` force puncture/spike detection and target tracking
* :mod:`~ir_robot.control.runner` ``run_procedure`` (simulated or wall clock)

Scoring against ground truth lives a layer up, in :mod:`ir_robot.evaluation`. Nothing heavy is
imported here.
"""
