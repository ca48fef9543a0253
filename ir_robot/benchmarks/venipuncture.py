"""Autonomous venipuncture in simulation: the issue-#4 figures.

Two seeded runs with phantom motion on and perception in the loop (the trained model of each
modality whose weights are installed under models/; the frames' labels for a modality without
weights, and the ``perception`` key says which): 200 random phantoms, and 100 phantoms whose veins are
1-2 mm wide (``small_veins.*``).
``--quick`` runs 10 + 5 episodes. Targets: first-attempt success >= 97 %, tip-to-lumen-centre
RMS <= 0.5 mm, no back-wall puncture, <= 60 s simulated per procedure, small veins >= 90 %.
"""

from __future__ import annotations

SEED = 1000
SMALL_SEED = 5000


def run(quick: bool = False, us_weights=None, nir_weights=None) -> dict:
    """The venipuncture area's flat results: 200 seeded phantoms and 100 with 1-2 mm veins (``quick``: 10 + 5)."""
    import cv2

    from ir_robot.control.config import load_venipuncture_config
    from ir_robot.evaluation.episode import evaluate

    cv2.setNumThreads(1)
    config = load_venipuncture_config()
    # the trained model of each modality whose weights are installed (or given), else labels
    perception = "auto"
    weights = {"us_weights": us_weights, "nir_weights": nir_weights}
    n_main, n_small = (10, 5) if quick else (200, 100)
    keys = (
        "success_rate",
        "first_attempt_success_rate",
        "tip_error_mm_rms",
        "tip_error_mm_max",
        "back_wall_punctures",
        "artery_punctures",
        "safety_trips",
        "mean_duration_s",
        "max_duration_s",
        "mean_attempts",
        "peak_force_n_mean",
        "peak_force_n_max",
        "wall_s_per_episode",
    )
    out: dict = {"motion": True}
    main, _ = evaluate(
        n_main,
        SEED,
        config,
        perception=perception,
        motion=True,
        progress=False,
        out_dir="out/bench/venipuncture",
        **weights,
    )
    out["perception"] = main["perception"]
    out["episodes"] = main["episodes"]
    out.update({k: main[k] for k in keys})
    small, _ = evaluate(
        n_small,
        SMALL_SEED,
        config,
        perception=perception,
        motion=True,
        vein_diameter_mm=(1.0, 2.0),
        progress=False,
        out_dir="out/bench/venipuncture_small_veins",
        **weights,
    )
    out["small_veins.episodes"] = small["episodes"]
    out.update(
        {
            f"small_veins.{k}": small[k]
            for k in ("success_rate", "first_attempt_success_rate", "tip_error_mm_rms", "back_wall_punctures")
        }
    )
    return out
