"""The threads that keep a GRBL link honest: the reader, the status poller / watchdog, the force trip.

* :class:`GrblReader` -- reads the GRBL port, splits lines, parses them
  (:mod:`.grbl`) and dispatches: ``ok``/``error:N`` free the oldest line of the
  character counter, ``<...>`` updates the state, ``ALARM:N`` latches an alarm,
  pushes are kept. A vanished port (unplugged cable) is a fault within one read
  timeout: the host reports it and attempts a feed hold + soft reset.
* :class:`Watchdog` -- sends ``?`` at ``grbl.status_poll_hz`` and halts on no
  status reply for ``grbl.status_timeout_s``, a silent load cell, or no banner
  after a reset, with a fault naming the port and the fix. :meth:`Watchdog.check`
  is one tick at an explicit time, so its thresholds can be tested exactly.
* :class:`ForceTrip` -- the load cell's per-sample callback: a sample above
  ``loadcell.force_limit_n`` writes ``!`` then 0x18 to GRBL from that thread at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ir_robot.core.errors import ProtocolError, RigError, SafetyTrip
from ir_robot.devices import grbl as P
from ir_robot.devices.grbl_link import GrblLink

if TYPE_CHECKING:
    from ir_robot.devices.loadcell import LoadCell

log = logging.getLogger("ir_robot.devices.serial_rig")


def start_thread(target: Any, name: str, threads: list[threading.Thread]) -> None:
    """Start a daemon thread and remember it (to be joined on close)."""
    th = threading.Thread(target=target, name=name, daemon=True)
    threads.append(th)
    th.start()


class GrblReader:
    """Reads the GRBL port and turns every line into a change of the link's state."""

    def __init__(self, link: GrblLink) -> None:
        self.link = link

    def run(self) -> None:
        """The reader thread: until the link closes or the port vanishes."""
        link = self.link
        splitter = P.LineSplitter()
        ser = link.transport.ser
        while not link.closing:
            try:
                data = ser.read(ser.in_waiting or 1)
            except Exception as exc:  # SerialException on unplug, TypeError/AttributeError when closed
                if not link.closing:
                    link.on_port_lost(exc)
                return
            if not data:
                continue
            link.rx_bytes += len(data)
            for raw in splitter.feed(data):
                if len(link.wake_lines) < 20 and not link.connected and raw:
                    link.wake_lines.append(raw)
                try:
                    self.handle(raw, link.clock())
                except Exception:  # never let one bad line kill the reader
                    log.exception("GRBL reader failed on %r", raw)

    def handle(self, raw: bytes, t: float) -> None:
        """One received line at time ``t``."""
        link = self.link
        try:
            msg = P.parse_line(raw)
        except ProtocolError as exc:
            link.on_protocol_error(exc, t)
            return
        if msg is None:
            return
        if isinstance(msg, (P.Ok, P.ErrorReply)):
            link.on_ack(msg, t)
        elif isinstance(msg, P.StatusReport):
            self.on_status(msg, t)
        elif isinstance(msg, P.Welcome):
            self.on_welcome(msg, t)
        elif isinstance(msg, P.Alarm):
            self.on_alarm(msg, t)
        else:
            if isinstance(msg, P.Message):
                link.messages.append((t, msg.text))
                if msg.text == "Reset to continue":
                    link.request_reset("critical alarm")
            elif isinstance(msg, P.GcState):
                link.gc_state = msg
            link.add_push(msg)

    def on_status(self, report: P.StatusReport, t: float) -> None:
        """A status report: position, axis velocity, and an alarm cleared once GRBL left Alarm."""
        link = self.link
        mpos_all, _wpos, wco = P.resolve_positions(report, link.wco)
        mpos = np.asarray(mpos_all[:3], dtype=float)
        with link.cond:
            if link.mpos is not None and t - link.status_t > 1e-3:
                link.axis_vel = (mpos - link.mpos) / (t - link.status_t)
            if report.state in ("Idle", "Alarm", "Sleep") or (report.state == "Hold" and report.substate == 0):
                link.axis_vel = np.zeros(3)
            link.status, link.mpos, link.wco, link.status_t = report, mpos, wco, t
            link.jogs_after_status = 0
            link.last_status_rx = t
            link.status_seq += 1
            if report.state != "Alarm" and link.alarm is not None and t > link.alarm_t:
                link.alarm = None
            link.cond.notify_all()

    def on_welcome(self, msg: P.Welcome, t: float) -> None:
        """The banner: the board (re)started; lines in flight are lost, and so is the position if unexpected."""
        link = self.link
        with link.cond:
            expected = link.resetting or not link.connected
            link.version = msg.version
            dropped = link.counter.clear()
            err = RigError(f"GRBL on {link.port} restarted before answering this line")
            for _line, pending in dropped:
                pending.finish(err)
            link.resetting = False
            link.last_status_rx = t
            link.wco = None
            if not expected:
                link.estop_reason = link.estop_reason or "board restarted"
                link.messages.append(
                    (
                        t,
                        "GRBL restarted unexpectedly (power glitch, or another program reset it); "
                        "position may be lost: home again",
                    )
                )
            link.cond.notify_all()
        link.banner.set()

    def on_alarm(self, msg: P.Alarm, t: float) -> None:
        """``ALARM:N``: latched (raised by the next wait or command); critical alarms get a soft reset."""
        link = self.link
        alarm = P.GrblAlarm(msg.code, link.port)
        with link.cond:
            link.alarm, link.alarm_t = alarm, t
            link.cond.notify_all()
        link.messages.append((t, str(alarm)))
        log.warning("%s", alarm)
        if msg.code in P.CRITICAL_ALARMS:
            link.request_reset(f"ALARM:{msg.code}")


class Watchdog:
    """Polls GRBL's status and halts the rig when the board, its reset or the load cell goes silent."""

    def __init__(self, link: GrblLink, loadcell: LoadCell | None = None) -> None:
        self.link = link
        self.loadcell = loadcell
        self.period = 1.0 / link.config.grbl.status_poll_hz
        self.next_query = link.clock()

    def run(self) -> None:
        """The poller thread: a tick every 10 ms until the link closes or faults."""
        link = self.link
        self.next_query = link.clock()
        while not link.closing and link.fault is None:
            time.sleep(0.01)
            if not self.check(link.clock()):
                return

    def check(self, now: float) -> bool:
        """One tick at time ``now``: send ``?`` when due, declare a fault on silence. False: the port is gone."""
        link = self.link
        g = link.config.grbl
        with link.cond:
            suspended = link.watchdog_suspended > 0
            resetting, reset_t, last = link.resetting, link.reset_t, link.last_status_rx
        if now >= self.next_query:
            self.next_query = (
                now + self.period if now - self.next_query > self.period else self.next_query + self.period
            )
            if not suspended:
                try:
                    link.write(P.STATUS_QUERY)
                except RigError:
                    return False
        if resetting and now - reset_t > g.wake_timeout_s:
            link.declare_fault(
                f"GRBL on {link.port} did not restart within {g.wake_timeout_s:.1f} s of a soft reset "
                "(no banner): the board is hung; power-cycle it"
            )
        elif not suspended and not resetting and now - last > g.status_timeout_s:
            link.declare_fault(
                f"no status reply from GRBL on {link.port} for {now - last:.2f} s (limit "
                f"{g.status_timeout_s:.2f} s): the board is hung, busy or disconnected; motion halted. "
                "Check the USB cable and power, then reconnect and home"
            )
        lc = self.loadcell
        if lc is not None and link.fault is None:
            if lc.error is not None:
                link.declare_fault(str(lc.error) + "; motion halted")
            elif lc.age_s(now) > link.config.loadcell.timeout_s:
                link.declare_fault(
                    f"load cell on {lc.port} silent for {lc.age_s(now):.2f} s (limit "
                    f"{link.config.loadcell.timeout_s:.2f} s): motion halted; check its cable and board"
                )
        return True


class ForceTrip:
    """The load cell's per-sample callback: feed hold + soft reset the moment the force passes the ceiling.

    After a trip only retraction is allowed until the force falls below 80 % of the
    ceiling (:attr:`GrblLink.force_armed`); a force above twice the ceiling trips again
    even then.
    """

    def __init__(self, link: GrblLink, loadcell_port: str | None) -> None:
        self.link = link
        self.loadcell_port = loadcell_port

    def on_sample(self, t: float, force_n: float) -> None:
        """One load-cell sample (on the load cell's reader thread)."""
        link = self.link
        limit = link.config.loadcell.force_limit_n
        over = abs(force_n) > limit
        latched = link.estop_reason is not None
        if over and not latched and (link.force_armed or abs(force_n) > 2.0 * limit):
            link.force_armed = False
            link.mark_resetting()
            delivered = link.halt_bytes()  # nothing else stands between the sample and the bytes
            link.halts.append((link.clock(), "force", delivered))
            trip = SafetyTrip(
                "force",
                f"needle force {force_n:.2f} N beyond the {limit:.2f} N ceiling (load cell "
                f"{self.loadcell_port}); GRBL on {link.port} feed-held and reset. Retract the "
                "needle (unlock, then jog insert_mm back) before anything else",
            )
            with link.cond:
                if link.trip is None or link.estop_reason is None:
                    link.trip = trip
                link.estop_reason = "force"
                link.drop_inflight_locked("force trip")
            log.error("%s", trip)
        elif not over and not link.force_armed and abs(force_n) < 0.8 * limit and link.estop_reason is None:
            link.force_armed = True
