"""Bad input gets one clear PerceptionError naming the problem, never a garbage mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ir_robot.core.errors import PerceptionError
from ir_robot.perception.inference import NirPerception, UltrasoundPerception, load_weights, save_weights
from ir_robot.perception.models import UNet
from ir_robot.perception.transforms import read_image, validate_image


def test_accepts_grey_in_common_layouts():
    g = np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8)
    assert validate_image(g).shape == (64, 80)
    assert validate_image(g[:, :, None]).shape == (64, 80)
    assert np.array_equal(validate_image(np.dstack([g, g, g])), g)  # grey stored as BGR


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((64, 64), np.float32), "dtype float32"),
        (np.zeros((64, 64), np.uint16), "dtype uint16"),
        (np.zeros((64, 64), bool), "dtype bool"),
        (
            np.dstack([np.zeros((64, 64), np.uint8), np.full((64, 64), 9, np.uint8), np.zeros((64, 64), np.uint8)]),
            "colour channels that differ",
        ),
        (np.zeros((64, 64, 2), np.uint8), "not an image"),
        (np.zeros((10, 64), np.uint8), "outside the supported"),
        (np.zeros((40, 400), np.uint8), "aspect ratio"),
        (np.zeros(64, np.uint8), "not an image"),
        ([[1, 2], [3, 4]], "numpy array"),
        (None, "None"),
    ],
)
def test_bad_arrays_are_refused(bad, match):
    with pytest.raises(PerceptionError, match=match):
        validate_image(bad)


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(PerceptionError, match="not found"):
        read_image(tmp_path / "missing.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(PerceptionError, match="empty"):
        read_image(empty)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(PerceptionError, match="not a readable image"):
        read_image(corrupt)
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), np.full((64, 64), 4000, np.uint16))
    with pytest.raises(PerceptionError, match="16-bit"):
        read_image(deep)
    colour = tmp_path / "colour.png"
    cv2.imwrite(str(colour), np.dstack([np.zeros((64, 64), np.uint8)] * 2 + [np.full((64, 64), 200, np.uint8)]))
    with pytest.raises(PerceptionError, match="colour channels"):
        read_image(colour)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((64, 64), 7, np.uint8))
    assert read_image(good).shape == (64, 64)


def test_weights_problems_are_named(tmp_path, tiny_weights):
    with pytest.raises(PerceptionError, match="not found"):
        UltrasoundPerception.from_weights(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a torch file")
    with pytest.raises(PerceptionError, match="corrupt"):
        UltrasoundPerception.from_weights(corrupt)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_weights["us"].read_bytes()[:500])
    with pytest.raises(PerceptionError, match="cannot be read"):
        UltrasoundPerception.from_weights(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save(UNet(1, 4, 4, 3).state_dict(), foreign)  # a bare state dict, not our format
    with pytest.raises(PerceptionError, match="not an ir_robot segmenter"):
        UltrasoundPerception.from_weights(foreign)
    with pytest.raises(PerceptionError, match="holds a 'nir' model"):
        UltrasoundPerception.from_weights(tiny_weights["nir"])
    with pytest.raises(PerceptionError, match="holds a 'us' model"):
        NirPerception.from_weights(tiny_weights["us"])
    # right format and modality, but tensors of another architecture
    lying = tmp_path / "lying.pt"
    save_weights(
        lying,
        UNet(1, 4, 6, 3),
        modality="us",
        arch={"name": "unet", "in_channels": 1, "num_classes": 4, "base_channels": 4, "depth": 3},
        input_size=64,
        field_of_view_mm=(30, 30),
    )
    with pytest.raises(PerceptionError, match="do not fit"):
        load_weights(lying)


def test_predictor_refuses_bad_images_and_spacing(tiny_weights):
    us = UltrasoundPerception.from_weights(tiny_weights["us"])
    with pytest.raises(PerceptionError, match="dtype"):
        us.predict(np.zeros((64, 64), np.float64))
    with pytest.raises(PerceptionError, match="spacing"):
        us.predict(np.zeros((64, 64), np.uint8), spacing_mm=(0.1, -1.0))
    from ir_robot.core.types import ImageFrame

    nir_frame = ImageFrame("nir", np.zeros((64, 64), np.uint8), (0.2, 0.2))
    with pytest.raises(PerceptionError, match="modality 'nir'"):
        us.predict(nir_frame)


def test_cli_reports_errors_without_traceback(tmp_path, capsys, tiny_weights):
    from ir_robot.cli import main

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    code = main(
        [
            "segment",
            "--modality",
            "us",
            "--input",
            str(bad),
            "--output",
            str(tmp_path / "m.png"),
            "--weights",
            str(tiny_weights["us"]),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "not a readable image" in err and "Traceback" not in err
    assert not (tmp_path / "m.png").exists()
