"""ros2 launch ir_robot sim.launch.py [params_file:=FILE] [record:=FILE.mcap] [graph:=sim]

The simulation graph for ROS 2 installs. The nodes, their parameter files and
remappings come from ir_robot/ros/graph.py - the same description `ir-robot launch sim`
reads on pip installs - so the two cannot drift apart. `params_file` is applied after
config/ros/<graph>.yaml (and its base graph's file, graph.PARAMS_BASE: rig_emulator reads rig.yaml
first); `record` adds the MCAP recorder node. `graph:=rig_emulator` runs the rig graph on the emulated bench.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def _nodes(context):
    from ir_robot.ros.graph import RECORDER, graph, params_files

    params_file = LaunchConfiguration("params_file").perform(context)
    record = LaunchConfiguration("record").perform(context)
    graph_name = LaunchConfiguration("graph").perform(context)
    specs = list(graph(graph_name))
    if record:
        specs.append(RECORDER)
    defaults = [str(f) for f in params_files(graph_name) if f.is_file()]
    actions = []
    for spec in specs:
        params = list(defaults)
        if params_file:
            params.append(params_file)
        if spec is RECORDER:
            params.append({"path": record})
        extra = {"prefix": f"nice -n {spec.nice}"} if spec.nice > 0 else {}
        actions.append(
            Node(
                package="ir_robot",
                executable=spec.executable,
                name=spec.name,
                parameters=params,
                remappings=list(spec.remappings),
                output="screen",
                emulate_tty=True,
                **extra,
            )
        )
    return actions


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("graph", default_value="sim", description="graph in ir_robot/ros/graph.py"),
            DeclareLaunchArgument("params_file", default_value="", description="extra ROS params YAML"),
            DeclareLaunchArgument("record", default_value="", description="record every topic to this MCAP file"),
            OpaqueFunction(function=_nodes),
        ]
    )
