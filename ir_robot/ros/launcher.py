"""The pip launcher: run a graph from :mod:`ir_robot.ros.graph` without ``ros2 launch``.

``ir-robot launch sim [--duration S] [--record FILE.mcap] [--params FILE] [--procedures N] [--processes]``

* in-process (default): every node of the graph in this process on one executor
  (:class:`GraphRunner`; also what the tests use);
* ``--processes``: one ``python -m ir_robot.ros.run NODE`` process per node
  (:class:`ProcessRunner`), the way ``ros2 launch`` runs them.

Parameters: the graph's ``config/ros/<graph>.yaml``, then every ``--params`` file (later
wins). ``--record`` adds the ``recorder`` node. ``--procedures N`` calls
``/procedure/start`` N times back to back, prints one JSON summary line per
procedure (from the simulator's ``/sim/summary``) and exits. Ctrl-C (or the end
of ``--duration``) stops every node cleanly and closes the recording.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ir_robot.core.errors import ConfigError, IrRobotError
from ir_robot.ros.graph import RECORDER, NodeSpec, graph, params_files, ros_arguments
from ir_robot.ros.run import spin_in_background

if TYPE_CHECKING:
    from rclpy.client import Client
    from rclpy.context import Context
    from rclpy.executors import Executor


def _node_args(spec: NodeSpec, graph_name: str, params: Sequence[str | Path], record: str | Path | None) -> list[str]:
    files = [f for f in params_files(graph_name) if f.is_file()] + list(params)
    extra = ["-p", f"path:={record}"] if spec is RECORDER and record else []
    return ros_arguments(spec, files, extra)


def _select(graph_name: str, only: list[str] | None, record) -> list[NodeSpec]:
    specs = [s for s in graph(graph_name) if only is None or s.name in only]
    if only is not None and len(specs) != len(set(only)):
        raise ConfigError(f"graph {graph_name!r} has no node(s) {sorted(set(only) - {s.name for s in specs})}")
    return specs + ([RECORDER] if record else [])


def _check_params(params: list[str | Path], specs: list[NodeSpec]) -> list[str]:
    """Every params file must exist and hold valid values for the nodes it names (checked before any start)."""
    from ir_robot.config import read_yaml
    from ir_robot.ros.params import validate_section
    from ir_robot.ros.run import load_class

    out = []
    by_name = {s.name: s for s in specs}
    for p in params:
        data = read_yaml(p)
        for name, section in data.items():
            spec = by_name.get(str(name).lstrip("/"))
            if spec is None or not isinstance(section, dict):
                continue
            validate_section(load_class(spec.node_class).PARAMS, section.get("ros__parameters", {}), f"{p}: {name}")
        out.append(str(p))
    return out


class GraphRunner:
    """All nodes of a graph in one process on one executor, spinning in a background thread.

    ``threads=1`` (default) uses rclpy's SingleThreadedExecutor: with the GIL, rclpy's
    multi-threaded executor costs ~50 % more CPU for the same graph and gains nothing
    on a 2-core machine; a long computation (planning) then pauses the whole graph,
    simulator included, which keeps simulated time consistent.

    ``with GraphRunner("sim", params=[...], record="s.mcap", domain_id=123) as g: g.nodes["sim"]...``
    Uses its own rclpy context, so several runners (and tests) never share global state.
    """

    def __init__(
        self,
        graph_name: str = "sim",
        *,
        params: Sequence[str | Path] = (),
        record: str | Path | None = None,
        domain_id: int | None = None,
        threads: int = 1,
        only: list[str] | None = None,
    ):
        self.graph = graph_name
        self.specs = _select(graph_name, only, record)
        self.params = _check_params(list(params), self.specs)
        self.record = record
        self.domain_id = domain_id
        self.threads = threads
        self.nodes: dict = {}
        self.context: Context | None = None
        self.executor: Executor | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> GraphRunner:
        """Creates the context, builds every node (stopping what was built if one fails) and spins them in a thread."""
        import rclpy
        from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

        from ir_robot.ros.run import load_class

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=None if self.domain_id is None else int(self.domain_id))
        try:
            for spec in self.specs:
                cls = load_class(spec.node_class)
                self.nodes[spec.name] = cls(
                    context=self.context,
                    cli_args=_node_args(spec, self.graph, self.params, self.record),
                    use_global_arguments=False,
                )
        except BaseException:
            self.stop()
            raise
        self.executor = (
            SingleThreadedExecutor(context=self.context)
            if self.threads <= 1
            else MultiThreadedExecutor(num_threads=self.threads, context=self.context)
        )
        for node in self.nodes.values():
            self.executor.add_node(node)
        self._thread = spin_in_background(self.executor, "ir_robot-graph")
        return self

    def add_node(self, node) -> None:
        """Spin another node (e.g. a test's client) on the same executor."""
        assert self.executor is not None, "start() the graph first"
        self.executor.add_node(node)

    @property
    def ok(self) -> bool:
        """True while the context is up and the executor thread spins."""
        return self.context is not None and self.context.ok() and self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Shuts the executor down, lets the recorder drain, closes and destroys the nodes (in reverse), the context."""
        import rclpy

        if self.executor is not None:
            self.executor.shutdown(timeout_sec=5.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._drain_recorder()
        for node in reversed(list(self.nodes.values())):
            close = getattr(node, "close", None)
            try:
                if close is not None:
                    close()
            finally:
                node.destroy_node()
        self.nodes.clear()
        if self.context is not None:
            rclpy.try_shutdown(context=self.context)
        self.executor = self._thread = None

    def _drain_recorder(self, seconds: float = 0.5) -> None:
        """Let the recorder take what was published just before the stop (it shares the executor)."""
        from rclpy.executors import SingleThreadedExecutor

        rec = self.nodes.get(RECORDER.name)
        if rec is None or self.context is None or not self.context.ok():
            return
        ex = SingleThreadedExecutor(context=self.context)
        ex.add_node(rec)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.05)
        ex.shutdown()

    def __enter__(self) -> GraphRunner:
        return self.start()

    def __exit__(self, *exc) -> Literal[False]:
        self.stop()
        return False


class ProcessRunner:
    """One process per node (``python -m ir_robot.ros.run NAME --ros-args ...``), stopped with SIGINT."""

    def __init__(
        self,
        graph_name: str = "sim",
        *,
        params: Sequence[str | Path] = (),
        record: str | Path | None = None,
        domain_id: int | None = None,
        env: dict | None = None,
        only: list[str] | None = None,
    ):
        self.graph = graph_name
        self.specs = _select(graph_name, only, record)
        self.params = _check_params(list(params), self.specs)
        self.record = record
        self.env = dict(os.environ if env is None else env)
        if domain_id is not None:
            self.env["ROS_DOMAIN_ID"] = str(int(domain_id))
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self) -> ProcessRunner:
        """Starts one ``python -m ir_robot.ros.run`` process per node (under ``nice`` where the node asks for it)."""
        for spec in self.specs:
            cmd = [
                sys.executable,
                "-m",
                "ir_robot.ros.run",
                spec.name,
                *_node_args(spec, self.graph, self.params, self.record),
            ]
            if spec.nice > 0:
                cmd = ["nice", "-n", str(spec.nice), *cmd]
            self.procs[spec.name] = subprocess.Popen(cmd, env=self.env)
        return self

    @property
    def ok(self) -> bool:
        """True while every node process is alive."""
        return all(p.poll() is None for p in self.procs.values())

    def failed(self) -> dict[str, int]:
        """Node name -> exit code of every process that has exited with an error."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None and p.returncode != 0}

    def stop(self, timeout_s: float = 15.0) -> dict[str, int]:
        """SIGINT to every live process, then ``timeout_s`` in all to exit (stragglers are killed); the exit codes."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        codes = {}
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        return codes

    def __enter__(self) -> ProcessRunner:
        return self.start()

    def __exit__(self, *exc) -> Literal[False]:
        self.stop()
        return False


# ---------------------------------------------------------------------------- procedures
class ProcedureClient:
    """A small node that starts procedures and waits for their summaries (launcher, tests, benchmark)."""

    def __init__(self, context, name: str = "procedure_client"):
        from rclpy.node import Node
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from ir_robot.ros import qos

        self.node = Node(name, context=context, use_global_arguments=False)
        self.state = ""
        self.states: list[str] = []
        self.summaries: list[dict] = []
        self._cond = threading.Condition()
        self._trigger = Trigger
        self.node.create_subscription(String, "/procedure/state", self._on_state, qos.latched())
        self.node.create_subscription(String, "/sim/summary", self._on_summary, qos.latched())
        self._clients: dict[str, Client] = {
            n: self.node.create_client(Trigger, f"/procedure/{n}") for n in ("start", "abort", "reset")
        }
        self._clients["estop"] = self.node.create_client(Trigger, "/rig/estop")

    def _on_state(self, msg) -> None:
        with self._cond:
            self.state = msg.data
            self.states.append(msg.data)
            self._cond.notify_all()

    def _on_summary(self, msg) -> None:
        try:
            data = json.loads(msg.data)
        except ValueError:
            return
        with self._cond:
            if not self.summaries or self.summaries[-1] != data:
                self.summaries.append(data)
            self._cond.notify_all()

    def call(self, name: str, timeout_s: float = 10.0):
        """Call a Trigger service (start | abort | reset | estop); returns the response (needs a spinning executor)."""
        client = self._clients[name]
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise IrRobotError(f"service {client.srv_name} is not available after {timeout_s} s; is the graph up?")
        future = client.call_async(self._trigger.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise IrRobotError(f"service {client.srv_name} did not answer in {timeout_s} s")
            time.sleep(0.005)
        return future.result()

    def wait_state(self, states, timeout_s: float) -> str:
        """Waits up to ``timeout_s`` for the procedure state to be one of ``states``; returns the state then."""
        states = (states,) if isinstance(states, str) else tuple(states)
        with self._cond:
            self._cond.wait_for(lambda: self.state in states, timeout=timeout_s)
            return self.state

    def wait_summary(self, count: int, timeout_s: float) -> dict | None:
        """The ``count``-th summary seen (waiting up to ``timeout_s`` for it), or None if it has not come."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.summaries) >= count, timeout=timeout_s)
            return self.summaries[count - 1] if len(self.summaries) >= count else None

    def run_procedure(self, timeout_s: float = 300.0) -> dict:
        """Start one procedure and wait for its summary. Raises IrRobotError if it cannot start or times out."""
        before = len(self.summaries)
        res = self.call("start")
        if not res.success:
            raise IrRobotError(f"/procedure/start refused: {res.message}")
        summary = self.wait_summary(before + 1, timeout_s)
        if summary is None:
            raise IrRobotError(f"no /sim/summary within {timeout_s} s (procedure state '{self.state}')")
        return summary

    def destroy(self) -> None:
        """Destroys the client's node (its context is the caller's)."""
        self.node.destroy_node()


def launch(
    graph_name: str = "sim",
    *,
    duration_s: float | None = None,
    record: str | None = None,
    params: Sequence[str | Path] = (),
    procedures: int = 0,
    processes: bool = False,
    domain_id: int | None = None,
    procedure_timeout_s: float = 300.0,
    out=sys.stdout,
) -> int:
    """Run a graph until Ctrl-C, ``duration_s`` or ``procedures`` summaries. Returns an exit code."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    runner = (ProcessRunner if processes else GraphRunner)(
        graph_name, params=params, record=record, domain_id=domain_id
    )
    _interrupt_on_sigterm()
    client_ctx = client_ex = client_thread = None
    client = None
    code = 0
    t0 = time.monotonic()
    try:
        runner.start()
        if isinstance(runner, ProcessRunner):  # processes
            client_ctx = rclpy.Context()
            rclpy.init(context=client_ctx, domain_id=None if domain_id is None else int(domain_id))
            client = ProcedureClient(client_ctx, "ir_robot_launcher")
            client_ex = SingleThreadedExecutor(context=client_ctx)
            client_ex.add_node(client.node)
            client_thread = spin_in_background(client_ex, "ir_robot-launcher")
        else:
            client = ProcedureClient(runner.context, "ir_robot_launcher")
            runner.add_node(client.node)
        print(
            f"ir-robot launch: graph '{graph_name}' up ({'processes' if processes else 'in-process'}, "
            f"{len(runner.specs)} nodes){f', recording to {record}' if record else ''}; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        done = 0
        while runner.ok:
            if duration_s is not None and time.monotonic() - t0 >= duration_s:
                break
            if procedures and done < procedures:
                summary = client.run_procedure(timeout_s=procedure_timeout_s)
                print(json.dumps(summary), file=out, flush=True)
                done += 1
                continue
            if procedures and done >= procedures:
                break
            time.sleep(0.05)
        if isinstance(runner, ProcessRunner) and runner.failed():
            print(f"ir-robot launch: node(s) exited with errors: {runner.failed()}", file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        print("ir-robot launch: Ctrl-C, stopping", file=sys.stderr)
        code = 130
    finally:
        if client_ex is not None:
            client_ex.shutdown(timeout_sec=5.0)
            if client_thread is not None:
                client_thread.join(timeout=5.0)
        if client is not None and processes:
            client.destroy()
        runner.stop()
        if client_ctx is not None:
            rclpy.try_shutdown(context=client_ctx)
    if record:
        print(f"ir-robot launch: recording closed: {record}", file=sys.stderr)
    return code


def _interrupt_on_sigterm() -> None:
    """SIGTERM (``kill``, ``timeout``, systemd) stops the graph like Ctrl-C: cleanly, recording closed."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
