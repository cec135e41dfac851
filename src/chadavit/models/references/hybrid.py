"""``hybrid:SPEC``: CellProfiler measurements beside a model's compact vector (its CLS), one vector per crop."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.models.output import EncoderOutput
from chadavit.models.references.base import ReferenceEncoder, raw_images, vector_output
from chadavit.models.references.cellprofiler import CellProfilerEncoder


def standardised_block(x: np.ndarray) -> np.ndarray:
    """Each feature to mean 0 / std 1 over the images given (no labels used), the block then divided by the square
    root of its width, so two blocks weigh the same in a distance whatever their sizes."""
    x = np.asarray(x, np.float64)
    sd = x.std(0)
    z = (x - x.mean(0)) / np.where(sd > 1e-12, sd, 1.0)
    return z / np.sqrt(max(x.shape[1], 1))


def hybrid_features(cellprofiler: np.ndarray, learned: np.ndarray) -> np.ndarray:
    """The hybrid's read-out over a set of images: each block standardised (:func:`standardised_block`), joined."""
    return np.concatenate([standardised_block(cellprofiler), standardised_block(learned)], 1).astype(np.float32)


class HybridEncoder(ReferenceEncoder):
    """CellProfiler ⊕ a model's compact embedding (CLS).

    ``cls`` is the two blocks as measured, side by side (the CellProfiler vector first): standardising each block
    needs the whole set of images, so the read-out applies :func:`hybrid_features` to the two blocks (evaluation
    reads them from the two encoders' feature caches). ``mean_patch`` / ``per_channel`` give ``cls`` too.
    """

    kind = "hybrid"

    def __init__(self, learned: nn.Module, cellprofiler: CellProfilerEncoder | None = None) -> None:
        super().__init__()
        self.inner = learned  # its weights are part of this encoder's cache key
        self.cellprofiler = cellprofiler or CellProfilerEncoder()

    def forward(self, batch: ChannelBatch, return_attention: bool = False) -> EncoderOutput:
        cp = self.cellprofiler(batch).cls.float()
        images = raw_images(batch)
        inner = self.inner.make_batch(images, batch.channel_names, batch.sources)  # type: ignore[operator]
        device = next(iter(self.inner.parameters()), self.version).device
        learned = self.inner(inner.to(device)).cls.float().reshape(len(images), -1)
        return vector_output(torch.cat([cp.to(learned.device), learned], 1), batch.channel_names)

    def vectors(self, images: Sequence[np.ndarray], names: Sequence[tuple[str, ...]]) -> np.ndarray:
        return self(self.make_batch(images, names)).cls.cpu().numpy()
