"""Run benchmark areas and format their results: the one table format of ``ir-robot bench`` and
``ir-robot evaluate``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import time
from typing import Any

#: area name -> module under ir_robot.benchmarks with run(quick) -> dict
AREAS = {
    "sim": "ir_robot.benchmarks.sim",
    "perception": "ir_robot.benchmarks.perception",
    "venipuncture": "ir_robot.benchmarks.venipuncture",
    "ros": "ir_robot.benchmarks.ros",
    "rig": "ir_robot.benchmarks.rig",
    "catheter_nav": "ir_robot.benchmarks.catheter_nav",
}


def available() -> list[str]:
    """The benchmark areas whose module is installed."""
    out = []
    for name, mod in AREAS.items():
        if importlib.util.find_spec(mod) is not None:
            out.append(name)
    return out


def format_table(area: str, results: dict[str, Any]) -> str:
    """A two-column text table of one area's flat results (floats to 4 significant digits)."""
    width = max([len(k) for k in results] + [6])
    lines = [f"== bench {area} ==", f"{'metric'.ljust(width)}  value", f"{'-' * width}  -----"]
    for key, value in results.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        else:
            text = str(value)
        lines.append(f"{key.ljust(width)}  {text}")
    return "\n".join(lines)


def run_area(area: str, quick: bool = False, **options: Any) -> dict[str, Any]:
    """Run one area; ``options`` (e.g. ``us_weights``) go to the areas whose ``run`` takes them."""
    mod = importlib.import_module(AREAS[area])
    accepted = inspect.signature(mod.run).parameters
    kwargs = {k: v for k, v in options.items() if v is not None and k in accepted}
    t0 = time.perf_counter()
    results = dict(mod.run(quick=quick, **kwargs))
    results.setdefault("bench_wall_s", round(time.perf_counter() - t0, 2))
    return results
