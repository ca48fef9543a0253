"""One simulated venipuncture scored against ground truth, and the seeded evaluation.

The controller sees only rig state and images (through injected perception); this module
owns the simulator and reads its ground truth *for scoring only*:

* ``success``: the controller reported success, the true tip was in a vein lumen at every
  tick of the hold, no back wall and no artery was punctured, no safety trip, and the
  procedure took at most ``max_duration_s`` of simulated time;
* ``tip_error_mm``: RMS over the hold of the distance from the true tip to the lumen centre
  line of the vessel it is in (cross-section at the tip's x, phantom frame);
* ``first_attempt_success``: success with one insertion attempt.

:func:`evaluate` runs seeded episodes (episode ``i`` uses seed ``seed + i``: the phantom, the
force noise and the images all derive from it), with a tqdm bar, and writes a per-episode
CSV, a summary JSON and a plot.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ir_robot.control.config import VenipunctureConfig
from ir_robot.control.limits import planning_limits
from ir_robot.control.runner import run_procedure
from ir_robot.control.safety import SafeRig
from ir_robot.control.venipuncture import Phase, VenipunctureController
from ir_robot.core.types import Observation, Tissue

MAX_DURATION_S = 60.0


def resolve_perception(kind: str, *, us_weights=None, nir_weights=None) -> dict[str, str]:
    """Per modality, which predictor ``kind`` means: ``"auto"`` takes the trained model where its
    weights exist and the frames' labels where they do not.
    """
    from ir_robot.perception.inference import default_weights_path

    if kind != "auto":
        return {"us": kind, "nir": kind}
    have = {
        "us": us_weights is not None or default_weights_path("us").is_file(),
        "nir": nir_weights is not None or default_weights_path("nir").is_file(),
    }
    return {m: "model" if have[m] else "ground_truth" for m in ("us", "nir")}


def perception_label(choice: dict[str, str]) -> str:
    """The perception named in summaries: one word when both modalities use the same, else ``us:..., nir:...``."""
    return choice["us"] if choice["us"] == choice["nir"] else f"us:{choice['us']}, nir:{choice['nir']}"


def make_perception(kind: str, config: VenipunctureConfig, *, us_weights=None, nir_weights=None, threads=1):
    """(ultrasound, NIR) predictors: ``"model"`` (trained weights), ``"classical"`` (OpenCV baselines),
    ``"ground_truth"`` (from the frames' labels: perfect perception) or ``"auto"`` (the model of each
    modality whose weights are installed, labels for the other).
    """
    choice = resolve_perception(kind, us_weights=us_weights, nir_weights=nir_weights)
    return (
        _predictor("us", choice["us"], config, us_weights, threads),
        _predictor("nir", choice["nir"], config, nir_weights, threads),
    )


def _predictor(modality: str, kind: str, config: VenipunctureConfig, weights, threads):
    from ir_robot.perception.inference import make_predictor

    # ultrasound post-processing keeps cross-sections of 1 mm veins (the default area floor drops them)
    return make_predictor(
        modality, kind, weights=weights, threads=threads, us_min_vessel_area_mm2=config.control.us_min_vessel_area_mm2
    )


def sample_episode_phantom(seed: int, *, motion: bool = True, vein_diameter_mm: tuple[float, float] | None = None):
    """The phantom of episode ``seed`` (its own stream, independent of the world's)."""
    from ir_robot.sim.phantom import sample_phantom

    rng = np.random.default_rng(np.random.SeedSequence([seed, 4242]))
    return sample_phantom(rng, motion=motion, vein_diameter_mm=vein_diameter_mm, name=f"episode-{seed}")


def make_world(*, motion: bool = True):
    """The needle world episodes run in (fixed phantoms per episode, so ``randomize`` is off)."""
    from ir_robot.sim.world import NeedleWorld, WorldConfig

    return NeedleWorld(WorldConfig(randomize=False, motion=motion))


@dataclass
class EpisodeResult:
    """One scored episode: the controller's report and the ground truth (one row of ``episodes.csv``)."""

    seed: int
    success: bool
    first_attempt_success: bool
    attempts: int
    tip_error_mm: float
    hold_in_lumen: bool
    confirmed: bool
    reason: str
    target_vessel: int
    target_kind: str
    target_diameter_mm: float
    target_depth_mm: float
    smallest_vein_mm: float
    back_wall_punctured: bool
    artery_punctured: bool
    duration_s: float
    peak_force_n: float
    safety_trip: str
    wall_s: float
    n_vessels: int = 0
    extra: dict = field(default_factory=dict, repr=False)

    def row(self) -> dict:
        """The result as a CSV row (without ``extra``; finite floats rounded to 4 decimals)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 4) if math.isfinite(v) else v
        return d


class Scorer:
    """Ground truth recorded by the on_tick hook (the controller never sees it): the tip-to-centre
    error and whether the tip is in a vein lumen at every HOLD tick.
    """

    def __init__(self, world):
        self.world = world
        self.hold_err: list[float] = []
        self.hold_lumen: list[bool] = []
        self.hold_vessels: set[int] = set()

    def tip_error(self) -> tuple[float, int]:
        """The true tip's distance (mm) to the centreline of its vessel (the one it is in, else the nearest) and
        that vessel's index.
        """
        w = self.world
        s = w.state()
        ph = w.phantom
        tip = ph.to_phantom(np.asarray(s.tip_mm), s.t_s)
        vessel = s.lumen_vessel
        if vessel < 0:
            vessel = int(np.argmin(ph.vessel_q(tip, s.t_s)))
        yc, zc = ph.centreline(np.array(tip[0]))
        return float(math.hypot(tip[1] - float(yc[vessel]), tip[2] - float(zc[vessel]))), vessel

    def __call__(self, state, obs, cmd, controller) -> None:
        """The ``on_tick`` hook: records the tip error and whether the tip is in a vein lumen on every HOLD tick."""
        if controller.phase == Phase.HOLD:
            err, vessel = self.tip_error()
            s = self.world.state()
            self.hold_err.append(err)
            self.hold_lumen.append(bool(s.in_lumen and s.tip_tissue == Tissue.VEIN_LUMEN))
            self.hold_vessels.add(vessel)

    @property
    def hold_in_lumen(self) -> bool:
        """The true tip was in a vein lumen at every HOLD tick (and there was a hold)."""
        return bool(self.hold_lumen) and all(self.hold_lumen)

    @property
    def rms_error_mm(self) -> float:
        """RMS tip-to-centre error over the hold (NaN without a hold)."""
        return float(np.sqrt(np.mean(np.square(self.hold_err)))) if self.hold_err else float("nan")


def artery_punctured(world) -> bool:
    """Ground truth: the needle crossed the wall of an artery."""
    ph = world.phantom
    return any(
        e.membrane == "vessel_wall" and e.vessel_index >= 0 and bool(ph.is_artery[e.vessel_index])
        for e in world.state().events
    )


def back_wall_punctured(world) -> bool:
    """Ground truth: the needle tore a vessel's back wall at any time since the reset (the world's
    ``back_wall_punctured`` flag is the tissue's current state and clears once the needle is out).
    """
    return bool(world.state().back_wall_punctured) or any(e.membrane == "back_wall" for e in world.state().events)


@dataclass(frozen=True)
class Verdict:
    """The ground-truth verdict on a procedure (see :func:`judge`)."""

    success: bool
    reason: str  # "ok" on success, else why (the controller's reason, or the ground truth's)
    hold_in_lumen: bool
    back_wall_punctured: bool
    artery_punctured: bool


def judge(
    world,
    scorer: Scorer | None,
    *,
    controller_success: bool,
    controller_reason: str,
    duration_s: float,
    safety_trip: str | None,
) -> Verdict:
    """The success rule of a simulated procedure, shared by :func:`run_episode` and the ROS ``sim`` node's
    referee: the controller reported success, the true tip was in a vein lumen at every tick of the hold, no
    back wall and no artery was punctured, no safety trip, and at most :data:`MAX_DURATION_S` of simulated time.
    """
    hold_ok = scorer is not None and scorer.hold_in_lumen
    artery = artery_punctured(world)
    back_wall = back_wall_punctured(world)
    success = bool(
        controller_success
        and hold_ok
        and not back_wall
        and not artery
        and not safety_trip
        and duration_s <= MAX_DURATION_S
    )
    if success:
        reason = "ok"
    elif not controller_success:
        reason = controller_reason
    else:
        why = (
            (["tip not in a vein lumen during the hold (ground truth)"] if not hold_ok else [])
            + (["back wall punctured"] if back_wall else [])
            + (["artery punctured"] if artery else [])
            + ([f"safety trip: {safety_trip}"] if safety_trip else [])
            + ([f"took {duration_s:.1f} s > {MAX_DURATION_S:.0f} s"] if duration_s > MAX_DURATION_S else [])
        )
        reason = "; ".join(why)
    return Verdict(success, reason, bool(hold_ok), back_wall, artery)


def run_episode(
    seed: int,
    config: VenipunctureConfig,
    us_perception,
    nir_perception,
    *,
    world=None,
    motion: bool = True,
    vein_diameter_mm: tuple[float, float] | None = None,
    phantom=None,
    max_time_s: float = 90.0,
    rig_wrapper: Callable | None = None,
    camera_wrapper: Callable | None = None,
    on_tick: Callable | None = None,
    controller_cls=VenipunctureController,
) -> EpisodeResult:
    """One procedure on a fresh phantom. ``world`` may be reused across episodes (faster)."""
    from ir_robot.devices.sim_rig import SimRig

    own = world is None
    if own:
        world = make_world(motion=motion)
    try:
        spec = (
            phantom
            if phantom is not None
            else sample_episode_phantom(seed, motion=motion, vein_diameter_mm=vein_diameter_mm)
        )
        if spec.motion.enabled != motion:
            import dataclasses

            spec = dataclasses.replace(spec, motion=dataclasses.replace(spec.motion, enabled=motion))
        world.reset(seed=seed, phantom=spec)
        backend = SimRig(world)
        if rig_wrapper is not None:
            backend = rig_wrapper(backend)
        safe = SafeRig(backend, config.safety)
        lo, hi = planning_limits(*backend.limits(), config.safety)
        controller = controller_cls(
            config, us_perception, nir_perception, lower=lo, upper=hi, velocity_limits=safe.velocity_limits()
        )

        def camera(wanted: frozenset) -> Observation:
            return Observation(
                us=world.ultrasound() if "us" in wanted else None, nir=world.nir() if "nir" in wanted else None
            )

        cam = camera_wrapper(camera, world) if camera_wrapper is not None else camera
        scorer = Scorer(world)

        def hook(state, obs, cmd, ctl):
            scorer(state, obs, cmd, ctl)
            if on_tick is not None:
                on_tick(state, obs, cmd, ctl)

        t0 = time.perf_counter()
        res = run_procedure(safe, cam, controller, config.control.dt_s, max_time_s, advance=safe.advance, on_tick=hook)
        wall = time.perf_counter() - t0
        out = controller.outcome
        ws = world.state()
        ph = world.phantom
        plan = out.plan
        tgt = plan.vessel_index if plan is not None else -1
        # which true vessel the plan aimed at: the one whose lumen holds the planned target point
        true_idx, true_kind, true_d = -1, "", float("nan")
        if plan is not None:
            q = ph.vessel_q(ph.to_phantom(np.asarray(plan.target_mm), ws.t_s), ws.t_s)
            true_idx = int(np.argmin(q))
            true_kind = ph.spec.vessels[true_idx].kind
            true_d = ph.spec.vessels[true_idx].diameter_mm
        duration = float(out.duration_s)
        verdict = judge(
            world,
            scorer,
            controller_success=out.success,
            controller_reason=out.reason,
            duration_s=duration,
            safety_trip=res.safety_trip,
        )
        success = verdict.success
        veins = [v.diameter_mm for v in ph.spec.vessels if v.kind == "vein"]
        depth = float(-plan.target_mm[2]) if plan is not None else float("nan")
        return EpisodeResult(
            seed=seed,
            success=success,
            first_attempt_success=success and out.attempts == 1,
            attempts=out.attempts,
            tip_error_mm=scorer.rms_error_mm,
            hold_in_lumen=verdict.hold_in_lumen,
            confirmed=out.confirmed,
            reason=verdict.reason,
            target_vessel=true_idx,
            target_kind=true_kind,
            target_diameter_mm=true_d,
            target_depth_mm=depth,
            smallest_vein_mm=float(min(veins)) if veins else float("nan"),
            back_wall_punctured=verdict.back_wall_punctured,
            artery_punctured=verdict.artery_punctured,
            duration_s=duration,
            peak_force_n=float(out.peak_force_n),
            safety_trip=res.safety_trip or "",
            wall_s=wall,
            n_vessels=ph.n_vessels,
            extra={
                "outcome": out,
                "trace": controller.trace,
                "controller": controller,
                "events": ws.events,
                "target_vessel_planned": tgt,
            },
        )
    finally:
        if own:
            world.close()


# ----------------------------------------------------------------------------- evaluation


def reason_key(reason: str) -> str:
    """A failure reason without its numbers, so equal causes count together."""
    key = re.sub(r"[-+]?\d+(\.\d+)?", "#", reason.split(": ")[0] if reason.startswith("safety trip") else reason)
    return key[:90]


def summarize(results: list[EpisodeResult]) -> dict:
    """The summary of an evaluation: success rates, tip error, punctures, trips, durations, forces and failure
    reasons counted by cause.
    """
    n = len(results)
    if n == 0:
        return {"episodes": 0}
    succ = [r for r in results if r.success]
    held = [r.tip_error_mm for r in results if math.isfinite(r.tip_error_mm)]
    reasons = Counter(reason_key(r.reason) for r in results if not r.success)
    return {
        "episodes": n,
        "success_rate": len(succ) / n,
        "first_attempt_success_rate": sum(r.first_attempt_success for r in results) / n,
        "tip_error_mm_rms": float(np.sqrt(np.mean(np.square(held)))) if held else float("nan"),
        "tip_error_mm_max": float(np.max(held)) if held else float("nan"),
        "episodes_with_hold": len(held),
        "back_wall_punctures": int(sum(r.back_wall_punctured for r in results)),
        "artery_punctures": int(sum(r.artery_punctured for r in results)),
        "safety_trips": int(sum(bool(r.safety_trip) for r in results)),
        "mean_duration_s": float(np.mean([r.duration_s for r in results])),
        "max_duration_s": float(np.max([r.duration_s for r in results])),
        "mean_attempts": float(np.mean([r.attempts for r in results])),
        "peak_force_n_mean": float(np.mean([r.peak_force_n for r in results])),
        "peak_force_n_max": float(np.max([r.peak_force_n for r in results])),
        "wall_s_per_episode": float(np.mean([r.wall_s for r in results])),
        "failure_reasons": dict(reasons.most_common()),
    }


def evaluate(
    episodes: int,
    seed: int,
    config: VenipunctureConfig,
    *,
    perception: str = "model",
    motion: bool = True,
    vein_diameter_mm: tuple[float, float] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    us_weights=None,
    nir_weights=None,
    threads: int = 1,
) -> tuple[dict, list[EpisodeResult]]:
    """Run ``episodes`` seeded procedures; write ``episodes.csv``, ``summary.json``, ``evaluation.png``."""
    import cv2

    cv2.setNumThreads(1)
    us, nir = make_perception(perception, config, us_weights=us_weights, nir_weights=nir_weights, threads=threads)
    results: list[EpisodeResult] = []
    world = make_world(motion=motion)
    try:
        seeds = range(seed, seed + episodes)
        bar = None  # the progress bar over the seeds (tqdm), if progress
        if progress:
            from tqdm import tqdm

            bar = tqdm(seeds, desc=f"venipuncture ({perception})", unit="ep", file=sys.stderr)
        for s in seeds if bar is None else bar:
            r = run_episode(s, config, us, nir, world=world, motion=motion, vein_diameter_mm=vein_diameter_mm)
            r.extra = {}
            results.append(r)
            if bar is not None:
                ok = sum(x.success for x in results)
                bar.set_postfix(success=f"{ok}/{len(results)}")
    finally:
        world.close()
    summary = summarize(results)
    label = perception_label(resolve_perception(perception, us_weights=us_weights, nir_weights=nir_weights))
    summary.update(
        {
            "controller": "classical",
            "perception": label,
            "motion": motion,
            "seed": seed,
            "vein_diameter_mm": list(vein_diameter_mm) if vein_diameter_mm else None,
        }
    )
    if out_dir is not None:
        write_outputs(Path(out_dir), summary, results)
    return summary, results


def write_outputs(out: Path, summary: dict, results: list[EpisodeResult]) -> None:
    """Writes ``episodes.csv``, ``summary.json`` and ``evaluation.png`` to ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.row() for r in results]
    with open(out / "episodes.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["seed"])
        wr.writeheader()
        wr.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=float))
    plot_evaluation(out / "evaluation.png", summary, results)


def plot_evaluation(path: Path, summary: dict, results: list[EpisodeResult]) -> None:
    """The evaluation figure: tip error against vein diameter, durations and failure reasons, written to ``path``."""
    from ir_robot.viz import new_figure

    fig, axes = new_figure(1, 3, figsize=(13, 3.8))
    ok = np.array([r.success for r in results])
    diam = np.array([r.target_diameter_mm for r in results])
    err = np.array([r.tip_error_mm for r in results])
    dur = np.array([r.duration_s for r in results])
    ax = axes[0]
    good = np.isfinite(diam)
    ax.scatter(diam[good & ok], err[good & ok], s=12, c="C2", label="success")
    ax.scatter(diam[good & ~ok], np.nan_to_num(err[good & ~ok], nan=0.0), s=18, c="C3", marker="x", label="failure")
    ax.axhline(0.5, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("target vein diameter (mm)")
    ax.set_ylabel("tip to lumen centre, RMS over hold (mm)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.hist(
        dur, bins=np.arange(0.0, max(MAX_DURATION_S, float(np.nanmax(dur)) if len(dur) else 0.0) + 2.0, 2.0), color="C0"
    )
    ax.axvline(MAX_DURATION_S, color="C3", ls="--", lw=0.8)
    ax.set_xlabel("procedure duration (simulated s)")
    ax.set_ylabel("episodes")
    ax = axes[2]
    reasons = summary.get("failure_reasons", {})
    labels = ["success"] + [k[:38] for k in reasons]
    counts = [int(ok.sum())] + list(reasons.values())
    ax.barh(range(len(labels)), counts, color=["C2"] + ["C3"] * len(reasons))
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("episodes")
    fig.suptitle(
        f"venipuncture: {summary.get('episodes')} episodes, perception {summary.get('perception')}, "
        f"success {summary.get('success_rate', 0):.1%}, first attempt "
        f"{summary.get('first_attempt_success_rate', 0):.1%}, tip RMS "
        f"{summary.get('tip_error_mm_rms', float('nan')):.3f} mm",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
