"""The one description of the ROS graph: nodes, their parameter files and remappings.

Read by ``launch/sim.launch.py`` (ROS 2 installs: ``ros2 launch ir_robot sim.launch.py``)
and by ``ir-robot launch sim`` (pip installs, :mod:`ir_robot.ros.launcher`), so the
two cannot drift apart. Plain data, no ROS import.

Each node is a small class in ``ir_robot.ros`` with a ``main(args=None)``; on ROS
installs it is the console script ``executable`` (setup.py ``entry_points``, see
:func:`console_scripts`), with the pip launcher it runs in-process (one
single-threaded executor) or as ``python -m ir_robot.ros.run NAME`` (one process per node).
Parameters come from the graph's ``config/ros/<graph>.yaml`` (ROS format: ``node_name:
ros__parameters:``), then from any user file given with ``--params`` (later files win, as in ROS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ir_robot.core.errors import ConfigError


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph: its name, how ROS 2 and the pip launcher start it, its remappings and niceness."""

    name: str  # node name = section in the params file
    executable: str  # console script for ros2 launch (package ir_robot)
    node_class: str  # "module:Class" (an rclpy Node subclass)
    remappings: tuple[tuple[str, str], ...] = ()
    description: str = ""
    main: str = "main"  # the module's main(args=None) for this node
    #: niceness added when the node runs as its own process (``nice -n``): nodes off the
    #: image-to-command path (sim/camera -> us_perception -> controller -> rig) yield the CPU to it
    nice: int = 0

    @property
    def module(self) -> str:
        """The Python module that holds the node class."""
        return self.node_class.split(":")[0]

    @property
    def entry_point(self) -> str:
        """``module:main`` for setup.py console_scripts."""
        return f"{self.module}:{self.main}"


_SIM = NodeSpec(
    "sim",
    "ir_robot_sim",
    "ir_robot.ros.sim_node:SimNode",
    description="PyBullet needle world + simulated rig: images, joint states, force; obeys /rig/command",
)
_US = NodeSpec(
    "us_perception",
    "ir_robot_us_perception",
    "ir_robot.ros.perception_nodes:UsPerceptionNode",
    main="main_us",
    description="ultrasound segmentation: vessel / needle detections, mask, markers",
)
_NIR = NodeSpec(
    "nir_perception",
    "ir_robot_nir_perception",
    "ir_robot.ros.perception_nodes:NirPerceptionNode",
    main="main_nir",
    nice=5,
    description="NIR vein segmentation: mask, vein centres, markers",
)
_CONTROLLER = NodeSpec(
    "controller",
    "ir_robot_controller",
    "ir_robot.ros.controller_node:ControllerNode",
    description="venipuncture state machine (scan, select + plan, align, insert, confirm, hold, "
    "retract): perception + rig state -> /rig/command, /plan/target, /plan/path",
)
_SUPERVISOR = NodeSpec(
    "supervisor",
    "ir_robot_supervisor",
    "ir_robot.ros.supervisor:SupervisorNode",
    nice=5,
    description="operating state (latched) and the /procedure/* and /rig/estop services",
)
_RIG = NodeSpec(
    "rig_driver",
    "ir_robot_rig_driver",
    "ir_robot.ros.rig_driver:RigDriverNode",
    description="a rig backend (parameter 'backend': sim | serial) behind the safety layer",
)
_US_CAMERA = NodeSpec(
    "us_camera",
    "ir_robot_camera",
    "ir_robot.ros.camera_node:UsCameraNode",
    description="ultrasound frame grabber (cv2.VideoCapture: device or video file) -> /us/image_raw, /us/camera_info",
)
_NIR_CAMERA = NodeSpec(
    "nir_camera",
    "ir_robot_camera",
    "ir_robot.ros.camera_node:NirCameraNode",
    description="NIR camera (cv2.VideoCapture) -> /nir/image_raw, /nir/camera_info",
)
_EMULATED_RIG = NodeSpec(
    "emulated_rig",
    "ir_robot_emulated_rig",
    "ir_robot.ros.emulated_rig_node:EmulatedRigNode",
    description="the emulated benchtop rig: GRBL board + load cell on ptys (a simulator phantom's force) "
    "and the images rendered at the emulated stage's pose -> /us/image_raw, /nir/image_raw",
)
RECORDER = NodeSpec(
    "recorder",
    "ir_robot_recorder",
    "ir_robot.ros.recorder:RecorderNode",
    description="records every topic to MCAP (parameter 'path')",
)

#: graph name -> nodes, in start order
GRAPHS: dict[str, tuple[NodeSpec, ...]] = {
    "sim": (_SIM, _US, _NIR, _CONTROLLER, _SUPERVISOR),
    # the benchtop rig: same graph with the rig driver and the two video sources in place of the simulator
    # (one executable, ir_robot_camera, run twice with parameter modality us | nir). The rig driver starts last:
    # in one process (ir-robot launch without --processes) the networks' loading holds the GIL for seconds,
    # which starved GrblRig's status thread into its 0.5 s no-reply fault when the board was already open
    "rig": (_US_CAMERA, _NIR_CAMERA, _US, _NIR, _CONTROLLER, _SUPERVISOR, _RIG),
    # the rig graph without hardware: the emulated rig in place of the board's USB line and the video sources
    # (rig_driver still talks GRBL over a serial line: the emulator's pty)
    "rig_emulator": (_EMULATED_RIG, _US, _NIR, _CONTROLLER, _SUPERVISOR, _RIG),
}

#: graph -> the graph whose params file is read first (its own file then overrides single values)
PARAMS_BASE: dict[str, str] = {"rig_emulator": "rig"}

#: every node class the launcher can start by name
NODES: dict[str, NodeSpec] = {s.name: s for g in GRAPHS.values() for s in g} | {RECORDER.name: RECORDER}


def graph(name: str) -> tuple[NodeSpec, ...]:
    """The nodes of graph ``name`` in start order; ConfigError naming the graphs if there is none."""
    try:
        return GRAPHS[name]
    except KeyError:
        raise ConfigError(f"unknown graph {name!r}; graphs are {sorted(GRAPHS)}") from None


def node_spec(name: str) -> NodeSpec:
    """The node called ``name`` in any graph (or the recorder); ConfigError naming the nodes if there is none."""
    try:
        return NODES[name]
    except KeyError:
        raise ConfigError(f"unknown node {name!r}; nodes are {sorted(NODES)}") from None


def params_path(graph_name: str, share: Path | None = None) -> Path:
    """The graph's params file ``config/ros/<graph>.yaml`` in the source tree or the install share."""
    graph(graph_name)
    if share is None:
        from ir_robot.paths import data_path

        return data_path("config", "ros", f"{graph_name}.yaml")
    return Path(share) / "config" / "ros" / f"{graph_name}.yaml"


def params_files(graph_name: str, share: Path | None = None) -> list[Path]:
    """The graph's default params files in the order they apply: its base graph's (:data:`PARAMS_BASE`), then its
    own.
    """
    base = PARAMS_BASE.get(graph_name)
    return ([params_path(base, share)] if base else []) + [params_path(graph_name, share)]


def ros_arguments(spec: NodeSpec, params_files: Sequence[str | Path] = (), extra: Sequence[str] = ()) -> list[str]:
    """``--ros-args`` for one node: its name, params files (in order) and remappings."""
    args = ["--ros-args", "-r", f"__node:={spec.name}"]
    for f in params_files:
        args += ["--params-file", str(f)]
    for src, dst in spec.remappings:
        args += ["-r", f"{src}:={dst}"]
    return args + list(extra)


def console_scripts() -> list[str]:
    """Lines for setup.py ``entry_points['console_scripts']`` (ros2 launch needs them in lib/ir_robot)."""
    return sorted({f"{s.executable} = {s.entry_point}" for s in NODES.values()})
