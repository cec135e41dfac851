"""Reference encoders: what a learned representation must beat, each following the Encoder contract.

``raw_pixels``    per-crop standardised raw pixels (the user-facing pixel baseline)
``cellprofiler``  CellProfiler per-cell measurements (cp_measure)
``handcrafted``   the old hand-written CellProfiler-style statistics (for comparison only)
``pixel_stats``   per-patch intensity statistics through a fixed random projection (tests, a floor);
                  ``pixels`` is its deprecated old name
``hybrid:SPEC``   CellProfiler beside the CLS of the encoder SPEC names (:class:`HybridEncoder`)

Add one: a :class:`ReferenceEncoder` subclass with ``kind`` and ``vectors(images, names)`` in its own module here,
and its name in :data:`REFERENCES`; ``load_encoder(name)`` and ``chadavit eval --model name`` then work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from torch import nn

from chadavit.models.references.base import ReferenceConfig, ReferenceEncoder
from chadavit.models.references.cellprofiler import CellProfilerEncoder
from chadavit.models.references.handcrafted import HandcraftedEncoder, RawPixelEncoder
from chadavit.models.references.hybrid import HybridEncoder, hybrid_features
from chadavit.models.references.pixel_stats import PixelStatsEncoder

log = logging.getLogger(__name__)


def _deprecated_pixels() -> nn.Module:
    log.warning("model 'pixels' is the old name of 'pixel_stats' (pixel statistics, a test encoder); the raw-pixel "
                "baseline is 'raw_pixels'")
    return PixelStatsEncoder()


REFERENCES: dict[str, Callable[[], nn.Module]] = {
    "raw_pixels": RawPixelEncoder,
    "cellprofiler": CellProfilerEncoder,
    "handcrafted": HandcraftedEncoder,
    "pixel_stats": PixelStatsEncoder,
    "pixels": _deprecated_pixels,
}

__all__ = ["REFERENCES", "CellProfilerEncoder", "HandcraftedEncoder", "HybridEncoder", "PixelStatsEncoder",
           "RawPixelEncoder", "ReferenceConfig", "ReferenceEncoder", "hybrid_features"]
