"""Run one node of the graph in this process: ``python -m ir_robot.ros.run NAME [--ros-args ...]``.

Every node module's ``main(args=None)`` calls :func:`run_node`: ``rclpy.init``, build the
node (a bad parameter file gives one clear error and exit code 2), spin a
single-threaded executor (a multi-threaded one if the node class sets ``EXECUTOR_THREADS`` > 1),
and on Ctrl-C / SIGTERM / ``rclpy.shutdown`` destroy the node and shut down cleanly.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading


def load_class(path: str):
    """The object named by ``"module:name"`` (a node class, a message class), imported."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def spin_in_background(executor, name: str = "ir_robot-executor") -> threading.Thread:
    """Spin ``executor`` in a daemon thread until it (or its context) is shut down; returns the thread."""

    def spin() -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    thread = threading.Thread(target=spin, name=name, daemon=True)
    thread.start()
    return thread


def run_node(node_cls, args: list[str] | None = None) -> int:
    """Spin one node in this process; ``node_cls.EXECUTOR_THREADS`` > 1 gets a multi-threaded executor."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

    from ir_robot.core.errors import IrRobotError

    rclpy.init(args=args)
    # SIGTERM (the launcher's stop) behaves like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started as a background job (SIGINT inherited as ignored): Ctrl-C / the launcher's stop must still work
        signal.signal(signal.SIGINT, signal.default_int_handler)
    node = None
    code = 0
    try:
        node = node_cls()
        threads = int(getattr(node_cls, "EXECUTOR_THREADS", 1))
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except IrRobotError as exc:
        print(f"{getattr(node_cls, 'NODE_NAME', node_cls.__name__)}: error: {exc}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m ir_robot.ros.run NODE_NAME [--ros-args ...]``: runs that node of the graph; returns the exit code."""
    from ir_robot.ros.graph import node_spec

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m ir_robot.ros.run NODE_NAME [--ros-args ...]", file=sys.stderr)
        return 2
    spec = node_spec(argv[0])
    return run_node(load_class(spec.node_class), [sys.argv[0], *argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
