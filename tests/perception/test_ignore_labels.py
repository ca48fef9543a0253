"""Don't-care labels (LABEL_IGNORE): where the renderers put them, and that training and the
metrics really leave them out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ir_robot.core.types import LABEL_IGNORE, LABEL_NEEDLE, LABEL_VEIN, ImageFrame, NirView
from ir_robot.paths import data_path
from ir_robot.perception import datasets
from ir_robot.perception.metrics import NirEvaluator, UsEvaluator
from ir_robot.perception.postprocess import analyse_nir, analyse_us
from ir_robot.sim.nir import NirParams, NirRenderer
from ir_robot.sim.phantom import Phantom, VesselSpec, load_phantom


def _phantom(*vessels: VesselSpec) -> Phantom:
    spec = load_phantom(data_path("sim", "phantoms", "forearm.yaml"))
    return Phantom(dataclasses.replace(spec, vessels=tuple(vessels)))


def _render(phantom: Phantom, **params) -> ImageFrame:
    return NirRenderer(NirParams(**params), seed=0).render(
        phantom, NirView(0.0, 0.0, 50.0), 0.0, np.random.default_rng(0)
    )


def test_nir_visible_artery_is_dont_care_never_vein():
    fr = _render(_phantom(VesselSpec("artery", 3.0, 4.0, 0.0)))
    row = 127  # the artery runs along x through the image centre
    assert (fr.labels[row - 3 : row + 4] == LABEL_IGNORE).any()
    assert not (fr.labels == LABEL_VEIN).any() and fr.vessel_kinds == ()


def test_nir_faint_vein_is_dont_care_clear_vein_is_vein():
    ph = _phantom(VesselSpec("vein", 3.0, 4.0, 0.0))
    clear = _render(ph)
    assert (clear.labels[:, 128] == LABEL_VEIN).sum() > 0 and not (clear.labels == LABEL_IGNORE).any()
    # the same vein with a labelling threshold just above its contrast falls in the don't-care band
    col = clear.labels[:, 128] == LABEL_VEIN
    faint = _render(ph, vein_label_min_contrast=0.95, vein_ignore_fraction=0.0)
    assert not (faint.labels == LABEL_VEIN).any()
    assert (faint.labels[col, 128] == LABEL_IGNORE).all()
    # ... and is background when the band is empty
    gone = _render(ph, vein_label_min_contrast=0.95, vein_ignore_fraction=1.0)
    assert not gone.labels.any()


def test_nir_vein_fainter_than_the_skin_mottling_is_not_labelled_vein():
    ph = _phantom(VesselSpec("vein", 3.0, 4.0, 0.0))
    clear = _render(ph, skin_texture=0.06)
    col = clear.labels[:, 128] == LABEL_VEIN
    assert col.sum() > 0
    # the same vein under skin mottling stronger than its contrast (about 0.4 here): don't care, not vein
    mottled = _render(ph, skin_texture=0.5)
    assert not (mottled.labels == LABEL_VEIN).any() and mottled.vessel_kinds == ()
    assert (mottled.labels[col, 128] == LABEL_IGNORE).all()
    # without the clutter term the threshold is the fixed contrast again
    assert (_render(ph, skin_texture=0.5, vein_label_clutter_factor=0.0).labels[col, 128] == LABEL_VEIN).all()


def test_nir_dice_ignores_dont_care_pixels():
    labels = np.zeros((64, 64), np.uint8)
    labels[10:20] = LABEL_VEIN
    labels[40:50] = LABEL_IGNORE
    fr = ImageFrame("nir", np.full((64, 64), 128, np.uint8), (0.2, 0.2), 0.0, labels)
    pred = np.where(labels == LABEL_IGNORE, LABEL_VEIN, labels).astype(np.uint8)  # vein on don't care too
    ev = NirEvaluator()
    ev.add(fr, analyse_nir(pred, (0.2, 0.2)))
    assert ev.summary()["nir_vein_dice"] == pytest.approx(1.0)
    pred2 = pred.copy()
    pred2[25:35] = LABEL_VEIN  # a false vein on a cared-for pixel still costs
    ev2 = NirEvaluator()
    ev2.add(fr, analyse_nir(pred2, (0.2, 0.2)))
    assert ev2.summary()["nir_vein_dice"] == pytest.approx(2 * 640 / (1280 + 640))


def test_barely_visible_needle_is_dont_care_and_outside_precision_recall():
    # visibility between NEEDLE_VISIBILITY_MIN and NEEDLE_VISIBILITY_CLEAR grey levels
    labels = np.zeros((64, 64), np.uint8)
    labels[30:32, 10:40] = LABEL_NEEDLE
    plain = np.full((64, 64), 100, np.uint8)
    mid = (datasets.NEEDLE_VISIBILITY_MIN + datasets.NEEDLE_VISIBILITY_CLEAR) / 2
    for boost, expect in ((mid, LABEL_IGNORE), (datasets.NEEDLE_VISIBILITY_CLEAR * 2, LABEL_NEEDLE), (1, 0)):
        img = plain + np.uint8(round(boost))  # visibility = mean grey change near the needle
        fr = ImageFrame("us", img, (0.1, 0.1), 0.0, labels.copy(), (30.5, 39.5))
        out = datasets._label_visible_needle(fr, ImageFrame("us", plain, (0.1, 0.1), 0.0, np.zeros_like(labels)))
        assert (out.labels[30:32, 10:40] == expect).all(), (boost, expect)
        assert (out.tip_px is None) == (expect != LABEL_NEEDLE)
    # the evaluator: an ambiguous frame counts neither as a miss nor as a false detection
    amb_labels = np.zeros((64, 64), np.uint8)
    amb_labels[30:32, 10:40] = LABEL_IGNORE
    amb = ImageFrame("us", plain, (0.1, 0.1), 0.0, amb_labels)
    ev = UsEvaluator()
    ev.add(amb, analyse_us(np.zeros((64, 64), np.uint8), (0.1, 0.1)))
    found = np.zeros((64, 64), np.uint8)
    found[30:32, 10:40] = LABEL_NEEDLE
    ev.add(amb, analyse_us(found, (0.1, 0.1)))
    s = ev.summary()
    assert s["needle_ambiguous_frames"] == 2
    assert s["needle_tp"] == s["needle_fp"] == s["needle_fn"] == s["needle_tn"] == 0
    assert s["us_needle_dice"] == pytest.approx(1.0)  # no cared-for needle pixels either way


def test_training_loss_does_not_see_dont_care_pixels():
    torch = pytest.importorskip("torch")
    from ir_robot.perception.train import _loss, _targets, prepare_arrays

    labels = np.zeros((1, 32, 32), np.uint8)
    labels[0, 4:10] = LABEL_VEIN
    labels[0, 20:28] = LABEL_IGNORE
    _, y = prepare_arrays(np.zeros((1, 32, 32), np.uint8), labels, 16, 2)
    y, valid = _targets(torch.from_numpy(y).float() / 255.0, torch)
    assert float(valid[0, 0, 10:14].sum()) == 0 and float(valid[0, 0, :8].min()) == 1
    w = torch.ones(2)
    logits = torch.zeros(1, 2, 16, 16)
    logits[:, 1, 2:5] = 5.0  # confident vein where the vein is
    base = float(_loss(logits, y, w, 1.0, torch, valid))
    other = logits.clone()
    other[:, 1, 10:14] = 9.0  # wild answers on the don't-care rows: no change
    assert float(_loss(other, y, w, 1.0, torch, valid)) == pytest.approx(base, rel=1e-6)
    wrong = logits.clone()
    wrong[:, 1, 6:8] = 9.0  # the same answer on cared-for background costs
    assert float(_loss(wrong, y, w, 1.0, torch, valid)) > base + 0.1
