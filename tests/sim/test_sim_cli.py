"""`ir-robot sim needle` writes its pictures and a consistent scene.json."""

import json

import cv2
import numpy as np

from ir_robot.cli import main


def test_sim_needle_writes_files(tmp_path):
    out = tmp_path / "scene"
    assert main(["sim", "needle", "--seed", "3", "--out", str(out), "--frames", "3"]) == 0
    scene = json.loads((out / "scene.json").read_text())
    assert scene["seed"] == 3 and scene["insertion"]["reached_lumen"]
    kinds = {e["membrane"] for e in scene["insertion"]["events"]}
    assert {"skin", "vessel_wall"} <= kinds
    assert len(scene["frames"]) == 6  # 3 US + 3 NIR
    for fr in scene["frames"]:
        img = cv2.imread(str(out / fr["file"]), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(out / fr["file"].replace(".png", "_mask.png")), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == mask.shape and img.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1, 2, 3, 255}  # the label codes (255: don't care)
        assert len(fr["spacing_mm"]) == 2 and all(s > 0 for s in fr["spacing_mm"])
    assert (out / "force_vs_depth.png").stat().st_size > 5000
    data = np.loadtxt(out / "force_vs_depth.csv", delimiter=",", skiprows=1)
    assert data.shape[1] == 4 and data[:, 1].max() > 0.5
