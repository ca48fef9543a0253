"""A tiny training run on fake frames lowers the loss and writes a complete run folder."""

from __future__ import annotations

import json

import numpy as np
from perception_helpers import fake_us_frame

from ir_robot.perception.datasets import FrameSet
from ir_robot.perception.train import DataConfig, ModelConfig, TrainConfig, load_config, prepare_arrays, train


def _fake_set(n, seed):
    rng = np.random.default_rng(seed)
    return FrameSet.from_frames(
        [fake_us_frame(rng, size=64, needle=bool(i % 2)) for i in range(n)], {"modality": "us", "fake": True}
    )


def test_soft_targets_are_area_fractions():
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, :2, :1] = 3  # 2 of the 4 pixels of the top-left 2x2 block
    x, y = prepare_arrays(np.zeros((1, 4, 4), np.uint8), labels, 2, 4)
    assert x.shape == (1, 2, 2) and y.shape == (1, 4, 2, 2)
    assert y[0, 3, 0, 0] in (127, 128) and y[0, 0, 0, 0] in (127, 128)
    assert np.all(y.astype(int).sum(axis=1) >= 254)


def test_tiny_training_lowers_the_loss(tmp_path):
    cfg = TrainConfig(
        modality="us",
        seed=0,
        epochs=10,
        batch_size=8,
        lr=1e-2,
        input_size=64,
        threads=1,
        model=ModelConfig(base_channels=4, depth=3),
        data=DataConfig(train_frames=32, val_frames=8),
    )
    metrics = train(
        cfg,
        tmp_path,
        progress=False,
        train_set=_fake_set(48, 1),
        val_set=_fake_set(8, 2),
        evaluate=True,
        log=lambda *_: None,
    )
    hist = metrics["history"]
    assert len(hist) == 10
    assert hist[-1]["train_loss"] < 0.7 * hist[0]["train_loss"]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    for name in ("model.pt", "checkpoint.pt", "metrics.json", "learning_curve.png", "config.yaml"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["final_val"]["us_vessel_dice"] > 0.3  # learned something about the dark blobs
    # the saved weights load into the predictor and are the best epoch's
    from ir_robot.perception.inference import UltrasoundPerception

    us = UltrasoundPerception.from_weights(tmp_path / "model.pt")
    assert us.segmenter.meta["info"]["val_score"] == max(h["val_score"] for h in hist)


def test_training_resumes_from_the_checkpoint(tmp_path):
    cfg = TrainConfig(
        modality="us",
        seed=0,
        epochs=2,
        batch_size=8,
        input_size=64,
        threads=1,
        model=ModelConfig(base_channels=4, depth=3),
        data=DataConfig(train_frames=8, val_frames=4),
    )
    tr, va = _fake_set(8, 1), _fake_set(4, 2)
    first = train(cfg, tmp_path, progress=False, train_set=tr, val_set=va, evaluate=False, log=lambda *_: None)
    again = train(
        cfg, tmp_path, progress=False, train_set=tr, val_set=va, evaluate=False, resume=True, log=lambda *_: None
    )
    assert len(again["history"]) == 2 and again["history"] == first["history"]


def test_shipped_configs_load_with_overrides():
    cfg = load_config(None, "us", epochs=3, train_frames=50)
    assert cfg.modality == "us" and cfg.epochs == 3 and cfg.data.train_frames == 50
    assert load_config(None, "nir").num_classes == 2


def test_class_bias_calibration_is_stored_and_used(tmp_path, tiny_weights):
    import shutil

    from ir_robot.perception.inference import Segmenter
    from ir_robot.perception.train import calibrate_class_bias

    w = tmp_path / "us.pt"
    shutil.copy(tiny_weights["us"], w)
    val = _fake_set(4, 3)
    bias, table = calibrate_class_bias(w, val, (1,), grid=[-2.0, 0.0, 2.0])
    assert bias[0] == 0.0 and bias[1] in (-2.0, 0.0, 2.0) and set(table) == {1}
    assert table[1][1] >= table[1][0]  # never worse than the plain argmax on the calibration set
    seg = Segmenter.from_weights(w)
    assert np.allclose(seg.class_bias, bias)
    # a huge bias makes the class win everywhere: the bias really reaches the decision
    probs = np.full((4, 8, 8), 0.25, np.float32)
    probs[0] = 0.4
    seg.class_bias = np.array([0.0, 0.0, 0.0, 5.0], np.float32)
    assert (seg.decide(probs) == 3).all()


def test_ship_model_copies_weights_and_writes_the_card_from_the_records(tmp_path):
    import pytest

    from ir_robot.core.errors import PerceptionError
    from ir_robot.perception.inference import UltrasoundPerception
    from ir_robot.perception.model_card import ship

    run = tmp_path / "run"
    cfg = TrainConfig(
        modality="us",
        seed=0,
        epochs=1,
        batch_size=8,
        input_size=64,
        threads=1,
        model=ModelConfig(base_channels=4, depth=3),
        data=DataConfig(train_frames=8, val_frames=4),
    )
    train(
        cfg, run, progress=False, train_set=_fake_set(8, 1), val_set=_fake_set(4, 2), evaluate=True, log=lambda *_: None
    )
    bench = {
        "us_weights": str(run / "model.pt"),
        "test_seed": 90210,
        "us_test_frames": 600,
        "us_vessel_dice": 0.95,
        "classical_us_vessel_dice": 0.7,
        "needle_recall": 0.9,
    }
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    dest = ship("us", run, bench_json=tmp_path / "bench.json", models_dir=tmp_path / "models")
    assert (dest / "model.pt").read_bytes() == (run / "model.pt").read_bytes()
    UltrasoundPerception.from_weights(dest / "model.pt")
    card = (dest / "MODEL_CARD.md").read_text()
    assert "on our synthetic benchmark" in card
    assert json.loads((run / "metrics.json").read_text())["command"] in card
    assert "| vessel Dice (vein + artery) (`us_vessel_dice`) | 0.95 | 0.7 | >= 0.92 | yes |" in card
    assert "| needle recall (`needle_recall`) | 0.9 | n/a | >= 0.998 | **no** |" in card
    # a bench of other weights, or a run of the other modality, is refused
    (tmp_path / "other.pt").write_bytes(b"not these weights")
    (tmp_path / "bench2.json").write_text(json.dumps({**bench, "us_weights": str(tmp_path / "other.pt")}))
    with pytest.raises(PerceptionError, match="measured us weights"):
        ship("us", run, bench_json=tmp_path / "bench2.json", models_dir=tmp_path / "models2")
    with pytest.raises(PerceptionError):
        ship("nir", run, models_dir=tmp_path / "models3")
