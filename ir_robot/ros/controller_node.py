"""``controller``: the venipuncture state machine (:class:`~ir_robot.control.venipuncture.VenipunctureController`)
as a ROS node.

Inputs: ``/rig/joint_states`` + ``/needle/force`` + ``/rig/status`` (the rig state),
``/us/image_raw`` + ``/us/result`` + ``/us/camera_info`` and the same for NIR (the
perception nodes' results, JSON: the controller uses their analysis as it is, so it runs
exactly the code of ``ir-robot demo`` with the same predictor; the image is still needed for
blank-frame detection and the tissue-layer profile), ``/procedure/state``.

A fresh controller starts when the procedure state becomes ``running``; it is
computed every ``control.dt_s`` and, when it asks for an ultrasound frame, at once
when the result of a frame taken after the request arrives (image-to-command latency;
after ``node.frame_wait_s`` without one it runs without, i.e. a drop-out). Each command is computed to be safe for
``node.command_hold_s``, the time the rig holds it (the rig's ``rig.command_hold_s``);
a computation that takes longer (planning) first sends a stop, so the rig waits
stopped instead of tripping its command watchdog. Outputs: ``/rig/command`` (``JointState``
velocities; ``header.stamp`` = the stamp of the image the command was computed from,
else the time it was computed), ``/rig/insertion_target`` (``Float64``, m, latched: the
safety layer's depth reference), ``/plan/target`` (``PointStamped``, world, latched),
``/plan/path`` (``PoseArray``: pivot and target with the needle along +x, latched),
``/controller/phase`` (``String``, latched, last 20) and, at the end, ``/procedure/result``
(``String`` JSON: outcome, reason, attempts, confirmed, confirm time, duration,
peak force; latched), ``/controller/stats`` (JSON at 1 Hz: counters, step time). ``/procedure/abort``
makes it retract and fail; an e-stop ends it where it is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped, PoseArray, WrenchStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState, RegionOfInterest
from std_msgs.msg import Float64, String

from ir_robot.config import param
from ir_robot.control.config import VenipunctureConfig
from ir_robot.control.limits import planning_limits
from ir_robot.control.venipuncture import VenipunctureController
from ir_robot.core.errors import IrRobotError, PerceptionError
from ir_robot.core.results import UsResult, result_from_json
from ir_robot.core.types import (
    ImageFrame,
    JointVector,
    Observation,
    RigCommand,
    RigState,
    needle_direction,
)
from ir_robot.perception.transforms import roi_box
from ir_robot.ros import qos
from ir_robot.ros.conversions import (
    MM,
    WORLD_FRAME,
    command_to_msg,
    msg_to_image,
    msgs_to_rig_state,
    ns_to_stamp,
    point_msg,
    pose_msg,
    spacing_from_info,
    stamp_to_ns,
)
from ir_robot.ros.params import declare_config, venipuncture_config
from ir_robot.ros.trace import LatencyTrace
from ir_robot.urdf import joint_limit_vectors


@dataclass(frozen=True)
class ControllerNodeConfig:
    """Parameters of the controller node beyond the VenipunctureConfig: config file, limits source, NIR and timing."""

    config_file: str = param(
        "venipuncture.yaml",
        help="VenipunctureConfig YAML (under config/ unless a path) giving the defaults the "
        "parameters below override; '' = the dataclass defaults",
    )
    urdf: str = param("ir_rig.urdf", help="robot description under urdf/ giving joint and velocity limits")
    rig_config: str = param(
        "",
        help="'' = limits from `urdf`; a rig YAML ('default' = config/rig.yaml): the GRBL "
        "rig's joint and speed limits, its fixed joints held (the benchtop rig graph)",
    )
    use_nir: bool = param(True, help="use the NIR camera in the scan")
    command_hold_s: float = param(
        0.1,
        range=(0.01, 2.0),
        unit="s",
        help="how long the rig holds each command: must equal the rig's rig.command_hold_s "
        "(the controller keeps every command inside the limits for this long)",
    )
    frame_wait_s: float = param(
        0.25,
        range=(0.0, 5.0),
        unit="s",
        help="when the controller asks for an ultrasound frame, wait this long for one taken "
        "after the request before computing without it (a drop-out)",
    )
    max_time_s: float = param(
        120.0, range=(1.0, 3600.0), unit="s", help="abort (retract) a procedure running longer than this"
    )


#: a standing /us/roi is re-sent this often (us_perception's roi_timeout_s is 1 s by default)
ROI_REFRESH_S = 0.25


class ResultPerception:
    """The perception the controller is given: a perception node did the work; the frame carries its
    result (from ``/<m>/result``) in ``meta['result']``.

    The region of interest the controller asks for with a frame is kept in :attr:`roi_box`
    (``(r0, c0, r1, c1)`` or None); the node sends it on ``/us/roi`` for the next frames.
    """

    def __init__(self, modality: str):
        self.modality = modality
        self.roi_box: tuple[int, int, int, int] | None = None

    def predict(self, frame: ImageFrame, spacing_mm=None, *, roi=None):
        """The result the perception node sent with ``frame``; the requested ``roi`` is kept in :attr:`roi_box` for
        the node to send on ``/us/roi``. PerceptionError if the frame has no result.
        """
        self.roi_box = roi_box(roi[:2], roi[2], frame.shape) if roi is not None else None
        result = frame.meta.get("result") if isinstance(frame.meta, dict) else None
        if result is None:
            raise PerceptionError(
                f"{self.modality} frame at {frame.stamp_s:.3f} s has no result from the perception node"
            )
        return result


class _Stream:
    """Keeps one modality's recent images (by stamp, to pair with results) and the camera's pixel spacing."""

    def __init__(self):
        self.images: OrderedDict[int, np.ndarray] = OrderedDict()
        self.spacing: tuple[float, float] | None = None

    def add_image(self, key: int, image: np.ndarray) -> None:
        self.images[key] = image
        while len(self.images) > 10:
            self.images.popitem(last=False)


class _KeepAlive:
    """Calls ``on_late`` once when a compute runs longer than ``after_s`` (a thread, not an executor timer: the
    node spins on a single-threaded executor, which a long compute blocks; an idle thread costs no wake-ups).
    """

    def __init__(self, after_s: float, on_late):
        self.after_s = after_s
        self.on_late = on_late
        self._cond = threading.Condition()
        self._running = 0  # id of the compute in progress (0: none)
        self._count = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="ir_robot-keepalive", daemon=True)
        self._thread.start()

    def begin(self) -> None:
        with self._cond:
            self._count += 1
            self._running = self._count
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self._running = 0
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._running or self._closed)
                if self._closed:
                    return
                which = self._running

                def over(which: int = which) -> bool:
                    """True once compute ``which`` has ended (or the keep-alive is closed)."""
                    return self._running != which or self._closed

                late = not self._cond.wait_for(over, timeout=self.after_s)
            if late:
                self.on_late()
                with self._cond:
                    self._cond.wait_for(over)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)


def joints_at(history, t_s: float, max_extrapolation_s: float = 0.1) -> JointVector | None:
    """Rig joints at ``t_s`` from ``history`` (``(stamp_s, joints, velocity)``, oldest first): interpolated
    between the states around ``t_s``; after the last one, extrapolated with its velocity (at most
    ``max_extrapolation_s``); before the first, the first; None without any. The controller places an
    ultrasound frame at the probe pose of its stamp: a rig that reports its position a poll period late
    (GRBL) would otherwise put the frame where the stage was then, and a moving probe would see a still
    target move.
    """
    after = None
    for stamp, joints, velocity in reversed(history):
        if stamp <= t_s:
            if after is None:
                dt = min(t_s - stamp, max_extrapolation_s)
                return JointVector.from_array(joints.as_array() + velocity.as_array() * dt)
            w = (t_s - stamp) / (after[0] - stamp)
            return JointVector.from_array((1 - w) * joints.as_array() + w * after[1].as_array())
        after = (stamp, joints)
    return None if after is None else after[1]


class ControllerNode(Node):
    """The venipuncture controller as a ROS node (see the module docstring for its topics and timing)."""

    NODE_NAME = "controller"
    PARAMS = ((VenipunctureConfig, ""), (ControllerNodeConfig, "node."))

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        from ir_robot.paths import data_path

        self.params = declare_config(self, ControllerNodeConfig, prefix="node", read_only=True)
        self.vp_params = declare_config(
            self, VenipunctureConfig, read_only=True, base=venipuncture_config(self.params.config.config_file)
        )
        if self.params.config.rig_config:
            from ir_robot.devices.config import load_rig_config

            rig = load_rig_config(None if self.params.config.rig_config == "default" else self.params.config.rig_config)
            (lo, hi), vmax = rig.joint_limits(), rig.joint_speed_limits()
        else:
            lo, hi, vmax = joint_limit_vectors(data_path("urdf", self.params.config.urdf))
        self.lower, self.upper = planning_limits(lo, hi, self.vp_params.config.safety)
        self.vmax = JointVector.from_array(vmax.as_array() * self.vp_params.config.safety.velocity_scale)
        self.controller = None
        self.procedure_state = "idle"
        self._running_since_ns = 0
        self._reported = True
        self._phase = ""
        self._depth = 0.0
        self._plan = None
        self._joints: deque = deque(maxlen=400)  # (stamp_s, JointVector, velocity JointVector)
        self._state: RigState | None = None  # the last joint state
        self._state_stamp = None
        self._force_n = 0.0
        self._rig_status = "ok"
        self._streams = {"us": _Stream(), "nir": _Stream()}
        self._pending_nir: ImageFrame | None = None
        self._us_request_ns: int | None = None
        self._last_compute = 0.0
        self.counts = {"commands": 0, "from_images": 0, "procedures": 0}
        self.step_ms: deque = deque(maxlen=10_000)  # wall time of image-triggered steps (result in -> command out)
        self.trace = LatencyTrace(self.NODE_NAME)
        group = MutuallyExclusiveCallbackGroup()  # the controller is not thread-safe: one callback at a time
        sensor, newest = qos.sensor(), qos.sensor()
        newest.depth = 1
        self.create_subscription(JointState, "/rig/joint_states", self._on_joints, qos.state(), callback_group=group)
        self.create_subscription(WrenchStamped, "/needle/force", self._on_force, qos.state(), callback_group=group)
        self.create_subscription(String, "/rig/status", self._on_status, qos.latched(), callback_group=group)
        self.create_subscription(
            String, "/procedure/state", self._on_procedure_state, qos.latched(), callback_group=group
        )
        for m in ("us", "nir"):
            self.create_subscription(
                CameraInfo, f"/{m}/camera_info", lambda msg, m=m: self._on_info(m, msg), sensor, callback_group=group
            )
            self.create_subscription(
                Image, f"/{m}/image_raw", lambda msg, m=m: self._on_image(m, msg), sensor, callback_group=group
            )
            self.create_subscription(
                String, f"/{m}/result", lambda msg, m=m: self._on_result(m, msg), newest, callback_group=group
            )
        self._cmd_pub = self.create_publisher(JointState, "/rig/command", qos.rig_command())
        self._depth_pub = self.create_publisher(Float64, "/rig/insertion_target", qos.latched())
        self._target_pub = self.create_publisher(PointStamped, "/plan/target", qos.latched())
        self._path_pub = self.create_publisher(PoseArray, "/plan/path", qos.latched())
        self._phase_pub = self.create_publisher(String, "/controller/phase", qos.events())
        self._result_pub = self.create_publisher(String, "/procedure/result", qos.latched())
        self._stats_pub = self.create_publisher(String, "/controller/stats", qos.command())
        self._roi_pub = self.create_publisher(RegionOfInterest, "/us/roi", qos.command())
        self._roi_sent: tuple | None = None  # the last /us/roi box sent (None: whole frames) and when
        self._roi_sent_t = -math.inf
        self._dt = self.vp_params.config.control.dt_s
        self.create_timer(self._dt, self._on_timer, callback_group=group)
        self._pub_lock = threading.Lock()
        self._keep_alive = _KeepAlive(0.75 * self.params.config.command_hold_s, self._send_stop)
        # the planner imports scipy on first use (1-2 s here): import it now, not inside the first procedure
        import scipy.optimize  # noqa: F401
        import scipy.sparse.csgraph  # noqa: F401

        self.create_timer(1.0, self._publish_stats, callback_group=group)
        self._publish_phase("idle")

    # ------------------------------------------------------------------ inputs
    def _on_joints(self, msg: JointState) -> None:
        try:
            state = msgs_to_rig_state(msg)
        except IrRobotError as exc:
            self.get_logger().error(f"/rig/joint_states ignored: {exc}", throttle_duration_sec=2.0)
            return
        self._state, self._state_stamp = state, msg.header.stamp
        if not self._joints or state.stamp_s > self._joints[-1][0]:  # a rig republishing its last status: once
            self._joints.append((state.stamp_s, state.joints, state.velocity))

    def _on_force(self, msg: WrenchStamped) -> None:
        self._force_n = float(msg.wrench.force.x)

    def _on_status(self, msg: String) -> None:
        self._rig_status = msg.data

    def _on_info(self, m: str, msg: CameraInfo) -> None:
        try:
            self._streams[m].spacing = spacing_from_info(msg)
        except PerceptionError as exc:
            self.get_logger().error(f"/{m}/camera_info ignored: {exc}", throttle_duration_sec=2.0)

    def _on_image(self, m: str, msg: Image) -> None:
        if m == "us" and self.trace.enabled:
            self.trace(stamp_to_ns(msg.header.stamp), "ctl_image")
        try:
            self._streams[m].add_image(stamp_to_ns(msg.header.stamp), msg_to_image(msg))
        except PerceptionError as exc:
            self.get_logger().error(f"/{m}/image_raw dropped: {exc}", throttle_duration_sec=2.0)

    def _on_result(self, m: str, msg: String) -> None:
        t0 = time.perf_counter()
        if self.controller is None or self.controller.done:
            return
        try:
            result, key = result_from_json(msg.data)
            kind = "us" if isinstance(result, UsResult) else "nir"
            if key is None or kind != m:
                raise ValueError("a result without stamp_ns" if key is None else f"a {kind} result on /{m}/result")
        except ValueError as exc:
            self.get_logger().error(f"/{m}/result dropped: {exc}", throttle_duration_sec=2.0)
            return
        if m == "us" and self.trace.enabled:
            self.trace(key, "ctl_result")
        stream = self._streams[m]
        image = stream.images.get(key)
        if image is None or stream.spacing is None or key < self._running_since_ns:
            return  # its image was dropped, no camera_info yet, or taken before this procedure began
        meta: dict[str, Any] = {"result": result}
        if m == "us":
            joints = self._joints_at(key * 1e-9)
            if joints is None:
                return
            p = self.vp_params.config.control.probe_offset_mm
            meta["probe"] = {"x_mm": joints.x_mm + p, "y_mm": joints.y_mm, "yaw_rad": joints.probe_yaw_rad}
        frame = ImageFrame(m, image, stream.spacing, stamp_s=key * 1e-9, meta=meta)
        if m == "nir":
            self._pending_nir = frame
            return
        if self._us_request_ns is not None and key >= self._us_request_ns:
            self._step(us=frame, stamp=ns_to_stamp(key))
            self.step_ms.append((time.perf_counter() - t0) * 1e3)

    def _joints_at(self, t_s: float) -> JointVector | None:
        return joints_at(self._joints, t_s)

    def _on_procedure_state(self, msg: String) -> None:
        state, previous = msg.data, self.procedure_state
        self.procedure_state = state
        if state == "running" and previous != "running":
            self._start()
        elif state == "aborting" and self.controller is not None:
            self.controller.abort("operator abort (/procedure/abort)")
        elif state == "estop" and self.controller is not None and not self.controller.done:
            self.controller.fail_now("e-stop (/rig/estop)")
            self._finish()

    # ------------------------------------------------------------------ control
    def _start(self) -> None:
        cfg = self.vp_params.config
        # the post-processing `ir-robot demo` gives its ultrasound perception (control.us_min_vessel_area_mm2)
        us = ResultPerception("us")
        nir = ResultPerception("nir") if self.params.config.use_nir else None
        self.controller = VenipunctureController(
            cfg, us, nir, lower=self.lower, upper=self.upper, velocity_limits=self.vmax
        )
        self._running_since_ns = self.get_clock().now().nanoseconds
        self._pending_nir = None
        self._us_request_ns = None
        self._reported = False
        self._plan = None
        self._events_logged = 0
        self._t_start = time.monotonic()
        self.counts["procedures"] += 1
        self._depth = 0.0
        self._publish_depth(None)
        self.get_logger().info(f"procedure {self.counts['procedures']}: controller started")

    def _on_timer(self) -> None:
        if time.monotonic() - self._last_compute < 0.5 * self._dt:
            return  # an image-triggered step just ran
        if (
            self._us_request_ns is not None
            and self.get_clock().now().nanoseconds - self._us_request_ns < self.params.config.frame_wait_s * 1e9
        ):
            return  # the controller asked for a frame: its next step is the one with the frame
        self._step(us=None, stamp=None)

    def _step(self, us: ImageFrame | None, stamp) -> None:
        ctl = self.controller
        state = self._state
        if ctl is None or self._reported or self.procedure_state not in ("running", "aborting") or state is None:
            return
        # the joint state is a few ms old: extrapolate it to now, so commands near a limit stay inside it
        now_s = self.get_clock().now().nanoseconds * 1e-9
        age = min(max(now_s - state.stamp_s, 0.0), 0.1)
        joints = JointVector.from_array(state.joints.as_array() + state.velocity.as_array() * age)
        state = dataclasses.replace(state, stamp_s=state.stamp_s + age, joints=joints, force_n=self._force_n)
        if self._rig_status != "ok":
            state = dataclasses.replace(state, status="estop", message=self._rig_status)
        if time.monotonic() - self._t_start > self.params.config.max_time_s:
            ctl.abort(f"time limit {self.params.config.max_time_s:.0f} s reached")
        wanted = ctl.sensors(state)
        obs = Observation(us=us if "us" in wanted else None, nir=self._pending_nir if "nir" in wanted else None)
        if obs.nir is not None:
            self._pending_nir = None
        self._keep_alive.begin()
        try:
            cmd = ctl.compute(state, obs, self.params.config.command_hold_s)
        finally:
            self._keep_alive.end()
        self._last_compute = time.monotonic()
        self._log_events()
        from_image = obs.us is not None
        # image-triggered: the image's stamp (latency accounting); else when it was computed (a joint state's stamp
        # can equal a frame's: the sim stamps both with the tick's time, and this command was not computed from it)
        self._publish_command(cmd, stamp if from_image else self.get_clock().now().to_msg())
        if from_image and self.trace.enabled:
            self.trace(stamp_to_ns(stamp), "ctl_pub")
        if from_image:
            self._publish_roi(ctl.us_perception.roi_box)
        self.counts["from_images"] += int(from_image)
        self._us_request_ns = self.get_clock().now().nanoseconds if "us" in ctl.sensors(state) else None
        self._publish_depth(getattr(ctl, "insertion_target_mm", None))
        self._publish_phase(ctl.phase.value)
        if ctl.plan is not None and ctl.plan is not self._plan:
            self._plan = ctl.plan
            self._publish_plan(ctl.plan)
        if ctl.done:
            self._finish()

    def _log_events(self) -> None:
        """The controller's events (phase changes, pauses, puncture, verdicts: what `ir-robot demo` prints) to
        the node's log, as they happen.
        """
        events = self.controller.outcome.events
        for t, message in events[self._events_logged :]:
            self.get_logger().info(f"{t:7.2f} s  {message}")
        self._events_logged = len(events)

    def _publish_roi(self, box: tuple[int, int, int, int] | None) -> None:
        """``/us/roi`` (sensor_msgs/RegionOfInterest): the square around the tracked target the us_perception
        node should segment in the next frames; all zeros = the whole frame. Sent when it changes, and a
        region every :data:`ROI_REFRESH_S` while it stands (the node drops one older than its
        ``roi_timeout_s``).
        """
        now = time.monotonic()
        if box == self._roi_sent and (box is None or now - self._roi_sent_t < ROI_REFRESH_S):
            return
        self._roi_sent, self._roi_sent_t = box, now
        msg = RegionOfInterest()
        if box is not None:
            r0, c0, r1, c1 = box
            msg.y_offset, msg.x_offset, msg.height, msg.width = int(r0), int(c0), int(r1 - r0), int(c1 - c0)
        self._roi_pub.publish(msg)

    def _send_stop(self) -> None:
        """A compute (e.g. planning) running longer than a command's hold: tell the rig to stop and wait,
        instead of going silent (which would trip the safety watchdog). Runs on the keep-alive thread.
        """
        self._publish_command(RigCommand.stop(), self.get_clock().now().to_msg())

    def close(self) -> None:
        """Stops the keep-alive thread and closes the latency trace."""
        self._keep_alive.close()
        self.trace.close()

    def stats(self) -> dict:
        """Counters (commands, image-triggered steps, procedures) and p50/p99 of the image-triggered step time (ms)."""
        out = dict(self.counts)
        if self.step_ms:
            ms = np.asarray(self.step_ms)
            out.update(
                step_ms_p50=round(float(np.percentile(ms, 50)), 2), step_ms_p99=round(float(np.percentile(ms, 99)), 2)
            )
        return out

    def _publish_stats(self) -> None:
        self._stats_pub.publish(String(data=json.dumps(self.stats())))

    def _publish_command(self, cmd: RigCommand, stamp) -> None:
        with self._pub_lock:  # the keep-alive thread publishes too
            self._cmd_pub.publish(command_to_msg(cmd, stamp))
            self.counts["commands"] += 1

    def _publish_depth(self, target_mm: float | None) -> None:
        value = float(target_mm) * MM if target_mm is not None else math.nan
        if not (value == self._depth or (math.isnan(value) and math.isnan(self._depth))):
            self._depth = value
            self._depth_pub.publish(Float64(data=value))

    def _publish_phase(self, phase: str) -> None:
        if phase != self._phase:
            self._phase = phase
            self._phase_pub.publish(String(data=phase))

    def _publish_plan(self, plan) -> None:
        now = self.get_clock().now().to_msg()
        self._target_pub.publish(point_msg(plan.target_mm, now, WORLD_FRAME))
        d = needle_direction(plan.pitch_rad)
        path = PoseArray()
        path.header.stamp = now
        path.header.frame_id = WORLD_FRAME
        path.poses = [
            pose_msg(plan.pivot_mm, d, now, WORLD_FRAME).pose,
            pose_msg(plan.target_mm, d, now, WORLD_FRAME).pose,
        ]
        self._path_pub.publish(path)

    def _finish(self) -> None:
        if self._reported or self.controller is None:
            return
        self._reported = True
        ctl = self.controller
        self._publish_command(RigCommand.stop(), self.get_clock().now().to_msg())
        self._publish_roi(None)
        self._publish_phase(ctl.phase.value)
        o = ctl.outcome
        result = {
            "outcome": "success" if o.success else "failed",
            "reason": o.reason,
            "attempts": int(o.attempts),
            "confirmed": bool(o.confirmed),
            "confirm_stamp_s": (ctl.t0 + o.confirm_t_s) if o.confirm_t_s is not None else None,
            "duration_s": round(float(o.duration_s), 3),
            "peak_force_n": round(float(o.peak_force_n), 3),
            "procedure": self.counts["procedures"],
            "end_stamp_s": self.get_clock().now().nanoseconds * 1e-9,
            "vessel_index": o.plan.vessel_index if o.plan is not None else None,
        }
        self._result_pub.publish(String(data=json.dumps(result)))
        self.get_logger().info(f"procedure {self.counts['procedures']}: {result['outcome']} ({o.reason})")


def main(args=None):
    """Entry point of ``ir_robot_controller``: spins the node until shutdown; returns the exit code."""
    from ir_robot.ros.run import run_node

    return run_node(ControllerNode, args)
