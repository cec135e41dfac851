"""``pixel_stats``: per-patch intensity statistics through a fixed random projection (``pixels``: old name)."""

from __future__ import annotations

import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.models.output import EncoderOutput
from chadavit.models.references.base import ConfigBatching, ReferenceConfig


class PixelStatsEncoder(ConfigBatching, nn.Module):
    """Untrained reference: per-patch intensity statistics through a fixed random projection.

    Unlike the other references it has patch tokens (one per patch of every channel) and an attention map, so
    every protocol and figure runs on it; it also serves tests that must not depend on a transformer. Its
    ``cls`` is the mean of its patch tokens.
    """

    def __init__(self, embed_dim: int = 32, patch_size: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.config = ReferenceConfig("pixel_stats", embed_dim=embed_dim, normalization="percentile", pooling="mean",
                                      patch_size=patch_size)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(4, embed_dim, generator=g))

    def forward(self, batch: ChannelBatch, return_attention: bool = False) -> EncoderOutput:
        p = self.config.patch_size
        x = batch.planes[:, None]
        mean = nn.functional.avg_pool2d(x, p)
        sq = nn.functional.avg_pool2d(x * x, p)
        mx = nn.functional.max_pool2d(x, p)
        stats = torch.cat([mean, (sq - mean**2).clamp_min(0).sqrt(), mx, torch.ones_like(mean)], 1)  # (P, 4, h, w)
        tok = torch.tanh(stats.permute(0, 2, 3, 1) @ self.proj)  # (P, h, w, D)
        per_image = list(torch.split(tok, batch.num_channels.tolist(), 0))
        cls = torch.stack([t.mean((0, 1, 2)) for t in per_image])
        attn = None
        if return_attention:
            attn = [torch.softmax(t.norm(dim=-1).flatten(), 0).view(1, *t.shape[:3]) for t in per_image]
        return EncoderOutput(cls=cls, patch_tokens=per_image, attentions=attn, channel_names=batch.channel_names)
