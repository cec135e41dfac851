"""ChAda-ViT: one transformer over every (channel, patch) token of an image, whatever its channel count.

Each channel plane is cut into patches by one shared projection; a token gets the spatial position
embedding (shared by all channels) plus its channel embedding (by slot or by identity). A CLS token
attends over all tokens of its own image only. Images are packed without padding (see
:mod:`chadavit.models.layers.attention`).
"""

from __future__ import annotations

import torch
from torch import nn

from chadavit.batch import ChannelBatch, InvalidImageError
from chadavit.models.config import ChadaViTConfig
from chadavit.models.layers.channel_embed import IdentityChannelEmbed, SlotChannelEmbed
from chadavit.models.layers.packing import pack_with_cls
from chadavit.models.layers.patch_embed import PatchEmbed
from chadavit.models.layers.pos_embed import interpolate_pos_embed
from chadavit.models.layers.transformer import PackedEncoderMixin
from chadavit.models.output import EncoderOutput


def check_image_size(batch: ChannelBatch, patch_size: int) -> tuple[int, int]:
    h, w = batch.image_size
    if h < patch_size or w < patch_size:
        raise InvalidImageError(
            f"images are {h}x{w} pixels, smaller than one {patch_size}x{patch_size} patch; upsample or use larger crops"
        )
    if not batch.planes.is_floating_point():
        raise InvalidImageError(f"batch planes must be floating point, got {batch.planes.dtype}; "
                                "build batches with ChannelBatch.from_images")
    return h // patch_size, w // patch_size


class ChAdaViT(PackedEncoderMixin, nn.Module):
    """Channel-adaptive ViT on :class:`~chadavit.ChannelBatch` inputs."""

    def __init__(self, config: ChadaViTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config.patch_size, dim, in_chans=1)
        grid = config.img_size // config.patch_size
        self.channel_embed: nn.Module | None = None
        if config.channel_embedding == "identity":
            self.channel_embed = IdentityChannelEmbed(config.channel_vocab, dim)
        elif config.channel_embedding == "slot":
            self.channel_embed = SlotChannelEmbed(config.num_slots, dim)
        self.init_trunk(config, 1 + grid * grid)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token", "pos_embed", "channel_embed.weight"}

    def _padded_view(self, batch: ChannelBatch, num_slots: int) -> tuple[ChannelBatch, torch.Tensor]:
        """Reference layout of the official model: every image padded with zero planes to ``num_slots``."""
        planes, valid = batch.padded(num_slots)
        names = None
        if batch.channel_names is not None:
            names = tuple(tuple(n) + ("",) * (num_slots - len(n)) for n in batch.channel_names)
        counts = torch.full((len(batch),), num_slots, dtype=torch.long)
        h, w = batch.image_size
        return ChannelBatch(planes.reshape(-1, h, w), counts, names, batch.sources), valid.reshape(-1)

    def forward(self, batch: ChannelBatch, return_attention: bool = False, pad_to_slots: int | None = None
                ) -> EncoderOutput:
        """Embed a batch. ``pad_to_slots`` runs the padded reference path (for tests and benchmarks).

        Images are processed sorted by channel count, so that equal-length sequences are adjacent in
        the packed tensor and attention runs on views of it; outputs come back in the input order.
        """
        if pad_to_slots is not None:
            return self._forward(batch, return_attention, pad_to_slots)
        return self.in_channel_count_order(batch, lambda b: self._forward(b, return_attention, None))

    def _forward(self, batch: ChannelBatch, return_attention: bool, pad_to_slots: int | None) -> EncoderOutput:
        grid = check_image_size(batch, self.config.patch_size)
        names = batch.channel_names
        valid_planes = None
        if pad_to_slots is not None:
            batch, valid_planes = self._padded_view(batch, pad_to_slots)
        device = self.pos_embed.device
        counts = batch.num_channels.cpu()
        num_images, num_planes, n = len(counts), int(counts.sum()), grid[0] * grid[1]

        planes = batch.planes.to(device=device, dtype=self.patch_embed.proj.weight.dtype)
        tokens = self.patch_embed(planes[:, None])  # (P, N, D)
        pos = interpolate_pos_embed(self.pos_embed, grid)
        tokens = tokens + pos[1:][None]
        if self.channel_embed is not None:
            tokens = tokens + self.channel_embed(batch)[:, None]

        cls_tokens = (self.cls_token + pos[:1]).expand(num_images, -1)
        x, seqs, cls_index, patch_index = pack_with_cls(cls_tokens, tokens.reshape(-1, tokens.shape[-1]), counts * n)
        if valid_planes is not None:
            key_valid = torch.ones(x.shape[0], dtype=torch.bool, device=device)
            key_valid[patch_index] = valid_planes.to(device).repeat_interleave(n)
            seqs.key_valid = key_valid
        x, maps = self.run_blocks(x, seqs, return_attention)

        cls = x[cls_index]
        patches = x[patch_index].view(num_planes, grid[0], grid[1], -1)
        attn = [m[:, 1:].reshape(m.shape[0], -1, grid[0], grid[1]) for m in maps] if maps is not None else None
        if valid_planes is not None:
            patches = patches[valid_planes.to(device)]
            real = valid_planes.view(num_images, -1)
            counts = real.sum(1)
            if attn is not None:
                attn = [a[:, real[i].to(a.device)] for i, a in enumerate(attn)]
        return EncoderOutput(cls=cls, patch_tokens=list(torch.split(patches, counts.tolist(), 0)), attentions=attn,
                             channel_names=None if names is None else tuple(tuple(n) for n in names))
