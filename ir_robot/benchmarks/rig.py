"""``ir-robot bench rig``: the serial rig backend against the GRBL 1.1 emulator over real ptys.

Metrics (all measured with the emulator's own ``time.monotonic()`` stamps where a
latency crosses the serial link):

* ``stream_lines_per_s`` -- G-code lines streamed with character counting
  (every line acknowledged; the emulator checks its 128-byte RX buffer never overfills);
* ``status_rate_hz`` -- status reports per second at the configured 5 Hz poll;
* ``estop_latency_ms`` / ``_max_ms`` -- from the emulator pulling the "USB cable"
  mid-move to GrblRig declaring the fault and attempting the halt (target < 100 ms);
* ``stall_detect_s`` -- from the board going mute to the watchdog halt (0.5 s limit);
* ``force_trip_latency_ms`` / ``_max_ms`` -- from the first over-threshold load-cell
  sample leaving the emulator to its receipt of the soft reset after the feed hold (target < 50 ms).
"""

from __future__ import annotations

import dataclasses
import statistics
import time

from ir_robot.core.types import JointVector


def _config():
    from ir_robot.devices.config import load_rig_config

    cfg = load_rig_config()
    return dataclasses.replace(cfg, grbl=dataclasses.replace(cfg.grbl, wake_timeout_s=0.5))


def _flat_force(t_s, joints, rate):
    return 0.05 * max(joints.insert_mm, 0.0)


def _wait(pred, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.002)
    return pred()


def _session(cfg, **emu_kw):
    from ir_robot.devices.emulator import GrblEmulator
    from ir_robot.devices.serial_rig import GrblRig

    emu = GrblEmulator(cfg, force_fn=_flat_force, **emu_kw).start()
    rig = GrblRig(cfg, port=emu.port, loadcell_port=emu.loadcell_port)
    rig.home()
    return emu, rig


def _target(cfg, x):
    return JointVector(
        x_mm=x,
        y_mm=19.0,
        z_mm=cfg.fixed.z_mm,
        pitch_rad=cfg.fixed.pitch_rad,
        insert_mm=1.0,
        probe_yaw_rad=cfg.fixed.probe_yaw_rad,
        roll_rad=cfg.fixed.roll_rad,
    )


def run(quick: bool = False) -> dict:
    """The serial rig area's flat results (the module docstring lists them), with the devices' logging silenced for the
    faults injected on purpose.
    """
    import logging

    quiet = logging.getLogger("ir_robot.devices")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the faults below are on purpose
    try:
        return _run(quick)
    finally:
        quiet.setLevel(level)


def _run(quick: bool) -> dict:
    cfg = _config()
    n_lines = 2000 if quick else 10_000
    repeats = 3 if quick else 10
    out: dict = {}

    emu, rig = _session(cfg)
    try:
        lines = [f"N{i + 1} G{90 + i % 2} G21" for i in range(n_lines)]
        res = rig.stream(lines)
        if res.ok != n_lines or emu.rx_overflow:
            raise RuntimeError(f"stream check failed: {res.ok}/{n_lines} ok, overflow={emu.rx_overflow}")
        out["stream_lines"] = n_lines
        out["stream_lines_per_s"] = round(n_lines / res.elapsed_s, 1)
        out["stream_max_in_flight_bytes"] = res.max_in_flight_bytes
        window = 1.0 if quick else 3.0
        n0, t0 = emu.status_replies, time.monotonic()
        time.sleep(window)
        out["status_rate_hz"] = round((emu.status_replies - n0) / (time.monotonic() - t0), 2)
    finally:
        rig.close()
        emu.close()

    estop, trip, stall = [], [], []
    for k in range(repeats):
        emu, rig = _session(cfg, seed=k)
        try:
            rig.move_to(_target(cfg, 10.0), speed_mm_s=8.0)
            _wait(lambda emu=emu: emu.state == "Run")
            t_unplug = emu.unplug()
            _wait(lambda rig=rig: rig.fault is not None)
            estop.append(max(rig.fault_time, rig.halts[-1][0]) - t_unplug)
        finally:
            rig.close()
            emu.close()

        emu, rig = _session(cfg, seed=k)
        try:
            rig.move_to(_target(cfg, 10.0), speed_mm_s=8.0)
            _wait(lambda emu=emu: emu.state == "Run")
            t0 = emu.force_spike(cfg.loadcell.force_limit_n + 2.0, 0.2)
            _wait(lambda emu=emu, t0=t0: any(b == b"\x18" and t >= t0 for t, b in emu.realtime_log))
            t_over = next(t for t, f in list(emu.samples) if t >= t0 and f > cfg.loadcell.force_limit_n)
            t_reset = next(t for t, b in emu.realtime_log if t >= t_over and b == b"\x18")
            trip.append(t_reset - t_over)
        finally:
            rig.close()
            emu.close()

        if k < (1 if quick else 3):
            emu, rig = _session(cfg, seed=k)
            try:
                time.sleep(0.1)
                t_stall = time.monotonic()
                emu.stall()
                _wait(lambda rig=rig: rig.fault is not None, timeout=3.0)
                stall.append(rig.fault_time - t_stall)
            finally:
                rig.close()
                emu.close()

    out["estop_latency_ms"] = round(statistics.median(estop) * 1e3, 2)
    out["estop_latency_max_ms"] = round(max(estop) * 1e3, 2)
    out["force_trip_latency_ms"] = round(statistics.median(trip) * 1e3, 2)
    out["force_trip_latency_max_ms"] = round(max(trip) * 1e3, 2)
    out["stall_detect_s"] = round(statistics.median(stall), 3)
    out["repeats"] = repeats
    return out
