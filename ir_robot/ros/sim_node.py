"""``sim``: the PyBullet needle world and its simulated rig, as the hardware of the ROS graph.

The node owns the simulation clock and keeps it on the wall clock: a timer at
``control_rate_hz`` advances the world by the wall time elapsed (whole physics steps;
a machine too busy to keep up slows the simulation down rather than jumping) through
the safety layer (:class:`~ir_robot.ros.rig_interface.RigInterface`) and publishes
joint states and force; ultrasound and NIR frames are rendered at their own rates.
Topics:

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

Service ``/sim/reset`` (std_srvs/Trigger): procedure k gets seed ``seed + k - 1`` and (``phantoms:
episode``) the same phantom ``ir-robot demo --seed`` / ``ir-robot evaluate`` use for that seed; the
supervisor calls it on start. When the controller reports ``/procedure/result`` the node scores
the procedure against the ground truth it recorded (:meth:`SimNode.referee`, the scoring of
``ir-robot demo``) and publishes the summary line on ``/sim/summary``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from ir_robot.config import param
from ir_robot.ros import qos
from ir_robot.ros.conversions import (
    NIR_FRAME,
    PHANTOM_FRAME,
    US_FRAME,
    WORLD_FRAME,
    FramePublisher,
    next_due,
    stamp_to_ns,
)
from ir_robot.ros.params import declare_config
from ir_robot.ros.referee import RefereeMixin
from ir_robot.ros.rig_interface import RigDriverConfig, RigInterface, rig_config_base
from ir_robot.ros.tf import TfPublisher, us_image_quaternion
from ir_robot.ros.trace import LatencyTrace
from ir_robot.sim.world import WorldConfig


@dataclass(frozen=True)
class SimNodeConfig:
    """Parameters of the sim node: tick, frame and state rates, seeds and phantoms, labels and the safety file."""

    control_rate_hz: float = param(
        100.0,
        range=(10.0, 1000.0),
        unit="Hz",
        help="simulation tick; each tick advances the world by the wall time elapsed",
    )
    us_rate_hz: float = param(30.0, range=(0.0, 120.0), unit="Hz", help="ultrasound frame rate (0: off)")
    nir_rate_hz: float = param(10.0, range=(0.0, 60.0), unit="Hz", help="NIR frame rate (0: off)")
    state_rate_hz: float = param(
        50.0, range=(1.0, 1000.0), unit="Hz", help="/rig/joint_states and /needle/force rate (at most the control rate)"
    )
    seed: int = param(0, range=(0, 2**31 - 1), help="procedure k (1, 2, ...) runs on seed + k - 1")
    phantoms: str = param(
        "episode",
        choices=("episode", "world"),
        help="episode: procedure k gets the phantom of `ir-robot demo --seed seed+k-1` (and of "
        "evaluate's episode); world: the world config's phantom / randomize",
    )
    publish_labels: bool = param(True, help="publish the ground-truth label masks on /us/labels and /nir/labels")
    safety_file: str = param(
        "venipuncture.yaml",
        help="YAML whose `safety` section gives the rig's safety limits "
        "(the CLI's; rig.safety.* override single values)",
    )


class SimNode(RefereeMixin, Node):
    """The needle world and its simulated rig as the hardware of the graph (see the module docstring)."""

    NODE_NAME = "sim"
    #: (config dataclass, parameter prefix) pairs this node declares
    PARAMS = ((SimNodeConfig, ""), (WorldConfig, "world."), (RigDriverConfig, "rig."))

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        from ir_robot.devices.sim_rig import SimRig
        from ir_robot.sim.world import NeedleWorld

        self.params = declare_config(self, SimNodeConfig, on_change=self._on_params, read_only=("safety_file",))
        self.world_params = declare_config(self, WorldConfig, prefix="world", read_only=True)
        self.rig_params = declare_config(
            self,
            RigDriverConfig,
            prefix="rig",
            base=rig_config_base(self.params.config.safety_file),
            on_change=lambda c, _n: self.rig.set_config(c),
        )
        self._sim_rig_cls = SimRig
        self.world = NeedleWorld(self.world_params.config)
        self.resets = 0
        self._reset_world(self.params.config.seed)
        self._world_lock = threading.RLock()
        self._group = MutuallyExclusiveCallbackGroup()  # everything that steps or resets the world
        io_group = ReentrantCallbackGroup()
        self.rig = RigInterface(
            self, SimRig(self.world), self.rig_params.config, callback_group=io_group, lock=self._world_lock
        )  # one lock for the world and its rig
        sensor = qos.sensor()
        self._frames_out = FramePublisher(self, sensor)
        self._init_referee(io_group, lock=self._world_lock)
        self._scorer = None
        self._tripped = ""
        self.create_service(Trigger, "/sim/reset", self._srv_reset, callback_group=self._group)
        self.tf = TfPublisher(self)
        self.tf.send(self.get_clock().now().to_msg(), [(WORLD_FRAME, "base_link", (0, 0, 0), 0.0, None)], static=True)
        self.frames = {"us": 0, "nir": 0}
        self.trace = LatencyTrace(self.NODE_NAME)
        self.rig.trace = self.trace
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
            if t + 1e-9 >= self._next_state:
                self.rig.publish_state(stamp, state)
                self._next_state = next_due(self._next_state, t, cfg.state_rate_hz)
            # frames are stamped with the time of the world state they show (rendering counts as latency);
            # the ultrasound frame goes out first, before the scoring and the NIR frame: it is on the
            # image-to-command path
            us = None
            if cfg.us_rate_hz > 0 and t + 1e-9 >= self._next_us:
                us = self.world.ultrasound()
                self._next_us = next_due(self._next_us, t, cfg.us_rate_hz)
                self._publish_frame(us, stamp)
                if self.trace.enabled:
                    key = stamp_to_ns(stamp)
                    self.trace(key, "sim_tick", now.nanoseconds)
                    self.trace(key, "sim_pub")
            if self.procedure_state in ("running", "aborting"):
                self._score_tick(state)
            if cfg.nir_rate_hz > 0 and t + 1e-9 >= self._next_nir:
                self._publish_frame(self.world.nir(), stamp)
                self._next_nir = next_due(self._next_nir, t, cfg.nir_rate_hz)
            if self.tf.available and us is not None:
                self._send_tf(stamp)

    def _publish_frame(self, frame, stamp) -> None:
        self._frames_out.publish(frame, stamp, labels=self.params.config.publish_labels)
        self.frames[frame.modality] += 1

    def _send_tf(self, stamp) -> None:
        probe, view = self.world.probe_pose(), self.world.nir_view()
        off = self.world.state().phantom_offset_mm
        self.tf.send(
            stamp,
            [
                (WORLD_FRAME, PHANTOM_FRAME, off, 0.0, None),
                (WORLD_FRAME, US_FRAME, (probe.x_mm, probe.y_mm, 0.0), None, us_image_quaternion(probe.yaw_rad)),
                (WORLD_FRAME, NIR_FRAME, (view.x_mm, view.y_mm, 0.0), 0.0, None),
            ],
        )

    # ------------------------------------------------------------------ reset
    @property
    def seed(self) -> int:
        """Seed of the current procedure (the first one runs on ``seed``)."""
        return self.params.config.seed + max(self.resets - 1, 0)

    def _reset_world(self, seed: int) -> None:
        if self.params.config.phantoms == "episode":
            from ir_robot.evaluation.episode import sample_episode_phantom

            self.world.reset(seed=seed, phantom=sample_episode_phantom(seed, motion=self.world.config.motion))
        else:
            self.world.reset(seed=seed)

    def _srv_reset(self, request, response):
        with self._world_lock:
            self.resets += 1
            seed = self.seed
            self._reset_world(seed)
            self.rig.replace_backend(self._sim_rig_cls(self.world))
            self._next_us = self._next_nir = self._next_state = 0.0
            self._sync_clock()
        response.success = True
        response.message = f"world reset with seed {seed} (phantom '{self.world.phantom.spec.name}')"
        self.get_logger().info(response.message)
        return response

    # ------------------------------------------------------------------ the referee
    def _on_procedure_state_change(self, state: str, previous: str) -> None:
        if state == "running" and previous != "running":
            from ir_robot.evaluation.episode import Scorer

            with self._world_lock:
                self._scorer = Scorer(self.world)
                self._tripped = ""

    def _score_tick(self, state) -> None:
        """Ground truth while the controller holds the tip in the lumen (``run_episode``'s Scorer, fed the
        controller's phase from /controller/phase).
        """
        if state.status == "estop" and not self._tripped:
            self._tripped = state.message or "e-stop"
        if self._scorer is not None:
            self._scorer(state, None, None, SimpleNamespace(phase=self.phase))

    def referee(self, result: dict) -> dict:
        """Score a finished procedure with the rule of ``ir_robot.evaluation.episode.run_episode`` (the line
        ``ir-robot demo`` prints): :func:`ir_robot.evaluation.episode.judge`.
        """
        from ir_robot.evaluation.episode import judge

        sc = self._scorer
        duration = float(result.get("duration_s") or 0.0)
        v = judge(
            self.world,
            sc,
            controller_success=result.get("outcome") == "success",
            controller_reason=str(result.get("reason", "")),
            duration_s=duration,
            safety_trip=self._tripped or None,
        )
        err = sc.rms_error_mm if sc is not None else float("nan")
        return {
            "success": v.success,
            "tip_error_mm": round(err, 3) if np.isfinite(err) else None,
            "attempts": int(result.get("attempts", 0)),
            "duration_s": round(duration, 2),
            "peak_force_n": round(float(result.get("peak_force_n", 0.0)), 3),
            "seed": self.seed,
            "perception": self.perception,
            "reason": v.reason,
            "procedure": int(result.get("procedure", 0)),
            "back_wall_punctured": v.back_wall_punctured,
            "artery_punctured": v.artery_punctured,
            "hold_in_lumen": v.hold_in_lumen,
        }

    def close(self) -> None:
        """Closes the latency trace and the world."""
        self.trace.close()
        self.world.close()


def main(args=None):
    """Entry point of ``ir_robot_sim``: spins the node until shutdown; returns the exit code."""
    from ir_robot.ros.run import run_node

    return run_node(SimNode, args)
