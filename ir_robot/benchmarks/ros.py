"""The ROS graph under load: image-to-command latency, ultrasound rate, dropped commands, soak memory.

* latency: the simulation graph runs procedures with the controller asking for every
  ultrasound frame (``control.us_period_s: 0``, 30 Hz frames). An ``/us/image_raw`` frame
  is stamped with the time of the world state it shows (before rendering); a command
  computed from a frame carries that frame's stamp (other commands the time they were
  computed). ``latency_ms_*``: frame stamp -> the command computed from it published by the
  controller (its ``ctl_pub`` trace event), over the image-triggered commands a separate
  listener node received while a procedure ran; ``received_latency_ms_*``: the listener's
  receipt time - stamp; ``rig_latency_ms_*``: the rig's receipt - stamp; ``stage_*``: where
  the time goes (:data:`STAGES`, from the nodes' traces, :mod:`ir_robot.ros.trace`).
  ``dropped_commands``: commands the controller published that the rig never received
  (``/controller/stats`` vs ``/rig/stats``).
* soak: procedures back to back (at least 10 and at least 10 minutes) on the episode
  phantoms of seeds 3000, 3001 ... (motion on); memory = resident set of the graph's
  processes, growth from the end of the first procedure to the end of the last; every
  procedure must end with a summary (``procedures_completed`` = ``soak_procedures``).

Default: one process per node (``--processes``, both cores in use), perception ``auto``
(the trained models when installed, else ground truth: the ``perception`` key says
which; ``--perception ground_truth`` measures the graph without the networks' compute).
``--quick``: 20 s of latency, 2 procedures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

#: ``--perception`` choices: the perception nodes' ``model`` parameter (auto: learned when installed)
PERCEPTION_CHOICES = ("auto", "learned", "ground_truth", "classical")
LATENCY_PARAMS = """
controller:
  ros__parameters:
    control:
      us_period_s: 0.0
"""


def _rss_mb(pids) -> float:
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += float(line.split()[1]) / 1024.0
        except OSError:
            pass
    return total


def _start(processes: bool, params: list[Path], domain_id: int, trace_dir: Path | None = None):
    from ir_robot.ros.launcher import GraphRunner, ProcessRunner
    from ir_robot.ros.trace import ENV

    if processes:
        env = dict(os.environ)
        env.pop(ENV, None)
        if trace_dir is not None:
            env[ENV] = str(trace_dir)
        return ProcessRunner("sim", params=params, domain_id=domain_id, env=env).start()
    old = os.environ.pop(ENV, None)
    try:
        if trace_dir is not None:
            os.environ[ENV] = str(trace_dir)  # read by the nodes while they are built
        return GraphRunner("sim", params=params, domain_id=domain_id).start()
    finally:
        os.environ.pop(ENV, None)
        if old is not None:
            os.environ[ENV] = old


#: (key, from event, to event): the stages of the image-to-command path (see ir_robot.ros.trace)
STAGES = (
    ("render_publish", "sim_tick", "sim_pub"),
    ("to_perception", "sim_pub", "perc_in"),
    ("perception", "perc_in", "perc_pub"),
    ("to_controller", "perc_pub", "ctl_result"),
    ("controller", "ctl_result", "ctl_pub"),
    ("to_rig", "ctl_pub", "rig_in"),
)


def breakdown(trace_dir: Path, stamps_ns=None) -> dict:
    """Per-stage p50/p99 (ms) over the frames that produced a command (``ctl_pub``), from the nodes' traces:
    ``latency`` = image stamp -> command published, ``rig_latency`` = image stamp -> command received by the rig.
    """
    from ir_robot.ros.trace import read_traces

    frames = {
        k: ev for k, ev in read_traces(trace_dir).items() if "ctl_pub" in ev and (stamps_ns is None or k in stamps_ns)
    }
    out: dict = {}

    def put(name, values):
        v = np.asarray(values, dtype=float)
        if v.size:
            out[f"{name}_ms_p50"] = round(float(np.percentile(v, 50)), 2)
            out[f"{name}_ms_p99"] = round(float(np.percentile(v, 99)), 2)

    publish = [(ev["ctl_pub"] - k) * 1e-6 for k, ev in frames.items()]
    put("latency", publish)
    out["latency_ms_max"] = round(float(np.max(publish)), 2) if publish else None
    out["latency_samples"] = len(publish)
    for name, a, b in STAGES:
        put(f"stage_{name}", [(ev[b] - ev[a]) * 1e-6 for ev in frames.values() if a in ev and b in ev])
    put("rig_latency", [(ev["rig_in"] - k) * 1e-6 for k, ev in frames.items() if "rig_in" in ev])
    return out


def _client(runner, processes: bool, listener):
    from ir_robot.ros.launcher import ProcedureClient

    if processes:
        client = ProcedureClient(listener.ctx, "ir_robot_bench_client")
        listener.executor.add_node(client.node)
    else:
        client = ProcedureClient(runner.context, "ir_robot_bench_client")
        runner.add_node(client.node)
    return client


def _domain() -> int:
    """A ROS domain of this benchmark alone (200-229)."""
    return 200 + os.getpid() % 30


def _pids(runner, processes: bool) -> list[int]:
    return [p.pid for p in runner.procs.values()] if processes else [os.getpid()]


def _perception_params(perception: str) -> str:
    """Params giving both perception nodes ``model: perception`` ('' for auto: the nodes' default)."""
    if perception == "auto":
        return ""
    if perception not in PERCEPTION_CHOICES:
        raise ValueError(f"perception must be one of {PERCEPTION_CHOICES}, got {perception!r}")
    return "".join(f"{m}_perception:\n  ros__parameters:\n    model: {perception}\n" for m in ("us", "nir"))


def measure_latency(
    seconds: float, *, processes: bool = True, domain_id: int | None = None, workdir: Path, perception: str = "auto"
) -> dict:
    """Procedures with every 30 Hz frame used; latency over ``seconds`` of them (more procedures if needed)."""
    domain_id = _domain() if domain_id is None else domain_id
    params = workdir / "latency.yaml"
    params.write_text(LATENCY_PARAMS + _perception_params(perception))
    from ir_robot.ros.bench_listener import BenchListener

    listener = BenchListener(domain_id)
    trace_dir = workdir / "trace"
    runner = _start(processes, [params], domain_id, trace_dir)
    client = _client(runner, processes, listener)
    summaries = []
    try:
        client.wait_state("idle", 120.0)
        t_end = None
        while t_end is None or time.monotonic() < t_end:
            res = client.call("start", timeout_s=60.0)
            if not res.success:
                raise RuntimeError(f"/procedure/start refused: {res.message}")
            client.wait_state("running", 30.0)
            listener.recording = True
            t_end = t_end or time.monotonic() + seconds
            n = len(client.summaries)
            while len(client.summaries) == n and time.monotonic() < t_end:
                time.sleep(0.1)
            listener.recording = False
            if len(client.summaries) == n:
                client.call("abort")
                client.wait_summary(n + 1, 60.0)
            summaries += client.summaries[n:]
        time.sleep(2.5)  # the last stats
        rig, ctl = dict(listener.stats["rig"]), dict(listener.stats["controller"])
    finally:
        runner.stop()
        listener.close()
    lat = np.asarray(listener.latency_ms)
    recorded = set(listener.recorded_stamps)
    frames = np.diff(np.asarray(listener.frames)) if len(listener.frames) > 1 else np.array([np.nan])
    return {
        **breakdown(trace_dir, recorded),
        "received_latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "received_latency_ms_p99": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "received_latency_ms_max": round(float(lat.max()), 2) if lat.size else None,
        "us_rate_hz": round(float(1.0 / np.median(frames)), 2) if frames.size else None,
        "us_rate_hz_mean": round(float(len(frames) / max(np.sum(frames), 1e-9)), 2),
        "commands_published": int(ctl.get("commands", 0)),
        "commands_received_by_rig": int(rig.get("received", 0)),
        "dropped_commands": int(ctl.get("commands", 0)) - int(rig.get("received", 0)),
        "rig_refused_commands": int(rig.get("refused", 0)) + int(rig.get("malformed", 0)),
        "latency_procedures": len(summaries),
    }


def soak(
    procedures: int,
    minutes: float = 0.0,
    *,
    processes: bool = True,
    domain_id: int | None = None,
    workdir: Path,
    perception: str = "auto",
) -> dict:
    """At least ``procedures`` back to back, for at least ``minutes``, on the episode phantoms of seeds 3000, 3001 ...
    with motion; memory growth from the end of the first procedure to the end of the last.
    """
    domain_id = _domain() if domain_id is None else domain_id
    params = workdir / "soak.yaml"
    params.write_text("sim:\n  ros__parameters:\n    seed: 3000\n" + _perception_params(perception))
    from ir_robot.ros.bench_listener import BenchListener

    listener = BenchListener(domain_id)
    runner = _start(processes, [params], domain_id)
    client = _client(runner, processes, listener)
    t0 = time.monotonic()
    rss: list[float] = []
    summaries: list[dict] = []
    errors: list[str] = []
    try:
        client.wait_state("idle", 120.0)
        while len(summaries) < procedures or time.monotonic() - t0 < minutes * 60.0:
            try:
                summaries.append(client.run_procedure(timeout_s=240.0))
            except Exception as exc:  # a procedure that does not end is a benchmark failure, recorded as such
                errors.append(str(exc))
                break
            rss.append(_rss_mb(_pids(runner, processes)))
        wall = time.monotonic() - t0
        perception = summaries[0].get("perception", "") if summaries else ""
    finally:
        runner.stop()
        listener.close()
    ok = [s for s in summaries if s.get("success")]
    return {
        "soak_procedures": len(summaries) + len(errors),
        "procedures_completed": len(summaries),
        "procedures_successful": len(ok),
        "soak_minutes": round(wall / 60.0, 2),
        "memory_mb_start": round(rss[0], 1) if rss else None,
        "memory_mb_end": round(rss[-1], 1) if rss else None,
        "memory_growth_mb": round(rss[-1] - rss[0], 1) if rss else None,
        "mean_procedure_s": round(float(np.mean([s["duration_s"] for s in summaries])), 2) if summaries else None,
        "perception": perception,
        "soak_errors": "; ".join(errors),
    }


def run(quick: bool = False, perception: str = "auto") -> dict:
    """The ROS area's flat results: per-stage latency over 90 s of procedures and a soak of 10 procedures over at least
    10 minutes (``quick``: 20 s, 2 procedures), with the machine's load before and after (the box may be shared).
    """
    import tempfile

    processes = os.environ.get("IR_ROBOT_BENCH_ROS_INPROCESS", "") == ""
    _perception_params(perception)  # a bad choice fails before anything starts
    out: dict = {
        "mode": "one process per node" if processes else "in-process (single executor)",
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
    }  # the box is shared: say how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        out.update(
            measure_latency(20.0 if quick else 90.0, processes=processes, workdir=Path(tmp), perception=perception)
        )
        out.update(
            soak(2, 0.0, processes=processes, workdir=Path(tmp), perception=perception)
            if quick
            else soak(10, 10.0, processes=processes, workdir=Path(tmp), perception=perception)
        )
    out["cpu_count"] = os.cpu_count()
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    return out
