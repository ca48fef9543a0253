"""``supervisor``: the operating state of the procedure and the services that change it.

State (``/procedure/state``, ``std_msgs/String``, latched with TRANSIENT_LOCAL so late
joiners get it)::

    idle --start--> starting --(sim reset done)--> running --result--> done | failed
                                                   running --abort--> aborting --result--> aborted
    any --/rig/estop--> estop --/procedure/reset--> idle
    done | failed | aborted --start--> starting        (and --reset--> idle)

Services (``std_srvs/Trigger``): ``/procedure/start``, ``/procedure/abort``,
``/procedure/reset``, ``/rig/estop``. A call in the wrong state answers
``success=false`` with the reason and changes nothing. The controller reports the
end of a procedure on ``/procedure/result`` (``std_msgs/String``, JSON with
``outcome`` = success | failed | aborted). On start the supervisor calls the
``reset_service`` (``/sim/reset`` in simulation: a new phantom) and only then
enters ``running``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ir_robot.config import param
from ir_robot.ros import qos
from ir_robot.ros.params import declare_config

STATES = ("idle", "starting", "running", "aborting", "done", "failed", "aborted", "estop")
#: states in which the rig accepts motion commands
MOTION_STATES = ("running", "aborting")
#: states in which a procedure is over (start is allowed again)
FINISHED = ("idle", "done", "failed", "aborted")


@dataclass(frozen=True)
class SupervisorConfig:
    """Parameters of the supervisor: the reset service called on start and the timeouts."""

    reset_service: str = param("/sim/reset", help="Trigger service called on start before running ('' = none)")
    reset_timeout_s: float = param(10.0, range=(0.1, 120.0), unit="s", help="wait this long for the reset service")
    procedure_timeout_s: float = param(
        180.0, range=(1.0, 3600.0), unit="s", help="abort a procedure still running after this long (wall time)"
    )


class ProcedureStateMachine:
    """The supervisor's transitions, without ROS (unit-testable). Methods return (ok, reason)."""

    def __init__(self):
        self.state = "idle"
        self.procedures = 0
        self.last_result: dict = {}

    def start(self) -> tuple[bool, str]:
        """``idle``/finished -> ``starting`` (counts the procedure); refused while one runs or the e-stop is latched."""
        if self.state not in FINISHED:
            why = {"estop": "the e-stop is latched: call /procedure/reset after checking the rig"}.get(
                self.state, f"a procedure is already {self.state}; call /procedure/abort first"
            )
            return False, f"cannot start in state '{self.state}': {why}"
        self.state = "starting"
        self.procedures += 1
        return True, f"starting procedure {self.procedures}"

    def started(self) -> tuple[bool, str]:
        """``starting`` -> ``running`` once the reset is done."""
        if self.state != "starting":
            return False, f"not starting (state '{self.state}')"
        self.state = "running"
        return True, "running"

    def start_failed(self, reason: str) -> tuple[bool, str]:
        """``starting`` -> ``failed`` with ``reason`` (the reset failed); a no-op in any other state."""
        if self.state == "starting":
            self.state = "failed"
            self.last_result = {"outcome": "failed", "reason": reason}
        return True, reason

    def abort(self, reason: str = "operator abort") -> tuple[bool, str]:
        """``starting`` -> ``aborted`` at once, ``running`` -> ``aborting`` (the controller retracts); else refused."""
        if self.state == "starting":
            self.state = "aborted"
            self.last_result = {"outcome": "aborted", "reason": reason}
            return True, "aborted before the procedure began"
        if self.state != "running":
            return False, f"nothing to abort in state '{self.state}' (abort works while starting or running)"
        self.state = "aborting"
        return True, f"aborting: the controller retracts the needle ({reason})"

    def result(self, result: dict) -> tuple[bool, str]:
        """The controller's ``result``: ``running`` -> done | failed, ``aborting`` -> aborted; else ignored."""
        if self.state not in ("running", "aborting"):
            return False, f"result ignored in state '{self.state}'"
        outcome = str(result.get("outcome", "failed"))
        if self.state == "aborting":
            outcome = "aborted"
        self.state = {"success": "done", "aborted": "aborted"}.get(outcome, "failed")
        self.last_result = dict(result, outcome=outcome)
        return True, self.state

    def estop(self) -> tuple[bool, str]:
        """Any state -> ``estop`` (latched until :meth:`reset`)."""
        already = self.state == "estop"
        self.state = "estop"
        return True, "e-stop already latched" if already else "e-stop latched: rig stopped"

    def reset(self) -> tuple[bool, str]:
        """Back to ``idle`` (clears an e-stop); refused while a procedure is starting, running or aborting."""
        if self.state in ("starting", "running", "aborting"):
            return False, f"cannot reset while {self.state}; call /procedure/abort (or /rig/estop) first"
        self.state = "idle"
        return True, "idle"


class SupervisorNode(Node):
    """The procedure's operating state on ``/procedure/state`` and the services that change it (see the module
    docstring).
    """

    NODE_NAME = "supervisor"
    PARAMS = ((SupervisorConfig, ""),)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.params = declare_config(self, SupervisorConfig)
        self.machine = ProcedureStateMachine()
        group = ReentrantCallbackGroup()
        self._state_pub = self.create_publisher(String, "/procedure/state", qos.latched())
        self.create_subscription(String, "/procedure/result", self._on_result, qos.latched(), callback_group=group)
        self.create_service(Trigger, "/procedure/start", self._srv_start, callback_group=group)
        self.create_service(Trigger, "/procedure/abort", self._srv_abort, callback_group=group)
        self.create_service(Trigger, "/procedure/reset", self._srv_reset, callback_group=group)
        self.create_service(Trigger, "/rig/estop", self._srv_estop, callback_group=group)
        self._reset_client = None
        self._reset_name = ""
        self._running_since = None
        self._last_result = ""
        self.create_timer(0.5, self._watch, callback_group=group)
        self._publish()

    # -------------------------------------------------------------- helpers
    @property
    def state(self) -> str:
        """The current procedure state."""
        return self.machine.state

    def _publish(self) -> None:
        self._state_pub.publish(String(data=self.machine.state))

    def _answer(self, response, ok: bool, message: str):
        response.success = bool(ok)
        response.message = message
        if ok:
            self.get_logger().info(message)
        else:
            self.get_logger().warning(message)
        return response

    def _client(self):
        name = self.params.config.reset_service
        if not name:
            return None
        if self._reset_client is None or self._reset_name != name:
            self._reset_client = self.create_client(Trigger, name)
            self._reset_name = name
        return self._reset_client

    # -------------------------------------------------------------- services
    def _srv_start(self, request, response):
        ok, msg = self.machine.start()
        if not ok:
            return self._answer(response, ok, msg)
        self._publish()
        client = self._client()
        if client is None:
            self._enter_running()
            return self._answer(response, True, msg)
        if not client.wait_for_service(timeout_sec=self.params.config.reset_timeout_s):
            self.machine.start_failed(f"reset service {self._reset_name} is not available")
            self._publish()
            return self._answer(
                response,
                False,
                f"cannot start: reset service {self._reset_name} is not available "
                f"(is the sim node running? set parameter reset_service '' if none)",
            )
        future = client.call_async(Trigger.Request())
        future.add_done_callback(self._reset_done)
        return self._answer(response, True, msg)

    def _reset_done(self, future) -> None:
        if self.machine.state != "starting":
            return
        try:
            res = future.result()
        except Exception as exc:  # the service died
            res = None
            why = str(exc)
        else:
            why = res.message if res is not None else "no answer"
        if res is None or not res.success:
            self.machine.start_failed(f"reset failed: {why}")
            self.get_logger().error(f"procedure {self.machine.procedures}: reset failed: {why}")
            self._publish()
            return
        self.get_logger().info(f"procedure {self.machine.procedures}: {res.message}")
        self._enter_running()

    def _enter_running(self) -> None:
        self.machine.started()
        self._running_since = self.get_clock().now()
        self._publish()

    def _srv_abort(self, request, response):
        ok, msg = self.machine.abort()
        if ok:
            self._publish()
        return self._answer(response, ok, msg)

    def _srv_reset(self, request, response):
        ok, msg = self.machine.reset()
        if ok:
            self._publish()
        return self._answer(response, ok, msg)

    def _srv_estop(self, request, response):
        ok, msg = self.machine.estop()
        self._publish()
        return self._answer(response, ok, msg)

    # -------------------------------------------------------------- inputs
    def _on_result(self, msg: String) -> None:
        if msg.data == self._last_result:  # a latched result re-delivered
            return
        try:
            result = json.loads(msg.data)
            if not isinstance(result, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.get_logger().warning(f"/procedure/result is not a JSON object ({exc}); ignored")
            return
        ok, state = self.machine.result(result)
        if ok:
            self._last_result = msg.data
            self.get_logger().info(f"procedure {self.machine.procedures}: {state} ({result.get('reason', '')})")
            self._publish()

    def _watch(self) -> None:
        if self.machine.state == "running" and self._running_since is not None:
            age = (self.get_clock().now() - self._running_since).nanoseconds * 1e-9
            if age > self.params.config.procedure_timeout_s:
                ok, msg = self.machine.abort(f"procedure timeout after {age:.0f} s")
                if ok:
                    self.get_logger().error(msg)
                    self._publish()


def main(args=None):
    """Entry point of ``ir_robot_supervisor``: spins the node until shutdown; returns the exit code."""
    from ir_robot.ros.run import run_node

    return run_node(SupervisorNode, args)
