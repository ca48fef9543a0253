"""The ROS face of a rig, shared by the ``sim`` node and the ``rig_driver`` node.

Every backend sits behind :class:`ir_robot.control.safety.SafeRig` (limits, force
ceiling, watchdog, e-stop), once. In: ``/rig/command`` (``JointState`` velocities, SI
units), ``/procedure/state`` (e-stop and the states in which motion is allowed),
``/rig/insertion_target`` (``std_msgs/Float64``, metres along the needle, NaN = none:
the controller's planned insertion, from which the safety layer allows
``max_depth_beyond_target_mm`` more). Out: ``/rig/joint_states``, ``/needle/force``,
``/rig/status`` (``std_msgs/String``, latched: ``ok`` or the latched safety trip),
``/rig/stats`` (``std_msgs/String`` JSON at 1 Hz: command counters, command age percentiles).

Joint limits: like ros2_control's joint-limit saturation, a command's rates are
saturated so that, from where the rig is *now*, no joint (and not the pivot, with the
safety workspace) crosses its limit within the hold - the controller computed it from a
state a few ms old, aiming at the limit, and the rig has moved since. Everything else
(velocity limits, depth past the target, force, watchdog, e-stop, a rig found outside
its limits) is the safety layer's, which trips and stops the rig. A malformed command
(unknown joint, NaN, names without values) is logged and dropped; a command outside the
procedure's motion states is dropped with a warning; a command the safety layer
refuses trips it (the rig stops, the reason is published on ``/rig/status``). None of
these raise into the executor.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import WrenchStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String

from ir_robot.config import param
from ir_robot.control.limits import within_workspace
from ir_robot.control.safety import SafeRig, SafetyConfig
from ir_robot.core.errors import IrRobotError, SafetyTrip
from ir_robot.core.types import JointVector, RigCommand
from ir_robot.ros import qos
from ir_robot.ros.conversions import MM, msg_to_command, rig_state_to_msgs, stamp_to_ns
from ir_robot.ros.supervisor import MOTION_STATES
from ir_robot.ros.trace import LatencyTrace


@dataclass(frozen=True)
class RigDriverConfig:
    """Parameters of the rig's ROS face: command hold, whether commands need a running procedure, safety limits."""

    command_hold_s: float = param(
        0.1, range=(0.01, 2.0), unit="s", help="each /rig/command rate is held this long unless a new one replaces it"
    )
    require_running: bool = param(True, help="accept /rig/command only while /procedure/state is running/aborting")
    safety: SafetyConfig = dataclasses.field(default_factory=SafetyConfig)


def rig_config_base(safety_file: str) -> RigDriverConfig:
    """RigDriverConfig whose safety limits come from the venipuncture YAML the CLI uses (its ``safety``
    section; '' = SafetyConfig defaults); node parameters ``rig.*`` then override single values.
    """
    if not safety_file:
        return RigDriverConfig()
    from ir_robot.ros.params import venipuncture_config

    return RigDriverConfig(safety=venipuncture_config(safety_file).safety)


class RigInterface:
    """Wires ``backend`` (wrapped in a SafeRig) to ``node``'s topics. Thread-safe; call ``publish_state``."""

    def __init__(self, node, backend, config: RigDriverConfig, *, callback_group=None, lock=None):
        self.node = node
        self.config = config
        self.lock = lock if lock is not None else threading.RLock()
        self.rig = SafeRig(backend, config.safety)
        self.procedure_state = "idle"
        self.counts = {"received": 0, "executed": 0, "malformed": 0, "not_running": 0, "refused": 0, "saturated": 0}
        #: (receipt - header stamp) of executed commands, seconds (the benchmark reads it)
        self.command_latency_s: deque = deque(maxlen=100_000)
        self._last_status = ""
        self._last_state = None
        self.trace = LatencyTrace("rig", directory="")  # the node sets its own (see ir_robot.ros.trace)
        self._js_pub = node.create_publisher(JointState, "/rig/joint_states", qos.state())
        self._force_pub = node.create_publisher(WrenchStamped, "/needle/force", qos.state())
        self._status_pub = node.create_publisher(String, "/rig/status", qos.latched())
        self._stats_pub = node.create_publisher(String, "/rig/stats", qos.command())
        node.create_timer(1.0, self._publish_stats, callback_group=callback_group)
        node.create_subscription(
            JointState, "/rig/command", self._on_command, qos.rig_command(), callback_group=callback_group
        )
        node.create_subscription(
            String, "/procedure/state", self._on_procedure_state, qos.latched(), callback_group=callback_group
        )
        node.create_subscription(
            Float64, "/rig/insertion_target", self._on_target, qos.latched(), callback_group=callback_group
        )
        self._publish_status("ok")

    # ----------------------------------------------------------------- backend swap (sim reset)
    def replace_backend(self, backend) -> None:
        """Puts a new backend (the sim's after a reset) behind a fresh safety layer, with no trip latched."""
        with self.lock:
            self.rig = SafeRig(backend, self.config.safety)
            self._last_state = None
        self._publish_status("ok")

    def set_config(self, config: RigDriverConfig) -> None:
        """Applies changed parameters; new safety limits rebuild the safety layer, keeping a latched trip."""
        with self.lock:
            self.config = config
            if config.safety != self.rig.config:
                trip = self.rig.trip
                backend = self.rig.rig
                self.rig = SafeRig(backend, config.safety)
                self.rig.trip = trip

    # ----------------------------------------------------------------- inputs
    def _on_command(self, msg: JointState) -> None:
        now_ns = self.node.get_clock().now().nanoseconds
        log = self.node.get_logger()
        self.counts["received"] += 1
        if self.trace.enabled:
            self.trace(stamp_to_ns(msg.header.stamp), "rig_in", now_ns)
        if self.config.require_running and self.procedure_state not in MOTION_STATES:
            self.counts["not_running"] += 1
            log.warning(
                f"/rig/command dropped: procedure state is '{self.procedure_state}', motion is allowed only "
                f"in {list(MOTION_STATES)}",
                throttle_duration_sec=2.0,
            )
            return
        try:
            cmd = msg_to_command(msg, self.config.command_hold_s)
        except IrRobotError as exc:
            self.counts["malformed"] += 1
            log.error(f"/rig/command dropped: {exc}", throttle_duration_sec=1.0)
            return
        with self.lock:
            try:
                self.rig.command(self._saturate(cmd))
            except SafetyTrip as exc:
                self.counts["refused"] += 1
                log.error(f"/rig/command refused, rig stopped: {exc}", throttle_duration_sec=1.0)
                self._publish_status(str(self.rig.trip or exc))
                return
        self.counts["executed"] += 1
        stamp_ns = stamp_to_ns(msg.header.stamp)
        if stamp_ns > 0:
            self.command_latency_s.append((now_ns - stamp_ns) * 1e-9)

    def _saturate(self, cmd: RigCommand) -> RigCommand:
        """Saturate rates so that no joint (nor the pivot, with the workspace) crosses its limit within the
        command's hold, from where the rig is now (a rig past a limit is the safety layer's: it trips on the
        state read; a hair past, as a position servo settles, counts as at the limit).
        """
        st = self._last_state
        v = cmd.velocity.as_array()
        horizon = min(cmd.duration_s, self.config.safety.lookahead_s)
        if st is None or horizon <= 0 or not np.any(v) or not np.all(np.isfinite(v)):
            return cmd
        lo, hi = within_workspace(*(j.as_array() for j in self.rig.limits()), self.config.safety)
        q = np.clip(st.joints.as_array(), lo, hi)
        sat = np.clip(v, (lo - q) / horizon, (hi - q) / horizon)
        if np.array_equal(sat, v):
            return cmd
        self.counts["saturated"] += 1
        return RigCommand(JointVector.from_array(sat), cmd.duration_s)

    def _on_procedure_state(self, msg: String) -> None:
        state = msg.data
        previous, self.procedure_state = self.procedure_state, state
        with self.lock:
            if state == "estop":
                self.rig.estop("operator e-stop (/rig/estop)")
                self._publish_status(str(self.rig.trip))
            elif state in ("idle", "starting") and previous != state:
                # an explicit reset or a new procedure: clear a latched trip, forget the old plan
                self.rig.reset()
                self.rig.set_insertion_target(None)
                self._publish_status("ok")
            if state not in MOTION_STATES and not self.rig.tripped:
                self.rig.command(RigCommand.stop())

    def _on_target(self, msg: Float64) -> None:
        value = float(msg.data)
        with self.lock:
            self.rig.set_insertion_target(value / MM if math.isfinite(value) else None)

    # ----------------------------------------------------------------- outputs
    def _publish_status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self._status_pub.publish(String(data=text))

    def read_state(self):
        """The rig state through the safety layer; a new trip is logged and published on ``/rig/status``."""
        with self.lock:
            state = self.rig.read_state()
            self._last_state = state
            tripped = self.rig.trip
        if tripped is not None and self._last_status != str(tripped):
            self.node.get_logger().error(f"safety trip, rig stopped: {tripped}")
            self._publish_status(str(tripped))
        return state

    def stats(self) -> dict:
        """Command counters and receipt latency (receipt - header stamp) percentiles, ms."""
        lat = np.asarray(self.command_latency_s, dtype=float) * 1e3
        out: dict[str, float] = dict(self.counts)
        if lat.size:
            out.update(
                latency_ms_p50=round(float(np.percentile(lat, 50)), 2),
                latency_ms_p99=round(float(np.percentile(lat, 99)), 2),
            )
        return out

    def _publish_stats(self) -> None:
        self._stats_pub.publish(String(data=json.dumps(self.stats())))

    def publish_state(self, stamp, state=None) -> None:
        """Publishes ``state`` (default: read now) on ``/rig/joint_states`` and ``/needle/force`` stamped ``stamp``."""
        state = state or self.read_state()
        js, wrench = rig_state_to_msgs(state, stamp)
        self._js_pub.publish(js)
        self._force_pub.publish(wrench)
