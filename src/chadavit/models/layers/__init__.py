"""Building blocks of the channel-adaptive transformers, one concept per module."""

from chadavit.models.layers.attention import ATTENTION_BACKENDS, Attention, PackedSequences, packed_attention
from chadavit.models.layers.block import Block, LegacyBlock
from chadavit.models.layers.channel_embed import IdentityChannelEmbed, SlotChannelEmbed
from chadavit.models.layers.mlp import Mlp
from chadavit.models.layers.patch_embed import PatchEmbed
from chadavit.models.layers.pos_embed import interpolate_pos_embed

__all__ = [
    "ATTENTION_BACKENDS",
    "Attention",
    "Block",
    "IdentityChannelEmbed",
    "LegacyBlock",
    "Mlp",
    "PackedSequences",
    "PatchEmbed",
    "SlotChannelEmbed",
    "interpolate_pos_embed",
    "packed_attention",
]
