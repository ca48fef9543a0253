"""Typed configuration of the benchtop phantom rig (``config/rig.yaml``).

The rig is three stepper stages on a GRBL 1.1 board, an HX711 load cell on a
second serial port and up to two OpenCV cameras (ultrasound frame grabber, NIR
camera). GRBL axes X, Y, Z drive the joints named in :class:`AxisConfig`
(normally ``x_mm``, ``y_mm`` and ``insert_mm``, the needle insertion stage tilted
at the fixed pitch); the remaining joints are fixed values (:class:`FixedJoints`).

Joint <-> machine mapping, per axis: ``joint = offset_mm + sign * MPos``. GRBL
1.1 (default homing direction) puts machine zero at the homed corner and the
travel at ``MPos in [-max_travel_mm, 0]``, so a joint's range follows from
``sign``, ``offset_mm`` and ``max_travel_mm``.

The GRBL ``$`` settings the rig expects (``$100-102`` steps/mm, ``$110-112`` max
rate, ``$120-122`` acceleration, ``$130-132`` travel, ``$20-22`` limits and
homing, ``$13`` report in mm) come from this config: :meth:`RigConfig.expected_settings`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ir_robot.config import load, param
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import JOINT_NAMES, JointVector

#: joints a GRBL axis may drive; the others are fixed by :class:`FixedJoints`
MOVABLE_JOINTS: tuple[str, ...] = ("x_mm", "y_mm", "insert_mm")
FIXED_JOINTS: tuple[str, ...] = ("z_mm", "pitch_rad", "probe_yaw_rad", "roll_rad")
AXES: tuple[str, ...] = ("X", "Y", "Z")


@dataclass(frozen=True, kw_only=True)
class AxisConfig:
    """One GRBL axis: which joint it drives and the $ settings the board must hold."""

    joint: str = param(choices=MOVABLE_JOINTS, help="rig joint driven by this axis")
    sign: int = param(1, choices=(-1, 1), help="joint = offset_mm + sign * MPos")
    offset_mm: float = param(0.0, range=(-1000.0, 1000.0), unit="mm", help="joint value at MPos = 0 (the homed corner)")
    steps_per_mm: float = param(range=(1.0, 20000.0), unit="steps/mm", help="GRBL $100-102")
    max_rate_mm_min: float = param(range=(1.0, 30000.0), unit="mm/min", help="GRBL $110-112")
    accel_mm_s2: float = param(range=(1.0, 10000.0), unit="mm/s^2", help="GRBL $120-122")
    max_travel_mm: float = param(range=(1.0, 2000.0), unit="mm", help="GRBL $130-132")

    def joint_range(self) -> tuple[float, float]:
        """(low, high) joint values reachable inside the travel ``MPos in [-max_travel_mm, 0]``."""
        a = self.offset_mm + self.sign * -self.max_travel_mm
        b = self.offset_mm
        return (min(a, b), max(a, b))


@dataclass(frozen=True)
class FixedJoints:
    """Joints the 3-axis stage cannot move: their constant values."""

    z_mm: float = param(0.0, range=(-200.0, 200.0), unit="mm", help="height of the needle pivot")
    pitch_rad: float = param(
        0.35, range=(0.0, 1.4), unit="rad", help="fixed tilt of the insertion stage below horizontal"
    )
    probe_yaw_rad: float = param(0.0, range=(-3.2, 3.2), unit="rad", help="ultrasound probe yaw")
    roll_rad: float = param(0.0, range=(0.0, 0.0), unit="rad", help="needle roll (no roll drive on this rig)")


@dataclass(frozen=True)
class GrblConfig:
    """The GRBL 1.1 motion controller: port, axes, expected settings and host timing."""

    port: str = param("/dev/ttyACM0", help="serial device of the GRBL board")
    baud: int = param(115200, choices=(9600, 19200, 38400, 57600, 115200, 230400, 250000), unit="baud")
    x: AxisConfig = dataclasses.field(
        default_factory=lambda: AxisConfig(
            joint="x_mm",
            sign=1,
            offset_mm=45.0,
            steps_per_mm=400.0,
            max_rate_mm_min=600.0,
            accel_mm_s2=50.0,
            max_travel_mm=90.0,
        )
    )
    y: AxisConfig = dataclasses.field(
        default_factory=lambda: AxisConfig(
            joint="y_mm",
            sign=1,
            offset_mm=22.0,
            steps_per_mm=400.0,
            max_rate_mm_min=600.0,
            accel_mm_s2=50.0,
            max_travel_mm=44.0,
        )
    )
    z: AxisConfig = dataclasses.field(
        default_factory=lambda: AxisConfig(
            joint="insert_mm",
            sign=-1,
            offset_mm=0.0,
            steps_per_mm=800.0,
            max_rate_mm_min=300.0,
            accel_mm_s2=20.0,
            max_travel_mm=40.0,
        )
    )
    soft_limits: bool = param(True, help="GRBL $20")
    hard_limits: bool = param(False, help="GRBL $21")
    homing: bool = param(True, help="GRBL $22 (the board starts in Alarm until $H or $X)")
    homing_pulloff_mm: float = param(1.0, range=(0.0, 20.0), unit="mm", help="GRBL $27")
    homing_seek_mm_min: float = param(500.0, range=(1.0, 10000.0), unit="mm/min", help="GRBL $25")
    extra_settings: dict = param(default_factory=dict, help="other $N: value pairs to check, e.g. {0: 10}")
    check_settings: bool = param(True, help="refuse to run when the board's $$ differ from this config")
    rx_buffer_bytes: int = param(
        127,
        range=(16, 1024),
        unit="bytes",
        help="character-counting budget; the smaller of this and the board's [OPT:] size - 1",
    )
    status_poll_hz: float = param(5.0, range=(1.0, 20.0), unit="Hz", help="'?' status query rate")
    jog_queue_blocks: int = param(
        4,
        range=(1, 15),
        help="rate commands are skipped while this many jog blocks wait in GRBL's planner "
        "(from the status report's Bf): bounds how far the stage lags the commands",
    )
    status_timeout_s: float = param(0.5, range=(0.05, 10.0), unit="s", help="halt when no status reply for this long")
    wake_timeout_s: float = param(
        2.5, range=(0.05, 20.0), unit="s", help="wait for the banner after opening, and again after a reset"
    )
    ack_timeout_s: float = param(5.0, range=(0.05, 120.0), unit="s", help="wait for ok/error of a line")
    homing_timeout_s: float = param(60.0, range=(0.5, 600.0), unit="s")
    max_protocol_errors: int = param(
        20, range=(1, 100000), help="malformed lines within one second before the link is declared broken"
    )

    def __post_init__(self) -> None:
        joints = [self.x.joint, self.y.joint, self.z.joint]
        if len(set(joints)) != 3:
            raise ConfigError(
                f"field 'grbl': axes x, y, z must drive three different joints of {MOVABLE_JOINTS}, got {joints}"
            )
        for key, value in self.extra_settings.items():
            if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= 255:
                raise ConfigError(
                    f"field 'grbl.extra_settings': key {key!r} is not a GRBL setting number 0-255 "
                    "(write 27: 1.0, not '$27')"
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"field 'grbl.extra_settings.{key}': value {value!r} is not a number")

    @property
    def axes(self) -> tuple[AxisConfig, AxisConfig, AxisConfig]:
        """The three GRBL axes in X, Y, Z order."""
        return (self.x, self.y, self.z)


@dataclass(frozen=True)
class LoadCellConfig:
    """HX711 load cell board streaming one ASCII reading per line on its own serial port.

    ``force_n = sign * (counts - tare_counts) / counts_per_n``. Calibrate with
    ``ir_robot.devices.loadcell.calibrate`` (docs/rig.md).
    """

    port: str | None = param(None, help="serial device of the load cell board; null: no force sensor")
    baud: int = param(115200, choices=(9600, 19200, 38400, 57600, 115200, 230400), unit="baud")
    tare_counts: float = param(0.0, range=(-(2.0**24), 2.0**24), unit="counts", help="reading with no load")
    counts_per_n: float = param(20000.0, range=(1.0, 1e8), unit="counts/N", help="calibration slope")
    sign: int = param(1, choices=(-1, 1), help="+1 when pushing the needle into tissue gives positive counts")
    sample_rate_hz: int = param(80, choices=(10, 80), unit="Hz", help="HX711 RATE pin: 10 or 80 samples/s")
    force_limit_n: float = param(
        3.0, range=(0.05, 100.0), unit="N", help="force ceiling: above it the rig feed-holds and resets at once"
    )
    timeout_s: float = param(0.5, range=(0.05, 10.0), unit="s", help="halt when the load cell is silent this long")


@dataclass(frozen=True)
class CameraConfig:
    """A cv2.VideoCapture source: USB frame grabber (ultrasound) or NIR camera."""

    source: str = param("0", help="device index ('0'), device path (/dev/video2), file or URL")
    modality: str = param("ultrasound", choices=("ultrasound", "nir", "camera"))
    width: int = param(0, range=(0, 8192), unit="px", help="requested capture width; 0 keeps the default")
    height: int = param(0, range=(0, 8192), unit="px", help="requested capture height; 0 keeps the default")
    fps: float = param(0.0, range=(0.0, 240.0), unit="Hz", help="requested frame rate; 0 keeps the default")
    crop: tuple[int, int, int, int] | None = param(
        None, help="(row, col, height, width) of the image area inside the grabbed frame"
    )
    spacing_mm: tuple[float, float] = param(
        (0.1, 0.1), range=(1e-4, 10.0), unit="mm/px", help="(row, col) pixel size after crop"
    )
    grayscale: bool = param(True, help="convert to single-channel uint8")
    open_timeout_s: float = param(2.0, range=(0.1, 30.0), unit="s")


@dataclass(frozen=True)
class RigConfig:
    """Everything about the benchtop rig (``config/rig.yaml``)."""

    grbl: GrblConfig = dataclasses.field(default_factory=GrblConfig)
    fixed: FixedJoints = dataclasses.field(default_factory=FixedJoints)
    loadcell: LoadCellConfig = dataclasses.field(default_factory=LoadCellConfig)
    ultrasound: CameraConfig | None = None
    nir: CameraConfig | None = None
    max_speed_mm_s: float = param(10.0, range=(0.1, 500.0), unit="mm/s", help="host-side cap on commanded joint speed")

    # ------------------------------------------------------------------ settings
    def expected_settings(self) -> dict[int, float]:
        """GRBL ``$N -> value`` the board must hold for this config (checked after ``$$``)."""
        g = self.grbl
        out: dict[int, float] = {13: 0.0, 20: float(g.soft_limits), 21: float(g.hard_limits), 22: float(g.homing)}
        if g.homing:
            out[25] = g.homing_seek_mm_min
            out[27] = g.homing_pulloff_mm
        for i, ax in enumerate(g.axes):
            out[100 + i] = ax.steps_per_mm
            out[110 + i] = ax.max_rate_mm_min
            out[120 + i] = ax.accel_mm_s2
            out[130 + i] = ax.max_travel_mm
        out.update({int(k): float(v) for k, v in g.extra_settings.items()})
        return dict(sorted(out.items()))

    # ------------------------------------------------------------------ mapping
    @property
    def axis_joints(self) -> tuple[str, str, str]:
        """The joints GRBL axes X, Y, Z drive, in that order."""
        return tuple(ax.joint for ax in self.grbl.axes)  # type: ignore[return-value]

    def joints_from_mpos(self, mpos) -> JointVector:
        """Joint vector for GRBL machine position (X, Y, Z) in mm."""
        mpos = np.asarray(mpos, dtype=float)[:3]
        values = {name: float(getattr(self.fixed, name)) for name in FIXED_JOINTS}
        for ax, m in zip(self.grbl.axes, mpos, strict=False):
            values[ax.joint] = ax.offset_mm + ax.sign * float(m)
        return JointVector(**values)

    def mpos_from_joints(self, joints: JointVector) -> np.ndarray:
        """GRBL machine position (X, Y, Z) in mm for a joint vector (fixed joints ignored)."""
        return np.array([(getattr(joints, ax.joint) - ax.offset_mm) * ax.sign for ax in self.grbl.axes])

    def axis_rates_from_joint_rates(self, rates: JointVector) -> np.ndarray:
        """Machine axis rates (mm/s) for joint rates (fixed joints ignored)."""
        return np.array([getattr(rates, ax.joint) * ax.sign for ax in self.grbl.axes])

    def joint_rates_from_axis_rates(self, axis_rates) -> JointVector:
        """Joint rates for GRBL machine axis rates (X, Y, Z in mm/s); fixed joints get 0."""
        axis_rates = np.asarray(axis_rates, dtype=float)[:3]
        values = {name: 0.0 for name in JOINT_NAMES}
        for ax, r in zip(self.grbl.axes, axis_rates, strict=False):
            values[ax.joint] = ax.sign * float(r) + 0.0  # no -0.0
        return JointVector(**values)

    def joint_limits(self) -> tuple[JointVector, JointVector]:
        """(lower, upper) joint limits: the axes' travel for the movable joints, the fixed value for the others."""
        lo = {name: float(getattr(self.fixed, name)) for name in FIXED_JOINTS}
        hi = dict(lo)
        for ax in self.grbl.axes:
            lo[ax.joint], hi[ax.joint] = ax.joint_range()
        return JointVector(**lo), JointVector(**hi)

    def joint_speed_limits(self) -> JointVector:
        """Per-joint speed limit (mm/s): the axis max rate, capped by ``max_speed_mm_s``; 0 for fixed joints."""
        values = {name: 0.0 for name in JOINT_NAMES}
        for ax in self.grbl.axes:
            values[ax.joint] = min(ax.max_rate_mm_min / 60.0, self.max_speed_mm_s)
        return JointVector(**values)


def default_rig_yaml() -> Path:
    """``config/rig.yaml``, the rig configuration the CLI and the ROS nodes read by default."""
    from ir_robot.paths import data_path

    return data_path("config", "rig.yaml")


def load_rig_config(path: str | Path | None = None) -> RigConfig:
    """Load and validate ``config/rig.yaml`` (or ``path``)."""
    return load(path if path is not None else default_rig_yaml(), RigConfig)
