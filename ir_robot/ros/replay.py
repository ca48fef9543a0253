"""``ir-robot replay FILE.mcap``: republish a recording on its original topics.

Messages are published raw (the recorded CDR bytes) with the QoS each topic was
recorded with (latched topics stay latched), paced by their log times scaled by
``rate``. Header stamps are left as recorded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ir_robot.core.errors import IrRobotError


def replay(
    path: str | Path,
    *,
    rate: float = 1.0,
    topics: list[str] | None = None,
    loop: bool = False,
    domain_id: int | None = None,
    wait_s: float = 0.5,
    context=None,
    out=sys.stderr,
) -> dict[str, int]:
    """Publish every message of ``path``; returns the count published per topic."""
    import rclpy
    from rclpy.node import Node

    from ir_robot.recording.mcap_io import iter_raw, summary
    from ir_robot.ros import qos as qos_mod
    from ir_robot.ros.run import load_class

    if not rate > 0:
        raise IrRobotError(f"--rate must be > 0, got {rate}")
    info = summary(path)
    wanted = [t for t in info if topics is None or t in topics]
    if topics:
        missing = sorted(set(topics) - set(info))
        if missing:
            raise IrRobotError(f"{path} has no topic(s) {missing}; it has {sorted(info)}")
    own_ctx = context is None
    if own_ctx:
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=None if domain_id is None else int(domain_id))
    node = Node("ir_robot_replay", context=context, use_global_arguments=False)
    counts = {t: 0 for t in wanted}
    try:
        pubs = {}
        for t in wanted:
            ti = info[t]
            pkg, _, name = ti.type_name.partition("/msg/")
            msg_cls = load_class(f"{pkg}.msg:{name}")
            profile = qos_mod.from_info(ti.qos[0]) if ti.qos else qos_mod.command()
            pubs[t] = node.create_publisher(msg_cls, t, profile)
        time.sleep(wait_s)  # let subscribers discover the publishers
        print(
            f"replaying {path}: {len(wanted)} topics, {sum(info[t].count for t in wanted)} messages at x{rate}",
            file=out,
            flush=True,
        )
        while True:
            t0_wall = time.monotonic()
            t0_log = None
            for m in iter_raw(path, wanted):
                if t0_log is None:
                    t0_log = m.log_time_ns
                due = t0_wall + (m.log_time_ns - t0_log) * 1e-9 / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if not context.ok():
                    return counts
                pubs[m.topic].publish(m.data)
                counts[m.topic] += 1
            if not loop:
                break
        time.sleep(wait_s)  # let reliable messages drain
    finally:
        node.destroy_node()
        if own_ctx:
            rclpy.try_shutdown(context=context)
    return counts
