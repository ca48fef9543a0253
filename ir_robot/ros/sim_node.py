"""``sim``: the PyBullet needle world and its simulated rig, as the hardware of the ROS graph.

The node owns the simulation clock and keeps it on the wall clock: a timer at
``control_rate_hz`` advances the world by the wall time elapsed (whole physics steps;
a machine too busy to keep up slows the simulation down rather than jumping) through
the safety layer
(:class:`~ir_robot.ros.rig_interface.RigInterface`) and publishes joint states and
force; ultrasound and NIR frames are rendered at their own rates. Topics:

=====================  ===========================  ===========
``/us/image_raw``      sensor_msgs/Image mono8      sensor data
``/us/camera_info``    sensor_msgs/CameraInfo       sensor data
``/us/labels``         sensor_msgs/Image mono8      sensor data  (ground-truth LABEL_* mask, if publish_labels)
``/nir/image_raw``     sensor_msgs/Image mono8      sensor data
``/nir/camera_info``   sensor_msgs/CameraInfo       sensor data
``/nir/labels``        sensor_msgs/Image mono8      sensor data
``/rig/joint_states``  sensor_msgs/JointState       reliable
``/needle/force``      geometry_msgs/WrenchStamped  reliable
``/sim/summary``       std_msgs/String (JSON)       latched     (the referee, see :meth:`SimNode.referee`)
=====================  ===========================  ===========

Service ``/sim/reset`` (std_srvs/Trigger): a new world from ``seed + procedure number``
(a new random phantom when ``world.randomize``); the supervisor calls it on start.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ir_robot.config import param
from ir_robot.ros import qos
from ir_robot.ros.conversions import (
    NIR_FRAME,
    PHANTOM_FRAME,
    US_FRAME,
    WORLD_FRAME,
    camera_info,
    image_to_msg,
)
from ir_robot.ros.params import declare_config
from ir_robot.ros.rig_interface import RigDriverConfig, RigInterface
from ir_robot.ros.tf import TfPublisher, us_image_quaternion
from ir_robot.sim.world import WorldConfig


@dataclass(frozen=True)
class SimNodeConfig:
    control_rate_hz: float = param(100.0, range=(10.0, 1000.0), unit="Hz",
                                   help="simulation/control tick; each tick advances the world by 1/rate s")
    us_rate_hz: float = param(30.0, range=(0.0, 120.0), unit="Hz", help="ultrasound frame rate (0: off)")
    nir_rate_hz: float = param(10.0, range=(0.0, 60.0), unit="Hz", help="NIR frame rate (0: off)")
    state_rate_hz: float = param(50.0, range=(1.0, 1000.0), unit="Hz",
                                 help="/rig/joint_states and /needle/force rate (at most the control rate)")
    seed: int = param(0, range=(0, 2**31 - 1), help="world seed; procedure k uses seed + k")
    publish_labels: bool = param(True, help="publish the ground-truth label masks on /us/labels and /nir/labels")


class SimNode(Node):
    NODE_NAME = "sim"
    #: (config dataclass, parameter prefix) pairs this node declares
    PARAMS = ((SimNodeConfig, ""), (WorldConfig, "world."), (RigDriverConfig, "rig."))

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        from ir_robot.devices.sim_rig import SimRig
        from ir_robot.sim.world import NeedleWorld

        self.params = declare_config(self, SimNodeConfig, on_change=self._on_params)
        self.world_params = declare_config(self, WorldConfig, prefix="world", read_only=True)
        self.rig_params = declare_config(self, RigDriverConfig, prefix="rig",
                                         on_change=lambda c, _n: self.rig.set_config(c))
        self._sim_rig_cls = SimRig
        self.world = NeedleWorld(self.world_params.config)
        self.resets = 0
        self.world.reset(seed=self.params.config.seed)
        self._world_lock = threading.RLock()
        self._group = MutuallyExclusiveCallbackGroup()   # everything that steps or resets the world
        io_group = ReentrantCallbackGroup()
        self.rig = RigInterface(self, SimRig(self.world), self.rig_params.config, callback_group=io_group)
        self.rig.lock = self._world_lock  # one lock for world and rig
        sensor = qos.sensor()
        self._pubs = {name: self.create_publisher(Image, f"/{name}", sensor)
                      for name in ("us/image_raw", "us/labels", "nir/image_raw", "nir/labels")}
        self._info_pubs = {m: self.create_publisher(CameraInfo, f"/{m}/camera_info", sensor) for m in ("us", "nir")}
        self._summary_pub = self.create_publisher(String, "/sim/summary", qos.latched())
        self.create_subscription(String, "/procedure/state", self._on_procedure_state, qos.latched(),
                                 callback_group=io_group)
        self.create_subscription(String, "/procedure/result", self._on_result, qos.latched(),
                                 callback_group=io_group)
        self.procedure_state = "idle"
        self._truth: deque = deque(maxlen=20_000)   # (wall stamp s, tip_mm, in_lumen, lumen_vessel, t_s)
        self._last_result = ""
        self.summaries: list[dict] = []
        self.create_service(Trigger, "/sim/reset", self._srv_reset, callback_group=self._group)
        self.tf = TfPublisher(self)
        self.tf.send(self.get_clock().now().to_msg(), [(WORLD_FRAME, "base_link", (0, 0, 0), 0.0, None)], static=True)
        self.frames = {"us": 0, "nir": 0}
        self._peak_force_n = 0.0
        self._timer = None
        self._start_timer()

    # ------------------------------------------------------------------ clock
    def _start_timer(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
        cfg = self.params.config
        self._dt = 1.0 / cfg.control_rate_hz
        self._next_us = self._next_nir = self._next_state = 0.0
        self._sync_clock()
        self._timer = self.create_timer(self._dt, self._tick, callback_group=self._group)

    def _sync_clock(self) -> None:
        """Tie simulated time to the wall clock from now on (the world keeps real time)."""
        self._wall0 = time.monotonic() - self.world.state().t_s

    def _on_params(self, config: SimNodeConfig, names) -> None:
        if "control_rate_hz" in names:
            self._start_timer()

    def _tick(self) -> None:
        cfg = self.params.config
        with self._world_lock:
            # real time: advance by the wall time elapsed (whole physics steps), at most 5 ticks at once
            lag = (time.monotonic() - self._wall0) - self.world.state().t_s
            step = 1.0 / self.world.config.physics_hz
            if lag > 5 * self._dt:
                self._wall0 += lag - 5 * self._dt  # fell behind (machine too busy): slow down, never jump
                lag = 5 * self._dt
            n = int(lag / step + 1e-9)
            if n < 1:
                return
            self.rig.rig.advance(n * step)
            state = self.rig.read_state()
            ws = self.world.state()
            t = ws.t_s
            now = self.get_clock().now()
            stamp = now.to_msg()
            if self.procedure_state in ("running", "aborting"):
                self._peak_force_n = max(self._peak_force_n, float(state.force_n))
                self._truth.append((now.nanoseconds * 1e-9, ws.tip_mm, ws.in_lumen, ws.lumen_vessel, t,
                                    ws.back_wall_punctured))
            if t + 1e-9 >= self._next_state:
                self.rig.publish_state(stamp, state)
                self._next_state = max(self._next_state + 1.0 / cfg.state_rate_hz, t)
            us = nir = None
            if cfg.us_rate_hz > 0 and t + 1e-9 >= self._next_us:
                us = self.world.ultrasound()
                self._next_us = max(self._next_us + 1.0 / cfg.us_rate_hz, t)
            if cfg.nir_rate_hz > 0 and t + 1e-9 >= self._next_nir:
                nir = self.world.nir()
                self._next_nir = max(self._next_nir + 1.0 / cfg.nir_rate_hz, t)
        for frame, frame_id in ((us, US_FRAME), (nir, NIR_FRAME)):
            if frame is not None:
                self._publish_frame(frame, frame_id, self.get_clock().now().to_msg())
        if self.tf.available and us is not None:
            self._send_tf(stamp)

    def _publish_frame(self, frame, frame_id: str, stamp) -> None:
        m = frame.modality
        origin = (-0.5, frame.image.shape[1] / 2 - 0.5) if m == "us" else None
        self._pubs[f"{m}/image_raw"].publish(image_to_msg(frame.image, stamp, frame_id))
        self._info_pubs[m].publish(camera_info(frame.image.shape, frame.spacing_mm, stamp, frame_id, origin))
        if self.params.config.publish_labels and frame.labels is not None:
            self._pubs[f"{m}/labels"].publish(image_to_msg(frame.labels, stamp, frame_id))
        self.frames[m] += 1

    def _send_tf(self, stamp) -> None:
        probe, view = self.world.probe_pose(), self.world.nir_view()
        off = self.world.state().phantom_offset_mm
        self.tf.send(stamp, [
            (WORLD_FRAME, PHANTOM_FRAME, off, 0.0, None),
            (WORLD_FRAME, US_FRAME, (probe.x_mm, probe.y_mm, 0.0), None, us_image_quaternion(probe.yaw_rad)),
            (WORLD_FRAME, NIR_FRAME, (view.x_mm, view.y_mm, 0.0), 0.0, None),
        ])

    # ------------------------------------------------------------------ reset
    def _srv_reset(self, request, response):
        with self._world_lock:
            self.resets += 1
            seed = self.params.config.seed + self.resets
            self.world.reset(seed=seed)
            self.rig.replace_backend(self._sim_rig_cls(self.world))
            self._peak_force_n = 0.0
            self._next_us = self._next_nir = self._next_state = 0.0
            self._sync_clock()
        response.success = True
        response.message = f"world reset with seed {seed} (phantom '{self.world.phantom.spec.name}')"
        self.get_logger().info(response.message)
        return response

    # ------------------------------------------------------------------ the referee
    def _on_procedure_state(self, msg: String) -> None:
        if msg.data == "running" and self.procedure_state != "running":
            with self._world_lock:
                self._truth.clear()
                self._peak_force_n = 0.0
        self.procedure_state = msg.data

    def _on_result(self, msg: String) -> None:
        """The controller's report + what only the simulator knows = one summary line on /sim/summary."""
        if msg.data == self._last_result:
            return
        self._last_result = msg.data
        try:
            result = json.loads(msg.data)
        except ValueError:
            return
        with self._world_lock:
            summary = self.referee(result)
        self.summaries.append(summary)
        self._summary_pub.publish(String(data=json.dumps(summary, sort_keys=True)))
        self.get_logger().info(f"summary: {json.dumps(summary, sort_keys=True)}")

    def tip_error_mm(self, tip_mm, t_s: float, vessel: int) -> float:
        """Distance (mm) from the tip to the lumen centre of ``vessel`` in the vessel's cross-section at the tip."""
        ph = self.world.phantom
        p = ph.to_phantom(np.asarray(tip_mm, dtype=float), t_s)
        yc, zc = ph.centreline(p[0])
        return float(math.hypot(p[1] - yc[vessel], p[2] - zc[vessel]))

    def referee(self, result: dict) -> dict:
        """Score a finished procedure against the ground truth recorded while it ran."""
        truth = list(self._truth)
        confirm = result.get("confirm_stamp_s")
        at = None
        if confirm is not None and truth:
            at = min(truth, key=lambda r: abs(r[0] - float(confirm)))
        tip_error = None
        in_lumen = False
        if at is not None:
            _, tip, in_lumen, vessel, t_s, _bw = at
            if vessel < 0:  # not in a lumen: the nearest vessel centre
                ph = self.world.phantom
                p = ph.to_phantom(np.asarray(tip, dtype=float), t_s)
                yc, zc = ph.centreline(p[0])
                vessel = int(np.argmin(np.hypot(p[1] - yc, p[2] - zc)))
            tip_error = round(self.tip_error_mm(tip, t_s, vessel), 3)
        back_wall = any(r[5] for r in truth)
        ctl_ok = result.get("outcome") == "success"
        return {
            "procedure": int(result.get("procedure", 0)),
            "seed": self.params.config.seed + self.resets,
            "success": bool(ctl_ok and in_lumen and not back_wall),
            "controller_success": bool(ctl_ok),
            "reason": result.get("reason", ""),
            "tip_error_mm": tip_error,
            "tip_in_lumen_at_confirm": bool(in_lumen),
            "back_wall_punctured": bool(back_wall),
            "attempts": int(result.get("attempts", 0)),
            "duration_s": result.get("duration_s"),
            "peak_force_n": round(self._peak_force_n, 3),
        }

    def close(self) -> None:
        self.world.close()


def main(args=None):
    from ir_robot.ros.run import run_node

    return run_node(SimNode, args)
