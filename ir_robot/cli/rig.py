"""``ir-robot rig {status,home,move,jog,estop,venipuncture}`` and ``ir-robot rig-emulator``.

Opening the port resets most Arduino boards (DTR), which loses the homed
position: each ``ir-robot rig`` call is a fresh session (docs/rig.md explains the
10 uF capacitor that disables this). Long-running use goes through one process
(the ROS rig_driver node or your own script holding a GrblRig).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

FAULTS = ("none", "unplug", "garbage", "stall", "alarm", "spike", "baud", "silent", "marlin")


def _config(args):
    from ir_robot.devices.config import load_rig_config

    return load_rig_config(args.config)


def _loadcell_arg(args, config):
    if args.loadcell_port is None:
        return config.loadcell.port
    return None if args.loadcell_port.lower() in ("none", "null", "") else args.loadcell_port


def _connect(args):
    from ir_robot.devices.serial_rig import GrblRig

    config = _config(args)
    return GrblRig(config, port=args.port or config.grbl.port, loadcell_port=_loadcell_arg(args, config))


def _state_dict(rig) -> dict:
    st = rig.read_state()
    pos = rig.positions()
    out = {
        "port": rig.port,
        "grbl_version": rig.version,
        "build": rig.build.build if rig.build else None,
        "rx_buffer_budget_bytes": rig.rx_budget_bytes,
        "planner_blocks": rig.options.planner_blocks if rig.options else None,
        "grbl_state": rig.status().full_state if rig.status() else None,
        "status": st.status,
        "moving": st.moving,
        "message": st.message,
        "joints": {k: round(v, 4) for k, v in vars(st.joints).items()},
        "force_n": None if st.force_n != st.force_n else round(st.force_n, 4),
        "loadcell_port": rig.loadcell_port,
    }
    if pos is not None:
        mpos, wpos, wco = pos
        out.update(mpos=[round(v, 3) for v in mpos], wpos=[round(v, 3) for v in wpos], wco=[round(v, 3) for v in wco])
    return out


def _print_state(rig, as_json: bool) -> None:
    d = _state_dict(rig)
    if as_json:
        print(json.dumps(d, indent=2))
        return
    width = max(len(k) for k in d)
    for k, v in d.items():
        print(f"{k.ljust(width)}  {v}")


def _cmd_status(args) -> int:
    with _connect(args) as rig:
        _print_state(rig, args.json)
    return 0


def _cmd_home(args) -> int:
    with _connect(args) as rig:
        print(f"homing GRBL on {rig.port} ($H) ...", flush=True)
        rig.home()
        _print_state(rig, args.json)
    return 0


def _cmd_move(args) -> int:
    from ir_robot.core.errors import RigError
    from ir_robot.devices.serial_rig import check_travel

    targets = {
        k: v for k, v in (("x_mm", args.x_mm), ("y_mm", args.y_mm), ("insert_mm", args.insert_mm)) if v is not None
    }
    if not targets:
        raise RigError("rig move: give at least one of --x-mm, --y-mm, --insert-mm")
    config = _config(args)
    for joint, end in targets.items():  # before connecting (and homing): an end outside the travel fails at once
        check_travel(config, joint, end, "rig move")
    with _connect(args) as rig:
        if args.home:
            rig.home()
        elif args.unlock:
            rig.unlock()
        target = rig.read_state().joints.replace(**targets)
        rig.move_to(target, args.speed_mm_s)
        if not args.no_wait:
            rig.wait_idle(timeout=args.timeout_s)
        _print_state(rig, args.json)
    return 0


def _cmd_jog(args) -> int:
    from ir_robot.core.errors import RigError

    if args.speed_mm_s <= 0:
        raise RigError("rig jog: --speed-mm-s must be > 0")
    if args.distance_mm == 0:
        raise RigError("rig jog: --distance-mm must be non-zero")
    with _connect(args) as rig:
        if args.home:
            rig.home()
        elif args.unlock:
            rig.unlock()
        # refused at once (nothing sent) when the end is outside the travel
        duration_s = rig.jog(args.joint, args.distance_mm, args.speed_mm_s)
        rig.wait_idle(timeout=duration_s + args.timeout_s)
        _print_state(rig, args.json)
    return 0


def _cmd_estop(args) -> int:
    """Feed hold + soft reset as fast as possible: no wake-up, no settings check."""
    from ir_robot.devices import grbl as P
    from ir_robot.devices.serial_rig import open_serial

    config = _config(args)
    port = args.port or config.grbl.port
    ser = open_serial(port, config.grbl.baud, "GRBL board")
    try:
        ser.write(P.FEED_HOLD + P.SOFT_RESET)
        ser.flush()
        print(f"sent feed hold (!) and soft reset (0x18) to {port}")
        deadline = time.monotonic() + config.grbl.wake_timeout_s
        splitter = P.LineSplitter()
        while time.monotonic() < deadline:
            for raw in splitter.feed(ser.read(ser.in_waiting or 1)):
                if raw.startswith(b"Grbl ") or raw.startswith(b"ALARM:"):
                    print(f"  board: {raw.decode('ascii', 'replace')}")
                    if raw.startswith(b"Grbl "):
                        print("GRBL restarted; home (`ir-robot rig home`) before moving again")
                        return 0
        print(
            "no banner after the reset: check the board (use the hardware e-stop button if it still moves)",
            file=sys.stderr,
        )
        return 1
    finally:
        ser.close()


def _venipuncture_summary(res, controller, rig, phantom=None) -> dict:
    out = res.outcome
    st = rig.read_state()
    plan = out.plan
    d = {
        "success": bool(out.success),
        "reason": out.reason,
        "attempts": out.attempts,
        "confirmed": out.confirmed,
        "duration_s": round(out.duration_s, 2),
        "wall_s": round(res.wall_s, 2),
        "ticks": res.ticks,
        "safety_trip": res.safety_trip,
        "timed_out": res.timed_out,
        "peak_force_n": round(out.peak_force_n, 3),
        "fixed_joints": list(controller.fixed_joints),
        "plan": None
        if plan is None
        else {
            "target_mm": [round(v, 3) for v in plan.target_mm],
            "pitch_deg": round(plan.pitch_rad * 57.29578, 2),
            "pivot_mm": [round(v, 3) for v in plan.pivot_mm],
            "insert_mm": round(plan.insert_mm, 3),
            "plane_offset_mm": round(plan.plane_offset_mm, 3),
        },
        "final": {
            "status": st.status,
            "moving": st.moving,
            "insert_mm": round(st.joints.insert_mm, 3),
            "x_mm": round(st.joints.x_mm, 3),
            "y_mm": round(st.joints.y_mm, 3),
        },
        "jogs_skipped": getattr(rig, "jogs_skipped", None),
        "events": [[t, m] for t, m in out.events],
    }
    if phantom is not None:  # ground truth of the simulated phantom (the controller never saw it)
        d["phantom_truth"] = {
            "flashback": phantom.flashback,
            "back_wall_punctured": phantom.back_wall_punctured,
            "artery_punctured": phantom.artery_punctured,
            "punctures": [
                [e.membrane, e.vessel_index, round(e.peak_force_n, 3), round(e.insert_mm, 3)] for e in phantom.events()
            ],
        }
    return d


def _cmd_venipuncture(args) -> int:
    """One autonomous venipuncture on the rig (or on the emulated rig with a simulated phantom)."""
    import dataclasses

    from ir_robot.control.config import load_venipuncture_config
    from ir_robot.control.rig_procedure import default_rig_config_path, run_venipuncture
    from ir_robot.core.types import Observation
    from ir_robot.evaluation.episode import make_perception

    config = _config(args)
    config = dataclasses.replace(config, grbl=dataclasses.replace(config.grbl, status_poll_hz=args.status_hz))
    vcfg = load_venipuncture_config(args.venipuncture_config or default_rig_config_path())
    perception = args.perception or ("ground_truth" if args.emulator else "auto")
    us, nir = make_perception(perception, vcfg)
    emulated = cams = None
    if args.emulator:
        from ir_robot.devices.emulated_phantom import EmulatedRig, emulator_start

        emulated = EmulatedRig(
            config, probe_offset_mm=vcfg.control.probe_offset_mm, seed=args.seed, start=emulator_start(config, vcfg)
        )
        assert emulated.rig is not None  # EmulatedRig() connects it or raises
        rig, camera_fn = emulated.rig, emulated.camera
        print(
            f"emulated rig: GRBL on {emulated.emulator.port}, load cell on {emulated.emulator.loadcell_port}, "
            f"images rendered from the simulator phantom; perception {perception}",
            file=sys.stderr,
            flush=True,
        )
    else:
        from ir_robot.core.errors import RigError
        from ir_robot.devices.camera import Camera

        if config.ultrasound is None:
            raise RigError("rig venipuncture: the rig config has no `ultrasound` camera; add it (docs/rig.md)")
        cams = {}
        try:
            cams["us"] = Camera(config.ultrasound, args.us_source).open()
            if config.nir is not None and not args.no_nir:
                cams["nir"] = Camera(config.nir, args.nir_source).open()
            rig = _connect(args)
        except BaseException:
            for cam in cams.values():
                cam.close()
            raise
        if "nir" not in cams:
            nir = None

        def camera_fn(wanted: frozenset) -> Observation:
            frames = {m: dataclasses.replace(cams[m].read(), modality=m) for m in wanted if m in cams}
            return Observation(us=frames.get("us"), nir=frames.get("nir"))

    try:
        if emulated is None and args.home:
            print(f"homing GRBL on {rig.port} ($H) ...", file=sys.stderr, flush=True)
            rig.home()
        elif emulated is None and args.unlock:
            rig.unlock()
        res, controller, _ = run_venipuncture(rig, camera_fn, vcfg, us, nir, max_time_s=args.max_time_s)
        summary = _venipuncture_summary(res, controller, rig, emulated.phantom if emulated is not None else None)
    finally:
        if emulated is not None:
            emulated.close()
        else:
            rig.close()
            for cam in (cams or {}).values():
                cam.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for t, msg in summary["events"]:
            print(f"{t:8.2f} s  {msg}")
        verdict = "SUCCESS" if summary["success"] else f"FAILED: {summary['reason']}"
        print(
            f"{verdict} ({summary['attempts']} attempt(s), {summary['duration_s']:.1f} s, "
            f"peak force {summary['peak_force_n']:.2f} N); rig {summary['final']['status']}, "
            f"needle at {summary['final']['insert_mm']:.2f} mm"
        )
        if "phantom_truth" in summary:
            print(f"phantom ground truth: {summary['phantom_truth']}")
        if summary["safety_trip"]:
            print(
                f"safety trip: {summary['safety_trip']} -- retract the needle first (docs/rig.md safety checklist)",
                file=sys.stderr,
            )
    return 0 if summary["success"] else 1


def _cmd_emulator(args) -> int:
    import os

    from ir_robot.devices.emulator import GrblEmulator

    config = _config(args)
    emu = GrblEmulator(
        config,
        seed=args.seed,
        reset_on_open=not args.no_reset_on_open,
        boot_delay_s=args.boot_delay_s,
        personality=args.fault if args.fault in ("silent", "marlin") else "grbl",
        baud_mismatch=args.fault == "baud",
        loadcell=not args.no_loadcell,
    )
    emu.start()
    links = emu.link_ports(args.link_dir) if args.link_dir else []
    print("GRBL 1.1 emulator (ir_robot)")
    print(f"  grbl port:     {emu.port}")
    print(f"  loadcell port: {emu.loadcell_port}")
    for link in links:
        print(f"  link:          {link}")
    lc = emu.loadcell_port or "none"
    print(f"try: ir-robot rig status --port {emu.port} --loadcell-port {lc}")
    if args.fault not in ("none", "baud", "silent", "marlin"):
        print(f"fault '{args.fault}' in {args.fault_after_s:g} s after the first connection")
    print("Ctrl-C to stop", flush=True)
    fault_done = args.fault in ("none", "baud", "silent", "marlin")
    t_connect = None
    try:
        while True:
            time.sleep(0.05)
            if fault_done:
                continue
            if t_connect is None and emu.connects > 0:
                t_connect = time.monotonic()
            if t_connect is not None and time.monotonic() - t_connect >= args.fault_after_s:
                fault_done = True
                if args.fault == "unplug":
                    emu.unplug()
                elif args.fault == "garbage":
                    emu.inject_garbage(args.garbage_lines)
                elif args.fault == "stall":
                    emu.stall()
                elif args.fault == "alarm":
                    emu.push_alarm(args.alarm_code)
                elif args.fault == "spike":
                    emu.force_spike(args.spike_n, 0.5)
                print(f"fault '{args.fault}' injected", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        emu.close()
        for link in links:
            try:
                os.remove(link)
            except OSError:
                pass
    return 0


def register(sub) -> None:
    """Adds ``ir-robot rig`` (status, home, move, jog, venipuncture, estop) and ``rig-emulator`` to ``sub``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None, metavar="FILE", help="rig config (default: config/rig.yaml)")
    conn = argparse.ArgumentParser(add_help=False, parents=[common])
    conn.add_argument("--port", default=None, help="GRBL serial port (default: grbl.port from the config)")
    conn.add_argument(
        "--loadcell-port",
        default=None,
        metavar="PORT",
        help="load-cell serial port, or 'none' (default: loadcell.port from the config)",
    )
    conn.add_argument("--json", action="store_true", help="print the state as JSON")
    conn.add_argument("--timeout-s", type=float, default=60.0, help="wait this long for motion to finish")
    motion = argparse.ArgumentParser(add_help=False)
    first = motion.add_mutually_exclusive_group()
    first.add_argument(
        "--home",
        action="store_true",
        help="home ($H) first, in the same session (opening the port resets most Arduinos)",
    )
    first.add_argument(
        "--unlock",
        action="store_true",
        help="unlock ($X) first: the position is whatever GRBL believes (0 after a board reset)",
    )

    rig = sub.add_parser("rig", help="the benchtop GRBL rig over serial: status, home, move, jog, estop")
    rsub = rig.add_subparsers(dest="rig_command", metavar="ACTION")
    rsub.required = True
    p = rsub.add_parser("status", parents=[conn], help="connect, check $$ against the config, print the state")
    p.set_defaults(func=_cmd_status)
    p = rsub.add_parser("home", parents=[conn], help="run the GRBL homing cycle ($H)")
    p.set_defaults(func=_cmd_home)
    p = rsub.add_parser("move", parents=[conn, motion], help="absolute move of x_mm / y_mm / insert_mm (joint units)")
    p.add_argument("--x-mm", type=float, default=None)
    p.add_argument("--y-mm", type=float, default=None)
    p.add_argument("--insert-mm", type=float, default=None)
    p.add_argument("--speed-mm-s", type=float, default=5.0)
    p.add_argument("--no-wait", action="store_true", help="return once GRBL has accepted the move")
    p.set_defaults(func=_cmd_move)
    p = rsub.add_parser(
        "jog",
        parents=[conn, motion],
        help="jog one joint by a distance (one absolute $J= jog; refused at once if it would end outside the travel)",
    )
    p.add_argument("--joint", choices=("x_mm", "y_mm", "insert_mm"), required=True)
    p.add_argument("--distance-mm", type=float, required=True)
    p.add_argument("--speed-mm-s", type=float, default=2.0)
    p.set_defaults(func=_cmd_jog)
    p = rsub.add_parser(
        "venipuncture",
        parents=[conn, motion],
        help="one autonomous venipuncture (ultrasound + NIR cameras, load cell); --emulator: on "
        "the GRBL emulator with images rendered from a simulated phantom",
    )
    p.add_argument(
        "--emulator",
        action="store_true",
        help="no hardware: GRBL + load-cell emulator on ptys, force and images from the simulator phantom",
    )
    p.add_argument(
        "--venipuncture-config",
        default=None,
        metavar="FILE",
        help="controller config (default: config/venipuncture_rig.yaml)",
    )
    p.add_argument(
        "--perception",
        choices=("auto", "model", "classical", "ground_truth"),
        default=None,
        help="default: ground_truth with --emulator (the rendered frames carry labels), else auto",
    )
    p.add_argument(
        "--status-hz",
        type=float,
        default=20.0,
        help="GRBL status polling during the procedure (the position feedback), 1..20 Hz",
    )
    p.add_argument("--us-source", default=None, help="ultrasound video source (default: ultrasound.source)")
    p.add_argument("--nir-source", default=None, help="NIR video source (default: nir.source)")
    p.add_argument("--no-nir", action="store_true", help="run without the NIR camera")
    p.add_argument("--max-time-s", type=float, default=120.0, help="abort (retract) after this long")
    p.add_argument("--seed", type=int, default=0, help="--emulator: force noise and image speckle")
    p.set_defaults(func=_cmd_venipuncture)
    p = rsub.add_parser("estop", parents=[common], help="send feed hold + soft reset at once")
    p.add_argument("--port", default=None, help="GRBL serial port (default: grbl.port from the config)")
    p.set_defaults(func=_cmd_estop)

    p = sub.add_parser(
        "rig-emulator", parents=[common], help="serve a GRBL 1.1 + HX711 emulator on pseudo-terminals until Ctrl-C"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fault",
        choices=FAULTS,
        default="none",
        help="inject a fault: unplug, garbage, stall, alarm, spike (after --fault-after-s), "
        "or baud / silent / marlin from the start",
    )
    p.add_argument("--fault-after-s", type=float, default=5.0, help="delay after the first connection")
    p.add_argument("--alarm-code", type=int, default=1)
    p.add_argument("--spike-n", type=float, default=10.0, help="force spike size (N)")
    p.add_argument("--garbage-lines", type=int, default=5)
    p.add_argument("--boot-delay-s", type=float, default=0.3, help="reset -> banner delay (Arduino boot)")
    p.add_argument(
        "--no-reset-on-open",
        action="store_true",
        help="keep state across connections (like a board with the DTR-reset capacitor)",
    )
    p.add_argument("--no-loadcell", action="store_true")
    p.add_argument(
        "--link-dir",
        default=None,
        metavar="DIR",
        help="also create DIR/grbl and DIR/loadcell symlinks to the pty devices",
    )
    p.set_defaults(func=_cmd_emulator)
