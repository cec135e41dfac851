"""The official ChAda-ViT forward, re-written compactly for speed comparisons (not used by the package).

Follows ``nicoboou/chadavit`` ``src/backbones/vit/chada_vit.py`` as described in
``shared/research/official_chadavit.md``: one shared ``Conv2d(1 -> D)`` patch projection, every
image zero-padded to 10 channel slots (sequence ``1 + 10 * N``), a key-padding mask, and modified
``nn.TransformerEncoderLayer`` blocks (``nn.MultiheadAttention``; post-norm with ``norm1`` applied
twice; ReLU feed-forward of width ``mlp_dim``). Same FLOP-relevant shapes as ``chada_vit_moyen``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OfficialLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        a = self.self_attn(h, h, h, key_padding_mask=pad_mask, need_weights=False)[0]
        y = self.norm1(x + a)
        return self.norm2(y + self.linear2(F.relu(self.linear1(y))))


class OfficialChAdaViT(nn.Module):
    def __init__(self, dim: int = 192, depth: int = 12, heads: int = 12, mlp_dim: int = 2048, patch: int = 16,
                 img_size: int = 224, slots: int = 10) -> None:
        super().__init__()
        self.slots, n = slots, (img_size // patch) ** 2
        self.proj = nn.Conv2d(1, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.randn(1, 1, 1 + n, dim) * 0.02)
        self.channel_token = nn.Parameter(torch.randn(1, slots, 1, dim) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.blocks = nn.ModuleList(OfficialLayer(dim, heads, mlp_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, planes: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """``planes`` ``(sum C, H, W)``, image after image -> CLS ``(B, D)``."""
        tokens = self.proj(planes[:, None]).flatten(2).transpose(1, 2)  # (sum C, N, D)
        per_image = torch.split(tokens, counts)
        padded = torch.stack([F.pad(t, (0, 0, 0, 0, 0, self.slots - t.shape[0])) for t in per_image])
        b, s, n, d = padded.shape
        mask = (padded == 0).all(-1)  # the official mask: an all-zero token vector is padding
        x = padded + self.pos_embed[:, :, 1:] + self.channel_token
        x = x.reshape(b, s * n, d)
        cls = (self.cls_token + self.pos_embed[:, 0, :1]).expand(b, -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], 1)
        mask = torch.cat([torch.zeros(b, 1, dtype=torch.bool), mask.reshape(b, s * n)], 1)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.norm(x)[:, 0]
