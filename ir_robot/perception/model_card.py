"""Ship a trained segmenter: copy a training run into ``models/<us|nir>_seg/`` with its model card.

``ir-robot ship-model us --run out/train/us_seg [--bench out/bench/perception.json]``

The card is written from the run's own records (``metrics.json``, ``config.yaml``: the
command, seed, data manifests, wall and CPU time, validation metrics) and, when given, the
``ir-robot bench perception --json`` results of the same weights on the held-out test set,
next to the classical baseline and the issue's targets. Nothing in it is typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

from ir_robot.core.errors import PerceptionError

#: key -> (target, "min" | "max", label), on our synthetic benchmark
TARGETS: dict[str, dict[str, tuple[float, str, str]]] = {
    "us": {
        "us_vessel_dice": (0.92, "min", "vessel Dice (vein + artery)"),
        "us_artery_vein_accuracy": (0.98, "min", "artery/vein accuracy"),
        "needle_precision": (0.996, "min", "needle precision"),
        "needle_recall": (0.998, "min", "needle recall"),
        "needle_tip_error_mm_mean": (0.5, "max", "tip error mean (mm)"),
        "needle_tip_error_mm_p95": (1.0, "max", "tip error p95 (mm)"),
        "needle_angle_error_deg": (0.8, "max", "angle error (deg)"),
        "vessel_depth_error_mm": (0.3, "max", "vessel centre depth error (mm)"),
        "us_ms_per_frame": (1000 / 30, "max", "ms per frame (256x256, 2 threads)"),
    },
    "nir": {
        "nir_vein_dice": (0.90, "min", "vein Dice"),
        "nir_ms_per_frame": (1000 / 30, "max", "ms per frame (256x256, 2 threads)"),
    },
}
DATA_NOTES = {
    "us": "Ultrasound B-mode frames from `ir_robot.perception.datasets` (train/val splits): random phantoms, "
    "longitudinal and transverse views, needles absent / in plane / off plane / steep / crossing / tip in "
    "the target lumen, plus (train/val only, ~10 % of frames) the needle at the target vessel as during an "
    "insertion (approaching its top wall, in its lumen, through it), gauges 17-22 G, speckle, gain/TGC, "
    "dynamic range, frequency, motion and pulsation randomised. Classes: background, vein, artery, needle; "
    "barely visible needles are labelled don't care (255).",
    "nir": "Top-down NIR frames from `ir_robot.perception.datasets` (train/val splits): random phantoms, skin "
    "tone, hair, lighting, glare, noise and depth blur randomised. Classes: background, vein; veins just "
    "below the visibility threshold, and arteries from that contrast up, are labelled don't care (255).",
}


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _met(v, target: float, how: str) -> str:
    if v is None:
        return "n/a"
    return "yes" if (v >= target if how == "min" else v <= target) else "**no**"


def render_card(modality: str, metrics: dict, config_text: str, bench: dict | None) -> str:
    """The MODEL_CARD.md text for one shipped model."""
    name = {
        "us": "Ultrasound segmenter (background, vein, artery, needle)",
        "nir": "NIR vein segmenter (background, vein)",
    }[modality]
    cfg_train = metrics.get("train_manifest") or {}
    lines = [
        f"# {name}",
        "",
        "All figures are **on our synthetic benchmark** (frames made by this repository's simulator); "
        "they say nothing yet about real patients or real probes.",
        "",
        "## How it was made",
        "",
        f"- Command: `{metrics.get('command', '?')}` (git `{metrics.get('git', '?')}`)",
        f"- Training wall time {_fmt(metrics.get('wall_s'))} s, CPU time {_fmt(metrics.get('cpu_s'))} s, "
        f"{metrics.get('torch_threads', '?')} torch threads, data generation/loading "
        f"{_fmt(metrics.get('data_s'))} s, on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), no GPU.",
        f"- Epochs: {metrics.get('epochs')}; best validation score (mean hard Dice over foreground classes "
        f"at model resolution): {_fmt(metrics.get('best_val_score'))}.",
        f"- Data: {DATA_NOTES[modality]}",
        "",
    ]
    if cfg_train:
        lines += [f"- Training set: {cfg_train}", ""]
    lines += [
        "### Training configuration",
        "",
        "```yaml",
        config_text.strip(),
        "```",
        "",
        "![learning curve](learning_curve.png)",
        "",
        "## Validation (training seed stream, full post-processing, original size)",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for k, v in (metrics.get("final_val") or {}).items():
        if isinstance(v, (int, float)) or v is None:
            lines.append(f"| {k} | {_fmt(v)} |")
    lines.append("")
    if bench:
        lines += [
            "## Held-out test set (`ir-robot bench perception`)",
            "",
            f"Test seed {bench.get('test_seed')}, {bench.get(f'{modality}_test_frames')} frames from phantoms "
            "and randomisation bands not used in training; classical = the OpenCV baseline on the same frames.",
            "",
            "| metric | learned | classical | target | met |",
            "|---|---|---|---|---|",
        ]
        for k, (target, how, label) in TARGETS[modality].items():
            v = bench.get(k)
            sign = ">=" if how == "min" else "<="
            lines.append(
                f"| {label} (`{k}`) | {_fmt(v)} | {_fmt(bench.get('classical_' + k))} | "
                f"{sign} {target:.4g} | {_met(v, target, how)} |"
            )
        held = {
            k: v
            for k, v in bench.items()
            if k.startswith("heldout_") and modality in k or (modality == "us" and k.startswith("heldout_needle"))
        }
        if held:
            lines += [
                "",
                "Frames in the held-out randomisation bands only: "
                + ", ".join(f"`{k}` {_fmt(v)}" for k, v in held.items())
                + ".",
            ]
        lines.append("")
    lines += [
        "## Use",
        "",
        f"`ir-robot segment --modality {modality} --input IMG.png --output MASK.png --overlay OUT.png`; in "
        f"Python `ir_robot.perception.inference.{'UltrasoundPerception' if modality == 'us' else 'NirPerception'}"
        f".default()`. Any image size is accepted (resized to the model input).",
        "",
    ]
    return "\n".join(lines)


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ship(
    modality: str, run_dir: str | Path, *, bench_json: str | Path | None = None, models_dir: str | Path | None = None
) -> Path:
    """Copy ``run_dir/model.pt`` (+ learning curve) to the models folder and write ``MODEL_CARD.md``."""
    from ir_robot.perception.inference import MODEL_DIRS, load_weights

    if modality not in MODEL_DIRS:
        raise PerceptionError(f"unknown modality {modality!r}; use one of {sorted(MODEL_DIRS)}")
    run = Path(run_dir)
    for name in ("model.pt", "metrics.json", "config.yaml"):
        if not (run / name).is_file():
            raise PerceptionError(
                f"training run {run}: missing {name}; train with `ir-robot train-perception {modality} --out {run}`"
            )
    load_weights(run / "model.pt", expect_modality=modality)  # refuses weights of another model
    metrics = json.loads((run / "metrics.json").read_text())
    bench = None
    if bench_json is not None:
        bench = json.loads(Path(bench_json).read_text())
        weights_used = bench.get(f"{modality}_weights")
        # the bench must have measured these very weights (e.g. run with --us-weights RUN/model.pt)
        if not weights_used or not Path(weights_used).is_file() or _sha256(weights_used) != _sha256(run / "model.pt"):
            raise PerceptionError(
                f"{bench_json} measured {modality} weights {weights_used}, not the ones in "
                f"{run / 'model.pt'}; run `ir-robot bench perception --{modality}-weights "
                f"{run / 'model.pt'} --json {bench_json}` first"
            )
    if models_dir is None:
        from ir_robot.paths import share_dir

        models_dir = share_dir() / "models"
    dest = Path(models_dir) / MODEL_DIRS[modality]
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "model.pt", dest / "model.pt")
    if (run / "learning_curve.png").is_file():
        shutil.copyfile(run / "learning_curve.png", dest / "learning_curve.png")
    shutil.copyfile(run / "metrics.json", dest / "training_metrics.json")
    (dest / "MODEL_CARD.md").write_text(render_card(modality, metrics, (run / "config.yaml").read_text(), bench))
    return dest
