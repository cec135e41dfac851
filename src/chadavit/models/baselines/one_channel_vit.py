"""One-Channel ViT baseline: every channel is encoded alone by a 1-channel ViT; features are pooled per image."""

from __future__ import annotations

import torch

from chadavit.batch import ChannelBatch, InvalidImageError
from chadavit.models.chada_vit import ChAdaViT
from chadavit.models.config import ChadaViTConfig
from chadavit.models.output import EncoderOutput
from chadavit.models.registry import register_architecture, register_model


@register_architecture("one_channel_vit")
class OneChannelViT(ChAdaViT):
    """A ViT with a 1-channel patch embedding and no channel embedding, run on each plane as its own image.

    There is no interaction between channels. ``config.pooling`` combines the per-channel CLS
    vectors of an image: ``"mean"`` (any channel count, ``D`` features) or ``"concat"`` (a fixed
    channel count, ``C * D`` features, as the paper does on fixed-channel datasets).
    """

    def __init__(self, config: ChadaViTConfig) -> None:
        if config.channel_embedding != "none":
            config = config.replace(channel_embedding="none")
        super().__init__(config)

    def forward(self, batch: ChannelBatch, return_attention: bool = False, pad_to_slots: int | None = None
                ) -> EncoderOutput:
        planes = ChannelBatch(batch.planes, torch.ones(batch.planes.shape[0], dtype=torch.long))
        out = super().forward(planes, return_attention)
        counts = batch.num_channels.tolist()
        per_image = torch.split(out.cls, counts, 0)
        if self.config.pooling == "concat":
            if len(set(counts)) > 1:
                raise InvalidImageError("concat pooling needs one channel count per batch, "
                                        f"got counts {sorted(set(counts))}")
            cls = torch.stack([c.reshape(-1) for c in per_image])
        else:
            cls = torch.stack([c.mean(0) for c in per_image])
        tokens = [torch.cat(t, 0) for t in _split_lists(out.patch_tokens, counts)]
        attn = None
        if out.attentions is not None:
            attn = [torch.cat(a, 1) for a in _split_lists(out.attentions, counts)]
        return EncoderOutput(cls=cls, patch_tokens=tokens, attentions=attn,
                             channel_names=batch.channel_names)


def _split_lists(items: list[torch.Tensor], counts: list[int]) -> list[list[torch.Tensor]]:
    out, i = [], 0
    for c in counts:
        out.append(items[i : i + c])
        i += c
    return out


@register_model
def one_channel_vit_tiny() -> ChadaViTConfig:
    """The paper's One-Channel ViT-Tiny/16 (D 192, 3 heads, MLP 768), per-channel CLS averaged."""
    return ChadaViTConfig(architecture="one_channel_vit", embed_dim=192, depth=12, num_heads=3, mlp_dim=768,
                          channel_embedding="none")
