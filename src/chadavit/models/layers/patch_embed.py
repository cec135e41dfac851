"""One patch projection shared by every channel: each plane becomes its own grid of tokens."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """``Conv2d(in_chans -> D, kernel = stride = patch)``; ChAda-ViT uses ``in_chans=1`` on single planes."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 1) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=True)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch_size, width // self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_chans, H, W)`` -> ``(N, h*w, D)`` in row-major patch order."""
        return self.proj(x).flatten(2).transpose(1, 2)
