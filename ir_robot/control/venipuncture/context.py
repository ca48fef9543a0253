"""The venipuncture controller's typed context: everything its phase handlers read and write.

One :class:`Context` per procedure, grouped by what the state serves (the scan, the selection,
the artery check, the alignment, the insertion and its force watch, the confirmation, the guard
against faults, the retraction, the ultrasound/NIR frames). Handlers are functions
``handler(context) -> joint rates`` (see :mod:`ir_robot.control.venipuncture`); the tick they
run on is :attr:`Context.tick`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ir_robot.control.config import ControlParams, VenipunctureConfig
from ir_robot.control.sensing import UsMeasurement
from ir_robot.control.state_machine import StateMachine
from ir_robot.control.tracking import ForceMonitor, ForceReading, TargetTracker
from ir_robot.control.venipuncture.phases import InsertStep, Outcome, Phase
from ir_robot.core.types import JOINT_NAMES, N_JOINTS, ImageFrame, Observation
from ir_robot.planning.insertion import InsertionPlan
from ir_robot.planning.targets import Candidate
from ir_robot.planning.vessels import CrossSection, NirTrace, VesselEstimate

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: joint indices in a joint-rate vector (:data:`~ir_robot.core.types.JOINT_NAMES` order)
X, Y, Z, PITCH, INS, YAW = range(6)
#: which joints are angles (rad) rather than lengths (mm)
ANGULAR: BoolArray = np.array([not n.endswith("_mm") for n in JOINT_NAMES])


class Tick(NamedTuple):
    """One control tick's input: rig time (s), joint positions, the images taken, the period (s),
    and the force monitor's reading of this tick's force.
    """

    t: float
    q: FloatArray
    obs: Observation
    dt: float
    force: ForceReading


@dataclass
class ScanState:
    """SCAN: the scan stations (probe x, y), where the scan is, and what it has seen."""

    stations: list[tuple[float, float]]
    station: int = 0
    tries: int = 0  # frames taken at this station
    blank_frames: int = 0  # over the whole scan
    sections: list[CrossSection] = field(default_factory=list)
    nir_traces: tuple[NirTrace, ...] = ()


@dataclass
class Selection:
    """SELECT: the fused vessels, the ranked candidates, the target vein and the insertion plan."""

    vessels: tuple[VesselEstimate, ...] = ()
    candidates: list[Candidate] = field(default_factory=list)
    target: VesselEstimate | None = None
    plan: InsertionPlan | None = None

    def the_plan(self) -> InsertionPlan:
        """The plan, for the phases that only run once SELECT has made one."""
        if self.plan is None:
            raise RuntimeError("no insertion plan yet (SELECT has not chosen a target)")
        return self.plan

    def the_target(self) -> VesselEstimate:
        """The target vessel, for the phases that only run once SELECT has chosen one."""
        if self.target is None:
            raise RuntimeError("no target vessel yet (SELECT has not chosen one)")
        return self.target


@dataclass
class ArteryCheck:
    """The artery check (pulsatility), by vessel index: (t, area, width) samples, when the dwell
    began, the verdicts; and whether the target's vein/artery call was uncertain (then it is
    punctured only on a "vein" verdict).
    """

    samples: dict[int, list[tuple[float, float, float]]] = field(default_factory=dict)
    since: dict[int, float] = field(default_factory=dict)
    verdicts: dict[int, str] = field(default_factory=dict)
    needs_vein_verdict: bool = False


@dataclass
class AlignState:
    """ALIGN: frames the tracker has followed the target since locking, and since when the rig has
    stood at the insertion pose (None: not yet).
    """

    lock_count: int = 0
    settled_since: float | None = None


@dataclass
class InsertState:
    """INSERT: the sub-state, the depth the safety layer may let the needle reach, and the lumen
    test's and the pause watch's force samples.
    """

    step: InsertStep | None = None  # None outside INSERT
    target_mm: float | None = 0.0  # insertion depth reported to the safety layer
    probe: list[tuple[float, float]] = field(default_factory=list)  # (insertion, force) of the lumen test
    probe_from: float = 0.0  # insertion where the lumen test's probe began
    probe_ticks: int = 0
    # forward travel from a drop to the lumen test's start (a drop before s* - d): its force
    approach: list[tuple[float, float]] = field(default_factory=list)
    approach_ticks: int = 0
    # force when the monitor last went blind near the vein wall (a pause, the end of a lumen test),
    # its cause, and until when to compare with it once advancing again (None: not yet advancing)
    pause_force: float | None = None
    pause_cause: str = ""
    watch_until: float | None = None


@dataclass
class ConfirmState:
    """CONFIRM: ultrasound frames of this attempt that showed the tip outside the lumen."""

    outside_frames: int = 0


@dataclass
class GuardState:
    """The fault guard of the phases with the needle in: spike pauses, a high force, a blocked
    target (out of reach or view) and the pause message last logged.
    """

    pause_until: float = -math.inf
    spikes: deque[float] = field(default_factory=deque)
    force_high_since: float | None = None
    blocked_since: float | None = None
    paused_msg: str = ""


@dataclass
class RetractState:
    """RETRACT / ABORT: where to go once the needle is out, and why the procedure was aborted."""

    then: Phase = Phase.FAILED
    abort_reason: str = ""


@dataclass
class Imaging:
    """The images: which the controller wants this tick, when it last asked for ultrasound, the
    last ultrasound measurement and frames, and the tissue layers' profile when tracking froze.
    """

    want: frozenset[str] = frozenset()
    last_us_t: float = -math.inf
    last_us: UsMeasurement | None = None
    layers_ref: npt.NDArray[Any] | None = None
    last_us_frame: ImageFrame | None = None
    last_nir_frame: ImageFrame | None = None


#: a phase handler: joint rates (JOINT_NAMES order) for this tick
Handler = Callable[["Context"], FloatArray]


@dataclass
class Context:
    """Everything one venipuncture's handlers share: configuration, the rig's limits, the state
    machine, the report, the trackers and the per-phase state.
    """

    cfg: VenipunctureConfig
    us_perception: Any  # predict(frame) -> UsResult (injected: models, ground truth, test fakes)
    nir_perception: Any  # predict(frame) -> NirResult, or None
    lo: FloatArray  # joint limits to plan within
    hi: FloatArray
    vmax: FloatArray  # joint rate caps (the rig's limits x speed_fraction)
    fixed: BoolArray  # joints the rig cannot move
    machine: StateMachine[Phase, Context, FloatArray]
    outcome: Outcome
    tracker: TargetTracker
    force: ForceMonitor
    scan: ScanState
    tick: Tick = field(
        default_factory=lambda: Tick(0.0, np.zeros(N_JOINTS), Observation(), 0.0, ForceReading(0.0, 0.0, False, 0.0))
    )
    settled_ticks: int = 0  # ticks at the goal pose (SCAN, ALIGN); reset by every transition
    last_rate: FloatArray = field(default_factory=lambda: np.zeros(N_JOINTS))
    sel: Selection = field(default_factory=Selection)
    artery: ArteryCheck = field(default_factory=ArteryCheck)
    align: AlignState = field(default_factory=AlignState)
    insert: InsertState = field(default_factory=InsertState)
    confirm: ConfirmState = field(default_factory=ConfirmState)
    guard: GuardState = field(default_factory=GuardState)
    retract: RetractState = field(default_factory=RetractState)
    img: Imaging = field(default_factory=Imaging)

    @property
    def p(self) -> ControlParams:
        """The control parameters (``cfg.control``)."""
        return self.cfg.control

    @property
    def phase(self) -> Phase:
        """The current phase."""
        return self.machine.phase

    @property
    def t_s(self) -> float:
        """The current tick's rig time."""
        return self.machine.now_s

    def event(self, msg: str) -> None:
        """Log ``msg`` with the time since the start."""
        self.machine.event(msg)

    def go(self, phase: Phase, why: str = "") -> None:
        """Move to ``phase`` (allowed by :data:`TRANSITIONS`, else it raises), report it and reset the
        per-phase counters: the reason of an abort, a failure or success goes into the outcome.
        """
        record = self.machine.go(phase, why)
        self.outcome.transitions.append((record.t_s, record.source.value, record.target.value, why))
        if phase == Phase.ABORT:
            self.retract.abort_reason = why
            self.outcome.reason = why
        if phase == Phase.FAILED and not self.outcome.reason:
            self.outcome.reason = why
        if phase == Phase.DONE:
            self.outcome.success = True
            self.outcome.reason = why
        self.insert.step = None
        self.settled_ticks = 0
