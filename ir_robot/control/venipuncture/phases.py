"""The venipuncture controller's phases, their allowed transitions, the insertion's sub-states and
the report (:class:`Outcome`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ir_robot.planning.insertion import InsertionPlan


class Phase(str, enum.Enum):  # noqa: UP042 (a StrEnum would print as its value: str(phase) changes)
    """The phases of one venipuncture (the table in :mod:`ir_robot.control.venipuncture`)."""

    SCAN = "scan"
    SELECT = "select"
    ALIGN = "align"
    INSERT = "insert"
    CONFIRM = "confirm"
    HOLD = "hold"
    RETRACT = "retract"
    ABORT = "abort"
    DONE = "done"
    FAILED = "failed"


#: allowed transitions (anything else is a bug and raises)
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.SCAN: frozenset({Phase.SELECT, Phase.ABORT}),
    Phase.SELECT: frozenset({Phase.ALIGN, Phase.ABORT}),
    Phase.ALIGN: frozenset({Phase.INSERT, Phase.SELECT, Phase.ABORT}),  # SELECT: the artery check rejected it
    Phase.INSERT: frozenset({Phase.CONFIRM, Phase.RETRACT, Phase.ABORT}),
    Phase.CONFIRM: frozenset({Phase.HOLD, Phase.RETRACT, Phase.ABORT}),
    Phase.HOLD: frozenset({Phase.RETRACT, Phase.ABORT}),
    Phase.RETRACT: frozenset({Phase.DONE, Phase.ALIGN, Phase.FAILED, Phase.ABORT}),
    Phase.ABORT: frozenset({Phase.FAILED}),
    Phase.DONE: frozenset(),
    Phase.FAILED: frozenset(),
}


class InsertStep(enum.Enum):
    """Where the INSERT phase is: searching for the vein wall, or in the lumen test after a drop."""

    ADVANCE = "advance"  # forward at the zone's speed until a puncture-like drop near the wall
    TO_PROBE = "to_probe"  # to the lumen test's start, s* - d (back, or forward after an early drop)
    PROBE = "probe"  # advance d at v_probe to s*, sampling the force: flat = in the lumen


@dataclass
class Outcome:
    """What the controller reports at the end (no ground truth in here).

    ``events``: (t since the start, message), the state machine's event log. ``transitions``: the
    machine's transitions as (t since the start, from, to, why) phase values; a stop from outside
    (:meth:`~ir_robot.control.venipuncture.VenipunctureController.fail_now`) is logged as
    (the rig's time stamp, ``"any"``, ``"failed"``, why).
    """

    success: bool = False
    reason: str = ""
    attempts: int = 0
    confirmed: bool = False
    confirm_t_s: float | None = None
    duration_s: float = 0.0
    peak_force_n: float = 0.0
    plan: InsertionPlan | None = None
    candidates: list[str] = field(default_factory=list)
    attempt_failures: list[str] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    transitions: list[tuple[float, str, str, str]] = field(default_factory=list)
