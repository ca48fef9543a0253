"""A short seeded evaluation succeeds and writes its CSV, summary and plot; the config file is valid."""

import csv
import json

import pytest

from ir_robot.control.config import VenipunctureConfig, load_venipuncture_config
from ir_robot.core.errors import ConfigError
from ir_robot.evaluation.episode import evaluate

SUMMARY_KEYS = {
    "success_rate",
    "first_attempt_success_rate",
    "tip_error_mm_rms",
    "back_wall_punctures",
    "mean_duration_s",
    "peak_force_n_mean",
}


def test_short_seeded_evaluation_reaches_success(tmp_path):
    summary, results = evaluate(
        2, 2, VenipunctureConfig(), perception="ground_truth", motion=True, out_dir=tmp_path, progress=False
    )
    assert [r.seed for r in results] == [2, 3]
    assert summary["success_rate"] == 1.0, [r.reason for r in results]
    assert summary["first_attempt_success_rate"] == 1.0
    assert summary["tip_error_mm_rms"] < 0.5
    assert summary["back_wall_punctures"] == 0 and summary["artery_punctures"] == 0
    assert summary["max_duration_s"] <= 60.0
    assert SUMMARY_KEYS <= set(summary)
    rows = list(csv.DictReader(open(tmp_path / "episodes.csv")))
    assert len(rows) == 2 and rows[0]["success"] == "True"
    assert json.loads((tmp_path / "summary.json").read_text())["episodes"] == 2
    assert (tmp_path / "evaluation.png").stat().st_size > 10_000


def test_config_file_is_the_defaults_and_bad_values_are_refused(tmp_path):
    assert load_venipuncture_config() == VenipunctureConfig()
    bad = tmp_path / "bad.yaml"
    bad.write_text("control:\n  v_slow_mm_s: -1.0\n")
    with pytest.raises(ConfigError, match="control.v_slow_mm_s"):
        load_venipuncture_config(bad)
    bad.write_text("safety:\n  force_cieling_n: 3.0\n")
    with pytest.raises(ConfigError, match="unknown field"):
        load_venipuncture_config(bad)
