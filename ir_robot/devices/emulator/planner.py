"""GRBL's motion: the block planner (junction speeds, acceleration, planning to a stop) and the homing cycle.

:class:`MotionPlanner` queues straight-line blocks as GRBL 1.1 does: each block
cruises at the smaller of its feed rate and the per-axis rate limits (``$110-112``)
projected on its direction, accelerates at the per-axis limits (``$120-122``)
likewise, enters at most at its junction speed (junction deviation ``$11``) and
the queue is always planned so that it can stop by its end. :meth:`MotionPlanner.advance`
integrates the path speed in substeps of :data:`SUBSTEP_S` (1 ms), so a position
depends only on the times it is asked for, never on a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

#: integration substep of the motion (s)
SUBSTEP_S = 0.001


@dataclass
class Block:
    """One planned straight move in machine coordinates (mm) with its speed limits (mm/s, mm/s^2)."""

    start: np.ndarray
    end: np.ndarray
    unit: np.ndarray
    length: float
    v_cruise: float  # mm/s
    accel: float  # mm/s^2
    jog: bool
    line_number: int | None
    v_entry_max: float = 0.0
    v_exit: float = 0.0  # planned exit speed (entry of the next block)


def axis_limits(settings: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(max rate mm/s, max acceleration mm/s^2) per axis X, Y, Z from ``$110-112`` and ``$120-122``."""
    rate = np.array([settings[110], settings[111], settings[112]]) / 60.0
    acc = np.array([settings[120], settings[121], settings[122]])
    return rate, acc


class MotionPlanner:
    """The queue of blocks and the stage moving along it: position, path speed, feed hold and jog cancel.

    ``mpos`` is where the stage is; ``end`` is where the queued motion ends (GRBL's
    parser position, from which the next line is planned). ``hold`` decelerates
    the stage to rest; ``cancel`` (a jog cancel, or a hold during a jog) then
    flushes the queue.
    """

    def __init__(self, capacity: int, mpos: np.ndarray) -> None:
        self.capacity = int(capacity)
        self.mpos = np.array(mpos, dtype=float)
        self.reset()

    def reset(self) -> None:
        """Forget all queued motion (soft reset, power-on); the stage stays where it is."""
        self.blocks: list[Block] = []
        self.s = 0.0  # progress along the first block
        self.v = 0.0  # path speed mm/s
        self.hold = False
        self.cancel = False
        self.end = self.mpos.copy()

    @property
    def full(self) -> bool:
        """No free block: the next motion line waits (and so does its ``ok``)."""
        return len(self.blocks) >= self.capacity

    def plan(
        self, target: np.ndarray, rate_mm_s: float, *, jog: bool, line_number: int | None, settings: Mapping[int, float]
    ) -> Literal["full", "zero", "queued"]:
        """Queue a move from :attr:`end` to ``target`` at ``rate_mm_s`` (``inf``: rapid) and replan the queue."""
        if self.full:
            return "full"  # planner full: hold the line (and its ok) until a block finishes
        delta = target - self.end
        length = float(np.linalg.norm(delta))
        if length < 1e-9:
            return "zero"
        unit = delta / length
        max_rate, max_acc = axis_limits(settings)
        nz = np.abs(unit) > 1e-12
        v_cap = float(np.min(max_rate[nz] / np.abs(unit[nz])))
        a_cap = float(np.min(max_acc[nz] / np.abs(unit[nz])))
        block = Block(
            start=self.end.copy(),
            end=target.copy(),
            unit=unit,
            length=length,
            v_cruise=min(rate_mm_s, v_cap),
            accel=a_cap,
            jog=jog,
            line_number=line_number,
        )
        if self.blocks:
            prev = self.blocks[-1]
            block.v_entry_max = junction_speed(prev, block, settings.get(11, 0.01))
        self.blocks.append(block)
        self.end = target.copy()
        self.replan()
        return "queued"

    def replan(self) -> None:
        """Reverse pass: every block can still stop by the end of the queue."""
        v_next = 0.0
        for b in reversed(self.blocks):
            b.v_exit = v_next
            v_next = min(b.v_entry_max, math.sqrt(v_next * v_next + 2 * b.accel * b.length))

    def advance(self, dt_total: float) -> Literal["held", "cancelled"] | None:
        """Move the stage along the queue for ``dt_total`` seconds in 1 ms substeps.

        Returns ``"held"`` when a feed hold brought it to rest, ``"cancelled"`` when a
        jog cancel did (the queue is then flushed), else None.
        """
        t_left = dt_total
        while t_left > 1e-12 and self.blocks:
            dt = min(SUBSTEP_S, t_left)
            t_left -= dt
            b = self.blocks[0]
            remaining = b.length - self.s
            if self.hold:
                v_new = max(0.0, self.v - b.accel * dt)
            else:
                v_allow = math.sqrt(b.v_exit * b.v_exit + 2 * b.accel * max(remaining, 0.0))
                v_new = min(self.v + b.accel * dt, b.v_cruise, v_allow)
                if v_new <= 0.0 and remaining > 0:
                    v_new = min(b.accel * dt, b.v_cruise)
            step = 0.5 * (self.v + v_new) * dt
            self.v = v_new
            if step >= remaining:
                self.blocks.pop(0)
                self.s = 0.0
                self.mpos = b.end.copy()
                if not self.blocks and not self.hold:
                    self.v = 0.0
            else:
                self.s += step
                self.mpos = b.start + b.unit * self.s
            if self.hold and self.v <= 0.0:
                self.v = 0.0
                if self.cancel:  # jog cancel / hold during jog: flush and go idle
                    self.blocks.clear()
                    self.s = 0.0
                    self.end = self.mpos.copy()
                    self.cancel = False
                    self.hold = False
                    return "cancelled"
                return "held"
        return None


def junction_speed(prev: Block, nxt: Block, deviation_mm: float) -> float:
    """GRBL's junction-deviation speed limit (mm/s) for going from ``prev`` into ``nxt``."""
    cos_theta = -float(prev.unit @ nxt.unit)
    vmax = min(prev.v_cruise, nxt.v_cruise)
    if cos_theta < -0.999999:
        return vmax  # straight on
    if cos_theta > 0.999999:
        return 0.0  # reversal
    sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
    dev = max(deviation_mm, 1e-6)
    acc = min(prev.accel, nxt.accel)
    return min(vmax, math.sqrt(acc * dev * sin_half / (1.0 - sin_half)))


@dataclass(frozen=True)
class HomingCycle:
    """GRBL's default homing cycles: Z first (here it retracts the needle), then X and Y, to the pull-off.

    Search, locate and pull-off are lumped into straight moves at the seek rate
    (``$25``), each taking at least 50 ms; the cycle ends 20 ms after the XY move.
    """

    t0: float
    t_z: float
    t1: float
    start: np.ndarray
    after_z: np.ndarray
    target: np.ndarray

    @classmethod
    def begin(cls, now: float, mpos: np.ndarray, settings: Mapping[int, float]) -> HomingCycle:
        """The cycle started at ``now`` from ``mpos`` with the board's seek rate and pull-off."""
        seek = max(settings.get(25, 500.0), 1.0) / 60.0
        pulloff = settings.get(27, 1.0)
        start = mpos.copy()
        after_z = start.copy()
        after_z[2] = -pulloff
        target = -np.full(3, pulloff)
        t_z = max(abs(start[2] + pulloff) / seek, 0.05)  # search + locate + pull-off, lumped at the seek rate
        t_xy = max(float(np.abs(start[:2] + pulloff).max()) / seek, 0.05)
        return cls(t0=now, t_z=now + t_z, t1=now + t_z + t_xy + 0.02, start=start, after_z=after_z, target=target)

    def done(self, now: float) -> bool:
        """Whether the cycle has finished by ``now``."""
        return now >= self.t1

    def position(self, now: float) -> np.ndarray:
        """Machine position (mm) at ``now`` during the cycle."""
        if now < self.t_z:
            frac = (now - self.t0) / max(self.t_z - self.t0, 1e-9)
            return self.start + (self.after_z - self.start) * frac
        frac = (now - self.t_z) / max(self.t1 - self.t_z, 1e-9)
        return self.after_z + (self.target - self.after_z) * min(1.0, frac)
