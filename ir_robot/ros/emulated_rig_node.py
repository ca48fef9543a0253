"""``emulated_rig``: the emulated benchtop rig, so the rig graph runs end to end without hardware.

The ``rig_emulator`` graph is the ``rig`` graph with this node in place of the two video
sources: the GRBL board and the load cell are :class:`~ir_robot.devices.emulator.GrblEmulator`
on pseudo-terminals, fed by a simulator phantom (:class:`~ir_robot.devices.emulated_phantom.EmulatedPhantom`,
as ``ir-robot rig venipuncture --emulator``), and the ``rig_driver`` node talks GRBL to them over
the serial line exactly as it would to the board. What is emulated and what is real:

* real: ``rig_driver`` (``backend: serial``, GrblRig: streaming, status polling, load cell, safety
  layer), the perception nodes, the controller in its rig mode (``config/venipuncture_rig.yaml``,
  the joints ``config/rig.yaml`` fixes), the supervisor;
* emulated: the board, the load cell (the phantom's tissue force at the emulated stage's joints),
  and the images: ultrasound and NIR frames are *rendered* at the emulated stage's pose and
  published as the camera nodes would publish captured ones (``/us/image_raw``, ``/nir/image_raw``
  + ``camera_info``; ``/us/labels`` and ``/nir/labels`` as the sim node does, for
  ``model: ground_truth``).

The node writes ``link_dir/rig.yaml``: the rig config (``rig_config``) with the ports set to
``link_dir/grbl`` and ``link_dir/loadcell`` (symlinks to the ptys) and status polled at
``status_poll_hz``; homing and soft limits stay as configured. The emulated stage starts where
:func:`~ir_robot.devices.emulated_phantom.emulator_start` puts it (over the first scan point), so ``rig_driver``
unlocks (``unlock: true``, ``$X``) instead of homing. It reads that file (and retries until the file
and the port are there: ``connect_timeout_s``).

When the controller reports ``/procedure/result`` the node publishes the summary line on
``/sim/summary`` (the topic ``ir-robot launch`` and the tests wait on), with the emulated phantom's ground truth:
``hold_in_lumen`` (the tip in a vein lumen through the controller's hold), ``flashback`` (it has been in
one), back wall and artery punctures. ``/emulated_rig/reset`` (std_srvs/Trigger; the supervisor calls it at each
start in this graph) gives a fresh phantom, so procedures can run back to back; it is refused while the
needle is in.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from ir_robot.config import param
from ir_robot.ros import qos
from ir_robot.ros.conversions import FramePublisher, next_due
from ir_robot.ros.params import declare_config, venipuncture_config
from ir_robot.ros.referee import RefereeMixin


@dataclass(frozen=True)
class EmulatedRigNodeConfig:
    """Parameters of the emulated rig node: where its ports and rig.yaml go, what it emulates, seeds and rates."""

    link_dir: str = param(
        "/tmp/ir_robot_emulated_rig",
        help="where the node writes rig.yaml and the port symlinks grbl, loadcell (one emulated rig per dir)",
    )
    rig_config: str = param("", help="the rig YAML to emulate ('' = config/rig.yaml)")
    venipuncture_config: str = param(
        "venipuncture_rig.yaml", help="the controller's config (its first scan point is where the stage starts)"
    )
    seed: int = param(0, range=(0, 2**31 - 1), help="force noise, image speckle and the emulator's timing")
    us_rate_hz: float = param(30.0, range=(0.0, 120.0), unit="Hz", help="ultrasound frame rate (0: off)")
    nir_rate_hz: float = param(10.0, range=(0.0, 60.0), unit="Hz", help="NIR frame rate (0: off)")
    status_poll_hz: float = param(
        20.0,
        range=(1.0, 20.0),
        unit="Hz",
        help="the '?' rate written into link_dir/rig.yaml (closed-loop control wants 20)",
    )
    publish_labels: bool = param(True, help="publish the rendered label masks on /us/labels and /nir/labels")


def emulated_rig_yaml(base: dict, link_dir: str, status_poll_hz: float) -> dict:
    """The rig config ``base`` (a parsed rig YAML) as the emulated rig serves it: ports on ``link_dir``'s
    symlinks, status at ``status_poll_hz``; everything else (homing, soft limits, axes) as configured.
    """
    data = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    grbl = data.setdefault("grbl", {})
    grbl.update(port=os.path.join(link_dir, "grbl"), status_poll_hz=float(status_poll_hz))
    if data.get("loadcell") is not None:
        data["loadcell"]["port"] = os.path.join(link_dir, "loadcell")
    return data


class EmulatedRigNode(RefereeMixin, Node):
    """The emulated benchtop rig as a ROS node (see the module docstring): GRBL board and load cell on ptys, rendered
    images, and the referee of its phantom's ground truth.
    """

    NODE_NAME = "emulated_rig"
    PARAMS = ((EmulatedRigNodeConfig, ""),)

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        import yaml

        from ir_robot.config import read_yaml
        from ir_robot.devices.config import default_rig_yaml, load_rig_config
        from ir_robot.devices.emulated_phantom import EmulatedPhantom, emulator_start, start_emulator

        self.params = declare_config(self, EmulatedRigNodeConfig, read_only=True)
        cfg = self.params.config
        vcfg = venipuncture_config(cfg.venipuncture_config)
        link_dir = os.path.abspath(cfg.link_dir)
        os.makedirs(link_dir, exist_ok=True)
        self.rig_yaml = os.path.join(link_dir, "rig.yaml")
        if os.path.exists(self.rig_yaml):
            os.remove(self.rig_yaml)  # a stale file would point rig_driver at another run's ptys
        data = emulated_rig_yaml(read_yaml(cfg.rig_config or default_rig_yaml()), link_dir, cfg.status_poll_hz)
        tmp = self.rig_yaml + ".tmp"
        with open(tmp, "w") as fh:
            yaml.safe_dump(data, fh, sort_keys=False)
        rig_config = load_rig_config(tmp)
        self.phantom = EmulatedPhantom(probe_offset_mm=vcfg.control.probe_offset_mm, seed=cfg.seed)
        self.emulator = start_emulator(rig_config, self.phantom, start=emulator_start(rig_config, vcfg), seed=cfg.seed)
        self.links = self.emulator.link_ports(link_dir)
        os.replace(tmp, self.rig_yaml)  # last: rig_driver connects once this file is there

        sensor = qos.sensor()
        self._frames_out = FramePublisher(self, sensor)
        self._lock = threading.Lock()
        self._hold_ticks = self._hold_in_vein = 0
        self._init_referee(ReentrantCallbackGroup())
        self.resets = 0
        self.create_service(Trigger, "/emulated_rig/reset", self._srv_reset)
        self._t0 = time.monotonic()
        self._next = {"us": 0.0, "nir": 0.0}
        rates = [r for r in (cfg.us_rate_hz, cfg.nir_rate_hz) if r > 0]
        self.create_timer(1.0 / (4 * max(rates + [25.0])), self._tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"emulated rig: GRBL on {self.emulator.port}, load cell on "
            f"{self.emulator.loadcell_port} (links in {link_dir}); rig config {self.rig_yaml}"
        )

    # ------------------------------------------------------------------ images
    def _tick(self) -> None:
        cfg = self.params.config
        t = time.monotonic() - self._t0
        wanted = set()
        for m, rate in (("us", cfg.us_rate_hz), ("nir", cfg.nir_rate_hz)):
            if rate > 0 and t + 1e-9 >= self._next[m]:
                wanted.add(m)
                self._next[m] = next_due(self._next[m], t, rate)
        if self.phase == "hold":
            with self._lock:
                self._hold_ticks += 1
                self._hold_in_vein += int(self.phantom.in_vein_lumen())
        if not wanted:
            return
        stamp = self.get_clock().now().to_msg()  # the stage pose read now is what the frames show
        obs = self.phantom.render(self.emulator.joints(), frozenset(wanted), time.monotonic())
        for frame in (obs.us, obs.nir):  # ultrasound first: it is on the image-to-command path
            if frame is not None:
                self._frames_out.publish(frame, stamp, labels=cfg.publish_labels)

    # ------------------------------------------------------------------ reset
    def _srv_reset(self, request, response):
        """``/emulated_rig/reset`` (the supervisor's ``reset_service`` in this graph): a fresh phantom for the next
        procedure; refused while the needle is in.
        """
        from ir_robot.core.errors import RigError

        try:
            self.phantom.reset()
        except RigError as exc:
            response.success, response.message = False, str(exc)
            return response
        with self._lock:
            self._hold_ticks = self._hold_in_vein = 0
        self.resets += 1
        response.success, response.message = True, f"fresh phantom ({self.resets} reset(s))"
        self.get_logger().info(response.message)
        return response

    # ------------------------------------------------------------------ the referee
    def _on_procedure_state_change(self, state: str, previous: str) -> None:
        if state == "running":
            with self._lock:
                self._hold_ticks = self._hold_in_vein = 0

    def referee(self, result: dict) -> dict:
        """The controller's report scored against the emulated phantom's ground truth: success needs the controller's
        success, the tip in a vein lumen through the hold, and no back wall or artery punctured.
        """
        b = self.phantom
        with self._lock:
            hold_in_lumen = self._hold_ticks > 0 and self._hold_in_vein == self._hold_ticks
        back_wall, artery = b.back_wall_punctured, b.artery_punctured
        ok = result.get("outcome") == "success"
        reason = str(result.get("reason", ""))
        if ok and not hold_in_lumen:
            reason = "tip not in a vein lumen during the hold (phantom ground truth)"
        if back_wall:
            reason = "back wall punctured (phantom ground truth)"
        if artery:
            reason = "artery punctured (phantom ground truth)"
        return {
            "success": ok and hold_in_lumen and not back_wall and not artery,
            "tip_error_mm": None,
            "attempts": int(result.get("attempts", 0)),
            "duration_s": round(float(result.get("duration_s") or 0.0), 2),
            "peak_force_n": round(float(result.get("peak_force_n", 0.0)), 3),
            "seed": self.params.config.seed,
            "perception": self.perception,
            "reason": reason,
            "procedure": int(result.get("procedure", 0)),
            "back_wall_punctured": back_wall,
            "artery_punctured": artery,
            "hold_in_lumen": hold_in_lumen,
            "flashback": b.flashback,
            "rig": "emulated GRBL + load cell, rendered images",
            "punctures": [
                [e.membrane, e.vessel_index, round(e.peak_force_n, 3), round(e.insert_mm, 3)] for e in b.events()
            ],
        }

    def close(self) -> None:
        """Stops the emulator and removes the port symlinks and rig.yaml it wrote."""
        self.emulator.close()
        for path in self.links + [self.rig_yaml]:
            try:
                os.remove(path)
            except OSError:
                pass


def main(args=None):
    """Entry point of ``ir_robot_emulated_rig``: spins the node until shutdown; returns the exit code."""
    from ir_robot.ros.run import run_node

    return run_node(EmulatedRigNode, args)
