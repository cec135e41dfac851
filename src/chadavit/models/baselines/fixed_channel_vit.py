"""Fixed-channel ViT baseline: an ordinary ViT whose patch embedding takes exactly ``in_chans`` channels."""

from __future__ import annotations

import torch
from torch import nn

from chadavit.batch import ChannelBatch, InvalidImageError
from chadavit.models.chada_vit import check_image_size
from chadavit.models.config import ChadaViTConfig
from chadavit.models.layers.packing import pack_with_cls
from chadavit.models.layers.patch_embed import PatchEmbed
from chadavit.models.layers.pos_embed import interpolate_pos_embed
from chadavit.models.layers.transformer import PackedEncoderMixin
from chadavit.models.output import EncoderOutput
from chadavit.models.registry import register_architecture, register_model


@register_architecture("fixed_channel_vit")
class FixedChannelViT(PackedEncoderMixin, nn.Module):
    """A standard ViT for images of one channel count (e.g. the paper's 3-channel ViT-Tiny)."""

    def __init__(self, config: ChadaViTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config.patch_size, dim, in_chans=config.in_chans)
        grid = config.img_size // config.patch_size
        self.init_trunk(config, 1 + grid * grid)

    def forward(self, batch: ChannelBatch, return_attention: bool = False, pad_to_slots: int | None = None
                ) -> EncoderOutput:
        grid = check_image_size(batch, self.config.patch_size)
        c = self.config.in_chans
        for i, n in enumerate(batch.num_channels.tolist()):
            if n != c:
                src = f" ({batch.sources[i]})" if batch.sources else ""
                raise InvalidImageError(f"image {i}{src} has {n} channels; this fixed-channel ViT takes exactly {c}")
        b, n = len(batch), grid[0] * grid[1]
        device = self.pos_embed.device
        h, w = batch.image_size
        x = batch.planes.to(device, self.pos_embed.dtype).view(b, c, h, w)
        pos = interpolate_pos_embed(self.pos_embed, grid)
        tokens = (self.patch_embed(x) + pos[1:][None]).reshape(b * n, -1)
        x, seqs, cls_index, body_index = pack_with_cls((self.cls_token + pos[:1]).expand(b, -1), tokens,
                                                       torch.full((b,), n))
        x, maps = self.run_blocks(x, seqs, return_attention)
        patches = x[body_index].view(b, 1, grid[0], grid[1], -1)
        attn = [m[:, 1:].reshape(m.shape[0], 1, grid[0], grid[1]) for m in maps] if maps is not None else None
        return EncoderOutput(cls=x[cls_index], patch_tokens=list(patches.unbind(0)), attentions=attn,
                             channel_names=batch.channel_names)


@register_model
def fixed_channel_vit_tiny() -> ChadaViTConfig:
    """A 3-channel ViT-Tiny/16 (D 192, 3 heads, MLP 768); set ``in_chans`` for other channel counts."""
    return ChadaViTConfig(architecture="fixed_channel_vit", embed_dim=192, depth=12, num_heads=3, mlp_dim=768,
                          in_chans=3, channel_embedding="none")
