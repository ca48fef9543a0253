"""Autonomous US/NIR-guided venipuncture: the controller state machine (Chen et al. 2020).

::

    SCAN -> SELECT -> ALIGN -> INSERT -> CONFIRM -> HOLD -> RETRACT -> DONE
      |        |        |        |          |         |        |
      +--------+--------+--------+----------+---------+--------+--> ABORT -> FAILED
                                 |          |                  |
                                 +----------+--> RETRACT ------+--> ALIGN (next attempt) | FAILED

=========  ====================================================================================
phase      what happens
=========  ====================================================================================
SCAN       probe transverse; one NIR frame; transverse ultrasound frames at the scan stations
           (``scan_x_mm`` x ``scan_y_mm``); blank frames are retaken
SELECT     fuse cross-sections and NIR traces into vessels (:func:`~ir_robot.planning.vessels.fuse_scan`),
           reject arteries and veins failing the diameter/depth/straightness criteria, plan the
           insertion into the best reachable vein (:func:`~ir_robot.planning.insertion.plan_insertion`)
ALIGN      move pivot, pitch and probe over the target (target in the ultrasound plane); lock the
           tracker on the target's cross-section; re-plan if it moved more than ``replan_threshold_mm``.
           Artery check (``pulsatility``): before the first insertion into a vessel, dwell ``dwell_s``
           transverse over it and measure its cross-section; a pulsating one is an artery whatever the
           classifier said: back to SELECT, which rejects it and takes the next candidate. A vein
           whose call was uncertain (``criteria.uncertain_needs_pulse``) is punctured only on a
           "vein" verdict (no pulse); "unknown" or no verdict rules it out as well
INSERT     visual servoing keeps the needle plane on the tracked target (pivot y, z follow it; near the
           image plane the tracker stops trusting needle-spoilt fixes: depth from the tissue layers);
           speed profile air -> skin -> tissue -> slow near the vein; a puncture (filtered force drop)
           near or past the front wall starts the *lumen test*: to ``s* - d``, advance ``d`` at
           ``v_probe``: a flat force means the tip is in the lumen (no membrane ahead), a rising one
           means a tenting wall still ahead (search deeper for the next puncture); a drop short of
           ``s* - d`` must also see no rise on the way there (``lumen_verdict``). A force that fell
           across a pause or the end of a lumen test near the wall (drops go unseen while the needle
           stops or turns) starts the lumen test too
CONFIRM    the tip held at the lumen centre; ultrasound must show the needle inside the lumen
HOLD       ``hold_s`` with tracking (the blood draw)
RETRACT    needle out along its axis, pivot up; then DONE, the next attempt or FAILED
ABORT      from any phase: retract (never advance), report the reason, FAILED
=========  ====================================================================================

Faults: no fresh target fix for ``perception_max_age_s`` -> insertion pauses; for
``dropout_timeout_s`` -> the attempt is given up and the needle retracted (at the lumen, with
the needle at the image plane and the arm's sway fitted, ``tracker.motion_grace_s`` later: the
needle hides a small lumen, and the pause follows the predicted target). A force reading
far above its neighbours is a sensor spike: insertion pauses ``spike_pause_s`` (too many spikes:
retract). A force above ``force_pause_n`` pauses, and retracts if it persists. A target the rig
cannot follow (out of reach) or that leaves the image pauses and then retracts. The needle never
advances without a fresh target fix.

**Stages with fixed joints.** Joints whose lower and upper limits are equal or whose speed limit is
zero (the 3-axis GRBL rig: pivot height, needle pitch and probe yaw are set by the build) are held
where the rig has them: no yaw turn (the fixed probe must already be transverse, else the controller
refuses to start), the scan runs at the rig's height and pitch, the entry is planned at the fixed
pitch and height (:func:`~ir_robot.planning.insertion.plan_insertion`), and tracking follows the
target sideways only (a fixed height cannot follow it up and down). Nothing to configure: the mode
follows from the limits the rig reports (``config/venipuncture_rig.yaml`` tunes speeds and the
probe mount for the benchtop rig).

The controller is computed from state, observation and dt only (``compute``) and drives the
:class:`~ir_robot.devices.base.Rig` interface through joint-rate commands, so the same code runs the
simulator and the serial rig; it never sees ground truth.

**Where it lives.** :class:`VenipunctureController` (``controller.py``) runs the phases on the
generic :class:`~ir_robot.control.state_machine.StateMachine` (the table above is
:data:`TRANSITIONS`; an illegal transition raises), one handler per phase, each a function of the
typed :class:`~ir_robot.control.venipuncture.context.Context` (``context.py``: the scan, the
selection, the artery check, the alignment, the insertion's sub-state :class:`InsertStep` and force
watch, the guard, the retraction, the images). The tick's time, joints, images, period and force reading are
``context.tick``.

=========  ===========================  =================================================================
phase      handler                      with
=========  ===========================  =================================================================
SCAN       ``scan.scan``                ``scan.station_goal``
SELECT     ``scan.select``
ALIGN      ``align.align``              ``align.start_insertion``, the artery check in ``artery.py``
INSERT     ``insert.insert``            sub-states :class:`InsertStep`; the lumen test's rules in
                                        ``lumen.py`` (:func:`lumen_verdict`, :func:`probe_sample_ready`)
CONFIRM    ``confirm.confirm``
HOLD       ``confirm.hold``
RETRACT    ``retract.retract``
ABORT      ``retract.retract``          (then FAILED with the abort's reason)
=========  ===========================  =================================================================

Shared by the phases: ``follow.py`` (the tracked target, ultrasound frames into the tracker, the
pivot goals that keep the needle on it), ``guard.py`` (pauses and giving an attempt up),
``servo.py`` (joint rates toward a pose). ``phases.py`` holds :class:`Phase`, :data:`TRANSITIONS`,
:class:`InsertStep` and :class:`Outcome`.
"""

from ir_robot.control.venipuncture.controller import HANDLERS, VenipunctureController
from ir_robot.control.venipuncture.lumen import PAUSE_WATCH_S, SETTLE_TICKS, lumen_verdict, probe_sample_ready
from ir_robot.control.venipuncture.phases import TRANSITIONS, InsertStep, Outcome, Phase

__all__ = [
    "HANDLERS",
    "PAUSE_WATCH_S",
    "SETTLE_TICKS",
    "TRANSITIONS",
    "InsertStep",
    "Outcome",
    "Phase",
    "VenipunctureController",
    "lumen_verdict",
    "probe_sample_ready",
]
