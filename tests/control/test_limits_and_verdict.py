"""The shared domain functions the simulated episode and the ROS nodes both use: planning limits
(margins + workspace box) and the success rule (``judge``)."""

from types import SimpleNamespace

import numpy as np

from ir_robot.control.limits import planning_limits, with_margins, within_workspace
from ir_robot.control.safety import SafetyConfig
from ir_robot.core.types import JointVector
from ir_robot.evaluation.episode import MAX_DURATION_S, judge

LO = JointVector(-60.0, -30.0, -5.0, 0.1, 0.0, -1.0)
HI = JointVector(60.0, 30.0, 80.0, 1.2, 40.0, 2.0)


def test_planning_limits_apply_margins_then_the_workspace_box():
    safety = SafetyConfig(
        limit_margin_mm=1.0,
        limit_margin_rad=0.05,
        workspace_min_mm=(-45.0, -22.0, 0.0),
        workspace_max_mm=(45.0, 22.0, 60.0),
    )
    lo, hi = planning_limits(LO, HI, safety)
    np.testing.assert_allclose(lo.as_array(), [-45.0, -22.0, 0.0, 0.15, 1.0, -0.95, 0.0])
    np.testing.assert_allclose(hi.as_array(), [45.0, 22.0, 60.0, 1.15, 39.0, 1.95, 0.0])


def test_fixed_joints_keep_the_rigs_value():
    safety = SafetyConfig(
        limit_margin_mm=1.0, workspace_min_mm=(-45.0, -22.0, 10.0), workspace_max_mm=(45.0, 22.0, 60.0)
    )
    lo = LO.as_array().copy()
    hi = HI.as_array().copy()
    lo[2] = hi[2] = 8.0  # a 3-axis stage: the pivot height is fixed (outside the box's z range, even)
    mlo, mhi = with_margins(lo, hi, safety)
    assert mlo[2] == mhi[2] == 8.0
    wlo, whi = within_workspace(mlo, mhi, safety)
    assert wlo[2] == whi[2] == 8.0
    assert wlo[0] == -45.0 and whi[0] == 45.0


def _world(back_wall=False, artery_hit=False):
    event = SimpleNamespace(membrane="vessel_wall", vessel_index=1)
    state = SimpleNamespace(back_wall_punctured=back_wall, events=[event] if artery_hit else [])
    return SimpleNamespace(state=lambda: state, phantom=SimpleNamespace(is_artery=np.array([False, True])))


def _scorer(lumen):
    return SimpleNamespace(hold_in_lumen=bool(lumen) and all(lumen))


def test_judge_success_needs_every_ground_truth_condition():
    ok = judge(
        _world(),
        _scorer([True, True]),
        controller_success=True,
        controller_reason="",
        duration_s=30.0,
        safety_trip=None,
    )
    assert ok.success and ok.reason == "ok" and ok.hold_in_lumen
    v = judge(
        _world(back_wall=True, artery_hit=True),
        _scorer([True, False]),
        controller_success=True,
        controller_reason="",
        duration_s=MAX_DURATION_S + 1,
        safety_trip="force_ceiling",
    )
    assert not v.success and v.back_wall_punctured and v.artery_punctured and not v.hold_in_lumen
    for part in (
        "tip not in a vein lumen",
        "back wall punctured",
        "artery punctured",
        "safety trip: force_ceiling",
        "took",
    ):
        assert part in v.reason
    assert not judge(
        _world(), None, controller_success=True, controller_reason="", duration_s=1.0, safety_trip=None
    ).success  # no hold recorded
    failed = judge(
        _world(),
        _scorer([True]),
        controller_success=False,
        controller_reason="no vein found",
        duration_s=10.0,
        safety_trip=None,
    )
    assert not failed.success and failed.reason == "no vein found"
