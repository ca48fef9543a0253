"""A back wall torn and the needle pulled out afterwards still fails the procedure: the world's
back_wall_punctured flag is the tissue's current state (it clears once the tip is back in air), so the
verdict must read the puncture events."""

import math

from ir_robot.core.types import JointVector, RigCommand
from ir_robot.evaluation.episode import Scorer, back_wall_punctured, judge


def test_back_wall_punctured_then_retracted_is_still_a_failure():
    from ir_robot.sim.world import NeedleWorld, WorldConfig

    with NeedleWorld(WorldConfig()) as w:
        # pivot 3 mm above the skin over the forearm phantom's 5 mm deep vein, 20 deg: through it and out the back
        w.reset_joints(JointVector(-21.9, 0.0, 3.0, 0.35, 0.0, math.pi / 2))
        for _ in range(160):
            s = w.step(RigCommand(JointVector(insert_mm=4.0), 0.05), 0.05)
        assert s.back_wall_punctured and back_wall_punctured(w)
        for _ in range(170):
            s = w.step(RigCommand(JointVector(insert_mm=-4.0), 0.05), 0.05)
        assert s.joints.insert_mm < 0.1 and not s.back_wall_punctured  # the flag cleared with the needle out
        assert back_wall_punctured(w)  # the event did not
        scorer = Scorer(w)
        scorer.hold_lumen = [True]
        verdict = judge(
            w,
            scorer,
            controller_success=True,
            controller_reason="venipuncture completed",
            duration_s=20.0,
            safety_trip=None,
        )
        assert not verdict.success and verdict.back_wall_punctured and "back wall punctured" in verdict.reason
