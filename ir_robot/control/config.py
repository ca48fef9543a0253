"""The venipuncture configuration: ``config/venipuncture.yaml`` -> :class:`VenipunctureConfig`.

Every section is a frozen dataclass with ranges (``ir_robot.config.param``), so a typo or
an out-of-range value in the YAML is refused with the file, the field and the allowed
range. Nothing is read at import time: call :func:`load_venipuncture_config`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ir_robot.config import from_dict, param, read_yaml
from ir_robot.control.safety import SafetyConfig
from ir_robot.control.tracking import ForceParams, TrackerParams
from ir_robot.planning.insertion import InsertionParams
from ir_robot.planning.pulsatility import PulsatilityParams
from ir_robot.planning.targets import TargetCriteria
from ir_robot.planning.vessels import FusionParams


@dataclass(frozen=True)
class ControlParams:
    """Timing, speeds and thresholds of :class:`~ir_robot.control.venipuncture.VenipunctureController`."""

    dt_s: float = param(0.05, range=(0.001, 1.0), unit="s", help="control period")
    us_period_s: float = param(0.1, range=(0.0, 5.0), unit="s", help="ultrasound frame period while tracking")
    probe_offset_mm: float = param(12.0, range=(-100.0, 100.0), unit="mm", help="probe ahead of the needle pivot")
    us_roi_mm: float = param(
        0.0,
        range=(0.0, 200.0),
        unit="mm",
        help="experimental, worse with the shipped model (docs/autonomy.md): once locked on "
        "the target, the learned ultrasound model sees only a square of this side around "
        "it (a zoom for 1-2 mm veins); the confirmation and the hold see whole frames, and "
        "the confirmation needs a vessel seen there; 0: whole frames",
    )
    scan_x_mm: tuple[float, ...] = param(
        (0.0, 10.0), range=(-200.0, 200.0), unit="mm", help="probe x of the transverse scan stations"
    )
    scan_y_mm: tuple[float, ...] = param(
        (-7.0, 7.0), range=(-200.0, 200.0), unit="mm", help="probe y of the scan stations (the image is 30 mm wide)"
    )
    scan_pitch_deg: float = param(30.0, range=(1.0, 89.0), unit="deg", help="needle pitch while scanning")
    safe_height_mm: float = param(8.0, range=(0.5, 60.0), unit="mm", help="pivot height while travelling")
    scan_frame_retries: int = param(3, range=(1, 20), help="frames taken at a station before giving up on it")
    travel_speed_mm_s: float = param(15.0, range=(0.1, 100.0), unit="mm/s")
    speed_fraction: float = param(0.9, range=(0.05, 1.0), help="fraction of the rig's velocity limits used")
    servo_tau_s: float = param(0.1, range=(0.005, 5.0), unit="s", help="position servo time constant")
    settle_tolerance_mm: float = param(0.05, range=(0.001, 5.0), unit="mm", help="and rad/10 for angles")
    v_air_mm_s: float = param(4.0, range=(0.05, 20.0), unit="mm/s", help="insertion speed above the skin")
    v_tissue_mm_s: float = param(2.0, range=(0.05, 20.0), unit="mm/s", help="insertion speed in tissue")
    v_slow_mm_s: float = param(0.8, range=(0.05, 20.0), unit="mm/s", help="near the vein and while searching")
    v_probe_mm_s: float = param(0.4, range=(0.05, 20.0), unit="mm/s", help="speed of the lumen test")
    v_retract_mm_s: float = param(8.0, range=(0.05, 20.0), unit="mm/s")
    slow_zone_mm: float = param(1.5, range=(0.0, 20.0), unit="mm", help="slow down this far before the front wall")
    skin_zone_mm: float = param(1.0, range=(0.0, 20.0), unit="mm", help="leave air speed this far above the skin")
    candidate_tolerance_mm: float = param(
        1.5, range=(0.0, 20.0), unit="mm", help="drops this far before the expected front wall may be the vein's"
    )
    probe_depth_mm: tuple[float, float] = param(
        (0.15, 0.4), range=(0.01, 5.0), unit="mm", help="lumen test travel: half the lumen half-path, clipped to this"
    )
    lumen_test_tau_s: float = param(
        0.0,
        range=(0.0, 5.0),
        unit="s",
        help="time constant of the move back to the lumen-test start (0: one tick; a rig "
        "that executes commands late, like GRBL jogging, needs about servo_tau_s)",
    )
    lumen_slope_n_per_mm: float = param(
        0.15, range=(0.0, 10.0), unit="N/mm", help="force rise per mm above which the tip still pushes a membrane"
    )
    force_pause_n: float = param(2.6, range=(0.05, 50.0), unit="N", help="pause insertion above this force")
    force_pause_timeout_s: float = param(1.0, range=(0.0, 30.0), unit="s", help="then give the attempt up")
    spike_pause_s: float = param(0.3, range=(0.0, 10.0), unit="s", help="pause after a force-sensor spike")
    max_spikes: int = param(4, range=(1, 100), help="spikes within spike_window_s that make the sensor untrusted")
    spike_window_s: float = param(2.0, range=(0.1, 60.0), unit="s")
    perception_max_age_s: float = param(
        0.35, range=(0.01, 10.0), unit="s", help="no fresh target fix for this long: stop advancing"
    )
    dropout_timeout_s: float = param(1.5, range=(0.05, 60.0), unit="s", help="no fix for this long: retract")
    lock_frames: int = param(3, range=(1, 50), help="frames with the target found before inserting")
    lock_search_mm: float = param(
        5.0, range=(0.1, 50.0), unit="mm", help="how far the phantom may have moved since the scan when locking on"
    )
    lock_timeout_s: float = param(2.0, range=(0.1, 60.0), unit="s")
    align_timeout_s: float = param(12.0, range=(0.5, 120.0), unit="s", help="reach the pose and lock within this")
    view_margin_mm: float = param(2.0, range=(0.0, 50.0), unit="mm", help="target this close to the image edge: out")
    replan_threshold_mm: float = param(
        2.0, range=(0.0, 50.0), unit="mm", help="re-plan (limits, clearance) when the target moved this much"
    )
    confirm_timeout_s: float = param(1.0, range=(0.0, 30.0), unit="s", help="wait for ultrasound to see the tip")
    require_us_confirmation: bool = param(True, help="confirm needs the ultrasound tip in the lumen")
    us_slab_half_mm: float = param(
        0.95,
        range=(0.0, 10.0),
        unit="mm",
        help="needle seen this far off the ultrasound plane (elevation/2 + needle radius)",
    )
    freeze_distance_mm: float = param(
        1.0,
        range=(0.0, 20.0),
        unit="mm",
        help="tip this far (plus the slab) before the image plane: stop trusting the "
        "target's own cross-section (needle dot, shadow)",
    )
    lumen_margin: float = param(1.0, range=(0.1, 3.0), help="scales the lumen ellipse in the ultrasound check")
    hold_s: float = param(1.0, range=(0.0, 60.0), unit="s", help="time the tip is held in the lumen")
    max_attempts: int = param(2, range=(1, 10))
    us_min_vessel_area_mm2: float = param(
        0.25, range=(0.0, 100.0), unit="mm^2", help="post-processing: smallest vessel cross-section kept"
    )


@dataclass(frozen=True)
class VenipunctureConfig:
    """Every parameter of the venipuncture procedure, one section per part (``config/venipuncture.yaml``)."""

    control: ControlParams = dataclasses.field(default_factory=ControlParams)
    criteria: TargetCriteria = dataclasses.field(default_factory=TargetCriteria)
    pulsatility: PulsatilityParams = dataclasses.field(default_factory=PulsatilityParams)
    fusion: FusionParams = dataclasses.field(default_factory=FusionParams)
    insertion: InsertionParams = dataclasses.field(default_factory=InsertionParams)
    tracker: TrackerParams = dataclasses.field(default_factory=TrackerParams)
    force: ForceParams = dataclasses.field(default_factory=ForceParams)
    safety: SafetyConfig = dataclasses.field(default_factory=SafetyConfig)


def default_config_path() -> Path:
    """``config/venipuncture.yaml``, the configuration ``ir-robot demo`` and the evaluation read by default."""
    from ir_robot.paths import data_path

    return data_path("config", "venipuncture.yaml")


def load_venipuncture_config(path: str | Path | None = None) -> VenipunctureConfig:
    """Read ``path`` (default ``config/venipuncture.yaml``); missing sections take their defaults."""
    p = Path(path) if path is not None else default_config_path()
    data = read_yaml(p)
    return from_dict(VenipunctureConfig, data, source=str(p))
