"""A simulated phantom on the emulated rig: the load cell's tissue force and the scanner's images.

:class:`~ir_robot.devices.emulator.GrblEmulator` plays the GRBL board and the HX711 board; the
ultrasound scanner and the NIR camera have no serial protocol to emulate. :class:`EmulatedPhantom`
stands in for the phantom and both imagers, from one simulator phantom
(:mod:`ir_robot.sim.phantom`):

* :meth:`EmulatedPhantom.force_fn` is the emulator's ``force_fn``: the tissue model
  (:class:`~ir_robot.sim.tissue.NeedleTissueModel`) at the emulated stage's joints, so the force
  the host reads through the load-cell port (counts, tare, scale) is the needle in this phantom;
* :meth:`EmulatedPhantom.camera` renders the ultrasound frame (:mod:`ir_robot.sim.ultrasound`, probe
  ``probe_offset_mm`` ahead of the pivot at the fixed probe yaw) and the NIR view
  (:mod:`ir_robot.sim.nir`, a fixed camera over the phantom centre) at the stage's pose, with the
  needle drawn at its tip.

What is simulated, said plainly: the images are rendered, not captured. They are rendered at the
*emulated board's* machine position (``pose_fn``, e.g. ``emulator.joints``: where the stage
physically is, which the host only learns from the next status report), stamped with the
monotonic clock GrblRig stamps its status with. They carry the renderer's label mask, so
``perception="ground_truth"`` works as in ``ir-robot evaluate --ground-truth-perception``, and
nothing else: no probe pose or view in ``meta`` (the controller places them from the rig's joints,
as it must with real video). The phantom is still (no arm motion), and the bench records the ground
truth the controller never sees (:attr:`flashback`, :attr:`back_wall_punctured`,
:meth:`in_vein_lumen`) for scoring.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

from ir_robot.core.types import (
    PROBE_OFFSET_MM,
    ImageFrame,
    JointVector,
    NeedlePose,
    NirView,
    ProbePose,
    needle_direction,
)

if TYPE_CHECKING:
    from ir_robot.sim.tissue import NeedleContact


class EmulatedPhantom:
    """The phantom, its force model and its two imagers for an emulated rig (see the module docstring).

    ``phantom``: a :class:`~ir_robot.sim.phantom.PhantomSpec` (default ``sim/phantoms/forearm.yaml``);
    motion is switched off. ``probe_offset_mm``: where the probe sits ahead of the needle pivot on
    the carriage. ``seed`` seeds the force noise and the image speckle.
    """

    def __init__(
        self,
        phantom=None,
        *,
        probe_offset_mm: float = PROBE_OFFSET_MM,
        seed: int = 0,
        needle_gauge: int = 20,
        nir_fov_mm: float = 50.0,
        force_noise_n: float = 0.01,
    ):
        import dataclasses

        from ir_robot.paths import data_path
        from ir_robot.sim.nir import NirParams, NirRenderer
        from ir_robot.sim.phantom import Phantom, load_phantom
        from ir_robot.sim.tissue import ForceModelParams, NeedleTissueModel
        from ir_robot.sim.ultrasound import UltrasoundParams, UltrasoundRenderer
        from ir_robot.sim.world import GAUGE_DIAMETER_MM

        spec = phantom if phantom is not None else load_phantom(data_path("sim", "phantoms", "forearm.yaml"))
        spec = dataclasses.replace(spec, motion=dataclasses.replace(spec.motion, enabled=False))
        self.phantom = Phantom(spec)
        self.probe_offset_mm = float(probe_offset_mm)
        self.needle_diameter_mm = GAUGE_DIAMETER_MM[needle_gauge]
        self.nir_view = NirView(0.0, 0.0, float(nir_fov_mm))
        ss = np.random.SeedSequence([seed, 77])
        r_force, r_us, r_nir = ss.spawn(3)
        self._rng_force = np.random.default_rng(r_force)
        self._rng_us = np.random.default_rng(r_us)
        self._rng_nir = np.random.default_rng(r_nir)
        self.tissue = NeedleTissueModel(
            self.phantom, ForceModelParams(noise_n=force_noise_n), needle_diameter_mm=self.needle_diameter_mm
        )
        self._us = UltrasoundRenderer(UltrasoundParams(), seed=seed)
        self._nir = NirRenderer(NirParams(), seed=seed)
        self._lock = threading.Lock()
        self.contact: NeedleContact | None = None
        self._events: list = []
        self._back_wall = False
        self.t_s = 0.0
        #: ground truth, for scoring only: the tip has been in a vein lumen (blood would flash back)
        self.flashback = False
        self.frames = {"us": 0, "nir": 0}

    # ------------------------------------------------------------------ force (emulator thread)
    def force_fn(self, t_s: float, joints: JointVector, insert_rate_mm_s: float) -> float:
        """``GrblEmulator(force_fn=phantom.force_fn)``: the axial needle force (N) at the stage's joints."""
        pivot = (joints.x_mm, joints.y_mm, joints.z_mm)
        with self._lock:
            c = self.tissue.update(
                pivot, needle_direction(joints.pitch_rad), joints.insert_mm, insert_rate_mm_s, t_s, self._rng_force
            )
            self.contact, self.t_s = c, float(t_s)
            self._events.extend(c.events)
            # latched: the tissue model clears its back-wall flag once the needle has left the skin
            self._back_wall = self._back_wall or bool(c.back_wall_punctured)
            if self._in_vein(c):
                self.flashback = True
        return float(c.measured_force_n)

    def reset(self) -> None:
        """A fresh phantom of the same build (as if the block were replaced): no membrane torn, no puncture
        recorded. Refused (:class:`~ir_robot.core.errors.RigError`) while the needle is under the skin.
        """
        from ir_robot.core.errors import RigError
        from ir_robot.core.types import Tissue

        with self._lock:
            if self.contact is not None and self.contact.tip_tissue != Tissue.AIR:
                raise RigError(
                    f"the needle is in the phantom ({self.contact.inserted_mm:.1f} mm, tip in "
                    f"{self.contact.tip_tissue.name.lower()}): retract it before a new phantom"
                )
            self.tissue.reset()
            self.contact = None
            self._events.clear()
            self._back_wall = False
            self.flashback = False

    def _in_vein(self, c) -> bool:
        return bool(c.in_lumen and c.lumen_vessel >= 0 and not self.phantom.is_artery[c.lumen_vessel])

    def in_vein_lumen(self) -> bool:
        """Ground truth now: is the needle tip inside a vein's lumen?"""
        with self._lock:
            return self.contact is not None and self._in_vein(self.contact)

    @property
    def back_wall_punctured(self) -> bool:
        """Ground truth: a vessel's back wall was torn at any time (not only while the needle is in)."""
        with self._lock:
            return self._back_wall or any(e.membrane == "back_wall" for e in self._events)

    @property
    def artery_punctured(self) -> bool:
        """Ground truth: the needle crossed an artery's wall at any time since the start or the last reset."""
        return any(
            e.membrane == "vessel_wall" and e.vessel_index >= 0 and bool(self.phantom.is_artery[e.vessel_index])
            for e in self.events()
        )

    def events(self) -> tuple:
        """Every :class:`~ir_robot.sim.tissue.PunctureEvent` since the start (ground truth)."""
        with self._lock:
            return tuple(self._events)

    # ------------------------------------------------------------------ images
    def render(self, joints: JointVector, wanted: frozenset, stamp_s: float):
        """An :class:`~ir_robot.control.sensing.Observation` with the wanted frames at ``joints``."""
        from ir_robot.core.types import Observation

        tip = np.array([joints.x_mm, joints.y_mm, joints.z_mm]) + joints.insert_mm * needle_direction(joints.pitch_rad)
        needle = NeedlePose(
            tip_mm=(float(tip[0]), float(tip[1]), float(tip[2])),
            direction=tuple(needle_direction(joints.pitch_rad)),
            diameter_mm=self.needle_diameter_mm,
        )
        us = nir = None
        with self._lock:
            t = self.t_s
        if "us" in wanted:
            probe = ProbePose(joints.x_mm + self.probe_offset_mm, joints.y_mm, joints.probe_yaw_rad)
            f = self._us.render(self.phantom, probe, needle, t, self._rng_us)
            us = ImageFrame(
                "us",
                f.image,
                f.spacing_mm,
                stamp_s=stamp_s,
                labels=f.labels,
                meta={"source": "simulated phantom on the emulated rig"},
            )
            self.frames["us"] += 1
        if "nir" in wanted:
            f = self._nir.render(self.phantom, self.nir_view, t, self._rng_nir, needle=needle)
            if abs(f.shape[1] * f.spacing_mm[1] - self.nir_view.fov_mm) > 1e-6:
                raise ValueError("NIR frame does not span the view: the default view placement would be wrong")
            nir = ImageFrame(
                "nir",
                f.image,
                f.spacing_mm,
                stamp_s=stamp_s,
                labels=f.labels,
                meta={"source": "simulated phantom on the emulated rig"},
            )
            self.frames["nir"] += 1
        return Observation(us=us, nir=nir)

    def camera(
        self, pose_fn: Callable[[], JointVector], clock: Callable[[], float] = time.monotonic
    ) -> Callable[[frozenset], object]:
        """``camera_fn(wanted)`` for :func:`~ir_robot.control.runner.run_procedure`: frames at ``pose_fn()``."""

        def camera_fn(wanted: frozenset):
            return self.render(pose_fn(), wanted, clock())

        return camera_fn


def emulator_start(rig_config, venipuncture_config) -> JointVector:
    """Where the emulated stage starts: over the controller's first scan point (probe ahead of the pivot),
    needle retracted, other joints at their lower limits.
    """
    c = venipuncture_config.control
    lo, _ = rig_config.joint_limits()
    return lo.replace(x_mm=c.scan_x_mm[0] - c.probe_offset_mm, y_mm=c.scan_y_mm[0], insert_mm=lo.insert_mm)


def start_emulator(rig_config, phantom: EmulatedPhantom, *, start: JointVector | None = None, seed: int = 0):
    """A started :class:`~ir_robot.devices.emulator.GrblEmulator` whose load cell is ``phantom`` and whose
    stage starts at ``start`` (default: the rig's travel centre, needle out).
    """
    from ir_robot.devices.emulator import GrblEmulator

    lo, hi = rig_config.joint_limits()
    if start is None:
        start = JointVector.from_array(0.5 * (lo.as_array() + hi.as_array())).replace(insert_mm=lo.insert_mm)
    return GrblEmulator(
        rig_config,
        seed=seed,
        force_fn=phantom.force_fn,
        start_mpos=tuple(float(v) for v in rig_config.mpos_from_joints(start)),
    ).start()


class EmulatedRig:
    """The whole emulated rig: :class:`EmulatedPhantom` + :class:`~ir_robot.devices.emulator.GrblEmulator` on
    ptys (load cell fed by the phantom's force model) + a connected :class:`~ir_robot.devices.serial_rig.GrblRig`.

    The emulated board starts at ``start`` (joints; default: the rig's travel centre, needle out) and is
    unlocked with ``$X`` when its config enables homing (an emulator has no switches to home against
    quickly). ``camera`` gives the phantom's frames at the emulated stage's pose. Close it (or use it as a
    context manager) to stop the rig, the emulator and the ptys.
    """

    def __init__(
        self,
        rig_config=None,
        *,
        probe_offset_mm: float = PROBE_OFFSET_MM,
        seed: int = 0,
        start: JointVector | None = None,
        phantom=None,
    ):
        from ir_robot.devices.config import load_rig_config
        from ir_robot.devices.serial_rig import GrblRig

        self.config = rig_config if rig_config is not None else load_rig_config()
        self.phantom = EmulatedPhantom(phantom, probe_offset_mm=probe_offset_mm, seed=seed)
        self.emulator = start_emulator(self.config, self.phantom, start=start, seed=seed)
        self.rig = None
        try:
            self.rig = GrblRig(self.config, port=self.emulator.port, loadcell_port=self.emulator.loadcell_port)
            if self.config.grbl.homing:
                self.rig.unlock()
        except BaseException:
            self.close()
            raise
        self.camera = self.phantom.camera(self.emulator.joints)

    def close(self) -> None:
        """Closes the GrblRig, then stops the emulator and its ptys (even if the rig's close fails)."""
        try:
            if self.rig is not None:
                self.rig.close()
        finally:
            self.emulator.close()

    def __enter__(self) -> EmulatedRig:
        return self

    def __exit__(self, *exc) -> Literal[False]:
        self.close()
        return False
