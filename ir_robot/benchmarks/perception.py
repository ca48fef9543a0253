"""``ir-robot bench perception``: learned vs classical perception on a held-out synthetic test set.

The test set is generated from :data:`TEST_SEED` with the ``test`` split of
:mod:`ir_robot.perception.datasets`: phantoms from a seed stream never used in training
(whole phantoms unseen) and the full randomisation ranges, which include bands cut out
of the training data (ultrasound 8.5-9.5 MHz, 53-57 dB dynamic range, 27-33 deg needle
pitch, 19 G needles; NIR skin tone / hair / noise / glare / lighting middle bands).
``heldout_*`` keys report the frames that fall in those bands.

Artery/vein over time: :data:`US_CLIPS` clips (``datasets.iter_us_clips``: 20 transverse
frames at 10 Hz, probe still, no needle, test split) through the model and
:class:`~ir_robot.perception.temporal.VesselKindTracker`; ``us_artery_vein_accuracy_clip``
is the accuracy at each clip's last frame with the pulse, ``us_artery_vein_accuracy_clip_last_frame``
the single-frame vote on the same frames (``classical_*``: the baseline through the same tracker).

Keys (learned model; ``classical_*`` the OpenCV baseline on the same frames): see
:mod:`ir_robot.perception.metrics` for the definitions. ``*_ms_per_frame`` is the mean
wall time of ``predict()`` (resize, network, post-processing) on 256x256 frames with
2 torch threads, on whatever else the machine is doing at the time.
"""

from __future__ import annotations

import math
import time

import numpy as np

#: seed of the benchmark test set (training uses other seeds and another split stream)
TEST_SEED = 90210
US_FRAMES = 600
NIR_FRAMES = 300
QUICK_US_FRAMES = 60
QUICK_NIR_FRAMES = 30
US_CLIPS = 80
QUICK_US_CLIPS = 8
KEYS_ORDER = (
    "us_vessel_dice",
    "us_vessel_dice_frame_mean",
    "us_vein_dice",
    "us_artery_dice",
    "us_artery_vein_accuracy",
    "us_artery_vein_accuracy_clip",
    "us_artery_vein_accuracy_clip_last_frame",
    "us_vessel_detection_recall",
    "needle_precision",
    "needle_recall",
    "needle_f1",
    "needle_tip_error_mm_mean",
    "needle_tip_error_mm_median",
    "needle_tip_error_mm_p95",
    "needle_angle_error_deg",
    "needle_angle_error_deg_p95",
    "vessel_depth_error_mm",
    "vessel_depth_error_mm_p95",
    "us_needle_dice",
    "nir_vein_dice",
    "nir_vein_dice_frame_mean",
    "us_ms_per_frame",
    "nir_ms_per_frame",
)


def _in_heldout_band(frame) -> bool:
    """True when a test frame uses a randomisation value cut out of the training ranges."""
    from ir_robot.perception.datasets import GAUGE_DIAMETER_MM, TRAIN_BANDS, TRAIN_GAUGES, _nir_bands

    meta = frame.meta
    params = meta.get("params", {})
    bands = TRAIN_BANDS["us"] if frame.modality == "us" else _nir_bands()
    for name, allowed in bands.items():
        if name == "needle_pitch_deg":
            scen = str(meta.get("scenario", ""))
            if "/" in scen and scen.endswith("deg"):
                value = float(scen.rsplit("/", 1)[1][:-3])
            else:
                continue
        elif name in params:
            value = float(params[name])
        else:
            continue
        if not any(lo <= value <= hi for lo, hi in allowed):
            return True
    needle = meta.get("needle") or {}
    dia = needle.get("diameter_mm")
    if dia is not None:
        gauge = min(GAUGE_DIAMETER_MM, key=lambda g: abs(GAUGE_DIAMETER_MM[g] - dia))
        if gauge not in TRAIN_GAUGES:
            return True
    return False


def _timed(perception, frame) -> tuple[object, float]:
    t0 = time.perf_counter()
    res = perception.predict(frame)
    return res, time.perf_counter() - t0


def evaluate_us(frames, perception, classical=None) -> dict:
    """Segmentation, needle and artery/vein metrics of ``perception`` (and ``classical``) on ultrasound test
    frames, with the held-out-band subset and the per-frame time.
    """
    from ir_robot.perception.metrics import UsEvaluator

    ev, ev_c, ev_h = UsEvaluator(), UsEvaluator(), UsEvaluator()
    times, times_c = [], []
    n_held = 0
    for i, f in enumerate(frames):
        res, dt = _timed(perception, f)
        ev.add(f, res, i)
        times.append(dt)
        if _in_heldout_band(f):
            ev_h.add(f, res, i)
            n_held += 1
        if classical is not None:
            res_c, dt_c = _timed(classical, f)
            ev_c.add(f, res_c, i)
            times_c.append(dt_c)
    out = ev.summary()
    out["us_ms_per_frame"] = 1000 * float(np.mean(times[1:] or times))
    out["us_ms_per_frame_median"] = 1000 * float(np.median(times))
    if classical is not None:
        out.update(ev_c.summary("classical_"))
        out["classical_us_ms_per_frame"] = 1000 * float(np.mean(times_c))
    held = ev_h.summary()
    out.update(
        {
            "heldout_us_frames": n_held,
            "heldout_us_vessel_dice": held["us_vessel_dice"],
            "heldout_needle_recall": held["needle_recall"],
            "heldout_needle_precision": held["needle_precision"],
            "heldout_needle_tip_error_mm_mean": held["needle_tip_error_mm_mean"],
            "heldout_us_artery_vein_accuracy": held["us_artery_vein_accuracy"],
        }
    )
    out["us_worst_cases"] = ev.failures[:10]
    return out


def evaluate_us_clips(clips, perception, classical=None) -> dict:
    """Artery/vein at the last frame of each clip: the single-frame vote and the pulse over the clip."""
    from ir_robot.perception.metrics import UsEvaluator
    from ir_robot.perception.temporal import VesselKindTracker

    out = {}
    for prefix, pred in (("", perception), ("classical_", classical)):
        if pred is None:
            continue
        single, timed = UsEvaluator(), UsEvaluator()
        for i, clip in enumerate(clips):
            kinds = VesselKindTracker()
            for f in clip:
                res = pred.predict(f)
                res_t = kinds.update(res, f.stamp_s)
            single.add(clip[-1], res, i)
            timed.add(clip[-1], res_t, i)
        out[f"{prefix}us_artery_vein_accuracy_clip"] = timed.av_correct / timed.av_total if timed.av_total else math.nan
        out[f"{prefix}us_artery_vein_accuracy_clip_last_frame"] = (
            single.av_correct / single.av_total if single.av_total else math.nan
        )
        out[f"{prefix}us_clip_vessels"] = timed.av_total
    out["us_clips"] = len(clips)
    return out


def evaluate_nir(frames, perception, classical=None) -> dict:
    """Vein segmentation metrics of ``perception`` (and ``classical``) on NIR test frames, with the held-out-band subset
    and the per-frame time.
    """
    from ir_robot.perception.metrics import NirEvaluator

    ev, ev_c, ev_h = NirEvaluator(), NirEvaluator(), NirEvaluator()
    times, times_c = [], []
    n_held = 0
    for i, f in enumerate(frames):
        res, dt = _timed(perception, f)
        ev.add(f, res, i)
        times.append(dt)
        if _in_heldout_band(f):
            ev_h.add(f, res, i)
            n_held += 1
        if classical is not None:
            res_c, dt_c = _timed(classical, f)
            ev_c.add(f, res_c, i)
            times_c.append(dt_c)
    out = ev.summary()
    out["nir_ms_per_frame"] = 1000 * float(np.mean(times[1:] or times))
    out["nir_ms_per_frame_median"] = 1000 * float(np.median(times))
    if classical is not None:
        out.update(ev_c.summary("classical_"))
        out["classical_nir_ms_per_frame"] = 1000 * float(np.mean(times_c))
    out.update({"heldout_nir_frames": n_held, "heldout_nir_vein_dice": ev_h.summary()["nir_vein_dice"]})
    return out


def _ordered(results: dict) -> dict:
    """Learned and classical values next to each other, then the rest."""
    out = {}
    for k in KEYS_ORDER:
        if k in results:
            out[k] = results[k]
        if f"classical_{k}" in results:
            out[f"classical_{k}"] = results[f"classical_{k}"]
    for k, v in results.items():
        out.setdefault(k, v)
    return out


def run(quick: bool = False, *, us_weights=None, nir_weights=None, threads: int = 2) -> dict:
    """Generate the test sets, run learned and classical perception, return flat metrics."""
    import torch

    from ir_robot.perception.classical import ClassicalNirPerception, ClassicalUsPerception
    from ir_robot.perception.datasets import generate, iter_us_clips
    from ir_robot.perception.inference import make_perception

    torch.set_num_threads(threads)
    n_us = QUICK_US_FRAMES if quick else US_FRAMES
    n_nir = QUICK_NIR_FRAMES if quick else NIR_FRAMES
    us = make_perception("us", us_weights)
    nir = make_perception("nir", nir_weights)
    t0 = time.perf_counter()
    us_set = generate("us", n_us, TEST_SEED, "test")
    nir_set = generate("nir", n_nir, TEST_SEED, "test")
    gen_s = time.perf_counter() - t0
    results = {}
    results.update(evaluate_us(list(us_set.frames()), us, ClassicalUsPerception()))
    results.update(evaluate_nir(list(nir_set.frames()), nir, ClassicalNirPerception()))
    t1 = time.perf_counter()
    clips = list(iter_us_clips(QUICK_US_CLIPS if quick else US_CLIPS, TEST_SEED, "test"))
    gen_s += time.perf_counter() - t1
    results.update(evaluate_us_clips(clips, us, ClassicalUsPerception()))
    results.pop("us_worst_cases", None)
    results.update(
        {
            "test_seed": TEST_SEED,
            "us_test_frames": n_us,
            "nir_test_frames": n_nir,
            "test_generation_s": round(gen_s, 1),
            "torch_threads": threads,
            "us_weights": us.segmenter.meta.get("path"),
            "nir_weights": nir.segmenter.meta.get("path"),
            "us_backend": us.segmenter.backend,
            "nir_backend": nir.segmenter.backend,
        }
    )
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in _ordered(results).items()}
