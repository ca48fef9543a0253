"""Faults the emulator can play on demand: garbage lines, a baud mismatch, force spikes, the wrong device.

The rest of the fault repertoire is board state and lives where that state is:
``stall`` (:attr:`GrblMachine.stalled`), alarms (:meth:`GrblMachine.push_alarm`),
input pins (:attr:`GrblMachine.pins`) and the unplugged cable (closing the pty,
:meth:`GrblEmulator.unplug`). Random content comes from the Generator passed in,
so a seed reproduces it.
"""

from __future__ import annotations

import numpy as np

#: what a Marlin 3D printer prints after a reset: the "wrong device on the port" personality
MARLIN_BANNER = ("start", "echo:Marlin 2.1.2", "echo: Last Updated: 2023-01-01 | Author: (none, default config)")


def garbage_lines(rng: np.random.Generator, n_lines: int, length: int) -> list[bytes]:
    """``n_lines`` lines of random bytes without line breaks, each holding at least one non-ASCII byte."""
    lines = []
    for _ in range(n_lines):
        raw = rng.integers(0, 256, size=max(1, length)).astype(np.uint8)
        raw[raw == ord("\n")] = 0xFF
        raw[raw == ord("\r")] = 0xFE
        raw[rng.integers(0, raw.size)] = rng.integers(0x80, 0x100)
        lines.append(raw.tobytes())
    return lines


def scramble(rng: np.random.Generator, data: bytes) -> bytes:
    """What a byte stream looks like read at the wrong baud: mostly high, random bytes, few newlines."""
    n = max(1, int(len(data) * rng.uniform(0.3, 1.2)))
    out = rng.integers(0x80, 0x100, size=n).astype(np.uint8)
    if rng.random() < 0.5:
        out[-1] = ord("\n")
    return out.tobytes()


class ForceSpikes:
    """Extra load-cell force over time windows: ``(t0, t1, newtons)`` on the emulator's clock."""

    def __init__(self) -> None:
        self.windows: list[tuple[float, float, float]] = []

    def add(self, t0: float, duration_s: float, force_n: float) -> None:
        """Add ``force_n`` newtons from ``t0`` for ``duration_s`` seconds."""
        self.windows.append((t0, t0 + duration_s, float(force_n)))

    def active(self, t: float) -> list[tuple[float, float, float]]:
        """The windows covering time ``t`` (ends included)."""
        return [s for s in self.windows if s[0] <= t <= s[1]]
