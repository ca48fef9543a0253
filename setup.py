"""ir_robot: ament_python package for ROS 2 installs and a plain pip package.

Data (launch/, config/, urdf/, sim/, models/) installs under share/ir_robot so
``ir_robot.paths.share_dir()`` finds it from colcon, pip and source checkouts.

Dependencies: ``install_requires`` is what ``ir-robot sim needle``, the evaluation, the
benchmarks and the GRBL rig need; the ranges start at the pins in requirements*.txt (the
tested set that ``make install`` installs) and stop before the next major release.
Optional parts are extras: ``learning`` (torch, ONNX), ``rl``, ``ros`` (rclpy and the
message packages from pip) and ``dev``.

torch: install the CPU build FIRST, alone, before any extra that needs it, e.g.
    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
(the Makefile installs torch-requirements.txt first). With no torch installed, a bare
``torch`` requirement, asked for by ``learning`` or by stable-baselines3 in ``rl``, makes
pip download a CUDA build of several GB. torch is never in install_requires.
"""

import ast
import os
from glob import glob

from setuptools import find_packages, setup

package_name = "ir_robot"


def read_version():
    """The version, from ir_robot/__init__.py's __version__ (its only source; package.xml repeats it)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), package_name, "__init__.py")
    with open(path, encoding="utf-8") as f:
        module = ast.parse(f.read())
    for node in module.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"no __version__ in {path}")


def tree(folder):
    """data_files entries that keep the folder structure under share/ir_robot."""
    entries = {}
    for path in glob(os.path.join(folder, "**", "*"), recursive=True):
        if os.path.isfile(path) and "__pycache__" not in path:
            dest = os.path.join("share", package_name, os.path.dirname(path))
            entries.setdefault(dest, []).append(path)
    return sorted(entries.items())


# import/run time of the base package: the simulator, imaging, planning, control, the rig,
# recording, the benchmarks and the CLI (lower bound = requirements.txt's pin)
INSTALL_REQUIRES = [
    "numpy>=2.4.6,<3",
    "scipy>=1.17.1,<2",
    "PyYAML>=6.0.3,<7",
    "pybullet>=3.2.7,<4",
    "opencv-python-headless>=5.0.0.93,<6",
    "matplotlib>=3.11.2,<4",
    "tqdm>=4.70.1,<5",
    "pyserial>=3.5,<4",
    "mcap>=1.6.0,<2",
    "trimesh>=5.2.0,<6",  # the catheter world's vessel meshes (pure Python + numpy)
    "pillow>=13.0.0,<14",  # ir-robot sim catheter's GIF fallback when OpenCV has no MP4 codec (matplotlib needs it too)
]

EXTRAS_REQUIRE = {
    # perception networks: training, inference, export. Install CPU torch first (see above):
    # torch 2.13.0 (the CPU wheel the Makefile installs) satisfies this range, so pip adds nothing.
    "learning": [
        "torch>=2.13.0,<3",
        "onnx>=1.23.2,<2",
        "onnxruntime>=1.32.0,<2",
    ],
    # RL environments and training (stable-baselines3 requires torch: install CPU torch first)
    "rl": [
        "gymnasium>=1.4.0,<2",
        "stable-baselines3>=2.9.2,<3",
    ],
    # ROS 2 (Kilted) from pip, as in requirements-ros.txt; a colcon build uses the system's ROS instead
    "ros": [
        "mcap-ros2-support>=0.6.0,<1",
        "ros-kilted-rclpy[fastrtps]>=9.1.2,<10",
        "ros-std-msgs>=5.5.1,<6",
        "ros-sensor-msgs>=5.5.1,<6",
        "ros-geometry-msgs>=5.5.1,<6",
        "ros-visualization-msgs>=5.5.1,<6",
        "ros-std-srvs>=5.5.1,<6",
    ],
    # tests, lint and types (ruff is 0.x: its minor releases add rules, so the range stops at the next minor)
    "dev": [
        "pytest>=9.2.0,<10",
        "ruff>=0.17.6,<0.18",
        "mypy>=2.4.1,<3",
        "pre-commit>=4.7.0,<5",
        "types-PyYAML>=6.0.12.20261113,<7",
    ],
}


setup(
    name=package_name,
    version=read_version(),
    packages=find_packages(include=[package_name, package_name + ".*"]),
    package_data={package_name: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("urdf"),
        *tree("sim"),
        *tree("models"),
    ],
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    zip_safe=False,
    maintainer="ir_robot developers",
    maintainer_email="ir-robot@example.org",
    description="AI-assisted interventional radiology robotics: ROS 2 nodes, PyBullet simulation, perception, RL",
    license="Apache-2.0",
    license_files=["LICENSE"],
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
