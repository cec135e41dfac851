"""Inter-Channel-only ViT baseline: one token per channel, attention only between channels.

Recovered from the official repository's bytecode: a per-channel TokenLearner (non-affine LayerNorm
over the plane, four 3x3 convolutions with GELU between, a sigmoid) gives ``D`` spatial weight maps;
each map weights a mean over the plane's pixels, giving one ``D``-dim token per channel. A single
learned position vector is added to every token (no spatial or channel identity), a CLS token is
prepended, and a transformer runs over the ``1 + C`` tokens of each image.
"""

from __future__ import annotations

import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.models.config import ChadaViTConfig
from chadavit.models.layers.packing import pack_with_cls
from chadavit.models.layers.transformer import PackedEncoderMixin
from chadavit.models.output import EncoderOutput
from chadavit.models.registry import register_architecture, register_model

CONV_WIDTH = 32


class ConvTokenLearner(nn.Module):
    """A plane ``(1, H, W)`` -> one token ``(D,)`` as ``D`` sigmoid-weighted pixel means."""

    def __init__(self, embed_dim: int, width: int = CONV_WIDTH) -> None:
        super().__init__()
        self.maps = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, embed_dim, 3, padding=1), nn.Sigmoid(),
        )

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        x = planes[:, None]
        x = nn.functional.layer_norm(x, x.shape[1:])
        weights = self.maps(x)  # (P, D, H, W)
        return (weights * x).mean(dim=(2, 3))


@register_architecture("inter_channel_vit")
class InterChannelViT(PackedEncoderMixin, nn.Module):
    def __init__(self, config: ChadaViTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.token_learner = ConvTokenLearner(dim)
        self.init_trunk(config, 1)

    def forward(self, batch: ChannelBatch, return_attention: bool = False, pad_to_slots: int | None = None
                ) -> EncoderOutput:
        return self.in_channel_count_order(batch, lambda b: self._forward(b, return_attention))

    def _forward(self, batch: ChannelBatch, return_attention: bool) -> EncoderOutput:
        device = self.pos_embed.device
        tokens = self.token_learner(batch.planes.to(device, self.pos_embed.dtype)) + self.pos_embed
        cls = (self.cls_token + self.pos_embed).expand(len(batch), -1)
        x, seqs, cls_index, body_index = pack_with_cls(cls, tokens, batch.num_channels)
        x, maps = self.run_blocks(x, seqs, return_attention)
        per_channel = x[body_index][:, None, None, :]
        counts = batch.num_channels.tolist()
        attn = [m[:, 1:].reshape(m.shape[0], -1, 1, 1) for m in maps] if maps is not None else None
        return EncoderOutput(cls=x[cls_index], patch_tokens=list(torch.split(per_channel, counts, 0)), attentions=attn,
                             channel_names=batch.channel_names)


@register_model
def inter_channel_vit_moyen() -> ChadaViTConfig:
    """The paper's InterChannel-only ViT "Moyen": D 192, depth 12, 4 heads, MLP 2048."""
    return ChadaViTConfig(architecture="inter_channel_vit", embed_dim=192, depth=12, num_heads=4, mlp_dim=2048,
                          channel_embedding="none")
