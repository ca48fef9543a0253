"""A scripted insertion along the centreline to a named branch, using ground truth.

This checks that the world is navigable (the issue's >= 95 % of random anatomies for BCA, LCCA,
LSA and both renal arteries); it is not a controller: it reads the true tip pose and the tree.

Each control step it looks ``look_ahead_mm`` along the route from the tip's nearest route point (into
the next branch when within ``seek_mm`` of its ostium, away from side branches it must pass) and:

* **guided** (``guide_force_n > 0``): pushes while that force on the tip pulls it towards the point
  (as magnetic navigation would); the hub does not turn;
* **steered** (default): turns the hub so the pre-curved tip points there (the signed angle about the
  shaft), pushes when roughly aligned, and sweeps the tip round while passing the next ostium slowly.

A tip that enters a branch off the route, runs past the next branch's ostium or stops making progress
is pulled back ``retract_mm`` to try again (steered: turning as it goes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ir_robot.core.types import JointVector, RigCommand
from ir_robot.sim.anatomy.graph import resolve_name
from ir_robot.sim.anatomy.route import Route
from ir_robot.sim.endovascular.world import CatheterWorld, CatheterWorldState

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class InsertionParams:
    """Gains and limits of the scripted insertion."""

    dt_s: float = 0.1
    max_time_s: float = 120.0
    speed_mm_s: float = 35.0
    roll_gain_per_s: float = 4.0
    look_ahead_mm: float = 12.0
    aligned_deg: float = 50.0
    depth_mm: float = 20.0  # how far into the target branch counts as reached (or half the branch)
    retract_mm: float = 40.0
    stall_s: float = 4.0
    avoid_radius_mm: float = 30.0  # side-branch ostia nearer than this (and not behind) are steered away from
    avoid_weight: float = 1.5
    seek_mm: float = 40.0  # this far before a side branch on the route, aim into it
    seek_depth_mm: float = 10.0
    seek_speed_mm_s: float = 6.0
    #: > 0: a centreline-guided insertion: this force (N) pulls the tip towards the route ahead
    #: (as magnetic navigation would), so the check measures the anatomy and mechanics, not steering skill
    guide_force_n: float = 0.0
    sweep_rad_s: float = 2.0


@dataclass
class InsertionResult:
    """How a scripted insertion went, with the state after every step."""

    target: str
    reached: bool
    time_s: float
    reason: str
    retries: int
    route_length_mm: float
    states: list[CatheterWorldState] = field(default_factory=list)


def _signed_angle(u: FloatArray, v: FloatArray, axis: FloatArray) -> float:
    return math.atan2(float(np.cross(u, v) @ axis), float(u @ v))


def _route_progress(route: Route, p: FloatArray) -> int:
    """Index of the route point nearest ``p``."""
    return int(np.argmin(np.linalg.norm(route.points_mm - p, axis=1)))


def insert_to_target(
    world: CatheterWorld,
    target: str,
    params: InsertionParams | None = None,
    *,
    on_step: Callable[[CatheterWorldState], None] | None = None,
) -> InsertionResult:
    """Drive ``world``'s instrument from its access to ``target`` (a branch name or alias) by the script above."""
    p = params or InsertionParams()
    tree = world.tree
    target = resolve_name(target, tree.names)
    branch = tree.branch(target)
    reach_arc = min(p.depth_mm, 0.5 * branch.length_mm)
    start_arc = tree.branch(world.access_branch).length_mm - world.config.access_depth_mm
    route = tree.route(world.access_branch, target, start_arc_mm=start_arc, target_arc_mm=branch.length_mm)
    on_route = set(route.branches)
    # the arc on each route branch past which the tip has overshot the next branch's origin
    overshoot: dict[str, tuple[float, float]] = {}
    for a, b in zip(route.segments[:-1], route.segments[1:], strict=True):
        child = tree.branch(b.branch)
        if child.parent == a.branch:  # leaving a into its child b at b's origin on a
            r = float(child.radii_mm[0])
            sign = 1.0 if a.arc_to_mm >= a.arc_from_mm else -1.0
            overshoot[a.branch] = (child.origin_arc_mm + sign * (r + 6.0), sign)
    # side branches along the route that the tip must pass by: (origin point, direction into them)
    avoid: list[tuple[FloatArray, FloatArray]] = []
    for seg in route.segments:
        for child in tree.children(seg.branch):
            if child.name in on_route:
                continue
            lo, hi = sorted((seg.arc_from_mm, seg.arc_to_mm))
            if lo - 5.0 <= child.origin_arc_mm <= hi + 5.0:
                o = child.points_mm[0]
                d = child.point_at(min(15.0, child.length_mm))[0] - o
                avoid.append((o, d / max(float(np.linalg.norm(d)), 1e-9)))
    # where the route enters each side branch (arc along the route) and a point just inside it
    seek: list[tuple[float, FloatArray]] = []
    for a, b in zip(route.segments[:-1], route.segments[1:], strict=True):
        child = tree.branch(b.branch)
        if child.parent == a.branch:
            at = float(route.arc_mm[_route_progress(route, child.points_mm[0])])
            seek.append((at, child.point_at(min(p.seek_depth_mm, child.length_mm))[0]))
    result = InsertionResult(target, False, 0.0, "time limit", 0, route.length_mm)
    state = world.state()
    guide_dir = np.zeros(3)
    best_progress, best_t = -1, 0.0
    retract_left = 0.0
    t = 0.0
    while t < p.max_time_s - 1e-9:
        tip = np.asarray(state.tip_mm)
        if state.tip_branch == target:
            arc = float(branch.arc_mm[np.argmin(np.linalg.norm(branch.points_mm - tip, axis=1))])
            if arc >= reach_arc:
                result.reached, result.reason = True, "reached"
                break
        k = _route_progress(route, tip)
        lost = state.tip_branch not in on_route
        if state.tip_branch in overshoot:
            lim, sign = overshoot[state.tip_branch]
            tb = tree.branch(state.tip_branch)
            arc_b = float(tb.arc_mm[np.argmin(np.linalg.norm(tb.points_mm - tip, axis=1))])
            lost = lost or sign * (arc_b - lim) > 0.0
        if k > best_progress + 3:
            best_progress, best_t = k, t
        stalled = t - best_t > p.stall_s
        if retract_left <= 0.0 and (lost or stalled):
            retract_left = p.retract_mm
            result.retries += 1
            best_t = t
        v_ins, w_roll = 0.0, 0.0
        if retract_left > 0.0:
            v_ins = -p.speed_mm_s
            retract_left -= p.speed_mm_s * p.dt_s
            best_progress, best_t = -1, t + p.dt_s  # progress counts afresh after the pull-back
            w_roll = 0.0 if p.guide_force_n > 0.0 else math.pi  # unguided: meet the ostium at another angle next time
        else:
            x = world.device.positions
            j = min(len(x) - 1, int(np.searchsorted(world.device.rod.disc.sigma, 15.0)))
            shaft = x[max(j - 1, 0)] - x[j] if len(x) > j >= 1 else np.asarray(state.tip_direction)
            shaft = shaft / max(float(np.linalg.norm(shaft)), 1e-9)
            ahead_arc = route.arc_mm[k] + p.look_ahead_mm
            q = route.points_mm[min(int(np.searchsorted(route.arc_mm, ahead_arc)), len(route.arc_mm) - 1)]
            seeking = False
            for arc0, entry in seek:  # nearing the next side branch: aim into it early, so the tip finds its wall
                if -5.0 < arc0 - route.arc_mm[k] < p.seek_mm:
                    q, seeking = entry, True
                    break
            want = q - tip
            want = want / max(float(np.linalg.norm(want)), 1e-9)
            for o, d in [] if seeking else avoid:  # passing a side branch's ostium: point the tip away from it
                rel = o - tip
                if float(np.linalg.norm(rel)) < p.avoid_radius_mm and float(rel @ shaft) > -5.0:
                    want = want - p.avoid_weight * d
            guide_dir = want / max(float(np.linalg.norm(want)), 1e-9)
            tip_dir = np.asarray(state.tip_direction)
            u = tip_dir - shaft * float(tip_dir @ shaft)
            w = want - shaft * float(want @ shaft)
            if p.guide_force_n > 0.0:  # guided: the tip force steers; the hub only pushes
                aligned = True
            elif np.linalg.norm(u) > 0.05 and np.linalg.norm(w) > 0.1:
                err = _signed_angle(u, w, shaft)
                w_roll = float(np.clip(p.roll_gain_per_s * err, -math.pi, math.pi))
                aligned = abs(err) < math.radians(p.aligned_deg)
            else:
                aligned = True
            if seeking:  # slowly past the ostium, sweeping the tip round so it catches the opening
                v_ins = p.seek_speed_mm_s
                w_roll = p.sweep_rad_s if not aligned else 0.0
                if p.guide_force_n > 0.0:
                    v_ins = 2.0 * p.seek_speed_mm_s
            else:
                v_ins = p.speed_mm_s if aligned else 0.25 * p.speed_mm_s
        tip_force = None
        if p.guide_force_n > 0.0 and retract_left <= 0.0:
            tip_force = p.guide_force_n * guide_dir
        cmd = RigCommand(JointVector(insert_mm=v_ins, roll_rad=w_roll), p.dt_s)
        state = world.step(cmd, p.dt_s, tip_force_n=tip_force)
        t += p.dt_s
        result.states.append(state)
        if on_step is not None:
            on_step(state)
    result.time_s = t
    return result
