"""The catheter world: a vessel tree, an instrument driven at its hub, fluoroscopy and a tip camera.

Same contract as the needle world (:class:`ir_robot.sim.world.NeedleWorld`)::

    world = CatheterWorld(CatheterWorldConfig(anatomy="type2", instrument="guidewire_035_angled"))
    state = world.reset(seed=3)                       # a type II arch drawn from seed 3
    state = world.step(RigCommand(JointVector(insert_mm=35.0, roll_rad=1.0), 0.1), dt=0.1)
    frame = world.fluoroscopy()                       # FluoroFrame with masks, tip keypoint, projection
    cam = world.tip_camera()                          # TipCameraFrame with class, contact ratio, force

The rig is ``urdf/catheter_rig.urdf``: ``insert_mm`` is the instrument's travel through the access
sheath, ``roll_rad`` its rotation at the hub; every other joint of the shared joint vector is fixed
at 0, so :class:`~ir_robot.devices.sim_rig.SimRig` and the safety layer drive this world unchanged.
Commands beyond the URDF's speed or travel limits are clamped and reported in ``state.clamped``.

The mechanics is the quasi-static elastic rod of :mod:`ir_robot.sim.catheter` against
:class:`~ir_robot.sim.endovascular.lumen.AnatomyLumen`. PyBullet holds the scene (the drive's URDF
placed at the access, and in GUI mode the vessel meshes and the instrument), with its own client id.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import JOINT_NAMES, JointVector, RigCommand
from ir_robot.paths import data_path
from ir_robot.sim.anatomy.graph import VesselTree, resolve_name
from ir_robot.sim.anatomy.user import load_anatomy
from ir_robot.sim.catheter.drive import CatheterDevice, DriveCommand, DriveLimits
from ir_robot.sim.catheter.instrument import InstrumentSpec, load_instrument
from ir_robot.sim.endovascular.lumen import AnatomyLumen
from ir_robot.sim.imaging.fluoroscopy import FluoroFrame, FluoroscopyRenderer
from ir_robot.sim.imaging.imaging_config import ImagingConfig, load_imaging_config, renderers_from_config
from ir_robot.sim.imaging.scene_inputs import RadiopaqueRod, VesselTube
from ir_robot.sim.imaging.scene_inputs import ValveRing as ImagingValveRing
from ir_robot.sim.imaging.tip_camera import TipCameraFrame, TipCameraRenderer
from ir_robot.sim.rate_limits import clamp_rates
from ir_robot.urdf import read_joint_limits

FloatArray = npt.NDArray[np.float64]

#: the catheter rig's two axes (the others of the shared joint vector are fixed)
DRIVE_JOINTS: tuple[str, str] = ("insert_mm", "roll_rad")
_INSERT = JOINT_NAMES.index("insert_mm")
_ROLL = JOINT_NAMES.index("roll_rad")
#: radiopacity (linear attenuation, 1/mm) of a nitinol/steel wire and of a barium-filled catheter shaft
_ATTENUATION_PER_MM = {"guidewire": 0.6, "catheter": 0.25}
#: how many anatomies (with their lumens) a world keeps in memory across resets
_ANATOMY_CACHE = 4


@dataclass(frozen=True)
class CatheterWorldConfig:
    """What :class:`CatheterWorld` simulates: anatomy, instrument, access, rig and imaging."""

    anatomy: str = param(
        "random", help="random | type1 | type2 | type3 | bovine (drawn from the reset seed) | a centreline YAML/CSV"
    )
    instrument: str = param("guidewire_035_angled", help="name under sim/instruments/ or a YAML path")
    access: str = param("right_femoral", help="branch entered at its distal end (the sheath's tip)")
    access_depth_mm: float = param(
        5.0, range=(0.0, 100.0), unit="mm", help="how far inside the access branch the sheath ends"
    )
    force_noise_n: float = param(0.01, range=(0.0, 1.0), unit="N", help="load-cell noise (std)")
    valve_ring: bool = param(True, help="the prosthetic valve ring is a solid obstacle in the root")
    urdf: str = param("catheter_rig.urdf", help="drive description under urdf/ (joint travel and speed limits)")
    imaging: str = param("catheter_imaging.yaml", help="imaging config under config/ or a YAML path")


@dataclass(frozen=True)
class CatheterWorldState:
    """The world after a step: drive joints, forces, the tip's ground truth, events and clamps."""

    t_s: float
    joints: JointVector
    velocity: JointVector
    force_n: float  # axial force at the drive's load cell, measured (noisy); + when the anatomy resists
    true_force_n: float
    tip_mm: tuple[float, float, float]
    tip_direction: tuple[float, float, float]
    tip_force_n: tuple[float, float, float]  # what the tip presses on the wall (N)
    max_wall_force_n: float  # largest wall force on any node during the last step
    n_contacts: int
    n_inserted_nodes: int
    inserted_mm: float
    tip_branch: str
    events: tuple[dict[str, Any], ...] = ()  # every event since reset (wall force over 1.5 N, ...)
    clamped: tuple[str, ...] = ()  # limit clamps applied during the last step


def _tree_from(anatomy: str, seed: int) -> VesselTree:
    loaded = load_anatomy(anatomy, seed)
    if not isinstance(loaded, VesselTree):
        raise ConfigError(
            f"{anatomy}: field 'anatomy': a lumen mesh has no centreline graph, which the catheter world needs for "
            "the access, the targets and the fluoroscopy; give a centreline YAML/CSV of the same anatomy"
        )
    return loaded


class CatheterWorld:
    """Endovascular world: anatomy + instrument mechanics + drive URDF + fluoroscopy + tip camera."""

    def __init__(self, config: CatheterWorldConfig | None = None, *, gui: bool = False, tree: VesselTree | None = None):
        import pybullet as pb  # imported here so `import ir_robot.sim` stays light

        self.config = cfg = config or CatheterWorldConfig()
        self.spec: InstrumentSpec = load_instrument(cfg.instrument)
        imaging = Path(cfg.imaging)
        self.imaging_config: ImagingConfig = load_imaging_config(
            imaging if imaging.is_file() else data_path("config", cfg.imaging)
        )
        urdf_path = data_path("urdf", cfg.urdf)
        if not urdf_path.is_file():
            raise ConfigError(f"URDF {urdf_path} not found (config field 'urdf')")
        limits = read_joint_limits(urdf_path, fixed_if_absent=True)
        self.lower = np.array([limits[n].lower for n in JOINT_NAMES])
        self.upper = np.array([limits[n].upper for n in JOINT_NAMES])
        self.vmax = np.array([limits[n].velocity for n in JOINT_NAMES])
        #: joints this world can move (the rest have zero travel): what SimRig reports as movable
        self.movable_joints: tuple[str, ...] = tuple(
            n for n, lo, hi in zip(JOINT_NAMES, self.lower, self.upper, strict=True) if hi > lo
        )
        self._pb = pb
        self._gui = gui
        self._closed = True  # until connected, close() has nothing to release
        self._client: int = pb.connect(pb.GUI if gui else pb.DIRECT)
        self._closed = False
        self._robot = pb.loadURDF(str(urdf_path), useFixedBase=True, physicsClientId=self._client)
        self._joint_index = {
            pb.getJointInfo(self._robot, j, physicsClientId=self._client)[1].decode(): j
            for j in range(pb.getNumJoints(self._robot, physicsClientId=self._client))
        }
        self._scene_bodies: list[int] = []
        self._wire_lines: list[int] = []
        self._fixed_tree: tuple[VesselTree, AnatomyLumen] | None = None
        self._anatomies: OrderedDict[tuple[str, int], tuple[VesselTree, AnatomyLumen]] = OrderedDict()
        self.tree: VesselTree
        self.lumen: AnatomyLumen
        self.device: CatheterDevice
        self.fluoro: FluoroscopyRenderer
        self.camera: TipCameraRenderer
        self._state: CatheterWorldState
        self.reset(seed=0, tree=tree)

    # ------------------------------------------------------------------ set-up
    @property
    def client_id(self) -> int:
        """The PyBullet client this world owns."""
        return self._client

    def limits(self) -> tuple[JointVector, JointVector]:
        """Lower and upper joint limits from the drive's URDF (fixed joints at 0)."""
        return JointVector.from_array(self.lower), JointVector.from_array(self.upper)

    def velocity_limits(self) -> JointVector:
        """Joint speed limits from the URDF (35 mm/s, pi rad/s; 0 for the fixed joints)."""
        return JointVector.from_array(self.vmax)

    def _anatomy(self, seed: int) -> tuple[VesselTree, AnatomyLumen]:
        fixed = self.config.anatomy not in ("random", "type1", "type2", "type3", "bovine")
        key = (self.config.anatomy, 0 if fixed else seed)
        if key in self._anatomies:
            self._anatomies.move_to_end(key)
            return self._anatomies[key]
        tree = _tree_from(self.config.anatomy, key[1])
        made = (tree, AnatomyLumen(tree, include_valve_ring=self.config.valve_ring))
        self._anatomies[key] = made
        while len(self._anatomies) > _ANATOMY_CACHE:
            self._anatomies.popitem(last=False)
        return made

    def reset(
        self, seed: int | None = None, *, tree: VesselTree | None = None, roll_rad: float = 0.0
    ) -> CatheterWorldState:
        """Start over: the anatomy for ``seed``, the instrument retracted into the sheath.

        ``tree`` replaces the configured anatomy from now on (as the needle world's ``phantom``);
        ``roll_rad`` is the hub's (and the pre-curve's) starting roll.
        """
        seed = 0 if seed is None else int(seed)
        ss = np.random.SeedSequence(seed)
        r_force, r_img = ss.spawn(2)
        self._rng_force = np.random.default_rng(r_force)
        if tree is not None:
            self._fixed_tree = (tree, AnatomyLumen(tree, include_valve_ring=self.config.valve_ring))
        if self._fixed_tree is not None:
            self.tree, self.lumen = self._fixed_tree
        else:
            self.tree, self.lumen = self._anatomy(seed)
        access = resolve_name(self.config.access, self.tree.names)
        br = self.tree.branch(access)
        arc = max(br.length_mm - self.config.access_depth_mm, 0.0)
        self.access_branch = access
        self.access_point = br.point_at(arc)[0]
        self.access_direction = -br.tangent_at(arc)  # against the flow: into the body
        self.device = CatheterDevice(
            self.spec,
            self.lumen,
            self.access_point,
            self.access_direction,
            roll_rad=float(roll_rad),
            limits=DriveLimits(
                max_translation_mm_s=float(self.vmax[_INSERT]), max_rotation_rad_s=float(self.vmax[_ROLL])
            ),
            up=(0.0, -1.0, 0.0),  # the pre-curve starts pointing anterior
        )
        self.fluoro, self.camera = renderers_from_config(self.imaging_config, seed=int(r_img.generate_state(1)[0]))
        self.fluoro.set_anatomy(self.vessel_tubes(), self._imaging_ring())
        self._t = 0.0
        self._q = np.zeros(len(JOINT_NAMES))
        self._q[_ROLL] = float(roll_rad)
        self._qd = np.zeros(len(JOINT_NAMES))
        self._events: list[dict[str, Any]] = []
        self._last_peak = 0.0  # the largest wall force during the last step
        self._place_scene()
        self._state = self._read(0.0, ())
        return self._state

    def vessel_tubes(self) -> list[VesselTube]:
        """The tree's branches as tubes for the fluoroscopy renderer."""
        return [VesselTube(b.name, b.points_mm, b.radii_mm) for b in self.tree.branches]

    def _imaging_ring(self) -> ImagingValveRing | None:
        ring = self.tree.valve_ring
        if ring is None:
            return None
        return ImagingValveRing(ring.centre_mm, ring.normal, ring.radius_mm, ring.tube_radius_mm)

    # ------------------------------------------------------------------ PyBullet scene
    def _place_scene(self) -> None:
        pb, c = self._pb, self._client
        pos = (self.access_point / 1000.0).tolist()
        pb.resetBasePositionAndOrientation(self._robot, pos, _quat_x_to(self.access_direction), physicsClientId=c)
        for name in DRIVE_JOINTS:
            pb.resetJointState(self._robot, self._joint_index[name], 0.0, 0.0, physicsClientId=c)
        if not self._gui:
            return
        from ir_robot.sim.endovascular.scene import add_vessel_visuals

        for body in self._scene_bodies:
            pb.removeBody(body, physicsClientId=c)
        self._scene_bodies = add_vessel_visuals(pb, c, self.tree)

    def _update_scene(self) -> None:
        pb, c = self._pb, self._client
        pb.resetJointState(
            self._robot, self._joint_index["insert_mm"], self._q[_INSERT] / 1000.0, 0.0, physicsClientId=c
        )
        pb.resetJointState(self._robot, self._joint_index["roll_rad"], self._q[_ROLL], 0.0, physicsClientId=c)
        if self._gui:
            from ir_robot.sim.endovascular.scene import draw_instrument

            self._wire_lines = draw_instrument(pb, c, self.device.positions, self._wire_lines)

    # ------------------------------------------------------------------ stepping
    def clamp_command(self, command: RigCommand, dt: float) -> tuple[FloatArray, tuple[str, ...]]:
        """Joint rates after the URDF speed and travel limits (and the instrument's length), plus what was clamped."""
        upper = self.upper.copy()
        upper[_INSERT] = min(upper[_INSERT], self.device.rod.max_inserted_mm)
        v, _, notes = clamp_rates(command.velocity.as_array(), self._q, self.lower, upper, self.vmax, dt)
        return v, notes

    def step(self, command: RigCommand, dt: float, *, tip_force_n: npt.ArrayLike | None = None) -> CatheterWorldState:
        """Hold ``command`` for ``dt`` seconds (or until its ``duration_s`` runs out, then stop).

        ``tip_force_n`` is an optional external force (N, 3-vector) on the distal tip during the step:
        a magnetic-steering field, or a test load. The rig's drive never applies one.
        """
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
        external = None
        if tip_force_n is not None:
            f = np.asarray(tip_force_n, dtype=np.float64).reshape(-1)
            if f.shape != (3,) or not np.all(np.isfinite(f)):
                raise ValueError(f"tip_force_n must be a finite 3-vector in N, got {tip_force_n!r}")
            external = np.zeros((self.device.rod.disc.n_nodes, 3))
            external[0] = f
        hold = min(dt, max(command.duration_s, 0.0))
        notes: tuple[str, ...] = ()
        self._last_peak = 0.0
        if hold > 1e-9:
            notes = self._advance(command, hold, external)
        if dt - hold > 1e-9:  # the command expired inside this step: the drive stops (watchdog semantics)
            self._advance(RigCommand.stop(), dt - hold, external)
        self._state = self._read(self._last_peak, notes)
        return self._state

    def _advance(self, command: RigCommand, dt: float, external: FloatArray | None = None) -> tuple[str, ...]:
        v, notes = self.clamp_command(command, dt)
        res = self.device.step(DriveCommand(float(v[_INSERT]), float(v[_ROLL])), dt, external)
        self._t += dt
        self._q = self._q + v * dt
        self._q[_INSERT] = self.device.rod.inserted_mm  # the rod's own record (clamped at its length)
        self._qd = v
        self._last_peak = max(self._last_peak, res.max_wall_force_n)
        for ev in res.events:
            self._events.append({**ev, "time_s": self._t})
        self._update_scene()
        return notes + tuple(f"drive {c} clamped" for c in res.clamped)

    def _read(self, peak: float, clamped: tuple[str, ...]) -> CatheterWorldState:
        rod = self.device.rod
        forces = rod.last_forces
        x = self.device.positions
        tip = x[0]
        t = x[0] - x[1] if len(x) > 1 else self.access_direction
        t = t / max(float(np.linalg.norm(t)), 1e-12)
        true_f = float(forces.axial_force_n)
        noise = float(self._rng_force.normal(0.0, self.config.force_noise_n)) if self.config.force_noise_n else 0.0
        return CatheterWorldState(
            t_s=self._t,
            joints=JointVector.from_array(self._q),
            velocity=JointVector.from_array(self._qd),
            force_n=true_f + noise,
            true_force_n=true_f,
            tip_mm=(float(tip[0]), float(tip[1]), float(tip[2])),
            tip_direction=(float(t[0]), float(t[1]), float(t[2])),
            tip_force_n=tuple(float(f) for f in forces.tip_force),  # type: ignore[arg-type]
            max_wall_force_n=float(max(peak, forces.max_wall_force_n)),
            n_contacts=int(forces.n_contacts),
            n_inserted_nodes=int(rod.n_free),
            inserted_mm=float(rod.inserted_mm),
            tip_branch=self.lumen.branch_at(tip)[0],
            events=tuple(self._events),
            clamped=clamped,
        )

    def state(self) -> CatheterWorldState:
        """The state after the last step or reset (no simulation)."""
        return self._state

    # ------------------------------------------------------------------ imaging
    def instrument_rod(self) -> RadiopaqueRod:
        """The inserted instrument for the renderers: node positions proximal first, tip last."""
        pts = self.device.positions[::-1]
        if len(pts) < 2:  # nothing inserted yet: the sheath's last millimetre
            pts = np.stack([self.access_point - self.access_direction, self.access_point])
        return RadiopaqueRod(
            pts,
            outer_diameter_mm=self.spec.contact_diameter_mm,
            attenuation_per_mm=_ATTENUATION_PER_MM[self.spec.kind],
            name=self.spec.name,
        )

    def fluoroscopy(
        self, contrast: float | tuple[float, ...] = 0.0, roi: tuple[int, int, int, int] | None = None
    ) -> FluoroFrame:
        """A frame of the instrument; ``contrast`` in the vessels makes it an angiogram; ``roi`` collimates it."""
        return self.fluoro.render([self.instrument_rod()], contrast=contrast, roi=roi)

    def dsa(self, contrast: float | tuple[float, ...] = 1.0) -> npt.NDArray[np.float32]:
        """Digital subtraction: ``ln(mask) - ln(live)`` of a contrast frame against a contrast-free one."""
        mask = self.fluoroscopy(0.0)
        live = self.fluoroscopy(contrast)
        return self.fluoro.dsa(live, mask)

    def tip_contact(self) -> tuple[str, float]:
        """What the tip's window touches and how hard: (``blood`` | ``tissue`` | ``valve``, normal force N).

        The window faces along the tip, so the normal force is the tip's wall force along its direction.
        """
        s = self._state
        f = np.asarray(s.tip_force_n)
        normal = float(max(0.0, f @ np.asarray(s.tip_direction)))
        if normal <= 0.0:
            return "blood", 0.0
        surface = "valve" if bool(self.lumen.on_valve_ring(np.asarray([s.tip_mm]))[0]) else "tissue"
        return surface, min(normal, self.camera.params.max_force_n)

    def tip_camera(self) -> TipCameraFrame:
        """The tip camera's frame now, with its ground truth (class, contact ratio, normal force)."""
        surface, force = self.tip_contact()
        tip = self._state.tip_mm
        return self.camera.render(surface, force, surface_offset_mm=(tip[0], tip[2]), roll_rad=float(self._q[_ROLL]))

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        """Disconnect the PyBullet client (safe to call twice)."""
        if not getattr(self, "_closed", True):
            self._closed = True
            try:
                self._pb.disconnect(physicsClientId=self._client)
            except Exception:  # already gone (interpreter shutdown): nothing left to release
                pass

    def __enter__(self) -> CatheterWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _quat_x_to(direction: FloatArray) -> list[float]:
    """Quaternion (x, y, z, w) turning +x onto ``direction``."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    x = np.array([1.0, 0.0, 0.0])
    axis = np.cross(x, d)
    s = float(np.linalg.norm(axis))
    cth = float(x @ d)
    if s < 1e-9:
        return [0.0, 0.0, 0.0, 1.0] if cth > 0 else [0.0, 0.0, 1.0, 0.0]
    ang = math.atan2(s, cth)
    axis = axis / s * math.sin(ang / 2)
    return [float(axis[0]), float(axis[1]), float(axis[2]), math.cos(ang / 2)]
