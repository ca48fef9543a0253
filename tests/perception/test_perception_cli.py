"""The CLI on generated frames: dataset, segment (mask, overlay, JSON, other sizes)."""

from __future__ import annotations

import json

import cv2
import numpy as np

from ir_robot.cli import main


def test_dataset_and_segment_commands(tmp_path, capsys, tiny_weights):
    out = tmp_path / "ds"
    assert main(["dataset", "us", "--n", "3", "--seed", "4", "--out", str(out), "--quiet"]) == 0
    assert "wrote 3 us frames" in capsys.readouterr().out
    img_path = out / "images" / "000001.png"
    assert img_path.is_file() and (out / "labels" / "000001.png").is_file() and (out / "frames.jsonl").is_file()

    mask_path, overlay, js = tmp_path / "m.png", tmp_path / "o.png", tmp_path / "r.json"
    code = main(
        [
            "segment",
            "--modality",
            "us",
            "--input",
            str(img_path),
            "--output",
            str(mask_path),
            "--overlay",
            str(overlay),
            "--json",
            str(js),
            "--weights",
            str(tiny_weights["us"]),
            "--threads",
            "1",
        ]
    )
    assert code == 0
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (256, 256) and mask.dtype == np.uint8 and mask.max() <= 3
    assert cv2.imread(str(overlay)).shape == (256, 256, 3)
    data = json.loads(js.read_text())
    assert data["modality"] == "us" and "vessels" in data and data["shape"] == [256, 256]


def test_segment_other_sizes_and_classical(tmp_path, tiny_weights):
    img = np.random.default_rng(0).integers(0, 255, (180, 240), dtype=np.uint8)
    src = tmp_path / "odd.png"
    cv2.imwrite(str(src), img)
    for extra in (["--weights", str(tiny_weights["nir"])], ["--classical"]):
        dst = tmp_path / f"mask{len(extra)}.png"
        assert main(["segment", "--modality", "nir", "--input", str(src), "--output", str(dst), *extra]) == 0
        assert cv2.imread(str(dst), cv2.IMREAD_UNCHANGED).shape == (180, 240)
