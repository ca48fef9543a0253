"""``ir-robot bench AREA [--json FILE] [--quick]``: print a table, write flat JSON."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import platform
import time
from pathlib import Path

#: area name -> module under ir_robot.benchmarks with run(quick) -> dict
AREAS = {
    "sim": "ir_robot.benchmarks.sim",
    "perception": "ir_robot.benchmarks.perception",
    "venipuncture": "ir_robot.benchmarks.venipuncture",
    "ros": "ir_robot.benchmarks.ros",
    "rig": "ir_robot.benchmarks.rig",
}


def _available() -> list[str]:
    out = []
    for name, mod in AREAS.items():
        if importlib.util.find_spec(mod) is not None:
            out.append(name)
    return out


def format_table(area: str, results: dict) -> str:
    width = max([len(k) for k in results] + [6])
    lines = [f"== bench {area} ==", f"{'metric'.ljust(width)}  value", f"{'-' * width}  -----"]
    for key, value in results.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        else:
            text = str(value)
        lines.append(f"{key.ljust(width)}  {text}")
    return "\n".join(lines)


def run_area(area: str, quick: bool = False, **options) -> dict:
    """Run one area; ``options`` (e.g. ``us_weights``) go to the areas whose ``run`` takes them."""
    mod = importlib.import_module(AREAS[area])
    accepted = inspect.signature(mod.run).parameters
    kwargs = {k: v for k, v in options.items() if v is not None and k in accepted}
    t0 = time.perf_counter()
    results = dict(mod.run(quick=quick, **kwargs))
    results.setdefault("bench_wall_s", round(time.perf_counter() - t0, 2))
    return results


def _cmd(args) -> int:
    areas = _available() if args.area == "all" else [args.area]
    merged: dict = {}
    for area in areas:
        res = run_area(
            area, quick=args.quick, us_weights=args.us_weights, nir_weights=args.nir_weights, perception=args.perception
        )
        print(format_table(area, res), flush=True)
        if len(areas) == 1:
            merged = res
        else:
            merged.update({f"{area}.{k}": v for k, v in res.items()})
    merged.setdefault("machine", f"{platform.machine()} {platform.processor() or ''}".strip())
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2, sort_keys=True))
        print(f"wrote {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="run benchmarks: print a table and write flat JSON")
    p.add_argument("area", choices=[*AREAS, "all"], help="which benchmark")
    p.add_argument("--json", metavar="FILE", help="write the results as a flat JSON object")
    p.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    p.add_argument(
        "--us-weights", metavar="PT", help="ultrasound weights instead of the shipped model (perception, venipuncture)"
    )
    p.add_argument("--nir-weights", metavar="PT", help="NIR weights instead of the shipped model")
    from ir_robot.benchmarks.ros import PERCEPTION_CHOICES

    p.add_argument(
        "--perception",
        choices=PERCEPTION_CHOICES,
        help="ros: the perception nodes' model (default auto: the shipped models when installed)",
    )
    p.set_defaults(func=_cmd)
