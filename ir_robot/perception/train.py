"""Training of the segmenters: ``ir-robot train-perception {us,nir} [--epochs N] [--out DIR]``.

A run folder holds everything its result depends on::

    DIR/model.pt            best weights (by validation Dice), the file the predictors load
    DIR/checkpoint.pt       last epoch with optimizer/scheduler state (``--resume`` continues it)
    DIR/config.yaml         the resolved config
    DIR/metrics.json        per-epoch history, the final validation metrics (full post-processing
                            at the original image size), command, git hash, timing, dataset manifests
    DIR/learning_curve.png  losses and Dice per epoch

Data: train/val frames are generated once from the simulator and cached as npz
(:func:`ir_robot.perception.datasets.cached_dataset`). Images are resized to the model
input once; targets are the per-class *area fractions* of each low-resolution pixel
(``cv2.INTER_AREA`` of the one-hot labels), so the net learns sub-pixel boundaries and
its bilinearly up-sampled probabilities give full-resolution masks. Loss: soft-target
cross-entropy (class weights) + ``dice_weight`` x soft Dice per image and foreground class
(averaged over the classes present in each image, so small structures count fully).
Augmentation (on the batch, in torch): horizontal flips (NIR also vertical flips and
transposes), gamma, contrast, Gaussian noise, then per-image standardisation exactly as
at inference.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ir_robot.config import from_dict, load, param, to_dict
from ir_robot.core.errors import ConfigError
from ir_robot.core.types import LABEL_ARTERY, LABEL_IGNORE, LABEL_VEIN
from ir_robot.perception.transforms import STD_FLOOR, resize, roi_box


@dataclass(frozen=True)
class ModelConfig:
    """The U-Net's architecture arguments (what the weights file records as ``arch``)."""

    base_channels: int = param(16, range=(2, 128), help="channels of the first U-Net level")
    depth: int = param(4, range=(2, 6), help="U-Net resolution levels")
    dropout: float = param(0.0, range=(0.0, 0.9))


@dataclass(frozen=True)
class DataConfig:
    """The generated training and validation sets: sizes, seed, image size and where they are cached."""

    train_frames: int = param(3000, range=(4, 1_000_000))
    val_frames: int = param(300, range=(2, 100_000))
    seed: int = param(1, range=(0, 2**31 - 1), help="dataset seed (phantoms, scenes, imaging parameters)")
    size_px: tuple[int, int] = param((256, 256), range=(32, 4096), unit="px", help="rendered image size (H, W)")
    cache_dir: str = param("out/cache/perception", help="where generated datasets are cached (npz)")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (``config/perception/<modality>.yaml``): optimisation, loss, augmentation, model, data."""

    modality: str = param("us", choices=("us", "nir"))
    seed: int = param(0, range=(0, 2**31 - 1), help="torch init / shuffling / augmentation seed")
    epochs: int = param(20, range=(1, 10_000))
    batch_size: int = param(16, range=(1, 1024))
    lr: float = param(3e-3, range=(1e-6, 1.0), help="peak learning rate (one-cycle)")
    weight_decay: float = param(1e-4, range=(0.0, 1.0))
    input_size: int = param(128, range=(32, 1024), unit="px", help="square model input side")
    dice_weight: float = param(1.0, range=(0.0, 100.0))
    class_weights: tuple[float, ...] = param((), range=(0.0, 1000.0), help="per-class CE weights (empty: all 1)")
    calibrate_classes: tuple[int, ...] = param(
        (),
        range=(1, 3),
        help="classes whose decision bias is tuned on the validation split for the best Dice (empty: plain argmax)",
    )
    augment: bool = True
    roi_crops: float = param(
        0.0,
        range=(0.0, 4.0),
        help="extra training samples per frame: a region of interest (1/zoom of the frame "
        "around a vessel) resized to the input, as the controller's tracking ROI "
        "feeds the network (ultrasound; 0: whole frames only)",
    )
    roi_zoom: tuple[float, float] = param(
        (1.25, 2.0), range=(1.0, 8.0), help="zoom range of those crops (frame side / crop side)"
    )
    threads: int = param(2, range=(1, 256), help="torch CPU threads")
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)

    @property
    def num_classes(self) -> int:
        """Classes the network outputs: 4 for ultrasound (with artery and needle), 2 for NIR."""
        return 4 if self.modality == "us" else 2


def default_config_path(modality: str) -> Path:
    from ir_robot.paths import data_path

    return data_path("config", "perception", f"{modality}.yaml")


def load_config(path: str | Path | None, modality: str, **overrides) -> TrainConfig:
    """Config from YAML (default ``config/perception/<modality>.yaml``) with CLI overrides applied."""
    if path is None:
        p = default_config_path(modality)
        cfg = load(p, TrainConfig) if p.is_file() else TrainConfig(modality=modality)
    else:
        cfg = load(path, TrainConfig)
    if cfg.modality != modality:
        raise ConfigError(f"{path}: config is for modality {cfg.modality!r}, but {modality!r} was asked for")
    data_over = {k: v for k, v in overrides.items() if k in ("train_frames", "val_frames") and v is not None}
    top = {k: v for k, v in overrides.items() if k not in data_over and v is not None}
    if data_over:
        top["data"] = replace(cfg.data, **data_over)
    if top:
        merged = to_dict(cfg)
        for k, v in top.items():
            merged[k] = to_dict(v)
        cfg = from_dict(TrainConfig, merged, source="command line")
    if cfg.class_weights and len(cfg.class_weights) != cfg.num_classes:
        raise ConfigError(
            f"class_weights: {len(cfg.class_weights)} values given, the {modality!r} model has "
            f"{cfg.num_classes} classes"
        )
    return cfg


# --------------------------------------------------------------------------- data preparation


def prepare_arrays(
    images: Sequence[NDArray[np.uint8]] | NDArray[np.uint8],
    labels: Sequence[NDArray[np.uint8]] | NDArray[np.uint8],
    input_size: int,
    num_classes: int,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Model-size images (N, S, S) uint8 and soft targets (N, C, S, S) uint8 (area fraction x 255)."""
    n = len(images)
    x = np.empty((n, input_size, input_size), np.uint8)
    y = np.empty((n, num_classes, input_size, input_size), np.uint8)
    size = (input_size, input_size)
    for i in range(n):
        x[i] = resize(images[i], size)
        for c in range(num_classes):
            onehot = (labels[i] == c).astype(np.float32)
            y[i, c] = np.clip(np.rint(resize(onehot, size) * 255.0), 0, 255).astype(np.uint8)
    return x, y


def roi_crops(
    images: np.ndarray, labels: np.ndarray, n: int, zoom_range: tuple[float, float], rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` square crops (images, labels) of 1/zoom of the frame side, each around a random vessel
    pixel of a random frame (jittered by up to a sixth of the crop; anywhere when the frame has no
    vessel): what the network sees when the controller tracks a target through a region of interest
    (:meth:`ir_robot.perception.inference.UltrasoundPerception.predict` with ``roi``).
    """
    lo, hi = sorted(float(z) for z in zoom_range)
    xs, ys = [], []
    for _ in range(n):
        i = int(rng.integers(len(images)))
        lab = labels[i]
        h, w = lab.shape
        side = int(round(min(h, w) / rng.uniform(lo, hi)))
        vessel = np.flatnonzero((lab == LABEL_VEIN) | (lab == LABEL_ARTERY))
        if vessel.size:
            r, c = divmod(int(vessel[rng.integers(vessel.size)]), w)
            r, c = r + rng.uniform(-side / 6, side / 6), c + rng.uniform(-side / 6, side / 6)
        else:
            r, c = rng.uniform(0, h), rng.uniform(0, w)
        r0, c0, r1, c1 = roi_box((r, c), side, (h, w))
        xs.append(images[i][r0:r1, c0:c1])
        ys.append(lab[r0:r1, c0:c1])
    return xs, ys


def _augment(x, y, gen, modality: str, torch):
    """X (B, 1, S, S) in [0, 1], y (B, C, S, S) soft targets; returns augmented copies."""
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None, None], y.flip(-1), y)
    if modality == "nir":
        vflip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(vflip[:, None, None, None], x.flip(-2), x)
        y = torch.where(vflip[:, None, None, None], y.flip(-2), y)
        tr = torch.rand(b, generator=gen) < 0.5
        x = torch.where(tr[:, None, None, None], x.transpose(-1, -2), x)
        y = torch.where(tr[:, None, None, None], y.transpose(-1, -2), y)
    gamma = torch.exp(torch.empty(b, 1, 1, 1).uniform_(math.log(0.7), math.log(1.45), generator=gen))
    x = x.clamp_min(1e-4) ** gamma
    contrast = torch.empty(b, 1, 1, 1).uniform_(0.75, 1.3, generator=gen)
    x = (x - 0.5) * contrast + 0.5
    sigma = torch.empty(b, 1, 1, 1).uniform_(0.0, 0.03, generator=gen)
    x = (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0.0, 1.0)
    return x, y


def _standardise_t(x, torch):
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True, unbiased=False).clamp_min(STD_FLOOR)
    return (x - mean) / std


def _targets(y, torch):
    """Area-fraction targets ``(B, C, S, S)`` in [0, 1] -> (normalised targets, valid mask (B, 1, S, S)).

    The class fractions of a pixel sum to less than 1 where it covers "don't care" label
    pixels (``LABEL_IGNORE``); a pixel that is mostly don't-care is left out of the loss.
    """
    w = y.sum(dim=1, keepdim=True)
    valid = (w >= 0.5).float()
    return y / w.clamp_min(1e-6) * valid, valid


def _loss(logits, target, class_w, dice_weight: float, torch, valid=None):
    logp = torch.log_softmax(logits, dim=1)
    # don't-care pixels have all-zero targets: no cross-entropy there
    ce = -(target * logp * class_w[None, :, None, None]).sum(dim=1).mean()
    if dice_weight <= 0:
        return ce
    # soft Dice per image and foreground class, averaged over the (image, class) pairs present in
    # the target: a 20-pixel out-of-plane needle dot weighs as much as a long shaft (false
    # positives are left to the cross-entropy); predictions on don't-care pixels do not count
    p = logp.exp()[:, 1:]
    if valid is not None:
        p = p * valid
    t = target[:, 1:]
    inter = (p * t).sum(dim=(2, 3))
    denom = p.sum(dim=(2, 3)) + t.sum(dim=(2, 3))
    dsc = (2 * inter + 1.0) / (denom + 1.0)
    present = (t.sum(dim=(2, 3)) >= 1.0).float()
    if float(present.sum()) == 0:
        return ce
    return ce + dice_weight * ((1.0 - dsc) * present).sum() / present.sum()


def _hard_dice(pred, target_idx, num_classes: int) -> list[float]:
    out = []
    for c in range(1, num_classes):
        p, t = pred == c, target_idx == c
        denom = int(p.sum()) + int(t.sum())
        out.append(2.0 * int((p & t).sum()) / denom if denom else 1.0)
    return out


def git_hash() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "ir_robot/perception"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        h = out.stdout.strip()
        return (h + ("+dirty" if dirty.stdout.strip() else "")) if h else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------- training


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    progress: bool = True,
    resume: bool = False,
    train_set=None,
    val_set=None,
    evaluate: bool = True,
    log=print,
) -> dict:
    """Train a segmenter as configured; write the run folder; return the metrics dict.

    ``train_set`` / ``val_set`` (:class:`~ir_robot.perception.datasets.FrameSet`) replace the
    generated datasets (tests use tiny fake ones).
    """
    import torch

    from ir_robot.perception.datasets import cached_dataset
    from ir_robot.perception.inference import DEFAULT_FOV_MM, save_weights
    from ir_robot.perception.models import build_model, count_parameters

    t_start = time.perf_counter()
    cpu_start = time.process_time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    nc = cfg.num_classes
    arch = {
        "name": "unet",
        "in_channels": 1,
        "num_classes": nc,
        "base_channels": cfg.model.base_channels,
        "depth": cfg.model.depth,
        "dropout": cfg.model.dropout,
    }
    model = build_model(arch)
    if cfg.input_size % model.divisor:
        raise ConfigError(
            f"input_size {cfg.input_size} must be a multiple of {model.divisor} for depth {cfg.model.depth}"
        )
    (out / "config.yaml").write_text(_yaml_dump(to_dict(cfg)))

    t0 = time.perf_counter()
    if train_set is None:
        train_set = cached_dataset(
            cfg.modality,
            cfg.data.train_frames,
            cfg.data.seed,
            "train",
            cfg.data.cache_dir,
            size_px=cfg.data.size_px,
            progress=progress,
        )
    if val_set is None:
        val_set = cached_dataset(
            cfg.modality,
            cfg.data.val_frames,
            cfg.data.seed,
            "val",
            cfg.data.cache_dir,
            size_px=cfg.data.size_px,
            progress=progress,
        )
    data_s = time.perf_counter() - t0
    xtr, ytr = prepare_arrays(train_set.images, train_set.labels, cfg.input_size, nc)
    n_roi = int(round(cfg.roi_crops * len(xtr)))
    if n_roi:
        crops = roi_crops(train_set.images, train_set.labels, n_roi, cfg.roi_zoom, np.random.default_rng(cfg.seed))
        xr, yr = prepare_arrays(*crops, cfg.input_size, nc)
        xtr, ytr = np.concatenate([xtr, xr]), np.concatenate([ytr, yr])
    xva, yva = prepare_arrays(val_set.images, val_set.labels, cfg.input_size, nc)
    log(
        f"train-perception {cfg.modality}: {len(xtr)} train ({n_roi} of them ROI crops) / {len(xva)} val frames "
        f"({data_s:.0f} s data), "
        f"U-Net {count_parameters(model) / 1e3:.0f} k params, input {cfg.input_size} px, {cfg.epochs} epochs"
    )

    class_w = torch.tensor(cfg.class_weights or (1.0,) * nc, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(xtr) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best = -1.0
    start_epoch = 0
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        history, best, start_epoch = ck["history"], ck["best"], ck["epoch"] + 1
        log(f"resumed from {ckpt_path} at epoch {start_epoch}")

    xtr_t = torch.from_numpy(xtr)
    ytr_t = torch.from_numpy(ytr)
    xva_t = torch.from_numpy(xva)
    yva_t = torch.from_numpy(yva)
    info_base = {
        "config": to_dict(cfg),
        "git": git_hash(),
        "command": _command_line(),
        "train_manifest": train_set.manifest,
        "val_manifest": val_set.manifest,
    }
    fov = _field_of_view(train_set) or DEFAULT_FOV_MM[cfg.modality]
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t_ep = time.perf_counter()
        perm = torch.randperm(len(xtr_t), generator=gen)
        it = range(steps_per_epoch)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(it, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False, file=sys.stderr)
            it = bar
        run_loss = 0.0
        for step in it:
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = xtr_t[idx].float().div_(255.0).unsqueeze(1)
            y = ytr_t[idx].float().div_(255.0)
            if cfg.augment:
                x, y = _augment(x, y, gen, cfg.modality, torch)
            y, valid = _targets(y, torch)
            x = _standardise_t(x, torch)
            loss = _loss(model(x), y, class_w, cfg.dice_weight, torch, valid)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += loss.item()
            if bar is not None:
                bar.set_postfix(loss=f"{run_loss / (step + 1):.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        if bar is not None:
            bar.close()
        val_loss, val_dice = _validate(model, xva_t, yva_t, class_w, cfg, torch)
        score = float(np.mean(val_dice))
        rec = {
            "epoch": epoch + 1,
            "train_loss": run_loss / steps_per_epoch,
            "val_loss": val_loss,
            "val_dice": val_dice,
            "val_score": score,
            "lr": sched.get_last_lr()[0],
            "epoch_s": round(time.perf_counter() - t_ep, 1),
        }
        history.append(rec)
        improved = score > best
        if improved:
            best = score
            save_weights(
                out / "model.pt",
                model,
                modality=cfg.modality,
                arch=arch,
                input_size=cfg.input_size,
                field_of_view_mm=fov,
                info={**info_base, "epoch": epoch + 1, "val_score": score},
            )
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "generator": gen.get_state(),
                "history": history,
                "best": best,
                "epoch": epoch,
            },
            ckpt_path,
        )
        log(
            f"epoch {epoch + 1:3d}/{cfg.epochs}  train loss {rec['train_loss']:.4f}  val loss {val_loss:.4f}  "
            f"val dice {' '.join(f'{d:.3f}' for d in val_dice)}{'  *' if improved else ''}  ({rec['epoch_s']:.0f} s)"
        )
        _write_metrics(out, cfg, history, None, t_start, data_s, cpu_start)
    plot_learning_curve(history, out / "learning_curve.png", title=f"{cfg.modality} segmenter")
    if cfg.calibrate_classes:
        bias, table = calibrate_class_bias(out / "model.pt", val_set, cfg.calibrate_classes)
        log(
            f"decision bias calibrated on the validation split: {[round(b, 2) for b in bias]} "
            f"(Dice {', '.join(f'{k}: {v[0]:.4f} -> {v[1]:.4f}' for k, v in table.items())})"
        )
    final = None
    if evaluate:
        final = evaluate_weights(out / "model.pt", val_set)
        log(
            "validation (full post-processing, original size): "
            + ", ".join(f"{k} {v:.4g}" for k, v in final.items() if isinstance(v, float))
        )
    return _write_metrics(out, cfg, history, final, t_start, data_s, cpu_start)


def calibrate_class_bias(weights: str | Path, frameset, classes, grid=None) -> tuple[list[float], dict]:
    """Tune the log-probability bias of ``classes`` (one after the other) for the best set-level
    Dice of that class on ``frameset`` (full resolution); store it in the weights file.

    Returns the bias vector and ``{class: (dice before, dice after)}``.
    """
    import torch

    from ir_robot.perception.inference import Segmenter

    grid = np.linspace(-2.0, 2.0, 21) if grid is None else np.asarray(grid, float)
    seg = Segmenter.from_weights(weights)
    logp = np.stack([np.log(np.maximum(seg.probabilities(img), 1e-6)) for img in frameset.images])
    labels = frameset.labels
    care = labels != LABEL_IGNORE
    bias = np.zeros(seg.num_classes, np.float32)
    table = {}

    def dice_for(c, b):
        trial = bias.copy()
        trial[c] = b
        pred = ((logp + trial[None, :, None, None]).argmax(axis=1) == c) & care
        gt = labels == c
        denom = int(pred.sum()) + int(gt.sum())
        return 2.0 * int((pred & gt).sum()) / denom if denom else 1.0

    for c in classes:
        scores = [dice_for(c, b) for b in grid]
        before = dice_for(c, 0.0)
        bias[c] = float(grid[int(np.argmax(scores))])
        table[int(c)] = (before, max(scores))
    blob = torch.load(weights, map_location="cpu", weights_only=True)
    blob["class_bias"] = [float(v) for v in bias]
    blob.setdefault("info", {})["class_bias_calibration"] = {
        str(k): [round(a, 5), round(b, 5)] for k, (a, b) in table.items()
    }
    tmp = Path(weights).with_suffix(".pt.tmp")
    torch.save(blob, tmp)
    tmp.replace(weights)
    return [float(v) for v in bias], table


def _validate(model, x_t, y_t, class_w, cfg: TrainConfig, torch) -> tuple[float, list[float]]:
    model.eval()
    losses, preds = [], []
    with torch.inference_mode():
        for s in range(0, len(x_t), 64):
            x = _standardise_t(x_t[s : s + 64].float().div_(255.0).unsqueeze(1), torch)
            y, valid = _targets(y_t[s : s + 64].float().div_(255.0), torch)
            logits = model(x)
            losses.append(float(_loss(logits, y, class_w, cfg.dice_weight, torch, valid)) * len(x))
            preds.append(logits.argmax(dim=1).numpy())
    pred = np.concatenate(preds)
    yv = y_t.numpy()
    target = np.where(yv.sum(axis=1) >= 128, yv.argmax(axis=1), -1)  # -1: don't care
    pred = np.where(target >= 0, pred, -1)
    return sum(losses) / len(x_t), _hard_dice(pred, target, cfg.num_classes)


def evaluate_weights(weights: str | Path, frameset, *, threads: int | None = None) -> dict:
    """Full evaluation (predictor + post-processing at the original size) of a weights file."""
    from ir_robot.perception.inference import make_perception
    from ir_robot.perception.metrics import NirEvaluator, UsEvaluator

    modality = frameset.modality
    perception = make_perception(modality, weights, threads=threads)
    ev = UsEvaluator() if modality == "us" else NirEvaluator()
    for i, frame in enumerate(frameset.frames()):
        ev.add(frame, perception.predict(frame), i)
    return ev.summary()


def _field_of_view(frameset) -> tuple[float, float] | None:
    """Median (depth, width) field of view of a dataset, in mm."""
    if not len(frameset):
        return None
    sp = np.array([r["spacing_mm"] for r in frameset.records], float)
    h, w = frameset.images.shape[1:]
    return float(np.median(sp[:, 0]) * h), float(np.median(sp[:, 1]) * w)


def _write_metrics(
    out: Path, cfg: TrainConfig, history, final, t_start: float, data_s: float, cpu_start: float = 0.0
) -> dict:
    metrics = {
        "modality": cfg.modality,
        "epochs": len(history),
        "history": history,
        "best_val_score": max((h["val_score"] for h in history), default=None),
        "final_val": final,
        "data_s": round(data_s, 1),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "cpu_s": round(time.process_time() - cpu_start, 1),
        "git": git_hash(),
        "command": _command_line(),
        "torch_threads": cfg.threads,
    }
    (out / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2))
    return metrics


def _finite(v):
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("ir-robot", "cli.py")):
        argv[0] = "ir-robot"
    return " ".join(shlex.quote(a) for a in argv)


def _yaml_dump(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def plot_learning_curve(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Train/val loss and validation Dice per epoch (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    ep = [h["epoch"] for h in history]
    ax1.plot(ep, [h["train_loss"] for h in history], label="train")
    ax1.plot(ep, [h["val_loss"] for h in history], label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (CE + Dice)")
    ax1.set_yscale("log")
    ax1.legend()
    if history:
        names = ("vein", "artery", "needle") if len(history[0]["val_dice"]) == 3 else ("vein",)
        for k, name in enumerate(names):
            ax2.plot(ep, [h["val_dice"][k] for h in history], label=name)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation Dice (model resolution)")
    ax2.set_ylim(0, 1)
    ax2.grid(alpha=0.3)
    ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    return Path(path)


__all__ = [
    "TrainConfig",
    "ModelConfig",
    "DataConfig",
    "load_config",
    "train",
    "evaluate_weights",
    "prepare_arrays",
    "plot_learning_curve",
    "calibrate_class_bias",
]
