"""The ``ir-robot`` command.

Each area registers its subcommands in a module of this package with a ``register(subparsers)``
function (``sim``, ``perception``, ``control``, ``rig``, ``ros``, ``bench``); handlers import heavy
modules (torch, pybullet, rclpy) only when they run, so ``ir-robot --help`` stays fast and rclpy-free.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from ir_robot.core.errors import IrRobotError

#: modules whose ``register(subparsers)`` adds subcommands, in the order ``--help`` lists them
COMMAND_MODULES = (
    "ir_robot.cli.sim",
    "ir_robot.cli.perception",
    "ir_robot.cli.control",
    "ir_robot.cli.rig",
    "ir_robot.cli.ros",
    "ir_robot.cli.bench",
    "ir_robot.cli.rl",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every area's subcommands."""
    parser = argparse.ArgumentParser(
        prog="ir-robot",
        description="AI-assisted interventional radiology robotics: simulation, perception, control, rig.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _quiet_broken_pipe() -> None:
    """The reader of our output went away (``ir-robot ... | head``): say nothing more.

    Python would flush stdout again at exit and print a BrokenPipeError traceback; point stdout at
    /dev/null so that last flush succeeds.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one ``ir-robot`` subcommand; returns the process exit code."""
    try:
        try:
            return _run(argv)
        finally:
            # flushed here, not at interpreter exit, so a closed pipe is an exception we can catch
            sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given (run folders record it)
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
