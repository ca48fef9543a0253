"""``ir-robot demo`` and ``ir-robot evaluate venipuncture`` write what they promise."""

import json

from ir_robot.cli import main

SUMMARY_KEYS = {
    "success_rate",
    "first_attempt_success_rate",
    "tip_error_mm_rms",
    "back_wall_punctures",
    "mean_duration_s",
    "peak_force_n_mean",
}


def test_cli_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "2", "--ground-truth-perception"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    res = json.loads(line)
    assert {"success", "tip_error_mm", "attempts", "duration_s", "peak_force_n"} <= set(res)
    assert res["success"] is True and res["attempts"] == 1 and res["tip_error_mm"] < 0.5
    for name in ("force.png", "confirm.png", "result.json"):
        assert (out / name).stat().st_size > 1000, name
    assert len(list((out / "frames").glob("frame_*.png"))) >= 10
    assert json.loads((out / "result.json").read_text())["events"]


def test_cli_evaluate(tmp_path, capsys):
    js = tmp_path / "summary.json"
    rc = main(
        [
            "evaluate",
            "venipuncture",
            "--controller",
            "classical",
            "--episodes",
            "1",
            "--seed",
            "3",
            "--ground-truth-perception",
            "--json",
            str(js),
            "--out",
            str(tmp_path / "ev"),
            "--no-progress",
        ]
    )
    assert rc == 0
    summary = json.loads(js.read_text())
    assert SUMMARY_KEYS <= set(summary) and summary["perception"] == "ground_truth"
    assert summary["episodes"] == 1
    assert "success_rate" in capsys.readouterr().out
    assert (tmp_path / "ev" / "episodes.csv").is_file()
