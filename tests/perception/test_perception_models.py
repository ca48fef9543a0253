"""Model shapes and value ranges; the transforms in front of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ir_robot.perception.models import UNet, build_model, count_parameters
from ir_robot.perception.transforms import probs_to_size, standardise, to_model_input


@pytest.mark.parametrize("num_classes,size", [(4, 64), (2, 96)])
def test_unet_logits_shape_and_probabilities(num_classes, size):
    torch.manual_seed(0)
    model = UNet(1, num_classes, base_channels=4, depth=3).eval()
    x = torch.randn(2, 1, size, size)
    with torch.inference_mode():
        logits = model(x)
    assert logits.shape == (2, num_classes, size, size)
    assert torch.isfinite(logits).all()
    p = torch.softmax(logits, dim=1)
    assert torch.allclose(p.sum(dim=1), torch.ones(2, size, size), atol=1e-5)
    assert (p >= 0).all() and (p <= 1).all()


def test_unet_refuses_bad_input():
    model = UNet(1, 4, base_channels=4, depth=3)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.zeros(1, 1, 30, 32))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.zeros(1, 3, 32, 32))


def test_build_model_matches_arch_and_rejects_unknown():
    m = build_model({"name": "unet", "num_classes": 2, "base_channels": 4, "depth": 3})
    assert isinstance(m, UNet) and m.num_classes == 2 and m.divisor == 4
    # parameters grow with width: the architecture arguments are really used
    assert count_parameters(build_model({"num_classes": 2, "base_channels": 8, "depth": 3})) > count_parameters(m)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model({"name": "resnet"})


def test_model_input_is_standardised_and_resized():
    img = np.tile(np.arange(200, dtype=np.uint8), (100, 1))
    x = to_model_input(img, 64)
    assert x.shape == (1, 1, 64, 64) and x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-3
    flat = standardise(np.full((32, 32), 100, np.uint8))
    assert np.abs(flat).max() < 1e-5  # a flat image is not blown up into noise


def test_probabilities_resize_back_and_stay_normalised():
    rng = np.random.default_rng(0)
    p = rng.random((4, 32, 32)).astype(np.float32)
    p /= p.sum(axis=0, keepdims=True)
    up = probs_to_size(p, (100, 80))
    assert up.shape == (4, 100, 80)
    assert np.allclose(up.sum(axis=0), 1.0, atol=1e-5)
