"""``ir-robot launch`` and ``ir-robot replay`` (rclpy is imported only when they run)."""

from __future__ import annotations

import sys


def _launch(args) -> int:
    from ir_robot.ros.launcher import launch

    return launch(
        args.graph,
        duration_s=args.duration,
        record=args.record,
        params=args.params or [],
        procedures=args.procedures,
        processes=args.processes,
        domain_id=args.domain_id,
        procedure_timeout_s=args.procedure_timeout,
    )


def _replay(args) -> int:
    from ir_robot.ros.replay import replay

    try:
        counts = replay(args.file, rate=args.rate, topics=args.topics, loop=args.loop, domain_id=args.domain_id)
    except KeyboardInterrupt:
        return 130
    print(f"published {sum(counts.values())} messages on {len(counts)} topics", file=sys.stderr)
    return 0


def register(sub) -> None:
    """Adds ``ir-robot launch`` and ``ir-robot replay`` to the subcommand parsers ``sub``."""
    from ir_robot.ros.graph import GRAPHS

    p = sub.add_parser(
        "launch",
        help="run the ROS 2 graph with plain rclpy (no ros2 launch needed)",
        description="Start every node of a graph (see docs/ros.md). Ctrl-C stops everything cleanly.",
    )
    p.add_argument(
        "graph",
        choices=sorted(GRAPHS),
        help="which graph (sim: simulator + perception + control; rig: the benchtop rig; rig_emulator: the rig "
        "graph on the emulated bench, no hardware)",
    )
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--record", metavar="FILE.mcap", help="record every topic to an MCAP file")
    p.add_argument(
        "--params",
        action="append",
        metavar="FILE",
        help="ROS params YAML (node: ros__parameters: ...) applied after config/ros/; repeatable",
    )
    p.add_argument(
        "--procedures",
        type=int,
        default=0,
        metavar="N",
        help="run N procedures back to back (print one JSON summary line each), then exit",
    )
    p.add_argument("--procedure-timeout", type=float, default=300.0, metavar="S", help="per procedure")
    p.add_argument("--processes", action="store_true", help="one process per node instead of one executor")
    p.add_argument("--domain-id", type=int, metavar="ID", help="ROS_DOMAIN_ID for this graph (default: env)")
    p.set_defaults(func=_launch)

    r = sub.add_parser("replay", help="republish an MCAP recording on its topics")
    r.add_argument("file", metavar="FILE.mcap")
    r.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    r.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics")
    r.add_argument("--loop", action="store_true", help="start over at the end")
    r.add_argument("--domain-id", type=int, metavar="ID", help="ROS_DOMAIN_ID (default: env)")
    r.set_defaults(func=_replay)
