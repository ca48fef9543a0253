"""`ir-robot sim catheter` writes every picture, the force plot and CSV, a video and a consistent scene.json;
bad input exits 2 with one clear message."""

import csv
import json

import cv2
import numpy as np
import pytest

from ir_robot.cli import main
from ir_robot.cli.sim import ANATOMY_FIGSIZE_IN, CATHETER_TIP_STRIP, FIGURE_DPI, FORCE_FIGSIZE_IN, write_video

MAX_TIME_S = 8.0

EXPECTED_FILES = {
    "anatomy_3d.png",
    "fluoro.png",
    "angio.png",
    "dsa.png",
    "tipcam_strip.png",
    "force.png",
    "force.csv",
    "insertion.mp4",
    "scene.json",
}


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("catheter") / "scene"
    argv = ["sim", "catheter", "--anatomy", "type1", "--seed", "3", "--target", "renal_left"]
    assert main([*argv, "--max-time", str(MAX_TIME_S), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def scene(scene_dir):
    return json.loads((scene_dir / "scene.json").read_text())


def _size(inches):
    return round(inches[1] * FIGURE_DPI), round(inches[0] * FIGURE_DPI)


def test_writes_every_file_and_lists_them(scene_dir, scene):
    assert set(scene["files"]) == EXPECTED_FILES
    for name in EXPECTED_FILES:
        assert (scene_dir / name).stat().st_size > 0, name


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("fluoro.png", (512, 512)),
        ("angio.png", (512, 512)),
        ("dsa.png", (512, 512)),
        ("tipcam_strip.png", (256, 256 * len(CATHETER_TIP_STRIP), 3)),
        ("anatomy_3d.png", (*_size(ANATOMY_FIGSIZE_IN), 4)),  # matplotlib writes RGBA
        ("force.png", (*_size(FORCE_FIGSIZE_IN), 4)),
    ],
)
def test_pictures_have_their_size_and_content(scene_dir, name, shape):
    img = cv2.imread(str(scene_dir / name), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.shape == shape
    assert img.std() > 5.0  # a picture, not a blank canvas


def test_angiogram_and_dsa_show_the_contrast(scene_dir):
    fluoro, angio, dsa = (
        cv2.imread(str(scene_dir / n), cv2.IMREAD_GRAYSCALE) for n in ("fluoro.png", "angio.png", "dsa.png")
    )
    vessels = (fluoro.astype(int) - angio.astype(int)) > 20  # where the contrast darkens the image
    assert 0.01 < vessels.mean() < 0.6
    # DSA: contrast dark on a bright, flat background
    assert np.median(dsa[vessels]) + 40 < np.median(dsa[~vessels])


def test_scene_json_describes_the_run(scene_dir, scene):
    assert scene["seed"] == 3 and scene["target"] == "renal_left" and scene["access"] == "common_femoral_right"
    anatomy = scene["anatomy"]
    assert anatomy["requested"] == "type1" and anatomy["arch_type"] == "I" and anatomy["bovine"] is False
    names = [b["name"] for b in anatomy["branches"]]
    assert {"left_common_carotid", "renal_left", "aortic_arch"} <= set(names)
    assert all(b["length_mm"] > 0 for b in anatomy["branches"])
    assert scene["instrument"]["name"] == "guidewire_035_angled"
    ins = scene["insertion"]
    assert set(ins) >= {"reached", "time_s", "reason", "retries", "route_length_mm"}
    assert 0 < ins["time_s"] <= MAX_TIME_S + 1e-6 and ins["reached"] == (ins["reason"] == "reached")
    final = scene["final"]
    assert final["inserted_mm"] > 50.0 and len(final["tip_mm"]) == 3 and final["tip_branch"] in names
    col, row = final["tip_px_in_fluoro"]
    assert 0 <= col < 512 and 0 <= row < 512  # the table was panned to keep the tip in the picture
    assert {"max_axial_n", "max_tip_n", "max_wall_n", "limit_n"} <= set(scene["forces"])
    assert isinstance(scene["events"], list)
    assert [t["label"] for t in scene["tip_camera"]] == ["blood", "tissue", "valve"]
    assert scene["tip_camera"][0]["contact_ratio"] == 0 and scene["tip_camera"][2]["contact_ratio"] > 0


def test_force_csv_matches_the_run(scene_dir, scene):
    with (scene_dir / "force.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == scene["insertion"]["steps"] > 0
    t = np.array([float(r["t_s"]) for r in rows])
    assert np.all(np.diff(t) > 0) and t[-1] == pytest.approx(scene["insertion"]["time_s"], abs=1e-3)
    wall = np.array([float(r["max_wall_force_n"]) for r in rows])
    assert wall.max() == pytest.approx(scene["forces"]["max_wall_n"], abs=1e-3)
    assert float(rows[-1]["insert_mm"]) == pytest.approx(scene["final"]["inserted_mm"], abs=1e-3)
    assert rows[-1]["tip_branch"] == scene["final"]["tip_branch"]


def test_video_has_a_frame_per_simulated_second(scene_dir, scene):
    video = scene["video"]
    assert video["file"] == "insertion.mp4" and video["format"] == "mp4"
    cap = cv2.VideoCapture(str(scene_dir / "insertion.mp4"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    # t = 0 and every simulated second after it (the last frame is where the run ended)
    assert len(frames) == video["frames"] == int(scene["insertion"]["time_s"] + 1e-6) + 1
    assert frames[0].shape == (256, 256, 3)
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1.0  # the view changed


def test_unknown_target_exits_2_listing_the_branches(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["sim", "catheter", "--anatomy", "type2", "--target", "left_kidney", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "left_kidney" in err and "left_common_carotid" in err and "renal_left" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


def test_bad_anatomy_file_exits_2_naming_file_and_field(tmp_path, capsys):
    bad = tmp_path / "tree.yaml"
    bad.write_text("branches:\n  - name: aorta\n    points_mm: [[0, 0, 0], [0, 0, -100]]\n    radii_mm: [-3, -3]\n")
    assert main(["sim", "catheter", "--anatomy", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "radii_mm" in err and "Traceback" not in err


def test_video_falls_back_to_gif_without_the_codec(tmp_path, monkeypatch):
    from PIL import Image

    class NoCodec:
        fourcc = staticmethod(cv2.VideoWriter.fourcc)

        def __init__(self, *args, **kwargs):
            pass

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoWriter", NoCodec)
    frames = [np.full((64, 64), 40 * k, np.uint8) for k in range(4)]
    info = write_video(frames, tmp_path / "v.mp4", fps=4.0)
    assert info["format"] == "gif" and info["file"] == "v.gif" and "mp4v" in info["note"]
    assert not (tmp_path / "v.mp4").exists()
    with Image.open(tmp_path / "v.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (64, 64)
