"""``ir-robot bench AREA [--json FILE] [--quick]``: print a table, write flat JSON."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from ir_robot.benchmarks.runner import AREAS, available, format_table, run_area


def _cmd(args) -> int:
    areas = available() if args.area == "all" else [args.area]
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
    """Adds ``ir-robot bench`` to the subcommand parsers ``sub``."""
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
