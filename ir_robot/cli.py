"""The ``ir-robot`` command.

Each area registers its own subcommands in ``ir_robot/<area>/commands.py`` with a
``register(subparsers)`` function; handlers import heavy modules (torch, pybullet,
rclpy) only when they run, so ``ir-robot --help`` stays fast and rclpy-free.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from ir_robot.core.errors import IrRobotError

#: modules whose ``register(subparsers)`` adds subcommands (missing ones are skipped)
COMMAND_MODULES = (
    "ir_robot.sim.commands",
    "ir_robot.perception.commands",
    "ir_robot.control.commands",
    "ir_robot.devices.commands",
    "ir_robot.ros.commands",
    "ir_robot.rl.commands",
    "ir_robot.benchmarks.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ir-robot",
        description="AI-assisted interventional radiology robotics: simulation, perception, control, rig.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue  # that area is not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Ctrl-C must stop long-running commands (launch, rig-emulator, training) even when the
    # shell started us with SIGINT ignored (a background job inherits SIG_IGN, and Python then
    # installs no KeyboardInterrupt handler)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = args.func(args)
    except IrRobotError as exc:
        print(f"ir-robot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ir-robot: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
