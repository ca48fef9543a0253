"""Fixtures of the perception tests: a seeded rng and tiny weights files."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """Untrained tiny US and NIR weights files (architecture and format only)."""
    import torch

    from ir_robot.perception.inference import save_weights
    from ir_robot.perception.models import UNet

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("weights")
    out = {}
    for modality, nc in (("us", 4), ("nir", 2)):
        arch = {"name": "unet", "in_channels": 1, "num_classes": nc, "base_channels": 4, "depth": 3}
        model = UNet(1, nc, 4, 3)
        out[modality] = save_weights(
            d / f"{modality}.pt",
            model,
            modality=modality,
            arch=arch,
            input_size=64,
            field_of_view_mm=(30.0, 30.0) if modality == "us" else (50.0, 50.0),
        )
    return out
