"""A stack of blocks plus the final norm, shared by ChAda-ViT and its baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from chadavit.batch import ChannelBatch
from chadavit.models.config import ChadaViTConfig
from chadavit.models.layers.attention import AttentionBackend, PackedSequences
from chadavit.models.layers.block import Block, LegacyBlock
from chadavit.models.layers.mlp import Activation
from chadavit.models.output import EncoderOutput


def build_blocks(dim: int, depth: int, num_heads: int, mlp_dim: int, block: str = "prenorm", act: Activation = "gelu",
                 norm_eps: float = 1e-6, qkv_bias: bool = True, drop_path_rate: float = 0.0) -> nn.ModuleList:
    cls = LegacyBlock if block == "legacy" else Block
    rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
    return nn.ModuleList(
        cls(dim, num_heads, mlp_dim, act=act, norm_eps=norm_eps, qkv_bias=qkv_bias, drop_path=r) for r in rates
    )


class PackedEncoderMixin:
    """Runs ``self.blocks`` then ``self.norm`` over packed tokens; collects the last block's CLS attention."""

    config: ChadaViTConfig
    blocks: nn.ModuleList
    norm: nn.Module
    cls_token: nn.Parameter
    pos_embed: nn.Parameter
    grad_checkpointing: bool = False

    def make_batch(self, images: Sequence[np.ndarray | torch.Tensor],
                   channel_names: Sequence[Sequence[str]] | None = None,
                   sources: Sequence[str] | None = None) -> ChannelBatch:
        """A batch of raw ``(C, H, W)`` images scaled the way this model expects (``config.normalization``).

        Why: ``ChannelBatch.from_images`` defaults to percentile stretching, which is wrong for converted
        official models (``pixels / 255``); building batches through the model cannot get it wrong.
        """
        return ChannelBatch.from_images(images, channel_names=channel_names, sources=sources,
                                        normalize=self.config.normalization,  # type: ignore[arg-type]
                                        stats=self.config.normalization_stats or None)

    def init_trunk(self, config: ChadaViTConfig, num_positions: int) -> None:
        """Create the CLS token, a ``(num_positions, D)`` position table, the blocks and the final norm."""
        dim = config.embed_dim
        self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, dim), std=0.02))
        self.pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.zeros(num_positions, dim), std=0.02))
        self.blocks = build_blocks(dim, config.depth, config.num_heads, config.mlp_dim, config.block, config.act,
                                   config.norm_eps, config.qkv_bias, config.drop_path_rate)
        self.norm = nn.LayerNorm(dim, eps=config.final_norm_eps)
        self.blocks.apply(init_weights)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def in_channel_count_order(self, batch: ChannelBatch, run: Callable[[ChannelBatch], EncoderOutput]
                               ) -> EncoderOutput:
        """Run ``run`` on the batch's images sorted by channel count; outputs come back in input order.

        Equal-length sequences are then adjacent in the packed tensor, so the ``grouped`` attention
        back-end makes one call per distinct channel count, on views of the packed tokens.
        """
        order = torch.argsort(batch.num_channels.cpu(), stable=True)
        if bool((order == torch.arange(len(order))).all()):
            return run(batch)
        return run(batch.select(order)).reorder(torch.argsort(order))

    def set_attention_backend(self, backend: AttentionBackend) -> None:
        for blk in self.blocks:
            blk.attn.backend = backend  # type: ignore[union-attr]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def run_blocks(self, x: torch.Tensor, seqs: PackedSequences, return_attention: bool = False
                   ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        maps = None
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            want = return_attention and i == last
            if self.grad_checkpointing and torch.is_grad_enabled() and not want:
                x, _ = checkpoint(blk, x, seqs, False, use_reentrant=False)
            else:
                x, m = blk(x, seqs, want)
                maps = m if want else maps
        return self.norm(x), maps


def init_weights(module: nn.Module) -> None:
    """trunc-normal(0.02) linear weights with zero biases, as ViT/DINO and the official model do."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
