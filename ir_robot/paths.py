"""Find the package's data (urdf/, sim/, config/, models/, launch/) the same way from a
source checkout, a pip install and a colcon install.

Order: ``$IR_ROBOT_SHARE`` if set; the source tree next to the package (checkout
or ``pip install -e .``); ``<prefix>/share/ir_robot`` (pip install or colcon,
where setup.py's data_files put them); ament_index if importable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_DATA_DIRS = ("urdf", "sim", "config", "models", "launch")


def _candidates() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get("IR_ROBOT_SHARE")
    if env:
        out.append(Path(env))
    out.append(Path(__file__).resolve().parent.parent)  # source checkout / editable install
    for prefix in (
        sys.prefix,
        sys.base_prefix,
        str(Path(__file__).resolve().parents[4]) if len(Path(__file__).resolve().parents) > 4 else None,
    ):
        if prefix:
            out.append(Path(prefix) / "share" / "ir_robot")
    try:  # colcon / ROS install
        from ament_index_python.packages import get_package_share_directory

        out.append(Path(get_package_share_directory("ir_robot")))
    except Exception:
        pass
    return out


def share_dir() -> Path:
    """The directory holding urdf/, sim/, config/ and models/."""
    for cand in _candidates():
        if (cand / "urdf").is_dir() and (cand / "sim").is_dir():
            return cand
    raise FileNotFoundError(
        "cannot find ir_robot's data files (urdf/, sim/, config/); set IR_ROBOT_SHARE to the "
        "source checkout or to <install>/share/ir_robot"
    )


def data_path(*parts: str) -> Path:
    """Path to a data file, e.g. ``data_path('urdf', 'ir_rig.urdf')``."""
    if parts and parts[0] not in _DATA_DIRS:
        raise ValueError(f"data files live under {_DATA_DIRS}, not {parts[0]!r}")
    return share_dir().joinpath(*parts)
