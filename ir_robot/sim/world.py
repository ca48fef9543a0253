"""The PyBullet needle-insertion world: rig (URDF), phantom, force model and imaging.

One world API used by everything later::

    world = NeedleWorld(WorldConfig())           # DIRECT by default, gui=True for a window
    state = world.reset(seed=3)                   # new phantom if config.randomize
    state = world.step(RigCommand(JointVector(insert_mm=2.0), 0.05), dt=0.05)
    us, nir = world.ultrasound(), world.nir()     # ImageFrame with ground truth

The world owns its PyBullet client (every call carries the client id) and its
random generators (seeded by ``reset``). Physics runs at ``physics_hz``; each
``step(command, dt)`` holds the command for ``dt`` (an integer number of physics
steps). Joint position and velocity limits come from the URDF: commands beyond
them are clamped and reported in ``WorldState.clamped``, never executed as given.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ir_robot.config import param
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import (
    JOINT_NAMES,
    ImageFrame,
    JointVector,
    NeedlePose,
    NirView,
    ProbePose,
    RigCommand,
    Tissue,
    needle_direction,
)
from ir_robot.paths import data_path
from ir_robot.sim.phantom import Phantom, PhantomSpec, load_phantom, sample_phantom
from ir_robot.sim.rate_limits import clamp_rates
from ir_robot.urdf import JointLimit, read_joint_limits

if TYPE_CHECKING:
    from ir_robot.sim.nir import NirParams
    from ir_robot.sim.tissue import NeedleContact, PunctureEvent
    from ir_robot.sim.ultrasound import UltrasoundParams

#: needle gauge -> outer diameter (mm), ISO 9626
GAUGE_DIAMETER_MM = {17: 1.473, 18: 1.270, 19: 1.067, 20: 0.908, 21: 0.819, 22: 0.718}


@dataclass(frozen=True)
class WorldConfig:
    """What :class:`NeedleWorld` simulates: the phantom (fixed or random), motion, rates, needle and rig."""

    phantom: str = param("forearm", help="phantom YAML path or name under sim/phantoms/ (ignored when randomize)")
    randomize: bool = param(False, help="draw a new random phantom from the seed at every reset")
    motion: bool = param(False, help="phantom drift + periodic arm motion")
    physics_hz: float = param(1000.0, range=(200.0, 5000.0), unit="Hz")
    needle_gauge: int = param(20, range=(17, 22))
    force_noise_n: float = param(0.01, range=(0.0, 1.0), unit="N")
    nir_fov_mm: float = param(50.0, range=(10.0, 200.0), unit="mm")
    urdf: str = param("ir_rig.urdf", help="file under urdf/")
    home: tuple[float, float, float, float, float, float] = param(
        (-12.0, 0.0, 8.0, 0.5236, 0.0, 0.0), help="joint positions after reset, JOINT_NAMES order (mm, rad)"
    )


@dataclass(frozen=True)
class WorldState:
    """The world after a step: joints, needle force and tip ground truth, puncture events, limit clamps."""

    t_s: float
    joints: JointVector
    velocity: JointVector
    force_n: float  # measured (noisy) axial needle force
    true_force_n: float
    tip_mm: tuple[float, float, float]
    tip_tissue: Tissue
    in_lumen: bool
    lumen_vessel: int
    back_wall_punctured: bool
    inserted_mm: float
    phantom_offset_mm: tuple[float, float, float]
    events: tuple[PunctureEvent, ...] = ()  # every PunctureEvent since reset
    clamped: tuple[str, ...] = ()  # limit clamps applied during the last step


def _joint_info(client: int, body: int, pb: Any, limits: dict[str, JointLimit]) -> dict[str, dict[str, Any]]:
    """Each rig joint's PyBullet index with its limits from the robot description (one URDF reader)."""
    out = {}
    for j in range(pb.getNumJoints(body, physicsClientId=client)):
        name = pb.getJointInfo(body, j, physicsClientId=client)[1].decode()
        if name in limits:
            lim = limits[name]
            out[name] = dict(
                index=j, lower=lim.lower, upper=lim.upper, effort=lim.effort, velocity=lim.velocity, scale=lim.scale
            )
    missing = [n for n in JOINT_NAMES if n not in out]
    if missing:
        raise ConfigError(f"URDF is missing joints {missing}; the rig needs {JOINT_NAMES}")
    return out


class NeedleWorld:
    """Venipuncture world: PyBullet rig + analytic phantom + force model + imaging."""

    def __init__(
        self,
        config: WorldConfig | None = None,
        *,
        gui: bool = False,
        phantom: PhantomSpec | None = None,
        us_params: UltrasoundParams | None = None,
        nir_params: NirParams | None = None,
    ):
        import pybullet as pb  # imported here so `import ir_robot.sim` stays light

        from ir_robot.sim.nir import NirParams, NirRenderer
        from ir_robot.sim.tissue import ForceModelParams, NeedleTissueModel
        from ir_robot.sim.ultrasound import UltrasoundParams, UltrasoundRenderer

        self.config = config or WorldConfig()
        self._pb = pb
        self._client = pb.connect(pb.GUI if gui else pb.DIRECT)
        self._dt_phys = 1.0 / self.config.physics_hz
        pb.setTimeStep(self._dt_phys, physicsClientId=self._client)
        # lead-screw stages are not back-drivable: gravity would only add servo sag
        pb.setGravity(0, 0, 0, physicsClientId=self._client)
        urdf_path = data_path("urdf", self.config.urdf)
        if not urdf_path.is_file():
            raise ConfigError(f"URDF {urdf_path} not found (config field 'urdf')")
        self._robot = pb.loadURDF(str(urdf_path), useFixedBase=True, physicsClientId=self._client)
        self.joint_info = _joint_info(self._client, self._robot, pb, read_joint_limits(urdf_path))
        self._idx = [self.joint_info[n]["index"] for n in JOINT_NAMES]
        self._scale = np.array([self.joint_info[n]["scale"] for n in JOINT_NAMES])
        self.lower = np.array([self.joint_info[n]["lower"] for n in JOINT_NAMES])
        self.upper = np.array([self.joint_info[n]["upper"] for n in JOINT_NAMES])
        self.vmax = np.array([self.joint_info[n]["velocity"] for n in JOINT_NAMES])
        self._effort = [self.joint_info[n]["effort"] for n in JOINT_NAMES]
        self._probe_link = next(
            j
            for j in range(pb.getNumJoints(self._robot, physicsClientId=self._client))
            if pb.getJointInfo(self._robot, j, physicsClientId=self._client)[12] == b"probe_link"
        )
        self._fixed_phantom = phantom
        self._us = UltrasoundRenderer(us_params or UltrasoundParams(), seed=0)
        self._nir = NirRenderer(nir_params or NirParams(), seed=0)
        self._force_params = ForceModelParams(noise_n=self.config.force_noise_n)
        self._tissue_cls = NeedleTissueModel
        self.needle_diameter_mm = GAUGE_DIAMETER_MM[self.config.needle_gauge]
        self._block_body = None
        self.phantom: Phantom  # set by reset(), below
        self._state: WorldState  # set by reset(), below
        self.reset(seed=0)

    # ------------------------------------------------------------------ set-up
    @property
    def client_id(self) -> int:
        """The PyBullet client this world owns (every pybullet call on it must pass this id)."""
        return self._client

    def limits(self) -> tuple[JointVector, JointVector]:
        """Lower and upper joint limits from the URDF (mm, rad): commands beyond them are clamped."""
        return JointVector.from_array(self.lower), JointVector.from_array(self.upper)

    def velocity_limits(self) -> JointVector:
        """Joint speed limits from the URDF (mm/s, rad/s): faster commanded rates are clamped."""
        return JointVector.from_array(self.vmax)

    def _make_phantom(self, seed: int | None) -> PhantomSpec:
        if self._fixed_phantom is not None:
            spec = self._fixed_phantom
        elif self.config.randomize:
            spec = sample_phantom(self._rng_phantom, motion=self.config.motion, name=f"random-{seed}")
            return spec
        else:
            path = self.config.phantom
            if not path.endswith((".yaml", ".yml")):
                path = str(data_path("sim", "phantoms", f"{path}.yaml"))
            spec = load_phantom(path)
        if spec.motion.enabled != self.config.motion:
            spec = dataclasses.replace(spec, motion=dataclasses.replace(spec.motion, enabled=self.config.motion))
        return spec

    def reset(
        self, seed: int | None = None, *, phantom: PhantomSpec | None = None, joints: JointVector | None = None
    ) -> WorldState:
        """Start over: new random streams from ``seed``, a phantom, the rig at ``home``."""
        pb = self._pb
        ss = np.random.SeedSequence(seed)
        r_phantom, r_force, r_us, r_nir = ss.spawn(4)
        self._rng_phantom = np.random.default_rng(r_phantom)
        self._rng_force = np.random.default_rng(r_force)
        self._rng_us = np.random.default_rng(r_us)
        self._rng_nir = np.random.default_rng(r_nir)
        if phantom is not None:
            self._fixed_phantom = phantom
        self.phantom = Phantom(self._make_phantom(seed))
        self.tissue = self._tissue_cls(self.phantom, self._force_params, needle_diameter_mm=self.needle_diameter_mm)
        self._t = 0.0
        q0 = np.clip((joints or JointVector(*self.config.home)).as_array(), self.lower, self.upper)
        for j, q in zip(self._idx, q0 / self._scale, strict=True):
            pb.resetJointState(self._robot, j, float(q), 0.0, physicsClientId=self._client)
        self._q_ref = q0.copy()
        self._events: list[PunctureEvent] = []
        self._make_block_visual()
        self._state = self._read(contact=None, clamped=())
        return self._state

    def reset_joints(self, joints: JointVector) -> WorldState:
        """Teleport the rig (scripted scenes and tests); clears the needle-tissue state."""
        q0 = np.clip(joints.as_array(), self.lower, self.upper)
        for j, q in zip(self._idx, q0 / self._scale, strict=True):
            self._pb.resetJointState(self._robot, j, float(q), 0.0, physicsClientId=self._client)
        self._q_ref = q0.copy()
        self.tissue.reset()
        self._state = self._read(contact=None, clamped=())
        return self._state

    def _make_block_visual(self) -> None:
        pb = self._pb
        if self._block_body is not None:
            pb.removeBody(self._block_body, physicsClientId=self._client)
        b = self.phantom.spec.block
        half = [b.length_mm / 2000, b.width_mm / 2000, b.height_mm / 2000]
        vis = pb.createVisualShape(
            pb.GEOM_BOX, halfExtents=half, rgbaColor=[0.93, 0.75, 0.65, 0.6], physicsClientId=self._client
        )
        self._block_body = pb.createMultiBody(
            baseMass=0, baseVisualShapeIndex=vis, basePosition=[0, 0, -half[2]], physicsClientId=self._client
        )

    # ------------------------------------------------------------------ stepping
    def clamp_command(
        self, command: RigCommand, dt: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, ...]]:
        """Joint rates and end targets after URDF velocity and position limits, plus what was clamped."""
        return clamp_rates(command.velocity.as_array(), self._q_ref, self.lower, self.upper, self.vmax, dt)

    def step(self, command: RigCommand, dt: float) -> WorldState:
        """Hold ``command`` for ``dt`` seconds of simulated time (rounded to physics steps)."""
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
        n_total = max(1, int(round(dt * self.config.physics_hz)))
        n_hold = min(n_total, int(math.floor(max(command.duration_s, 0.0) * self.config.physics_hz + 1e-9)))
        clamped: tuple[str, ...] = ()
        state = self._state
        if n_hold > 0:
            state = self._step(command, n_hold)
            clamped = state.clamped
        if n_total > n_hold:  # the command expired inside this step: the rig stops (watchdog semantics)
            state = self._step(RigCommand.stop(), n_total - n_hold)
            state = dataclasses.replace(state, clamped=clamped + state.clamped)
        return state

    def _step(self, command: RigCommand, n: int) -> WorldState:
        pb, c = self._pb, self._client
        v, target, notes = self.clamp_command(command, n * self._dt_phys)
        for j, q, vv, f, s, vm in zip(self._idx, target, v, self._effort, self._scale, self.vmax, strict=True):
            pb.setJointMotorControl2(
                self._robot,
                j,
                pb.POSITION_CONTROL,
                targetPosition=float(q / s),
                targetVelocity=float(vv / s),
                maxVelocity=float((abs(vv) + 0.05 * vm) / s),
                force=f,
                positionGain=0.5,
                velocityGain=1.0,
                physicsClientId=c,
            )
        self._q_ref = target
        contact = None
        ins_i = JOINT_NAMES.index("insert_mm")
        for _ in range(n):
            pb.stepSimulation(physicsClientId=c)
            self._t += self._dt_phys
            js = pb.getJointStates(self._robot, self._idx, physicsClientId=c)
            q = np.array([s[0] for s in js]) * self._scale
            qd = np.array([s[1] for s in js]) * self._scale
            contact = self.tissue.update(
                self._pivot(q), needle_direction(q[3]), q[ins_i], qd[ins_i], self._t, self._rng_force
            )
            if contact.events:
                self._events.extend(contact.events)
        if self._block_body is not None and self.phantom.spec.motion.enabled:
            off = self.phantom.offset_mm(self._t) / 1000.0
            h = self.phantom.spec.block.height_mm / 2000
            pb.resetBasePositionAndOrientation(
                self._block_body, [off[0], off[1], off[2] - h], [0, 0, 0, 1], physicsClientId=c
            )
        self._state = self._read(contact, notes)
        return self._state

    @staticmethod
    def _pivot(q: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.array([q[0], q[1], q[2]])

    def _read(self, contact: NeedleContact | None, clamped: tuple[str, ...]) -> WorldState:
        js = self._pb.getJointStates(self._robot, self._idx, physicsClientId=self._client)
        q = np.array([s[0] for s in js]) * self._scale
        qd = np.array([s[1] for s in js]) * self._scale
        if contact is None:
            contact = self.tissue.update(self._pivot(q), needle_direction(q[3]), q[4], qd[4], self._t, self._rng_force)
        tip = self._pivot(q) + q[4] * needle_direction(q[3])
        off = self.phantom.offset_mm(self._t)
        return WorldState(
            t_s=self._t,
            joints=JointVector.from_array(q),
            velocity=JointVector.from_array(qd),
            force_n=float(contact.measured_force_n),
            true_force_n=float(contact.force_n),
            tip_mm=(float(tip[0]), float(tip[1]), float(tip[2])),
            tip_tissue=Tissue(int(contact.tip_tissue)),
            in_lumen=bool(contact.in_lumen),
            lumen_vessel=int(contact.lumen_vessel),
            back_wall_punctured=bool(contact.back_wall_punctured),
            inserted_mm=float(contact.inserted_mm),
            phantom_offset_mm=(float(off[0]), float(off[1]), float(off[2])),
            events=tuple(self._events),
            clamped=tuple(clamped),
        )

    def state(self) -> WorldState:
        """The state after the last reset or step (no physics is run)."""
        return self._state

    # ------------------------------------------------------------------ sensing
    def needle_pose(self) -> NeedlePose:
        """The needle now (tip, direction, diameter): what the image renderers draw."""
        j = self._state.joints
        return NeedlePose(
            tip_mm=self._state.tip_mm,
            direction=tuple(needle_direction(j.pitch_rad)),
            diameter_mm=self.needle_diameter_mm,
        )

    def probe_pose(self) -> ProbePose:
        """The ultrasound probe's pose from the rig's forward kinematics (the URDF's probe_link)."""
        ls = self._pb.getLinkState(
            self._robot, self._probe_link, computeForwardKinematics=True, physicsClientId=self._client
        )
        pos = ls[4]
        return ProbePose(x_mm=pos[0] * 1000.0, y_mm=pos[1] * 1000.0, yaw_rad=self._state.joints.probe_yaw_rad)

    def nir_view(self) -> NirView:
        """The NIR camera's footprint: centred over the phantom, ``nir_fov_mm`` wide."""
        return NirView(0.0, 0.0, self.config.nir_fov_mm)

    def ultrasound(self, probe: ProbePose | None = None) -> ImageFrame:
        """B-mode frame from the rig's probe (or an explicit ``probe`` pose)."""
        return self._us.render(self.phantom, probe or self.probe_pose(), self.needle_pose(), self._t, self._rng_us)

    def nir(self, view: NirView | None = None) -> ImageFrame:
        """NIR frame of the view (default :meth:`nir_view`) with the needle drawn, and its vein labels."""
        return self._nir.render(
            self.phantom, view or self.nir_view(), self._t, self._rng_nir, needle=self.needle_pose()
        )

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        """Disconnect the PyBullet client (safe to call twice)."""
        if self._client is not None:
            try:
                self._pb.disconnect(physicsClientId=self._client)
            except Exception:
                pass
            self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
