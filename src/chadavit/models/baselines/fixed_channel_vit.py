"""Fixed-channel ViT baseline: an ordinary ViT whose patch embedding takes exactly ``in_chans`` channels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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


def fit_channels(img: np.ndarray, names: tuple[str, ...] | None, n: int) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """``img`` with exactly ``n`` channels: the first ``n``, or zero planes added (``empty0, ...``)."""
    if img.ndim == 2:
        img = img[None]
    if img.shape[0] == n:
        return img, names
    if img.shape[0] > n:
        return img[:n], names[:n] if names is not None else None
    pad = np.zeros((n - img.shape[0], *img.shape[1:]), img.dtype)
    extra = tuple(f"empty{i}" for i in range(n - img.shape[0]))
    return np.concatenate([img, pad]), names + extra if names is not None else None


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

    def make_batch(self, images: Sequence[np.ndarray | torch.Tensor],
                   channel_names: Sequence[Sequence[str]] | None = None,
                   sources: Sequence[str] | None = None) -> ChannelBatch:
        """Like every encoder's, with each image fitted to ``in_chans`` first: extra channels dropped, missing
        ones added as zero planes (named ``empty0, empty1, ...``) before scaling."""
        fitted = [fit_channels(np.asarray(im), tuple(channel_names[i]) if channel_names is not None else None,
                               self.config.in_chans) for i, im in enumerate(images)]
        names = [f[1] for f in fitted] if channel_names is not None else None
        return super().make_batch([f[0] for f in fitted], names, sources)

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
