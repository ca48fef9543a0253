"""The venipuncture controller completing a venipuncture through the GRBL emulator (issue 6).

GrblEmulator over real ptys plays the GRBL board and the HX711 board; its load-cell force comes from
the tissue model of the simulator phantom, and the ultrasound / NIR frames are rendered from the same
phantom at the emulated stage's pose (:class:`~ir_robot.devices.emulated_phantom.EmulatedPhantom`), with
ground-truth perception as `ir-robot evaluate --ground-truth-perception`. The host side is the real
stack: GrblRig (G-code jogs, status polling, load-cell port) behind SafeRig, driven by the
VenipunctureController in its fixed-joint mode (z, pitch and probe yaw fixed on the 3-axis stage).
"""

import dataclasses
import json
import math
import time

import numpy as np
import pytest

from ir_robot.control.config import load_venipuncture_config
from ir_robot.control.rig_procedure import default_rig_config_path, run_venipuncture
from ir_robot.control.venipuncture import Phase, VenipunctureController
from ir_robot.core.errors import ConfigError
from ir_robot.devices.config import load_rig_config
from ir_robot.devices.emulated_phantom import EmulatedRig
from ir_robot.evaluation.episode import make_perception


def rig_config():
    cfg = load_rig_config()
    return dataclasses.replace(cfg, grbl=dataclasses.replace(cfg.grbl, wake_timeout_s=0.4, status_poll_hz=20.0))


def test_venipuncture_completes_through_the_emulator():
    cfg = rig_config()
    vcfg = load_venipuncture_config(default_rig_config_path())
    us, nir = make_perception("ground_truth", vcfg)
    lo, _ = cfg.joint_limits()
    # start over the first scan station (probe x 0, y -7), needle out
    start = lo.replace(x_mm=-vcfg.control.probe_offset_mm, y_mm=-7.0, insert_mm=0.0)
    hold_in_lumen, commands = [], []

    with EmulatedRig(cfg, probe_offset_mm=vcfg.control.probe_offset_mm, seed=3, start=start) as eb:

        def on_tick(state, obs, cmd, controller):
            commands.append(cmd.velocity.as_array())
            if controller.phase == Phase.HOLD:
                hold_in_lumen.append(eb.phantom.in_vein_lumen())

        t0 = time.monotonic()
        res, ctl, safe = run_venipuncture(eb.rig, eb.camera, vcfg, us, nir, max_time_s=70.0, on_tick=on_tick)
        wall = time.monotonic() - t0
        final = safe.read_state()
        samples = list(eb.emulator.samples)
        loadcell = eb.rig.loadcell
        lc_samples = loadcell.sample_count
        jogs = sum(1 for line in eb.emulator.received_lines if line.startswith("$J="))
        errors = list(eb.emulator.errors_sent)
        skipped = eb.rig.jogs_skipped
    out = res.outcome
    events = [msg for _, msg in out.events]
    why = (
        f"{out.reason} (safety trip: {res.safety_trip}; rig: {final.status} {final.message}; "
        f"jogs skipped {skipped})\n" + "\n".join(f"{t:7.2f} {m}" for t, m in out.events)
    )

    # the controller reports success after one attempt, with no safety trip, in time
    assert out.success and res.safety_trip is None and not res.timed_out, why
    assert out.attempts == 1 and out.confirmed, why
    assert wall < 75.0
    # fixed-joint mode: the plan uses the stage's tilt and height, and no rate ever went to a fixed joint
    assert ctl.fixed_joints == ("z_mm", "pitch_rad", "probe_yaw_rad", "roll_rad")
    assert out.plan.pitch_rad == cfg.fixed.pitch_rad and out.plan.pivot_mm[2] == pytest.approx(cfg.fixed.z_mm, abs=1e-9)
    cmds = np.array(commands)
    assert np.all(cmds[:, [2, 3, 5]] == 0.0) and np.any(cmds[:, 4] > 0)
    # ground truth from the phantom: blood flashed back, the tip stayed in the vein lumen through the hold,
    # no back wall or artery was punctured
    assert eb.phantom.flashback
    assert hold_in_lumen and all(hold_in_lumen), why
    assert not eb.phantom.back_wall_punctured and not eb.phantom.artery_punctured
    walls = [e for e in eb.phantom.events() if e.membrane == "vessel_wall"]
    assert len(walls) == 1 and not eb.phantom.phantom.is_artery[walls[0].vessel_index]
    # the force drop of the vein-wall puncture reached the controller through the load-cell port:
    # the emulated HX711 streamed it, GrblRig's LoadCell read it, the controller saw the drop near the wall
    drops = [m for m in events if m.startswith("puncture-like force drop")]
    assert drops, why
    s_drop = float(drops[0].split(" at ")[1].split(" mm")[0])
    assert abs(s_drop - walls[0].insert_mm) < 0.5
    assert lc_samples > 80 * 10 * 0.8 and out.peak_force_n > 1.0  # 80 Hz stream; skin peak ~1.6 N
    t_wall = [t for t, f in samples if f > 0.6]
    assert t_wall and max(f for _, f in samples) < cfg.loadcell.force_limit_n
    assert any(m.startswith("lumen test: force flat") for m in events), why
    # streamed as GRBL jogs without a protocol error; the rig ends at rest, needle retracted, not tripped
    assert jogs > 100 and errors == []
    assert final.status == "idle" and not final.moving, final
    assert final.joints.insert_mm < 0.1
    assert not safe.tripped


def test_a_fixed_longitudinal_probe_is_refused_with_the_fix():
    cfg = load_rig_config()
    cfg = dataclasses.replace(cfg, fixed=dataclasses.replace(cfg.fixed, probe_yaw_rad=0.0))
    lo, hi = cfg.joint_limits()
    vcfg = load_venipuncture_config(default_rig_config_path())
    with pytest.raises(ConfigError, match=r"transverse ultrasound view.*fixed.probe_yaw_rad"):
        VenipunctureController(vcfg, None, None, lower=lo, upper=hi, velocity_limits=cfg.joint_speed_limits())
    # the shipped rig has its probe across the arm
    assert math.sin(load_rig_config().fixed.probe_yaw_rad) == pytest.approx(1.0, abs=1e-6)


def test_cli_without_the_ultrasound_camera_is_one_clear_error(capsys):
    from ir_robot.cli import main

    code = main(
        ["rig", "venipuncture", "--port", "/dev/ttyNOPE9", "--us-source", "/dev/video97", "--perception", "classical"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ir-robot: error: camera /dev/video97 does not exist")


@pytest.mark.slow
def test_cli_emulator_run_reports_success_and_the_phantom_truth(capsys):
    """`ir-robot rig venipuncture --emulator --json` (the same run as above, through the CLI: ~40 s)."""
    from ir_robot.cli import main

    code = main(["rig", "venipuncture", "--emulator", "--json", "--seed", "2", "--max-time-s", "80"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["success"] and out["safety_trip"] is None, out["events"]
    assert out["fixed_joints"] == ["z_mm", "pitch_rad", "probe_yaw_rad"]
    truth = out["phantom_truth"]
    assert truth["flashback"] and not truth["back_wall_punctured"] and not truth["artery_punctured"]
    assert [p[0] for p in truth["punctures"]].count("vessel_wall") == 1
    assert out["final"]["status"] == "idle" and out["final"]["insert_mm"] < 0.1


def test_safety_margins_leave_the_fixed_joints_of_the_stage_alone():
    """SafeRig with limit margins on the GRBL rig: movable joints kept inside, fixed ones (equal limits) kept."""
    from ir_robot.control.safety import SafeRig, SafetyConfig
    from ir_robot.core.types import JointVector, RigState
    from ir_robot.devices.base import Rig

    cfg = load_rig_config()

    class Stage(Rig):
        movable_joints = cfg.axis_joints

        def read_state(self):
            return RigState(0.0, cfg.joints_from_mpos(np.array([-45.0, -22.0, -5.0])), JointVector(), 0.0)

        def command(self, cmd):
            pass

        def move_to(self, target, speed_mm_s=5.0):
            pass

        def stop(self, reason=""):
            pass

        def limits(self):
            return cfg.joint_limits()

        def velocity_limits(self):
            return cfg.joint_speed_limits()

    safe = SafeRig(Stage(), SafetyConfig(limit_margin_mm=1.0, limit_margin_rad=0.05))
    lo, hi = safe.limits()
    assert (lo.x_mm, hi.x_mm, lo.insert_mm, hi.insert_mm) == (-44.0, 44.0, 1.0, 39.0)
    assert lo.pitch_rad == hi.pitch_rad == cfg.fixed.pitch_rad and lo.z_mm == hi.z_mm == cfg.fixed.z_mm
    assert safe.read_state().status != "estop"  # the stage's fixed pitch and height are not "outside" its limits
