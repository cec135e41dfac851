"""The paper's baselines, all taking a :class:`~chadavit.ChannelBatch`."""

from chadavit.models.baselines.fixed_channel_vit import FixedChannelViT
from chadavit.models.baselines.inter_channel_vit import InterChannelViT
from chadavit.models.baselines.one_channel_vit import OneChannelViT

__all__ = ["FixedChannelViT", "InterChannelViT", "OneChannelViT"]
