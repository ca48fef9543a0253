"""The generic controller state machine (control/state_machine.py) on a toy machine: the transition
table is enforced, the logs record (t, from, to, why) and events with times since the first tick,
terminal phases end it, and each tick runs the current phase's one handler on the context."""

import enum
from dataclasses import dataclass, field

import pytest

from ir_robot.control.state_machine import IllegalTransition, StateMachine, Transition


class Door(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    LOCKED = "locked"
    BROKEN = "broken"
    GONE = "gone"


TABLE = {
    Door.CLOSED: {Door.OPEN, Door.LOCKED},
    Door.OPEN: {Door.CLOSED, Door.BROKEN},
    Door.LOCKED: {Door.CLOSED},
    Door.BROKEN: set(),
    Door.GONE: set(),
}


@dataclass
class House:
    """The toy context: what the handlers saw and did."""

    calls: list[str] = field(default_factory=list)
    pushes: int = 0
    machine: "StateMachine[Door, House, str] | None" = None


def closed(h: House) -> str:
    h.calls.append("closed")
    h.pushes += 1
    if h.pushes == 2:
        h.machine.go(Door.OPEN, "pushed twice")
    return "wait"


def opened(h: House) -> str:
    h.calls.append("open")
    h.machine.go(Door.CLOSED)  # no reason: no event
    return "shut"


def locked(h: House) -> str:
    h.calls.append("locked")
    return "stay"


HANDLERS = {Door.CLOSED: closed, Door.OPEN: opened, Door.LOCKED: locked}


def make(table=TABLE, handlers=HANDLERS, initial=Door.CLOSED):
    house = House()
    house.machine = StateMachine(initial, table, handlers)
    return house, house.machine


def test_a_tick_runs_the_current_phases_handler_and_a_move_takes_effect_at_the_next():
    house, m = make()
    out = []
    for k in range(4):
        m.clock(10.0 + 0.1 * k)
        out.append(m.step(house))
    # closed, closed (moves to open), open (moves back to closed), closed
    assert house.calls == ["closed", "closed", "open", "closed"]
    assert out == ["wait", "wait", "shut", "wait"]
    assert m.phase == Door.CLOSED


def test_the_log_records_time_since_the_first_tick_from_to_and_why():
    house, m = make()
    m.clock(10.0)
    m.step(house)
    m.clock(10.1234)
    m.step(house)  # -> open, "pushed twice"
    m.clock(10.25)
    m.step(house)  # -> closed, no reason
    assert m.transitions == [
        Transition(0.123, Door.CLOSED, Door.OPEN, "pushed twice"),
        Transition(0.25, Door.OPEN, Door.CLOSED, ""),
    ]
    t, source, target, why = m.transitions[0]  # a plain tuple too
    assert (t, source, target, why) == (0.123, Door.CLOSED, Door.OPEN, "pushed twice")
    # a transition with a reason is an event named by the phases' values; one without is not
    assert m.events == [(0.123, "closed -> open: pushed twice")]
    assert m.t0 == 10.0 and m.since_s == 10.25 and m.now_s == 10.25
    m.event("note")
    assert m.events[-1] == (0.25, "note")


def test_the_first_tick_starts_the_clock_and_the_first_phase():
    _, m = make()
    m.event("before the first tick")
    assert m.t0 is None and m.events == [(0.0, "before the first tick")]
    m.clock(5.0)
    m.clock(6.0)
    assert m.t0 == 5.0 and m.since_s == 5.0 and m.elapsed_s() == 1.0
    m.go(Door.LOCKED, "key")
    assert m.since_s == 6.0


def test_an_illegal_transition_raises_and_changes_nothing():
    _, m = make()
    m.clock(1.0)
    with pytest.raises(IllegalTransition, match=r"illegal transition closed -> broken \(kicked\)"):
        m.go(Door.BROKEN, "kicked")
    assert isinstance(IllegalTransition("x"), RuntimeError)  # callers that catch RuntimeError still do
    assert m.phase == Door.CLOSED and not m.transitions and not m.events
    with pytest.raises(IllegalTransition, match="closed -> closed"):
        m.go(Door.CLOSED, "a self-loop is a transition too: not in the table")


def test_terminal_phases_end_the_machine():
    house, m = make()
    assert m.terminal == {Door.BROKEN, Door.GONE}
    m.clock(0.0)
    m.go(Door.OPEN, "")
    assert not m.done
    m.go(Door.BROKEN, "hinge")
    assert m.done
    assert m.step(house) is None and house.calls == []  # no handler runs once ended
    for phase in Door:
        with pytest.raises(IllegalTransition, match="illegal transition broken -> "):
            m.go(phase, "after the end")


def test_stop_ends_it_from_any_phase_logged_without_an_event():
    house, m = make()
    m.clock(2.0)
    m.go(Door.LOCKED, "")
    m.clock(2.5)
    record = m.stop(Door.GONE, "demolished")  # LOCKED -> GONE is not in the table: stop is from outside
    assert record == Transition(0.5, Door.LOCKED, Door.GONE, "demolished")
    assert m.transitions[-1] == record and m.done and m.phase == Door.GONE
    assert m.events == []  # the caller says what stopped it
    with pytest.raises(IllegalTransition):
        m.stop(Door.BROKEN, "twice")
    _, m2 = make()
    with pytest.raises(ValueError, match="open is not a terminal phase"):
        m2.stop(Door.OPEN, "not an end")
    assert m2.phase == Door.CLOSED and not m2.transitions


def test_the_table_and_the_handlers_are_checked_at_construction():
    with pytest.raises(ValueError, match="missing: gone"):
        make(table={k: v for k, v in TABLE.items() if k != Door.GONE})

    class Other(enum.Enum):
        ELSEWHERE = 1

    with pytest.raises(ValueError, match="closed move to a phase of another Enum"):
        make(table={**TABLE, Door.CLOSED: {Door.OPEN, Other.ELSEWHERE}})
    with pytest.raises(ValueError, match="without a handler: locked"):
        make(handlers={k: v for k, v in HANDLERS.items() if k != Door.LOCKED})
    with pytest.raises(ValueError, match="terminal or foreign with one: broken"):
        make(handlers={**HANDLERS, Door.BROKEN: locked})


def test_time_stamps_are_rounded_as_configured():
    m = StateMachine(Door.CLOSED, TABLE, HANDLERS, time_decimals=1)
    m.clock(1.0)
    m.clock(1.26)
    m.go(Door.LOCKED, "k")
    assert m.transitions[0].t_s == 0.3 and m.events == [(0.3, "closed -> locked: k")]


def test_the_venipuncture_controller_is_such_a_machine():
    from ir_robot.control.venipuncture import HANDLERS as VP_HANDLERS
    from ir_robot.control.venipuncture import TRANSITIONS, Phase

    m = StateMachine(Phase.SCAN, TRANSITIONS, VP_HANDLERS)  # checked: one handler per live phase
    assert m.terminal == {Phase.DONE, Phase.FAILED}
    assert VP_HANDLERS[Phase.ABORT] is VP_HANDLERS[Phase.RETRACT]  # abort retracts, then fails
