"""Synthetic perception datasets from the simulator, with held-out test splits.

A dataset is fully defined by ``(modality, split, n, seed)``: frame ``k`` is always the
same, whatever ``n`` (groups of frames draw from their own ``SeedSequence``). Splits:

* ``train`` / ``val``: phantoms from different seed streams, imaging and needle
  randomisation restricted to :data:`TRAIN_BANDS` (bands are cut out of the ranges);
* ``test``: phantoms from a third seed stream (whole phantoms never seen in training)
  and the full randomisation ranges, so part of the test set lies in the held-out bands
  (ultrasound: 8.5-9.5 MHz, 53-57 dB dynamic range, 27-33 deg needle pitch, 19 G needles;
  NIR: the bands listed in :data:`TRAIN_BANDS`).

Ultrasound scenes (per frame): probe over a vessel, longitudinal (yaw ~ 0) or transverse
(yaw ~ 90 deg); needle absent, in plane, slightly out of plane (dim, partial), steep
(faint: specular falloff) or crossing the image plane (out-of-plane dot, tip shown only
when the tip is in the beam slab); gauges 17-22 G; phantom motion and arterial pulsation
through a random time; veins compressed by the probe (phantom ``compression``). A needle
the simulator places in the beam slab but that does not show in the image (visibility,
the mean grey-level change it causes within 1 mm, below :data:`NEEDLE_VISIBILITY_MIN`,
measured against the same frame rendered without it) is labelled absent; one below
:data:`NEEDLE_VISIBILITY_CLEAR` is labelled "don't care" (``LABEL_IGNORE``). NIR
scenes: a top-down view over the phantom with the renderer's randomised skin tone, hair,
lighting, glare, noise and depth blur, sometimes a needle; veins are labelled by the
renderer's rule (apparent contrast >= ``NirParams.vein_label_min_contrast``), with faint
veins just below it and arteries as dark as those labelled "don't care" (255, ``LABEL_IGNORE``):
excluded from the loss and from Dice.

On disk (``ir-robot dataset us --n N --seed S --out DIR``)::

    DIR/dataset.json      manifest: modality, split, n, seed, bands, generator versions
    DIR/frames.npz        images (N, H, W) uint8, labels (N, H, W) uint8 (the training cache)
    DIR/frames.jsonl      one record per frame: spacing_mm, tip_px, vessel centres/depths/kinds, meta
    DIR/images/000000.png, DIR/labels/000000.png   (unless --no-png)
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ir_robot.core.errors import PerceptionError
from ir_robot.core.types import LABEL_IGNORE, LABEL_NEEDLE, ImageFrame, NeedlePose, NirView, ProbePose

if TYPE_CHECKING:
    from ir_robot.sim.phantom import Phantom

#: needle outer diameters (mm) by gauge
GAUGE_DIAMETER_MM = {17: 1.473, 18: 1.270, 19: 1.067, 20: 0.908, 21: 0.819, 22: 0.718}
SPLITS = {"train": 0, "val": 1, "test": 2}
MODALITIES = ("us", "nir")
DATASET_VERSION = {"us": 8, "nir": 6}  # bumped when a modality's frames change (us 7: an experiment's cache)

#: randomisation bands used for train/val; the test split uses the full ranges
TRAIN_BANDS: dict[str, dict[str, tuple[tuple[float, float], ...]]] = {
    "us": {
        "frequency_mhz": ((5.0, 8.5), (9.5, 12.0)),
        "dynamic_range_db": ((45.0, 53.0), (57.0, 65.0)),
        "needle_pitch_deg": ((15.0, 27.0), (33.0, 60.0)),
    },
    "nir": {},  # filled from the NIR renderer's ranges in _nir_bands()
}
TRAIN_GAUGES = (17, 18, 20, 21, 22)
#: train/val only: the fraction of transverse frames whose needle is drawn next to, inside or
#: through the target vessel (:func:`_needle_near_target`) - the views of the insertion and
#: confirmation, which the generic scenarios rarely produce. The test split keeps the generic
#: mix (0: no extra random draw, so its frames are unchanged).
TRAIN_NEAR_TARGET = 0.2
#: a labelled needle changing its surroundings by less than this (mean grey levels) is invisible
NEEDLE_VISIBILITY_MIN = 5.0
#: a needle between NEEDLE_VISIBILITY_MIN and this is barely visible: its pixels are labelled
#: "don't care" (LABEL_IGNORE), so neither finding nor missing it counts (loss, Dice, detection)
NEEDLE_VISIBILITY_CLEAR = 10.0
#: NIR veins are labelled where their apparent contrast reaches this (the renderer's
#: ``vein_label_min_contrast``; None keeps the renderer's default rule). 0.12 was tried and gave
#: the same validation Dice as the default 0.08, so the renderer's rule is kept.
NIR_VEIN_LABEL_MIN_CONTRAST: float | None = None
ALL_GAUGES = (17, 18, 19, 20, 21, 22)
FULL_NEEDLE_PITCH_DEG = ((15.0, 60.0),)


def _uniform_union(rng: np.random.Generator, bands: ArrayLike) -> float:
    """Uniform draw from a union of intervals ((lo, hi), ...)."""
    bands = np.asarray(bands, float).reshape(-1, 2)
    lengths = bands[:, 1] - bands[:, 0]
    k = int(rng.choice(len(bands), p=lengths / lengths.sum())) if len(bands) > 1 else 0
    return float(rng.uniform(bands[k, 0], bands[k, 1]))


def _nir_bands() -> dict[str, tuple[tuple[float, float], ...]]:
    """Hold out the middle fifth of a few NIR randomisation ranges (when the renderer has them)."""
    from ir_robot.sim import nir

    ranges = getattr(nir, "NIR_RANDOM_RANGES", {})
    out: dict[str, tuple[tuple[float, float], ...]] = {}
    for name in ("skin_tone", "hair_density", "noise_sigma", "glare", "lighting_gradient"):
        if name in ranges:
            lo, hi = (float(v) for v in ranges[name])
            a, b = lo + 0.4 * (hi - lo), lo + 0.6 * (hi - lo)
            out[name] = ((lo, a), (b, hi))
    return out


@dataclass(frozen=True)
class SceneRanges:
    """What a split may draw: imaging-parameter bands, needle pitch bands and gauges."""

    param_bands: dict[str, tuple[tuple[float, float], ...]]
    needle_pitch_deg: tuple[tuple[float, float], ...]
    gauges: tuple[int, ...]
    near_target: float = 0.0  # see TRAIN_NEAR_TARGET


def split_ranges(modality: str, split: str) -> SceneRanges:
    """What frames of ``split`` may draw: the train bands (held-out middles cut out) or, for test, everything."""
    if split not in SPLITS:
        raise PerceptionError(f"unknown split {split!r}; use one of {sorted(SPLITS)}")
    if split == "test":
        return SceneRanges({}, FULL_NEEDLE_PITCH_DEG, ALL_GAUGES)
    bands = dict(TRAIN_BANDS[modality]) if modality == "us" else _nir_bands()
    pitch = bands.pop("needle_pitch_deg", FULL_NEEDLE_PITCH_DEG)
    return SceneRanges(bands, pitch, TRAIN_GAUGES, TRAIN_NEAR_TARGET if modality == "us" else 0.0)


# --------------------------------------------------------------------------- scene sampling


def _sample_phantom(rng: np.random.Generator) -> Phantom:
    from ir_robot.sim.phantom import Phantom, sample_phantom

    return Phantom(sample_phantom(rng, motion=bool(rng.random() < 0.6)))


def _needle_us(
    rng: np.random.Generator,
    probe: ProbePose,
    phantom: Phantom,
    t_s: float,
    width_mm: float,
    depth_mm: float,
    elevation_mm: float,
    ranges: SceneRanges,
    target_depth_mm: float | None,
    target_lateral_mm: float | None = None,
    target_radius_mm: float = 0.0,
) -> tuple[NeedlePose | None, str]:
    """A needle pose for an ultrasound frame, and the scenario name.

    ``target_lateral_mm`` (transverse views): the target vessel's lateral image position; half
    of the crossing needles then end inside its lumen, the venipuncture confirmation view.
    """
    u = np.array([math.cos(probe.yaw_rad), math.sin(probe.yaw_rad), 0.0])
    nrm = np.array([-math.sin(probe.yaw_rad), math.cos(probe.yaw_rad), 0.0])
    origin = np.array([probe.x_mm, probe.y_mm, 0.0])
    if (
        ranges.near_target > 0
        and target_lateral_mm is not None
        and target_depth_mm is not None
        and rng.random() < ranges.near_target
    ):
        return _needle_near_target(
            rng, u, nrm, origin, depth_mm, elevation_mm, ranges, target_depth_mm, target_lateral_mm, target_radius_mm
        )
    roll = rng.random()
    if roll < 0.22:
        return None, "none"
    gauge = int(rng.choice(ranges.gauges))
    dia = GAUGE_DIAMETER_MM[gauge]
    half_slab = elevation_mm / 2
    if roll < 0.56:
        scenario = "in_plane"
    elif roll < 0.68:
        scenario = "off_plane"
    elif roll < 0.76:
        scenario = "steep"
    else:
        scenario = "crossing"
    if scenario == "steep":
        steep = tuple((max(lo, 40.0), hi) for lo, hi in ranges.needle_pitch_deg if hi > 40.0)
        pitch = math.radians(_uniform_union(rng, steep))
    else:
        pitch = math.radians(
            _uniform_union(rng, tuple((lo, min(hi, 45.0)) for lo, hi in ranges.needle_pitch_deg if lo < 45.0))
        )
    d_max = min(depth_mm - 2.0, 22.0)
    if target_depth_mm is not None and rng.random() < 0.5:
        tip_depth = float(np.clip(target_depth_mm + rng.uniform(-2.5, 2.5), 1.5, d_max))
    else:
        tip_depth = float(rng.uniform(1.5, d_max))
    if scenario == "crossing":
        psi = math.radians(rng.uniform(-15.0, 15.0))
        horiz = math.cos(psi) * nrm + math.sin(psi) * u
        direction = math.cos(pitch) * horiz + np.array([0.0, 0.0, -math.sin(pitch)])
        lateral = rng.uniform(-0.4, 0.4) * width_mm
        ahead = float(rng.uniform(-0.6 * half_slab, 3.0))  # tip this far past the image plane
        if target_lateral_mm is not None and target_depth_mm is not None and rng.random() < 0.5:
            # the tip in the target's lumen, in the beam slab: the confirmation view
            lateral = target_lateral_mm + rng.uniform(-0.5, 0.5) * target_radius_mm
            tip_depth = float(np.clip(target_depth_mm + rng.uniform(-0.5, 0.5) * target_radius_mm, 1.5, d_max))
            ahead = float(rng.uniform(-0.6, 0.6) * half_slab)
            scenario = "in_lumen"
        tip = origin + lateral * u + ahead * nrm + np.array([0.0, 0.0, -tip_depth])
    else:
        sign = 1.0 if rng.random() < 0.75 else -1.0
        if scenario == "off_plane":
            psi = math.radians(rng.uniform(1.5, 6.0)) * (1 if rng.random() < 0.5 else -1)
            e0 = float(rng.uniform(-1.0, 1.0) * (half_slab + dia / 2))
        else:
            psi = math.radians(rng.normal(0.0, 0.7))
            e0 = float(rng.normal(0.0, 0.12))
        horiz = sign * (math.cos(psi) * u + math.sin(psi) * nrm)
        direction = math.cos(pitch) * horiz + np.array([0.0, 0.0, -math.sin(pitch)])
        lateral = rng.uniform(-0.42, 0.42) * width_mm
        if rng.random() < 0.1:  # tip beyond the image, shaft crossing it
            lateral = sign * rng.uniform(0.55, 0.8) * width_mm
        tip = origin + lateral * u + e0 * nrm + np.array([0.0, 0.0, -tip_depth])
    pose = NeedlePose(
        (float(tip[0]), float(tip[1]), float(tip[2])),
        (float(direction[0]), float(direction[1]), float(direction[2])),
        dia,
        40.0,
    )
    return pose, f"{scenario}/{gauge}G/{math.degrees(pitch):.1f}deg"


def _needle_near_target(
    rng: np.random.Generator,
    u: NDArray[np.float64],
    nrm: NDArray[np.float64],
    origin: NDArray[np.float64],
    depth_mm: float,
    elevation_mm: float,
    ranges: SceneRanges,
    target_depth_mm: float,
    target_lateral_mm: float,
    target_radius_mm: float,
) -> tuple[NeedlePose, str]:
    """A needle crossing a transverse image at the target vessel, as during a venipuncture.

    The needle travels along the vessel (across the image plane) and down at the insertion
    pitch; its cross-section is drawn where the insertion sees it: the tip just above the
    vessel's top wall (``approach``), the tip inside the lumen, anywhere across it including
    near the walls (``in_lumen``), or the tip past the plane with the shaft crossing it inside
    the lumen (``through``). Returns ``(pose, scenario name)``.
    """
    gauge = int(rng.choice(ranges.gauges))
    dia = GAUGE_DIAMETER_MM[gauge]
    half_slab = elevation_mm / 2
    pitch = math.radians(
        _uniform_union(rng, tuple((lo, min(hi, 45.0)) for lo, hi in ranges.needle_pitch_deg if lo < 45.0))
    )
    psi = math.radians(rng.uniform(-15.0, 15.0))
    horiz = math.cos(psi) * nrm + math.sin(psi) * u
    direction = math.cos(pitch) * horiz + np.array([0.0, 0.0, -math.sin(pitch)])
    r = max(float(target_radius_mm), 0.3)
    d_max = depth_mm - 1.0
    mode = rng.random()
    if mode < 0.4:  # about to pierce the top wall
        name = "approach"
        lateral = target_lateral_mm + rng.uniform(-0.7, 0.7) * r
        depth = target_depth_mm - r - rng.uniform(0.0, 1.5)
        ahead = float(rng.uniform(-0.6, 0.6) * half_slab)
    elif mode < 0.75:
        name = "in_lumen"
        lateral = target_lateral_mm + rng.uniform(-0.75, 0.75) * r
        depth = target_depth_mm + rng.uniform(-0.75, 0.75) * r
        ahead = float(rng.uniform(-0.6, 0.6) * half_slab)
    else:  # the shaft crosses the plane inside the lumen, the tip up to 3 mm beyond it
        name = "through"
        lateral = target_lateral_mm + rng.uniform(-0.6, 0.6) * r
        depth = target_depth_mm + rng.uniform(-0.6, 0.6) * r
        ahead = float(rng.uniform(0.6 * half_slab, 3.0))
    crossing = origin + lateral * u + np.array([0.0, 0.0, -float(np.clip(depth, 1.0, d_max))])
    along = float(direction @ nrm)  # > 0: cos(pitch) cos(psi)
    tip = crossing + direction * (ahead / along)
    tip[2] = min(tip[2], -0.5)
    pose = NeedlePose(
        (float(tip[0]), float(tip[1]), float(tip[2])),
        (float(direction[0]), float(direction[1]), float(direction[2])),
        dia,
        40.0,
    )
    return pose, f"near_{name}/{gauge}G/{math.degrees(pitch):.1f}deg"


def _us_frame(rng: np.random.Generator, renderer: Any, phantom: Phantom, ranges: SceneRanges) -> ImageFrame:
    p = renderer.params
    t_s = float(rng.uniform(0.0, 20.0))
    off = phantom.offset_mm(t_s)
    half_l = phantom.spec.block.length_mm / 2
    x_ph = float(rng.uniform(-(half_l - p.width_mm / 2 - 3.0), half_l - p.width_mm / 2 - 3.0))
    i = int(rng.integers(phantom.n_vessels))
    yc, zc = phantom.centreline(x_ph)
    yi, di = float(yc[i]), float(-zc[i])
    r_i = float(phantom.radius_mm(t_s)[i])
    view = "longitudinal" if rng.random() < 0.55 else "transverse"
    if view == "longitudinal":
        yaw = math.radians(rng.normal(0.0, 1.5))
        y_ph = yi + rng.uniform(-0.6, 0.6) * r_i if rng.random() < 0.85 else float(rng.uniform(-18.0, 18.0))
    else:
        yaw = math.pi / 2 + math.radians(rng.uniform(-10.0, 10.0))
        y_ph = yi + float(rng.uniform(-8.0, 8.0))
    # the probe follows the phantom with a small tracking error
    probe = ProbePose(float(x_ph + off[0] + rng.normal(0.0, 0.3)), float(y_ph + off[1] + rng.normal(0.0, 0.1)), yaw)
    lateral_i = None
    if view == "transverse":  # where the target vessel crosses the image plane, along the image's lateral axis
        lateral_i = (yi + off[1] - probe.y_mm) * math.sin(yaw)
    needle, scenario = _needle_us(
        rng, probe, phantom, t_s, p.width_mm, p.depth_mm, p.elevation_mm, ranges, di, lateral_i, r_i
    )
    replay = np.random.Generator(type(rng.bit_generator)())
    replay.bit_generator.state = rng.bit_generator.state
    frame = renderer.render(phantom, probe, needle, t_s, rng)
    frame.meta.update(
        {
            "view": view,
            "scenario": scenario,
            "needle": None
            if needle is None
            else {"tip_mm": needle.tip_mm, "direction": needle.direction, "diameter_mm": needle.diameter_mm},
        }
    )
    if needle is not None and frame.labels is not None and (frame.labels == LABEL_NEEDLE).any():
        # the same frame without the needle (same speckle draws) tells how visible the needle is
        plain = renderer.render(phantom, probe, None, t_s, replay)
        frame = _label_visible_needle(frame, plain)
    return frame


def _label_visible_needle(frame: ImageFrame, plain: ImageFrame) -> ImageFrame:
    """Drop the needle label of a frame whose needle is not visible.

    Visibility = mean absolute grey-level change the needle causes (echo, reverberation,
    shadow) within 1 mm of its labelled pixels. Below :data:`NEEDLE_VISIBILITY_MIN` the
    needle is physically in the beam slab but not in the image (e.g. at the slab edge and
    steep), so nobody can detect it: it is labelled absent and ``tip_px`` is cleared.
    """
    import cv2

    if frame.labels is None or plain.labels is None:
        raise PerceptionError("needle visibility needs the labels of both renderings (simulated frames)")
    needle = (frame.labels == LABEL_NEEDLE).astype(np.uint8)
    r = max(1, int(round(1.0 / min(frame.spacing_mm))))
    region = cv2.dilate(needle, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    diff = np.abs(frame.image.astype(np.int16) - plain.image.astype(np.int16))
    score = float(diff[region].mean())
    meta = dict(frame.meta)
    meta["needle_visibility"] = round(score, 2)
    if score >= NEEDLE_VISIBILITY_CLEAR:
        return dataclasses.replace(frame, meta=meta)
    labels = frame.labels.copy()
    if score >= NEEDLE_VISIBILITY_MIN:
        labels[needle.astype(bool)] = LABEL_IGNORE
        meta.update(
            {
                "needle_ambiguous": f"barely visible (visibility {score:.1f} of {NEEDLE_VISIBILITY_MIN}-"
                f"{NEEDLE_VISIBILITY_CLEAR} grey levels): labelled don't care"
            }
        )
        return dataclasses.replace(frame, labels=labels, tip_px=None, meta=meta)
    labels[needle.astype(bool)] = plain.labels[needle.astype(bool)]
    meta.update(
        {
            "needle_visible": False,
            "needle_hidden": f"invisible (visibility {score:.1f} < {NEEDLE_VISIBILITY_MIN} grey levels)",
        }
    )
    return dataclasses.replace(frame, labels=labels, tip_px=None, meta=meta)


def _nir_frame(rng: np.random.Generator, renderer: Any, phantom: Phantom, ranges: SceneRanges) -> ImageFrame:
    t_s = float(rng.uniform(0.0, 20.0))
    off = phantom.offset_mm(t_s)
    fov = float(getattr(renderer.params, "fov_mm", 50.0))
    half_l, half_w = phantom.spec.block.length_mm / 2, phantom.spec.block.width_mm / 2
    x_ph = float(rng.uniform(-max(half_l - fov / 2 - 2.0, 0.0), max(half_l - fov / 2 - 2.0, 0.0)))
    y_ph = float(rng.uniform(-max(half_w - fov / 2, 0.0) - 4.0, max(half_w - fov / 2, 0.0) + 4.0))
    view = NirView(x_ph + off[0], y_ph + off[1], fov)
    needle = None
    scenario = "none"
    if rng.random() < 0.25:
        gauge = int(rng.choice(ranges.gauges))
        pitch = math.radians(_uniform_union(rng, ranges.needle_pitch_deg))
        yaw = math.radians(rng.uniform(-20.0, 20.0)) + (math.pi if rng.random() < 0.25 else 0.0)
        tip = (
            view.x_mm + rng.uniform(-0.3, 0.3) * fov,
            view.y_mm + rng.uniform(-0.3, 0.3) * fov,
            -float(rng.uniform(1.0, 8.0)),
        )
        direction = (math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch))
        needle = NeedlePose((float(tip[0]), float(tip[1]), float(tip[2])), direction, GAUGE_DIAMETER_MM[gauge], 40.0)
        scenario = f"needle/{gauge}G/{math.degrees(pitch):.1f}deg"
    frame = renderer.render(phantom, view, t_s, rng, needle=needle)
    frame.meta.update({"scenario": scenario})
    return frame


def _make_renderer(modality: str, rng: np.random.Generator, ranges: SceneRanges, size_px: tuple[int, int]) -> Any:
    """A renderer with imaging parameters drawn for ``ranges`` (UltrasoundRenderer or NirRenderer)."""
    overrides = {name: _uniform_union(rng, bands) for name, bands in sorted(ranges.param_bands.items())}
    seed = int(rng.integers(2**31))
    if modality == "us":
        from ir_robot.sim.ultrasound import UltrasoundRenderer, sample_ultrasound_params

        fov_d, fov_w = float(rng.uniform(26.0, 34.0)), float(rng.uniform(26.0, 34.0))
        us_params = sample_ultrasound_params(rng, size_px=tuple(size_px), depth_mm=fov_d, width_mm=fov_w, **overrides)
        return UltrasoundRenderer(us_params, seed=seed)
    from ir_robot.sim.nir import NirRenderer, sample_nir_params

    if NIR_VEIN_LABEL_MIN_CONTRAST is not None:
        overrides["vein_label_min_contrast"] = NIR_VEIN_LABEL_MIN_CONTRAST
    nir_params = sample_nir_params(rng, size_px=tuple(size_px), fov_mm=float(rng.uniform(42.0, 58.0)), **overrides)
    return NirRenderer(nir_params, seed=seed)


def iter_frames(
    modality: str,
    n: int,
    seed: int,
    split: str = "train",
    *,
    size_px: tuple[int, int] = (256, 256),
    phantoms_per_group: int = 2,
    frames_per_phantom: int = 5,
) -> Iterator[ImageFrame]:
    """Yield ``n`` reproducible frames. Each group of ``phantoms_per_group * frames_per_phantom``
    frames shares one renderer (one set of imaging parameters) and has its own seed.

    Groups are small on purpose: every 10 frames bring new imaging parameters, so a
    2000-frame training set spans 200 imaging set-ups and the 300-frame NIR test set 30.
    With 40-frame groups (dataset versions us<=5, nir<=3) the NIR test set held 8 set-ups
    and its Dice swung with whichever ones it drew (0.64 on test vs 0.85 on val).
    """
    if modality not in MODALITIES:
        raise PerceptionError(f"unknown modality {modality!r}; use one of {MODALITIES}")
    if n < 0:
        raise PerceptionError(f"dataset size must be >= 0, got {n}")
    ranges = split_ranges(modality, split)
    per_group = phantoms_per_group * frames_per_phantom
    made = 0
    group = 0
    make_frame = _us_frame if modality == "us" else _nir_frame
    while made < n:
        ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(SPLITS[split], MODALITIES.index(modality), group))
        rng = np.random.default_rng(ss)
        renderer = _make_renderer(modality, rng, ranges, size_px)
        for k in range(per_group):
            if made >= n:
                break
            if k % frames_per_phantom == 0:
                phantom = _sample_phantom(rng)
            frame = make_frame(rng, renderer, phantom, ranges)
            frame.meta.update(
                {
                    "group": group,
                    "split": split,
                    "dataset_seed": int(seed),
                    "phantom_key": f"{split}/{seed}/{group}/{k // frames_per_phantom}",
                }
            )
            yield frame
            made += 1
        group += 1


def iter_us_clips(
    n: int,
    seed: int,
    split: str = "test",
    *,
    frames: int = 20,
    rate_hz: float = 10.0,
    size_px: tuple[int, int] = (256, 256),
    clips_per_renderer: int = 5,
) -> Iterator[list[ImageFrame]]:
    """Yield ``n`` reproducible ultrasound clips: ``frames`` transverse frames at ``rate_hz`` from one
    probe pose held still over a fresh phantom (its arteries pulsate; 60 % of the phantoms drift),
    no needle: the view in which a sonographer tells an artery from a vein by its pulse. Every
    ``clips_per_renderer`` clips bring new imaging parameters. Used by ``ir-robot bench perception``
    for :class:`~ir_robot.perception.temporal.VesselKindTracker`.
    """
    if n < 0 or frames < 1 or not rate_hz > 0:
        raise PerceptionError(f"clips need n >= 0, frames >= 1 and rate_hz > 0; got {n}, {frames}, {rate_hz}")
    ranges = split_ranges("us", split)
    made = group = 0
    while made < n:
        ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(SPLITS[split], len(MODALITIES), group))
        rng = np.random.default_rng(ss)
        renderer = _make_renderer("us", rng, ranges, size_px)
        p = renderer.params
        for _ in range(min(clips_per_renderer, n - made)):
            phantom = _sample_phantom(rng)
            t0 = float(rng.uniform(0.0, 20.0))
            off = phantom.offset_mm(t0)
            half_l = phantom.spec.block.length_mm / 2
            x_ph = float(rng.uniform(-(half_l - p.width_mm / 2 - 3.0), half_l - p.width_mm / 2 - 3.0))
            yc, _ = phantom.centreline(x_ph)
            y_ph = float(yc[int(rng.integers(phantom.n_vessels))]) + float(rng.uniform(-8.0, 8.0))
            probe = ProbePose(
                x_ph + float(off[0]), y_ph + float(off[1]), math.pi / 2 + math.radians(float(rng.uniform(-10.0, 10.0)))
            )
            clip = []
            for k in range(frames):
                f = renderer.render(phantom, probe, None, t0 + k / rate_hz, rng)
                f.meta.update(
                    {
                        "view": "transverse",
                        "scenario": "clip",
                        "group": group,
                        "split": split,
                        "dataset_seed": int(seed),
                        "clip": made,
                        "clip_frame": k,
                    }
                )
                clip.append(f)
            yield clip
            made += 1
        group += 1


# --------------------------------------------------------------------------- storage


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def frame_record(frame: ImageFrame) -> dict[str, Any]:
    """A frame's ground truth and meta as JSON-ready data (one line of ``frames.jsonl``), without pixels."""
    return _jsonable(
        {
            "modality": frame.modality,
            "spacing_mm": frame.spacing_mm,
            "stamp_s": frame.stamp_s,
            "tip_px": frame.tip_px,
            "vessel_centres_px": frame.vessel_centres_px,
            "vessel_depths_mm": frame.vessel_depths_mm,
            "vessel_kinds": frame.vessel_kinds,
            "meta": frame.meta,
        }
    )


class FrameSet:
    """Images, labels and per-frame records of a dataset (arrays in memory)."""

    def __init__(
        self,
        images: NDArray[np.uint8],
        labels: NDArray[np.uint8],
        records: list[dict[str, Any]],
        manifest: dict[str, Any] | None = None,
    ):
        if images.shape != labels.shape or images.ndim != 3 or len(records) != len(images):
            raise PerceptionError(
                f"dataset arrays do not agree: images {images.shape}, labels {labels.shape}, {len(records)} records"
            )
        self.images = images
        self.labels = labels
        self.records = records
        self.manifest = dict(manifest or {})

    def __len__(self) -> int:
        return len(self.images)

    @property
    def modality(self) -> str:
        """'us' or 'nir': the manifest's, else the first record's."""
        return self.manifest.get("modality") or (self.records[0]["modality"] if self.records else "us")

    def frame(self, i: int) -> ImageFrame:
        """Frame ``i`` rebuilt as an :class:`ImageFrame` (image, labels and its record's ground truth)."""
        r = self.records[i]
        tip = r.get("tip_px")
        return ImageFrame(
            r.get("modality", self.modality),
            self.images[i],
            tuple(r["spacing_mm"]),
            float(r.get("stamp_s", 0.0)),
            self.labels[i],
            tuple(tip) if tip is not None else None,
            tuple(tuple(c) for c in r.get("vessel_centres_px", ())),
            tuple(r.get("vessel_depths_mm", ())),
            tuple(r.get("vessel_kinds", ())),
            dict(r.get("meta", {})),
        )

    def frames(self) -> Iterator[ImageFrame]:
        """Every frame in order, as :meth:`frame` builds them."""
        for i in range(len(self)):
            yield self.frame(i)

    @classmethod
    def from_frames(cls, frames: Iterable[ImageFrame], manifest: dict[str, Any] | None = None) -> FrameSet:
        """A set from rendered frames of one size (labels required), refusing an empty or mixed-size list."""
        frames = list(frames)
        if not frames:
            raise PerceptionError("cannot build a dataset from zero frames")
        shapes = {f.image.shape for f in frames}
        if len(shapes) != 1:
            raise PerceptionError(f"frames have different sizes {sorted(shapes)}; a dataset needs one size")
        unlabelled = [i for i, f in enumerate(frames) if f.labels is None]
        if unlabelled:
            raise PerceptionError(
                f"frames {unlabelled[:5]} have no labels; a dataset needs labelled (simulated) frames"
            )
        images = np.stack([f.image for f in frames]).astype(np.uint8)
        labels = np.stack([f.labels for f in frames if f.labels is not None]).astype(np.uint8)
        return cls(images, labels, [frame_record(f) for f in frames], manifest)


def generate(
    modality: str, n: int, seed: int, split: str = "train", *, size_px=(256, 256), progress: bool = False
) -> FrameSet:
    """Generate a dataset in memory (see :func:`iter_frames`)."""
    t0 = time.perf_counter()
    it = iter_frames(modality, n, seed, split, size_px=size_px)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=n, desc=f"dataset {modality}/{split}", unit="frame", leave=False)
    fs = FrameSet.from_frames(it, manifest_for(modality, n, seed, split, size_px))
    fs.manifest["generation_s"] = round(time.perf_counter() - t0, 2)
    return fs


def manifest_for(modality: str, n: int, seed: int, split: str, size_px: Iterable[int]) -> dict[str, Any]:
    """The ``dataset.json`` of a dataset: what defines its frames (modality, split, n, seed, size, bands)."""
    ranges = split_ranges(modality, split)
    return {
        "format": "ir_robot.perception.dataset",
        "version": DATASET_VERSION[modality],
        "modality": modality,
        "split": split,
        "n": int(n),
        "seed": int(seed),
        "size_px": list(size_px),
        "param_bands": _jsonable(ranges.param_bands),
        "needle_pitch_deg": _jsonable(ranges.needle_pitch_deg),
        "gauges": list(ranges.gauges),
    }


def save_dataset(fs: FrameSet, out: str | Path, *, png: bool = True) -> Path:
    """Write a dataset folder (see the module docstring)."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "frames.npz", images=fs.images, labels=fs.labels)
    with open(out / "frames.jsonl", "w") as fh:
        for r in fs.records:
            fh.write(json.dumps(r) + "\n")
    if png:
        (out / "images").mkdir(exist_ok=True)
        (out / "labels").mkdir(exist_ok=True)
        for i in range(len(fs)):
            cv2.imwrite(str(out / "images" / f"{i:06d}.png"), fs.images[i])
            cv2.imwrite(str(out / "labels" / f"{i:06d}.png"), fs.labels[i])
    (out / "dataset.json").write_text(json.dumps(_jsonable(fs.manifest), indent=2))
    return out


def load_dataset(path: str | Path) -> FrameSet:
    """Read a dataset folder written by :func:`save_dataset`."""
    p = Path(path)
    for name in ("dataset.json", "frames.npz", "frames.jsonl"):
        if not (p / name).is_file():
            raise PerceptionError(
                f"dataset {p}: missing {name}; make one with `ir-robot dataset us|nir --n N --seed S --out {p}`"
            )
    try:
        manifest = json.loads((p / "dataset.json").read_text())
        with np.load(p / "frames.npz") as z:
            images, labels = z["images"], z["labels"]
        records = [json.loads(line) for line in (p / "frames.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError, KeyError) as exc:
        raise PerceptionError(f"dataset {p}: cannot be read ({exc}); regenerate it") from None
    return FrameSet(images, labels, records, manifest)


def cached_dataset(
    modality: str, n: int, seed: int, split: str, cache_dir: str | Path, *, size_px=(256, 256), progress: bool = False
) -> FrameSet:
    """Load ``cache_dir/<modality>_<split>_n<n>_s<seed>_<H>x<W>`` or generate and save it there."""
    d = Path(cache_dir) / f"{modality}_{split}_n{n}_s{seed}_{size_px[0]}x{size_px[1]}_v{DATASET_VERSION[modality]}"
    if (d / "dataset.json").is_file():
        try:
            fs = load_dataset(d)
            if fs.manifest.get("n") == n and len(fs) == n:
                return fs
        except PerceptionError:
            pass
    fs = generate(modality, n, seed, split, size_px=size_px, progress=progress)
    save_dataset(fs, d, png=False)
    return fs
