"""``ir-robot demo`` and ``ir-robot evaluate venipuncture`` (heavy modules imported in the handlers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _config(path):
    from ir_robot.control.config import load_venipuncture_config

    return load_venipuncture_config(path)


def _demo(args) -> int:
    from ir_robot.evaluation.demo import run_demo

    perception = "ground_truth" if args.ground_truth_perception else "auto"
    result = run_demo(
        args.out, args.seed, perception=perception, motion=not args.no_motion, config=_config(args.config)
    )
    print(json.dumps(result), flush=True)
    print(f"wrote overlay video/frames, confirm.png, force.png and result.json to {args.out}", file=sys.stderr)
    return 0


def _evaluate(args) -> int:
    from ir_robot.benchmarks.runner import format_table
    from ir_robot.evaluation.episode import evaluate

    perception = "ground_truth" if args.ground_truth_perception else args.perception
    diam = tuple(args.vein_diameter_mm) if args.vein_diameter_mm else None
    out = (
        Path(args.out)
        if args.out
        else Path("out") / "eval" / f"venipuncture-{args.controller}-{perception}-seed{args.seed}"
    )
    summary, _ = evaluate(
        args.episodes,
        args.seed,
        _config(args.config),
        perception=perception,
        motion=not args.no_motion,
        vein_diameter_mm=diam,
        out_dir=out,
        progress=not args.no_progress,
        us_weights=args.us_weights,
        nir_weights=args.nir_weights,
    )
    flat = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    print(format_table("venipuncture", flat).replace("== bench", "== evaluate", 1))
    if summary.get("failure_reasons"):
        print("failures: " + "; ".join(f"{k} ({n}x)" for k, n in summary["failure_reasons"].items()))
    if args.json:
        p = Path(args.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(summary, indent=2, sort_keys=True, default=float))
    print(f"wrote episodes.csv, summary.json and evaluation.png to {out}" + (f" and {args.json}" if args.json else ""))
    return 0


def register(sub) -> None:
    """Adds ``ir-robot demo`` and ``ir-robot evaluate`` to the subcommand parsers ``sub``."""
    d = sub.add_parser(
        "demo", help="one autonomous venipuncture in the simulator: JSON line, overlay video, force plot"
    )
    d.add_argument("--out", default="out/demo", help="output folder (created)")
    d.add_argument("--seed", type=int, default=0, help="phantom, noise and image seed")
    d.add_argument(
        "--ground-truth-perception",
        action="store_true",
        help="use the simulator's labels instead of the trained models",
    )
    d.add_argument("--no-motion", action="store_true", help="keep the phantom still")
    d.add_argument("--config", default=None, help="venipuncture YAML (default config/venipuncture.yaml)")
    d.set_defaults(func=_demo)

    e = sub.add_parser("evaluate", help="seeded evaluation of a controller: per-episode CSV, summary JSON, plot")
    e.add_argument("task", choices=["venipuncture"])
    e.add_argument("--controller", choices=["classical"], default="classical")
    e.add_argument("--episodes", type=int, default=20)
    e.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    e.add_argument(
        "--ground-truth-perception",
        action="store_true",
        help="perfect perception from the simulator's labels: what is left are control errors",
    )
    e.add_argument(
        "--perception",
        choices=["model", "auto", "classical"],
        default="model",
        help="model: the trained weights (required); auto: the model of each modality whose weights "
        "exist, labels for the other; classical: the OpenCV baselines",
    )
    e.add_argument(
        "--vein-diameter-mm",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="draw the phantoms' veins from this diameter range (e.g. 1 2)",
    )
    e.add_argument("--no-motion", action="store_true", help="keep the phantoms still")
    e.add_argument("--json", metavar="FILE", help="also write the summary here")
    e.add_argument("--out", default=None, help="folder for episodes.csv, summary.json, evaluation.png")
    e.add_argument("--config", default=None, help="venipuncture YAML (default config/venipuncture.yaml)")
    e.add_argument("--us-weights", default=None, help="ultrasound model weights (default models/us_seg/model.pt)")
    e.add_argument("--nir-weights", default=None, help="NIR model weights (default models/nir_seg/model.pt)")
    e.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    e.set_defaults(func=_evaluate)
