"""Faults and bad input: the controller pauses or retracts and says why; it never advances blind.

Each test injects one fault into a simulated procedure (ground-truth perception, phantom
motion on) and checks the reason reported, that the needle ends outside the tissue, and,
at every tick, that the needle was never advanced without a fresh target fix.
"""

import dataclasses
import math

import pytest

from ir_robot.control.config import VenipunctureConfig
from ir_robot.control.venipuncture import Phase
from ir_robot.evaluation.episode import run_episode
from ir_robot.evaluation.faults import DropoutPerception, SpikyForceRig, blank_camera
from ir_robot.paths import data_path
from ir_robot.sim.phantom import MotionSpec, VesselSpec, load_phantom

SEED = 2  # a phantom the default suite also runs to success


class Watch:
    """on_tick hook: records blind advances and when insertion started; can fire a callback."""

    def __init__(self, on_insert=None):
        self.blind_advances = 0
        self.max_insert = 0.0
        self.insert_t = None
        self.on_insert = on_insert
        self.paused_ticks = 0

    def __call__(self, state, obs, cmd, ctl):
        self.max_insert = max(self.max_insert, state.joints.insert_mm)
        if ctl.phase == Phase.INSERT and self.insert_t is None:
            self.insert_t = state.stamp_s
            if self.on_insert is not None:
                self.on_insert(state.stamp_s)
        v = cmd.velocity.insert_mm
        advancing = v > 0 and state.joints.insert_mm + v * cmd.duration_s > 1e-3  # not just holding home
        if advancing and ctl.tracker.age(state.stamp_s) > ctl.p.perception_max_age_s:
            self.blind_advances += 1
        if ctl.phase == Phase.INSERT and cmd.velocity.insert_mm == 0:
            self.paused_ticks += 1


def check_safe_end(r, world, watch):
    assert watch.blind_advances == 0
    assert not r.back_wall_punctured and not r.artery_punctured and not r.safety_trip
    assert world.state().joints.insert_mm < 0.1  # needle out
    assert r.extra["controller"].done


def test_perception_dropout_during_insertion_retracts(cfg, gt, world):
    us, nir = gt
    drop = DropoutPerception(us, [])
    watch = Watch(on_insert=lambda t: drop.windows.append((t + 2.0, math.inf)))
    r = run_episode(SEED, cfg, drop, nir, world=world, on_tick=watch)
    assert drop.dropped > 0 and watch.insert_t is not None
    assert not r.success
    out = r.extra["outcome"]
    assert out.attempt_failures[0].startswith("perception lost the target")
    events = [m for _, m in out.events]
    assert any("waiting for a fresh target fix" in m for m in events)  # paused first ...
    assert any(m.startswith("insert -> retract: perception lost the target") for m in events)  # ... then retracted
    assert "target not found in ultrasound" in r.reason  # and the retry could not find it either
    check_safe_end(r, world, watch)


def test_blank_frames_during_insertion_retract(cfg, gt, world):
    state = {}
    watch = Watch(on_insert=lambda t: state.setdefault("t", t))

    def cam_wrapper(camera, _world):
        def cam(wanted):
            t0 = state.get("t")
            windows = [(t0 + 2.0, math.inf)] if t0 is not None else []
            return blank_camera(camera, windows)(wanted)

        return cam

    r = run_episode(SEED, cfg, *gt, world=world, on_tick=watch, camera_wrapper=cam_wrapper)
    assert not r.success
    assert r.extra["outcome"].attempt_failures[0].startswith("perception lost the target")
    assert "target not found in ultrasound" in r.reason
    check_safe_end(r, world, watch)


def test_no_vessel_found_in_the_scan_aborts_without_inserting(cfg, gt, world):
    us, nir = gt
    watch = Watch()
    r = run_episode(SEED, cfg, DropoutPerception(us, [(0.0, math.inf)]), nir, world=world, on_tick=watch)
    assert not r.success and r.attempts == 0
    assert r.reason == "no vessel found in ultrasound during the scan"
    assert watch.max_insert == pytest.approx(0.0, abs=1e-3)
    check_safe_end(r, world, watch)


def test_blank_ultrasound_in_the_scan_aborts_without_inserting(cfg, gt, world):
    watch = Watch()
    r = run_episode(
        SEED, cfg, *gt, world=world, on_tick=watch, camera_wrapper=lambda cam, _w: blank_camera(cam, [(0.0, math.inf)])
    )
    assert not r.success and r.attempts == 0
    assert "blank at every scan station" in r.reason
    assert watch.max_insert == pytest.approx(0.0, abs=1e-3)
    check_safe_end(r, world, watch)


def test_force_sensor_spikes_pause_insertion_and_are_not_punctures(cfg, gt, world):
    spiky = {}
    watch = Watch(
        on_insert=lambda t: spiky["rig"].windows.extend([(t + k - 0.01, t + k + 0.01) for k in (1.0, 3.0, 5.0)])
    )

    def wrap(rig):
        spiky["rig"] = SpikyForceRig(rig, [], spike_n=2.0)
        return spiky["rig"]

    r = run_episode(SEED, cfg, *gt, world=world, on_tick=watch, rig_wrapper=wrap)
    assert spiky["rig"].spikes_sent >= 2
    events = [m for _, m in r.extra["outcome"].events]
    assert sum("force-sensor spike" in m for m in events) >= 2
    assert any(m == "paused: force spike" for m in events)
    assert r.success, r.reason  # the spikes were ridden out, not mistaken for punctures
    check_safe_end(r, world, watch)


def test_a_noisy_force_sensor_makes_it_retract(cfg, gt, world):
    spiky = {}
    watch = Watch(
        on_insert=lambda t: spiky["rig"].windows.extend([(t + 0.99 + 0.3 * k, t + 1.01 + 0.3 * k) for k in range(12)])
    )

    def wrap(rig):
        spiky["rig"] = SpikyForceRig(rig, [], spike_n=2.0)
        return spiky["rig"]

    r = run_episode(SEED, cfg, *gt, world=world, on_tick=watch, rig_wrapper=wrap)
    out = r.extra["outcome"]
    assert out.attempt_failures[0].startswith("force sensor unreliable")
    events = [m for _, m in out.events]
    assert any(m.startswith("insert -> retract: force sensor unreliable") for m in events)
    # the spikes stopped: the second attempt went through
    assert r.attempts == 2 and r.success and not r.first_attempt_success
    check_safe_end(r, world, watch)


_STILL = MotionSpec()


def _phantom(vessels, motion=_STILL):
    base = load_phantom(data_path("sim", "phantoms", "forearm.yaml"))
    return dataclasses.replace(base, vessels=tuple(vessels), motion=motion)


def test_target_moving_out_of_reach_pauses_then_retracts(cfg, gt, world):
    # one vein drifting sideways at 1 mm/s: it leaves the Y carriage's reach during the insertion
    spec = _phantom(
        [VesselSpec("vein", 3.0, 5.0, 10.0, 0.0, 0.0, 0.0, 0.9)],
        MotionSpec(True, (0.0, 1.0, 0.0), (0.0, 0.0, 0.0), 0.2, 0.0),
    )
    watch = Watch()
    r = run_episode(SEED, cfg, *gt, world=world, phantom=spec, on_tick=watch)
    assert not r.success
    events = [m for _, m in r.extra["outcome"].events]
    assert any(m.startswith("paused: target moved out of the rig's reach") for m in events)
    assert any(m.startswith("insert -> retract: target moved out of the rig's reach") for m in events)
    assert "unreachable target" in r.reason  # and no new attempt is made where it cannot reach
    assert watch.paused_ticks > 10
    check_safe_end(r, world, watch)


def test_unreachable_target_aborts_before_touching_the_skin(gt, world):
    cfg = VenipunctureConfig()
    cfg = dataclasses.replace(
        cfg,
        safety=dataclasses.replace(
            cfg.safety, workspace_min_mm=(-45.0, -10.0, 0.0), workspace_max_mm=(45.0, 10.0, 60.0)
        ),
    )
    spec = _phantom([VesselSpec("vein", 3.0, 5.0, 14.0, 0.0, 0.0, 0.0, 0.9)])
    watch = Watch()
    r = run_episode(SEED, cfg, *gt, world=world, phantom=spec, motion=False, on_tick=watch)
    assert not r.success and r.attempts == 0
    assert r.reason.startswith("unreachable target") and "pivot y outside the rig's travel" in r.reason
    assert watch.max_insert == pytest.approx(0.0, abs=1e-3)
    check_safe_end(r, world, watch)


def test_a_wall_that_tears_as_the_needle_pauses_is_still_felt(cfg, gt, world):
    """A force-sensor spike pauses the needle at the very tick the vein wall tears, and the force
    monitor ignores drops while the needle stops (stopping alone lowers the force). The fall of
    the force across the pause still starts the lumen test, so the tip stops in the lumen
    instead of searching on (through a small lumen, into its back wall)."""
    clean = run_episode(SEED, cfg, *gt, world=world)
    assert clean.success
    t_tear = next(e.t_s for e in clean.extra["events"] if e.membrane == "vessel_wall")
    spiky = {}

    def wrap(rig):  # one spiked reading: the first one after the tear
        spiky["rig"] = SpikyForceRig(rig, [(t_tear + 1e-4, t_tear + 0.05)], spike_n=2.0)
        return spiky["rig"]

    watch = Watch()
    r = run_episode(SEED, cfg, *gt, world=world, on_tick=watch, rig_wrapper=wrap)
    tears = [e for e in r.extra["events"] if e.membrane == "vessel_wall"]
    assert spiky["rig"].spikes_sent == 1 and tears and abs(tears[0].t_s - t_tear) < 1e-6  # it tore as before
    events = [m for _, m in r.extra["outcome"].events]
    assert any(m.startswith("force-sensor spike") for m in events)
    assert any("across a pause" in m and "lumen test" in m for m in events), events
    assert r.success and r.extra["outcome"].attempts == 1
    check_safe_end(r, world, watch)
