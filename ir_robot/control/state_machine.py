"""A small typed state machine for controllers: an Enum of phases, a table of allowed transitions,
one handler per live phase over a typed context, and the logs a procedure report is made of.

The shape every controller in :mod:`ir_robot.control` uses (the venipuncture controller today,
the catheter navigators next)::

    class Phase(enum.Enum):
        APPROACH = "approach"
        PUSH = "push"
        DONE = "done"

    machine = StateMachine(
        Phase.APPROACH,
        {Phase.APPROACH: {Phase.PUSH}, Phase.PUSH: {Phase.DONE}, Phase.DONE: set()},
        {Phase.APPROACH: approach, Phase.PUSH: push},  # handler(context) -> command
    )
    machine.clock(t)  # every tick, before anything is logged
    command = machine.step(context)  # the current phase's handler (None once ended)

* A phase with no allowed successor is *terminal*: the machine has ended when it is in one, and
  terminal phases have no handler; every other phase has exactly one (checked at construction).
* :meth:`StateMachine.go` moves along the table and raises :class:`IllegalTransition` for any
  other move (a bug in the controller, never a runtime condition). :meth:`StateMachine.stop` ends
  the machine from outside in a terminal phase, from whatever phase it is in (a safety trip).
* Times: :meth:`StateMachine.clock` gives the machine the tick's time; logs are stamped with the
  time since the first tick, rounded to ``time_decimals``. The transition log holds
  (t, from, to, why) and the event log (t, message); a transition with a reason is also an event
  ``"<from> -> <to>: <why>"``. Phases are named by their values in messages.

Nothing here knows a domain: the context type and what the handlers return are the caller's.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Generic, NamedTuple, TypeVar

P = TypeVar("P", bound=enum.Enum)
C = TypeVar("C")
R = TypeVar("R")


class IllegalTransition(RuntimeError):
    """A move the transition table does not allow: a bug in the controller that asked for it."""


class Transition(NamedTuple, Generic[P]):
    """One entry of the transition log: when, from which phase to which, and why."""

    t_s: float
    source: P
    target: P
    why: str


def phase_name(phase: enum.Enum) -> str:
    """How messages name a phase: its value (``"scan"`` for ``Phase.SCAN = "scan"``)."""
    return str(phase.value)


class StateMachine(Generic[P, C, R]):
    """Phases ``P`` moved along an allowed-transitions table, each live phase handled by one
    ``handler(context: C) -> R``; keeps the transition and event logs with their times.

    ``transitions`` maps every member of the phase Enum to the phases it may move to (an empty set:
    terminal). ``handlers`` maps every non-terminal phase to its handler. Both are checked here:
    a phase missing from the table, a successor outside the Enum, a terminal phase with a handler
    or a live one without raise ``ValueError``.
    """

    def __init__(
        self,
        initial: P,
        transitions: Mapping[P, AbstractSet[P]],
        handlers: Mapping[P, Callable[[C], R]],
        *,
        time_decimals: int = 3,
    ) -> None:
        phases: frozenset[P] = frozenset(type(initial))
        if set(transitions) != phases:
            missing = sorted(phase_name(p) for p in phases - set(transitions))
            raise ValueError(f"the transition table must list every phase; missing: {', '.join(missing)}")
        for phase, successors in transitions.items():
            if not set(successors) <= phases:
                raise ValueError(f"the transition table lets {phase_name(phase)} move to a phase of another Enum")
        self.table: dict[P, frozenset[P]] = {p: frozenset(s) for p, s in transitions.items()}
        #: phases with no way out: the machine has ended when it is in one
        self.terminal: frozenset[P] = frozenset(p for p, s in self.table.items() if not s)
        live = phases - self.terminal
        if set(handlers) != live:
            extra = sorted(phase_name(p) for p in set(handlers) - live)
            missing = sorted(phase_name(p) for p in live - set(handlers))
            raise ValueError(
                f"every live phase needs one handler and a terminal phase none; without a handler: "
                f"{', '.join(missing) or '-'}; terminal or foreign with one: {', '.join(extra) or '-'}"
            )
        self.handlers: dict[P, Callable[[C], R]] = dict(handlers)
        self.phase: P = initial
        self.time_decimals = time_decimals
        #: time of the first tick (None before it), of the current tick, and when the phase was entered
        self.t0: float | None = None
        self.now_s = 0.0
        self.since_s = 0.0
        self.transitions: list[Transition[P]] = []
        self.events: list[tuple[float, str]] = []

    @property
    def done(self) -> bool:
        """Has the machine ended (is it in a terminal phase)?"""
        return self.phase in self.terminal

    def clock(self, t_s: float) -> None:
        """Set the current tick's time; the first tick also starts the clock and the first phase."""
        if self.t0 is None:
            self.t0 = t_s
            self.since_s = t_s
        self.now_s = t_s

    def elapsed_s(self) -> float:
        """Time since the first tick, rounded as the logs are stamped (0 before the first tick)."""
        return round(self.now_s - (self.t0 or 0.0), self.time_decimals)

    def event(self, msg: str) -> None:
        """Add ``msg`` to the event log, stamped with the time since the first tick."""
        self.events.append((self.elapsed_s(), msg))

    def go(self, phase: P, why: str = "") -> Transition[P]:
        """Move to ``phase`` if the table allows it (else :class:`IllegalTransition`), log it, enter it."""
        if phase not in self.table[self.phase]:
            raise IllegalTransition(f"illegal transition {phase_name(self.phase)} -> {phase_name(phase)} ({why})")
        record = Transition(self.elapsed_s(), self.phase, phase, why)
        self.transitions.append(record)
        if why:
            self.event(f"{phase_name(self.phase)} -> {phase_name(phase)}: {why}")
        self.phase = phase
        self.since_s = self.now_s
        return record

    def stop(self, phase: P, why: str) -> Transition[P]:
        """End the machine from outside in the terminal ``phase``, whatever phase it is in (logged,
        no event: the caller says what stopped it). Raises :class:`IllegalTransition` if it has ended.
        """
        if phase not in self.terminal:
            raise ValueError(f"stop() ends the machine: {phase_name(phase)} is not a terminal phase")
        if self.done:
            raise IllegalTransition(f"illegal transition {phase_name(self.phase)} -> {phase_name(phase)} ({why})")
        record = Transition(self.elapsed_s(), self.phase, phase, why)
        self.transitions.append(record)
        self.phase = phase
        self.since_s = self.now_s
        return record

    def step(self, context: C) -> R | None:
        """Run the current phase's handler on ``context``; None once the machine has ended."""
        handler = self.handlers.get(self.phase)
        return handler(context) if handler is not None else None
