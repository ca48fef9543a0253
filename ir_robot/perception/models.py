"""Compact U-Net segmenters: plain ``nn.Module`` classes with only architecture arguments.

Ultrasound: 1 grey channel -> 4 classes {background, vein, artery, needle}.
NIR: 1 grey channel -> 2 classes {background, vein}.

The network is a classic U-Net (Ronneberger et al. 2015): ``depth`` resolution levels,
two 3x3 conv + BatchNorm + ReLU per level, channels doubling from ``base_channels``,
max-pool down, transposed-conv up, skip concatenation, a 1x1 head giving logits.
Input sides must be multiples of ``2 ** (depth - 1)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: architecture names understood by :func:`build_model`
ARCHITECTURES = ("unet",)


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net segmenter returning logits ``(N, num_classes, H, W)`` for input ``(N, in_channels, H, W)``.

    Args:
        in_channels: image channels (1 for grey ultrasound / NIR).
        num_classes: output classes (4 for ultrasound, 2 for NIR).
        base_channels: channels of the first level; level ``i`` has ``base_channels * 2**i``.
        depth: number of resolution levels (3-5); the input side must be divisible by ``2**(depth-1)``.
        dropout: dropout probability at the bottleneck (0 disables it).
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 4, base_channels: int = 16, depth: int = 4, dropout: float = 0.0
    ):
        super().__init__()
        if depth < 2:
            raise ValueError(f"UNet depth must be >= 2, got {depth}")
        if in_channels < 1 or num_classes < 2 or base_channels < 2:
            raise ValueError(
                f"UNet needs in_channels >= 1, num_classes >= 2, base_channels >= 2; got "
                f"{in_channels}, {num_classes}, {base_channels}"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.depth = depth
        chans = [base_channels * 2**i for i in range(depth)]
        self.encoders = nn.ModuleList()
        c = in_channels
        for ch in chans:
            self.encoders.append(_double_conv(c, ch))
            c = ch
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for ch in reversed(chans[:-1]):
            self.ups.append(nn.ConvTranspose2d(c, ch, 2, stride=2))
            self.decoders.append(_double_conv(2 * ch, ch))
            c = ch
        self.head = nn.Conv2d(c, num_classes, 1)

    @property
    def divisor(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** (self.depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)``; refuses an input of the wrong channels or side."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UNet expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % self.divisor or x.shape[-2] % self.divisor:
            raise ValueError(f"UNet input sides must be multiples of {self.divisor}, got {tuple(x.shape[-2:])}")
        skips = []
        for i, enc in enumerate(self.encoders):
            if i:
                x = F.max_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        x = self.dropout(skips.pop())
        for up, dec in zip(self.ups, self.decoders, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def build_model(arch: dict[str, Any]) -> UNet:
    """Build a network from an architecture dict such as ``{"name": "unet", "num_classes": 4, ...}``."""
    kwargs = dict(arch)
    name = kwargs.pop("name", "unet")
    if name != "unet":
        raise ValueError(f"unknown architecture {name!r}; known: {ARCHITECTURES}")
    return UNet(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of weights in ``model`` (the size a model card reports)."""
    return sum(p.numel() for p in model.parameters())
