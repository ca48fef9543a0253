"""The real ROS graph in pytest (launch_testing is not on pip): start it, drive a procedure from a separate
test node, check the MCAP recording."""

import json
import re

import pytest

pytestmark = pytest.mark.ros


def sim_clock(sim) -> tuple[float, dict]:
    """The sim node's simulated time and the frames it has published, read together under the world's lock (the
    node ticks, renders and publishes under it, so nothing is published between the two reads)."""
    with sim._world_lock:
        return sim.world.state().t_s, dict(sim.frames)


def test_procedure_through_the_graph_completes_and_is_recorded(tmp_path, domain_id, fast_params, probe):
    from std_srvs.srv import Trigger

    from ir_robot.evaluation.episode import MAX_DURATION_S
    from ir_robot.recording.mcap_io import iter_decoded, summary
    from ir_robot.ros.launcher import GraphRunner

    counted = ("/us/image_raw", "/us/camera_info", "/nir/image_raw", "/rig/joint_states", "/rig/command")
    mcap = tmp_path / "session.mcap"
    runner = GraphRunner("sim", params=[fast_params], record=mcap, domain_id=domain_id).start()
    sim, ctl_node, recorder = runner.nodes["sim"], runner.nodes["controller"], runner.nodes["recorder"]
    try:
        # the recorder is built last and subscribes to the topics of the nodes built before it in its constructor,
        # before the executor spins: it cannot miss a message published on them (the exact counts below rely on it)
        assert not [t for t in counted if recorder._subs.get(t) is None]
        probe.wait(lambda: probe.states[-1:] == ["idle"], 20, "the supervisor's latched state")
        res = probe.call(Trigger, "/procedure/start")
        assert res.success, res.message
        # "running" comes after the sim's reset (a new phantom, simulated time from 0): clock the procedure from here
        probe.wait(lambda: "running" in probe.states, 20, "the procedure running")
        t_run, frames_run = sim_clock(sim)
        probe.wait(lambda: probe.summaries, 150, "the procedure summary")
        probe.wait(lambda: probe.states[-1] in ("done", "failed"), 10, "the final state")
        t_end, frames_end = sim_clock(sim)
        # the rig must receive and handle every command the controller sent (reliable; the last one may still be
        # in flight, or in the rig's callback on the executor thread, when the final state arrives)
        settled = []

        def every_command_handled() -> bool:
            r = dict(sim.rig.counts)
            handled = r["executed"] + r["not_running"] + r["malformed"] + r["refused"]
            if r["received"] >= ctl_node.counts["commands"] and handled == r["received"]:
                settled.append(r)
            return bool(settled)

        probe.wait(every_command_handled, 10, "the rig to handle the controller's last commands")
        rig, ctl = settled[0], dict(ctl_node.counts)
        resets = sim.resets
        cfg = sim.params.config
    finally:
        runner.stop()
    frames, commands = sim.frames, ctl_node.counts["commands"]  # final: the executor has stopped
    s = probe.summaries[0]
    # the line `ir-robot demo` prints, scored the same way
    assert list(s)[:8] == [
        "success",
        "tip_error_mm",
        "attempts",
        "duration_s",
        "peak_force_n",
        "seed",
        "perception",
        "reason",
    ]
    assert s["perception"] == "ground_truth" and s["seed"] == 0
    # a still phantom, ground-truth perception, seed 0: this procedure succeeds. The controller's verdict and the
    # supervisor's, and the ground truth the sim's referee checks: in the lumen through the hold, no back wall, no
    # artery, no safety trip (the reason below would name it). Not the number of attempts: on a busy machine the
    # ultrasound results can stop for seconds (wall clock) and the controller retracts and retries (seen: 2).
    assert probe.states[:3] == ["idle", "starting", "running"] and probe.states[-1] == "done"
    assert probe.phases[0] == "idle" and probe.phases[-1] == "done"
    assert s["hold_in_lumen"] and s["tip_error_mm"] < 1.0 and s["attempts"] >= 1
    assert not s["back_wall_punctured"] and not s["artery_punctured"]
    # The referee's verdict adds a duration limit, which the setup does not decide: the controller measures the
    # duration on the ROS clock (wall time) and waits for perception on it, while the simulator runs on its own
    # clock and slows down on a busy machine. Seen here on 2 cores: 24 s at a load of 3; 64 s at a load of 5;
    # 60 s and 76 s of simulated time at a load of 6-7. So the verdict is success, or failure for that reason alone.
    too_long = re.fullmatch(rf"took \d+\.\d s > {MAX_DURATION_S:.0f} s", s["reason"])
    assert s["success"] or (too_long and s["duration_s"] > MAX_DURATION_S), s
    # the rig obeyed the controller: it received every command (reliable, one executor) and executed all of them
    # but those sent outside the procedure; none malformed or refused; and it moved
    assert rig["received"] == ctl["commands"] and rig["malformed"] == 0 and rig["refused"] == 0
    assert rig["executed"] == rig["received"] - rig["not_running"] and rig["executed"] > 100
    assert probe.joints and max(abs(a - b) for a, b in zip(probe.joints[0], probe.joints[-1], strict=True)) > 1e-3
    # the recording: every topic of the graph, with what was published on it
    info = summary(mcap)
    expect = {
        "/us/image_raw": "sensor_msgs/msg/Image",
        "/us/mask": "sensor_msgs/msg/Image",
        "/us/result": "std_msgs/msg/String",
        "/nir/result": "std_msgs/msg/String",
        "/nir/image_raw": "sensor_msgs/msg/Image",
        "/us/camera_info": "sensor_msgs/msg/CameraInfo",
        "/rig/joint_states": "sensor_msgs/msg/JointState",
        "/rig/command": "sensor_msgs/msg/JointState",
        "/needle/force": "geometry_msgs/msg/WrenchStamped",
        "/procedure/state": "std_msgs/msg/String",
        "/procedure/result": "std_msgs/msg/String",
        "/sim/summary": "std_msgs/msg/String",
        "/us/markers": "visualization_msgs/msg/MarkerArray",
        "/plan/target": "geometry_msgs/msg/PointStamped",
        "/plan/path": "geometry_msgs/msg/PoseArray",
        "/controller/phase": "std_msgs/msg/String",
    }
    for topic, type_name in expect.items():
        assert topic in info and info[topic].type_name == type_name, topic
    # Exact counts: one process, one executor, the recorder subscribed from the start (above) with a queue of 100,
    # taking one message per topic per executor cycle while the sim publishes at most one per tick: what the
    # recording holds is what the nodes published (their own counters), no more, no fewer.
    assert info["/us/image_raw"].count == info["/us/camera_info"].count == frames["us"]
    assert info["/nir/image_raw"].count == frames["nir"]
    assert info["/rig/command"].count == commands
    assert info["/rig/joint_states"].count == info["/needle/force"].count  # published together, once per state tick
    # Counts bound by the simulated clock, whatever the machine's load: the sim publishes each stream on its own
    # grid in simulated time, at most one frame per period; a tick advances at most 5 control periods (it slows
    # down rather than jumping), so consecutive frames are never more than a period plus 5 ticks apart.
    assert resets == 1  # one reset, at the start: [t_run, t_end] is one stretch of simulated time
    sim_s = t_end - t_run
    assert sim_s > 5.0
    longest_tick = 5.0 / cfg.control_rate_hz
    for modality, rate in (("us", cfg.us_rate_hz), ("nir", cfg.nir_rate_hz)):
        published = frames_end[modality] - frames_run[modality]
        assert sim_s / (1.0 / rate + longest_tick) - 1 <= published <= sim_s * rate + 1, (modality, published, sim_s)
    assert info["/rig/joint_states"].count >= sim_s / (1.0 / cfg.state_rate_hz + longest_tick) - 1
    assert info["/procedure/state"].count >= 3 and info["/sim/summary"].count == 1  # latched depth 1: may coalesce
    assert info["/procedure/state"].qos[0].durability == "transient_local"
    assert info["/us/image_raw"].qos[0].reliability == "best_effort"
    recorded = [json.loads(m.data) for _, _, m in iter_decoded(mcap, ["/sim/summary"])]
    assert recorded == [s]
    phases = [m.data for _, _, m in iter_decoded(mcap, ["/controller/phase"])]
    for phase in ("scan", "align", "insert"):  # select runs inside one step
        assert phase in phases, (phase, phases, s["reason"])
