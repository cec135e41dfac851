"""The shape every reference encoder shares: a config, a raw-keeping ``make_batch``, one vector per image.

A reference needs no training (raw pixels, CellProfiler measurements, the old hand-crafted statistics, the
CellProfiler + model hybrid). It follows the :class:`~chadavit.models.encoder.Encoder` contract: its
``make_batch`` validates the images through :meth:`ChannelBatch.from_images` and keeps the arrays as given
(``batch.raw``, in their dtype: CellProfiler reads integer intensities on the dtype's range); its output gives
its vector as ``cls``, and as the single "patch token" of each image, so ``mean_patch()`` is the vector too and
``per_channel()`` gives it as one row (named ``all``, or the channel's name for a one-channel image). It has no
attention. ``config.pooling = "concat"`` marks it position-dependent: a left-out channel becomes a zero plane in
place and the vector keeps its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.models.output import EncoderOutput


@dataclass
class ReferenceConfig:
    """What the encoder contract asks of a reference's config."""

    architecture: str
    embed_dim: int = 0  # 0: the vector's size depends on the images (channel count, crop size)
    normalization: str = "none"  # the pixels as given (``batch.raw``)
    normalization_stats: dict[str, list[float]] = field(default_factory=dict)
    pooling: str = "concat"
    patch_size: int = 0  # a patch-based reference's patch side (pixel statistics)


def raw_images(batch: ChannelBatch) -> list[np.ndarray]:
    """The images of a batch as given (``batch.raw``), else its planes as numpy arrays."""
    if batch.raw is not None:
        return list(batch.raw)
    return [im.detach().cpu().numpy() for im in batch.images()]


def batch_names(batch: ChannelBatch) -> tuple[tuple[str, ...], ...]:
    """The batch's channel names, ``ch0, ch1, ...`` where it has none."""
    if batch.channel_names is not None:
        return batch.channel_names
    return tuple(tuple(f"ch{c}" for c in range(n)) for n in batch.num_channels.tolist())


def vector_output(vectors: torch.Tensor, channel_names: tuple[tuple[str, ...], ...] | None) -> EncoderOutput:
    """``(B, D)`` vectors as an :class:`EncoderOutput`: ``cls``, and one patch token per image (the vector)."""
    return EncoderOutput(cls=vectors, patch_tokens=[v.view(1, 1, 1, -1) for v in vectors], attentions=None,
                         channel_names=channel_names)


class ConfigBatching:
    """``embed_dim`` and ``make_batch`` from a :class:`ReferenceConfig`: images validated through
    :meth:`ChannelBatch.from_images`, scaled by ``config.normalization``, kept as given (``batch.raw``) when
    that is ``"none"`` (the references that measure raw intensities)."""

    config: ReferenceConfig

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def make_batch(self, images: Sequence[np.ndarray | torch.Tensor],
                   channel_names: Sequence[Sequence[str]] | None = None,
                   sources: Sequence[str] | None = None) -> ChannelBatch:
        norm = self.config.normalization
        return ChannelBatch.from_images(images, channel_names=channel_names, sources=sources,
                                        normalize=norm, keep_raw=norm == "none")  # type: ignore[arg-type]


class ReferenceEncoder(ConfigBatching, nn.Module):
    """A reference computing one numpy vector per image (:meth:`vectors`); a ``version`` buffer gives it a device
    and enters the feature-cache key (bump it when the vectors change)."""

    kind = ""
    # columns in physical units (areas in pixels beside intensities on 0-1): a distance read-out (kNN) standardises
    # them first, as any CellProfiler profile is normalised before distances; embeddings are compared as they are
    physical_units = False

    def __init__(self) -> None:
        super().__init__()
        self.config = ReferenceConfig(self.kind)
        self.register_buffer("version", torch.tensor([1.0]))

    def vectors(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> np.ndarray:
        """``(N, D)`` float32: one vector per image."""
        raise NotImplementedError

    def forward(self, batch: ChannelBatch, return_attention: bool = False) -> EncoderOutput:
        vec = torch.from_numpy(np.ascontiguousarray(self.vectors(raw_images(batch), batch_names(batch))))
        return vector_output(vec.to(self.version.device), batch.channel_names)
