"""The latency trace and the benchmark's per-stage breakdown; the controller's keep-alive thread."""

import time

from ir_robot.benchmarks.ros import breakdown
from ir_robot.ros.trace import LatencyTrace, read_traces

MS = 1_000_000


def test_trace_is_off_without_a_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("IR_ROBOT_LATENCY_TRACE", raising=False)
    t = LatencyTrace("controller")
    assert not t.enabled
    t(1, "ctl_pub")  # a no-op
    assert list(tmp_path.iterdir()) == []


def test_breakdown_joins_the_nodes_traces_per_frame(tmp_path):
    stamp = 10_000 * MS
    events = {
        "sim": [("sim_tick", 0), ("sim_pub", 2)],
        "us_perception": [("perc_in", 3), ("perc_pub", 5)],
        "controller": [("ctl_result", 6), ("ctl_pub", 10)],
        "sim2": [("rig_in", 11)],
    }
    for node, evs in events.items():
        t = LatencyTrace(node, directory=str(tmp_path))
        for ev, ms in evs:
            t(stamp, ev, stamp + ms * MS)
        t(stamp + 33 * MS, "sim_pub", stamp + 35 * MS)  # a frame that caused no command: not counted
        t.close()
    assert set(read_traces(tmp_path)[stamp]) == {
        "sim_tick",
        "sim_pub",
        "perc_in",
        "perc_pub",
        "ctl_result",
        "ctl_pub",
        "rig_in",
    }
    out = breakdown(tmp_path)
    assert out["latency_samples"] == 1
    assert out["latency_ms_p50"] == 10.0 and out["rig_latency_ms_p99"] == 11.0
    assert out["stage_render_publish_ms_p50"] == 2.0 and out["stage_perception_ms_p50"] == 2.0
    assert out["stage_controller_ms_p50"] == 4.0 and out["stage_to_rig_ms_p50"] == 1.0
    assert breakdown(tmp_path, stamps_ns={stamp + 1})["latency_samples"] == 0


def test_keep_alive_fires_once_for_a_long_step_only():
    from ir_robot.ros.controller_node import _KeepAlive

    fired = []
    ka = _KeepAlive(0.05, lambda: fired.append(time.monotonic()))
    try:
        ka.begin()
        ka.end()  # a short step
        time.sleep(0.1)
        assert fired == []
        ka.begin()  # a long one (planning)
        time.sleep(0.2)
        ka.end()
        assert len(fired) == 1
        ka.begin()
        ka.end()
        time.sleep(0.1)
        assert len(fired) == 1
    finally:
        ka.close()
    assert not ka._thread.is_alive()
