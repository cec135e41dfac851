"""Resizing a learned spatial position table to another patch grid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a ``(1 + n*n, D)`` table (CLS first) to ``grid = (h, w)`` patches.

    Uses DINO v1's bicubic interpolation with its +0.1 offset on the scale factor, exactly as the
    official ChAda-ViT does, so official weights give official features at any image size. The CLS
    entry is never interpolated.
    """
    n = pos_embed.shape[0] - 1
    side = int(math.isqrt(n))
    if side * side != n:
        raise ValueError(f"position table has {n} patch entries, not a square grid")
    h, w = grid
    if (h, w) == (side, side):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:1], pos_embed[1:]
    dim = pos_embed.shape[-1]
    table = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(
        table.float(), scale_factor=((h + 0.1) / side, (w + 0.1) / side), mode="bicubic", align_corners=False
    ).to(pos_embed.dtype)
    if resized.shape[-2:] != (h, w):
        raise RuntimeError(f"position interpolation gave {tuple(resized.shape[-2:])}, expected {(h, w)}")
    return torch.cat([cls_pos, resized.permute(0, 2, 3, 1).reshape(h * w, dim)], 0)
