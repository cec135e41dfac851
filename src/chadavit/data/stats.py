"""Per-channel intensity statistics over a training set, for the ``"dataset"`` normalisation.

Why: per-image percentile stretching maps a G1 and a G2 nucleus to the same brightness; one ``(low, high)``
per channel name over the whole training set keeps their 2x DNA-content difference. The numbers are stored
in the model config (``normalization_stats``) so ``embed`` and ``eval`` scale new images identically.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from chadavit.data.dataset import ChannelDataset
from chadavit.data.normalize import PERCENTILE_HIGH, PERCENTILE_LOW, ChannelStats

ALL_CHANNELS = "*"  # fallback entry for channel names the training set did not have


def channel_stats(datasets: Sequence[ChannelDataset], max_images: int = 256, pixels_per_plane: int = 4096,
                  seed: int = 0, low: float = PERCENTILE_LOW, high: float = PERCENTILE_HIGH) -> ChannelStats:
    """``{channel name: [low, high]}`` percentiles of dtype-range-scaled pixels over a sample of images.

    Images are sampled evenly over all datasets (at most ``max_images``); integer pixels are divided by
    their dtype maximum first, so uint8 and uint16 studies of the same stain land on one scale.
    """
    rng = np.random.default_rng(seed)
    index = [(k, i) for k, d in enumerate(datasets) for i in range(len(d))]
    if not index:
        return {}
    pick = rng.choice(len(index), size=min(max_images, len(index)), replace=False)
    samples: dict[str, list[np.ndarray]] = defaultdict(list)
    for j in sorted(pick.tolist()):
        k, i = index[j]
        arr = np.asarray(datasets[k].read(i))
        scale = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else 1.0
        for name, plane in zip(datasets[k].channel_names(i), arr):
            flat = plane.reshape(-1)
            if flat.size > pixels_per_plane:
                flat = flat[rng.choice(flat.size, pixels_per_plane, replace=False)]
            samples[str(name)].append(flat.astype(np.float32) / scale)
    out: ChannelStats = {}
    for name, parts in samples.items():
        v = np.concatenate(parts)
        v = v[np.isfinite(v)]
        if v.size:
            lo, hi = np.percentile(v, [low, high])
            out[name] = [float(lo), float(hi)]
    every = np.concatenate([np.concatenate(p) for p in samples.values()])
    every = every[np.isfinite(every)]
    if every.size:
        out[ALL_CHANNELS] = [float(x) for x in np.percentile(every, [low, high])]
    return out
