"""Small random batches and models for model tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from chadavit import ChannelBatch
from chadavit.models import create_model


def random_images(counts: Sequence[int], size: int = 32, seed: int = 0, dtype: str = "uint16") -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    hi = 255 if dtype == "uint8" else 4095
    return [rng.integers(0, hi, (c, size, size)).astype(dtype) for c in counts]


def random_batch(counts: Sequence[int], size: int = 32, seed: int = 0) -> ChannelBatch:
    return ChannelBatch.from_images(random_images(counts, size, seed))


def small_model(name: str = "chada_vit_nano", **overrides: object) -> torch.nn.Module:
    defaults: dict[str, object] = {"depth": 2, "img_size": 32}
    defaults.update(overrides)
    torch.manual_seed(0)
    return create_model(name, **defaults).eval()
