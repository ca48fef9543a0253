"""Perception subcommands of ``ir-robot``: ``dataset``, ``train-perception``, ``segment``.

Handlers import torch, OpenCV and the simulator only when they run.
"""

from __future__ import annotations

import json
from pathlib import Path


def _dataset(args) -> int:
    from ir_robot.perception.datasets import generate, save_dataset

    fs = generate(args.modality, args.n, args.seed, args.split, size_px=tuple(args.size), progress=not args.quiet)
    out = save_dataset(fs, args.out, png=not args.no_png)
    has_needle = sum(1 for r in fs.records if r["meta"].get("needle_visible"))
    print(
        f"wrote {len(fs)} {args.modality} frames ({args.split} split, seed {args.seed}) to {out} "
        f"in {fs.manifest.get('generation_s', 0):.1f} s; {has_needle} with a visible needle"
    )
    return 0


def _train(args) -> int:
    from ir_robot.perception.train import load_config, train

    cfg = load_config(
        args.config,
        args.modality,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        input_size=args.input_size,
        train_frames=args.train_frames,
        val_frames=args.val_frames,
    )
    out = Path(args.out or f"out/train/{args.modality}_seg")
    metrics = train(cfg, out, progress=not args.quiet, resume=args.resume)
    print(
        f"best validation Dice {metrics['best_val_score']:.4f}; weights {out / 'model.pt'}; "
        f"metrics {out / 'metrics.json'}; curve {out / 'learning_curve.png'} ({metrics['wall_s']:.0f} s)"
    )
    return 0


def _ship(args) -> int:
    from ir_robot.perception.model_card import ship

    dest = ship(args.modality, args.run, bench_json=args.bench, models_dir=args.models_dir)
    print(f"shipped {args.run}/model.pt -> {dest}/model.pt with {dest}/MODEL_CARD.md")
    return 0


def _segment(args) -> int:
    import cv2

    from ir_robot.core.errors import PerceptionError
    from ir_robot.core.results import UsResult
    from ir_robot.perception.inference import draw_overlay, make_perception
    from ir_robot.perception.transforms import read_image

    image = read_image(args.input, args.frame)
    if args.classical:
        from ir_robot.perception.classical import ClassicalNirPerception, ClassicalUsPerception

        perception = ClassicalUsPerception() if args.modality == "us" else ClassicalNirPerception()
        if args.spacing is None:
            from ir_robot.perception.inference import DEFAULT_FOV_MM

            fov = DEFAULT_FOV_MM[args.modality]
            args.spacing = (fov[0] / image.shape[0], fov[1] / image.shape[1])
    else:
        perception = make_perception(args.modality, args.weights, threads=args.threads)
    result = perception.predict(image, tuple(args.spacing) if args.spacing else None)
    if result.mask is None:  # only a result rebuilt from JSON has none, never a predictor's
        raise PerceptionError(f"the {args.modality} predictor returned no mask")
    outputs = [(args.output, result.mask)]
    if args.overlay:
        outputs.append((args.overlay, draw_overlay(image, result)))
    for path, img in outputs:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(p), img):
            raise PerceptionError(f"cannot write {p}: use a .png path in a writable folder")
    summary = result.to_dict()
    summary["input"] = str(args.input)
    if args.json:
        p = Path(args.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(summary, indent=2))
    if isinstance(result, UsResult):  # args.modality == "us"
        nd = result.needle
        needle = (
            "no needle"
            if nd is None
            else (
                f"needle tip (row {nd.tip_px[0]:.1f}, col {nd.tip_px[1]:.1f}) = {nd.tip_mm[1]:.2f} mm deep"
                + (f", angle {nd.angle_deg:.1f} deg" if nd.angle_deg is not None else " (out-of-plane dot)")
            )
        )
        vessels = ", ".join(f"{v.kind} {v.diameter_mm:.1f} mm at {v.depth_mm:.1f} mm" for v in result.vessels)
        print(f"{args.input}: {len(result.vessels)} vessel(s){': ' + vessels if vessels else ''}; {needle}")
    else:
        veins = ", ".join(
            f"{v.width_mm:.1f} mm wide, {v.length_mm:.0f} mm long at {v.angle_deg:.0f} deg" for v in result.veins
        )
        print(f"{args.input}: {len(result.veins)} vein(s){': ' + veins if veins else ''}")
    print(
        f"wrote {args.output}" + (f", {args.overlay}" if args.overlay else "") + (f", {args.json}" if args.json else "")
    )
    return 0


def register(sub) -> None:
    """Adds ``dataset``, ``train-perception``, ``ship-model`` and ``segment`` to the subcommand parsers ``sub``."""
    p = sub.add_parser("dataset", help="generate a synthetic perception dataset (images, label masks, metadata)")
    p.add_argument("modality", choices=("us", "nir"))
    p.add_argument("--n", type=int, required=True, help="number of frames")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (frame k is the same for any --n)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="train",
        help="train/val use the training randomisation bands; test the full ranges and other phantoms",
    )
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"), help="image size in pixels")
    p.add_argument("--no-png", action="store_true", help="only frames.npz + frames.jsonl, no PNG files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_dataset)

    p = sub.add_parser("train-perception", help="train the ultrasound or NIR segmenter")
    p.add_argument("modality", choices=("us", "nir"))
    p.add_argument("--config", help="training YAML (default config/perception/<modality>.yaml)")
    p.add_argument("--out", help="run folder (default out/train/<modality>_seg)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, help="training seed (init, shuffling, augmentation)")
    p.add_argument("--input-size", type=int, help="model input side in pixels")
    p.add_argument("--train-frames", type=int)
    p.add_argument("--val-frames", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads (default from the config: 2)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = sub.add_parser("ship-model", help="copy a training run into models/ and write its MODEL_CARD.md")
    p.add_argument("modality", choices=("us", "nir"))
    p.add_argument("--run", required=True, help="training run folder (from train-perception --out)")
    p.add_argument("--bench", help="`ir-robot bench perception --json` results of these weights for the card")
    p.add_argument("--models-dir", help="destination models folder (default: the package's models/)")
    p.set_defaults(func=_ship)

    p = sub.add_parser("segment", help="segment an ultrasound or NIR image (PNG or a video frame)")
    p.add_argument("--modality", choices=("us", "nir"), required=True)
    p.add_argument("--input", required=True, help="grey image (PNG, JPEG, ...) or video (with --frame)")
    p.add_argument("--output", required=True, help="label mask PNG (pixel values are the LABEL_* codes)")
    p.add_argument("--overlay", help="also write a colour overlay PNG")
    p.add_argument("--json", help="also write vessels / needle / veins as JSON")
    p.add_argument("--weights", help="weights file (default models/<modality>_seg/model.pt)")
    p.add_argument("--frame", type=int, help="frame index when --input is a video")
    p.add_argument(
        "--spacing",
        type=float,
        nargs=2,
        metavar=("ROW_MM", "COL_MM"),
        help="pixel size; default: the model's field of view spread over the image",
    )
    p.add_argument("--classical", action="store_true", help="use the OpenCV baseline instead of the model")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.set_defaults(func=_segment)
