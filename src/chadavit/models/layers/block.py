"""Transformer blocks on packed tokens: a modern pre-norm block and the official ChAda-ViT layer."""

from __future__ import annotations

import torch
from torch import nn

from chadavit.models.layers.attention import Attention, PackedSequences
from chadavit.models.layers.mlp import Activation, Mlp


class DropPath(nn.Module):
    """Stochastic depth on packed tokens: one keep/drop draw per image sequence, not per token."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, seqs: PackedSequences) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(len(seqs.lengths), device=x.device) >= self.p
        per_token = torch.repeat_interleave(keep, torch.tensor(seqs.lengths, device=x.device)).to(x.dtype)
        return x * per_token[:, None] / (1.0 - self.p)


class Block(nn.Module):
    """Pre-norm block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))`` (ViT / DINO style, GELU)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, act: Activation = "gelu", norm_eps: float = 1e-6,
                 qkv_bias: bool = True, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_dim, act=act)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, seqs: PackedSequences, return_attention: bool = False
                ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        a, maps = self.attn(self.norm1(x), seqs, return_attention)
        x = x + self.drop_path(a, seqs)
        x = x + self.drop_path(self.mlp(self.norm2(x)), seqs)
        return x, maps


class LegacyBlock(Block):
    """The official ChAda-ViT layer, kept only to reproduce released weights exactly.

    A modified ``nn.TransformerEncoderLayer`` (post-norm, ReLU, feed-forward 2048) in which ``norm1``
    is applied twice: ``a = MHA(LN1(x)); y = LN1(x + a); out = LN2(y + FFN(y))``. The official
    code has no stochastic depth, so ``drop_path`` is ignored.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, act: Activation = "relu", norm_eps: float = 1e-5,
                 qkv_bias: bool = True, drop_path: float = 0.0) -> None:
        super().__init__(dim, num_heads, mlp_dim, act=act, norm_eps=norm_eps, qkv_bias=qkv_bias, drop_path=0.0)

    def forward(self, x: torch.Tensor, seqs: PackedSequences, return_attention: bool = False
                ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        a, maps = self.attn(self.norm1(x), seqs, return_attention)
        y = self.norm1(x + a)
        return self.norm2(y + self.mlp(y)), maps
