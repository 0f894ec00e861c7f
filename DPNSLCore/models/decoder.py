"""Decoders from HR features to the single-channel null-space estimate f.

Both decoders start with a 1x1x1 expansion conv (`expand`). It is linear, so the upsampler may fold it
into its own last linear map (the separable Mixture-of-Splines does): the estimator passes `expand` to
the upsampler and calls the decoder with ``expanded=True``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as tf

from .config import ModelConfig
from .encoder import Conv3d

_BRANCH_KERNEL = {"conv3": 3, "dw3": 3, "dw5": 5, "dw7": 7}


class LSCDBlock(nn.Module):
    """Channel split identity | branch_1 | ... | branch_n, concatenate, GELU (local spatial consistency).

    Args:
        channels: total channels.
        branches: names among "conv3" (full 3x3x3), "dw3", "dw5", "dw7" (depthwise k^3).
        fraction: share of the channels given to each branch; the identity takes the rest.
    """

    def __init__(self, channels: int, branches: tuple[str, ...], fraction: float) -> None:
        super().__init__()
        width = max(1, round(fraction * channels))
        self.sizes = [channels - width * len(branches)] + [width] * len(branches)
        if self.sizes[0] < 0:
            raise ValueError(f"{len(branches)} decoder branches of {width} channels exceed {channels} channels.")
        self.branches = nn.ModuleList(
            Conv3d(width, width, _BRANCH_KERNEL[name], padding=_BRANCH_KERNEL[name] // 2,
                      groups=1 if name == "conv3" else width)
            for name in branches
        )
        self.radius = max(_BRANCH_KERNEL[name] // 2 for name in branches)

    def forward(self, x: Tensor) -> Tensor:
        parts = x.split(self.sizes, dim=1)
        out = [parts[0]] + [branch(part) for branch, part in zip(self.branches, parts[1:], strict=True)]
        return tf.gelu(torch.cat(out, dim=1))


class Decoder(nn.Module):
    """LSCD (``"lscd"``) or pointwise MLP (``"mlp"``) decoder: (B, C', n, Y, X) -> (B, 1, n, Y, X).

    LSCD: 1x1x1 conv C' -> expand*C', `decoder_blocks` LSCD blocks, final k^3 conv -> 1 channel.
    MLP: 1x1x1 conv C' -> expand*C', GELU, 1x1x1 conv -> 1 channel.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        width = cfg.decoder_channels
        self.expand = Conv3d(cfg.mos_features, width, 1)
        if cfg.decoder == "lscd":
            blocks = [LSCDBlock(width, cfg.decoder_branches, cfg.decoder_branch_fraction)
                      for _ in range(cfg.decoder_blocks)]
            self.body = nn.Sequential(*blocks)
            final = cfg.decoder_final_kernel
            self.radius = sum(b.radius for b in blocks) + final // 2
        else:
            self.body = nn.Sequential(nn.GELU())
            final = 1
            self.radius = 0
        self.final = Conv3d(width, 1, final, padding=final // 2)
        # near-zero init: an untrained model adds almost no detail (it starts at the range anchor), yet every
        # layer gets gradients from the first step (an exactly zero last layer starves them: measured, it
        # stayed at the anchor for 300+ steps)
        nn.init.normal_(self.final.weight, std=1e-3)
        nn.init.zeros_(self.final.bias)

    def forward(self, x: Tensor, *, expanded: bool = False) -> Tensor:
        """Decode HR features; pass ``expanded=True`` when `expand` was already applied (folded)."""
        if not expanded:
            x = self.expand(x)
        return self.final(self.body(x))
