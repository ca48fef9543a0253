"""GrblEmulator: the emulated GRBL board and HX711 load cell served on two ptys by two threads.

The board's behaviour is :class:`~ir_robot.devices.emulator.machine.GrblMachine` (pure,
driven with explicit times) and the load cell's :class:`~ir_robot.devices.emulator.hx711.Hx711Emulator`;
this module only moves bytes between them and the ptys, on the clock given as
``clock`` (the wall clock, ``time.monotonic``, by default), and injects faults
between two iterations of the board's loop.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ir_robot.core.errors import RigError
from ir_robot.core.types import JointVector
from ir_robot.devices.config import RigConfig, load_rig_config
from ir_robot.devices.emulator.faults import ForceSpikes, garbage_lines
from ir_robot.devices.emulator.hx711 import ForceFn, Hx711Emulator, TissueForce
from ir_robot.devices.emulator.machine import PERSONALITIES, GrblMachine
from ir_robot.devices.emulator.transport import PtyPort

log = logging.getLogger("ir_robot.devices.emulator")


def _machine_attr(name: str, doc: str) -> Any:
    """A read-only property forwarding to the machine's attribute ``name`` (it may be rebound there)."""
    return property(lambda self: getattr(self.machine, name), doc=doc)


class GrblEmulator:
    """GRBL 1.1 + HX711 load cell on two ptys. Use as a context manager or call start()/close().

    Parameters
    ----------
    config: the rig config (settings, joint mapping, load-cell calibration); default ``config/rig.yaml``.
    seed: seeds the Generator behind sensor noise and garbage bytes.
    force_fn: ``force_fn(t_s, joints, insert_rate_mm_s) -> N``; default: the tissue model.
    settings: ``{N: value}`` overriding the board's ``$N`` (e.g. to provoke a mismatch).
    wco_mm: work coordinate offset (G54) reported as ``WCO``.
    reset_on_open: restart (banner, position lost, Alarm if homing) whenever a client opens the port.
    boot_delay_s: time from a reset to the banner (Arduino bootloader ~0.5-2 s; small in tests).
    personality: ``"grbl"``; ``"silent"`` (never answers) or ``"marlin"`` (a 3D printer) for wrong-device tests.
    baud_mismatch: everything the board sends arrives as garbage and what it receives is not understood.
    loadcell: also serve the load-cell pty.
    noise_counts: sigma of the HX711 reading noise in counts.
    rx_buffer_size, planner_blocks: GRBL's serial RX buffer (bytes) and planner size (blocks).
    start_mpos: machine position at power-on (mm).
    clock: the time source of every stamp, deadline and motion step (``time.monotonic``).
    """

    def __init__(
        self,
        config: RigConfig | None = None,
        *,
        seed: int = 0,
        force_fn: ForceFn | None = None,
        settings: dict[int, float] | None = None,
        wco_mm=(0.0, 0.0, 0.0),
        reset_on_open: bool = True,
        boot_delay_s: float = 0.05,
        personality: str = "grbl",
        baud_mismatch: bool = False,
        loadcell: bool = True,
        noise_counts: float = 20.0,
        rx_buffer_size: int = 128,
        planner_blocks: int = 15,
        start_mpos=(0.0, 0.0, 0.0),
        clock: Callable[[], float] = time.monotonic,
    ):
        if personality not in PERSONALITIES:
            raise ValueError(f"personality must be 'grbl', 'silent' or 'marlin', got {personality!r}")
        self.config = config if config is not None else load_rig_config()
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        force_rng = np.random.default_rng([seed, 1])
        self._force_fn: ForceFn = force_fn if force_fn is not None else TissueForce(force_rng)
        self.reset_on_open = reset_on_open
        self.loadcell_enabled = loadcell

        # recorded for tests (the board's own records are on the machine, forwarded below)
        self.samples: collections.deque = collections.deque(maxlen=100_000)  # (t, force_n) of load-cell samples
        self.garbage_lines_sent = 0
        self.unplug_time: float | None = None
        self.connects = 0
        self.loop_errors: list[BaseException] = []

        self._lock = threading.RLock()
        self._actions: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._grbl_pty: PtyPort | None = None
        self._lc_pty: PtyPort | None = None
        self._spikes = ForceSpikes()
        self.hx711 = Hx711Emulator(self.config.loadcell, force_rng, noise_counts)
        self._t_start = clock()
        self.machine = GrblMachine(
            self.config,
            rng=self.rng,
            now=clock(),
            settings=settings,
            wco_mm=wco_mm,
            boot_delay_s=boot_delay_s,
            personality=personality,
            baud_mismatch=baud_mismatch,
            rx_buffer_size=rx_buffer_size,
            planner_blocks=planner_blocks,
            start_mpos=start_mpos,
        )

    # ================================================================== the board, as tests read it
    settings = _machine_attr("settings", "The board's ``$N`` settings.")
    default_settings = _machine_attr("default_settings", "What ``$RST=$`` restores.")
    wco = _machine_attr("wco", "Work coordinate offset (G54), mm.")
    boot_delay_s = _machine_attr("boot_delay_s", "Time from a reset to the banner (s).")
    personality = _machine_attr("personality", "``grbl``, ``silent`` or ``marlin``.")
    baud_mismatch = _machine_attr("baud_mismatch", "Whether everything sent arrives as garbage.")
    rx_buffer_size = _machine_attr("rx_buffer_size", "GRBL's serial RX buffer (bytes).")
    planner_blocks = _machine_attr("planner_blocks", "GRBL's planner size (blocks).")
    state = _machine_attr("state", "GRBL state: Idle, Run, Jog, Hold, Home, Alarm, Check, Sleep.")
    substate = _machine_attr("substate", "Hold substate (0 complete, 1 decelerating) or None.")
    v = _machine_attr("v", "Path speed (mm/s).")
    planner = _machine_attr("planner", "Queued blocks, the executing one first.")
    received_lines = _machine_attr("received_lines", "Every line taken from the RX buffer, in order.")
    realtime_log = _machine_attr("realtime_log", "``(t, byte)`` of every real-time byte except ``?``.")
    status_queries = _machine_attr("status_queries", "``?`` bytes received.")
    status_replies = _machine_attr("status_replies", "Status reports sent.")
    ok_sent = _machine_attr("ok_sent", "``ok`` replies sent.")
    errors_sent = _machine_attr("errors_sent", "``(line, code)`` of every ``error:N`` sent.")
    alarms_sent = _machine_attr("alarms_sent", "``(t, code)`` of every alarm.")
    rx_overflow = _machine_attr("rx_overflow", "Whether a byte ever arrived with the RX buffer full.")
    rx_overflow_bytes = _machine_attr("rx_overflow_bytes", "Bytes lost to a full RX buffer.")
    rx_max_used = _machine_attr("rx_max_used", "Most bytes ever waiting in the RX buffer.")
    resets = _machine_attr("resets", "Soft resets (0x18) received.")

    @property
    def mpos(self) -> np.ndarray:
        """Machine position (mm, X Y Z); settable, to place the stage in a test."""
        return self.machine.mpos

    @mpos.setter
    def mpos(self, value) -> None:
        self.machine.mpos = value

    @property
    def noise_counts(self) -> float:
        """Sigma of the HX711 reading noise (counts)."""
        return self.hx711.noise_counts

    # ================================================================== lifecycle
    @property
    def port(self) -> str:
        """The GRBL board's device path (a pty; it changes with every start)."""
        if self._grbl_pty is None:
            raise RigError("emulator not started: call start() or use it as a context manager")
        return self._grbl_pty.path

    @property
    def loadcell_port(self) -> str | None:
        """The load-cell board's device path, or None when it is not served."""
        return self._lc_pty.path if self._lc_pty is not None else None

    def start(self) -> GrblEmulator:
        """Open the ptys and start serving them (idempotent)."""
        if self._grbl_pty is not None:
            return self
        self._grbl_pty = PtyPort()
        self._threads.append(threading.Thread(target=self._grbl_loop, name="grbl-emulator", daemon=True))
        if self.loadcell_enabled:
            self._lc_pty = PtyPort()
            self._threads.append(threading.Thread(target=self._loadcell_loop, name="hx711-emulator", daemon=True))
        for th in self._threads:
            th.start()
        return self

    def link_ports(self, link_dir) -> list[str]:
        """Symlinks ``link_dir/grbl`` (and ``link_dir/loadcell``) to the ptys, replacing old ones: fixed names a
        config can point at (the pty paths change every start). Returns the links made.
        """
        links = []
        os.makedirs(link_dir, exist_ok=True)
        for name, path in (("grbl", self.port), ("loadcell", self.loadcell_port)):
            if path is None:
                continue
            link = os.path.join(link_dir, name)
            if os.path.islink(link) or os.path.exists(link):
                os.remove(link)
            os.symlink(path, link)
            links.append(link)
        return links

    def close(self) -> None:
        """Stop the threads and close both ptys (clients see the devices vanish)."""
        self._stop.set()
        for th in self._threads:
            th.join(timeout=2.0)
        self._threads.clear()
        for p in (self._grbl_pty, self._lc_pty):
            if p is not None:
                p.close()

    def __enter__(self) -> GrblEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def serve_forever(self) -> None:
        """Block until Ctrl-C (the CLI's ``ir-robot rig-emulator``)."""
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.close()

    # ================================================================== faults
    def _call(self, fn: Callable[[], Any], wait: bool = True, timeout: float = 2.0) -> Any:
        """Run ``fn`` on the emulator thread (between two loop iterations)."""
        done = threading.Event()
        box = {}

        def run():
            try:
                box["value"] = fn()
            finally:
                done.set()

        self._actions.append(run)
        if wait and not done.wait(timeout):
            raise RigError("emulator thread did not run the request (is it started?)")
        return box.get("value")

    def _grbl(self) -> PtyPort:
        if self._grbl_pty is None:
            raise RigError("emulator not started: call start() or use it as a context manager")
        return self._grbl_pty

    def unplug(self) -> float:
        """Close the GRBL pty as if the USB cable was pulled; returns the time it happened."""

        def run():
            self.unplug_time = self.clock()
            self._grbl().close()
            return self.unplug_time

        return self._call(run)

    def stall(self, on: bool = True) -> None:
        """Stop (or restart) answering: real-time bytes are still logged, nothing is processed or sent."""

        def run():
            self.machine.stalled = on

        self._call(run)

    def inject_garbage(self, n_lines: int = 1, length: int = 24) -> list[bytes]:
        """Send ``n_lines`` lines of random bytes (each holds at least one non-ASCII byte)."""
        lines = garbage_lines(self.rng, n_lines, length)

        def run():
            for raw in lines:
                self._grbl().write(raw + b"\r\n")
            self.garbage_lines_sent += len(lines)

        self._call(run)
        return lines

    def push_alarm(self, code: int) -> None:
        """Throw ``ALARM:code`` now (1 and 2 are critical: the board then waits for a reset)."""
        self._call(lambda: self._grbl().write(self.machine.push_alarm(int(code), self.clock())))

    def force_spike(self, force_n: float = 10.0, duration_s: float = 0.2) -> float:
        """Add ``force_n`` to the load-cell force for ``duration_s`` from now; returns the start time."""
        t0 = self.clock()
        with self._lock:
            self._spikes.add(t0, duration_s, force_n)
        return t0

    def set_pins(self, pins: str) -> None:
        """Input pins reported as triggered in ``Pn:`` (e.g. ``"XP"``)."""
        self._call(lambda: setattr(self.machine, "pins", "".join(sorted(set(pins)))))

    # ================================================================== load cell
    def joints(self) -> JointVector:
        """The rig's joints at the stage's machine position (fixed joints from the config)."""
        return self.config.joints_from_mpos(self.machine.mpos)

    def insert_rate_mm_s(self) -> float:
        """Speed of the insertion joint (mm/s, + inserting) along the executing block."""
        m = self.machine.motion
        if not m.blocks or m.v == 0.0:
            return 0.0
        axis_v = m.blocks[0].unit * m.v
        return float(self.config.joint_rates_from_axis_rates(axis_v).insert_mm)

    def force_now(self, t: float) -> float:
        """Force (N) at time ``t`` (this emulator's clock): the force model at the current joints plus spikes."""
        with self._lock:
            joints = self.joints()
            rate = self.insert_rate_mm_s()
            spikes = self._spikes.active(t)
        force = float(self._force_fn(t - self._t_start, joints, rate))
        return force + sum(s[2] for s in spikes)

    # ================================================================== threads
    def _grbl_loop(self) -> None:
        connected = False
        while not self._stop.is_set():
            try:
                connected = self._grbl_step(connected)
            except Exception as exc:  # keep serving; a test inspects loop_errors
                self.loop_errors.append(exc)
                log.exception("GRBL emulator step failed")
                time.sleep(0.01)

    def _grbl_step(self, connected: bool) -> bool:
        """One iteration of the board's loop; returns whether a client holds the port open."""
        pty = self._grbl()
        while self._actions:
            with self._lock:
                self._actions.popleft()()
        if pty.fd is None:  # unplugged
            time.sleep(0.01)
            return connected
        now_connected, readable = pty.poll(0.002 if self.machine.busy else 0.01)
        now = self.clock()
        if now_connected != connected:
            if now_connected:
                self.connects += 1
                if self.reset_on_open or self.connects == 1:
                    with self._lock:
                        pty.write(self.machine.power_on(now, announce=True))
            return now_connected
        if not connected:
            time.sleep(0.005)
            return connected
        with self._lock:
            data = pty.read() if readable else b""
            out = self.machine.receive(data, self.clock()) if data else self.machine.advance(now)
            pty.write(out)
        return connected

    def _loadcell_loop(self) -> None:
        pty = self._lc_pty
        assert pty is not None
        hx = self.hx711
        hx.restart(self.clock())
        while not self._stop.is_set():
            now = self.clock()
            if not hx.take_due(now):
                time.sleep(min(hx.t_next - now, 0.05))
                continue
            if not pty.connected():
                continue
            pty.read()  # discard anything the host sends
            force = self.force_now(now)
            line = hx.encode(force)
            t_emit = self.clock()
            pty.write(line)
            self.samples.append((t_emit, force))
