"""ir_robot: ament_python package for ROS 2 installs and a plain pip package.

Data (launch/, config/, urdf/, sim/, models/) installs under share/ir_robot so
``ir_robot.paths.share_dir()`` finds it from colcon, pip and source checkouts.
"""

import os
from glob import glob

from setuptools import find_packages, setup

package_name = "ir_robot"


def tree(folder):
    """data_files entries that keep the folder structure under share/ir_robot."""
    entries = {}
    for path in glob(os.path.join(folder, "**", "*"), recursive=True):
        if os.path.isfile(path) and "__pycache__" not in path:
            dest = os.path.join("share", package_name, os.path.dirname(path))
            entries.setdefault(dest, []).append(path)
    return sorted(entries.items())


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("urdf"),
        *tree("sim"),
        *tree("models"),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="ir_robot developers",
    maintainer_email="ir-robot@example.org",
    description="AI-assisted interventional radiology robotics: ROS 2 nodes, PyBullet simulation, perception, RL",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "ir-robot = ir_robot.cli:main",
            # ROS 2 node executables (ros2 run ir_robot <name>); same list as ir_robot.ros.graph.console_scripts()
            "ir_robot_sim = ir_robot.ros.sim_node:main",
            "ir_robot_us_perception = ir_robot.ros.perception_nodes:main_us",
            "ir_robot_nir_perception = ir_robot.ros.perception_nodes:main_nir",
            "ir_robot_controller = ir_robot.ros.controller_node:main",
            "ir_robot_supervisor = ir_robot.ros.supervisor:main",
            "ir_robot_rig_driver = ir_robot.ros.rig_driver:main",
            "ir_robot_camera = ir_robot.ros.camera_node:main",
            "ir_robot_recorder = ir_robot.ros.recorder:main",
            "ir_robot_emulated_rig = ir_robot.ros.emulated_rig_node:main",
        ],
    },
)
