"""``ir_robot/CatheterNav-v0``: drive a guidewire from an access site to a target branch.

Spec
----
**World**: :class:`~ir_robot.sim.endovascular.CatheterWorld` (quasi-static elastic rod in a procedural vessel
tree), control at ``1 / dt_s`` Hz (10 Hz by default).

**Action** ``Box(-1, 1, (2,))``: hub translation and rotation velocity as fractions of the drive's limits
(35 mm/s, pi rad/s): ``insert_mm_s = 35 a[0]``, ``roll_rad_s = pi a[1]``.

**Observation** (``obs_mode="state"``) ``Box(-20, 20, (21,), float32)``, lengths in units of 100 mm:

======  =====================================================================
index   meaning
======  =====================================================================
0-2     target point minus tip (x100 mm)
3-5     tip direction (unit)
6-14    three points on the instrument 5, 15 and 30 mm behind the tip, minus the tip (x100 mm)
15-17   centreline direction at the tip's place on the tree, towards the target (unit)
18      geodesic distance to go along the centrelines (x100 mm)
19-20   last action
======  =====================================================================

**Reward** (each term a constructor argument, each echoed in ``info["reward_terms"]``):
``progress_per_mm * (geodesic distance before - after)`` + ``success_bonus`` on success
- ``time_cost`` per step - ``force_penalty_per_n * max(0, max wall force - force_threshold_n)``.

**Termination**: success when the tip is within ``success_radius_mm`` (4 mm, CathSim's criterion; ``info``
also reports 5 mm, stEVE's) of the target point (``target_depth_mm`` into the target branch, or half of it);
failure when any wall force exceeds ``max_wall_force_n`` (1.5 N, the perforation-risk bound) and
``terminate_on_force``. **Truncation**: ``max_episode_steps`` (registered: 300 steps = 30 s) via ``TimeLimit``.

**Arguments**: ``target`` (BCA, LCCA, LSA, renal_left, renal_right or any branch name), ``start``
(``descending_aorta``: the sheath at the diaphragm, or ``right_femoral``), ``anatomy`` (an archetype or
``random`` or a centreline file), ``anatomy_seed`` (the fixed anatomy's seed), ``random_anatomy`` (a new
anatomy from the episode's seed at every reset), ``random_start_roll`` (the wire's pre-curve starts at a
random roll, so episodes on one anatomy differ), ``instrument``, ``dt_s``.

**Versions**: v0 (this one): state observation only.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from ir_robot.core.types import JointVector, RigCommand
from ir_robot.sim.anatomy.graph import resolve_name
from ir_robot.sim.anatomy.route import geodesic_length
from ir_robot.sim.endovascular import CatheterWorld, CatheterWorldConfig

FloatArray = npt.NDArray[np.float64]
OBS_SIZE = 21
#: every observation entry is within +-OBS_BOUND (lengths in units of 100 mm: the body is < 2 m across)
OBS_BOUND = 20.0
_BEHIND_MM = (5.0, 15.0, 30.0)
_SCALE_MM = 100.0


class CatheterNavEnv(gym.Env[npt.NDArray[np.float32], npt.NDArray[np.float32]]):
    """Navigate a guidewire to a target branch (see the module docstring for the full spec)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        target: str = "BCA",
        start: str = "descending_aorta",
        anatomy: str = "type1",
        anatomy_seed: int = 0,
        random_anatomy: bool = False,
        random_start_roll: bool = True,
        instrument: str = "guidewire_035_angled",
        obs_mode: str = "state",
        dt_s: float = 0.1,
        target_depth_mm: float = 20.0,
        success_radius_mm: float = 4.0,
        progress_per_mm: float = 0.01,
        success_bonus: float = 1.0,
        time_cost: float = 0.005,
        force_threshold_n: float = 1.0,
        force_penalty_per_n: float = 0.1,
        max_wall_force_n: float = 1.5,
        terminate_on_force: bool = True,
        render_mode: str | None = None,
    ):
        if obs_mode != "state":
            raise ValueError(f"obs_mode {obs_mode!r}: CatheterNav-v0 has 'state' only (image observations: not built)")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r}: allowed None or 'rgb_array'")
        self._kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.target_name = target
        self.start = start
        self.anatomy_seed = int(anatomy_seed)
        self.random_anatomy = bool(random_anatomy)
        self.random_start_roll = bool(random_start_roll)
        self.dt_s = float(dt_s)
        self.target_depth_mm = float(target_depth_mm)
        self.success_radius_mm = float(success_radius_mm)
        self.progress_per_mm = float(progress_per_mm)
        self.success_bonus = float(success_bonus)
        self.time_cost = float(time_cost)
        self.force_threshold_n = float(force_threshold_n)
        self.force_penalty_per_n = float(force_penalty_per_n)
        self.max_wall_force_n = float(max_wall_force_n)
        self.terminate_on_force = bool(terminate_on_force)
        self.render_mode = render_mode
        self.world = CatheterWorld(CatheterWorldConfig(anatomy=anatomy, instrument=instrument, access=start))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (OBS_SIZE,), np.float32)
        self._vmax = self.world.velocity_limits()
        self._last_action = np.zeros(2)
        self._dist = 0.0
        self._target_point = np.zeros(3)

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        """A new episode: the instrument in the sheath; a new anatomy from the seed if ``random_anatomy``."""
        super().reset(seed=seed)
        world_seed = int(self.np_random.integers(2**31 - 1)) if self.random_anatomy else self.anatomy_seed
        roll = float(self.np_random.uniform(0.0, 2.0 * np.pi)) if self.random_start_roll else 0.0
        self.world.reset(seed=world_seed, roll_rad=roll)
        tree = self.world.tree
        self.target = resolve_name(self.target_name, tree.names)
        branch = tree.branch(self.target)
        self._target_arc = min(self.target_depth_mm, 0.5 * branch.length_mm)
        self._target_point = branch.point_at(self._target_arc)[0]
        self._last_action = np.zeros(2)
        where = self._locate_tip()
        self._dist = self._distance_to_go(where)
        self._steps = 0
        info = {"anatomy_seed": world_seed, "start_roll_rad": roll, "target": self.target, "distance_mm": self._dist}
        return self._observe(where), info

    def step(self, action: npt.ArrayLike) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Apply the hub velocities for ``dt_s``; reward progress along the centrelines (see the spec)."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        cmd = RigCommand(
            JointVector(insert_mm=float(a[0]) * self._vmax.insert_mm, roll_rad=float(a[1]) * self._vmax.roll_rad),
            self.dt_s,
        )
        s = self.world.step(cmd, self.dt_s)
        self._last_action = a
        self._steps += 1
        where = self._locate_tip()
        dist = self._distance_to_go(where)
        tip_err = float(np.linalg.norm(np.asarray(s.tip_mm) - self._target_point))
        success = tip_err <= self.success_radius_mm
        over = s.max_wall_force_n > self.max_wall_force_n
        terms = {
            "progress": self.progress_per_mm * (self._dist - dist),
            "success": self.success_bonus if success else 0.0,
            "time": -self.time_cost,
            "force": -self.force_penalty_per_n * max(0.0, s.max_wall_force_n - self.force_threshold_n),
        }
        self._dist = dist
        reward = float(sum(terms.values()))
        terminated = bool(success or (over and self.terminate_on_force))
        info = {
            "reward_terms": terms,
            "success": success,
            "is_success": success,  # the key SB3's EvalCallback and Monitor read
            "success_5mm": tip_err <= 5.0,
            "tip_error_mm": tip_err,
            "distance_mm": dist,
            "max_wall_force_n": s.max_wall_force_n,
            "tip_force_n": float(np.linalg.norm(s.tip_force_n)),
            "wall_force_exceeded": over,
            "tip_branch": s.tip_branch,
            "inserted_mm": s.inserted_mm,
        }
        return self._observe(where), reward, terminated, False, info

    def render(self) -> npt.NDArray[np.uint8] | None:
        """A fluoroscopy frame (``rgb_array``: grey replicated to RGB)."""
        if self.render_mode != "rgb_array":
            return None
        img = self.world.fluoroscopy().image
        return np.repeat(img[..., None], 3, axis=2)

    def close(self) -> None:
        """Release the world's PyBullet client."""
        self.world.close()

    # ------------------------------------------------------------------ pickling (subprocess and Ray workers)
    def __getstate__(self) -> dict[str, Any]:
        return {"kwargs": self._kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["kwargs"])  # type: ignore[misc]

    # ------------------------------------------------------------------ helpers
    def _locate_tip(self) -> tuple[str, float]:
        """Where the tip is on the tree (branch, arc mm), from the state's branch: located once per step."""
        s = self.world.state()
        return self.world.lumen.locate(s.tip_mm, branch=s.tip_branch)

    def _distance_to_go(self, where: tuple[str, float]) -> float:
        return geodesic_length(self.world.tree, where[0], where[1], self.target, self._target_arc)

    def _path_direction(self, branch: str, arc: float) -> FloatArray:
        """The centreline direction at (branch, arc) pointing along the way to the target."""
        tree = self.world.tree
        b = tree.branch(branch)
        ahead = geodesic_length(tree, branch, min(arc + 2.0, b.length_mm), self.target, self._target_arc)
        back = geodesic_length(tree, branch, max(arc - 2.0, 0.0), self.target, self._target_arc)
        t = b.tangent_at(arc)
        return np.asarray(t if ahead <= back else -t, dtype=np.float64)

    def _observe(self, where: tuple[str, float]) -> npt.NDArray[np.float32]:
        w = self.world
        s = w.state()
        tip = np.asarray(s.tip_mm)
        x = w.device.positions
        sigma = w.device.rod.disc.sigma
        behind = []
        for d in _BEHIND_MM:
            if x.shape[0] >= 2:
                j = min(int(np.searchsorted(sigma, d)), x.shape[0] - 1)
                p = x[j]
            else:
                p = w.access_point - d * w.access_direction
            behind.append((p - tip) / _SCALE_MM)
        branch, arc = where
        obs = np.concatenate(
            [
                (self._target_point - tip) / _SCALE_MM,
                np.asarray(s.tip_direction),
                *behind,
                self._path_direction(branch, arc),
                [self._dist / _SCALE_MM],
                self._last_action,
            ]
        )
        return np.asarray(np.clip(obs, -OBS_BOUND, OBS_BOUND), dtype=np.float32)
