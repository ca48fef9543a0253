"""Per-frame latency trace, a diagnostic for ``ir-robot bench ros``.

With ``IR_ROBOT_LATENCY_TRACE=DIR`` in a node's environment, the nodes on the
image-to-command path append one line ``stamp_ns event t_ns`` per event to
``DIR/<node>-<pid>.trace``: ``stamp_ns`` is the header stamp of the ultrasound frame the
event belongs to (the key that joins the files), ``t_ns`` the system clock (the ROS clock
of every node on this machine) when it happened. Events (in path order):

=====================  ==========================================================
``sim_tick``           sim: the world state the frame shows (tick start, before rendering)
``sim_pub``            sim: ``/us/image_raw`` (and camera_info, labels) published
``perc_in``            us_perception: ``/us/image_raw`` callback entered
``perc_pub``           us_perception: ``/us/result`` published
``ctl_image``          controller: ``/us/image_raw`` callback entered
``ctl_result``         controller: ``/us/result`` callback entered
``ctl_pub``            controller: ``/rig/command`` computed from this frame published
``rig_in``             sim / rig_driver: that command received by the rig
=====================  ==========================================================

Without the variable every call is a no-op (one attribute test).
"""

from __future__ import annotations

import os
import time

ENV = "IR_ROBOT_LATENCY_TRACE"


class LatencyTrace:
    """``trace(stamp_ns, "event")`` appends a line when tracing is on (see the module doc)."""

    def __init__(self, name: str, directory: str | None = None):
        directory = os.environ.get(ENV, "") if directory is None else directory
        self._file = None
        if directory:
            os.makedirs(directory, exist_ok=True)
            self._file = open(os.path.join(directory, f"{name}-{os.getpid()}.trace"), "a", buffering=1)

    @property
    def enabled(self) -> bool:
        """True when tracing is on (a trace file is open)."""
        return self._file is not None

    def __call__(self, stamp_ns: int, event: str, t_ns: int | None = None) -> None:
        """Appends ``stamp_ns event t_ns`` (``t_ns`` default: now, system clock) when tracing is on."""
        if self._file is not None:
            self._file.write(f"{int(stamp_ns)} {event} {time.time_ns() if t_ns is None else int(t_ns)}\n")

    def close(self) -> None:
        """Closes the trace file; later calls are no-ops."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_traces(directory) -> dict[int, dict[str, int]]:
    """stamp_ns -> {event: first t_ns} from every trace file in ``directory``."""
    from pathlib import Path

    out: dict[int, dict[str, int]] = {}
    for path in Path(directory).glob("*.trace"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            stamp, event, t = int(parts[0]), parts[1], int(parts[2])
            out.setdefault(stamp, {}).setdefault(event, t)
    return out
